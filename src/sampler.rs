//! Running a sampler end to end: prior draw -> solver in the chosen space -> samples in x-space.
//!
//! [`Solver`] is the closed set of samplers; [`SamplerConfig::new`] checks once, before any
//! evaluation, that the solver, the space and the step rule fit together and that the grid lies
//! in the process's domain. [`sample`] then runs it and reports the NFE it counted.

use ndarray::{Array2, ArrayView2, ArrayViewMut2};
use scoresde_solvers::tableau::{self, ButcherTableau};
use scoresde_solvers::{
    integrate_ode, integrate_pc, integrate_sde, AdaptiveOptions, AdaptiveRk, Ancestral, Ddim, Deis, Dpm2, DpmPp2M,
    DpmPp2MSde, DpmSolver, DpmSolverAdaptive, DpmSolverMultistep, DpmSolverPpMultistep, DpmSolverPpSinglestep, EdmSde,
    EulerAncestral, EulerMaruyama, ExplicitRk, LangevinCorrector, Lms, NoiseSource, ReverseDiffusion, StepInfo,
    TimeGrid, UniPc,
};

use crate::error::{Result, ScoreError};
use crate::grids::{check_grid, Space};
use crate::model::{Counting, NoiseLevel, Parameterisation, ScoreModel};
use crate::process::ForwardProcess;
use crate::reverse::{ProbabilityFlow, ReverseSde, SigmaFlow};

/// Every sampler scoresde can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Solver {
    /// Explicit Euler on the PF-ODE (order 1, 1 NFE/step). In sigma space this is DDIM.
    Euler,
    /// Explicit midpoint (order 2, 2 NFE/step).
    Midpoint,
    /// Heun / explicit trapezoid (order 2, 2 NFE/step). In sigma space: EDM Algorithm 1.
    Heun,
    /// Classic RK4 (order 4, 4 NFE/step).
    Rk4,
    /// Kutta's 3/8 rule (order 4, 4 NFE/step).
    Rk4_38,
    /// Tsitouras 5(4): fixed steps on a grid (6 NFE/step) or adaptive.
    Tsit5,
    /// Dormand-Prince 5(4): fixed steps on a grid (6 NFE/step) or adaptive.
    Dopri5,
    /// Euler-Maruyama on the reverse SDE (strong order 1 for this additive noise, 1 NFE/step).
    EulerMaruyama,
    /// Ancestral sampling from the DDPM posterior on the grid (weak order 1, 1 NFE/step; DDPM =
    /// DDIM with eta = 1).
    Ancestral,
    /// Song et al.'s reverse-diffusion predictor (weak order 1, 1 NFE/step).
    ReverseDiffusion,
    /// Predictor-corrector: reverse-diffusion predictor + Langevin corrector (1 + corrector steps
    /// NFE per step; Song et al. 2021, Algorithms 2-3).
    Pc,
    /// k-diffusion's DPM-2: midpoint in log-sigma (order 2, 2 NFE/step, 1 on a step to sigma = 0).
    Dpm2,
    /// k-diffusion's LMS of order 4: Adams-Bashforth on the sigma grid (order 4, 1 NFE/step).
    Lms4,
    /// DPM-Solver++(2M), k-diffusion's form (order 2, 1 NFE/step; Lu et al. 2022b).
    DpmPp2M,
    /// Singlestep DPM-Solver-1/2/3 on the noise prediction with per-step orders (`--orders`; 3 by
    /// default): k NFE on a step of order k (Lu et al. 2022a).
    DpmSolver,
    /// Euler ancestral (k-diffusion; eta, s_noise): weak order 1, 1 NFE/step, stochastic.
    EulerAncestral,
    /// DPM-Solver++(2M) SDE, midpoint variant (k-diffusion; eta, s_noise): 1 NFE/step, stochastic.
    DpmPp2MSde,
    /// Adaptive DPM-Solver-23 (Lu et al. 2022a, section 4.2; k-diffusion `sample_dpm_adaptive`):
    /// order 3, 3 NFE per attempted step; needs rtol/atol and a sigma range, no grid.
    DpmSolverAdaptive,
    /// EDM's stochastic sampler, Heun with churn (Karras et al. 2022, Algorithm 2; s_churn,
    /// s_tmin, s_tmax, s_noise): weak order 1, 2 NFE/step, stochastic.
    EdmSde,
    /// UniPC-2 (bh2, data prediction; Zhao et al. 2023): order 3 with its corrector, 1 NFE/step.
    UniPc2,
    /// UniPC-3 (bh2, data prediction): order 4 with its corrector, 1 NFE/step.
    UniPc3,
    /// DEIS-2 (tAB; Zhang & Chen 2023): order 2, 1 NFE/step.
    Deis2,
    /// DEIS-3 (tAB): order 3, 1 NFE/step.
    Deis3,
    /// Deterministic DDIM (Song et al. 2021, eta = 0): order 1, 1 NFE/step, sigma space. The same
    /// update as Euler in sigma space and first-order DPM-Solver; diffusers `DDIMScheduler`.
    Ddim,
    /// Multistep DPM-Solver-2M on the noise prediction (Lu et al. 2022a/b): order 2, 1 NFE/step,
    /// sigma space; diffusers `DPMSolverMultistepScheduler(algorithm_type="dpmsolver")`.
    DpmSolver2M,
    /// Multistep DPM-Solver-3M on the noise prediction (Lu et al. 2022a/b), 1 NFE/step, sigma
    /// space; diffusers `DPMSolverMultistepScheduler(algorithm_type="dpmsolver", solver_order=3)`.
    /// Nominally third order, it converges at order 2: diffusers weights the D2 term by half the
    /// Taylor-consistent value (see `scoresde_solvers::DpmSolverMultistep`).
    DpmSolver3M,
    /// Multistep DPM-Solver++(3M) on the data prediction (Lu et al. 2022b), 1 NFE/step, sigma
    /// space; diffusers `DPMSolverMultistepScheduler(algorithm_type="dpmsolver++", solver_order=3)`.
    /// Nominally third order, it converges at order 2, as diffusers' DPM-Solver-3M does.
    DpmPp3M,
    /// Singlestep DPM-Solver++(2S) (Lu et al. 2022b, Algorithm 1) with the grid's points as stages:
    /// order 2, 1 NFE/step (2 per two-step block), sigma space; diffusers `DPMSolverSinglestepScheduler`.
    DpmPp2S,
    /// Singlestep DPM-Solver++(3S) with the grid's points as stages: order 3, 1 NFE/step (3 per
    /// three-step block), sigma space; diffusers `DPMSolverSinglestepScheduler(solver_order=3)`.
    DpmPp3S,
}

impl Solver {
    /// The tableau of a Runge-Kutta PF-ODE solver.
    pub fn tableau(self) -> Option<ButcherTableau> {
        match self {
            Self::Euler => Some(tableau::EULER),
            Self::Midpoint => Some(tableau::MIDPOINT),
            Self::Heun => Some(tableau::HEUN),
            Self::Rk4 => Some(tableau::RK4),
            Self::Rk4_38 => Some(tableau::RK4_38),
            Self::Tsit5 => Some(tableau::TSIT5),
            Self::Dopri5 => Some(tableau::DOPRI5),
            _ => None,
        }
    }

    /// The space a solver is restricted to (`None`: it steps in t or in sigma alike).
    pub fn required_space(self) -> Option<Space> {
        match self {
            Self::EulerMaruyama | Self::Ancestral | Self::ReverseDiffusion | Self::Pc => Some(Space::Time),
            // Runge-Kutta methods step in either variable; every other solver is written in EDM's.
            _ if self.tableau().is_some() => None,
            _ => Some(Space::SigmaTilde),
        }
    }

    /// Whether the solver consumes noise.
    pub fn is_stochastic(self) -> bool {
        matches!(
            self,
            Self::EulerMaruyama
                | Self::Ancestral
                | Self::ReverseDiffusion
                | Self::Pc
                | Self::EulerAncestral
                | Self::DpmPp2MSde
                | Self::EdmSde
        )
    }

    /// The order of convergence the solver shows on a smooth problem: global order for the
    /// deterministic solvers, weak order for the stochastic ones (the order its tests assert).
    /// `DpmSolver` reports its default order-3 schedule; `DpmSolver3M` and `DpmPp3M` report 2, the
    /// order diffusers' weights give (see their variants).
    pub fn order(self) -> u32 {
        match self {
            Self::Euler | Self::Ddim | Self::EulerMaruyama | Self::Ancestral | Self::ReverseDiffusion | Self::Pc => 1,
            Self::EulerAncestral | Self::EdmSde => 1,
            Self::Midpoint | Self::Heun | Self::Dpm2 | Self::DpmPp2M | Self::DpmSolver2M | Self::DpmSolver3M => 2,
            Self::DpmPp3M | Self::DpmPp2S | Self::Deis2 | Self::DpmPp2MSde => 2,
            Self::DpmSolver | Self::DpmSolverAdaptive | Self::DpmPp3S | Self::Deis3 | Self::UniPc2 => 3,
            Self::Rk4 | Self::Rk4_38 | Self::Lms4 | Self::UniPc3 => 4,
            Self::Tsit5 | Self::Dopri5 => 5,
        }
    }

    /// Command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Euler => tableau::EULER.name,
            Self::Midpoint => tableau::MIDPOINT.name,
            Self::Heun => tableau::HEUN.name,
            Self::Rk4 => tableau::RK4.name,
            Self::Rk4_38 => tableau::RK4_38.name,
            Self::Tsit5 => tableau::TSIT5.name,
            Self::Dopri5 => tableau::DOPRI5.name,
            Self::EulerMaruyama => "euler-maruyama",
            Self::Ddim => "ddim",
            Self::Dpm2 => "dpm2",
            Self::EdmSde => "edm-sde",
            Self::DpmSolverAdaptive => "dpm-solver-adaptive",
            Self::UniPc2 => "unipc-2",
            Self::UniPc3 => "unipc-3",
            Self::Deis2 => "deis-2",
            Self::Deis3 => "deis-3",
            Self::Lms4 => "lms4",
            Self::DpmPp2M => "dpmpp-2m",
            Self::DpmSolver => "dpm-solver",
            Self::EulerAncestral => "euler-ancestral",
            Self::DpmPp2MSde => "dpmpp-2m-sde",
            Self::DpmSolver2M => "dpm-solver-2m",
            Self::DpmSolver3M => "dpm-solver-3m",
            Self::DpmPp3M => "dpmpp-3m",
            Self::DpmPp2S => "dpmpp-2s",
            Self::DpmPp3S => "dpmpp-3s",
            Self::Ancestral => "ancestral",
            Self::ReverseDiffusion => "reverse-diffusion",
            Self::Pc => "pc",
        }
    }
}

/// How a solve is stepped.
#[derive(Debug, Clone, PartialEq)]
pub enum Steps {
    /// The points of a fixed grid, in the solver's space.
    Grid(TimeGrid),
    /// Adaptive steps between two points of the solver's space.
    Adaptive {
        /// Where the solve starts (noise end).
        start: f64,
        /// Where it ends (data end).
        end: f64,
        /// Tolerances and controller.
        options: AdaptiveOptions,
    },
}

impl Steps {
    /// First point.
    pub fn start(&self) -> f64 {
        match self {
            Self::Grid(g) => g.start(),
            Self::Adaptive { start, .. } => *start,
        }
    }
    /// Last point.
    pub fn end(&self) -> f64 {
        match self {
            Self::Grid(g) => g.end(),
            Self::Adaptive { end, .. } => *end,
        }
    }
}

/// A validated sampler: solver, space and steps that fit together.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplerConfig {
    solver: Solver,
    space: Space,
    steps: Steps,
    options: SolverOptions,
}

/// Settings of the solvers that have any. Each solver reads only its own fields; the defaults are
/// the peers' defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct SolverOptions {
    /// Noise scale of ancestral and SDE-type samplers (1 = full ancestral step, 0 = deterministic).
    pub eta: f64,
    /// Multiplier of fresh noise (k-diffusion's s_noise, EDM's S_noise).
    pub s_noise: f64,
    /// Per-step orders of singlestep DPM-Solver (None: the solver's own schedule).
    pub orders: Option<Vec<usize>>,
    /// EDM churn: S_churn (0 = deterministic Heun).
    pub s_churn: f64,
    /// EDM churn: lowest noise level that gets churn.
    pub s_tmin: f64,
    /// EDM churn: highest noise level that gets churn.
    pub s_tmax: f64,
    /// Lower the order of multistep methods on the last steps of short grids (diffusers'
    /// `lower_order_final`: multistep solvers apply it below 15 steps, singlestep DPM-Solver++
    /// shortens its last block at any length, see `scoresde_solvers::exponential`).
    pub lower_order_final: bool,
    /// Langevin corrector: signal-to-noise ratio r.
    pub snr: f64,
    /// Langevin corrector: steps per noise level.
    pub corrector_steps: usize,
    /// Finish with one Tweedie denoising step (x <- E[x0 | x]).
    pub denoise_final: bool,
}

impl SolverOptions {
    /// Checks every field's range, naming the first bad one.
    pub fn validate(&self) -> Result<()> {
        let bad = |name: &str, value: f64, expected: &'static str| {
            Err(ScoreError::InvalidParameter { name: name.to_string(), value, expected })
        };
        for (name, v) in
            [("eta", self.eta), ("s_noise", self.s_noise), ("s_churn", self.s_churn), ("s_tmin", self.s_tmin)]
        {
            if !(v.is_finite() && v >= 0.0) {
                return bad(name, v, "must be finite and >= 0");
            }
        }
        if self.s_tmax.is_nan() || self.s_tmax < self.s_tmin {
            return bad("s_tmax", self.s_tmax, "must be >= s_tmin");
        }
        if !(self.snr.is_finite() && self.snr > 0.0) {
            return bad("snr", self.snr, "must be positive and finite");
        }
        if let Some(orders) = &self.orders {
            if let Some((i, &o)) = orders.iter().enumerate().find(|(_, &o)| !(1..=3).contains(&o)) {
                return bad(&format!("orders[{i}]"), o as f64, "must be 1, 2 or 3");
            }
        }
        Ok(())
    }
}

impl Default for SolverOptions {
    fn default() -> Self {
        Self {
            eta: 1.0,
            s_noise: 1.0,
            orders: None,
            s_churn: 0.0,
            s_tmin: 0.0,
            s_tmax: f64::INFINITY,
            lower_order_final: true,
            snr: 0.16,
            corrector_steps: 1,
            denoise_final: false,
        }
    }
}

fn incompatible(solver: Solver, requirement: &'static str) -> ScoreError {
    ScoreError::Incompatible { solver: solver.name(), requirement }
}

impl SamplerConfig {
    /// Checks the combination against `process`: stochastic solvers run on a t grid, adaptive
    /// stepping needs an embedded pair, grids must lie in the domain of their space and run from
    /// noise to data.
    pub fn new(process: &dyn ForwardProcess, solver: Solver, space: Space, steps: Steps) -> Result<Self> {
        // A solver that steps in one space only gets its grid expressed in that space.
        let (space, steps) = match (solver.required_space(), steps) {
            (Some(required), Steps::Grid(grid)) if required != space => {
                check_grid(process, &grid, space, "grid")?;
                let points = grid.points().iter().map(|&v| convert(process, space, required, v)).collect();
                (required, Steps::Grid(TimeGrid::new(points)?))
            }
            (Some(required), Steps::Adaptive { start, end, options }) if required != space => {
                let (start, end) = (convert(process, space, required, start), convert(process, space, required, end));
                (required, Steps::Adaptive { start, end, options })
            }
            (_, steps) => (space, steps),
        };
        if solver == Solver::DpmSolverAdaptive && matches!(steps, Steps::Grid(_)) {
            return Err(incompatible(
                solver,
                "adaptive steps: --rtol/--atol with --sigma-start/--sigma-end (or --t-start/--t-end)",
            ));
        }
        match &steps {
            Steps::Grid(grid) => {
                check_grid(process, grid, space, "grid")?;
                if !grid.is_decreasing() {
                    return Err(ScoreError::InvalidParameter {
                        name: "grid[1]".into(),
                        value: grid.points()[1],
                        expected: "grids run from noise to data: must be smaller than grid[0]",
                    });
                }
            }
            Steps::Adaptive { start, end, .. } => {
                if solver != Solver::DpmSolverAdaptive && solver.tableau().and_then(|t| t.b_err).is_none() {
                    return Err(incompatible(
                        solver,
                        "an embedded pair (dopri5 or tsit5) for adaptive stepping with rtol/atol",
                    ));
                }
                let g = TimeGrid::new(vec![*start, *end])?;
                check_grid(process, &g, space, "adaptive range")?;
                if !g.is_decreasing() {
                    return Err(ScoreError::InvalidParameter {
                        name: "end".into(),
                        value: *end,
                        expected: "must be smaller than start",
                    });
                }
            }
        }
        Ok(Self { solver, space, steps, options: SolverOptions::default() })
    }

    /// Replaces the solver options.
    pub fn with_options(mut self, options: SolverOptions) -> Self {
        self.options = options;
        self
    }

    /// The solver options.
    pub fn options(&self) -> &SolverOptions {
        &self.options
    }

    /// The solver.
    pub fn solver(&self) -> Solver {
        self.solver
    }
    /// The space it steps in.
    pub fn space(&self) -> Space {
        self.space
    }
    /// The steps.
    pub fn steps(&self) -> &Steps {
        &self.steps
    }
}

/// What a sampling run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SampleReport {
    /// Model evaluations.
    pub nfe: usize,
    /// Accepted steps.
    pub steps: usize,
    /// Rejected steps (adaptive only).
    pub rejected: usize,
}

/// A point of space `from` expressed in space `to`.
fn convert(process: &dyn ForwardProcess, from: Space, to: Space, v: f64) -> f64 {
    match (from, to) {
        (Space::Time, Space::SigmaTilde) => process.sigma_tilde(v),
        (Space::SigmaTilde, Space::Time) => process.t_from_sigma_tilde(v),
        _ => v,
    }
}

/// Signal coefficient at a point of `space`.
fn alpha_at(process: &dyn ForwardProcess, space: Space, v: f64) -> f64 {
    match space {
        Space::Time => process.alpha(v),
        Space::SigmaTilde => process.alpha_from_sigma_tilde(v),
    }
}

/// Draws samples: x = prior_std * z at the first point, integrates to the last, returns x there
/// (in the process's x-space). `noise` is required by stochastic solvers and ignored otherwise.
///
/// Copies `z` once; [`sample_owned`] takes it by value and integrates in its place.
pub fn sample(
    process: &dyn ForwardProcess,
    model: &dyn ScoreModel,
    config: &SamplerConfig,
    z: ArrayView2<f64>,
    noise: Option<&mut (dyn NoiseSource + '_)>,
    observer: &mut dyn FnMut(StepInfo),
) -> Result<(Array2<f64>, SampleReport)> {
    sample_owned(process, model, config, z.to_owned(), noise, observer)
}

/// [`sample`] with the prior draws given by value: they are scaled and integrated in place and
/// returned as the samples, so a run holds one N x d state plus its solver's workspace.
pub fn sample_owned(
    process: &dyn ForwardProcess,
    model: &dyn ScoreModel,
    config: &SamplerConfig,
    z: Array2<f64>,
    noise: Option<&mut (dyn NoiseSource + '_)>,
    observer: &mut dyn FnMut(StepInfo),
) -> Result<(Array2<f64>, SampleReport)> {
    if z.ncols() != model.dim() {
        return Err(ScoreError::DimensionMismatch {
            what: "initial noise columns vs target dimension".into(),
            expected: model.dim(),
            found: z.ncols(),
        });
    }
    let model = Counting::new(model);
    let space = config.space;
    let a0 = alpha_at(process, space, config.steps.start());
    let scale = match space {
        Space::Time => process.prior_std(),
        Space::SigmaTilde => process.prior_std() / a0,
    };
    let mut x = z;
    x.mapv_inplace(|v| scale * v);
    let mut report = SampleReport::default();
    match &config.steps {
        Steps::Grid(grid) => {
            run_on_grid(config.solver, &config.options, process, &model, space, grid, x.view_mut(), noise, observer)?;
            report.steps = grid.steps();
        }
        Steps::Adaptive { start, end, options } if config.solver == Solver::DpmSolverAdaptive => {
            let solver = DpmSolverAdaptive::new(3, options.rtol, options.atol)?;
            let stats = solver.integrate(&SigmaFlow::new(process, &model), *start, *end, x.view_mut(), observer)?;
            report.steps = stats.accepted;
            report.rejected = stats.rejected;
        }
        Steps::Adaptive { start, end, options } => {
            let tab = config.solver.tableau().ok_or(incompatible(config.solver, "a grid"))?;
            let solver = AdaptiveRk::new(tab, *options)?;
            let stats = match space {
                Space::Time => {
                    solver.integrate(&ProbabilityFlow::new(process, &model), *start, *end, x.view_mut(), observer)?
                }
                Space::SigmaTilde => {
                    solver.integrate(&SigmaFlow::new(process, &model), *start, *end, x.view_mut(), observer)?
                }
            };
            report.steps = stats.accepted;
            report.rejected = stats.rejected;
        }
    }
    if space == Space::SigmaTilde {
        let a1 = alpha_at(process, space, config.steps.end());
        x.mapv_inplace(|v| a1 * v);
    }
    if config.options.denoise_final {
        let end = convert(process, space, Space::Time, config.steps.end());
        let level = NoiseLevel::at_time(process, end);
        let mut eps = Array2::zeros(x.dim());
        model.predict_eps(level, x.view(), eps.view_mut())?;
        Parameterisation::X0.from_eps(level, x.view(), eps.view_mut());
        x = eps;
    }
    report.nfe = model.nfe();
    Ok((x, report))
}

/// Key of the prior draws in the keyed noise stream (the SDE noise uses keys 0, 1, ... per step).
const PRIOR_KEY: u64 = u64::MAX;

/// Standard-normal prior draws for `n` samples in `d` dimensions: row i depends only on
/// (seed, i), so the first rows of a large draw equal a small draw with the same seed.
pub fn prior_noise(seed: u64, n: usize, d: usize) -> Array2<f64> {
    use rand::Rng;
    use rayon::prelude::*;
    let keys = scoresde_solvers::KeyedNoise::new(seed);
    let mut z = Array2::zeros((n, d));
    if d > 0 {
        // Rows are independent draws: filled in parallel, the same values for any split.
        let flat = z.as_slice_mut().expect("a new array is contiguous");
        flat.par_chunks_mut(d).enumerate().with_min_len(1024).for_each(|(i, row)| {
            let mut rng = keys.rng(i as u64, PRIOR_KEY);
            for v in row.iter_mut() {
                *v = rng.sample(rand_distr::StandardNormal);
            }
        });
    }
    z
}

/// The model as the systems see it: counted, behind a trait object.
type Model<'a> = Counting<&'a dyn ScoreModel>;
/// The sigma-space probability flow of the CLI's process and model.
type Flow<'a> = SigmaFlow<'a, dyn ForwardProcess + 'a, Model<'a>>;
/// The reverse SDE of the CLI's process and model.
type Sde<'a> = ReverseSde<'a, dyn ForwardProcess + 'a, Model<'a>>;

/// Runs `solver` over `grid` (already in the solver's space). One arm per solver.
#[allow(clippy::too_many_arguments)]
fn run_on_grid<'a>(
    solver: Solver,
    options: &SolverOptions,
    process: &'a dyn ForwardProcess,
    model: &'a Model<'a>,
    space: Space,
    grid: &TimeGrid,
    x: ArrayViewMut2<f64>,
    noise: Option<&mut (dyn NoiseSource + '_)>,
    observer: &mut dyn FnMut(StepInfo),
) -> Result<()> {
    let need_noise = || incompatible(solver, "a noise source (--noise file or --seed)");
    if let Some(tab) = solver.tableau() {
        let rk = ExplicitRk::new(tab);
        return Ok(match space {
            Space::Time => integrate_ode(&rk, &ProbabilityFlow::new(process, model), grid, x, observer),
            Space::SigmaTilde => integrate_ode(&rk, &SigmaFlow::new(process, model), grid, x, observer),
        }?);
    }
    let flow = || -> Flow<'a> { SigmaFlow::new(process, model) };
    let sde = || -> Sde<'a> { ReverseSde::new(process, model) };
    let lof = options.lower_order_final;
    match solver {
        Solver::EulerMaruyama => {
            integrate_sde(&EulerMaruyama, &sde(), grid, x, noise.ok_or_else(need_noise)?, observer)?
        }
        Solver::Ancestral => integrate_sde(&Ancestral, &sde(), grid, x, noise.ok_or_else(need_noise)?, observer)?,
        Solver::ReverseDiffusion => {
            integrate_sde(&ReverseDiffusion, &sde(), grid, x, noise.ok_or_else(need_noise)?, observer)?
        }
        Solver::Pc => {
            let corrector = LangevinCorrector::new(options.snr, options.corrector_steps)?;
            integrate_pc(&ReverseDiffusion, &corrector, &sde(), grid, x, noise.ok_or_else(need_noise)?, observer)?
        }
        Solver::Ddim => integrate_ode(&Ddim, &flow(), grid, x, observer)?,
        Solver::Dpm2 => integrate_ode(&Dpm2, &flow(), grid, x, observer)?,
        Solver::EdmSde => {
            let stepper = EdmSde::new(options.s_churn, options.s_tmin, options.s_tmax, options.s_noise)?;
            integrate_sde(&stepper, &flow(), grid, x, noise.ok_or_else(need_noise)?, observer)?
        }
        Solver::UniPc2 => integrate_ode(&UniPc::new(2, lof)?, &flow(), grid, x, observer)?,
        Solver::UniPc3 => integrate_ode(&UniPc::new(3, lof)?, &flow(), grid, x, observer)?,
        Solver::Deis2 => integrate_ode(&Deis::new(2, lof)?, &flow(), grid, x, observer)?,
        Solver::Deis3 => integrate_ode(&Deis::new(3, lof)?, &flow(), grid, x, observer)?,
        Solver::Lms4 => integrate_ode(&Lms::new(4)?, &flow(), grid, x, observer)?,
        Solver::DpmPp2M => integrate_ode(&DpmPp2M, &flow(), grid, x, observer)?,
        Solver::DpmSolver => integrate_ode(&DpmSolver::new(options.orders.clone())?, &flow(), grid, x, observer)?,
        Solver::EulerAncestral => {
            let stepper = EulerAncestral::new(options.eta, options.s_noise)?;
            integrate_sde(&stepper, &flow(), grid, x, noise.ok_or_else(need_noise)?, observer)?
        }
        Solver::DpmPp2MSde => {
            let stepper = DpmPp2MSde::new(options.eta, options.s_noise)?;
            integrate_sde(&stepper, &flow(), grid, x, noise.ok_or_else(need_noise)?, observer)?
        }
        Solver::DpmSolver2M => integrate_ode(&DpmSolverMultistep::new(2, lof)?, &flow(), grid, x, observer)?,
        Solver::DpmSolver3M => integrate_ode(&DpmSolverMultistep::new(3, lof)?, &flow(), grid, x, observer)?,
        Solver::DpmPp3M => integrate_ode(&DpmSolverPpMultistep::new(3, lof)?, &flow(), grid, x, observer)?,
        Solver::DpmPp2S => integrate_ode(&DpmSolverPpSinglestep::new(2, lof)?, &flow(), grid, x, observer)?,
        Solver::DpmPp3S => integrate_ode(&DpmSolverPpSinglestep::new(3, lof)?, &flow(), grid, x, observer)?,
        _ => unreachable!("Runge-Kutta solvers are handled above"),
    }
    Ok(())
}
