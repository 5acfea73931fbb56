//! Element-wise passes over `N x d` batches, split over rows in parallel for large batches.
//!
//! Why this module exists: with a fast score model, the solver's own passes over the state
//! (axpy updates, the drift's affine map, the non-finite check, fresh noise) are a visible share
//! of a step, and run on one thread they leave the others idle. Each pass here is element-wise
//! (or row-wise), so splitting it changes no result: outputs are bit-identical for any thread
//! count. Batches under [`PAR_MIN`] elements, or not contiguous in memory, run serially.

use ndarray::{ArrayView2, ArrayViewMut2, Zip};
use rayon::prelude::*;

/// Smallest batch (in elements) split across threads.
pub const PAR_MIN: usize = 1 << 15;
/// Elements per parallel piece.
const PIECE: usize = 1 << 13;

/// `f(out_ij, x_ij)` for every element.
pub fn zip_mut<F>(mut out: ArrayViewMut2<f64>, x: ArrayView2<f64>, f: F)
where
    F: Fn(&mut f64, f64) + Sync + Send,
{
    assert_eq!(out.dim(), x.dim(), "zip_mut: shapes differ");
    if out.len() >= PAR_MIN {
        if let (Some(o), Some(xs)) = (out.as_slice_mut(), x.as_slice()) {
            o.par_chunks_mut(PIECE).zip(xs.par_chunks(PIECE)).for_each(|(o, xs)| {
                o.iter_mut().zip(xs).for_each(|(o, &x)| f(o, x));
            });
            return;
        }
    }
    Zip::from(out).and(x).for_each(|o, &x| f(o, x));
}

/// `f(out_ij, a_ij, b_ij)` for every element.
pub fn zip3_mut<F>(mut out: ArrayViewMut2<f64>, a: ArrayView2<f64>, b: ArrayView2<f64>, f: F)
where
    F: Fn(&mut f64, f64, f64) + Sync + Send,
{
    assert_eq!(out.dim(), a.dim(), "zip3_mut: shapes differ");
    assert_eq!(out.dim(), b.dim(), "zip3_mut: shapes differ");
    if out.len() >= PAR_MIN {
        if let (Some(o), Some(aa), Some(bb)) = (out.as_slice_mut(), a.as_slice(), b.as_slice()) {
            o.par_chunks_mut(PIECE).zip(aa.par_chunks(PIECE)).zip(bb.par_chunks(PIECE)).for_each(|((o, aa), bb)| {
                o.iter_mut().zip(aa).zip(bb).for_each(|((o, &a), &b)| f(o, a, b));
            });
            return;
        }
    }
    Zip::from(out).and(a).and(b).for_each(|o, &a, &b| f(o, a, b));
}

/// `x += alpha * y` (as `ndarray`'s `scaled_add`, element by element).
pub fn scaled_add(x: ArrayViewMut2<f64>, alpha: f64, y: ArrayView2<f64>) {
    zip_mut(x, y, |x, y| *x += alpha * y);
}

/// Whether any value is NaN or infinite: a branch-free scan (vectorised) of contiguous pieces,
/// in parallel for large batches. `None` when `x` is not contiguous (the caller searches rows).
pub(crate) fn any_non_finite(x: ArrayView2<f64>) -> Option<bool> {
    let flat = x.as_slice_memory_order()?;
    let piece = |values: &[f64]| {
        const EXPONENT: u64 = 0x7ff0_0000_0000_0000;
        values.iter().fold(0u64, |acc, v| acc | u64::from(v.to_bits() & EXPONENT == EXPONENT)) != 0
    };
    Some(if flat.len() >= PAR_MIN { flat.par_chunks(PIECE).any(piece) } else { flat.chunks(PIECE).any(piece) })
}
