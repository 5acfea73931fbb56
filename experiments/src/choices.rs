//! Choices and helpers shared by the commands: the process, schedule, space, solver and
//! predictor flags, class parsing and the commands' result type. Imports no command module.

use clap::{Args, ValueEnum};
use scoresde::grids::{Schedule, Space};
use scoresde::process::{ForwardProcess, ProcessSpec, COSINE_T_MAX};
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
    /// The flags' defaults for `process`.
    pub fn defaults(process: ProcessKind) -> Self {
        Self { process, beta_min: 0.1, beta_max: 20.0, sigma_min: None, sigma_max: None, cosine_s: 0.008 }
    }

    /// The process the flags describe: only the flags of the chosen process are read.
    pub fn spec(&self) -> ProcessSpec {
        match self.process {
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
        }
    }

    /// Builds the validated process.
    pub fn build(&self) -> scoresde::Result<Box<dyn ForwardProcess>> {
        self.spec().build()
    }
}

/// A process with its default parameters (the sweep's processes).
pub fn default_process(kind: ProcessKind) -> scoresde::Result<Box<dyn ForwardProcess>> {
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
