//! Process-aware time grids: where a fixed-step sampler places its steps.
//!
//! The schedule matters as much as the solver (EDM, section 3): a uniform grid in t wastes steps
//! at high noise for VP, a log-SNR-uniform grid suits exponential integrators, Karras' rho-grid
//! concentrates steps at low noise. Each schedule is computed in its natural variable and then
//! expressed in the variable the solver steps in ([`Space`]).

pub mod diffusers;
pub mod zoo;

pub use diffusers::FlowShift;
pub use zoo::AysModel;

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
    /// k-diffusion's polyexponential: ln sigma~ along the ramp (1 - i/n)^rho (rho = 1: log-SNR).
    PolyExponential {
        /// The exponent rho > 0.
        rho: f64,
    },
    /// diffusers' beta sigmas: quantiles of Beta(0.6, 0.6) between the ends in sigma~.
    Beta,
    /// The KL-optimal schedule (uniform in arctan sigma~; ComfyUI's `kl_optimal`).
    KlOptimal,
    /// ComfyUI's linear-quadratic schedule on the time range (Mochi).
    LinearQuadratic,
    /// A published Align-Your-Steps table in sigma~ (log-linearly interpolated to other step
    /// counts, last level 0). A fixed table: the time range is not used.
    Ays(AysModel),
    /// diffusers' shifted flow-match grid on t in [0, 1] (SD3's shift, Flux's dynamic mu).
    /// `diffusers`: reproduce `FlowMatchEulerDiscreteScheduler` exactly, including its double
    /// shift of the last nonzero t; otherwise shift(linspace(1, 1/1000, n)) then 0. A fixed
    /// table: the time range is not used.
    FlowShift {
        /// The shift.
        shift: FlowShift,
        /// Reproduce diffusers' table, quirk included.
        diffusers: bool,
    },
}

impl Schedule {
    /// Whether the schedule is a fixed table that ignores the time range of a run.
    pub fn is_fixed_table(&self) -> bool {
        matches!(self, Self::Ays(_) | Self::FlowShift { .. })
    }
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
            _ => unreachable!("the zoo's schedules are built by zoo_points"),
        }
    };
    if let Some(points) = zoo_points(process, schedule, steps, t_start, t_end)? {
        let points = points.into_iter().map(|point| match (space, point) {
            (Space::Time, Point::Time(t)) => t,
            (Space::Time, Point::Sigma(sigma)) => process.t_from_sigma_tilde(sigma),
            (Space::SigmaTilde, Point::Time(t)) => process.sigma_tilde(t),
            (Space::SigmaTilde, Point::Sigma(sigma)) => sigma,
        });
        return Ok(TimeGrid::new(points.collect())?);
    }
    if let Schedule::Karras { rho } | Schedule::PolyExponential { rho } = schedule {
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

/// A grid point as a schedule computes it: a time, or a sigma~ level.
#[derive(Debug, Clone, Copy)]
enum Point {
    Time(f64),
    Sigma(f64),
}

/// The points of the zoo's schedules, the run's ends kept exact as times; `None` for the
/// schedules built in place by [`build_grid`].
fn zoo_points(
    process: &dyn ForwardProcess,
    schedule: Schedule,
    steps: usize,
    t_start: f64,
    t_end: f64,
) -> Result<Option<Vec<Point>>> {
    let (s0, s1) = (process.sigma_tilde(t_start), process.sigma_tilde(t_end));
    let in_sigma = |v: Vec<f64>| -> Vec<Point> {
        let n = v.len() - 1;
        v.into_iter()
            .enumerate()
            .map(|(i, s)| match i {
                0 => Point::Time(t_start),
                i if i == n => Point::Time(t_end),
                _ => Point::Sigma(s),
            })
            .collect()
    };
    let sigma_range = || -> Result<()> {
        if s1 > 0.0 && s0.is_finite() {
            Ok(())
        } else {
            Err(ScoreError::InvalidParameter {
                name: if s1 > 0.0 { "t_start".into() } else { "t_end".into() },
                value: if s1 > 0.0 { t_start } else { t_end },
                expected: "this schedule is built in log sigma~: needs 0 < sigma~ < infinity at both ends",
            })
        }
    };
    Ok(Some(match schedule {
        Schedule::UniformT | Schedule::LogSnr | Schedule::Quadratic | Schedule::Karras { .. } => return Ok(None),
        Schedule::PolyExponential { rho } => {
            if !(rho.is_finite() && rho > 0.0) {
                return Err(ScoreError::InvalidParameter {
                    name: "rho".into(),
                    value: rho,
                    expected: "must be positive and finite",
                });
            }
            sigma_range()?;
            in_sigma(zoo::polyexponential(s1, s0, steps, rho))
        }
        Schedule::Beta => {
            if !s0.is_finite() {
                sigma_range()?;
            }
            in_sigma(diffusers::beta_sigmas(s1, s0, steps + 1))
        }
        Schedule::KlOptimal => in_sigma(zoo::kl_optimal(s1, s0, steps)),
        Schedule::LinearQuadratic => zoo::linear_quadratic(steps, 0.025)
            .into_iter()
            .enumerate()
            .map(|(i, f)| match i {
                0 => Point::Time(t_start),
                i if i == steps => Point::Time(t_end),
                _ => Point::Time(t_end + f * (t_start - t_end)),
            })
            .collect(),
        Schedule::Ays(model) => zoo::ays(model, steps).into_iter().map(Point::Sigma).collect(),
        Schedule::FlowShift { shift, diffusers: exact } => {
            if process.t_min() != 0.0 || process.t_max() != 1.0 {
                return Err(ScoreError::InvalidParameter {
                    name: "schedule flow-shift: T".into(),
                    value: process.t_max(),
                    expected: "a flow-match grid lives on t in [0, 1] (--process flow or trig)",
                });
            }
            let times = if exact {
                diffusers::flow_table(steps, shift, 1000)?.0
            } else {
                diffusers::flow_times(steps, shift, 1e-3)?
            };
            times.into_iter().map(Point::Time).collect()
        }
    }))
}
