//! The solver registry: every sampler scoresde can run, described once.
//!
//! [`SolverId`] names a solver; [`SolverId::info`] is its one description (name, order, NFE per
//! step, space, whether it is stochastic or adaptive, its options, a summary, the paper and the
//! peer runs it reproduces). The command line's `--solver` values and help, `scoresde solvers`,
//! the README's solver table (checked by a test), the sweeps and the Python package all read it.
//! The match in `info` is exhaustive: a solver without a description does not compile.

/// Where a solver steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpaceRule {
    /// In process time t or in EDM's sigma~ alike (Runge-Kutta methods).
    Any,
    /// In process time t only.
    Time,
    /// In EDM's variables (x/alpha against sigma~ = sigma/alpha) only.
    Sigma,
}

/// Whether a solver steps adaptively.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adaptivity {
    /// Fixed grids only.
    Never,
    /// A fixed grid, or adaptive steps with rtol/atol (an embedded pair).
    Optional,
    /// Adaptive steps only (rtol/atol and a range, no grid).
    Required,
}

/// One option a solver takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionSpec {
    /// Name (`--name` with '_' as '-' on the command line, a keyword in Python).
    pub name: &'static str,
    /// Default, as text.
    pub default: &'static str,
    /// What it does.
    pub doc: &'static str,
}

/// The description of one solver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SolverInfo {
    /// Command-line name.
    pub name: &'static str,
    /// The order of convergence its tests assert on smooth problems: global order for ODE
    /// solvers, weak order for stochastic ones.
    pub order: u32,
    /// Qualifies the order where a number alone misleads ("" if nothing to add).
    pub order_note: &'static str,
    /// Model evaluations per regular step.
    pub nfe_per_step: u32,
    /// Qualifies the NFE ("" if nothing to add).
    pub nfe_note: &'static str,
    /// Where it steps.
    pub space: SpaceRule,
    /// Whether it consumes noise.
    pub stochastic: bool,
    /// Whether it steps adaptively.
    pub adaptive: Adaptivity,
    /// Whether it needs a guided model's guided and unconditional predictions (CFG++).
    pub guided: bool,
    /// The options it takes.
    pub options: &'static [OptionSpec],
    /// One line: what it is.
    pub summary: &'static str,
    /// The paper (and algorithm or equation) it implements.
    pub paper: &'static str,
    /// The peer runs it reproduces (reference case, max abs difference).
    pub matches: &'static str,
}

const ETA: OptionSpec =
    OptionSpec { name: "eta", default: "1", doc: "noise scale (1 = full ancestral step, 0 = deterministic)" };
const S_NOISE: OptionSpec = OptionSpec { name: "s_noise", default: "1", doc: "multiplier of the fresh noise" };
const LOWER_ORDER_FINAL: OptionSpec = OptionSpec {
    name: "lower_order_final",
    default: "true",
    doc: "lower the order on the last steps of grids under 15 steps (diffusers)",
};
const MULTISTEP: &[OptionSpec] = &[LOWER_ORDER_FINAL];
const ANCESTRAL_NOISE: &[OptionSpec] = &[ETA, S_NOISE];

/// Every solver, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum SolverId {
    /// See [`SolverId::info`] for each solver's description.
    Euler,
    #[allow(missing_docs)]
    Midpoint,
    #[allow(missing_docs)]
    Heun,
    #[allow(missing_docs)]
    Rk4,
    #[allow(missing_docs)]
    Rk4_38,
    #[allow(missing_docs)]
    Tsit5,
    #[allow(missing_docs)]
    Dopri5,
    #[allow(missing_docs)]
    EulerLogSnr,
    #[allow(missing_docs)]
    Dpm2,
    #[allow(missing_docs)]
    Lms4,
    #[allow(missing_docs)]
    DpmPp2M,
    #[allow(missing_docs)]
    DpmSolver,
    #[allow(missing_docs)]
    EulerAncestral,
    #[allow(missing_docs)]
    DpmPp2MSde,
    #[allow(missing_docs)]
    Ddim,
    #[allow(missing_docs)]
    EulerCfgPp,
    #[allow(missing_docs)]
    DpmPp2MCfgPp,
    #[allow(missing_docs)]
    DpmSolver2M,
    #[allow(missing_docs)]
    DpmSolver3M,
    #[allow(missing_docs)]
    DpmPp3M,
    #[allow(missing_docs)]
    DpmPp2S,
    #[allow(missing_docs)]
    DpmPp3S,
    #[allow(missing_docs)]
    UniPc2,
    #[allow(missing_docs)]
    UniPc3,
    #[allow(missing_docs)]
    Deis2,
    #[allow(missing_docs)]
    Deis3,
    #[allow(missing_docs)]
    DpmSolverAdaptive,
    #[allow(missing_docs)]
    EdmSde,
    #[allow(missing_docs)]
    EulerMaruyama,
    #[allow(missing_docs)]
    Ancestral,
    #[allow(missing_docs)]
    Ddpm,
    #[allow(missing_docs)]
    ReverseDiffusion,
    #[allow(missing_docs)]
    Pc,
    #[allow(missing_docs)]
    Ald,
}

impl SolverId {
    /// Every solver, in the order of the registry (and of the README's table).
    pub const ALL: [SolverId; 34] = [
        Self::Euler,
        Self::Midpoint,
        Self::Heun,
        Self::Rk4,
        Self::Rk4_38,
        Self::Tsit5,
        Self::Dopri5,
        Self::EulerLogSnr,
        Self::Dpm2,
        Self::Lms4,
        Self::DpmPp2M,
        Self::DpmSolver,
        Self::EulerAncestral,
        Self::DpmPp2MSde,
        Self::Ddim,
        Self::EulerCfgPp,
        Self::DpmPp2MCfgPp,
        Self::DpmSolver2M,
        Self::DpmSolver3M,
        Self::DpmPp3M,
        Self::DpmPp2S,
        Self::DpmPp3S,
        Self::UniPc2,
        Self::UniPc3,
        Self::Deis2,
        Self::Deis3,
        Self::DpmSolverAdaptive,
        Self::EdmSde,
        Self::EulerMaruyama,
        Self::Ancestral,
        Self::Ddpm,
        Self::ReverseDiffusion,
        Self::Pc,
        Self::Ald,
    ];

    /// The solver called `name` on the command line.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.info().name == name)
    }

    /// Every command-line name, in registry order.
    pub fn names() -> impl Iterator<Item = &'static str> {
        Self::ALL.into_iter().map(|s| s.info().name)
    }

    /// Command-line name.
    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// The solver's description.
    pub fn info(self) -> SolverInfo {
        use Adaptivity::{Never, Optional, Required};
        use SpaceRule::{Any, Sigma, Time};
        const fn ode(name: &'static str, order: u32, nfe: u32, space: SpaceRule) -> SolverInfo {
            SolverInfo {
                name,
                order,
                order_note: "",
                nfe_per_step: nfe,
                nfe_note: "",
                space,
                stochastic: false,
                adaptive: Never,
                guided: false,
                options: &[],
                summary: "",
                paper: "",
                matches: "",
            }
        }
        const TO_ZERO: &str = "1 on a step to sigma = 0";
        match self {
            Self::Euler => SolverInfo {
                summary: "explicit Euler on the probability-flow ODE; in sigma space, DDIM",
                paper: "Song et al. 2021 (probability flow); Karras et al. 2022 (sigma space)",
                matches: "torchdiffeq, diffrax (t, 6e-15); k-diffusion `sample_euler` (sigma, 1e-14); diffusers Euler (3e-6, f32 table)",
                ..ode("euler", 1, 1, Any)
            },
            Self::Midpoint => SolverInfo {
                summary: "explicit midpoint rule",
                paper: "Hairer, Norsett & Wanner, Solving ODEs I, II.1",
                matches: "torchdiffeq, diffrax (8e-14)",
                ..ode("midpoint", 2, 2, Any)
            },
            Self::Heun => SolverInfo {
                nfe_note: TO_ZERO,
                summary: "Heun's method (explicit trapezoid); in sigma space, EDM's deterministic sampler",
                paper: "Karras et al. 2022, Algorithm 1",
                matches: "torchdiffeq `heun2`, diffrax (t, 1e-14); k-diffusion `sample_heun` (5e-14); diffusers Heun (2e-14 f64)",
                ..ode("heun", 2, 2, Any)
            },
            Self::Rk4 => SolverInfo {
                summary: "classic fourth-order Runge-Kutta",
                paper: "Kutta 1901",
                matches: "diffrax (1e-14)",
                ..ode("rk4", 4, 4, Any)
            },
            Self::Rk4_38 => SolverInfo {
                summary: "Kutta's 3/8 rule",
                paper: "Kutta 1901",
                matches: "torchdiffeq `rk4`, diffrax (4e-13)",
                ..ode("rk4-38", 4, 4, Any)
            },
            Self::Tsit5 => SolverInfo {
                nfe_note: "fixed; adaptive with rtol/atol",
                adaptive: Optional,
                summary: "Tsitouras 5(4) pair, on a grid or adaptive",
                paper: "Tsitouras 2011",
                matches: "diffrax Tsit5 on a fixed grid (4e-12)",
                ..ode("tsit5", 5, 6, Any)
            },
            Self::Dopri5 => SolverInfo {
                nfe_note: "fixed; adaptive (FSAL) with rtol/atol",
                adaptive: Optional,
                summary: "Dormand-Prince 5(4) pair, on a grid or adaptive",
                paper: "Dormand & Prince 1980",
                matches: "torchdiffeq / diffrax `dopri5` (adaptive: error vs ground truth 1.4e-3, peers 1.1e-2)",
                ..ode("dopri5", 5, 6, Any)
            },
            Self::EulerLogSnr => SolverInfo {
                summary: "explicit Euler on the probability-flow ODE in lambda = -ln sigma",
                paper: "Lu et al. 2022a, section 3.1 (the change of variables), stepped by Euler",
                matches: "no peer runs it (a baseline for the exponential integrators)",
                ..ode("euler-logsnr", 1, 1, Sigma)
            },
            Self::Dpm2 => SolverInfo {
                nfe_note: TO_ZERO,
                summary: "k-diffusion's DPM-2: midpoint in log-sigma",
                paper: "Karras et al. 2022 (k-diffusion `sample_dpm_2`)",
                matches: "k-diffusion `sample_dpm_2` (8e-15)",
                ..ode("dpm2", 2, 2, Sigma)
            },
            Self::Lms4 => SolverInfo {
                order_note: "after start-up steps of order 1-3",
                summary: "linear multistep (Adams-Bashforth) of order 4 on the sigma grid",
                paper: "k-diffusion `sample_lms`",
                matches: "k-diffusion `sample_lms` order 4 (2e-14)",
                ..ode("lms4", 4, 1, Sigma)
            },
            Self::DpmPp2M => SolverInfo {
                summary: "DPM-Solver++(2M), k-diffusion's form",
                paper: "Lu et al. 2022b, Algorithm 2",
                matches: "k-diffusion `sample_dpmpp_2m` (3e-14), diffusers `DPMSolverMultistep` dpmsolver++ order 2 (3e-6, f32 peer)",
                ..ode("dpmpp-2m", 2, 1, Sigma)
            },
            Self::DpmSolver => SolverInfo {
                order_note: "1/2/3 per step (`orders`, default 3)",
                nfe_note: "= the step's order",
                options: &[OptionSpec {
                    name: "orders",
                    default: "3,3,..",
                    doc: "per-step orders 1-3 (`--nfe` sets DPM-Solver-fast's: 3,..,3 then 2,1 or nfe mod 3)",
                }],
                summary: "singlestep DPM-Solver-1/2/3 on the noise prediction",
                paper: "Lu et al. 2022a, Algorithms 1-2",
                matches: "k-diffusion `sample_dpm_fast` with orders 3,3,3,1 (3e-13)",
                ..ode("dpm-solver", 3, 3, Sigma)
            },
            Self::EulerAncestral => SolverInfo {
                stochastic: true,
                options: ANCESTRAL_NOISE,
                summary: "Euler ancestral: an Euler step to sigma_down plus fresh noise of scale sigma_up",
                paper: "Ho et al. 2020 in k-diffusion's form (`sample_euler_ancestral`)",
                matches: "k-diffusion `sample_euler_ancestral`, recorded noise (2e-14)",
                ..ode("euler-ancestral", 1, 1, Sigma)
            },
            Self::DpmPp2MSde => SolverInfo {
                stochastic: true,
                order_note: "measured on a Gaussian target",
                options: ANCESTRAL_NOISE,
                summary: "DPM-Solver++(2M) SDE, midpoint variant",
                paper: "Lu et al. 2022b; k-diffusion `sample_dpmpp_2m_sde`",
                matches: "k-diffusion `sample_dpmpp_2m_sde` midpoint, recorded noise (6e-14)",
                ..ode("dpmpp-2m-sde", 2, 1, Sigma)
            },
            Self::Ddim => SolverInfo {
                order_note: "weak 1 with eta > 0",
                options: &[OptionSpec {
                    name: "eta",
                    default: "0",
                    doc: "DDIM's eta: 0 = deterministic, 1 = DDPM's posterior variance (stochastic when > 0)",
                }],
                summary: "DDIM; eta = 0: `euler` in sigma space, bit for bit; eta > 0: an Euler-ancestral step in sigma~",
                paper: "Song, Meng & Ermon 2021, eqs. 12 and 16",
                matches: "diffusers `DDIMScheduler` eta = 0 (2e-7 f32, 2e-14 f64), k-diffusion (1e-14); eta 0.5 and 1 with `variance_noise` (3e-14 f64, cases_v2)",
                ..ode("ddim", 1, 1, Sigma)
            },
            Self::EulerCfgPp => SolverInfo {
                order_note: "not consistent: each step adds lambda (D_c - D_u); ddim's order 1 when D_c = D_u",
                nfe_note: "one guided evaluation (conditional and unconditional)",
                summary: "DDIM / Euler with CFG++: the guided x0, renoised with the unconditional eps (needs a guided model; lambda = 1 + w)",
                paper: "Chung et al. 2024, CFG++ (`ddim_cfg++`); ComfyUI `sample_euler_cfg_pp`",
                matches: "ddim to 1e-12 when the guided and unconditional predictions agree (tests/cfg_pp.rs)",
                guided: true,
                ..ode("euler-cfg-pp", 1, 1, Sigma)
            },
            Self::DpmPp2MCfgPp => SolverInfo {
                order_note: "not consistent (as euler-cfg-pp); dpmpp-2m's order 2 when D_c = D_u",
                nfe_note: "one guided evaluation (conditional and unconditional)",
                summary: "DPM-Solver++(2M) with CFG++, ComfyUI's form (needs a guided model; lambda = 1 + w)",
                paper: "Chung et al. 2024, CFG++; ComfyUI `sample_dpmpp_2m_cfg_pp`",
                matches: "dpmpp-2m to 1e-12 when the guided and unconditional predictions agree (tests/cfg_pp.rs)",
                guided: true,
                ..ode("dpmpp-2m-cfg-pp", 2, 1, Sigma)
            },
            Self::DpmSolver2M => SolverInfo {
                options: MULTISTEP,
                summary: "multistep DPM-Solver-2M on the noise prediction",
                paper: "Lu et al. 2022a/b",
                matches: "diffusers `DPMSolverMultistep` dpmsolver, order 2 (4e-6, f32 peer)",
                ..ode("dpm-solver-2m", 2, 1, Sigma)
            },
            Self::DpmSolver3M => SolverInfo {
                order_note: "nominally 3, measured 2 (see below)",
                options: MULTISTEP,
                summary: "multistep DPM-Solver-3M on the noise prediction, diffusers' weights",
                paper: "Lu et al. 2022a/b",
                matches: "diffusers `DPMSolverMultistep` dpmsolver, order 3 (8e-6, f32 peer)",
                ..ode("dpm-solver-3m", 2, 1, Sigma)
            },
            Self::DpmPp3M => SolverInfo {
                order_note: "nominally 3, measured 2 (see below)",
                options: MULTISTEP,
                summary: "multistep DPM-Solver++(3M) on the data prediction, diffusers' weights",
                paper: "Lu et al. 2022b",
                matches: "diffusers `DPMSolverMultistep` dpmsolver++, order 3 (5e-6, f32 peer)",
                ..ode("dpmpp-3m", 2, 1, Sigma)
            },
            Self::DpmPp2S => SolverInfo {
                nfe_note: "2 per two-step block",
                options: MULTISTEP,
                summary: "singlestep DPM-Solver++(2S), the grid's points as stages",
                paper: "Lu et al. 2022b, Algorithm 1",
                matches: "diffusers `DPMSolverSinglestep` dpmsolver++ order 2 (2e-14 f64)",
                ..ode("dpmpp-2s", 2, 1, Sigma)
            },
            Self::DpmPp3S => SolverInfo {
                nfe_note: "3 per three-step block",
                options: MULTISTEP,
                summary: "singlestep DPM-Solver++(3S), the grid's points as stages",
                paper: "Lu et al. 2022b",
                matches: "diffusers `DPMSolverSinglestep` dpmsolver++ order 3 (2e-14 f64)",
                ..ode("dpmpp-3s", 3, 1, Sigma)
            },
            Self::UniPc2 => SolverInfo {
                order_note: "UniP-2 + UniC",
                options: MULTISTEP,
                summary: "UniPC-2 (bh2, data prediction) with its corrector",
                paper: "Zhao et al. 2023",
                matches: "diffusers `UniPCMultistep` bh2 order 2 (2e-14 f64)",
                ..ode("unipc-2", 3, 1, Sigma)
            },
            Self::UniPc3 => SolverInfo {
                order_note: "UniP-3 + UniC",
                options: MULTISTEP,
                summary: "UniPC-3 (bh2, data prediction) with its corrector",
                paper: "Zhao et al. 2023",
                matches: "diffusers `UniPCMultistep` bh2 order 3 (3e-14 f64)",
                ..ode("unipc-3", 4, 1, Sigma)
            },
            Self::Deis2 => SolverInfo {
                options: MULTISTEP,
                summary: "DEIS-2 (tAB)",
                paper: "Zhang & Chen 2023",
                matches: "diffusers `DEISMultistep` tAB order 2 (2e-14 f64)",
                ..ode("deis-2", 2, 1, Sigma)
            },
            Self::Deis3 => SolverInfo {
                options: MULTISTEP,
                summary: "DEIS-3 (tAB)",
                paper: "Zhang & Chen 2023",
                matches: "diffusers `DEISMultistep` tAB order 3 (2e-14 f64)",
                ..ode("deis-3", 3, 1, Sigma)
            },
            Self::DpmSolverAdaptive => SolverInfo {
                order_note: "embedded 2",
                nfe_note: "per attempted step",
                adaptive: Required,
                summary: "adaptive DPM-Solver-23 in lambda (rtol/atol, a sigma range)",
                paper: "Lu et al. 2022a, section 4.2; k-diffusion `sample_dpm_adaptive`",
                matches: "k-diffusion `sample_dpm_adaptive` algorithm (no reference case)",
                ..ode("dpm-solver-adaptive", 3, 3, Sigma)
            },
            Self::EdmSde => SolverInfo {
                nfe_note: TO_ZERO,
                stochastic: true,
                options: &[
                    OptionSpec { name: "s_churn", default: "0", doc: "EDM's S_churn (0 = deterministic Heun)" },
                    OptionSpec { name: "s_tmin", default: "0", doc: "lowest noise level that gets churn" },
                    OptionSpec { name: "s_tmax", default: "inf", doc: "highest noise level that gets churn" },
                    S_NOISE,
                ],
                summary: "EDM's stochastic sampler: Heun with churn",
                paper: "Karras et al. 2022, Algorithm 2",
                matches: "EDM Algorithm 2 / k-diffusion `sample_heun` with churn",
                ..ode("edm-sde", 1, 2, Sigma)
            },
            Self::EulerMaruyama => SolverInfo {
                order_note: "strong 1 (additive noise), weak 1",
                stochastic: true,
                summary: "Euler-Maruyama on the reverse SDE",
                paper: "Kloeden & Platen 1992, 9.1; Song et al. 2021, eq. 6",
                matches: "torchsde `sdeint(method='euler')` with recorded noise (1e-13)",
                ..ode("euler-maruyama", 1, 1, Time)
            },
            Self::Ancestral => SolverInfo {
                stochastic: true,
                summary: "ancestral sampling from the DDPM posterior on any grid (DDIM with eta = 1)",
                paper: "Ho et al. 2020, Algorithm 2; Song, Meng & Ermon 2021, eq. 16",
                matches: "DDPM posterior step on any grid (= DDIM with eta = 1)",
                ..ode("ancestral", 1, 1, Time)
            },
            Self::Ddpm => SolverInfo {
                stochastic: true,
                options: &[OptionSpec {
                    name: "variance",
                    default: "fixed-small",
                    doc: "fixed-small (beta~_t, the posterior's) or fixed-large (beta_t)",
                }],
                summary: "DDPM's ancestral sampler with diffusers' variance choices; no noise on the step to the data",
                paper: "Ho et al. 2020, Algorithm 2 and section 3.2",
                matches: "diffusers `DDPMScheduler(clip_sample=False)`, recorded noise (5e-14 f64, cases_v2)",
                ..ode("ddpm", 1, 1, Time)
            },
            Self::ReverseDiffusion => SolverInfo {
                stochastic: true,
                summary: "score_sde's reverse-diffusion predictor, coefficients from the grid's end points",
                paper: "Song et al. 2021, eq. 46",
                matches: "score_sde's reverse-diffusion predictor",
                ..ode("reverse-diffusion", 1, 1, Time)
            },
            Self::Pc => SolverInfo {
                order_note: "bias O(snr^2) from the corrector",
                nfe_note: "+ `corrector_steps`",
                stochastic: true,
                options: &[
                    OptionSpec { name: "snr", default: "0.16", doc: "Langevin corrector's signal-to-noise ratio r" },
                    OptionSpec { name: "corrector_steps", default: "1", doc: "Langevin moves per noise level" },
                    OptionSpec {
                        name: "predictor",
                        default: "reverse-diffusion",
                        doc: "reverse-diffusion, euler-maruyama, ancestral, ddpm-large or none (corrector only)",
                    },
                ],
                summary: "predictor-corrector: an SDE predictor and a Langevin corrector",
                paper: "Song et al. 2021, Algorithms 2-3",
                matches: "score_sde PC: reverse diffusion + Langevin corrector",
                ..ode("pc", 1, 1, Time)
            },
            Self::Ald => SolverInfo {
                order_note: "none: unadjusted Langevin's bias, variances x 1/(1 - a/(4c))",
                nfe_note: "+ `langevin_steps` - 1: `langevin_steps` per level",
                stochastic: true,
                options: &[
                    OptionSpec { name: "step_size", default: "2e-5", doc: "eps: the step at level i is eps sigma_i^2 / sigma_L^2" },
                    OptionSpec { name: "langevin_steps", default: "100", doc: "Langevin moves per noise level (NCSN's T)" },
                ],
                summary: "annealed Langevin dynamics over the grid's levels (one step: Langevin at a fixed level)",
                paper: "Song & Ermon 2019, Algorithm 1",
                matches: "NCSN's sampler (its stationary law on a Gaussian level is tested exactly)",
                ..ode("ald", 1, 1, Time)
            },
        }
    }
}

fn space_text(s: SpaceRule) -> &'static str {
    match s {
        SpaceRule::Any => "t or sigma",
        SpaceRule::Time => "t",
        SpaceRule::Sigma => "sigma",
    }
}

/// The README's solver table (Markdown), generated from the registry.
pub fn markdown_table() -> String {
    let mut md = String::from(
        "| `--solver` | order | NFE / step | space | stochastic | options | what it is (paper) | matches (reference case, max abs diff) |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for id in SolverId::ALL {
        let i = id.info();
        let note = |v: String, n: &str| if n.is_empty() { v } else { format!("{v} ({n})") };
        let order = note(if i.stochastic { format!("weak {}", i.order) } else { i.order.to_string() }, i.order_note);
        let space = match i.adaptive {
            Adaptivity::Required => format!("{}, adaptive", space_text(i.space)),
            _ => space_text(i.space).to_string(),
        };
        let options = if i.options.is_empty() {
            "-".to_string()
        } else {
            i.options.iter().map(|o| format!("`{}` = {}", o.name, o.default)).collect::<Vec<_>>().join(", ")
        };
        md.push_str(&format!(
            "| `{}` | {} | {} | {} | {} | {} | {} ({}) | {} |\n",
            i.name,
            order,
            note(i.nfe_per_step.to_string(), i.nfe_note),
            space,
            if i.stochastic { "yes" } else { "no" },
            options,
            i.summary,
            i.paper,
            i.matches
        ));
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_round_trip() {
        let mut names: Vec<&str> = SolverId::names().collect();
        for id in SolverId::ALL {
            assert_eq!(SolverId::from_name(id.name()), Some(id));
        }
        names.sort();
        names.dedup();
        assert_eq!(names.len(), SolverId::ALL.len());
        assert_eq!(SolverId::from_name("heun2"), None);
    }

    #[test]
    fn every_entry_is_described() {
        for id in SolverId::ALL {
            let i = id.info();
            assert!(!i.summary.is_empty() && !i.paper.is_empty() && !i.matches.is_empty(), "{}", i.name);
            assert!(i.order >= 1 && i.nfe_per_step >= 1, "{}", i.name);
        }
    }
}
