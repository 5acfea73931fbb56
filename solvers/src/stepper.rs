//! Stepper traits and the integration loops.
//!
//! A stepper holds its configuration (`&self`); anything that changes from step to step (stage
//! buffers, multistep history) lives in its `State`, allocated once by `init` for the batch shape,
//! so the step loop does not allocate. The loops here are the only place that walks a grid,
//! checks the state for non-finite values (naming the step and times) and reports progress.

use ndarray::{ArrayView2, ArrayViewMut2};

use crate::error::{Result, SolverError};
use crate::grid::TimeGrid;
use crate::noise::NoiseSource;

/// A fixed-step method for an ODE described by the system type `S`.
pub trait OdeStepper<S: ?Sized> {
    /// Per-solve workspace and history.
    type State;
    /// Classical order of convergence.
    fn order(&self) -> u32;
    /// System evaluations per (regular) step.
    fn evals_per_step(&self) -> usize;
    /// Allocates the workspace for an `rows x cols` batch.
    fn init(&self, rows: usize, cols: usize) -> Self::State;
    /// Advances `x` from `at.t0` to `at.t1` in place (`at.step` of `at.total`: multistep methods
    /// and per-step order schedules need to know where they are).
    fn step(&self, sys: &S, at: StepInfo, x: ArrayViewMut2<f64>, state: &mut Self::State) -> Result<()>;
    /// Whether the last step already checked the new state to be finite (a fused update that
    /// tested each value as it wrote it); the integration loop scans the state otherwise.
    fn checked_finite(&self, state: &Self::State) -> bool {
        let _ = state;
        false
    }
}

/// A fixed-step method for an SDE described by the system type `S`.
pub trait SdeStepper<S: ?Sized> {
    /// Per-solve workspace.
    type State;
    /// Strong order for additive noise.
    fn strong_order(&self) -> f64;
    /// Weak order.
    fn weak_order(&self) -> f64;
    /// System evaluations per step.
    fn evals_per_step(&self) -> usize;
    /// Allocates the workspace for an `rows x cols` batch.
    fn init(&self, rows: usize, cols: usize) -> Self::State;
    /// Advances `x` from `at.t0` to `at.t1` in place, given the step's fresh standard normals `z`.
    fn step(
        &self,
        sys: &S,
        at: StepInfo,
        x: ArrayViewMut2<f64>,
        z: ArrayView2<f64>,
        state: &mut Self::State,
    ) -> Result<()>;
}

/// What the integration loop tells an observer after each step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepInfo {
    /// 0-based step index.
    pub step: usize,
    /// Number of steps in the solve (for adaptive solves: an estimate, 0 if unknown).
    pub total: usize,
    /// Start of the step.
    pub t0: f64,
    /// End of the step.
    pub t1: f64,
}

/// An observer that ignores every step.
pub fn no_observer(_: StepInfo) {}

/// Returns the first row of `x` holding a NaN or infinity.
pub fn first_non_finite_row(x: ArrayView2<f64>) -> Option<usize> {
    // Every step checks the whole state: a fast scan first, the row-by-row search only where it
    // found something (or where the state is not contiguous).
    if crate::par::any_non_finite(x) == Some(false) {
        return None;
    }
    x.outer_iter().position(|r| r.iter().any(|v| !v.is_finite()))
}

pub(crate) fn check_finite(x: ArrayView2<f64>, step: usize, t0: f64, t1: f64) -> Result<()> {
    match first_non_finite_row(x) {
        Some(row) => Err(SolverError::NonFinite { step, t0, t1, row }),
        None => Ok(()),
    }
}

/// Integrates an ODE over every interval of `grid`, in place.
pub fn integrate_ode<S, M>(
    stepper: &M,
    sys: &S,
    grid: &TimeGrid,
    mut x: ArrayViewMut2<f64>,
    observer: &mut dyn FnMut(StepInfo),
) -> Result<()>
where
    S: ?Sized,
    M: OdeStepper<S> + ?Sized,
{
    let (rows, cols) = x.dim();
    let mut state = stepper.init(rows, cols);
    let total = grid.steps();
    for (step, (t0, t1)) in grid.intervals().enumerate() {
        let at = StepInfo { step, total, t0, t1 };
        stepper.step(sys, at, x.view_mut(), &mut state)?;
        if !stepper.checked_finite(&state) {
            check_finite(x.view(), step, t0, t1)?;
        }
        observer(at);
    }
    Ok(())
}

/// Integrates an SDE over every interval of `grid`, in place, with the standard normals of `noise`.
pub fn integrate_sde<S, M, B>(
    stepper: &M,
    sys: &S,
    grid: &TimeGrid,
    mut x: ArrayViewMut2<f64>,
    noise: &mut B,
    observer: &mut dyn FnMut(StepInfo),
) -> Result<()>
where
    S: ?Sized,
    M: SdeStepper<S> + ?Sized,
    B: NoiseSource + ?Sized,
{
    let (rows, cols) = x.dim();
    let mut state = stepper.init(rows, cols);
    let mut z = ndarray::Array2::<f64>::zeros((rows, cols));
    let total = grid.steps();
    for (step, (t0, t1)) in grid.intervals().enumerate() {
        noise.normals(step, z.view_mut())?;
        let at = StepInfo { step, total, t0, t1 };
        stepper.step(sys, at, x.view_mut(), z.view(), &mut state)?;
        check_finite(x.view(), step, t0, t1)?;
        observer(at);
    }
    Ok(())
}
