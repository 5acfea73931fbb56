//! `exp` through a 16-entry table of `2^(j/16)` and a degree-7 polynomial: the exponential of
//! the network's SiLU and sigmoid, where it is evaluated 7 x 64 times per row and NFE.
//!
//! Why it exists beside [`crate::fastexp`]: a table shrinks the reduced argument 16-fold, so the
//! polynomial needs 7 terms instead of 11, and on eight AVX-512 lanes the look-up is one
//! `vpermt2pd`; with the negation folded into the first multiply-adds, the clamp, reduction,
//! polynomial, look-up and scaling of `exp(-x)` take 17 vector instructions where
//! [`crate::fastexp::exp8_avx512`] and a negation take 22. A Zen 4 retires about one and a half
//! 512-bit operations per cycle in this loop, so the activations' time goes with that count. The
//! mixture kernel keeps `fastexp`'s table-free `exp`, which vectorises on any CPU without
//! gathers.
//!
//! # Method
//!
//! ```text
//! k = round(16 x / ln 2)               (by adding fastexp's SHIFT = 1.5 * 2^52: its low 51
//!                                       bits are zero, so t's low bits hold k)
//! r = (x - k ln2_hi / 16) - k ln2_lo / 16    (|r| <= ln 2 / 32 (1 + 2^-40), k ln2_hi / 16 exact)
//! j = k mod 16, n = floor(k / 16)      (the low bits of k)
//! e^r - 1 ~ r + r^2 (1/2 + r/6 + r^2/24 + r^3/120 + r^4/720 + r^5/5040)
//! exp(x) = (T_j + T_j (e^r - 1)) 2^n   (T_j = 2^(j/16) rounded to f64; 2^n as two normal
//!                                       factors, or one vscalefpd, so one rounding)
//! ```
//!
//! The Taylor polynomial's truncation is `r^8 / 8! < 1.3e-18` on that interval. The error
//! budget, relative: `T_j`'s rounding `2^-53`, the final multiply-add's `2^-53`, and under `1e-17`
//! from the reduction and the polynomial: `2.3e-16`, i.e. within 2 ulp (tested against libm).
//! Arguments are clamped to `[-746, 710]` first (below, the result is 0; above, `+inf`); NaN
//! gives NaN.

use crate::fastexp::{MulAdd, LN2_HI, LN2_LO, MAX_ARG, MIN_ARG, SHIFT};

/// 16 / ln 2.
const SCALE: f64 = 16.0 * std::f64::consts::LOG2_E;
/// ln 2 / 16 to 32 significant bits (`fastexp`'s `LN2_HI` / 16, exact): `k * LN2_16_HI` is exact
/// for `|k| < 2^21`.
const LN2_16_HI: f64 = LN2_HI / 16.0;
/// `ln 2 / 16 - LN2_16_HI`, rounded (`LN2_LO` / 16, exact).
const LN2_16_LO: f64 = LN2_LO / 16.0;
/// 1/2, 1/6, ..., 1/7!: the Taylor coefficients of `(e^r - 1 - r) / r^2`.
const C: [f64; 6] = [0.5, 1.0 / 6.0, 1.0 / 24.0, 1.0 / 120.0, 1.0 / 720.0, 1.0 / 5040.0];

/// `2^(j/16)` for `j = 0..16`, correctly rounded (computed in 60-digit decimal arithmetic).
pub(crate) const TABLE: [f64; 16] = {
    const BITS: [u64; 16] = [
        0x3ff0000000000000,
        0x3ff0b5586cf9890f,
        0x3ff172b83c7d517b,
        0x3ff2387a6e756238,
        0x3ff306fe0a31b715,
        0x3ff3dea64c123422,
        0x3ff4bfdad5362a27,
        0x3ff5ab07dd485429,
        0x3ff6a09e667f3bcd,
        0x3ff7a11473eb0187,
        0x3ff8ace5422aa0db,
        0x3ff9c49182a3f090,
        0x3ffae89f995ad3ad,
        0x3ffc199bdd85529c,
        0x3ffd5818dcfba487,
        0x3ffea4afa2a490da,
    ];
    let mut t = [0.0; 16];
    let mut j = 0;
    while j < 16 {
        t[j] = f64::from_bits(BITS[j]);
        j += 1;
    }
    t
};

/// `e^r - 1` by the polynomial of the module docs (Estrin's scheme: a dependency chain of four
/// multiply-adds).
#[inline(always)]
fn expm1_reduced<M: MulAdd>(r: f64) -> f64 {
    let r2 = r * r;
    let q01 = M::mul_add(C[1], r, C[0]);
    let q23 = M::mul_add(C[3], r, C[2]);
    let q45 = M::mul_add(C[5], r, C[4]);
    let q = M::mul_add(M::mul_add(q45, r2, q23), r2, q01);
    M::mul_add(q, r2, r)
}

/// `exp(x)` with `a * b + c` evaluated as `M` says; see the module docs.
#[inline(always)]
pub(crate) fn exp_with<M: MulAdd>(x: f64) -> f64 {
    // Comparisons that are false for NaN, so NaN passes through.
    let x = if x < MIN_ARG { MIN_ARG } else { x };
    let x = if x > MAX_ARG { MAX_ARG } else { x };
    let t = M::mul_add(x, SCALE, SHIFT);
    let kf = t - SHIFT;
    let p = expm1_reduced::<M>(M::mul_add(kf, -LN2_16_LO, M::mul_add(kf, -LN2_16_HI, x)));
    // k = t - SHIFT as an integer, -17_221 <= k <= 16_389; u = k + 2^15 > 0, so that logical
    // shifts (AVX2 has no 64-bit arithmetic one) give n + 2048 = u >> 4 and j = u mod 16.
    let u = (t.to_bits() as i64).wrapping_sub(SHIFT.to_bits() as i64 - (1 << 15)) as u64;
    let tj = TABLE[(u & 15) as usize];
    let e = M::mul_add(tj, p, tj);
    // 2^n as 2^n1 2^n2, n1 = floor(n / 2), n2 = n - n1, both normal for -1077 <= n <= 1024:
    // with m = n + 2048 and h = m / 2, n1 + 1023 = h - 1 and n2 + 1023 = m - h - 1.
    let m = u >> 4;
    let h = m >> 1;
    let s1 = f64::from_bits((h - 1) << 52);
    let s2 = f64::from_bits((m - h - 1) << 52);
    e * s1 * s2
}

/// [`exp_with`]`::<Fused>(-x)` on eight lanes with AVX-512, the same bits: the negation folded
/// into the clamp and the first multiply-adds (which round `-(a b) + c` as `(-a) b + c`), the
/// look-up as one `vpermt2pd`, the scaling as one `vscalefpd` (one rounding of `e 2^n`, as the
/// exact-then-rounded factors of the scalar code give).
///
/// # Safety
///
/// The CPU must support AVX-512F (and the enabled AVX2, FMA, AVX-512DQ).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx2,fma")]
#[inline]
pub(crate) unsafe fn exp_neg8_avx512(x: std::arch::x86_64::__m512d) -> std::arch::x86_64::__m512d {
    use std::arch::x86_64::*;
    let v = _mm512_set1_pd;
    // -x clamped to [MIN, MAX] is the negation of x clamped to [-MAX, -MIN]; max(a, x) and
    // min(a, x) return x when it is NaN (the second operand).
    let x = _mm512_min_pd(v(-MIN_ARG), _mm512_max_pd(v(-MAX_ARG), x));
    let t = _mm512_fnmadd_pd(x, v(SCALE), v(SHIFT));
    let kf = _mm512_sub_pd(t, v(SHIFT));
    let r = _mm512_fmadd_pd(kf, v(-LN2_16_LO), _mm512_fnmsub_pd(kf, v(LN2_16_HI), x));
    let r2 = _mm512_mul_pd(r, r);
    let q01 = _mm512_fmadd_pd(v(C[1]), r, v(C[0]));
    let q23 = _mm512_fmadd_pd(v(C[3]), r, v(C[2]));
    let q45 = _mm512_fmadd_pd(v(C[5]), r, v(C[4]));
    let q = _mm512_fmadd_pd(_mm512_fmadd_pd(q45, r2, q23), r2, q01);
    let p = _mm512_fmadd_pd(q, r2, r);
    // j = k mod 16 is in t's low 4 bits (SHIFT's are zero), which vpermt2pd reads.
    // SAFETY: TABLE has 16 values; each load reads 8 of them.
    let half = |i: usize| unsafe { _mm512_loadu_pd(TABLE.as_ptr().add(8 * i)) };
    let tj = _mm512_permutex2var_pd(half(0), _mm512_castpd_si512(t), half(1));
    let e = _mm512_fmadd_pd(tj, p, tj);
    // vscalefpd multiplies by 2^floor(kf / 16) = 2^n (kf / 16 is exact).
    _mm512_scalef_pd(e, _mm512_mul_pd(kf, v(1.0 / 16.0)))
}

/// [`exp_with`]`::<Fused>(-x)` on four lanes with AVX2 and FMA, the same bits: the negation
/// folded in as in [`exp_neg8_avx512`], the look-up as one gather, the scaling by the two
/// normal factors of the scalar code, built with the same integer operations.
///
/// # Safety
///
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(crate) unsafe fn exp_neg4_avx2(x: std::arch::x86_64::__m256d) -> std::arch::x86_64::__m256d {
    use std::arch::x86_64::*;
    let v = _mm256_set1_pd;
    // max(a, x) and min(a, x) return x when it is NaN (the second operand).
    let x = _mm256_min_pd(v(-MIN_ARG), _mm256_max_pd(v(-MAX_ARG), x));
    let t = _mm256_fnmadd_pd(x, v(SCALE), v(SHIFT));
    let kf = _mm256_sub_pd(t, v(SHIFT));
    let r = _mm256_fmadd_pd(kf, v(-LN2_16_LO), _mm256_fnmsub_pd(kf, v(LN2_16_HI), x));
    let r2 = _mm256_mul_pd(r, r);
    let q01 = _mm256_fmadd_pd(v(C[1]), r, v(C[0]));
    let q23 = _mm256_fmadd_pd(v(C[3]), r, v(C[2]));
    let q45 = _mm256_fmadd_pd(v(C[5]), r, v(C[4]));
    let q = _mm256_fmadd_pd(_mm256_fmadd_pd(q45, r2, q23), r2, q01);
    let p = _mm256_fmadd_pd(q, r2, r);
    let u = _mm256_sub_epi64(_mm256_castpd_si256(t), _mm256_set1_epi64x(SHIFT.to_bits() as i64 - (1 << 15)));
    // SAFETY: the indices are u mod 16 < 16 = TABLE.len().
    let tj = unsafe { _mm256_i64gather_pd::<8>(TABLE.as_ptr(), _mm256_and_si256(u, _mm256_set1_epi64x(15))) };
    let e = _mm256_fmadd_pd(tj, p, tj);
    let one = _mm256_set1_epi64x(1);
    let m = _mm256_srli_epi64::<4>(u);
    let h = _mm256_srli_epi64::<1>(m);
    let s1 = _mm256_castsi256_pd(_mm256_slli_epi64::<52>(_mm256_sub_epi64(h, one)));
    let s2 = _mm256_castsi256_pd(_mm256_slli_epi64::<52>(_mm256_sub_epi64(_mm256_sub_epi64(m, h), one)));
    _mm256_mul_pd(_mm256_mul_pd(e, s1), s2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fastexp::{Fused, Separate};
    use rand::{Rng, SeedableRng};
    use rand_pcg::Pcg64;

    /// Distance in units in the last place between two non-negative doubles.
    fn ulps(a: f64, b: f64) -> u64 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs()
    }

    /// Uniform points of the range, points near 0 (log-uniform in magnitude, both signs) and
    /// the edges of the reduction intervals, where the rounding of k changes.
    fn points() -> Vec<f64> {
        let mut rng = Pcg64::seed_from_u64(21);
        let mut xs: Vec<f64> = (0..1_000_000).map(|_| rng.random_range(-745.0..709.7)).collect();
        xs.extend((0..400_000).map(|_| {
            let m = 10f64.powf(-300.0 + 302.0 * rng.random::<f64>());
            if rng.random::<bool>() {
                m
            } else {
                -m
            }
        }));
        for k in -2000i32..=2000 {
            let edge = (k as f64 + 0.5) * std::f64::consts::LN_2 / 16.0;
            for s in [-2i64, -1, 0, 1, 2] {
                xs.push(f64::from_bits((edge.to_bits() as i64 + s) as u64));
            }
        }
        xs
    }

    #[test]
    fn within_two_ulp_of_libm_on_both_copies() {
        for x in points() {
            let want = x.exp();
            for (name, got) in [("separate", exp_with::<Separate>(x)), ("fused", exp_with::<Fused>(x))] {
                // The budget of the module docs: 2.3e-16 relative is at most 2 ulp.
                assert!(ulps(got, want) <= 2, "{name}: exp({x:e}) = {got:e}, libm {want:e}");
            }
        }
    }

    #[test]
    fn edges_subnormals_overflow_and_nan() {
        for f in [exp_with::<Separate> as fn(f64) -> f64, exp_with::<Fused>] {
            assert_eq!(f(0.0), 1.0);
            assert_eq!(f(-0.0), 1.0);
            assert_eq!(f(-1e-300), 1.0);
            assert_eq!(f(f64::NEG_INFINITY), 0.0);
            assert_eq!(f(-746.0), 0.0);
            assert_eq!(f(-1e300), 0.0);
            assert_eq!(f(-745.2), 0.0);
            assert_eq!(f(710.0), f64::INFINITY);
            assert_eq!(f(f64::INFINITY), f64::INFINITY);
            assert!(f(f64::NAN).is_nan());
            assert_eq!(f(1.0), std::f64::consts::E);
            for x in [-708.39, -708.4, -709.0, -720.0, -740.0, -744.44, -745.0, -745.13, 709.0, 709.78] {
                assert!(ulps(f(x), x.exp()) <= 2, "x = {x}: {:e} vs {:e}", f(x), x.exp());
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_avx512_and_avx2_lanes_give_the_bits_of_the_fused_scalar_code_at_minus_x() {
        use crate::fastexp::lanes_check;
        lanes_check::avx512(exp_neg8_avx512, |x| exp_with::<Fused>(-x), points());
        lanes_check::avx2(exp_neg4_avx2, |x| exp_with::<Fused>(-x), points());
    }

    #[test]
    fn the_table_is_two_to_the_j_over_16() {
        // Each entry within 1 ulp of libm's exp2 (itself within 1 ulp; the exact values were
        // rounded once), and entry 8 is sqrt(2) correctly rounded.
        for (j, t) in TABLE.iter().enumerate() {
            assert!(ulps(*t, (j as f64 / 16.0).exp2()) <= 1, "{j}");
        }
        assert_eq!(TABLE[8], std::f64::consts::SQRT_2);
    }
}
