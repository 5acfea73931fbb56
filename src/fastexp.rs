//! A branch-free `exp` that the compiler can vectorise, for the mixture kernel's log-sum-exp.
//!
//! Why this module exists: the exact score of a K-component mixture needs K exponentials per
//! particle and evaluation, and with libm's scalar `exp` they dominate the run time. This `exp`
//! has no branches, table look-ups or calls, so a loop over a slice of arguments compiles to
//! vector instructions (4 lanes with AVX2).
//!
//! # Method
//!
//! ```text
//! k = round(x / ln 2)                 (by adding 1.5 * 2^52, which rounds to an integer)
//! r = (x - k ln2_hi) - k ln2_lo       (Cody-Waite: k ln2_hi is exact, |r| <= ln2/2 (1 + 2^-40))
//! exp(r) ~ 1 + r + c2 r^2 + ... + c11 r^11
//! exp(x) = exp(r) * 2^k1 * 2^k2       (k1 = floor(k / 2), k2 = k - k1, both built in the
//!                                      exponent bits; two factors keep each one a normal number,
//!                                      so results in the subnormal range are rounded only once)
//! ```
//!
//! The coefficients `c2..c11` interpolate `(exp(r) - 1 - r) / r^2` at Chebyshev points of
//! `[-ln2/2, ln2/2]` (widened by 1e-4), computed in 50-digit arithmetic: the polynomial with its
//! coefficients rounded to `f64` is within 1.6e-17 relative of `exp` on that interval, 0.15 ulp.
//! The evaluation (Horner) adds under 0.6 ulp; the scaling is exact for normal results. Measured
//! against `f64::exp` on 2 million points of `[-745, 0]` and every edge case (see the tests),
//! the largest difference is 1 ulp.
//!
//! Arguments are clamped to `[-746, 710]` first: below, the result rounds to 0 anyway; above, it
//! is `+inf` (through `2^512 * 2^512`). NaN gives NaN. The mixture kernel only calls it with
//! arguments `<= 0` (log-terms minus their maximum).

/// How `a * b + c` is evaluated: two roundings ([`Separate`]) or one ([`Fused`]).
///
/// The kernels are generic over this, so that the copy compiled for CPUs with FMA uses it and
/// the portable copy (where `f64::mul_add` would be a slow library call) does not. Within one
/// flavour every evaluation is the same sequence of operations, whatever the vector width.
pub(crate) trait MulAdd: Copy {
    /// `a * b + c`.
    fn mul_add(a: f64, b: f64, c: f64) -> f64;
}

/// `a * b + c` with two roundings (plain multiply, then add; Rust never contracts them).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Separate;

/// `a * b + c` with one rounding (`f64::mul_add`): one instruction where FMA is enabled.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fused;

impl MulAdd for Separate {
    #[inline(always)]
    fn mul_add(a: f64, b: f64, c: f64) -> f64 {
        a * b + c
    }
}

impl MulAdd for Fused {
    #[inline(always)]
    fn mul_add(a: f64, b: f64, c: f64) -> f64 {
        a.mul_add(b, c)
    }
}

/// 1.5 * 2^52: `y + SHIFT - SHIFT` rounds `y` to the nearest integer for `|y| < 2^51`, and the
/// low bits of `y + SHIFT` hold that integer.
pub(crate) const SHIFT: f64 = 6_755_399_441_055_744.0;
/// 1 / ln 2.
const LOG2_E: f64 = std::f64::consts::LOG2_E;
/// ln 2 truncated to 32 significant bits (`0x1.62e42fee00000p-1`), so that `k * LN2_HI` is exact
/// for `|k| < 2^21`.
pub(crate) const LN2_HI: f64 = 0.693_147_180_369_123_8;
/// `ln 2 - LN2_HI`, rounded.
pub(crate) const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
/// Below this the result is 0 (exp(-746) < 2^-1076, under half the smallest subnormal).
pub(crate) const MIN_ARG: f64 = -746.0;
/// Above this the result is +inf (exp(710) > f64::MAX).
pub(crate) const MAX_ARG: f64 = 710.0;

/// Coefficients `c2..c11` of the polynomial (see the module docs); `c0 = c1 = 1`.
const C: [f64; 10] = [
    0.500_000_000_000_000_1,
    0.166_666_666_666_666_69,
    0.041_666_666_666_624_13,
    0.008_333_333_333_330_062,
    0.001_388_888_891_721_371_7,
    0.000_198_412_698_630_536_18,
    2.480_152_129_595_437_6e-5,
    2.755_726_845_999_706_4e-6,
    2.762_008_844_540_974_6e-7,
    2.510_038_549_551_032e-8,
];

/// `exp(x)` with `a * b + c` evaluated as `M` says; see the module docs.
#[inline(always)]
pub(crate) fn exp_with<M: MulAdd>(x: f64) -> f64 {
    // Comparisons that are false for NaN, so NaN passes through.
    let x = if x < MIN_ARG { MIN_ARG } else { x };
    let x = if x > MAX_ARG { MAX_ARG } else { x };
    let t = M::mul_add(x, LOG2_E, SHIFT);
    let kf = t - SHIFT;
    let r = M::mul_add(kf, -LN2_LO, M::mul_add(kf, -LN2_HI, x));
    // q = c2 + c3 r + ... + c11 r^9 by Estrin's scheme: three more operations than Horner's
    // rule, but a dependency chain of 4 multiply-adds instead of 9, and a chain's latency is what
    // bounds a loop of exps on CPUs whose reorder window holds only a few of them.
    let r2 = r * r;
    let r4 = r2 * r2;
    let r8 = r4 * r4;
    let p01 = M::mul_add(C[1], r, C[0]);
    let p23 = M::mul_add(C[3], r, C[2]);
    let p45 = M::mul_add(C[5], r, C[4]);
    let p67 = M::mul_add(C[7], r, C[6]);
    let p89 = M::mul_add(C[9], r, C[8]);
    let q03 = M::mul_add(p23, r2, p01);
    let q47 = M::mul_add(p67, r2, p45);
    let q = M::mul_add(p89, r8, M::mul_add(q47, r4, q03));
    // 1 + r + r^2 q by Horner: q's rounding errors are damped by r^2 <= 0.12.
    let p = M::mul_add(M::mul_add(q, r, 1.0), r, 1.0);
    // k = t - SHIFT as an integer (-1076 <= k <= 1025), split into k1 = floor(k / 2) and
    // k2 = k - k1, both normal exponents. With u = k + 2048 > 0 and h = u / 2 (a logical shift:
    // AVX2 has no 64-bit arithmetic shift): k1 + 1023 = h - 1 and k2 + 1023 = u - h - 1.
    let u = (t.to_bits() as i64).wrapping_sub(SHIFT.to_bits() as i64 - 2048);
    let h = ((u as u64) >> 1) as i64;
    let s1 = f64::from_bits((h.wrapping_sub(1) as u64) << 52);
    let s2 = f64::from_bits((u.wrapping_sub(h).wrapping_sub(1) as u64) << 52);
    p * s1 * s2
}

/// [`exp_with`]`::<Fused>` on eight lanes with AVX-512: the same operations up to the scaling,
/// which `vscalefpd` does in one instruction (one rounding of p 2^k, which is what the two
/// exact-then-rounded factors of the scalar code give), so the same bits as the other fused
/// copies, in about two thirds of their instructions.
///
/// # Safety
///
/// The CPU must support AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx2,fma")]
#[inline]
pub(crate) unsafe fn exp8_avx512(x: std::arch::x86_64::__m512d) -> std::arch::x86_64::__m512d {
    use std::arch::x86_64::*;
    let v = _mm512_set1_pd;
    // max(MIN, x) and min(MAX, x) return x when it is NaN (the second operand), as the
    // comparisons of the scalar code do.
    let x = _mm512_min_pd(v(MAX_ARG), _mm512_max_pd(v(MIN_ARG), x));
    let t = _mm512_fmadd_pd(x, v(LOG2_E), v(SHIFT));
    let kf = _mm512_sub_pd(t, v(SHIFT));
    let r = _mm512_fmadd_pd(kf, v(-LN2_LO), _mm512_fmadd_pd(kf, v(-LN2_HI), x));
    let r2 = _mm512_mul_pd(r, r);
    let r4 = _mm512_mul_pd(r2, r2);
    let r8 = _mm512_mul_pd(r4, r4);
    let p01 = _mm512_fmadd_pd(v(C[1]), r, v(C[0]));
    let p23 = _mm512_fmadd_pd(v(C[3]), r, v(C[2]));
    let p45 = _mm512_fmadd_pd(v(C[5]), r, v(C[4]));
    let p67 = _mm512_fmadd_pd(v(C[7]), r, v(C[6]));
    let p89 = _mm512_fmadd_pd(v(C[9]), r, v(C[8]));
    let q03 = _mm512_fmadd_pd(p23, r2, p01);
    let q47 = _mm512_fmadd_pd(p67, r2, p45);
    let q = _mm512_fmadd_pd(p89, r8, _mm512_fmadd_pd(q47, r4, q03));
    let p = _mm512_fmadd_pd(_mm512_fmadd_pd(q, r, v(1.0)), r, v(1.0));
    _mm512_scalef_pd(p, kf)
}

/// `exp(x)`, within 1 ulp of the correctly rounded result (measured: see the module docs),
/// without branches, so that loops over slices vectorise.
///
/// Defined for every `f64`: below -746 the result is 0, above 710 it is `+inf`, NaN gives NaN.
/// This is the portable evaluation (separate multiply and add); the mixture kernels use the
/// same formula with fused multiply-adds on CPUs that have them.
///
/// ```
/// let x = -3.25_f64;
/// let e = scoresde::fastexp::exp(x);
/// assert!((e - x.exp()).abs() <= 2.0 * f64::EPSILON * x.exp());
/// assert_eq!(scoresde::fastexp::exp(0.0), 1.0);
/// assert_eq!(scoresde::fastexp::exp(-1000.0), 0.0);
/// ```
pub fn exp(x: f64) -> f64 {
    exp_with::<Separate>(x)
}

/// `x <- exp(x)` for every element, vectorised in the copy [`simd_path`] selects (AVX-512,
/// AVX2 + FMA, or the portable [`exp`]); the fused copies differ from the portable one in the
/// last bit at most.
///
/// ```
/// let mut v = vec![0.0, -1.0, -700.0, -800.0];
/// scoresde::fastexp::exp_in_place(&mut v);
/// assert_eq!(v[0], 1.0);
/// assert!((v[1] - (-1.0f64).exp()).abs() <= f64::EPSILON);
/// assert_eq!(v[3], 0.0);
/// ```
pub fn exp_in_place(xs: &mut [f64]) {
    match simd_path() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `simd_path` returns `Avx512` only where the CPU has AVX-512F/DQ, AVX2 and FMA.
        SimdPath::Avx512 => unsafe { exp_in_place_avx512(xs) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `simd_path` returns `Avx2Fma` only where the CPU has AVX2 and FMA.
        SimdPath::Avx2Fma => unsafe { exp_in_place_avx2_fma(xs) },
        _ => exp_slice::<Separate>(xs),
    }
}

#[inline(always)]
fn exp_slice<M: MulAdd>(xs: &mut [f64]) {
    for x in xs.iter_mut() {
        *x = exp_with::<M>(*x);
    }
}

/// # Safety
///
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn exp_in_place_avx2_fma(xs: &mut [f64]) {
    exp_slice::<Fused>(xs);
}

/// # Safety
///
/// The CPU must support AVX-512F, AVX-512DQ, AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx2,fma")]
unsafe fn exp_in_place_avx512(xs: &mut [f64]) {
    use std::arch::x86_64::*;
    let whole = xs.len() / 8 * 8;
    for x in xs[..whole].chunks_exact_mut(8) {
        // SAFETY: 8 values in each chunk; the CPU has the features (the contract).
        unsafe { _mm512_storeu_pd(x.as_mut_ptr(), exp8_avx512(_mm512_loadu_pd(x.as_ptr()))) };
    }
    exp_slice::<Fused>(&mut xs[whole..]);
}

/// The copies of the vectorised code (here, in the mixture kernel and in the network's SiLU).
///
/// Every copy runs each element through the same sequence of operations: the two fused copies
/// (FMA on 4 or 8 lanes) give the same bits, and differ from the portable one (separate
/// multiply and add) in rounding only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimdPath {
    /// Baseline x86-64 (SSE2) or any other target: separate multiply and add.
    Portable,
    /// AVX2 with fused multiply-adds, 4 lanes.
    Avx2Fma,
    /// AVX-512 (F and DQ) with fused multiply-adds, 8 lanes.
    Avx512,
}

impl SimdPath {
    /// Every copy, widest last.
    pub const ALL: [SimdPath; 3] = [SimdPath::Portable, SimdPath::Avx2Fma, SimdPath::Avx512];

    /// The name `SCORESDE_KERNEL` takes and `scoresde bench` prints.
    pub fn name(self) -> &'static str {
        match self {
            Self::Portable => "portable",
            Self::Avx2Fma => "avx2+fma",
            Self::Avx512 => "avx512",
        }
    }

    /// Whether this CPU can run the copy.
    pub fn supported(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
            match self {
                Self::Portable => true,
                Self::Avx2Fma => avx2,
                Self::Avx512 => avx2 && is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512dq"),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            self == Self::Portable
        }
    }

    /// The copies this CPU can run.
    pub fn supported_paths() -> Vec<SimdPath> {
        Self::ALL.into_iter().filter(|p| p.supported()).collect()
    }
}

/// Which copy of the vectorised code runs in this process, chosen once: the widest the CPU
/// supports, unless the environment says otherwise. `SCORESDE_KERNEL=portable|avx2+fma|avx512`
/// forces a copy (one the CPU lacks is refused: the process stops with a message naming it);
/// `SCORESDE_PORTABLE_KERNEL` (any value) forces the portable copy.
pub fn simd_path() -> SimdPath {
    static PATH: std::sync::OnceLock<SimdPath> = std::sync::OnceLock::new();
    *PATH.get_or_init(|| {
        if let Some(v) = std::env::var_os("SCORESDE_KERNEL") {
            let v = v.to_string_lossy();
            let path = SimdPath::ALL.into_iter().find(|p| p.name() == v || (v == "avx2" && *p == SimdPath::Avx2Fma));
            match path {
                Some(p) if p.supported() => return p,
                Some(p) => panic!("SCORESDE_KERNEL = {v:?}: this CPU cannot run the {} copy", p.name()),
                None => panic!("SCORESDE_KERNEL = {v:?}: expected portable, avx2+fma or avx512"),
            }
        }
        if std::env::var_os("SCORESDE_PORTABLE_KERNEL").is_some() {
            return SimdPath::Portable;
        }
        *SimdPath::supported_paths().last().expect("the portable copy runs everywhere")
    })
}

/// The name of [`simd_path`]'s copy: `"avx512"`, `"avx2+fma"` or `"portable"`.
pub fn vector_path() -> &'static str {
    simd_path().name()
}

/// Test support: asserts that a vectorised copy gives the bits of the scalar code on every
/// edge case (subnormal and overflowing results, the clamps, NaN, zeros) and on more points.
/// Each function returns at once where the CPU cannot run its copy (tested where it can).
#[cfg(all(test, target_arch = "x86_64"))]
pub(crate) mod lanes_check {
    use super::SimdPath;
    use std::arch::x86_64::*;

    /// `lanes` (eight values at a time) against `scalar` on the edge cases and `more`.
    pub(crate) fn avx512(lanes: unsafe fn(__m512d) -> __m512d, scalar: fn(f64) -> f64, more: Vec<f64>) {
        if !SimdPath::Avx512.supported() {
            return;
        }
        #[target_feature(enable = "avx512f,avx512dq,avx2,fma")]
        unsafe fn run(xs: &[f64], lanes: unsafe fn(__m512d) -> __m512d) -> Vec<f64> {
            let mut out = vec![0.0; xs.len()];
            for (o, x) in out.chunks_exact_mut(8).zip(xs.chunks_exact(8)) {
                // SAFETY: 8 values in each chunk; the caller checked AVX-512, which `lanes` needs.
                unsafe { _mm512_storeu_pd(o.as_mut_ptr(), lanes(_mm512_loadu_pd(x.as_ptr()))) };
            }
            out
        }
        let xs = points(more);
        // SAFETY: AVX-512 checked above.
        compare(&xs, &unsafe { run(&xs, lanes) }, scalar);
    }

    /// `lanes` (four values at a time) against `scalar` on the edge cases and `more`.
    pub(crate) fn avx2(lanes: unsafe fn(__m256d) -> __m256d, scalar: fn(f64) -> f64, more: Vec<f64>) {
        if !SimdPath::Avx2Fma.supported() {
            return;
        }
        #[target_feature(enable = "avx2,fma")]
        unsafe fn run(xs: &[f64], lanes: unsafe fn(__m256d) -> __m256d) -> Vec<f64> {
            let mut out = vec![0.0; xs.len()];
            for (o, x) in out.chunks_exact_mut(4).zip(xs.chunks_exact(4)) {
                // SAFETY: 4 values in each chunk; the caller checked AVX2 and FMA.
                unsafe { _mm256_storeu_pd(o.as_mut_ptr(), lanes(_mm256_loadu_pd(x.as_ptr()))) };
            }
            out
        }
        let xs = points(more);
        // SAFETY: AVX2 and FMA checked above.
        compare(&xs, &unsafe { run(&xs, lanes) }, scalar);
    }

    /// The edge cases, then `more`, padded to a multiple of 8 values.
    fn points(more: Vec<f64>) -> Vec<f64> {
        let mut xs = vec![-746.5, -745.2, -744.4, -740.0, -708.4, -708.3, 709.7, 709.8, 711.0, 1e300, -1e300];
        xs.extend([0.0, -0.0, f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 1e-300, -1e-300]);
        xs.extend(more);
        while xs.len() % 8 != 0 {
            xs.push(0.5);
        }
        xs
    }

    fn compare(xs: &[f64], got: &[f64], scalar: fn(f64) -> f64) {
        for (x, g) in xs.iter().zip(got) {
            let want = scalar(*x);
            assert!(g.to_bits() == want.to_bits() || (g.is_nan() && want.is_nan()), "{x}: {g:e} vs {want:e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_pcg::Pcg64;

    /// Distance in units in the last place between two finite non-negative doubles (the bit
    /// patterns of non-negative doubles are ordered like their values, subnormals included).
    fn ulps(a: f64, b: f64) -> u64 {
        assert!(a >= 0.0 && b >= 0.0, "{a} {b}");
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs()
    }

    fn worst(f: fn(f64) -> f64, xs: impl Iterator<Item = f64>) -> (u64, f64) {
        let mut w = (0, 0.0);
        for x in xs {
            let (got, want) = (f(x), x.exp());
            let u = ulps(got, want);
            if u > w.0 {
                w = (u, x);
            }
        }
        w
    }

    fn fused(x: f64) -> f64 {
        exp_with::<Fused>(x)
    }

    /// Random points of `[-745, 0]` (uniform, and log-uniform in magnitude to cover the
    /// neighbourhood of 0), 1e6 each, plus the edges of every range reduction interval.
    fn points() -> Vec<f64> {
        let mut rng = Pcg64::seed_from_u64(8);
        let mut xs: Vec<f64> = (0..1_000_000).map(|_| -745.0 * rng.random::<f64>()).collect();
        xs.extend((0..1_000_000).map(|_| -(10f64.powf(-300.0 + 302.87 * rng.random::<f64>()))));
        // Around (k + 1/2) ln 2, where the rounding of k changes, for every k in range.
        for k in -1076i32..=0 {
            let edge = (k as f64 + 0.5) * std::f64::consts::LN_2;
            let mut v = edge;
            for _ in 0..4 {
                xs.push(v);
                v = f64::from_bits(v.to_bits() + 1);
            }
            let mut v = edge;
            for _ in 0..4 {
                xs.push(v);
                v = f64::from_bits(v.to_bits() - 1);
            }
        }
        xs.retain(|&x| x >= -745.2);
        xs
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_avx512_lanes_give_the_bits_of_the_fused_scalar_code() {
        let mut rng = Pcg64::seed_from_u64(11);
        let mut xs: Vec<f64> = (0..200_000).map(|_| rng.random_range(-746.0..710.0)).collect();
        xs.extend((0..200_000).map(|_| rng.random_range(-1.0..1.0)));
        lanes_check::avx512(exp8_avx512, fused, xs);
    }

    #[test]
    fn within_one_ulp_of_libm_on_the_kernel_range() {
        let xs = points();
        for (name, f) in [("separate", exp as fn(f64) -> f64), ("fused", fused)] {
            let (u, at) = worst(f, xs.iter().copied());
            assert!(u <= 1, "{name}: {u} ulp at x = {at:e} ({:e} vs {:e})", f(at), at.exp());
        }
    }

    #[test]
    fn edge_values() {
        for f in [exp as fn(f64) -> f64, fused] {
            assert_eq!(f(0.0), 1.0);
            assert_eq!(f(-0.0), 1.0);
            assert_eq!(f(-5e-324), 1.0);
            assert_eq!(f(-1e-300), 1.0);
            assert_eq!(f(-1e-17), 1.0);
            assert_eq!(f(-1.2e-16), (-1.2e-16f64).exp());
            assert_eq!(f(f64::NEG_INFINITY), 0.0);
            assert_eq!(f(-746.0), 0.0);
            assert_eq!(f(-1e300), 0.0);
            assert_eq!(f(f64::MIN), 0.0);
            assert!(f(f64::NAN).is_nan());
            assert_eq!(f(710.0), f64::INFINITY);
            assert_eq!(f(f64::INFINITY), f64::INFINITY);
            assert!(ulps(f(1.0), std::f64::consts::E) <= 1);
            // Smallest normal result and the subnormal range, down to the last value that
            // does not round to zero.
            for x in [-708.3964185322641, -708.4, -709.0, -720.0, -740.0, -744.44, -745.0, -745.1332191019411, -745.13]
            {
                assert!(ulps(f(x), x.exp()) <= 1, "x = {x}: {:e} vs {:e}", f(x), x.exp());
            }
            assert_eq!(f(-745.2), 0.0);
        }
    }

    #[test]
    fn positive_arguments_up_to_overflow() {
        let mut rng = Pcg64::seed_from_u64(9);
        let xs: Vec<f64> = (0..200_000).map(|_| 709.7 * rng.random::<f64>()).collect();
        for f in [exp as fn(f64) -> f64, fused] {
            let (u, at) = worst(f, xs.iter().copied());
            assert!(u <= 1, "{u} ulp at {at}");
            assert_eq!(f(709.78), (709.78f64).exp());
        }
    }

    #[test]
    fn in_place_matches_within_one_ulp() {
        let xs = points();
        let mut ys = xs.clone();
        exp_in_place(&mut ys);
        for (x, y) in xs.iter().zip(&ys) {
            assert!(ulps(*y, x.exp()) <= 1, "{x}");
        }
        // Every copy this CPU runs: the fused ones agree to the bit, the portable one to 1 ulp.
        #[cfg(target_arch = "x86_64")]
        for path in SimdPath::supported_paths() {
            let mut zs = xs.clone();
            // SAFETY: `supported_paths` lists only copies this CPU runs.
            match path {
                SimdPath::Avx512 => unsafe { exp_in_place_avx512(&mut zs) },
                SimdPath::Avx2Fma => unsafe { exp_in_place_avx2_fma(&mut zs) },
                SimdPath::Portable => exp_slice::<Separate>(&mut zs),
            }
            for (x, z) in xs.iter().zip(&zs) {
                assert!(ulps(*z, x.exp()) <= 1, "{}: {x}", path.name());
                if path != SimdPath::Portable {
                    assert_eq!(z.to_bits(), fused(*x).to_bits(), "{}: {x}", path.name());
                }
            }
        }
    }

    #[test]
    fn slices_vectorised_or_not_give_the_same_bits() {
        // The same function applied element-wise in a loop (which the compiler vectorises) and
        // one value at a time through an opaque call.
        let xs = points();
        let mut ys = xs.clone();
        for y in ys.iter_mut() {
            *y = exp(*y);
        }
        for (x, y) in xs.iter().zip(&ys).step_by(97) {
            assert_eq!(std::hint::black_box(exp)(*x).to_bits(), y.to_bits());
        }
    }
}
