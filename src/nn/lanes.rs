//! Vectors of f64 lanes for the activations' fused copies ([`super::silu`]): how a copy loads
//! a slice of f64 or f32 values, adds, divides, and takes `exp(-x)` ([`crate::tablexp`]), so
//! that one loop serves the AVX-512 (8 lanes) and the AVX2 + FMA (4 lanes) copies.
//!
//! Every method is `#[inline(always)]` and is called only from functions compiled with the
//! copy's target features (`silu.rs`'s entry points), into which it is inlined.

use std::arch::x86_64::*;

use super::real::Real;
use crate::tablexp::{exp_neg4_avx2, exp_neg8_avx512};

/// A vector width: its register type and the operations the activations need on it. Each lane
/// gives the bits of the scalar fused code on that value.
pub(super) trait Lanes {
    /// The register.
    type V: Copy;
    /// Its lanes.
    const N: usize;
    /// The first `N` values of `s` (f32 values widened, exactly).
    ///
    /// # Safety
    ///
    /// `s` holds at least `N` values; the CPU has the copy's features.
    unsafe fn load<T: Real>(s: &[T]) -> Self::V;
    /// The lanes into the first `N` values of `d` (rounded once to f32 when `T` is f32, as
    /// `T::of` rounds).
    ///
    /// # Safety
    ///
    /// As [`Lanes::load`], for `d`.
    unsafe fn store<T: Real>(d: &mut [T], y: Self::V);
    /// `v` on every lane.
    ///
    /// # Safety
    ///
    /// The CPU has the copy's features.
    unsafe fn splat(v: f64) -> Self::V;
    /// `a + b`.
    ///
    /// # Safety
    ///
    /// The CPU has the copy's features.
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    /// `a / b`.
    ///
    /// # Safety
    ///
    /// The CPU has the copy's features.
    unsafe fn div(a: Self::V, b: Self::V) -> Self::V;
    /// `exp(-x)`, the bits of `tablexp::exp_with::<Fused>(-x)`.
    ///
    /// # Safety
    ///
    /// The CPU has the copy's features.
    unsafe fn exp_neg(x: Self::V) -> Self::V;
}

/// Whether `T` is f64 (the other `Real` is f32).
fn is_f64<T: Real>() -> bool {
    std::any::TypeId::of::<T>() == std::any::TypeId::of::<f64>()
}

/// Eight lanes: AVX-512F/DQ with AVX2 and FMA.
pub(super) struct Avx512;

/// Four lanes: AVX2 and FMA.
pub(super) struct Avx2;

impl Lanes for Avx512 {
    type V = __m512d;
    const N: usize = 8;
    #[inline(always)]
    unsafe fn load<T: Real>(s: &[T]) -> __m512d {
        debug_assert!(s.len() >= 8);
        // SAFETY: 8 values of T (f64 or f32, the only two `Real`s) at s (the contract).
        unsafe {
            if is_f64::<T>() {
                _mm512_loadu_pd(s.as_ptr().cast())
            } else {
                _mm512_cvtps_pd(_mm256_loadu_ps(s.as_ptr().cast()))
            }
        }
    }
    #[inline(always)]
    unsafe fn store<T: Real>(d: &mut [T], y: __m512d) {
        debug_assert!(d.len() >= 8);
        // SAFETY: room for 8 values of T at d (the contract).
        unsafe {
            if is_f64::<T>() {
                _mm512_storeu_pd(d.as_mut_ptr().cast(), y)
            } else {
                _mm256_storeu_ps(d.as_mut_ptr().cast(), _mm512_cvtpd_ps(y))
            }
        }
    }
    #[inline(always)]
    unsafe fn splat(v: f64) -> __m512d {
        // SAFETY: the CPU has AVX-512F (the contract).
        unsafe { _mm512_set1_pd(v) }
    }
    #[inline(always)]
    unsafe fn add(a: __m512d, b: __m512d) -> __m512d {
        // SAFETY: as `splat`.
        unsafe { _mm512_add_pd(a, b) }
    }
    #[inline(always)]
    unsafe fn div(a: __m512d, b: __m512d) -> __m512d {
        // SAFETY: as `splat`.
        unsafe { _mm512_div_pd(a, b) }
    }
    #[inline(always)]
    unsafe fn exp_neg(x: __m512d) -> __m512d {
        // SAFETY: the CPU has the features `exp_neg8_avx512` needs (the contract).
        unsafe { exp_neg8_avx512(x) }
    }
}

impl Lanes for Avx2 {
    type V = __m256d;
    const N: usize = 4;
    #[inline(always)]
    unsafe fn load<T: Real>(s: &[T]) -> __m256d {
        debug_assert!(s.len() >= 4);
        // SAFETY: 4 values of T (f64 or f32) at s (the contract).
        unsafe {
            if is_f64::<T>() {
                _mm256_loadu_pd(s.as_ptr().cast())
            } else {
                _mm256_cvtps_pd(_mm_loadu_ps(s.as_ptr().cast()))
            }
        }
    }
    #[inline(always)]
    unsafe fn store<T: Real>(d: &mut [T], y: __m256d) {
        debug_assert!(d.len() >= 4);
        // SAFETY: room for 4 values of T at d (the contract).
        unsafe {
            if is_f64::<T>() {
                _mm256_storeu_pd(d.as_mut_ptr().cast(), y)
            } else {
                _mm_storeu_ps(d.as_mut_ptr().cast(), _mm256_cvtpd_ps(y))
            }
        }
    }
    #[inline(always)]
    unsafe fn splat(v: f64) -> __m256d {
        // SAFETY: the CPU has AVX (the contract).
        unsafe { _mm256_set1_pd(v) }
    }
    #[inline(always)]
    unsafe fn add(a: __m256d, b: __m256d) -> __m256d {
        // SAFETY: as `splat`.
        unsafe { _mm256_add_pd(a, b) }
    }
    #[inline(always)]
    unsafe fn div(a: __m256d, b: __m256d) -> __m256d {
        // SAFETY: as `splat`.
        unsafe { _mm256_div_pd(a, b) }
    }
    #[inline(always)]
    unsafe fn exp_neg(x: __m256d) -> __m256d {
        // SAFETY: the CPU has the features `exp_neg4_avx2` needs (the contract).
        unsafe { exp_neg4_avx2(x) }
    }
}
