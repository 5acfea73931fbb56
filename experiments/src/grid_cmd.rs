//! The flags that generate a grid (shared by `sample` and `grid`) and `scoresde grid`, which
//! writes the grid a configuration produces: sigmas.npy, timesteps.npy and t.npy.

use std::path::{Path, PathBuf};

use clap::Args;
use ndarray::Array1;
use scoresde::grids::diffusers::{self, SigmaSchedule, TimestepSpacing};
use scoresde::grids::{build_grid, FlowShift, Space};
use scoresde::io::write_npy;
use scoresde::process::ForwardProcess;
use scoresde::sampler::Steps;
use scoresde_solvers::TimeGrid;

use crate::choices::{
    CmdError, CmdResult, ProcessArgs, ProcessKind, ScheduleKind, SigmaScheduleKind, SpaceKind, SpacingKind,
};

/// How a fixed grid is generated.
#[derive(Debug, Clone, Args)]
pub struct GridFlags {
    /// Number of steps of a generated grid (used when neither --grid nor --sigmas nor
    /// --rtol/--atol is given) [default: 50].
    #[arg(long)]
    pub steps: Option<usize>,
    /// Spacing of the generated grid (continuous processes; --process ddpm uses
    /// --timestep-spacing and --sigma-schedule).
    #[arg(long, value_enum, default_value_t = ScheduleKind::UniformT)]
    pub schedule: ScheduleKind,
    /// rho of the Karras and polyexponential schedules.
    #[arg(long, default_value_t = 7.0)]
    pub rho: f64,
    /// Variable the ODE solver steps in, for generated grids and adaptive solves (solvers that step
    /// in one space only get the same grid points expressed in theirs: euler-maruyama steps in t).
    #[arg(long, value_enum, default_value_t = SpaceKind::T)]
    pub space: SpaceKind,
    /// Start time (noise end) of a generated grid or adaptive solve [default: T of the process].
    #[arg(long)]
    pub t_start: Option<f64>,
    /// End time (data end) [default: 1e-3 for vp/subvp/cosine, 1e-5 for ve, sigma_min for edm,
    /// 0 for flow/trig, -1 (the data) for ddpm].
    #[arg(long)]
    pub t_end: Option<f64>,
    /// DDPM: the timesteps, (K,) int64 or float64 .npy, descending indices into the chain (the
    /// scheduler's `timesteps`); the grid is them and then t = -1, where alpha-bar is 1 (DDIM's
    /// set_alpha_to_one, DDPM's last step).
    #[arg(long, conflicts_with_all = ["steps", "timestep_spacing", "sigma_schedule", "steps_offset"])]
    pub timesteps: Option<PathBuf>,
    /// DDPM: spacing of the --steps timesteps (diffusers' timestep_spacing) [default: leading].
    #[arg(long, value_enum)]
    pub timestep_spacing: Option<SpacingKind>,
    /// DDPM: added to leading timesteps (diffusers' steps_offset).
    #[arg(long, default_value_t = 0)]
    pub steps_offset: usize,
    /// DDPM: sample on diffusers' Euler sigma table of the timesteps (the grid is then in sigma~,
    /// ending with 0); default: on the timesteps themselves [default: default].
    #[arg(long, value_enum)]
    pub sigma_schedule: Option<SigmaScheduleKind>,
    /// Flow-match grids (--schedule flow-shift, implied): the shift s of t -> s t / (1 + (s-1) t).
    #[arg(long, conflicts_with = "mu")]
    pub shift: Option<f64>,
    /// Flow-match grids (--schedule flow-shift, implied): dynamic shifting (Flux), t -> e^mu /
    /// (e^mu + 1/t - 1).
    #[arg(long)]
    pub mu: Option<f64>,
    /// Flow-match grids: apply the shift once (diffusers' table shifts its last nonzero t twice).
    #[arg(long)]
    pub single_shift: bool,
}

/// The grid the flags give, before any solver sees it.
#[derive(Debug, Clone)]
pub struct GridPlan {
    /// The space of the points.
    pub space: Space,
    /// A grid or a schedule to build in the solver's space.
    pub steps: Steps,
    /// diffusers' `timesteps` of the grid, where it has them (ddpm: the scheduler's; flow: 1000 t).
    pub timesteps: Option<Vec<f64>>,
}

fn name_of<V: clap::ValueEnum>(v: &V) -> String {
    v.to_possible_value().map(|p| p.get_name().to_string()).unwrap_or_default()
}

/// Reads a 1-d npy of int64 or float64 values.
pub fn read_timesteps(path: &Path) -> Result<Vec<f64>, CmdError> {
    let file = || std::fs::File::open(path).map_err(|e| format!("--timesteps {}: {e}", path.display()));
    if let Ok(a) = ndarray_npy::ReadNpyExt::read_npy(file()?) {
        let a: Array1<i64> = a;
        return Ok(a.iter().map(|&v| v as f64).collect());
    }
    Ok(scoresde::io::read_npy_1d(path, "timesteps")?.to_vec())
}

impl GridFlags {
    /// The grid these flags generate for `process` (`given`: the ids of the flags given
    /// explicitly, so that a flag that does not apply is refused, not ignored).
    pub fn plan(
        &self,
        args: &ProcessArgs,
        process: &dyn ForwardProcess,
        given: &[String],
    ) -> Result<GridPlan, CmdError> {
        let is_given = |id: &str| given.iter().any(|g| g == id);
        let ddpm = args.process == ProcessKind::Ddpm;
        let refuse = |flag: &str, why: &str| -> Result<(), CmdError> {
            if is_given(flag) {
                return Err(format!("--{}: {why}", flag.replace('_', "-")).into());
            }
            Ok(())
        };
        let steps = self.steps.unwrap_or(50);
        scoresde::limits::check_steps("--steps", steps)?;
        if ddpm {
            for flag in ["schedule", "t_start", "t_end", "shift", "mu", "single_shift"] {
                refuse(
                    flag,
                    "does not apply to --process ddpm (its grids come from --timesteps, or --steps with \
                     --timestep-spacing and --sigma-schedule)",
                )?;
            }
            if let Some(path) = &self.timesteps {
                let ts = read_timesteps(path)?;
                let last = process.t_max();
                for (i, &t) in ts.iter().enumerate() {
                    if !(t.is_finite() && (0.0..=last).contains(&t)) {
                        return Err(format!(
                            "--timesteps {}: timesteps[{i}] = {t}: must lie in 0..={last}",
                            path.display()
                        )
                        .into());
                    }
                    if i > 0 && t >= ts[i - 1] {
                        return Err(format!(
                            "--timesteps {}: timesteps[{i}] = {t} after timesteps[{}] = {}: must be descending",
                            path.display(),
                            i - 1,
                            ts[i - 1]
                        )
                        .into());
                    }
                }
                let mut points = ts.clone();
                points.push(-1.0);
                let grid = TimeGrid::new(points).map_err(|e| format!("--timesteps {}: {e}", path.display()))?;
                return Ok(GridPlan { space: Space::Time, steps: Steps::Grid(grid), timesteps: Some(ts) });
            }
            let spacing = match self.timestep_spacing.unwrap_or(SpacingKind::Leading) {
                SpacingKind::Linspace => TimestepSpacing::Linspace,
                SpacingKind::Leading => TimestepSpacing::Leading,
                SpacingKind::Trailing => TimestepSpacing::Trailing,
            };
            let sigma_schedule = match self.sigma_schedule.unwrap_or(SigmaScheduleKind::Default) {
                SigmaScheduleKind::Default => SigmaSchedule::Default,
                SigmaScheduleKind::Karras => SigmaSchedule::Karras,
                SigmaScheduleKind::Exponential => SigmaSchedule::Exponential,
                SigmaScheduleKind::Beta => SigmaSchedule::Beta,
            };
            let (sigmas, ts) = diffusers::euler_table(process, spacing, steps, self.steps_offset, sigma_schedule)?;
            let (space, points) = if sigma_schedule == SigmaSchedule::Default {
                let mut points = ts.clone();
                points.push(-1.0);
                (Space::Time, points)
            } else {
                (Space::SigmaTilde, sigmas)
            };
            return Ok(GridPlan { space, steps: Steps::Grid(TimeGrid::new(points)?), timesteps: Some(ts) });
        }
        for flag in ["timesteps", "timestep_spacing", "steps_offset", "sigma_schedule"] {
            refuse(flag, "applies to --process ddpm only")?;
        }
        let flow_shift = self.shift.is_some() || self.mu.is_some();
        let schedule = if flow_shift && !is_given("schedule") { ScheduleKind::FlowShift } else { self.schedule };
        if schedule != ScheduleKind::FlowShift {
            for flag in ["shift", "mu", "single_shift"] {
                refuse(flag, &format!("applies to --schedule flow-shift (the schedule is {})", name_of(&schedule)))?;
            }
        }
        let shift = match (self.shift, self.mu) {
            (_, Some(mu)) => FlowShift::Dynamic(mu),
            (s, None) => FlowShift::Static(s.unwrap_or(1.0)),
        };
        let schedule = schedule.schedule_with(self.rho, shift, !self.single_shift);
        if schedule.is_fixed_table() {
            for flag in ["t_start", "t_end"] {
                refuse(flag, "the schedule is a fixed table: its range is its own")?;
            }
        }
        let (t_start, t_end) = self.time_range(process);
        let timesteps = match schedule {
            scoresde::grids::Schedule::FlowShift { .. } => {
                let g = build_grid(process, schedule, steps, t_start, t_end, Space::Time)?;
                Some(g.points()[..steps].iter().map(|t| t * 1000.0).collect())
            }
            _ => None,
        };
        Ok(GridPlan { space: self.space.into(), steps: Steps::Schedule { schedule, steps, t_start, t_end }, timesteps })
    }

    /// `--rho` given for a schedule that does not read it is an error (checked whatever the grid
    /// comes from, so that it is never silently ignored).
    pub fn check_rho(&self, given: &[String]) -> Result<(), String> {
        if given.iter().any(|g| g == "rho")
            && !matches!(self.schedule, ScheduleKind::Karras | ScheduleKind::Polyexponential)
        {
            return Err(format!(
                "--rho: applies to --schedule karras and polyexponential (the schedule is {})",
                name_of(&self.schedule)
            ));
        }
        Ok(())
    }

    /// The time range of a generated grid or adaptive solve.
    pub fn time_range(&self, process: &dyn ForwardProcess) -> (f64, f64) {
        (self.t_start.unwrap_or(process.t_max()), self.t_end.unwrap_or(process.t_end_default()))
    }
}

/// Flags of `scoresde grid`.
#[derive(Debug, Args)]
pub struct GridArgs {
    #[command(flatten)]
    pub process: ProcessArgs,
    #[command(flatten)]
    pub grid: GridFlags,
    /// Output directory: sigmas.npy (diffusers' sigmas: sigma~ levels, ending with 0 at the data;
    /// for --process flow the times t, which FlowMatch schedulers call sigmas), timesteps.npy
    /// (diffusers' timesteps: the ddpm chain's, 1000 t for flow-match grids, else the grid's
    /// first K times) and t.npy (the K + 1 process times, as the sampler steps).
    #[arg(long)]
    pub out: PathBuf,
    /// The ids of the flags given explicitly.
    #[arg(skip)]
    pub given: Vec<String>,
}

/// Runs `scoresde grid`.
pub fn run(a: GridArgs) -> CmdResult {
    crate::choices::check_process_flags(&a.process, &a.given)?;
    a.grid.check_rho(&a.given)?;
    let process = a.process.build()?;
    let plan = a.grid.plan(&a.process, &*process, &a.given)?;
    let (space, grid) = match &plan.steps {
        Steps::Grid(g) => (plan.space, g.clone()),
        Steps::Schedule { schedule, steps, t_start, t_end } => {
            (Space::Time, build_grid(&*process, *schedule, *steps, *t_start, *t_end, Space::Time)?)
        }
        Steps::Adaptive { .. } => unreachable!("grid flags give no adaptive range"),
    };
    let points = grid.points();
    let (t, sigma_tilde): (Vec<f64>, Vec<f64>) = match space {
        Space::Time => (points.to_vec(), points.iter().map(|&t| process.sigma_tilde(t)).collect()),
        Space::SigmaTilde => (points.iter().map(|&s| process.t_from_sigma_tilde(s)).collect(), points.to_vec()),
    };
    let sigmas = if a.process.process == ProcessKind::Flow { t.clone() } else { sigma_tilde };
    let k = t.len() - 1;
    let timesteps = plan.timesteps.unwrap_or_else(|| t[..k].to_vec());
    if a.out.exists() && !a.out.is_dir() {
        return Err(format!("--out {}: exists and is not a directory", a.out.display()).into());
    }
    std::fs::create_dir_all(&a.out).map_err(|e| format!("--out {}: {e}", a.out.display()))?;
    write_npy(&a.out.join("sigmas.npy"), &Array1::from(sigmas))?;
    write_npy(&a.out.join("timesteps.npy"), &Array1::from(timesteps))?;
    write_npy(&a.out.join("t.npy"), &Array1::from(t))?;
    Ok(())
}
