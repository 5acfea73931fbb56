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

/// Checks that t lies in the process's domain [t_min, T] (t_min = 0, or -1 for the discrete
/// chain).
pub fn check_time(process: &dyn ForwardProcess, name: &str, t: f64) -> Result<()> {
    if t.is_finite() && (process.t_min()..=process.t_max()).contains(&t) {
        Ok(())
    } else {
        Err(ScoreError::InvalidParameter {
            name: name.to_string(),
            value: t,
            expected: if process.t_min() == 0.0 {
                "must lie in the process's time domain [0, T]"
            } else {
                "must lie in the process's time domain [-1, T] (-1 is the data, alpha = 1)"
            },
        })
    }
}

/// Checks a grid against the domain of its space: t in [0, T], or sigma~ >= 0.
pub fn check_grid(process: &dyn ForwardProcess, grid: &TimeGrid, space: Space, name: &str) -> Result<()> {
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

/// A time t expressed in `space`.
fn to_space(process: &dyn ForwardProcess, space: Space, t: f64) -> f64 {
    match space {
        Space::Time => t,
        Space::SigmaTilde => process.sigma_tilde(t),
    }
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
        return Err(ScoreError::InvalidParameter { name: "steps".into(), value: 0.0, expected: "must be at least 1" });
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
    let lerp = |a: f64, b: f64, i: usize| a + (b - a) * (i as f64 / n);
    // Interior points in the schedule's natural variable, then in `space`; the two end points
    // are always exactly t_start and t_end.
    let interior = |i: usize| -> f64 {
        match (schedule, space) {
            (Schedule::UniformT, _) => to_space(process, space, lerp(t_start, t_end, i)),
            (Schedule::Quadratic, _) => to_space(process, space, lerp(t_start.sqrt(), t_end.sqrt(), i).powi(2)),
            (Schedule::LogSnr, Space::Time) => {
                process.t_from_log_snr(lerp(process.log_snr(t_start), process.log_snr(t_end), i))
            }
            (Schedule::LogSnr, Space::SigmaTilde) => (-lerp(process.log_snr(t_start), process.log_snr(t_end), i)).exp(),
            (Schedule::Karras { rho }, _) => {
                let (a, b) = (process.sigma_tilde(t_start).powf(1.0 / rho), process.sigma_tilde(t_end).powf(1.0 / rho));
                let sigma = lerp(a, b, i).powf(rho);
                match space {
                    Space::Time => process.t_from_sigma_tilde(sigma),
                    Space::SigmaTilde => sigma,
                }
            }
        }
    };
    if let Schedule::Karras { rho } = schedule {
        if !(rho.is_finite() && rho > 0.0) {
            return Err(ScoreError::InvalidParameter {
                name: "rho".into(),
                value: rho,
                expected: "must be positive and finite",
            });
        }
    }
    let mut points = Vec::with_capacity(steps + 1);
    points.push(to_space(process, space, t_start));
    points.extend((1..steps).map(interior));
    points.push(to_space(process, space, t_end));
    Ok(TimeGrid::new(points)?)
}
