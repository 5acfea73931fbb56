//! Sweep configuration: a JSON file (every field optional) or the name of a built-in experiment,
//! validated into typed choices before anything runs. Each experiment kind has its own defaults;
//! a config file names its `kind` (default `steps_vs_quality`, the headline figure) and overrides
//! any of the fields.

use clap::ValueEnum;
use serde::{Deserialize, Serialize};

use scoresde::sampler::SolverId;

use crate::choices::{ProcessKind, ScheduleKind, SpaceKind};

/// One solver of a sweep: its name and the space it steps in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SolverSpec {
    /// Solver name as on the command line.
    pub solver: String,
    /// `t` or `sigma`.
    pub space: String,
}

/// What a sweep produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum ExperimentKind {
    /// Sample metrics against NFE per solver, with the Monte Carlo floor (the headline figure).
    StepsVsQuality,
    /// Discretisation error against step count, MC-free: exact W2 of the sampler's output law on
    /// single-Gaussian targets, distance to a tight ODE solution on mixtures; fitted orders
    /// against each solver's theoretical order.
    Convergence,
    /// A metric at fixed NFE budgets (10/20/50), as Markdown and LaTeX tables, best in bold.
    SolverTable,
    /// 2-d sample paths of each solver (PF-ODE against reverse SDE) over the target density.
    Trajectories,
    /// The same solvers and grids with the exact score and with a trained network (`model`):
    /// discretisation error against score error, and the network's eps error along the path.
    TrainedVsExact,
    /// Classifier-free guidance with exact scores: precision and diversity against the guidance
    /// weight, for the sampler and for the exactly integrated tilted density.
    Guidance,
    /// What each schedule convention costs at NFE budgets (timestep spacings, zero-SNR, Euler
    /// sigma tables, AYS, log-SNR, flow shift): a table and a figure per target.
    Conventions,
    /// Inpainting against the exact conditional mixture: each method's bias and sliced W2
    /// against NFE and the number of observed coordinates.
    Inpainting,
}

/// The sweep as written in the config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SweepConfig {
    /// What to run.
    pub kind: ExperimentKind,
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
    /// `solver_table`: NFE budgets (columns); each solver gets the most steps whose NFE fits.
    pub budgets: Vec<usize>,
    /// `solver_table`: the metrics tabulated, one table each (metric names of the CSV).
    pub table_metrics: Vec<String>,
    /// `trajectories`: paths drawn per solver.
    pub particles: usize,
    /// `trained_vs_exact`: the checkpoint of `scoresde train`; `guidance`: a class-conditional
    /// one (empty: exact scores only).
    pub model: String,
    /// `guidance`: a trained noisy classifier (`scoresde train-classifier`) whose classes
    /// include `class`, for the `classifier-net` rule (empty: that rule is skipped, as `model`
    /// empty skips the network rows).
    pub classifier_model: String,
    /// `guidance`: the components that make up the class.
    pub class: Vec<usize>,
    /// `guidance`: the guidance weights w (scale 1 + w; at least -1).
    pub guidance_weights: Vec<f64>,
    /// `guidance`: the rules run at every weight: `cfg`, `rescale` (phi 0.7), `apg` (eta 0, no
    /// clipping; `apg-momentum`: beta -0.5), `cfg-zero-star` (`cfg-zero-star-init`: the first
    /// evaluation zeroed), `classifier` (the exact classifier at scale 1 + w; `classifier-net`: the
    /// trained `classifier_model`, at the last `steps` only), `cfg-pp`
    /// (CFG++ at lambda = 1 + w: the solver's CFG++ twin).
    pub guidance_rules: Vec<String>,
    /// `inpainting`: the numbers of observed coordinates (the first k of each row; those below
    /// the target's dimension run).
    pub observed: Vec<usize>,
    /// `inpainting`: the methods: `replacement`, `repaint` (`resample` repeats), `dps`
    /// (`dps_scale`), `exact` (draws from the exact conditional).
    pub inpaint_methods: Vec<String>,
    /// `inpainting`: RePaint's repeats per step.
    pub resample: usize,
    /// `inpainting`: DPS's step size zeta'.
    pub dps_scale: f64,
}

impl Default for SweepConfig {
    fn default() -> Self {
        Self::defaults(ExperimentKind::StepsVsQuality)
    }
}

fn spec(solver: &str, space: &str) -> SolverSpec {
    SolverSpec { solver: solver.into(), space: space.into() }
}

impl SweepConfig {
    /// The built-in configuration of each experiment kind.
    pub fn defaults(kind: ExperimentKind) -> Self {
        let base = Self {
            kind,
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
            budgets: vec![10, 20, 50],
            table_metrics: vec!["path_error".into(), "sliced_w2".into()],
            particles: 48,
            model: "plots/ring8_vp_model.safetensors".into(),
            class: vec![0, 1],
            guidance_weights: vec![0.0, 0.5, 1.0, 2.0, 4.0, 8.0],
            guidance_rules: vec!["cfg".into()],
            classifier_model: String::new(),
            observed: vec![1],
            inpaint_methods: ["replacement", "repaint", "dps", "exact"].map(String::from).to_vec(),
            resample: 10,
            dps_scale: 1.0,
        };
        match kind {
            ExperimentKind::StepsVsQuality => base,
            ExperimentKind::Convergence => Self {
                experiment: "convergence".into(),
                targets: vec!["gauss2".into(), "ring8".into()],
                processes: vec!["vp".into(), "ve".into()],
                solvers: vec![
                    spec("euler", "t"),
                    spec("heun", "t"),
                    spec("rk4", "t"),
                    spec("heun", "sigma"),
                    spec("ddim", "sigma"),
                    spec("dpm-solver-2m", "sigma"),
                    spec("dpmpp-2m", "sigma"),
                    spec("dpmpp-3s", "sigma"),
                    spec("deis-3", "sigma"),
                    spec("unipc-2", "sigma"),
                    spec("lms4", "sigma"),
                    spec("euler-maruyama", "t"),
                    spec("ancestral", "t"),
                ],
                steps: vec![8, 16, 32, 64, 128, 256, 512],
                n: 2000,
                ..base
            },
            ExperimentKind::SolverTable => Self {
                experiment: "solver_table".into(),
                processes: vec!["vp".into()],
                solvers: vec![
                    spec("euler", "t"),
                    spec("heun", "t"),
                    spec("rk4", "t"),
                    spec("heun", "sigma"),
                    spec("ddim", "sigma"),
                    spec("dpm2", "sigma"),
                    spec("lms4", "sigma"),
                    spec("dpm-solver", "sigma"),
                    spec("dpm-solver-2m", "sigma"),
                    spec("dpmpp-2m", "sigma"),
                    spec("dpmpp-3m", "sigma"),
                    spec("dpmpp-2s", "sigma"),
                    spec("unipc-2", "sigma"),
                    spec("unipc-3", "sigma"),
                    spec("deis-2", "sigma"),
                    spec("deis-3", "sigma"),
                    spec("euler-maruyama", "t"),
                    spec("ancestral", "t"),
                    spec("euler-ancestral", "sigma"),
                    spec("dpmpp-2m-sde", "sigma"),
                ],
                steps: vec![],
                ..base
            },
            ExperimentKind::TrainedVsExact => Self {
                experiment: "trained_vs_exact".into(),
                processes: vec!["vp".into()],
                solvers: vec![
                    spec("euler", "t"),
                    spec("heun", "sigma"),
                    spec("dpmpp-2m", "sigma"),
                    spec("euler-maruyama", "t"),
                ],
                steps: vec![5, 10, 25, 50, 100],
                n: 5000,
                ..base
            },
            ExperimentKind::Guidance => Self {
                experiment: "guidance".into(),
                targets: vec!["quad4".into()],
                class: vec![0, 1],
                model: "plots/quad4_vp_cfg_model.safetensors".into(),
                classifier_model: "plots/quad4_vp_classifier.safetensors".into(),
                guidance_rules: [
                    "cfg",
                    "rescale",
                    "apg",
                    "apg-momentum",
                    "cfg-zero-star",
                    "cfg-zero-star-init",
                    "classifier",
                    "classifier-net",
                    "cfg-pp",
                ]
                .map(String::from)
                .to_vec(),
                guidance_weights: vec![-0.4, 0.0, 0.5, 1.0, 2.0, 4.0, 8.0],
                processes: vec!["vp".into()],
                solvers: vec![spec("dpmpp-2m", "sigma")],
                steps: vec![10, 25, 50],
                ..base
            },
            ExperimentKind::Conventions => Self {
                experiment: "conventions".into(),
                targets: vec!["gauss2".into(), "ring8".into()],
                processes: vec!["vp".into()],
                solvers: vec![spec("ddim", "sigma")],
                steps: vec![],
                n: 20000,
                ..base
            },
            ExperimentKind::Inpainting => Self {
                experiment: "inpainting".into(),
                targets: vec!["gauss2".into(), "ring8".into(), "diag16".into()],
                processes: vec!["vp".into()],
                solvers: vec![spec("euler-maruyama", "t")],
                steps: vec![10, 25, 50, 100],
                observed: vec![1, 4, 8, 15],
                n: 5000,
                ..base
            },
            ExperimentKind::Trajectories => Self {
                experiment: "trajectories".into(),
                processes: vec!["vp".into()],
                solvers: vec![spec("heun", "t"), spec("euler-maruyama", "t")],
                steps: vec![100],
                ..base
            },
        }
    }

    /// Reads a config file (a JSON object of fields to override), or takes a built-in
    /// experiment's name (`steps_vs_quality`, `convergence`, `solver_table`, `trajectories`, `trained_vs_exact`, `guidance`,
    /// `conventions`, `inpainting`) when
    /// no file of that name exists; `None` is the headline sweep.
    pub fn load(arg: Option<&std::path::Path>) -> Result<Self, String> {
        let Some(path) = arg else { return Ok(Self::default()) };
        if !path.exists() {
            let name = path.to_string_lossy();
            return match ExperimentKind::from_str(&name, false) {
                Ok(kind) => Ok(Self::defaults(kind)),
                Err(_) => Err(format!(
                    "config {name:?}: no such file, and not a built-in experiment (steps_vs_quality, \
                     convergence, solver_table, trajectories, trained_vs_exact, guidance, conventions, inpainting)"
                )),
            };
        }
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let given: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let serde_json::Value::Object(given) = given else {
            return Err(format!("{}: the config must be a JSON object", path.display()));
        };
        let kind = match given.get("kind") {
            Some(k) => serde_json::from_value(k.clone()).map_err(|e| format!("{}: kind: {e}", path.display()))?,
            None => ExperimentKind::StepsVsQuality,
        };
        let defaults = serde_json::to_value(Self::defaults(kind)).map_err(|e| format!("defaults of {kind:?}: {e}"))?;
        let serde_json::Value::Object(mut merged) = defaults else {
            return Err(format!("defaults of {kind:?}: not a JSON object"));
        };
        for (k, v) in given {
            if !merged.contains_key(&k) {
                return Err(format!("{}: unknown field {k:?}", path.display()));
            }
            merged.insert(k, v);
        }
        serde_json::from_value(serde_json::Value::Object(merged)).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// A validated solver choice.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SolverChoice {
    /// The solver.
    pub solver: SolverId,
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
    pub fn validate(mut self) -> Result<Sweep, String> {
        let nonempty =
            |name: &str, len: usize| if len == 0 { Err(format!("{name}: must not be empty")) } else { Ok(()) };
        nonempty("targets", self.targets.len())?;
        nonempty("processes", self.processes.len())?;
        nonempty("solvers", self.solvers.len())?;
        if matches!(self.kind, ExperimentKind::SolverTable | ExperimentKind::Conventions) {
            nonempty("budgets", self.budgets.len())?;
            if let Some(i) = self.budgets.iter().position(|&b| b == 0) {
                return Err(format!("budgets[{i}] = 0: must be at least 1"));
            }
        } else {
            nonempty("steps", self.steps.len())?;
        }
        if self.kind == ExperimentKind::Guidance {
            nonempty("class", self.class.len())?;
            nonempty("guidance_weights", self.guidance_weights.len())?;
            if let Some(w) = self.guidance_weights.iter().find(|w| !w.is_finite() || **w < -1.0) {
                return Err(format!("guidance_weights: {w} must be finite and at least -1 (scale 1 + w >= 0)"));
            }
            nonempty("guidance_rules", self.guidance_rules.len())?;
            for (i, r) in self.guidance_rules.iter().enumerate() {
                super::guidance::SweepRule::from_name(r).map_err(|e| format!("guidance_rules[{i}]: {e}"))?;
            }
            no_repeats("guidance_rules", &self.guidance_rules)?;
            if self.classifier_model.is_empty() {
                if self.guidance_rules.iter().all(|r| r == "classifier-net") {
                    return Err(
                        "guidance_rules: classifier-net needs classifier_model (scoresde train-classifier)".into()
                    );
                }
                self.guidance_rules.retain(|r| r != "classifier-net");
            }
        }
        if self.kind == ExperimentKind::Inpainting {
            nonempty("observed", self.observed.len())?;
            if let Some(i) = self.observed.iter().position(|&k| k == 0) {
                return Err(format!("observed[{i}] = 0: must be at least 1"));
            }
            no_repeats("observed", &self.observed)?;
            nonempty("inpaint_methods", self.inpaint_methods.len())?;
            for (i, m) in self.inpaint_methods.iter().enumerate() {
                super::inpainting::Method::from_name(m).map_err(|e| format!("inpaint_methods[{i}]: {e}"))?;
            }
            no_repeats("inpaint_methods", &self.inpaint_methods)?;
            if self.resample == 0 {
                return Err("resample = 0: must be at least 1".into());
            }
            if !(self.dps_scale.is_finite() && self.dps_scale >= 0.0) {
                return Err(format!("dps_scale = {}: must be finite and non-negative", self.dps_scale));
            }
        }
        if self.kind == ExperimentKind::Trajectories && self.particles == 0 {
            return Err("particles = 0: must be at least 1".into());
        }
        nonempty("seeds", self.seeds.len())?;
        fn no_repeats<T: PartialEq + std::fmt::Debug>(name: &str, values: &[T]) -> Result<(), String> {
            for (i, v) in values.iter().enumerate() {
                if let Some(j) = values[..i].iter().position(|w| w == v) {
                    return Err(format!("{name}[{i}] = {v:?}: repeats {name}[{j}] (every cell would run twice)"));
                }
            }
            Ok(())
        }
        no_repeats("targets", &self.targets)?;
        no_repeats("processes", &self.processes)?;
        no_repeats("solvers", &self.solvers)?;
        no_repeats("steps", &self.steps)?;
        no_repeats("seeds", &self.seeds)?;
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
        for &k in &self.steps {
            scoresde::limits::check_steps("steps", k).map_err(|e| e.to_string())?;
        }
        // A cell holds about ten N x d arrays of the widest target (d <= 16 built in; files are
        // checked when they are read).
        scoresde::limits::check_f64s("n", self.n, 10 * 16 * self.n as u128, "a cell's samples and solver buffers")
            .map_err(|e| e.to_string())?;
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
                    solver: SolverId::from_name(&s.solver).ok_or_else(|| {
                        let names: Vec<&str> = SolverId::names().collect();
                        format!("solvers[{i}].solver = {:?}: unknown (expected one of {})", s.solver, names.join(", "))
                    })?,
                    space: parse(&format!("solvers[{i}].space"), &s.space)?,
                })
            })
            .collect::<Result<_, String>>()?;
        let schedule = parse("schedule", &self.schedule)?;
        Ok(Sweep { config: self, processes, solvers, schedule })
    }
}
