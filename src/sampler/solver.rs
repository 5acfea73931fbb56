//! [`Solver`]: a registered solver together with its own options, validated when the sampler
//! configuration is built.

pub use scoresde_solvers::DdpmVariance;

use super::registry::{SolverId, SolverInfo};
use crate::error::{Result, ScoreError};

/// Noise of the ancestral-type sigma-space samplers (k-diffusion's `eta`, `s_noise`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AncestralNoise {
    /// Noise scale: 1 = full ancestral step, 0 = deterministic.
    pub eta: f64,
    /// Multiplier of the fresh noise.
    pub s_noise: f64,
}

impl Default for AncestralNoise {
    fn default() -> Self {
        Self { eta: 1.0, s_noise: 1.0 }
    }
}

/// EDM's churn (Karras et al. 2022, Algorithm 2).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Churn {
    /// S_churn (0 = deterministic Heun).
    pub s_churn: f64,
    /// Lowest noise level that gets churn.
    pub s_tmin: f64,
    /// Highest noise level that gets churn.
    pub s_tmax: f64,
    /// S_noise.
    pub s_noise: f64,
}

impl Default for Churn {
    fn default() -> Self {
        Self { s_churn: 0.0, s_tmin: 0.0, s_tmax: f64::INFINITY, s_noise: 1.0 }
    }
}

/// The SDE step that a predictor-corrector sampler runs between its corrector moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Predictor {
    /// Song et al.'s reverse-diffusion predictor (score_sde's default).
    #[default]
    ReverseDiffusion,
    /// Euler-Maruyama on the reverse SDE.
    EulerMaruyama,
    /// The DDPM posterior step.
    Ancestral,
    /// DDPM's step with the fixed-large variance (beta_t).
    DdpmLarge,
    /// No predictor (score_sde's `NonePredictor`): corrector moves only, x unchanged between
    /// levels (corrector-only PC).
    None,
}

impl Predictor {
    /// Every predictor.
    pub const ALL: [Predictor; 5] =
        [Self::ReverseDiffusion, Self::EulerMaruyama, Self::Ancestral, Self::DdpmLarge, Self::None];

    /// Its name (`--predictor`): the registered solver it is, `ddpm-large` or `none`.
    pub fn name(self) -> &'static str {
        match self {
            Self::ReverseDiffusion => SolverId::ReverseDiffusion.name(),
            Self::EulerMaruyama => SolverId::EulerMaruyama.name(),
            Self::Ancestral => SolverId::Ancestral.name(),
            Self::DdpmLarge => "ddpm-large",
            Self::None => "none",
        }
    }

    /// The predictor called `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// A Langevin corrector and its predictor (score_sde's PC sampler).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Langevin {
    /// Signal-to-noise ratio r of the corrector's step-size rule.
    pub snr: f64,
    /// Corrector moves per noise level.
    pub corrector_steps: usize,
    /// The SDE step between them.
    pub predictor: Predictor,
}

impl Default for Langevin {
    fn default() -> Self {
        Self { snr: 0.16, corrector_steps: 1, predictor: Predictor::ReverseDiffusion }
    }
}

/// Option of the multistep exponential integrators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Multistep {
    /// Lower the order on the last steps of grids under 15 steps (diffusers' `lower_order_final`;
    /// singlestep DPM-Solver++ shortens its last block at any length).
    pub lower_order_final: bool,
}

impl Default for Multistep {
    fn default() -> Self {
        Self { lower_order_final: true }
    }
}

/// Every sampler scoresde can run, with its own options (see [`SolverId::info`] for each one's
/// description: order, NFE, space, paper).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
#[allow(missing_docs)]
pub enum Solver {
    Euler,
    Midpoint,
    Heun,
    Rk4,
    Rk4_38,
    Tsit5,
    Dopri5,
    EulerLogSnr,
    Dpm2,
    Lms4,
    DpmPp2M,
    /// Per-step orders of singlestep DPM-Solver (`None`: order 3 throughout).
    DpmSolver {
        orders: Option<Vec<usize>>,
    },
    EulerAncestral(AncestralNoise),
    DpmPp2MSde(AncestralNoise),
    /// DDIM's eta (0: deterministic).
    Ddim {
        eta: f64,
    },
    EulerCfgPp,
    DpmPp2MCfgPp,
    DpmSolver2M(Multistep),
    DpmSolver3M(Multistep),
    DpmPp3M(Multistep),
    DpmPp2S(Multistep),
    DpmPp3S(Multistep),
    UniPc2(Multistep),
    UniPc3(Multistep),
    Deis2(Multistep),
    Deis3(Multistep),
    DpmSolverAdaptive,
    EdmSde(Churn),
    EulerMaruyama,
    Ancestral,
    Ddpm(DdpmVariance),
    ReverseDiffusion,
    Pc(Langevin),
    /// Annealed Langevin dynamics: the step size eps and the moves per level.
    Ald {
        step_size: f64,
        langevin_steps: usize,
    },
}

/// A value given for a named option at a boundary (a command-line flag, a Python keyword).
#[derive(Debug, Clone, PartialEq)]
pub enum OptionValue {
    /// A real number.
    F64(f64),
    /// A count.
    Usize(usize),
    /// A switch.
    Bool(bool),
    /// A list of counts (`orders`).
    List(Vec<usize>),
    /// A name (`predictor`).
    Name(String),
}

impl Solver {
    /// The solver `id` with its default options.
    pub fn new(id: SolverId) -> Self {
        let m = Multistep::default();
        match id {
            SolverId::Euler => Self::Euler,
            SolverId::Midpoint => Self::Midpoint,
            SolverId::Heun => Self::Heun,
            SolverId::Rk4 => Self::Rk4,
            SolverId::Rk4_38 => Self::Rk4_38,
            SolverId::Tsit5 => Self::Tsit5,
            SolverId::Dopri5 => Self::Dopri5,
            SolverId::EulerLogSnr => Self::EulerLogSnr,
            SolverId::Dpm2 => Self::Dpm2,
            SolverId::Lms4 => Self::Lms4,
            SolverId::DpmPp2M => Self::DpmPp2M,
            SolverId::DpmSolver => Self::DpmSolver { orders: None },
            SolverId::EulerAncestral => Self::EulerAncestral(AncestralNoise::default()),
            SolverId::DpmPp2MSde => Self::DpmPp2MSde(AncestralNoise::default()),
            SolverId::Ddim => Self::Ddim { eta: 0.0 },
            SolverId::EulerCfgPp => Self::EulerCfgPp,
            SolverId::DpmPp2MCfgPp => Self::DpmPp2MCfgPp,
            SolverId::DpmSolver2M => Self::DpmSolver2M(m),
            SolverId::DpmSolver3M => Self::DpmSolver3M(m),
            SolverId::DpmPp3M => Self::DpmPp3M(m),
            SolverId::DpmPp2S => Self::DpmPp2S(m),
            SolverId::DpmPp3S => Self::DpmPp3S(m),
            SolverId::UniPc2 => Self::UniPc2(m),
            SolverId::UniPc3 => Self::UniPc3(m),
            SolverId::Deis2 => Self::Deis2(m),
            SolverId::Deis3 => Self::Deis3(m),
            SolverId::DpmSolverAdaptive => Self::DpmSolverAdaptive,
            SolverId::EdmSde => Self::EdmSde(Churn::default()),
            SolverId::EulerMaruyama => Self::EulerMaruyama,
            SolverId::Ancestral => Self::Ancestral,
            SolverId::Ddpm => Self::Ddpm(DdpmVariance::FixedSmall),
            SolverId::ReverseDiffusion => Self::ReverseDiffusion,
            SolverId::Pc => Self::Pc(Langevin::default()),
            SolverId::Ald => Self::Ald { step_size: 2e-5, langevin_steps: 100 },
        }
    }

    /// The solver called `name`, with its default options.
    pub fn from_name(name: &str) -> Result<Self> {
        SolverId::from_name(name).map(Self::new).ok_or_else(|| ScoreError::UnknownName {
            field: "solver",
            value: name.to_string(),
            expected: SolverId::names().collect::<Vec<_>>().join(", "),
        })
    }

    /// Which registered solver this is.
    pub fn id(&self) -> SolverId {
        match self {
            Self::Euler => SolverId::Euler,
            Self::Midpoint => SolverId::Midpoint,
            Self::Heun => SolverId::Heun,
            Self::Rk4 => SolverId::Rk4,
            Self::Rk4_38 => SolverId::Rk4_38,
            Self::Tsit5 => SolverId::Tsit5,
            Self::Dopri5 => SolverId::Dopri5,
            Self::EulerLogSnr => SolverId::EulerLogSnr,
            Self::Dpm2 => SolverId::Dpm2,
            Self::Lms4 => SolverId::Lms4,
            Self::DpmPp2M => SolverId::DpmPp2M,
            Self::DpmSolver { .. } => SolverId::DpmSolver,
            Self::EulerAncestral(_) => SolverId::EulerAncestral,
            Self::DpmPp2MSde(_) => SolverId::DpmPp2MSde,
            Self::Ddim { .. } => SolverId::Ddim,
            Self::EulerCfgPp => SolverId::EulerCfgPp,
            Self::DpmPp2MCfgPp => SolverId::DpmPp2MCfgPp,
            Self::DpmSolver2M(_) => SolverId::DpmSolver2M,
            Self::DpmSolver3M(_) => SolverId::DpmSolver3M,
            Self::DpmPp3M(_) => SolverId::DpmPp3M,
            Self::DpmPp2S(_) => SolverId::DpmPp2S,
            Self::DpmPp3S(_) => SolverId::DpmPp3S,
            Self::UniPc2(_) => SolverId::UniPc2,
            Self::UniPc3(_) => SolverId::UniPc3,
            Self::Deis2(_) => SolverId::Deis2,
            Self::Deis3(_) => SolverId::Deis3,
            Self::DpmSolverAdaptive => SolverId::DpmSolverAdaptive,
            Self::EdmSde(_) => SolverId::EdmSde,
            Self::EulerMaruyama => SolverId::EulerMaruyama,
            Self::Ancestral => SolverId::Ancestral,
            Self::Ddpm(_) => SolverId::Ddpm,
            Self::ReverseDiffusion => SolverId::ReverseDiffusion,
            Self::Pc(_) => SolverId::Pc,
            Self::Ald { .. } => SolverId::Ald,
        }
    }

    /// The registry's description.
    pub fn info(&self) -> SolverInfo {
        self.id().info()
    }

    /// Command-line name.
    pub fn name(&self) -> &'static str {
        self.id().name()
    }

    /// Whether the solver consumes noise (DDIM with eta > 0 does).
    pub fn is_stochastic(&self) -> bool {
        match self {
            Self::Ddim { eta } => *eta > 0.0,
            _ => self.info().stochastic,
        }
    }

    /// The order these options give (the registry's, except singlestep DPM-Solver with explicit
    /// per-step orders: the lowest of them).
    pub fn order(&self) -> u32 {
        match self {
            Self::DpmSolver { orders: Some(o) } => o.iter().copied().min().map_or(3, |m| m as u32),
            _ => self.info().order,
        }
    }

    /// Standard-normal draws per step besides the main one (see `scoresde_solvers::noise::Draw`).
    pub fn extra_draws(&self) -> usize {
        match self {
            Self::Pc(l) => l.corrector_steps,
            Self::Ald { langevin_steps, .. } => langevin_steps.saturating_sub(1),
            _ => 0,
        }
    }

    /// Sets option `name` (as the registry names it) to `value`; an option this solver does not
    /// take, or a value of the wrong kind, is an error naming both.
    pub fn set_option(&mut self, name: &str, value: OptionValue) -> Result<()> {
        let solver = self.name();
        let bad_kind = |expected: &'static str| ScoreError::InvalidOption {
            solver,
            option: name.to_string(),
            value: format!("{value:?}"),
            expected,
        };
        let f = |v: &OptionValue| if let OptionValue::F64(x) = v { Some(*x) } else { None };
        match (self, name) {
            (Self::EulerAncestral(o) | Self::DpmPp2MSde(o), "eta") => o.eta = f(&value).ok_or(bad_kind("a number"))?,
            (Self::EulerAncestral(o) | Self::DpmPp2MSde(o), "s_noise") => {
                o.s_noise = f(&value).ok_or(bad_kind("a number"))?
            }
            (Self::Ald { step_size, .. }, "step_size") => *step_size = f(&value).ok_or(bad_kind("a number"))?,
            (Self::Ald { langevin_steps, .. }, "langevin_steps") => match value {
                OptionValue::Usize(n) => *langevin_steps = n,
                _ => return Err(bad_kind("a count")),
            },
            (Self::Ddim { eta }, "eta") => *eta = f(&value).ok_or(bad_kind("a number"))?,
            (Self::Ddpm(v), "variance") => match &value {
                OptionValue::Name(n) if n == "fixed-small" => *v = DdpmVariance::FixedSmall,
                OptionValue::Name(n) if n == "fixed-large" => *v = DdpmVariance::FixedLarge,
                _ => return Err(bad_kind("fixed-small or fixed-large")),
            },
            (Self::EdmSde(c), "s_churn") => c.s_churn = f(&value).ok_or(bad_kind("a number"))?,
            (Self::EdmSde(c), "s_tmin") => c.s_tmin = f(&value).ok_or(bad_kind("a number"))?,
            (Self::EdmSde(c), "s_tmax") => c.s_tmax = f(&value).ok_or(bad_kind("a number"))?,
            (Self::EdmSde(c), "s_noise") => c.s_noise = f(&value).ok_or(bad_kind("a number"))?,
            (Self::Pc(l), "snr") => l.snr = f(&value).ok_or(bad_kind("a number"))?,
            (Self::Pc(l), "corrector_steps") => match value {
                OptionValue::Usize(n) => l.corrector_steps = n,
                _ => return Err(bad_kind("a count")),
            },
            (Self::Pc(l), "predictor") => match &value {
                OptionValue::Name(p) => {
                    l.predictor = Predictor::from_name(p)
                        .ok_or(bad_kind("reverse-diffusion, euler-maruyama, ancestral, ddpm-large or none"))?
                }
                _ => return Err(bad_kind("a predictor name")),
            },
            (Self::DpmSolver { orders }, "orders") => match value {
                OptionValue::List(o) => *orders = Some(o),
                _ => return Err(bad_kind("a list of orders")),
            },
            (
                Self::DpmSolver2M(m)
                | Self::DpmSolver3M(m)
                | Self::DpmPp3M(m)
                | Self::DpmPp2S(m)
                | Self::DpmPp3S(m)
                | Self::UniPc2(m)
                | Self::UniPc3(m)
                | Self::Deis2(m)
                | Self::Deis3(m),
                "lower_order_final",
            ) => match value {
                OptionValue::Bool(b) => m.lower_order_final = b,
                _ => return Err(bad_kind("true or false")),
            },
            (s, _) => {
                let takes: Vec<&str> = s.info().options.iter().map(|o| o.name).collect();
                return Err(ScoreError::InvalidOption {
                    solver,
                    option: name.to_string(),
                    value: format!("{value:?}"),
                    expected: if takes.is_empty() {
                        "this solver takes no options"
                    } else {
                        "not an option of this solver"
                    },
                });
            }
        }
        Ok(())
    }

    /// Checks every option's range, naming the first bad one.
    pub fn validate(&self) -> Result<()> {
        let bad = |name: &str, value: f64, expected: &'static str| {
            Err(ScoreError::InvalidParameter { name: name.to_string(), value, expected })
        };
        let nonneg = |pairs: &[(&str, f64)]| {
            for &(name, v) in pairs {
                if !(v.is_finite() && v >= 0.0) {
                    return bad(name, v, "must be finite and >= 0");
                }
            }
            Ok(())
        };
        match self {
            Self::EulerAncestral(o) | Self::DpmPp2MSde(o) => nonneg(&[("eta", o.eta), ("s_noise", o.s_noise)]),
            Self::Ddim { eta } => nonneg(&[("eta", *eta)]),
            Self::EdmSde(c) => {
                nonneg(&[("s_churn", c.s_churn), ("s_tmin", c.s_tmin), ("s_noise", c.s_noise)])?;
                if c.s_tmax.is_nan() || c.s_tmax < c.s_tmin {
                    return bad("s_tmax", c.s_tmax, "must be >= s_tmin");
                }
                Ok(())
            }
            Self::Pc(l) => {
                if !(l.snr.is_finite() && l.snr > 0.0) {
                    return bad("snr", l.snr, "must be positive and finite");
                }
                Ok(())
            }
            Self::Ald { step_size, langevin_steps } => {
                if !(step_size.is_finite() && *step_size > 0.0) {
                    return bad("step_size", *step_size, "must be positive and finite");
                }
                if *langevin_steps == 0 {
                    return bad("langevin_steps", 0.0, "must be at least 1");
                }
                Ok(())
            }
            Self::DpmSolver { orders: Some(orders) } => {
                if let Some((i, &o)) = orders.iter().enumerate().find(|(_, &o)| !(1..=3).contains(&o)) {
                    return bad(&format!("orders[{i}]"), o as f64, "must be 1, 2 or 3");
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

impl From<SolverId> for Solver {
    fn from(id: SolverId) -> Self {
        Self::new(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_registered_solver_round_trips_through_its_default() {
        for id in SolverId::ALL {
            assert_eq!(Solver::new(id).id(), id);
            assert!(Solver::new(id).validate().is_ok(), "{}", id.name());
        }
    }

    #[test]
    fn options_are_the_registry_options() {
        // Every option the registry lists can be set, with a value of its kind; nothing else can.
        for id in SolverId::ALL {
            for o in id.info().options {
                let value = match o.name {
                    "orders" => OptionValue::List(vec![2, 1]),
                    "lower_order_final" => OptionValue::Bool(false),
                    "corrector_steps" | "langevin_steps" => OptionValue::Usize(2),
                    "predictor" => OptionValue::Name("ancestral".into()),
                    "variance" => OptionValue::Name("fixed-large".into()),
                    _ => OptionValue::F64(0.5),
                };
                let mut s = Solver::new(id);
                s.set_option(o.name, value).unwrap_or_else(|e| panic!("{}: {e}", id.name()));
                assert_ne!(s, Solver::new(id), "{}.{} changed nothing", id.name(), o.name);
            }
            let err = Solver::new(id).set_option("bogus", OptionValue::F64(1.0)).unwrap_err().to_string();
            assert!(err.contains("bogus") && err.contains(id.name()), "{err}");
        }
        let err = Solver::new(SolverId::Pc).set_option("snr", OptionValue::Bool(true)).unwrap_err().to_string();
        assert!(err.contains("snr") && err.contains("a number"), "{err}");
    }

    #[test]
    fn validation_names_the_field() {
        let s = Solver::EulerAncestral(AncestralNoise { eta: -1.0, s_noise: 1.0 });
        assert!(s.validate().unwrap_err().to_string().contains("eta = -1"));
        let s = Solver::DpmSolver { orders: Some(vec![3, 4]) };
        assert!(s.validate().unwrap_err().to_string().contains("orders[1] = 4"));
        let s = Solver::EdmSde(Churn { s_tmin: 2.0, s_tmax: 1.0, ..Churn::default() });
        assert!(s.validate().unwrap_err().to_string().contains("s_tmax = 1"));
        let s = Solver::Pc(Langevin { snr: 0.0, ..Langevin::default() });
        assert!(s.validate().unwrap_err().to_string().contains("snr = 0"));
    }
}
