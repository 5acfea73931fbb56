//! The floating-point types the fused network runs in: f64 (the default, like the rest of the
//! numerics) and f32 (what networks are trained and sampled in elsewhere; `--dtype f32`).
//!
//! The fused forward and backward passes are generic over [`Real`]; the data, the loss weights,
//! the noise levels and the optimizer's state stay f64 (an f32 network keeps f64 master weights
//! and Adam moments, as mixed-precision training keeps its master copy one precision up), and
//! the activations are evaluated through the f64 `exp` and rounded once.

use std::cell::RefCell;
use std::fmt::Debug;
use std::ops::{Add, AddAssign, Div, Mul, MulAssign, Neg, Sub};

use serde::{Deserialize, Serialize};

/// The precision a network computes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetDtype {
    /// Double precision (the default).
    #[default]
    F64,
    /// Single precision.
    F32,
}

impl NetDtype {
    /// The name on the command line and in checkpoints.
    pub fn name(self) -> &'static str {
        match self {
            Self::F64 => "f64",
            Self::F32 => "f32",
        }
    }
}

/// f32 or f64 in the fused network.
pub trait Real:
    Copy
    + Default
    + Debug
    + PartialEq
    + Send
    + Sync
    + 'static
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + MulAssign
{
    /// `v` rounded to this type.
    fn of(v: f64) -> Self;
    /// The value as f64 (exact).
    fn wide(self) -> f64;
    /// Runs `f` on this thread's scratch buffer of this type (grown by the callee as needed,
    /// kept between calls). Callers must not nest.
    fn with_scratch<R>(f: impl FnOnce(&mut Vec<Self>) -> R) -> R;
}

thread_local! {
    static SCRATCH64: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
    static SCRATCH32: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

impl Real for f64 {
    #[inline(always)]
    fn of(v: f64) -> Self {
        v
    }
    #[inline(always)]
    fn wide(self) -> f64 {
        self
    }
    fn with_scratch<R>(f: impl FnOnce(&mut Vec<Self>) -> R) -> R {
        SCRATCH64.with_borrow_mut(f)
    }
}

impl Real for f32 {
    #[inline(always)]
    fn of(v: f64) -> Self {
        v as f32
    }
    #[inline(always)]
    fn wide(self) -> f64 {
        self as f64
    }
    fn with_scratch<R>(f: impl FnOnce(&mut Vec<Self>) -> R) -> R {
        SCRATCH32.with_borrow_mut(f)
    }
}
