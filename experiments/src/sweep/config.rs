//! Sweep configuration: a JSON file (every field optional; the defaults are the headline
//! steps-vs-quality figure), validated into typed choices before anything runs.

use clap::ValueEnum;
use serde::{Deserialize, Serialize};

use crate::cli::{ProcessKind, ScheduleKind, SolverKind, SpaceKind};

/// One solver of a sweep: its name and the space it steps in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SolverSpec {
    /// Solver name as on the command line.
    pub solver: String,
    /// `t` or `sigma`.
    pub space: String,
}

/// The sweep as written in the config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SweepConfig {
    /// Name written in the `experiment` column and used for output file names.
    pub experiment: String,
    /// Built-in target names or JSON files.
    pub targets: Vec<String>,
    /// Processes (`vp`, `subvp`, `ve`, `cosine`, `edm`) with their default parameters.
    pub processes: Vec<String>,
    /// Solvers and spaces.
    pub solvers: Vec<SolverSpec>,
    /// Step counts.
    pub steps: Vec<usize>,
    /// Grid schedule (`uniform-t`, `logsnr`, `quadratic`, `karras`).
    pub schedule: String,
    /// Samples per cell.
    pub n: usize,
    /// Seeds (one cell per seed).
    pub seeds: Vec<u64>,
    /// Random projections of sliced W2.
    pub projections: usize,
    /// Independent exact sample sets drawn for the Monte Carlo floor.
    pub floor_reps: usize,
}

impl Default for SweepConfig {
    fn default() -> Self {
        let spec = |solver: &str, space: &str| SolverSpec { solver: solver.into(), space: space.into() };
        Self {
            experiment: "steps_vs_quality".into(),
            targets: vec!["ring8".into()],
            processes: vec!["vp".into(), "subvp".into(), "ve".into()],
            solvers: vec![
                spec("euler", "t"),
                spec("midpoint", "t"),
                spec("heun", "t"),
                spec("rk4", "t"),
                spec("euler", "sigma"),
                spec("heun", "sigma"),
                spec("dpmpp-2m", "sigma"),
                spec("unipc-2", "sigma"),
                spec("euler-maruyama", "t"),
                spec("ancestral", "t"),
            ],
            steps: vec![2, 4, 8, 16, 32, 64, 128, 256],
            schedule: "logsnr".into(),
            n: 10_000,
            seeds: vec![0],
            projections: 64,
            floor_reps: 4,
        }
    }
}

/// A validated solver choice.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SolverChoice {
    /// The solver.
    pub solver: SolverKind,
    /// Its space.
    pub space: SpaceKind,
}

/// The validated, typed sweep.
#[derive(Debug, Clone)]
pub struct Sweep {
    /// The config as given (for the sidecar).
    pub config: SweepConfig,
    /// Processes.
    pub processes: Vec<ProcessKind>,
    /// Solvers.
    pub solvers: Vec<SolverChoice>,
    /// Schedule.
    pub schedule: ScheduleKind,
}

fn parse<T: ValueEnum>(field: &str, value: &str) -> Result<T, String> {
    T::from_str(value, true).map_err(|_| {
        let names: Vec<String> = T::value_variants()
            .iter()
            .filter_map(|v| v.to_possible_value())
            .map(|p| p.get_name().to_string())
            .collect();
        format!("{field} = {value:?}: unknown (expected one of {})", names.join(", "))
    })
}

impl SweepConfig {
    /// Checks every field, naming the first bad one.
    pub fn validate(self) -> Result<Sweep, String> {
        let nonempty =
            |name: &str, len: usize| if len == 0 { Err(format!("{name}: must not be empty")) } else { Ok(()) };
        nonempty("targets", self.targets.len())?;
        nonempty("processes", self.processes.len())?;
        nonempty("solvers", self.solvers.len())?;
        nonempty("steps", self.steps.len())?;
        nonempty("seeds", self.seeds.len())?;
        if let Some(i) = self.steps.iter().position(|&s| s == 0) {
            return Err(format!("steps[{i}] = 0: must be at least 1"));
        }
        for (name, v, min) in
            [("n", self.n, 2), ("projections", self.projections, 1), ("floor_reps", self.floor_reps, 2)]
        {
            if v < min {
                return Err(format!("{name} = {v}: must be at least {min}"));
            }
        }
        if self.experiment.is_empty()
            || !self.experiment.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(format!("experiment = {:?}: use letters, digits, '_' or '-'", self.experiment));
        }
        let processes = self
            .processes
            .iter()
            .enumerate()
            .map(|(i, p)| parse(&format!("processes[{i}]"), p))
            .collect::<Result<_, _>>()?;
        let solvers = self
            .solvers
            .iter()
            .enumerate()
            .map(|(i, s)| {
                Ok(SolverChoice {
                    solver: parse(&format!("solvers[{i}].solver"), &s.solver)?,
                    space: parse(&format!("solvers[{i}].space"), &s.space)?,
                })
            })
            .collect::<Result<_, String>>()?;
        let schedule = parse("schedule", &self.schedule)?;
        Ok(Sweep { config: self, processes, solvers, schedule })
    }
}
