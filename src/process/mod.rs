//! Forward noising processes with Gaussian marginals (MATH.md section 1).
//!
//! Every process here has a linear, state-scalar drift, dx = f(t) x dt + g(t) dW, so its marginal
//! is q(x_t | x_0) = N(alpha(t) x_0, sigma(t)^2 I) and everything a sampler needs is a handful of
//! scalar functions of t: the SDE coefficients f and g^2, the marginal coefficients alpha and
//! sigma, the half log-SNR lambda = log(alpha / sigma) and its inverse (to place the intermediate
//! points of exponential integrators), and the map between t and EDM's sigma~ = sigma / alpha.
//! Closed forms are used wherever they exist; they are tested against the defining identities
//! f = d log alpha / dt and g^2 = d sigma^2 / dt - 2 f sigma^2 (tests/identities.rs).

use std::f64::consts::PI;
use std::fmt::Debug;

use serde::{Deserialize, Serialize};

use crate::error::{Result, ScoreError};

mod discrete;
mod interpolant;

pub use discrete::{betas, cumprod, rescale_zero_snr, BetaSchedule, Ddpm, DdpmTable, ZERO_SNR_LAST};
pub use interpolant::{Flow, Trig};

/// A forward SDE dx = f(t) x dt + g(t) dW with marginals N(alpha(t) x_0, sigma(t)^2 I).
pub trait ForwardProcess: Debug + Send + Sync {
    /// Short name (`vp`, `subvp`, `ve`, `cosine`, `edm`, `flow`, `trig`, `ddpm`).
    fn name(&self) -> &'static str;
    /// The data end of the time domain [t_min, T]: 0, except the discrete chain's -1.
    fn t_min(&self) -> f64 {
        0.0
    }
    /// The noise end of the time domain [t_min, T].
    fn t_max(&self) -> f64;
    /// Default end of sampling (the data end, t_eps > 0 where the process needs it).
    fn t_end_default(&self) -> f64;
    /// Drift coefficient f(t).
    fn f(&self, t: f64) -> f64;
    /// Squared diffusion coefficient g(t)^2.
    fn g2(&self, t: f64) -> f64;
    /// Signal coefficient alpha(t).
    fn alpha(&self, t: f64) -> f64;
    /// Noise standard deviation sigma(t).
    fn sigma(&self, t: f64) -> f64;
    /// Half log-SNR lambda(t) = log(alpha / sigma), strictly decreasing in t.
    fn log_snr(&self, t: f64) -> f64 {
        (self.alpha(t) / self.sigma(t)).ln()
    }
    /// Inverse of [`ForwardProcess::log_snr`].
    fn t_from_log_snr(&self, lambda: f64) -> f64;
    /// Standard deviation of the prior at T, from which sampling starts.
    fn prior_std(&self) -> f64;
    /// EDM's noise level sigma~(t) = sigma / alpha.
    fn sigma_tilde(&self, t: f64) -> f64 {
        self.sigma(t) / self.alpha(t)
    }
    /// alpha at the time where sigma / alpha equals `sigma_tilde` (closed form per process).
    fn alpha_from_sigma_tilde(&self, sigma_tilde: f64) -> f64;
    /// Inverse of [`ForwardProcess::sigma_tilde`].
    fn t_from_sigma_tilde(&self, sigma_tilde: f64) -> f64 {
        self.t_from_log_snr(-sigma_tilde.ln())
    }
    /// (alpha'(t), sigma'(t)) for processes whose alpha reaches 0 at T (flow, trig): the
    /// probability flow is then the velocity alpha' x0 + sigma' eps, finite where f is not.
    /// `None` for the others, whose flow is written with f and g^2.
    fn rates(&self, _t: f64) -> Option<(f64, f64)> {
        None
    }
    /// The number of steps T of a discrete chain (its times are the integers 0..T-1; training
    /// draws them uniformly, DDPM's Algorithm 1); `None` for continuous processes.
    fn discrete_steps(&self) -> Option<usize> {
        None
    }
    /// The process's description: its kind and every parameter it was built from.
    fn spec(&self) -> ProcessSpec;
}

/// A process described by its kind and parameters: what checkpoints record and compare, and
/// what [`ProcessSpec::build`] turns back into the process. Serialised with the kind under
/// `"process"`, e.g. `{"process": "vp", "beta_min": 0.1, "beta_max": 20.0}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "process", rename_all = "lowercase", deny_unknown_fields)]
pub enum ProcessSpec {
    /// [`Vp`].
    Vp {
        /// beta(0).
        beta_min: f64,
        /// beta(1).
        beta_max: f64,
    },
    /// [`SubVp`].
    SubVp {
        /// beta(0).
        beta_min: f64,
        /// beta(1).
        beta_max: f64,
    },
    /// [`Ve`].
    Ve {
        /// sigma(0).
        sigma_min: f64,
        /// sigma(1), the prior std.
        sigma_max: f64,
    },
    /// [`VpCosine`].
    Cosine {
        /// The offset s of abar(t).
        s: f64,
        /// The end T of the time domain.
        t_max: f64,
    },
    /// [`Edm`].
    Edm {
        /// Default end of sampling.
        sigma_min: f64,
        /// T, the prior std.
        sigma_max: f64,
    },
    /// [`Flow`].
    Flow,
    /// [`Trig`].
    Trig,
    /// [`Ddpm`].
    Ddpm(DdpmTable),
}

/// The end of the cosine schedule's time domain used throughout (DPM-Solver's T).
pub const COSINE_T_MAX: f64 = 0.9946;

impl ProcessSpec {
    /// The validated process.
    pub fn build(&self) -> Result<Box<dyn ForwardProcess>> {
        Ok(match *self {
            Self::Vp { beta_min, beta_max } => Box::new(Vp::new(beta_min, beta_max)?),
            Self::SubVp { beta_min, beta_max } => Box::new(SubVp::new(beta_min, beta_max)?),
            Self::Ve { sigma_min, sigma_max } => Box::new(Ve::new(sigma_min, sigma_max)?),
            Self::Cosine { s, t_max } => Box::new(VpCosine::new(s, t_max)?),
            Self::Edm { sigma_min, sigma_max } => Box::new(Edm::new(sigma_min, sigma_max)?),
            Self::Flow => Box::new(Flow),
            Self::Trig => Box::new(Trig),
            Self::Ddpm(ref table) => Box::new(Ddpm::new(table.clone())?),
        })
    }

    /// Short name, as [`ForwardProcess::name`].
    pub fn name(&self) -> &'static str {
        match self {
            Self::Vp { .. } => "vp",
            Self::SubVp { .. } => "subvp",
            Self::Ve { .. } => "ve",
            Self::Cosine { .. } => "cosine",
            Self::Edm { .. } => "edm",
            Self::Flow => "flow",
            Self::Trig => "trig",
            Self::Ddpm(_) => "ddpm",
        }
    }

    /// Reads a description: this type's own form, or the form of checkpoints written before it
    /// existed (`{"process": "vp", "beta_min", "beta_max", "sigma_min", "sigma_max", "cosine_s"}`,
    /// every flag of the command line, null sigmas meaning the defaults: 0.01 and 50 for ve,
    /// 0.002 and 80 for edm; cosine with T = 0.9946), read into the process it describes, so that
    /// parameters the process does not use play no part.
    pub fn from_json(value: &serde_json::Value) -> Result<Self> {
        let bad = |why: String| ScoreError::Model { context: format!("process {value}"), message: why };
        if let Ok(spec) = serde_json::from_value::<Self>(value.clone()) {
            return Ok(spec);
        }
        let serde_json::Value::Object(fields) = value else {
            return Err(bad("expected a JSON object".into()));
        };
        const LEGACY: [&str; 6] = ["process", "beta_min", "beta_max", "sigma_min", "sigma_max", "cosine_s"];
        if let Some(k) = fields.keys().find(|k| !LEGACY.contains(&k.as_str())) {
            return Err(bad(format!("unknown field {k:?}")));
        }
        let number = |key: &str, default: Option<f64>| -> Result<f64> {
            match fields.get(key) {
                Some(serde_json::Value::Number(n)) => n.as_f64().ok_or_else(|| bad(format!("{key}: not a number"))),
                None | Some(serde_json::Value::Null) => default.ok_or_else(|| bad(format!("{key}: missing"))),
                Some(other) => Err(bad(format!("{key} = {other}: not a number"))),
            }
        };
        let kind = fields.get("process").and_then(|k| k.as_str()).ok_or_else(|| bad("no process name".into()))?;
        Ok(match kind {
            "vp" => Self::Vp { beta_min: number("beta_min", None)?, beta_max: number("beta_max", None)? },
            "subvp" => Self::SubVp { beta_min: number("beta_min", None)?, beta_max: number("beta_max", None)? },
            "ve" => {
                Self::Ve { sigma_min: number("sigma_min", Some(0.01))?, sigma_max: number("sigma_max", Some(50.0))? }
            }
            "cosine" => Self::Cosine { s: number("cosine_s", None)?, t_max: COSINE_T_MAX },
            "edm" => {
                Self::Edm { sigma_min: number("sigma_min", Some(0.002))?, sigma_max: number("sigma_max", Some(80.0))? }
            }
            other => return Err(bad(format!("unknown process {other:?}"))),
        })
    }
}

impl std::fmt::Display for ProcessSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Vp { beta_min, beta_max } | Self::SubVp { beta_min, beta_max } => {
                write!(f, "{} (beta_min {beta_min}, beta_max {beta_max})", self.name())
            }
            Self::Ve { sigma_min, sigma_max } | Self::Edm { sigma_min, sigma_max } => {
                write!(f, "{} (sigma_min {sigma_min}, sigma_max {sigma_max})", self.name())
            }
            Self::Cosine { s, t_max } => write!(f, "cosine (s {s}, T {t_max})"),
            Self::Flow | Self::Trig => write!(f, "{}", self.name()),
            Self::Ddpm(DdpmTable::Betas { train_steps, schedule, beta_start, beta_end, rescale_zero_snr }) => {
                write!(f, "ddpm ({train_steps} steps, {schedule:?} betas {beta_start}..{beta_end}")?;
                write!(f, "{})", if *rescale_zero_snr { ", zero-SNR rescale" } else { "" })
            }
            Self::Ddpm(DdpmTable::AlphasCumprod { alphas_cumprod }) => {
                write!(f, "ddpm (an alphas_cumprod table of {})", alphas_cumprod.len())
            }
        }
    }
}

fn check_positive(name: &str, value: f64) -> Result<()> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(ScoreError::InvalidParameter { name: name.to_string(), value, expected: "must be positive and finite" })
    }
}

fn check_greater(name: &str, value: f64, bound: f64, expected: &'static str) -> Result<()> {
    if value > bound {
        Ok(())
    } else {
        Err(ScoreError::InvalidParameter { name: name.to_string(), value, expected })
    }
}

/// Linear beta schedule shared by VP and sub-VP: beta(t) = b0 + t (b1 - b0), B(t) = integral.
#[derive(Debug, Clone, Copy, PartialEq)]
struct LinearBeta {
    beta_min: f64,
    beta_max: f64,
}

impl LinearBeta {
    fn new(beta_min: f64, beta_max: f64) -> Result<Self> {
        check_positive("beta_min", beta_min)?;
        check_positive("beta_max", beta_max)?;
        check_greater("beta_max", beta_max, beta_min, "must be greater than beta_min")?;
        Ok(Self { beta_min, beta_max })
    }
    fn beta(&self, t: f64) -> f64 {
        self.beta_min + t * (self.beta_max - self.beta_min)
    }
    /// B(t) = integral_0^t beta.
    fn integral(&self, t: f64) -> f64 {
        self.beta_min * t + 0.5 * t * t * (self.beta_max - self.beta_min)
    }
    /// Inverse of B on t >= 0: t = 2B / (b0 + sqrt(b0^2 + 2 (b1 - b0) B)) (no cancellation).
    fn t_from_integral(&self, b: f64) -> f64 {
        let b0 = self.beta_min;
        2.0 * b / (b0 + (b0 * b0 + 2.0 * (self.beta_max - b0) * b).sqrt())
    }
}

/// Variance-preserving SDE with a linear beta schedule (Song et al. 2021; DDPM in continuous time).
///
/// alpha = exp(-B/2), sigma = sqrt(1 - alpha^2), f = -beta/2, g^2 = beta, prior N(0, I).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Vp {
    beta: LinearBeta,
}

impl Vp {
    /// Validates 0 < beta_min < beta_max. score_sde's defaults are 0.1 and 20.
    ///
    /// ```
    /// use scoresde::process::{ForwardProcess, Vp};
    /// let vp = Vp::new(0.1, 20.0).unwrap();
    /// assert!((vp.alpha(0.5).powi(2) + vp.sigma(0.5).powi(2) - 1.0).abs() < 1e-15);
    /// assert!(Vp::new(20.0, 0.1).is_err());
    /// ```
    pub fn new(beta_min: f64, beta_max: f64) -> Result<Self> {
        Ok(Self { beta: LinearBeta::new(beta_min, beta_max)? })
    }
}

impl ForwardProcess for Vp {
    fn spec(&self) -> ProcessSpec {
        ProcessSpec::Vp { beta_min: self.beta.beta_min, beta_max: self.beta.beta_max }
    }
    fn name(&self) -> &'static str {
        "vp"
    }
    fn t_max(&self) -> f64 {
        1.0
    }
    fn t_end_default(&self) -> f64 {
        1e-3
    }
    fn f(&self, t: f64) -> f64 {
        -0.5 * self.beta.beta(t)
    }
    fn g2(&self, t: f64) -> f64 {
        self.beta.beta(t)
    }
    fn alpha(&self, t: f64) -> f64 {
        (-0.5 * self.beta.integral(t)).exp()
    }
    fn sigma(&self, t: f64) -> f64 {
        (-(-self.beta.integral(t)).exp_m1()).sqrt()
    }
    fn log_snr(&self, t: f64) -> f64 {
        let b = self.beta.integral(t);
        -0.5 * b - 0.5 * (-(-b).exp_m1()).ln()
    }
    fn t_from_log_snr(&self, lambda: f64) -> f64 {
        // sigma^2 / alpha^2 = e^B - 1 = e^{-2 lambda}  =>  B = ln(1 + e^{-2 lambda}).
        self.beta.t_from_integral((-2.0 * lambda).exp().ln_1p())
    }
    fn prior_std(&self) -> f64 {
        1.0
    }
    fn alpha_from_sigma_tilde(&self, s: f64) -> f64 {
        1.0 / (1.0 + s * s).sqrt()
    }
}

/// Sub-VP SDE (Song et al. 2021): same drift as VP, g^2 = beta (1 - e^{-2B}), so that
/// sigma = 1 - alpha^2 stays below the VP sigma. Prior N(0, I).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SubVp {
    beta: LinearBeta,
}

impl SubVp {
    /// Validates 0 < beta_min < beta_max.
    pub fn new(beta_min: f64, beta_max: f64) -> Result<Self> {
        Ok(Self { beta: LinearBeta::new(beta_min, beta_max)? })
    }
}

impl ForwardProcess for SubVp {
    fn spec(&self) -> ProcessSpec {
        ProcessSpec::SubVp { beta_min: self.beta.beta_min, beta_max: self.beta.beta_max }
    }
    fn name(&self) -> &'static str {
        "subvp"
    }
    fn t_max(&self) -> f64 {
        1.0
    }
    fn t_end_default(&self) -> f64 {
        1e-3
    }
    fn f(&self, t: f64) -> f64 {
        -0.5 * self.beta.beta(t)
    }
    fn g2(&self, t: f64) -> f64 {
        self.beta.beta(t) * (-(-2.0 * self.beta.integral(t)).exp_m1())
    }
    fn alpha(&self, t: f64) -> f64 {
        (-0.5 * self.beta.integral(t)).exp()
    }
    fn sigma(&self, t: f64) -> f64 {
        -(-self.beta.integral(t)).exp_m1()
    }
    fn log_snr(&self, t: f64) -> f64 {
        let b = self.beta.integral(t);
        -0.5 * b - (-(-b).exp_m1()).ln()
    }
    fn t_from_log_snr(&self, lambda: f64) -> f64 {
        // sigma / alpha = (1 - alpha^2) / alpha = r := e^{-lambda} gives alpha = 2 / (r + sqrt(r^2 + 4)),
        // so B = -2 ln alpha = 2 asinh(r / 2), which stays accurate as r -> 0 (t -> 0).
        self.beta.t_from_integral(2.0 * (0.5 * (-lambda).exp()).asinh())
    }
    fn prior_std(&self) -> f64 {
        1.0
    }
    fn alpha_from_sigma_tilde(&self, s: f64) -> f64 {
        // sigma = 1 - alpha^2 = s alpha  =>  alpha = 2 / (s + sqrt(s^2 + 4)).
        2.0 / (s + (s * s + 4.0).sqrt())
    }
}

/// Variance-exploding SDE (Song et al. 2021; SMLD): sigma = s_min (s_max / s_min)^t, alpha = 1,
/// f = 0, g^2 = 2 sigma^2 ln(s_max / s_min), prior N(0, s_max^2 I).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ve {
    sigma_min: f64,
    sigma_max: f64,
    log_ratio: f64,
}

/// The largest sigma_max: the samplers square sigma (variances, g^2 = d sigma^2 / dt), so sigma_max^2
/// must stay far inside f64's range.
pub const SIGMA_MAX_LIMIT: f64 = 1e100;

fn check_sigma_max(sigma_max: f64) -> Result<()> {
    if sigma_max > SIGMA_MAX_LIMIT {
        return Err(ScoreError::InvalidParameter {
            name: "sigma_max".into(),
            value: sigma_max,
            expected: "must be at most 1e100 (sigma_max^2 must stay far inside f64's range)",
        });
    }
    Ok(())
}

impl Ve {
    /// Validates 0 < sigma_min < sigma_max <= 1e100. score_sde's CIFAR-10 values are 0.01 and 50.
    pub fn new(sigma_min: f64, sigma_max: f64) -> Result<Self> {
        check_positive("sigma_min", sigma_min)?;
        check_positive("sigma_max", sigma_max)?;
        check_greater("sigma_max", sigma_max, sigma_min, "must be greater than sigma_min")?;
        check_sigma_max(sigma_max)?;
        Ok(Self { sigma_min, sigma_max, log_ratio: (sigma_max / sigma_min).ln() })
    }
}

impl ForwardProcess for Ve {
    fn spec(&self) -> ProcessSpec {
        ProcessSpec::Ve { sigma_min: self.sigma_min, sigma_max: self.sigma_max }
    }
    fn name(&self) -> &'static str {
        "ve"
    }
    fn t_max(&self) -> f64 {
        1.0
    }
    fn t_end_default(&self) -> f64 {
        1e-5
    }
    fn f(&self, _t: f64) -> f64 {
        0.0
    }
    fn g2(&self, t: f64) -> f64 {
        let s = self.sigma(t);
        2.0 * s * s * self.log_ratio
    }
    fn alpha(&self, _t: f64) -> f64 {
        1.0
    }
    fn sigma(&self, t: f64) -> f64 {
        self.sigma_min * (t * self.log_ratio).exp()
    }
    fn log_snr(&self, t: f64) -> f64 {
        -self.sigma_min.ln() - t * self.log_ratio
    }
    fn t_from_log_snr(&self, lambda: f64) -> f64 {
        (-lambda - self.sigma_min.ln()) / self.log_ratio
    }
    fn prior_std(&self) -> f64 {
        self.sigma_max
    }
    fn alpha_from_sigma_tilde(&self, _s: f64) -> f64 {
        1.0
    }
}

/// Cosine VP schedule (Nichol & Dhariwal 2021): abar(t) = cos^2(pi/2 (t + s)/(1 + s)) / cos^2(pi/2 s/(1 + s)),
/// alpha = sqrt(abar), sigma = sqrt(1 - abar); f and g^2 from the identities
/// (f = -pi/(2(1+s)) tan(pi/2 (t+s)/(1+s)), g^2 = -2f). The process degenerates at t = 1
/// (alpha = 0, f infinite), so T is 0.9946 as in DPM-Solver. Prior N(0, I).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VpCosine {
    s: f64,
    t_max: f64,
    log_cos0: f64,
}

impl VpCosine {
    /// Validates s > 0 and 0 < t_max < 1. iDDPM's offset is s = 0.008; DPM-Solver uses T = 0.9946.
    pub fn new(s: f64, t_max: f64) -> Result<Self> {
        check_positive("cosine_s", s)?;
        if !(t_max > 0.0 && t_max < 1.0) {
            return Err(ScoreError::InvalidParameter {
                name: "t_max".into(),
                value: t_max,
                expected: "must be in (0, 1)",
            });
        }
        Ok(Self { s, t_max, log_cos0: (0.5 * PI * s / (1.0 + s)).cos().ln() })
    }
    fn phase(&self, t: f64) -> f64 {
        0.5 * PI * (t + self.s) / (1.0 + self.s)
    }
    fn log_alpha(&self, t: f64) -> f64 {
        self.phase(t).cos().ln() - self.log_cos0
    }
}

impl Default for VpCosine {
    fn default() -> Self {
        Self::new(0.008, COSINE_T_MAX).expect("valid defaults")
    }
}

impl ForwardProcess for VpCosine {
    fn spec(&self) -> ProcessSpec {
        ProcessSpec::Cosine { s: self.s, t_max: self.t_max }
    }
    fn name(&self) -> &'static str {
        "cosine"
    }
    fn t_max(&self) -> f64 {
        self.t_max
    }
    fn t_end_default(&self) -> f64 {
        1e-3
    }
    fn f(&self, t: f64) -> f64 {
        -0.5 * PI / (1.0 + self.s) * self.phase(t).tan()
    }
    fn g2(&self, t: f64) -> f64 {
        -2.0 * self.f(t)
    }
    fn alpha(&self, t: f64) -> f64 {
        self.log_alpha(t).exp()
    }
    fn sigma(&self, t: f64) -> f64 {
        (-(2.0 * self.log_alpha(t)).exp_m1()).sqrt()
    }
    fn log_snr(&self, t: f64) -> f64 {
        let la = self.log_alpha(t);
        la - 0.5 * (-(2.0 * la).exp_m1()).ln()
    }
    fn t_from_log_snr(&self, lambda: f64) -> f64 {
        // abar = 1 / (1 + e^{-2 lambda}); cos(phase) = sqrt(abar) cos(phase(0)).
        let log_alpha = -0.5 * (-2.0 * lambda).exp().ln_1p();
        let c = (log_alpha + self.log_cos0).exp();
        2.0 * (1.0 + self.s) / PI * c.acos() - self.s
    }
    fn prior_std(&self) -> f64 {
        1.0
    }
    fn alpha_from_sigma_tilde(&self, s: f64) -> f64 {
        1.0 / (1.0 + s * s).sqrt()
    }
}

/// EDM's process (Karras et al. 2022): x_t = x_0 + t eps, alpha = 1, sigma = t, f = 0, g^2 = 2t,
/// t in [0, sigma_max], prior N(0, sigma_max^2 I). Sampling ends at sigma_min (0.002) by default.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Edm {
    sigma_min: f64,
    sigma_max: f64,
}

impl Edm {
    /// Validates 0 < sigma_min < sigma_max <= 1e100. EDM's values are 0.002 and 80.
    pub fn new(sigma_min: f64, sigma_max: f64) -> Result<Self> {
        check_positive("sigma_min", sigma_min)?;
        check_positive("sigma_max", sigma_max)?;
        check_greater("sigma_max", sigma_max, sigma_min, "must be greater than sigma_min")?;
        check_sigma_max(sigma_max)?;
        Ok(Self { sigma_min, sigma_max })
    }
}

impl ForwardProcess for Edm {
    fn spec(&self) -> ProcessSpec {
        ProcessSpec::Edm { sigma_min: self.sigma_min, sigma_max: self.sigma_max }
    }
    fn name(&self) -> &'static str {
        "edm"
    }
    fn t_max(&self) -> f64 {
        self.sigma_max
    }
    fn t_end_default(&self) -> f64 {
        self.sigma_min
    }
    fn f(&self, _t: f64) -> f64 {
        0.0
    }
    fn g2(&self, t: f64) -> f64 {
        2.0 * t
    }
    fn alpha(&self, _t: f64) -> f64 {
        1.0
    }
    fn sigma(&self, t: f64) -> f64 {
        t
    }
    fn log_snr(&self, t: f64) -> f64 {
        -t.ln()
    }
    fn t_from_log_snr(&self, lambda: f64) -> f64 {
        (-lambda).exp()
    }
    fn prior_std(&self) -> f64 {
        self.sigma_max
    }
    fn alpha_from_sigma_tilde(&self, _s: f64) -> f64 {
        1.0
    }
    fn t_from_sigma_tilde(&self, s: f64) -> f64 {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_round_trips_through_json_and_build() {
        let specs = [
            ProcessSpec::Vp { beta_min: 0.1, beta_max: 20.0 },
            ProcessSpec::SubVp { beta_min: 0.2, beta_max: 10.0 },
            ProcessSpec::Ve { sigma_min: 0.01, sigma_max: 50.0 },
            ProcessSpec::Cosine { s: 0.008, t_max: COSINE_T_MAX },
            ProcessSpec::Edm { sigma_min: 0.002, sigma_max: 80.0 },
            ProcessSpec::Flow,
            ProcessSpec::Trig,
            ProcessSpec::Ddpm(DdpmTable::Betas {
                train_steps: 1000,
                schedule: BetaSchedule::ScaledLinear,
                beta_start: 0.00085,
                beta_end: 0.012,
                rescale_zero_snr: true,
            }),
            ProcessSpec::Ddpm(DdpmTable::AlphasCumprod { alphas_cumprod: vec![0.99, 0.5, 0.01] }),
        ];
        for spec in specs {
            let json = serde_json::to_value(&spec).unwrap();
            assert_eq!(json["process"], spec.name());
            assert_eq!(ProcessSpec::from_json(&json).unwrap(), spec);
            let p = spec.build().unwrap();
            assert_eq!(p.spec(), spec, "{json}");
            assert_eq!(p.name(), spec.name());
        }
    }

    #[test]
    fn legacy_checkpoint_metadata_reads_as_the_process_it_describes() {
        let legacy = |kind: &str, sigma_min: serde_json::Value| {
            serde_json::json!({"process": kind, "beta_min": 0.1, "beta_max": 20.0, "sigma_min": sigma_min,
                "sigma_max": null, "cosine_s": 0.008})
        };
        let vp = ProcessSpec::from_json(&legacy("vp", serde_json::json!(0.5))).unwrap();
        assert_eq!(vp, ProcessSpec::Vp { beta_min: 0.1, beta_max: 20.0 });
        let ve = ProcessSpec::from_json(&legacy("ve", serde_json::Value::Null)).unwrap();
        assert_eq!(ve, ProcessSpec::Ve { sigma_min: 0.01, sigma_max: 50.0 });
        let edm = ProcessSpec::from_json(&legacy("edm", serde_json::json!(0.01))).unwrap();
        assert_eq!(edm, ProcessSpec::Edm { sigma_min: 0.01, sigma_max: 80.0 });
        let cosine = ProcessSpec::from_json(&legacy("cosine", serde_json::Value::Null)).unwrap();
        assert_eq!(cosine, ProcessSpec::Cosine { s: 0.008, t_max: COSINE_T_MAX });
        assert!(ProcessSpec::from_json(&legacy("bogus", serde_json::Value::Null)).is_err());
        assert!(ProcessSpec::from_json(&serde_json::json!({"process": "vp", "beta_min": 0.1})).is_err());
        assert!(ProcessSpec::from_json(&serde_json::json!([1, 2])).is_err());
    }
}
