//! Stepper traits and the integration loops.
//!
//! A stepper holds its configuration (`&self`); anything that changes from step to step (stage
//! buffers, multistep history) lives in its `State`, allocated once by `init` for the batch shape,
//! so the step loop does not allocate. The loops here are the only place that walks a grid,
//! checks the state for non-finite values (naming the step and times) and reports progress.

use ndarray::{Array2, ArrayView2, ArrayViewMut2};

use crate::error::{Result, SolverError};
use crate::grid::TimeGrid;
use crate::noise::{Draw, NoiseSource};

/// A fixed-step method for an ODE described by the system type `S`.
///
/// A stepper is bounded on what it needs of the system (here [`crate::OdeSystem`] for Runge-Kutta
/// methods); [`integrate_ode`] walks the grid. Heun on dx/dt = -x from t = 0 to 1:
///
/// ```
/// use ndarray::{array, ArrayView2, ArrayViewMut2};
/// use scoresde_solvers::rk::tableau;
/// use scoresde_solvers::{integrate_ode, no_observer, ExplicitRk, OdeSystem, TimeGrid};
///
/// struct Decay;
/// impl OdeSystem for Decay {
///     fn rhs(&self, _t: f64, x: ArrayView2<f64>, mut out: ArrayViewMut2<f64>) -> scoresde_solvers::Result<()> {
///         out.assign(&x.mapv(|v| -v));
///         Ok(())
///     }
/// }
///
/// let mut x = array![[1.0]];
/// let grid = TimeGrid::uniform(0.0, 1.0, 100)?;
/// integrate_ode(&ExplicitRk::new(tableau::HEUN), &Decay, &grid, x.view_mut(), &mut no_observer)?;
/// assert!((x[[0, 0]] - (-1.0f64).exp()).abs() < 1e-5); // second order: error ~ h^2 / 6
/// # Ok::<(), scoresde_solvers::SolverError>(())
/// ```
pub trait OdeStepper<S: ?Sized> {
    /// Per-solve workspace and history.
    type State;
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
    /// Standard-normal draws the step needs besides its main draw (the increment), e.g. the
    /// moves of a Langevin corrector; they come from the same [`NoiseSource`] (see
    /// [`crate::noise::Draw`] for their keys).
    fn extra_draws(&self) -> usize {
        0
    }
    /// Allocates the workspace for an `rows x cols` batch.
    fn init(&self, rows: usize, cols: usize) -> Self::State;
    /// Advances `x` from `at.t0` to `at.t1` in place, given the step's standard normals.
    fn step(
        &self,
        sys: &S,
        at: StepInfo,
        x: ArrayViewMut2<f64>,
        noise: &StepNoise<'_>,
        state: &mut Self::State,
    ) -> Result<()>;
}

/// The standard normals of one step: its main draw and the stepper's extra draws, in order.
#[derive(Debug, Clone, Copy)]
pub struct StepNoise<'a> {
    main: ArrayView2<'a, f64>,
    extras: &'a [Array2<f64>],
}

impl<'a> StepNoise<'a> {
    /// The normals of a step with main draw `main` and extra draws `extras`.
    pub fn new(main: ArrayView2<'a, f64>, extras: &'a [Array2<f64>]) -> Self {
        Self { main, extras }
    }
    /// The main draw (N x d).
    pub fn main(&self) -> ArrayView2<'a, f64> {
        self.main
    }
    /// Extra draw `j` (N x d). Panics if the stepper asks for more than its `extra_draws`.
    pub fn extra(&self, j: usize) -> ArrayView2<'a, f64> {
        self.extras[j].view()
    }
    /// The extra draws from `j` on (for a stepper that hands the rest to an inner stepper).
    pub fn extras_from(&self, j: usize) -> &'a [Array2<f64>] {
        &self.extras[j.min(self.extras.len())..]
    }
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

/// Integrates an SDE over every interval of `grid`, in place, with the standard normals of `noise`:
/// per step its main draw and then the stepper's extra draws.
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
    let mut z = Array2::<f64>::zeros((rows, cols));
    let extras = stepper.extra_draws();
    let mut extra: Vec<Array2<f64>> = (0..extras).map(|_| Array2::zeros((rows, cols))).collect();
    let total = grid.steps();
    for (step, (t0, t1)) in grid.intervals().enumerate() {
        let draw = Draw::main(step, total, extras, t0, t1);
        noise.normals(&draw, z.view_mut())?;
        for (j, e) in extra.iter_mut().enumerate() {
            noise.normals(&draw.extra(j), e.view_mut())?;
        }
        let at = StepInfo { step, total, t0, t1 };
        stepper.step(sys, at, x.view_mut(), &StepNoise::new(z.view(), &extra), &mut state)?;
        check_finite(x.view(), step, t0, t1)?;
        observer(at);
    }
    Ok(())
}
