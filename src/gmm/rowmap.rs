//! What the kernel's output pass writes per value, and the branch-free finiteness test: shared by
//! the kernel and its AVX tiles, and importing neither.

/// What the output pass writes per element, with `v = scale acc[i B + b]` and
/// `x = xs[i B + b]` (evaluated as written: separate multiplies and adds, as the unfused callers
/// would).
#[derive(Clone, Copy)]
pub(crate) enum RowMap {
    /// `v`.
    Scaled(f64),
    /// `a x + c v`: `(scale, a, c)`.
    Affine(f64, f64, f64),
    /// `x + h (a x + c v)`: `(scale, a, c, h)`.
    Update(f64, f64, f64, f64),
}

impl RowMap {
    #[inline(always)]
    pub(crate) fn apply(self, x: f64, acc: f64) -> f64 {
        match self {
            RowMap::Scaled(scale) => scale * acc,
            RowMap::Affine(scale, a, c) => a * x + c * (scale * acc),
            RowMap::Update(scale, a, c, h) => x + h * (a * x + c * (scale * acc)),
        }
    }
}

/// The exponent bits of an `f64`: all set for infinities and NaN only.
pub(crate) const EXPONENT: u64 = 0x7ff0_0000_0000_0000;

/// 1 if `v` is infinite or NaN, else 0: a branch-free test, so that the loops that check every
/// value they write still vectorise.
#[inline(always)]
pub(crate) fn non_finite(v: f64) -> u64 {
    u64::from(v.to_bits() & EXPONENT == EXPONENT)
}
