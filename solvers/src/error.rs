//! Errors of the generic numerics.
//!
//! Every variant names the quantity and the value that was wrong, so that a caller (and the CLI)
//! can say exactly which input to fix.

/// Everything that can go wrong while building a grid or integrating a system.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SolverError {
    /// A grid with fewer than two points has no step.
    #[error("grid has {len} point(s): needs at least 2")]
    GridTooShort {
        /// Number of points given.
        len: usize,
    },
    /// A grid point that is NaN or infinite.
    #[error("grid[{index}] = {value}: must be finite")]
    NonFiniteGrid {
        /// Index of the point.
        index: usize,
        /// The point.
        value: f64,
    },
    /// A grid that is not strictly monotone.
    #[error("grid[{index}] = {next} after grid[{prev_index}] = {prev}: grid must be strictly monotone in one direction", prev_index = index - 1)]
    NonMonotoneGrid {
        /// Index of the offending point.
        index: usize,
        /// The point before it.
        prev: f64,
        /// The offending point.
        next: f64,
    },
    /// A solver parameter outside its admissible range.
    #[error("{name} = {}: {expected}", Num(*value))]
    InvalidParameter {
        /// Name of the parameter (`rtol`, `steps`, ...).
        name: &'static str,
        /// The offending value.
        value: f64,
        /// What would have been accepted.
        expected: &'static str,
    },
    /// Array sizes that do not agree.
    #[error("{what}: expected {expected}, found {found}")]
    DimensionMismatch {
        /// What was compared.
        what: &'static str,
        /// Expected size.
        expected: usize,
        /// Size found.
        found: usize,
    },
    /// The state became NaN or infinite.
    #[error("non-finite state after step {step} (t {t0} -> {t1}), sample row {row}")]
    NonFinite {
        /// 0-based index of the step that produced it.
        step: usize,
        /// Start of that step.
        t0: f64,
        /// End of that step, where the bad value appeared.
        t1: f64,
        /// First row holding a non-finite value.
        row: usize,
    },
    /// An adaptive solve whose step size collapsed.
    #[error("step size {h:e} at t = {t} is below the minimum: the problem is too stiff for rtol/atol")]
    StepSizeTooSmall {
        /// Where it happened.
        t: f64,
        /// The rejected step size.
        h: f64,
    },
    /// An adaptive solve whose steps were rejected too many times in a row.
    #[error("{count} consecutive steps rejected at t = {t} (last size {h:e}): the error estimate does not fall with the step")]
    Rejected {
        /// Rejections in a row.
        count: usize,
        /// Where the solve stood.
        t: f64,
        /// The last step size tried.
        h: f64,
    },
    /// An adaptive solve that needed more steps than allowed.
    #[error("adaptive solve took more than max_steps = {max_steps} steps and stopped at t = {t}")]
    MaxStepsExceeded {
        /// The limit.
        max_steps: usize,
        /// Where the solve stopped.
        t: f64,
    },
    /// Not enough noise for the requested steps.
    #[error("noise has {available} steps but the grid needs {needed}")]
    NoiseExhausted {
        /// Steps of noise available.
        available: usize,
        /// Steps needed.
        needed: usize,
    },
    /// The system being integrated failed (for example a score network).
    #[error("system evaluation at t = {t}: {source}")]
    System {
        /// Where it was evaluated.
        t: f64,
        /// What failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// A number as error messages print it: plain where that is short (`-1`, `0.16`, `NaN`), in
/// exponent form where plain would be long (`1e300`, `2.5e-9`): Rust's `Display` writes every
/// digit of 1e300.
#[derive(Debug, Clone, Copy)]
pub struct Num(pub f64);

impl std::fmt::Display for Num {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = self.0;
        if v == 0.0 || !v.is_finite() || (1e-5..1e16).contains(&v.abs()) {
            write!(f, "{v}")
        } else {
            write!(f, "{v:e}")
        }
    }
}

/// Result alias of the crate.
pub type Result<T> = std::result::Result<T, SolverError>;

/// Checks that every `(name, value)` is finite and >= 0 (noise scales, churn).
pub fn check_nonnegative(params: &[(&'static str, f64)]) -> Result<()> {
    for &(name, value) in params {
        if !(value.is_finite() && value >= 0.0) {
            return Err(SolverError::InvalidParameter { name, value, expected: "must be finite and >= 0" });
        }
    }
    Ok(())
}
