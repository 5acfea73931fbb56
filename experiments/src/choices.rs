//! Choices and helpers shared by the commands: the process, schedule, space, solver and
//! predictor flags, class parsing and the commands' result type. Imports no command module.

use clap::{Args, ValueEnum};
use scoresde::grids::{Schedule, Space};
use std::path::PathBuf;

use scoresde::process::{BetaSchedule, DdpmTable, ForwardProcess, ProcessSpec, COSINE_T_MAX};
use scoresde::sampler::{Predictor, SolverId};

/// Error of the commands: any error, printed as one line with its causes.
pub type CmdError = Box<dyn std::error::Error + Send + Sync>;

/// Result of a command.
pub type CmdResult = Result<(), CmdError>;

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
    /// Rectified flow / flow matching: x_t = (1 - t) x0 + t z, t from 1 (noise) to 0.
    Flow,
    /// Trigonometric interpolant: alpha = cos(pi t/2), sigma = sin(pi t/2).
    Trig,
    /// The discrete DDPM chain: t = the timestep index 0..T-1, t = -1 the data
    /// (--alphas-cumprod, or --train-steps --beta-schedule --beta-start --beta-end [--rescale-zero-snr]).
    Ddpm,
}

/// diffusers' `beta_schedule` (--beta-schedule).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BetaScheduleKind {
    /// Linear betas (DDPM).
    Linear,
    /// Linear in sqrt(beta) (Stable Diffusion).
    ScaledLinear,
    /// iDDPM's cosine alpha-bar (`squaredcos_cap_v2`).
    Squaredcos,
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
    /// DDPM: the chain's alpha-bar table, (T,) float64 .npy (diffusers' `alphas_cumprod`).
    #[arg(long, conflicts_with_all = ["beta_schedule", "beta_start", "beta_end", "rescale_zero_snr", "train_steps"])]
    pub alphas_cumprod: Option<PathBuf>,
    /// DDPM: the number of steps T of the chain (`num_train_timesteps`).
    #[arg(long, default_value_t = 1000)]
    pub train_steps: usize,
    /// DDPM: how the betas are generated.
    #[arg(long, value_enum, default_value_t = BetaScheduleKind::Linear)]
    pub beta_schedule: BetaScheduleKind,
    /// DDPM: beta_1.
    #[arg(long, default_value_t = 1e-4)]
    pub beta_start: f64,
    /// DDPM: beta_T.
    #[arg(long, default_value_t = 0.02)]
    pub beta_end: f64,
    /// DDPM: rescale the betas to zero terminal SNR (Lin et al. 2024, Algorithm 1); the last
    /// alpha-bar is then 2^-24, as in diffusers' Euler schedulers, so that sigma stays finite.
    #[arg(long)]
    pub rescale_zero_snr: bool,
}

/// Process flags given for another process than the chosen one are errors, naming the flag and
/// the process.
pub fn check_process_flags(args: &ProcessArgs, given: &[String]) -> Result<(), String> {
    match given.iter().find(|g| !process_flag_applies(args.process, g)) {
        Some(flag) => Err(format!(
            "--{}: does not apply to --process {} (see `scoresde sample --help` for each process's flags)",
            flag.replace('_', "-"),
            clap::ValueEnum::to_possible_value(&args.process).map(|v| v.get_name().to_string()).unwrap_or_default()
        )),
        None => Ok(()),
    }
}

/// The process flags that apply to `kind` only (the rest apply to every process).
pub fn process_flag_applies(kind: ProcessKind, flag: &str) -> bool {
    use ProcessKind as P;
    match flag {
        "beta_min" | "beta_max" => matches!(kind, P::Vp | P::Subvp),
        "sigma_min" | "sigma_max" => matches!(kind, P::Ve | P::Edm),
        "cosine_s" => kind == P::Cosine,
        "alphas_cumprod" | "train_steps" | "beta_schedule" | "beta_start" | "beta_end" | "rescale_zero_snr" => {
            kind == P::Ddpm
        }
        _ => true,
    }
}

impl ProcessArgs {
    /// The trained network at `path` (`--model`), refused unless it was trained on the process
    /// these flags give.
    pub fn load_model(&self, path: &std::path::Path) -> Result<scoresde::nn::NetScore, CmdError> {
        let net = scoresde::nn::NetScore::load(path, &scoresde::nn::device())?;
        let trained = ProcessSpec::from_json(&net.checkpoint().meta["process"])
            .map_err(|e| format!("--model {}: {e}", path.display()))?;
        let given = self.spec()?;
        if trained != given {
            return Err(format!(
                "--model {}: process mismatch: trained on process {trained}, the flags give {given}",
                path.display()
            )
            .into());
        }
        Ok(net)
    }

    /// The flags' defaults for `process`.
    pub fn defaults(process: ProcessKind) -> Self {
        Self {
            process,
            beta_min: 0.1,
            beta_max: 20.0,
            sigma_min: None,
            sigma_max: None,
            cosine_s: 0.008,
            alphas_cumprod: None,
            train_steps: 1000,
            beta_schedule: BetaScheduleKind::Linear,
            beta_start: 1e-4,
            beta_end: 0.02,
            rescale_zero_snr: false,
        }
    }

    /// The process the flags describe: only the flags of the chosen process are read (an
    /// `--alphas-cumprod` file is read here).
    pub fn spec(&self) -> Result<ProcessSpec, CmdError> {
        Ok(match self.process {
            ProcessKind::Vp => ProcessSpec::Vp { beta_min: self.beta_min, beta_max: self.beta_max },
            ProcessKind::Subvp => ProcessSpec::SubVp { beta_min: self.beta_min, beta_max: self.beta_max },
            ProcessKind::Ve => {
                ProcessSpec::Ve { sigma_min: self.sigma_min.unwrap_or(0.01), sigma_max: self.sigma_max.unwrap_or(50.0) }
            }
            ProcessKind::Cosine => ProcessSpec::Cosine { s: self.cosine_s, t_max: COSINE_T_MAX },
            ProcessKind::Edm => ProcessSpec::Edm {
                sigma_min: self.sigma_min.unwrap_or(0.002),
                sigma_max: self.sigma_max.unwrap_or(80.0),
            },
            ProcessKind::Flow => ProcessSpec::Flow,
            ProcessKind::Trig => ProcessSpec::Trig,
            ProcessKind::Ddpm => ProcessSpec::Ddpm(match &self.alphas_cumprod {
                Some(path) => DdpmTable::AlphasCumprod {
                    alphas_cumprod: scoresde::io::read_npy_1d(path, "alphas-cumprod")?.to_vec(),
                },
                None => DdpmTable::Betas {
                    train_steps: self.train_steps,
                    schedule: match self.beta_schedule {
                        BetaScheduleKind::Linear => BetaSchedule::Linear,
                        BetaScheduleKind::ScaledLinear => BetaSchedule::ScaledLinear,
                        BetaScheduleKind::Squaredcos => BetaSchedule::Squaredcos,
                    },
                    beta_start: self.beta_start,
                    beta_end: self.beta_end,
                    rescale_zero_snr: self.rescale_zero_snr,
                },
            }),
        })
    }

    /// Builds the validated process.
    pub fn build(&self) -> Result<Box<dyn ForwardProcess>, CmdError> {
        let spec = self.spec()?;
        spec.build().map_err(|e| match &self.alphas_cumprod {
            Some(path) => format!("--alphas-cumprod {}: {e}", path.display()).into(),
            None => e.into(),
        })
    }
}

/// A process with its default parameters (the sweep's processes).
pub fn default_process(kind: ProcessKind) -> Result<Box<dyn ForwardProcess>, CmdError> {
    ProcessArgs::defaults(kind).build()
}

/// The space's name in the sweep CSV (`t`, `sigma`).
pub fn space_name(s: SpaceKind) -> &'static str {
    match s {
        SpaceKind::T => "t",
        SpaceKind::Sigma => "sigma",
    }
}

/// Spacing of a generated grid (--steps).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScheduleKind {
    /// Uniform in t.
    UniformT,
    /// Uniform in log-SNR = log-linear in sigma~ (k-diffusion's and diffusers' exponential).
    #[value(alias = "exponential")]
    Logsnr,
    /// Uniform in sqrt(t).
    Quadratic,
    /// Karras et al. rho-schedule in sigma~ (--rho).
    Karras,
    /// k-diffusion's polyexponential in sigma~ (--rho; 1 = exponential).
    Polyexponential,
    /// diffusers' beta sigmas: Beta(0.6, 0.6) quantiles in sigma~.
    Beta,
    /// KL-optimal: uniform in arctan sigma~ (ComfyUI's kl_optimal).
    KlOptimal,
    /// ComfyUI's linear-quadratic schedule in t (Mochi).
    LinearQuadratic,
    /// Align-Your-Steps table of Stable Diffusion 1.5 (sigma~, log-linear for other step counts).
    AysSd1,
    /// Align-Your-Steps table of SDXL.
    AysSdxl,
    /// Align-Your-Steps table of Stable Video Diffusion.
    AysSvd,
    /// diffusers' flow-match grid on t (--shift S or --mu M; --process flow or trig). Reproduces
    /// FlowMatchEulerDiscreteScheduler, whose table shifts its last nonzero t twice
    /// (shift(shift(1/1000))); --single-shift gives shift(linspace(1, 1/1000, n)) then 0.
    /// (DPMSolverMultistep with use_flow_sigmas instead starts at shift(0.999):
    /// shift(linspace(0.999, 0.999/n, n)) then 0; give that table as --grid.)
    FlowShift,
}

impl ScheduleKind {
    /// The library schedule (flow-shift with the given shift and whether diffusers' table is
    /// reproduced).
    pub fn schedule(self, rho: f64) -> Schedule {
        self.schedule_with(rho, scoresde::grids::FlowShift::Static(1.0), true)
    }

    /// The library schedule, flow-shift with `shift`.
    pub fn schedule_with(self, rho: f64, shift: scoresde::grids::FlowShift, diffusers: bool) -> Schedule {
        use scoresde::grids::AysModel;
        match self {
            Self::UniformT => Schedule::UniformT,
            Self::Logsnr => Schedule::LogSnr,
            Self::Quadratic => Schedule::Quadratic,
            Self::Karras => Schedule::Karras { rho },
            Self::Polyexponential => Schedule::PolyExponential { rho },
            Self::Beta => Schedule::Beta,
            Self::KlOptimal => Schedule::KlOptimal,
            Self::LinearQuadratic => Schedule::LinearQuadratic,
            Self::AysSd1 => Schedule::Ays(AysModel::Sd1),
            Self::AysSdxl => Schedule::Ays(AysModel::Sdxl),
            Self::AysSvd => Schedule::Ays(AysModel::Svd),
            Self::FlowShift => Schedule::FlowShift { shift, diffusers },
        }
    }
}

/// diffusers' `timestep_spacing` (--timestep-spacing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SpacingKind {
    /// linspace(0, T-1, n) reversed, fractions kept (EulerDiscreteScheduler's default; DDPM and
    /// DDIM round them: give their --timesteps to reproduce those).
    Linspace,
    /// arange(n) * (T // n) reversed, + --steps-offset (DDPM's and DDIM's default).
    Leading,
    /// round(arange(T, 0, -T/n)) - 1: starts at T - 1 (Lin et al. 2024).
    Trailing,
}

/// The sigma table of diffusers' Euler schedulers (--sigma-schedule).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SigmaScheduleKind {
    /// The chain's sigma~ at the timesteps.
    Default,
    /// use_karras_sigmas (rho 7) between that table's ends.
    Karras,
    /// use_exponential_sigmas.
    Exponential,
    /// use_beta_sigmas (Beta(0.6, 0.6)).
    Beta,
}

/// The precision of a network's fused CPU passes (--dtype).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DtypeKind {
    /// Double precision.
    F64,
    /// Single precision (weights and Adam moments kept in f64).
    F32,
}

impl From<DtypeKind> for scoresde::nn::NetDtype {
    fn from(k: DtypeKind) -> Self {
        match k {
            DtypeKind::F64 => Self::F64,
            DtypeKind::F32 => Self::F32,
        }
    }
}

/// DDPM's reverse-step variance (--variance).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VarianceKind {
    /// beta~_t = (1 - ab_{t-1}) / (1 - ab_t) beta_t (diffusers' fixed_small).
    FixedSmall,
    /// beta_t (fixed_large).
    FixedLarge,
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
    /// DDPM's step with variance beta_t.
    DdpmLarge,
    /// No predictor: corrector moves only (x unchanged between levels).
    None,
}

impl From<PredictorKind> for Predictor {
    fn from(p: PredictorKind) -> Self {
        match p {
            PredictorKind::ReverseDiffusion => Predictor::ReverseDiffusion,
            PredictorKind::EulerMaruyama => Predictor::EulerMaruyama,
            PredictorKind::Ancestral => Predictor::Ancestral,
            PredictorKind::DdpmLarge => Predictor::DdpmLarge,
            PredictorKind::None => Predictor::None,
        }
    }
}

/// Parses `0,1;2,3` into component groups, checking each index against the target.
pub fn parse_classes(spec: &str, components: usize) -> Result<Vec<Vec<usize>>, String> {
    let bad = |why: String| format!("--classes {spec:?}: {why} (expected component groups like 0,1;2,3)");
    let groups = parse_groups(spec, components, &bad)?;
    let mut seen = vec![None; components];
    for (g, group) in groups.iter().enumerate() {
        for &k in group {
            if let Some(first) = seen[k].replace(g) {
                return Err(bad(format!(
                    "component {k} is in class {first} and in class {g}: classes must not overlap"
                )));
            }
        }
    }
    Ok(groups)
}

fn parse_groups(spec: &str, components: usize, bad: &dyn Fn(String) -> String) -> Result<Vec<Vec<usize>>, String> {
    spec.split(';')
        .map(|group| {
            group
                .split(',')
                .map(|c| {
                    let k: usize = c.trim().parse().map_err(|_| bad(format!("{c:?} is not a component index")))?;
                    if k >= components {
                        return Err(bad(format!("component {k}: the target has {components}")));
                    }
                    Ok(k)
                })
                .collect::<Result<Vec<usize>, String>>()
        })
        .collect()
}
