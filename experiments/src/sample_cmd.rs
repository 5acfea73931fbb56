//! `scoresde sample`: flags -> validated sampler -> samples on disk.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use clap::{ArgGroup, Args};
use indicatif::{ProgressBar, ProgressStyle};
use ndarray::{Array2, Array3};
use scoresde::gmm::GaussianMixture;
use scoresde::grids::Space;
use scoresde::io::{read_npy_1d, read_npy_2d, read_npy_3d, write_npy};
use scoresde::limits::check_f64s;
use scoresde::model::{ExactScore, ScoreModel};
use scoresde::process::ForwardProcess;
use scoresde::sampler::{
    prior_noise, sample_owned, OptionValue, Predictor, SampleReport, SamplerConfig, Solver, SolverId, Steps,
};
use scoresde::targets;
use scoresde_solvers::{AdaptiveOptions, BrownianNoise, Draw, FixedNoise, KeyedNoise, NoiseSource, StepInfo, TimeGrid};

use crate::choices::{parse_classes, CmdError, CmdResult, PredictorKind, ProcessArgs, SolverParser, VarianceKind};

/// Flags of `scoresde sample`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("init").args(["z_init", "n"])))]
#[command(group(ArgGroup::new("steps_from").args(["grid", "sigmas", "steps", "timesteps"])))]
pub struct SampleArgs {
    /// Target: a built-in name (ring8, aniso16, gauss2, quad4, diag16) or a JSON file
    /// {"weights", "means", and one of "variances" | "diag" | "full"}.
    #[arg(long, default_value = "ring8")]
    pub target: String,
    /// A trained score model (`scoresde train --out`) instead of the target's exact score; the
    /// process flags must match the ones it was trained with.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Precision of the --model network's passes on the CPU [default: the checkpoint's].
    #[arg(long, value_enum, requires = "model")]
    pub dtype: Option<crate::choices::DtypeKind>,
    /// Classifier-free guidance towards this class (a class-conditional --model, or a class of
    /// --classes with the exact score).
    #[arg(long)]
    pub class: Option<usize>,
    /// Guidance weight w: eps = (1 + w) eps(x | class) - w eps(x) (CFG++'s lambda = 1 + w).
    #[arg(long, default_value_t = 0.0, requires = "class", allow_negative_numbers = true)]
    pub guidance: f64,
    /// With the exact score: the classes as component groups, e.g. `0,1;2,3`.
    #[arg(long, requires = "class")]
    pub classes: Option<String>,
    #[command(flatten)]
    pub guidance_flags: crate::guidance_flags::GuidanceArgs,
    #[command(flatten)]
    pub inpaint_flags: crate::inpaint_flags::InpaintArgs,
    /// Initial standard-normal draws, (N, d) float64 .npy; x at the grid start = prior_std * z.
    #[arg(long)]
    pub z_init: Option<PathBuf>,
    /// Number of samples when --z-init is not given.
    #[arg(long, default_value_t = 1000)]
    pub n: usize,
    /// Seed of the prior draws and of the SDE noise (sample i depends only on (seed, i)).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub process: ProcessArgs,
    /// Solver (`scoresde solvers` lists them with order, NFE, space and options).
    #[arg(long, value_parser = SolverParser, default_value = "heun")]
    pub solver: SolverId,
    /// Time grid, (K+1,) float64 .npy of times t from noise to data; the solver steps in t.
    #[arg(long)]
    pub grid: Option<PathBuf>,
    /// Sigma~ levels, (K+1,) float64 .npy from noise to data (the last may be 0); the solver steps
    /// in sigma space (x~ = x/alpha against sigma~ = sigma/alpha).
    #[arg(long)]
    pub sigmas: Option<PathBuf>,
    #[command(flatten)]
    pub grid_flags: crate::grid_cmd::GridFlags,
    /// Adaptive solve in sigma space: start level sigma~ (with --sigma-end, --rtol, --atol).
    #[arg(long, requires = "sigma_end", conflicts_with_all = ["t_start", "t_end"])]
    pub sigma_start: Option<f64>,
    /// Adaptive solve in sigma space: end level sigma~.
    #[arg(long, requires = "sigma_start")]
    pub sigma_end: Option<f64>,
    /// Relative tolerance: makes dopri5/tsit5 adaptive [default when --atol is given: 1e-5].
    #[arg(long, conflicts_with_all = ["grid", "sigmas", "steps", "timesteps"])]
    pub rtol: Option<f64>,
    /// Absolute tolerance: makes dopri5/tsit5 adaptive [default when --rtol is given: 1e-5].
    #[arg(long, conflicts_with_all = ["grid", "sigmas", "steps", "timesteps"])]
    pub atol: Option<f64>,
    /// Fixed standard-normal noise for stochastic solvers, (draws, N, d) float64 .npy: slice k is
    /// the noise of step k; a solver with extra draws per step (pc: one per corrector move) reads
    /// them after all steps' main draws, extra j of step k at steps + k * extras + j
    /// [default: drawn from --seed].
    #[arg(long)]
    pub noise: Option<PathBuf>,
    /// Stochastic solvers: draw the noise from a virtual Brownian tree over the grid, so a sample's
    /// Brownian path is the same for every step count (strong errors, step-count comparisons); about
    /// 35 normal draws per step and sample instead of 1.
    #[arg(long)]
    pub brownian: bool,
    /// Ancestral / SDE samplers and DDIM: noise scale eta (1 = full ancestral step, 0 =
    /// deterministic) [default: the solver's: 1 for euler-ancestral and dpmpp-2m-sde, 0 for ddim].
    #[arg(long)]
    pub eta: Option<f64>,
    /// DDPM: the variance of the reverse step.
    #[arg(long, value_enum, default_value_t = VarianceKind::FixedSmall)]
    pub variance: VarianceKind,
    /// Stochastic samplers: multiplier of the fresh noise (s_noise, EDM's S_noise).
    #[arg(long, default_value_t = 1.0)]
    pub s_noise: f64,
    /// Singlestep DPM-Solver: per-step orders, e.g. 3,3,3,1 [default: 3 on every step].
    #[arg(long, value_delimiter = ',', conflicts_with = "nfe")]
    pub orders: Option<Vec<usize>>,
    /// dpm-solver only: DPM-Solver-fast for this NFE budget (floor(nfe/3) + 1 log-SNR-uniform steps
    /// between --t-start and --t-end, orders 3,..,3 then 2,1 or nfe mod 3).
    #[arg(long, conflicts_with_all = ["grid", "sigmas", "steps", "timesteps", "rtol", "atol"])]
    pub nfe: Option<usize>,
    /// EDM stochastic sampler: S_churn.
    #[arg(long, default_value_t = 0.0)]
    pub s_churn: f64,
    /// EDM stochastic sampler: S_tmin.
    #[arg(long, default_value_t = 0.0)]
    pub s_tmin: f64,
    /// EDM stochastic sampler: S_tmax [default: infinity].
    #[arg(long, default_value_t = f64::INFINITY)]
    pub s_tmax: f64,
    /// Multistep solvers: lower the order on the last steps of grids under 15 steps; singlestep
    /// DPM-Solver++: shorten the last block (diffusers' lower_order_final).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub lower_order_final: bool,
    /// Langevin corrector: signal-to-noise ratio r.
    #[arg(long, default_value_t = 0.16)]
    pub snr: f64,
    /// Annealed Langevin (ald): the step size eps (the step at level i is eps sigma_i^2 / sigma_L^2).
    #[arg(long, default_value_t = 2e-5)]
    pub step_size: f64,
    /// Annealed Langevin (ald): Langevin moves per noise level.
    #[arg(long, default_value_t = 100)]
    pub langevin_steps: usize,
    /// Langevin corrector: corrector steps per noise level.
    #[arg(long, default_value_t = 1)]
    pub corrector_steps: usize,
    /// Predictor-corrector: the SDE step between corrector moves.
    #[arg(long, value_enum, default_value_t = PredictorKind::ReverseDiffusion)]
    pub predictor: PredictorKind,
    /// Flow and trig: take the solver's full step to t = 0, where their flow is regular (by default
    /// the step reaching sigma = 0 is Euler, as EDM, k-diffusion and diffusers' FlowMatchHeun do:
    /// global order at most 2).
    #[arg(long)]
    pub full_final_step: bool,
    /// Finish with one Tweedie denoising step (x <- E[x0 | x]).
    #[arg(long)]
    pub denoise_final: bool,
    /// Output samples, (N, d) float64 .npy (written atomically).
    #[arg(long, default_value = "samples.npy")]
    pub out: PathBuf,
    /// No progress bar and no summary line.
    #[arg(long)]
    pub quiet: bool,
    /// The ids of the flags given explicitly (`flags::given`): a solver option given to a solver
    /// that does not take it is an error, not silently ignored.
    #[arg(skip)]
    pub given: Vec<String>,
}

impl SampleArgs {
    /// The solver with the options its registry entry lists, taken from the flags (flags of
    /// options the solver does not take are not read), validated.
    pub fn solver(&self) -> scoresde::Result<Solver> {
        let mut solver = Solver::new(self.solver);
        let takes = |name: &str| self.solver.info().options.iter().any(|o| o.name == name);
        let is_option = |name: &str| SolverId::ALL.iter().any(|id| id.info().options.iter().any(|o| o.name == name));
        if let Some(name) = self.given.iter().find(|g| is_option(g) && !takes(g)) {
            return Err(scoresde::ScoreError::InvalidOption {
                solver: self.solver.info().name,
                option: name.clone(),
                value: self.option_text(name),
                expected: "not an option of this solver (`scoresde solvers` lists the options of each)",
            });
        }
        for option in self.solver.info().options {
            let value = match option.name {
                "eta" => match self.eta {
                    Some(e) => OptionValue::F64(e),
                    None => continue,
                },
                "variance" => OptionValue::Name(
                    clap::ValueEnum::to_possible_value(&self.variance)
                        .map(|v| v.get_name().to_string())
                        .unwrap_or_default(),
                ),
                "s_noise" => OptionValue::F64(self.s_noise),
                "s_churn" => OptionValue::F64(self.s_churn),
                "s_tmin" => OptionValue::F64(self.s_tmin),
                "s_tmax" => OptionValue::F64(self.s_tmax),
                "snr" => OptionValue::F64(self.snr),
                "corrector_steps" => OptionValue::Usize(self.corrector_steps),
                "step_size" => OptionValue::F64(self.step_size),
                "langevin_steps" => OptionValue::Usize(self.langevin_steps),
                "predictor" => OptionValue::Name(Predictor::from(self.predictor).name().to_string()),
                "lower_order_final" => OptionValue::Bool(self.lower_order_final),
                "orders" => match &self.orders {
                    Some(o) => OptionValue::List(o.clone()),
                    None => continue,
                },
                // A registry option without a flag: its default stays.
                _ => continue,
            };
            solver.set_option(option.name, value)?;
        }
        solver.validate()?;
        Ok(solver)
    }

    /// Flags given for another process or schedule than the chosen one are errors (solver
    /// options are checked with the solver): one rule, so that no given flag is silently ignored.
    fn check_flags_apply(&self) -> Result<(), String> {
        crate::choices::check_process_flags(&self.process, &self.given)?;
        self.grid_flags.check_rho(&self.given)?;
        Ok(())
    }

    /// The value of the flag of solver option `name`, as text.
    fn option_text(&self, name: &str) -> String {
        match name {
            "eta" => self.eta.map_or("(default)".to_string(), |e| e.to_string()),
            "variance" => format!("{:?}", self.variance),
            "s_noise" => self.s_noise.to_string(),
            "s_churn" => self.s_churn.to_string(),
            "s_tmin" => self.s_tmin.to_string(),
            "s_tmax" => self.s_tmax.to_string(),
            "snr" => self.snr.to_string(),
            "corrector_steps" => self.corrector_steps.to_string(),
            "step_size" => self.step_size.to_string(),
            "langevin_steps" => self.langevin_steps.to_string(),
            "predictor" => Predictor::from(self.predictor).name().to_string(),
            "lower_order_final" => self.lower_order_final.to_string(),
            "orders" => format!("{:?}", self.orders.clone().unwrap_or_default()),
            _ => "(given)".to_string(),
        }
    }
}

/// In-memory values for the file flags and the model, used in place of reading the flag's file
/// when set (the Python package passes arrays and callables). The flag itself is still given, so
/// that the same flag rules apply; its value is then only a name for messages.
#[derive(Default)]
pub struct SampleInputs {
    /// The target, in place of `--target`.
    pub target: Option<GaussianMixture>,
    /// A score model, in place of `--model` and the target's exact score.
    pub model: Option<Box<dyn ScoreModel>>,
    /// `--z-init`: (N, d) standard-normal draws.
    pub z_init: Option<Array2<f64>>,
    /// `--grid`: times from noise to data.
    pub grid: Option<Vec<f64>>,
    /// `--sigmas`: sigma~ levels from noise to data.
    pub sigmas: Option<Vec<f64>>,
    /// `--noise`: (draws, N, d) standard-normal noise.
    pub noise: Option<Array3<f64>>,
}

/// A validated run: the process and the sampler, built once from the flags (and the in-memory
/// grids), before anything is sampled.
pub struct Plan {
    /// The process.
    pub process: Box<dyn ForwardProcess>,
    /// The sampler: solver, space and the grid or adaptive range.
    pub config: SamplerConfig,
}

/// A grid from its file or its in-memory points, naming the flag in any error.
fn grid_input(path: &std::path::Path, given: Option<&[f64]>, flag: &str) -> Result<TimeGrid, String> {
    let points = match given {
        Some(p) => p.to_vec(),
        None => read_npy_1d(path, flag).map_err(|e| e.to_string())?.to_vec(),
    };
    TimeGrid::new(points).map_err(|e| format!("{flag} {}: {e}", path.display()))
}

/// The space and steps the flags ask for.
fn steps_from_args(
    a: &SampleArgs,
    inputs: &SampleInputs,
    process: &dyn ForwardProcess,
) -> Result<(Space, Steps), CmdError> {
    if let Some(p) = &a.grid {
        return Ok((Space::Time, Steps::Grid(grid_input(p, inputs.grid.as_deref(), "--grid")?)));
    }
    if let Some(p) = &a.sigmas {
        return Ok((Space::SigmaTilde, Steps::Grid(grid_input(p, inputs.sigmas.as_deref(), "--sigmas")?)));
    }
    let (t_start, t_end) = a.grid_flags.time_range(process);
    if a.rtol.is_some() || a.atol.is_some() {
        let options = AdaptiveOptions::new(a.rtol.unwrap_or(1e-5), a.atol.unwrap_or(1e-5))?;
        for (flag, v) in [("--sigma-start", a.sigma_start), ("--sigma-end", a.sigma_end)] {
            if let Some(v) = v.filter(|v| !(v.is_finite() && *v > 0.0)) {
                return Err(format!("{flag} = {v}: must be finite and positive").into());
            }
        }
        let (space, start, end) = match (a.sigma_start, a.sigma_end) {
            (Some(s0), Some(s1)) => (Space::SigmaTilde, s0, s1),
            _ => match a.grid_flags.space.into() {
                Space::Time => (Space::Time, t_start, t_end),
                Space::SigmaTilde => (Space::SigmaTilde, process.sigma_tilde(t_start), process.sigma_tilde(t_end)),
            },
        };
        return Ok((space, Steps::Adaptive { start, end, options }));
    }
    if a.sigma_start.is_some() {
        return Err("--sigma-start/--sigma-end set the range of an adaptive solve: give --rtol and --atol too".into());
    }
    let plan = a.grid_flags.plan(&a.process, process, &a.given)?;
    Ok((plan.space, plan.steps))
}

/// The validated sampler the flags ask for (`--nfe`: DPM-Solver-fast, its budget decoded by the
/// library).
pub fn sampler_from_args(
    a: &SampleArgs,
    inputs: &SampleInputs,
    process: &dyn ForwardProcess,
) -> Result<SamplerConfig, CmdError> {
    a.check_flags_apply()?;
    let config = match a.nfe {
        Some(nfe) => {
            if a.solver != SolverId::DpmSolver {
                return Err(format!("--nfe = {nfe}: sets DPM-Solver-fast's budget: needs --solver dpm-solver").into());
            }
            let (t_start, t_end) = a.grid_flags.time_range(process);
            SamplerConfig::dpm_solver_fast(process, nfe, t_start, t_end)?
        }
        None => {
            let (space, steps) = steps_from_args(a, inputs, process)?;
            SamplerConfig::new(process, a.solver()?, space, steps)?
        }
    };
    Ok(config.with_denoise_final(a.denoise_final).with_full_final_step(a.full_final_step))
}

/// N x d arrays a run may hold at once (the state, a solver's stages or history, its scratch):
/// dopri5's seven stages and error estimate are the most.
const WORKSPACE: u128 = 10;
const WORKSPACE_WHAT: &str = "the samples and the solver's buffers (about 10 x N x d float64)";

fn noise_source(
    a: &SampleArgs,
    given: Option<Array3<f64>>,
    n: usize,
    d: usize,
    config: &SamplerConfig,
) -> Result<Option<Box<dyn NoiseSource>>, CmdError> {
    let solver = config.solver();
    let steps = config.steps().count();
    let draws = Draw::total(steps, solver.extra_draws());
    if a.brownian && (a.noise.is_some() || !solver.is_stochastic()) {
        return Err(format!(
            "--brownian: solver {} with {} draws no fresh noise",
            solver.name(),
            if a.noise.is_some() { "--noise" } else { "no noise" }
        )
        .into());
    }
    match (&a.noise, solver.is_stochastic()) {
        (Some(_), false) => Err(format!("--noise: solver {} is deterministic and uses no noise", solver.name()).into()),
        (None, false) => Ok(None),
        (None, true) if a.brownian => match config.steps() {
            Steps::Grid(g) => Ok(Some(Box::new(BrownianNoise::new(a.seed, g, 0)?))),
            _ => Err("--brownian needs a grid".into()),
        },
        (None, true) => Ok(Some(Box::new(KeyedNoise::new(a.seed)))),
        (Some(p), true) => {
            let z = match given {
                Some(z) => z,
                None => read_npy_3d(p, "noise")?,
            };
            let (k, rows, cols) = z.dim();
            if rows != n || cols != d {
                return Err(format!(
                    "--noise {}: shape ({k}, {rows}, {cols}) but the samples are ({n}, {d})",
                    p.display()
                )
                .into());
            }
            if k < draws {
                return Err(format!(
                    "--noise {}: {k} draws of noise but {} needs {draws} ({steps} steps x {} draws per step)",
                    p.display(),
                    solver.name(),
                    1 + solver.extra_draws()
                )
                .into());
            }
            Ok(Some(Box::new(FixedNoise::new(z))))
        }
    }
}

fn progress(total: u64, quiet: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    let style =
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} steps  t={msg} (eta {eta})")
            .expect("valid template");
    bar.set_style(style);
    bar
}

/// The model the flags ask for: the exact score of the target (guided towards a class of
/// `--classes` with `--class`), or a trained network (`--model`), or the in-memory model.
fn model_from_args(a: &SampleArgs, inputs: &mut SampleInputs) -> Result<Box<dyn ScoreModel>, CmdError> {
    let target = |inputs: &mut SampleInputs| match inputs.target.take() {
        Some(t) => Ok::<_, CmdError>(t),
        None => Ok(targets::load(&a.target)?),
    };
    if let Some(model) = inputs.model.take() {
        if a.class.is_some() {
            return Err("--class: guidance needs the exact score or a class-conditional --model file".into());
        }
        return Ok(model);
    }
    if a.model.is_some() && a.given.iter().any(|g| g == "target") {
        return Err("--target: not read with --model (the network is the score; --target names the exact one)".into());
    }
    if let (Some(path), Some(c)) = (&a.guidance_flags.classifier, a.class) {
        let scale = a.guidance_flags.classifier_scale()?.ok_or("--classifier needs --classifier-scale")?;
        if a.classes.is_some() {
            return Err("--classes: a trained classifier's classes are fixed at training".into());
        }
        let uncond: Box<dyn ScoreModel> = match &a.model {
            // A class-conditional network without guidance is its null label: the unconditional model.
            Some(model) => Box::new(a.process.load_model(model)?),
            None => Box::new(ExactScore::new(target(inputs)?)),
        };
        let classifier = crate::classifier_cmd::load(path, &a.process, uncond.dim())?.of_class(c)?;
        return Ok(Box::new(scoresde::guidance::ClassifierGuided::with(uncond, Box::new(classifier), scale)?));
    }
    Ok(match (&a.model, a.class) {
        (None, Some(c)) => {
            let target = target(inputs)?;
            let spec = a.classes.as_deref().ok_or("--class with the exact score needs --classes (e.g. 0,1;2,3)")?;
            let classes = parse_classes(spec, target.n_components())?;
            let group = classes.get(c).ok_or_else(|| format!("--class = {c}: --classes defines {}", classes.len()))?;
            if let Some(scale) = a.guidance_flags.classifier_scale()? {
                return Ok(Box::new(scoresde::guidance::ClassifierGuided::new(&target, group, scale)?));
            }
            match a.guidance_flags.guidance(a.guidance, &a.given)? {
                None => Box::new(scoresde::guidance::GuidedExact::new(&target, group, a.guidance)?),
                Some(rule) => {
                    let cond = ExactScore::new(scoresde::guidance::sub_mixture(&target, group)?);
                    Box::new(scoresde::guidance::Guided::new(Box::new(cond), Box::new(ExactScore::new(target)), rule)?)
                }
            }
        }
        (None, None) => Box::new(ExactScore::new(target(inputs)?)),
        (Some(path), _) => {
            let mut net = a.process.load_model(path)?;
            if let Some(dtype) = a.dtype {
                net = net.with_dtype(dtype.into())?;
            }
            if a.classes.is_some() {
                return Err("--classes: a trained model's classes are fixed at training".into());
            }
            if a.guidance_flags.classifier_scale.is_some() {
                return Err("--classifier-scale: classifier guidance needs the exact classifier (--classes with the exact score)".into());
            }
            match (a.class, a.guidance_flags.guidance(a.guidance, &a.given)?) {
                (Some(c), None) => Box::new(net.with_guidance(c, a.guidance)?),
                (Some(c), Some(rule)) => {
                    let cond = net.guided(c, 0.0)?;
                    Box::new(scoresde::guidance::Guided::new(Box::new(cond), Box::new(net), rule)?)
                }
                (None, _) => Box::new(net),
            }
        }
    })
}

/// The validated process and sampler of the flags, without running anything (`scoresde.grid`
/// reads its grid; [`sample`] runs it).
pub fn plan(a: &SampleArgs, inputs: &SampleInputs) -> Result<Plan, CmdError> {
    let process = a.process.build()?;
    let config = sampler_from_args(a, inputs, &*process)?;
    Ok(Plan { process, config })
}

/// Draws the samples of `plan` with the model and prior draws the flags (and the in-memory
/// `inputs`) ask for; `observer` sees every accepted step. Nothing is written.
pub fn sample(
    a: &SampleArgs,
    plan: &Plan,
    mut inputs: SampleInputs,
    observer: &mut dyn FnMut(StepInfo),
) -> Result<(Array2<f64>, SampleReport), CmdError> {
    let observed = a.inpaint_flags.observation(&a.given)?;
    if let Some((obs, crate::inpaint_flags::InpaintKind::Exact, _)) = &observed {
        if a.model.is_some() || a.class.is_some() {
            return Err("--inpaint exact: draws from the exact target's conditional (no --model, no --class)".into());
        }
        let target = match inputs.target.take() {
            Some(t) => t,
            None => targets::load(&a.target)?,
        };
        if a.given.iter().any(|g| g == "n") && a.n != obs.rows() {
            return Err(format!("--n = {}: --observe has {} rows", a.n, obs.rows()).into());
        }
        let x = scoresde::inpaint::sample_conditional(&target, obs, a.seed)?;
        return Ok((x, SampleReport::default()));
    }
    let model = model_from_args(a, &mut inputs)?;
    let d = model.dim();
    let n = match &observed {
        Some((obs, ..)) if !a.given.iter().any(|g| g == "n") => obs.rows(),
        _ => a.n,
    };
    let z = match (&a.z_init, inputs.z_init.take()) {
        (Some(p), given) => {
            let z = match given {
                Some(z) => z,
                None => read_npy_2d(p, "z-init")?,
            };
            if z.ncols() != d || z.nrows() == 0 {
                return Err(format!(
                    "--z-init {}: shape ({}, {}) but the target has dimension {d} (need N >= 1 rows)",
                    p.display(),
                    z.nrows(),
                    z.ncols()
                )
                .into());
            }
            z
        }
        (None, _) if n == 0 => return Err("--n = 0: must be at least 1".into()),
        (None, _) => {
            check_f64s("--n", n, WORKSPACE * (n as u128) * (d as u128), WORKSPACE_WHAT)?;
            prior_noise(a.seed, n, d)
        }
    };
    if let Some((obs, _, method)) = &observed {
        let x = scoresde::inpaint::inpaint(&*plan.process, &*model, &plan.config, z.view(), obs, *method, a.seed)?;
        return Ok(x);
    }
    let mut noise = noise_source(a, inputs.noise.take(), z.nrows(), d, &plan.config)?;
    Ok(sample_owned(&*plan.process, &*model, &plan.config, z, noise.as_deref_mut(), observer)?)
}

/// Runs `scoresde sample`.
pub fn run(a: SampleArgs) -> CmdResult {
    let plan = plan(&a, &SampleInputs::default())?;
    let bar = progress(plan.config.steps().count() as u64, a.quiet);
    let started = Instant::now();
    let (x, report) = sample(&a, &plan, SampleInputs::default(), &mut |info| {
        bar.inc(1);
        bar.set_message(format!("{:.4}", info.t1));
    })?;
    bar.finish_and_clear();
    write_npy(&a.out, &x)?;
    let exact_draws =
        a.inpaint_flags.observe.is_some() && a.inpaint_flags.inpaint == crate::inpaint_flags::InpaintKind::Exact;
    if !a.quiet && exact_draws {
        eprintln!(
            "wrote {} ({} x {}): exact draws from the target's conditional, {:.3} s",
            a.out.display(),
            x.nrows(),
            x.ncols(),
            started.elapsed().as_secs_f64()
        );
    } else if !a.quiet {
        eprintln!(
            "wrote {} ({} x {}): {} on {} in {:?} space, {} steps ({} rejected), NFE {}, {:.3} s",
            a.out.display(),
            x.nrows(),
            x.ncols(),
            plan.config.solver().name(),
            plan.process.name(),
            plan.config.space(),
            report.steps,
            report.rejected,
            report.nfe,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
