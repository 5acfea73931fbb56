//! Process-aware time grids: where a fixed-step sampler places its steps.
//!
//! The schedule matters as much as the solver (EDM, section 3): a uniform grid in t wastes steps
//! at high noise for VP, a log-SNR-uniform grid suits exponential integrators, Karras' rho-grid
//! concentrates steps at low noise. Each schedule is computed in its natural variable and then
//! expressed in the variable the solver steps in ([`Space`]).

use scoresde_solvers::TimeGrid;

use crate::error::{Result, ScoreError};
use crate::process::ForwardProcess;

/// The variable a probability-flow solver steps in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Space {
    /// Process time t, state x.
    Time,
    /// EDM's sigma~ = sigma / alpha, state x~ = x / alpha.
    SigmaTilde,
}

/// How the steps of a fixed grid are spaced between t_start and t_end.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Schedule {
    /// Uniform in t (score_sde).
    UniformT,
    /// Uniform in the half log-SNR lambda (DPM-Solver's `logSNR`).
    LogSnr,
    /// Uniform in sqrt(t) (DPM-Solver's `time_quadratic`).
    Quadratic,
    /// Karras et al. (2022) eq. 5: uniform in sigma~^(1/rho) (rho = 7 in EDM).
    Karras {
        /// The exponent rho > 0.
        rho: f64,
    },
}

/// Checks that t lies in the process's domain [0, T].
pub fn check_time(process: &dyn ForwardProcess, name: &str, t: f64) -> Result<()> {
    if t.is_finite() && (0.0..=process.t_max()).contains(&t) {
        Ok(())
    } else {
        Err(ScoreError::InvalidParameter {
            name: name.to_string(),
            value: t,
            expected: "must lie in the process's time domain [0, T]",
        })
    }
}

/// Checks a grid against the domain of its space: t in [0, T], or sigma~ >= 0.
pub fn check_grid(
    process: &dyn ForwardProcess,
    grid: &TimeGrid,
    space: Space,
    name: &str,
) -> Result<()> {
    for (i, &v) in grid.points().iter().enumerate() {
        match space {
            Space::Time => check_time(process, &format!("{name}[{i}]"), v)?,
            Space::SigmaTilde if v < 0.0 => {
                return Err(ScoreError::InvalidParameter {
                    name: format!("{name}[{i}]"),
                    value: v,
                    expected: "sigma levels must be >= 0",
                })
            }
            Space::SigmaTilde => {}
        }
    }
    Ok(())
}

/// Builds a grid of `steps` steps from `t_start` to `t_end` (times of the process), spaced by
/// `schedule`, expressed in `space`.
pub fn build_grid(
    process: &dyn ForwardProcess,
    schedule: Schedule,
    steps: usize,
    t_start: f64,
    t_end: f64,
    space: Space,
) -> Result<TimeGrid> {
    if steps == 0 {
        return Err(ScoreError::InvalidParameter {
            name: "steps".into(),
            value: 0.0,
            expected: "must be at least 1",
        });
    }
    check_time(process, "t_start", t_start)?;
    check_time(process, "t_end", t_end)?;
    if t_end >= t_start {
        return Err(ScoreError::InvalidParameter {
            name: "t_end".into(),
            value: t_end,
            expected: "must be smaller than t_start",
        });
    }
    let n = steps as f64;
    let frac = |i: usize| i as f64 / n;
    let lerp = |a: f64, b: f64, i: usize| if i == steps { b } else { a + (b - a) * frac(i) };
    let to_space = |t: f64| match space {
        Space::Time => t,
        Space::SigmaTilde => process.sigma_tilde(t),
    };
    let points: Vec<f64> = match schedule {
        Schedule::UniformT => (0..=steps)
            .map(|i| to_space(lerp(t_start, t_end, i)))
            .collect(),
        Schedule::Quadratic => {
            let (a, b) = (t_start.sqrt(), t_end.sqrt());
            (0..=steps)
                .map(|i| {
                    to_space(if i == steps {
                        t_end
                    } else {
                        lerp(a, b, i).powi(2)
                    })
                })
                .collect()
        }
        Schedule::LogSnr => {
            let (a, b) = (process.log_snr(t_start), process.log_snr(t_end));
            (0..=steps)
                .map(|i| match (i, space) {
                    (0, _) => to_space(t_start),
                    (i, _) if i == steps => to_space(t_end),
                    (i, Space::Time) => process.t_from_log_snr(lerp(a, b, i)),
                    (i, Space::SigmaTilde) => (-lerp(a, b, i)).exp(),
                })
                .collect()
        }
        Schedule::Karras { rho } => {
            if !(rho.is_finite() && rho > 0.0) {
                return Err(ScoreError::InvalidParameter {
                    name: "rho".into(),
                    value: rho,
                    expected: "must be positive and finite",
                });
            }
            let (smax, smin) = (process.sigma_tilde(t_start), process.sigma_tilde(t_end));
            let (a, b) = (smax.powf(1.0 / rho), smin.powf(1.0 / rho));
            (0..=steps)
                .map(|i| match (i, space) {
                    (0, _) => to_space(t_start),
                    (i, _) if i == steps => to_space(t_end),
                    (i, Space::Time) => process.t_from_sigma_tilde(lerp(a, b, i).powf(rho)),
                    (i, Space::SigmaTilde) => lerp(a, b, i).powf(rho),
                })
                .collect()
        }
    };
    Ok(TimeGrid::new(points)?)
}
