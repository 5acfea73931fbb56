//! The adaptive-step driver: one loop for every embedded method.
//!
//! An [`EmbeddedStepper`] attempts a step and measures its error (an embedded Runge-Kutta pair,
//! DPM-Solver-12/23); a [`StepController`] turns the error into accept/reject and the next step
//! size; [`integrate_adaptive`] owns everything else, the same way for every method: the attempt
//! budget (`max_steps`), the too-small-step guard, landing on the end point, the counts, and on
//! each accepted step first the finiteness check of the new state, then the observer (the order
//! of [`crate::integrate_ode`]). An attempt whose error norm is not finite is rejected by the
//! controller (a smaller step may avoid the overflow); if the step size then collapses while the
//! last candidate held a NaN or infinity, the loop reports [`SolverError::NonFinite`] for the
//! step it was attempting rather than a too-small step.

use ndarray::{ArrayView2, ArrayViewMut2};

use crate::controller::StepController;
use crate::error::{Result, SolverError};
use crate::stepper::{check_finite, first_non_finite_row, StepInfo};

/// Counts of an adaptive solve.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AdaptiveStats {
    /// Accepted steps.
    pub accepted: usize,
    /// Rejected steps.
    pub rejected: usize,
}

/// One attempted step, in the stepper's own time variable.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trial {
    /// Start of the step.
    pub t0: f64,
    /// End of the step (exactly the end point on the last step).
    pub t1: f64,
    /// Signed step size (`t1 - t0` up to rounding; see [`Landing`]).
    pub h: f64,
}

/// A method with an embedded error estimate, for [`integrate_adaptive`].
///
/// Like [`crate::OdeStepper`], the stepper holds its configuration; whatever changes during a
/// solve (stage derivatives, FSAL stage, candidate, previous state) lives in `State`, allocated
/// once per solve by `init`.
pub trait EmbeddedStepper<S: ?Sized> {
    /// Per-solve workspace.
    type State;
    /// Order of the propagated solution.
    fn order(&self) -> u32;
    /// Order of the embedded (lower-order) solution used for the error estimate.
    fn embedded_order(&self) -> u32;
    /// System evaluations per attempted step (not counting `start` and `accepted`).
    fn evals_per_attempt(&self) -> usize;
    /// Allocates the workspace for an `rows x cols` batch.
    fn init(&self, rows: usize, cols: usize) -> Self::State;
    /// Prepares a solve from `(t0, x)` towards `t1` and returns the first step-size magnitude.
    fn start(&self, sys: &S, t0: f64, t1: f64, x: ArrayView2<f64>, state: &mut Self::State) -> Result<f64>;
    /// Attempts `trial` from `x`, leaves the candidate state in `state` and returns the error norm
    /// of the candidate (RMS over the batch; NaN or infinite when the trial was not finite).
    fn attempt(&self, sys: &S, trial: Trial, x: ArrayView2<f64>, state: &mut Self::State) -> Result<f64>;
    /// The candidate of the last attempt.
    fn candidate<'a>(&self, state: &'a Self::State) -> ArrayView2<'a, f64>;
    /// Called once the loop has copied the candidate into `x` (now at time `t`), checked it and
    /// reported it: prepares the next attempt (FSAL stage, previous state).
    fn accepted(&self, sys: &S, t: f64, x: ArrayView2<f64>, state: &mut Self::State) -> Result<()>;
    /// The time reported to observers and in errors for the stepper's time `t` (identity unless
    /// the stepper works in a transformed variable, such as lambda = -ln sigma).
    fn reported_time(&self, t: f64) -> f64 {
        t
    }
}

/// How the loop places the last step and decides that the end is reached.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Landing {
    /// The step is `h` exactly, except that a step within a relative 1e-12 of the rest becomes the
    /// rest and ends exactly at `t1`; the solve ends at `t1` (Hairer & Wanner's codes, torchdiffeq).
    Snap,
    /// The step ends at `t0 + h` clipped to `t1` and is their difference; the solve ends once
    /// within `end_tol` of `t1` (k-diffusion's `sample_dpm_adaptive`, `end_tol` = 1e-5).
    Clip {
        /// Distance to `t1` at which the solve counts as finished (finite, >= 0).
        end_tol: f64,
    },
}

impl Landing {
    fn done(self, t: f64, t1: f64, dir: f64) -> bool {
        match self {
            Self::Snap => (t1 - t) * dir <= 0.0,
            Self::Clip { end_tol } => dir * t >= dir * (t1 - dir * end_tol),
        }
    }

    /// The signed step and its end from `t` with step-size magnitude `h`.
    fn place(self, t: f64, h: f64, t1: f64, dir: f64) -> (f64, f64) {
        match self {
            Self::Snap => {
                let remaining = (t1 - t).abs();
                if h >= remaining * (1.0 - 1e-12) {
                    (remaining * dir, t1)
                } else {
                    let hs = h * dir;
                    (hs, t + hs)
                }
            }
            Self::Clip { .. } => {
                let t_new = if dir > 0.0 { t1.min(t + h) } else { t1.max(t - h) };
                (t_new - t, t_new)
            }
        }
    }
}

/// The interval of an adaptive solve (in the stepper's variable, either direction), the attempt
/// budget and the landing rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Span {
    /// Start.
    pub t0: f64,
    /// End (must differ from `t0`).
    pub t1: f64,
    /// Most attempted (accepted + rejected) steps.
    pub max_steps: usize,
    /// How the last step is placed.
    pub landing: Landing,
}

/// Consecutive rejected attempts after which an adaptive solve stops: each rejection shrinks the
/// step (by at least the controller's safety factor), so this many in a row means the error
/// estimate does not fall with the step: a non-finite system, or tolerances below round-off.
pub const MAX_CONSECUTIVE_REJECTIONS: usize = 64;

/// Integrates from `span.t0` to `span.t1` in place with `stepper`, step sizes from `controller`.
///
/// Each accepted step is checked for non-finite values (naming the step, its reported times and
/// the first bad row), then passed to `observer`. Errors: `MaxStepsExceeded` after
/// `span.max_steps` attempts; `StepSizeTooSmall` when a step falls to 16 ulp of the time (or the
/// controller proposes no positive size); `Rejected` after [`MAX_CONSECUTIVE_REJECTIONS`]
/// rejections in a row; `NonFinite` as described in the module docs (also when the last of those
/// rejections had a non-finite candidate).
pub fn integrate_adaptive<S, M, C>(
    stepper: &M,
    controller: &C,
    sys: &S,
    span: Span,
    mut x: ArrayViewMut2<f64>,
    observer: &mut dyn FnMut(StepInfo),
) -> Result<AdaptiveStats>
where
    S: ?Sized,
    M: EmbeddedStepper<S> + ?Sized,
    C: StepController + ?Sized,
{
    let Span { t0, t1, max_steps, landing } = span;
    for (name, v) in [("t0", t0), ("t1", t1)] {
        if !v.is_finite() {
            return Err(SolverError::InvalidParameter { name, value: v, expected: "must be finite" });
        }
    }
    if t0 == t1 {
        return Err(SolverError::InvalidParameter { name: "t1", value: t1, expected: "must differ from t0" });
    }
    if let Landing::Clip { end_tol } = landing {
        if !(end_tol.is_finite() && end_tol >= 0.0) {
            return Err(SolverError::InvalidParameter {
                name: "end_tol",
                value: end_tol,
                expected: "must be finite and >= 0",
            });
        }
    }
    let (rows, cols) = x.dim();
    let mut state = stepper.init(rows, cols);
    let mut h = stepper.start(sys, t0, t1, x.view(), &mut state)?;
    let mut judged = controller.init();
    let dir = (t1 - t0).signum();
    let rep = |t: f64| stepper.reported_time(t);
    let mut stats = AdaptiveStats::default();
    let mut t = t0;
    // End of the last attempt, and whether its error norm was not finite.
    let (mut tried, mut non_finite) = (t0, false);
    let mut rejections = 0;
    while !landing.done(t, t1, dir) {
        if stats.accepted + stats.rejected >= max_steps {
            return Err(SolverError::MaxStepsExceeded { max_steps, t: rep(t) });
        }
        let (hs, t_new) = landing.place(t, h, t1, dir);
        if !(h > 0.0 && hs.abs() > 16.0 * f64::EPSILON * t.abs().max(1.0)) {
            if non_finite {
                if let Some(row) = first_non_finite_row(stepper.candidate(&state)) {
                    return Err(SolverError::NonFinite { step: stats.accepted, t0: rep(t), t1: rep(tried), row });
                }
            }
            return Err(SolverError::StepSizeTooSmall { t: rep(t), h: hs.abs() });
        }
        let err = stepper.attempt(sys, Trial { t0: t, t1: t_new, h: hs }, x.view(), &mut state)?;
        (tried, non_finite) = (t_new, !err.is_finite());
        let verdict = controller.judge(&mut judged, err, h, hs.abs());
        h = verdict.next;
        rejections = if verdict.accept { 0 } else { rejections + 1 };
        if rejections >= MAX_CONSECUTIVE_REJECTIONS {
            if non_finite {
                if let Some(row) = first_non_finite_row(stepper.candidate(&state)) {
                    return Err(SolverError::NonFinite { step: stats.accepted, t0: rep(t), t1: rep(tried), row });
                }
            }
            return Err(SolverError::Rejected { count: rejections, t: rep(t), h: hs.abs() });
        }
        if verdict.accept {
            x.assign(&stepper.candidate(&state));
            let step = stats.accepted;
            check_finite(x.view(), step, rep(t), rep(t_new))?;
            observer(StepInfo { step, total: 0, t0: rep(t), t1: rep(t_new) });
            stats.accepted += 1;
            t = t_new;
            stepper.accepted(sys, t, x.view(), &mut state)?;
        } else {
            stats.rejected += 1;
        }
    }
    Ok(stats)
}
