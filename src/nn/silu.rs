//! SiLU, x / (1 + exp(-x)), over slices, vectorised: the activation of the fused inference path
//! ([`super::FusedMlp`]), where it is evaluated 7 x 64 times per row and would dominate the run
//! time with libm's scalar `exp`.
//!
//! The exponential is [`crate::fastexp`]'s (within 1 ulp), so the result is within a few ulp
//! of candle's `silu` (which uses libm). The loop has the mixture kernel's three copies
//! (AVX-512, AVX2 + FMA, portable; [`crate::fastexp::simd_path`] picks one): each gives the same
//! bits on every element whatever the slice length or alignment, the two fused copies the same
//! bits as each other. f32 slices are evaluated in f64 and rounded once. The AVX-512 copy takes
//! f64 slices eight values at a time through [`crate::fastexp::exp8_avx512`] (the same bits; its
//! scaling is one `vscalefpd`): 0.77 ns per SiLU against 0.89 ns for the same formula
//! vectorised by the compiler, on a Zen 4 in one run.

use super::real::Real;
#[cfg(target_arch = "x86_64")]
use crate::fastexp::exp8_avx512;
use crate::fastexp::{exp_with, Fused, MulAdd, Separate, SimdPath};

/// An element-wise function evaluated with `a * b + c` as `M` says.
pub(crate) trait Activation {
    /// The value at `x`.
    fn at<M: MulAdd>(x: f64) -> f64;
    /// Eight values at once, the bits of `at::<Fused>` on each lane.
    ///
    /// # Safety
    ///
    /// The CPU must support AVX-512F, AVX-512DQ, AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    unsafe fn eight(x: std::arch::x86_64::__m512d) -> std::arch::x86_64::__m512d;
}

/// SiLU, x / (1 + exp(-x)).
pub(crate) struct Silu;

/// The logistic sigmoid, 1 / (1 + exp(-x)) (training keeps it: SiLU is x sigma(x) and SiLU' is
/// sigma(x) (1 + x (1 - sigma(x)))).
pub(crate) struct Sigmoid;

impl Activation for Silu {
    #[inline(always)]
    fn at<M: MulAdd>(x: f64) -> f64 {
        x / (1.0 + exp_with::<M>(-x))
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn eight(x: std::arch::x86_64::__m512d) -> std::arch::x86_64::__m512d {
        use std::arch::x86_64::*;
        // SAFETY: the caller's CPU has the features `one_plus_exp_neg8` needs.
        unsafe { _mm512_div_pd(x, one_plus_exp_neg8(x)) }
    }
}

/// 1 + exp(-x) on eight lanes, -x by flipping the sign bit (as scalar negation does).
///
/// # Safety
///
/// The CPU must support AVX-512F, AVX-512DQ, AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn one_plus_exp_neg8(x: std::arch::x86_64::__m512d) -> std::arch::x86_64::__m512d {
    use std::arch::x86_64::*;
    // SAFETY: the caller's CPU has the features `exp8_avx512` needs.
    unsafe { _mm512_add_pd(_mm512_set1_pd(1.0), exp8_avx512(_mm512_xor_pd(x, _mm512_set1_pd(-0.0)))) }
}

impl Activation for Sigmoid {
    #[inline(always)]
    fn at<M: MulAdd>(x: f64) -> f64 {
        1.0 / (1.0 + exp_with::<M>(-x))
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn eight(x: std::arch::x86_64::__m512d) -> std::arch::x86_64::__m512d {
        use std::arch::x86_64::*;
        // SAFETY: the caller's CPU has the features `one_plus_exp_neg8` needs.
        unsafe { _mm512_div_pd(_mm512_set1_pd(1.0), one_plus_exp_neg8(x)) }
    }
}

#[inline(always)]
fn map_slice<A: Activation, M: MulAdd, T: Real>(src: &[T], dst: &mut [T]) {
    for (d, &x) in dst.iter_mut().zip(src) {
        *d = T::of(A::at::<M>(x.wide()));
    }
}

/// # Safety
///
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn map_avx2_fma<A: Activation, T: Real>(src: &[T], dst: &mut [T]) {
    map_slice::<A, Fused, T>(src, dst);
}

/// # Safety
///
/// The CPU must support AVX-512F, AVX-512DQ, AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx2,fma")]
unsafe fn map_avx512<A: Activation, T: Real>(src: &[T], dst: &mut [T]) {
    match (as_f64(src), as_f64_mut(dst)) {
        (Some(src), Some(dst)) => {
            let whole = src.len() / 8 * 8;
            for (d, s) in dst[..whole].chunks_exact_mut(8).zip(src[..whole].chunks_exact(8)) {
                // SAFETY: the chunks hold 8 values each; the CPU has AVX-512F (the contract).
                unsafe {
                    use std::arch::x86_64::*;
                    let y = A::eight(_mm512_loadu_pd(s.as_ptr()));
                    _mm512_storeu_pd(d.as_mut_ptr(), y);
                }
            }
            map_slice::<A, Fused, f64>(&src[whole..], &mut dst[whole..]);
        }
        _ => map_slice::<A, Fused, T>(src, dst),
    }
}

/// `s` as f64 values when `T` is f64.
#[cfg(target_arch = "x86_64")]
fn as_f64<T: Real>(s: &[T]) -> Option<&[f64]> {
    // SAFETY: T is f64.
    (std::any::TypeId::of::<T>() == std::any::TypeId::of::<f64>())
        .then(|| unsafe { std::slice::from_raw_parts(s.as_ptr().cast(), s.len()) })
}

/// `s` as f64 values when `T` is f64.
#[cfg(target_arch = "x86_64")]
fn as_f64_mut<T: Real>(s: &mut [T]) -> Option<&mut [f64]> {
    // SAFETY: T is f64; the result borrows `s`.
    (std::any::TypeId::of::<T>() == std::any::TypeId::of::<f64>())
        .then(|| unsafe { std::slice::from_raw_parts_mut(s.as_mut_ptr().cast(), s.len()) })
}

/// `dst[i] = silu(src[i])` for every `i` (the slices must have equal lengths).
pub(crate) fn silu_into<T: Real>(src: &[T], dst: &mut [T]) {
    map_on::<Silu, T>(crate::fastexp::simd_path(), src, dst);
}

/// `dst[i] = sigmoid(src[i])` for every `i` (the slices must have equal lengths).
pub(crate) fn sigmoid_into<T: Real>(src: &[T], dst: &mut [T]) {
    map_on::<Sigmoid, T>(crate::fastexp::simd_path(), src, dst);
}

/// `A` over the slice on the copy `path`.
fn map_on<A: Activation, T: Real>(path: SimdPath, src: &[T], dst: &mut [T]) {
    assert_eq!(src.len(), dst.len(), "activation: slices of different lengths");
    assert!(path.supported(), "the {} copy needs CPU features this CPU lacks", path.name());
    match path {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `map_avx512` requires AVX-512F/DQ, AVX2 and FMA, which `supported` checked.
        SimdPath::Avx512 => unsafe { map_avx512::<A, T>(src, dst) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `map_avx2_fma` requires AVX2 and FMA, which `supported` checked.
        SimdPath::Avx2Fma => unsafe { map_avx2_fma::<A, T>(src, dst) },
        _ => map_slice::<A, Separate, T>(src, dst),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(x: f64) -> f64 {
        x / (1.0 + (-x).exp())
    }

    #[test]
    fn every_copy_is_within_a_few_ulp_of_the_libm_formula_and_the_fused_ones_agree() {
        let xs: Vec<f64> = (0..20_001).map(|i| -50.0 + 100.0 * i as f64 / 20_000.0).collect();
        let mut fused: Option<Vec<f64>> = None;
        for path in SimdPath::supported_paths() {
            let mut ys = vec![0.0; xs.len()];
            map_on::<Silu, f64>(path, &xs, &mut ys);
            for (x, y) in xs.iter().zip(&ys) {
                let want = reference(*x);
                // exp within 1 ulp, then one addition and one division: 3 ulp of the result.
                let tol = 3.0 * f64::EPSILON * want.abs().max(f64::MIN_POSITIVE);
                assert!((y - want).abs() <= tol, "{}: {x}: {y} vs {want}", path.name());
            }
            if path != SimdPath::Portable {
                match &fused {
                    Some(f) => assert!(f.iter().zip(&ys).all(|(a, b)| a.to_bits() == b.to_bits()), "{}", path.name()),
                    None => fused = Some(ys),
                }
            }
        }
    }

    #[test]
    fn sigmoid_within_a_few_ulp_in_every_copy() {
        let xs: Vec<f64> = (0..20_001).map(|i| -700.0 + 1400.0 * i as f64 / 20_000.0).collect();
        for path in SimdPath::supported_paths() {
            let mut ys = vec![0.0; xs.len()];
            map_on::<Sigmoid, f64>(path, &xs, &mut ys);
            for (x, y) in xs.iter().zip(&ys) {
                let want = 1.0 / (1.0 + (-x).exp());
                assert!((y - want).abs() <= 3.0 * f64::EPSILON * want, "{}: {x}: {y} vs {want}", path.name());
            }
        }
    }

    #[test]
    fn extremes_and_nan() {
        let xs = [0.0, -0.0, 800.0, -800.0, f64::INFINITY, f64::NEG_INFINITY, f64::NAN];
        let mut ys = [1.0; 7];
        silu_into(&xs, &mut ys);
        assert_eq!(ys[0], 0.0);
        assert_eq!(ys[2], 800.0);
        assert_eq!(ys[3], 0.0);
        assert_eq!(ys[4], f64::INFINITY);
        // -inf / (1 + inf), as the libm formula (and candle) give.
        assert!(ys[5].is_nan() && reference(f64::NEG_INFINITY).is_nan());
        assert!(ys[6].is_nan());
    }

    #[test]
    fn one_element_or_a_slice_give_the_same_bits() {
        // Vectorised or not, every element is the same sequence of operations.
        let xs: Vec<f64> = (0..1001).map(|i| (i as f64 - 500.0) * 0.037).collect();
        let mut all = vec![0.0; xs.len()];
        silu_into(&xs, &mut all);
        for (i, x) in xs.iter().enumerate().step_by(7) {
            let mut one = [0.0];
            silu_into(&[*x], &mut one);
            assert_eq!(one[0].to_bits(), all[i].to_bits(), "{x}");
        }
    }
}
