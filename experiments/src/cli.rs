//! Argument definitions (clap derive) and dispatch. Each closed set of choices is a `ValueEnum`;
//! the field doc comments are the `--help` text.

use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use scoresde::grids::{Schedule, Space};
use scoresde::process::{Edm, ForwardProcess, SubVp, Ve, Vp, VpCosine};
use scoresde::sampler::{OptionValue, Predictor, Solver, SolverId};

use crate::{bench_cmd, eval_cmd, nll_cmd, sample_cmd, sweep, train_cmd};

/// Error type of the commands: any error, printed as one line with its causes.
pub type CmdResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// scoresde: numerics of diffusion models, tested against exact targets.
#[derive(Debug, Parser)]
#[command(name = "scoresde", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Draw samples with a reverse-SDE or probability-flow solver and the exact score of a target.
    Sample(Box<SampleArgs>),
    /// Compare a sample file with the exact target: mean and covariance error, sliced W2, log-density.
    Eval(EvalArgs),
    /// Log-likelihood of points through the probability-flow ODE (exact divergence), checked
    /// against the target's closed-form density.
    Nll(NllArgs),
    /// Run an experiment sweep (default: the headline steps-vs-quality figure on the ring) and
    /// write CSV, JSON sidecar and PNG/SVG figures.
    Sweep(SweepArgs),
    /// Train an MLP score model by denoising score matching (checkpoints, resume, loss curve).
    Train(Box<train_cmd::TrainArgs>),
    /// Time sampling and the exact-score kernel (particle-NFE per second) and print a Markdown table.
    Bench(bench_cmd::BenchArgs),
    /// List every solver from the registry: order, NFE per step, space, options, paper, the peer
    /// runs it reproduces (Markdown; the README's solver table is this output).
    Solvers,
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> CmdResult {
    match cli.command {
        Command::Sample(a) => sample_cmd::run(*a),
        Command::Eval(a) => eval_cmd::run(a),
        Command::Nll(a) => nll_cmd::run(a),
        Command::Sweep(a) => sweep::run(a),
        Command::Train(a) => train_cmd::run(*a),
        Command::Bench(a) => bench_cmd::run(a),
        Command::Solvers => {
            print!("{}", scoresde::sampler::registry::markdown_table());
            Ok(())
        }
    }
}

/// The forward process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProcessKind {
    /// Variance preserving, linear beta (--beta-min, --beta-max).
    Vp,
    /// Sub-VP, linear beta (--beta-min, --beta-max).
    Subvp,
    /// Variance exploding (--sigma-min, --sigma-max; defaults 0.01, 50).
    Ve,
    /// Cosine VP schedule (--cosine-s; T = 0.9946).
    Cosine,
    /// EDM, sigma = t (--sigma-min, --sigma-max; defaults 0.002, 80).
    Edm,
}

/// `--solver` values: the registry's names, with each solver's summary as its help.
#[derive(Debug, Clone, Copy)]
pub struct SolverParser;

impl clap::builder::TypedValueParser for SolverParser {
    type Value = SolverId;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<SolverId, clap::Error> {
        let text = value.to_string_lossy();
        SolverId::from_name(&text).ok_or_else(|| {
            let mut err = clap::Error::new(clap::error::ErrorKind::InvalidValue).with_cmd(cmd);
            let flag = arg.map_or("--solver".to_string(), |a| a.to_string());
            err.insert(clap::error::ContextKind::InvalidArg, clap::error::ContextValue::String(flag));
            err.insert(clap::error::ContextKind::InvalidValue, clap::error::ContextValue::String(text.into_owned()));
            err.insert(
                clap::error::ContextKind::ValidValue,
                clap::error::ContextValue::Strings(SolverId::names().map(str::to_string).collect()),
            );
            err
        })
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        Some(Box::new(SolverId::ALL.into_iter().map(|id| {
            let i = id.info();
            clap::builder::PossibleValue::new(i.name)
                .help(format!("{} (order {}, {} NFE/step)", i.summary, i.order, i.nfe_per_step))
        })))
    }
}

/// The SDE step of `--solver pc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PredictorKind {
    /// score_sde's reverse-diffusion predictor.
    ReverseDiffusion,
    /// Euler-Maruyama on the reverse SDE.
    EulerMaruyama,
    /// The DDPM posterior step.
    Ancestral,
}

impl From<PredictorKind> for Predictor {
    fn from(p: PredictorKind) -> Self {
        match p {
            PredictorKind::ReverseDiffusion => Predictor::ReverseDiffusion,
            PredictorKind::EulerMaruyama => Predictor::EulerMaruyama,
            PredictorKind::Ancestral => Predictor::Ancestral,
        }
    }
}

impl SampleArgs {
    /// The solver with the options its registry entry lists, taken from the flags (flags of
    /// options the solver does not take are not read), validated.
    pub fn solver(&self) -> scoresde::Result<Solver> {
        let mut solver = Solver::new(self.solver);
        for option in self.solver.info().options {
            let value = match option.name {
                "eta" => OptionValue::F64(self.eta),
                "s_noise" => OptionValue::F64(self.s_noise),
                "s_churn" => OptionValue::F64(self.s_churn),
                "s_tmin" => OptionValue::F64(self.s_tmin),
                "s_tmax" => OptionValue::F64(self.s_tmax),
                "snr" => OptionValue::F64(self.snr),
                "corrector_steps" => OptionValue::Usize(self.corrector_steps),
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
}

/// Spacing of a generated grid (--steps).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScheduleKind {
    /// Uniform in t.
    UniformT,
    /// Uniform in log-SNR.
    Logsnr,
    /// Uniform in sqrt(t).
    Quadratic,
    /// Karras et al. rho-schedule in sigma~ (--rho).
    Karras,
}

impl ScheduleKind {
    /// The library schedule.
    pub fn schedule(self, rho: f64) -> Schedule {
        match self {
            Self::UniformT => Schedule::UniformT,
            Self::Logsnr => Schedule::LogSnr,
            Self::Quadratic => Schedule::Quadratic,
            Self::Karras => Schedule::Karras { rho },
        }
    }
}

/// The variable the ODE solver steps in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SpaceKind {
    /// Process time t (state x).
    T,
    /// EDM's sigma~ = sigma/alpha (state x/alpha).
    Sigma,
}

impl From<SpaceKind> for Space {
    fn from(s: SpaceKind) -> Self {
        match s {
            SpaceKind::T => Space::Time,
            SpaceKind::Sigma => Space::SigmaTilde,
        }
    }
}

/// Process flags shared by the commands.
#[derive(Debug, Clone, Args)]
pub struct ProcessArgs {
    /// Forward process.
    #[arg(long, value_enum, default_value_t = ProcessKind::Vp)]
    pub process: ProcessKind,
    /// VP / sub-VP: beta(0).
    #[arg(long, default_value_t = 0.1)]
    pub beta_min: f64,
    /// VP / sub-VP: beta(1).
    #[arg(long, default_value_t = 20.0)]
    pub beta_max: f64,
    /// VE / EDM: smallest sigma [default: 0.01 for ve, 0.002 for edm].
    #[arg(long)]
    pub sigma_min: Option<f64>,
    /// VE / EDM: largest sigma, the prior std [default: 50 for ve, 80 for edm].
    #[arg(long)]
    pub sigma_max: Option<f64>,
    /// Cosine: the offset s of abar(t).
    #[arg(long, default_value_t = 0.008)]
    pub cosine_s: f64,
}

impl ProcessArgs {
    /// Builds the validated process.
    pub fn build(&self) -> scoresde::Result<Box<dyn ForwardProcess>> {
        Ok(match self.process {
            ProcessKind::Vp => Box::new(Vp::new(self.beta_min, self.beta_max)?),
            ProcessKind::Subvp => Box::new(SubVp::new(self.beta_min, self.beta_max)?),
            ProcessKind::Ve => Box::new(Ve::new(self.sigma_min.unwrap_or(0.01), self.sigma_max.unwrap_or(50.0))?),
            ProcessKind::Cosine => Box::new(VpCosine::new(self.cosine_s, 0.9946)?),
            ProcessKind::Edm => Box::new(Edm::new(self.sigma_min.unwrap_or(0.002), self.sigma_max.unwrap_or(80.0))?),
        })
    }
}

/// Flags of `scoresde sample`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("init").args(["z_init", "n"])))]
#[command(group(ArgGroup::new("steps_from").args(["grid", "sigmas", "steps"])))]
pub struct SampleArgs {
    /// Target: a built-in name (ring8, aniso16, gauss2, quad4, diag16) or a JSON file
    /// {"weights", "means", and one of "variances" | "diag" | "full"}.
    #[arg(long, default_value = "ring8")]
    pub target: String,
    /// A trained score model (`scoresde train --out`) instead of the target's exact score; the
    /// process flags must match the ones it was trained with.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Classifier-free guidance towards this class (a class-conditional --model, or a class of
    /// --classes with the exact score).
    #[arg(long)]
    pub class: Option<usize>,
    /// Guidance weight w: eps = (1 + w) eps(x | class) - w eps(x).
    #[arg(long, default_value_t = 0.0, requires = "class")]
    pub guidance: f64,
    /// With the exact score: the classes as component groups, e.g. `0,1;2,3`.
    #[arg(long, requires = "class")]
    pub classes: Option<String>,
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
    /// Number of steps of a generated grid (used when neither --grid nor --sigmas nor
    /// --rtol/--atol is given) [default: 50].
    #[arg(long)]
    pub steps: Option<usize>,
    /// Spacing of the generated grid.
    #[arg(long, value_enum, default_value_t = ScheduleKind::UniformT)]
    pub schedule: ScheduleKind,
    /// rho of the Karras schedule.
    #[arg(long, default_value_t = 7.0)]
    pub rho: f64,
    /// Variable the ODE solver steps in, for generated grids and adaptive solves (solvers that step
    /// in one space only get the same grid points expressed in theirs: euler-maruyama steps in t).
    #[arg(long, value_enum, default_value_t = SpaceKind::T)]
    pub space: SpaceKind,
    /// Start time (noise end) of a generated grid or adaptive solve [default: T of the process].
    #[arg(long)]
    pub t_start: Option<f64>,
    /// End time (data end) [default: 1e-3 for vp/subvp/cosine, 1e-5 for ve, sigma_min for edm].
    #[arg(long)]
    pub t_end: Option<f64>,
    /// Adaptive solve in sigma space: start level sigma~ (with --sigma-end, --rtol, --atol).
    #[arg(long, requires = "sigma_end", conflicts_with_all = ["t_start", "t_end"])]
    pub sigma_start: Option<f64>,
    /// Adaptive solve in sigma space: end level sigma~.
    #[arg(long, requires = "sigma_start")]
    pub sigma_end: Option<f64>,
    /// Relative tolerance: makes dopri5/tsit5 adaptive [default when --atol is given: 1e-5].
    #[arg(long, conflicts_with_all = ["grid", "sigmas", "steps"])]
    pub rtol: Option<f64>,
    /// Absolute tolerance: makes dopri5/tsit5 adaptive [default when --rtol is given: 1e-5].
    #[arg(long, conflicts_with_all = ["grid", "sigmas", "steps"])]
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
    /// Ancestral / SDE samplers: noise scale eta (1 = full ancestral step, 0 = deterministic).
    #[arg(long, default_value_t = 1.0)]
    pub eta: f64,
    /// Stochastic samplers: multiplier of the fresh noise (s_noise, EDM's S_noise).
    #[arg(long, default_value_t = 1.0)]
    pub s_noise: f64,
    /// Singlestep DPM-Solver: per-step orders, e.g. 3,3,3,1 [default: 3 on every step].
    #[arg(long, value_delimiter = ',', conflicts_with = "nfe")]
    pub orders: Option<Vec<usize>>,
    /// dpm-solver only: DPM-Solver-fast for this NFE budget (floor(nfe/3) + 1 log-SNR-uniform steps
    /// between --t-start and --t-end, orders 3,..,3 then 2,1 or nfe mod 3).
    #[arg(long, conflicts_with_all = ["grid", "sigmas", "steps", "rtol", "atol"])]
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
    /// Langevin corrector: corrector steps per noise level.
    #[arg(long, default_value_t = 1)]
    pub corrector_steps: usize,
    /// Predictor-corrector: the SDE step between corrector moves.
    #[arg(long, value_enum, default_value_t = PredictorKind::ReverseDiffusion)]
    pub predictor: PredictorKind,
    /// Finish with one Tweedie denoising step (x <- E[x0 | x]).
    #[arg(long)]
    pub denoise_final: bool,
    /// Output samples, (N, d) float64 .npy (written atomically).
    #[arg(long, default_value = "samples.npy")]
    pub out: PathBuf,
    /// No progress bar and no summary line.
    #[arg(long)]
    pub quiet: bool,
}

/// Flags of `scoresde eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Target: a built-in name or a JSON file.
    #[arg(long, default_value = "ring8")]
    pub target: String,
    /// Samples to evaluate, (N, d) float64 .npy.
    #[arg(long, default_value = "samples.npy")]
    pub samples: PathBuf,
    /// Also write the metrics as JSON here (atomically).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Compare with the noised target p_t at signal coefficient alpha (with --sigma); 1 = data.
    #[arg(long, default_value_t = 1.0)]
    pub alpha: f64,
    /// Compare with the noised target p_t at noise level sigma; 0 = data.
    #[arg(long, default_value_t = 0.0)]
    pub sigma: f64,
    /// Exact reference samples for sliced W2 [default: as many as the samples].
    #[arg(long)]
    pub reference_n: Option<usize>,
    /// Random projections for sliced W2.
    #[arg(long, default_value_t = 256)]
    pub projections: usize,
    /// Seed of the reference samples and projections.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Rows used by the O(n^2) metrics (MMD, energy distance).
    #[arg(long, default_value_t = 2000)]
    pub pairwise_max: usize,
}

/// The density used at the noise end of the likelihood ODE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PriorKind {
    /// The process's Gaussian prior N(0, prior_std^2 I), as with a trained model.
    Gaussian,
    /// The target's exact p_T, so that only the ODE error remains.
    Exact,
}

/// Flags of `scoresde nll`.
#[derive(Debug, Args)]
pub struct NllArgs {
    /// Target: a built-in name or a JSON file.
    #[arg(long, default_value = "ring8")]
    pub target: String,
    /// Points, (N, d) float64 .npy.
    #[arg(long)]
    pub points: PathBuf,
    /// Output log-likelihoods, (N,) float64 .npy (written atomically).
    #[arg(long, default_value = "loglik.npy")]
    pub out: PathBuf,
    #[command(flatten)]
    pub process: ProcessArgs,
    /// Time the points live at (0 = data).
    #[arg(long, default_value_t = 0.0)]
    pub t_start: f64,
    /// Relative tolerance of the adaptive Dormand-Prince solve.
    #[arg(long, default_value_t = 1e-8)]
    pub rtol: f64,
    /// Absolute tolerance.
    #[arg(long, default_value_t = 1e-8)]
    pub atol: f64,
    /// Density at the noise end T.
    #[arg(long, value_enum, default_value_t = PriorKind::Gaussian)]
    pub prior: PriorKind,
    /// Estimate the divergence with Hutchinson's estimator and this many probes per point, instead
    /// of the exact divergence (0 = exact).
    #[arg(long, default_value_t = 0)]
    pub hutchinson: usize,
    /// Distribution of Hutchinson's probe vectors.
    #[arg(long, value_enum, default_value_t = ProbeArg::Rademacher)]
    pub probe: ProbeArg,
    /// Seed of the probe vectors.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Distribution of Hutchinson's probe vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProbeArg {
    /// Entries +-1.
    Rademacher,
    /// Standard normal entries.
    Gaussian,
}

/// Flags of `scoresde sweep`.
#[derive(Debug, Args)]
pub struct SweepArgs {
    /// JSON config (fields: experiment, targets, processes, solvers [{solver, space}], steps,
    /// schedule, n, seeds, projections, floor_reps; all optional) [default: the headline sweep].
    pub config: Option<PathBuf>,
    /// Output directory [default: plots].
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
    /// Run only the cells with index i mod n (for splitting across machines), as `i/n`.
    #[arg(long)]
    pub shard: Option<String>,
    /// No progress bar and no summary.
    #[arg(long)]
    pub quiet: bool,
}
