//! Running a validated [`SamplerConfig`]: one arm per solver, exhaustive, so a registered solver
//! without a way to run it does not compile.

use ndarray::ArrayViewMut2;
use scoresde_solvers::rk::tableau::{self, ButcherTableau};
use scoresde_solvers::{
    integrate_ode, integrate_sde, AdaptiveRk, Ancestral, AnnealedLangevin, Ddim, Ddpm, DdpmVariance, Deis, Dpm2,
    DpmPp2M, DpmPp2MCfgPp, DpmPp2MSde, DpmSolver, DpmSolverAdaptive, DpmSolverMultistep, DpmSolverPpMultistep,
    DpmSolverPpSinglestep, EdmSde, EulerAncestral, EulerCfgPp, EulerLogSnr, EulerMaruyama, ExplicitRk,
    LangevinCorrector, Lms, NoMove, NoiseSource, OdeStepper, Pc, ReverseDiffusion, SdeStepper, StepInfo, TimeGrid,
    UniPc,
};

use super::solver::{Langevin, Predictor, Solver};
use super::{incompatible, SampleReport, SamplerConfig, Steps};
use crate::error::{Result, ScoreError};
use crate::grids::Space;
use crate::model::{Counting, ScoreModel};
use crate::process::ForwardProcess;
use crate::reverse::{ProbabilityFlow, ReverseSde, SigmaFlow};

/// The model as the systems see it: counted, behind a trait object.
type Model<'a> = Counting<&'a dyn ScoreModel>;
/// The sigma-space probability flow.
type Flow<'a> = SigmaFlow<'a, dyn ForwardProcess + 'a, Model<'a>>;
/// The t-space probability flow.
type TimeFlow<'a> = ProbabilityFlow<'a, dyn ForwardProcess + 'a, Model<'a>>;
/// The reverse SDE.
type Sde<'a> = ReverseSde<'a, dyn ForwardProcess + 'a, Model<'a>>;

/// One solve on a grid: the systems, the state, the noise and the observer.
struct Solve<'a, 'n, 'm, 'o> {
    full_final_step: bool,
    process: &'a dyn ForwardProcess,
    model: &'a Model<'a>,
    grid: &'a TimeGrid,
    x: ArrayViewMut2<'a, f64>,
    noise: Option<&'n mut (dyn NoiseSource + 'm)>,
    observer: &'o mut dyn FnMut(StepInfo),
}

impl<'a> Solve<'a, '_, '_, '_> {
    fn flow(&self) -> Flow<'a> {
        SigmaFlow::new(self.process, self.model)
    }
    fn time_flow(&self) -> TimeFlow<'a> {
        ProbabilityFlow::new(self.process, self.model).with_full_final_step(self.full_final_step)
    }
    fn sde(&self) -> Sde<'a> {
        ReverseSde::new(self.process, self.model)
    }

    /// A sigma-space ODE stepper.
    fn ode<M: OdeStepper<Flow<'a>>>(self, stepper: &M) -> Result<()> {
        let flow = self.flow();
        Ok(integrate_ode(stepper, &flow, self.grid, self.x, self.observer)?)
    }

    /// A sigma-space stepper that needs the model's guided and unconditional predictions (CFG++).
    fn guided<M: OdeStepper<Flow<'a>>>(self, solver: &Solver, stepper: &M) -> Result<()> {
        if !self.model.has_pair() {
            return Err(incompatible(
                solver,
                "a guided model: --class C with --guidance W (lambda = 1 + W) on a class-conditional model or \
                 --classes, or --classifier-scale S",
            ));
        }
        self.ode(stepper)
    }

    /// A Runge-Kutta tableau, in the config's space.
    fn rk(self, tab: ButcherTableau, space: Space) -> Result<()> {
        let rk = ExplicitRk::new(tab);
        Ok(match space {
            Space::Time => integrate_ode(&rk, &self.time_flow(), self.grid, self.x, self.observer),
            Space::SigmaTilde => integrate_ode(&rk, &self.flow(), self.grid, self.x, self.observer),
        }?)
    }

    /// A stochastic stepper on the system `sys`.
    fn sde_on<S: ?Sized, M: SdeStepper<S>>(self, solver: &Solver, stepper: &M, sys: &S) -> Result<()> {
        let noise = self.noise.ok_or_else(|| incompatible(solver, "a noise source (--noise file or --seed)"))?;
        Ok(integrate_sde(stepper, sys, self.grid, self.x, noise, self.observer)?)
    }

    /// Predictor-corrector with any SDE predictor.
    fn pc(self, solver: &Solver, l: &Langevin) -> Result<()> {
        let corrector = LangevinCorrector::new(l.snr, l.corrector_steps)?;
        let sde = self.sde();
        match l.predictor {
            Predictor::ReverseDiffusion => self.sde_on(solver, &Pc::new(ReverseDiffusion, corrector), &sde),
            Predictor::EulerMaruyama => self.sde_on(solver, &Pc::new(EulerMaruyama, corrector), &sde),
            Predictor::Ancestral => self.sde_on(solver, &Pc::new(Ancestral, corrector), &sde),
            Predictor::DdpmLarge => self.sde_on(solver, &Pc::new(Ddpm::new(DdpmVariance::FixedLarge), corrector), &sde),
            Predictor::None => self.sde_on(solver, &Pc::new(NoMove, corrector), &sde),
        }
    }
}

/// Runs `config` from the scaled prior draws in `x` (already in the config's space).
pub(super) fn run<'a>(
    process: &'a dyn ForwardProcess,
    model: &'a Model<'a>,
    config: &SamplerConfig,
    x: ArrayViewMut2<'a, f64>,
    noise: Option<&mut (dyn NoiseSource + '_)>,
    observer: &mut dyn FnMut(StepInfo),
) -> Result<SampleReport> {
    let solver = config.solver();
    let space = config.space();
    let grid = match config.steps() {
        Steps::Grid(grid) => grid,
        Steps::Adaptive { start, end, options } => {
            let (start, end) = (*start, *end);
            let stats = match solver {
                Solver::DpmSolverAdaptive => DpmSolverAdaptive::new(3, options.rtol, options.atol)?
                    .integrate(&SigmaFlow::new(process, model), start, end, x, observer)
                    .map_err(in_sigma)?,
                _ => {
                    let tab = tableau_of(solver).ok_or_else(|| incompatible(solver, "a grid"))?;
                    let rk = AdaptiveRk::new(tab, *options)?;
                    match space {
                        Space::Time => {
                            let flow =
                                ProbabilityFlow::new(process, model).with_full_final_step(config.full_final_step());
                            rk.integrate(&flow, start, end, x, observer)?
                        }
                        Space::SigmaTilde => {
                            rk.integrate(&SigmaFlow::new(process, model), start, end, x, observer).map_err(in_sigma)?
                        }
                    }
                }
            };
            return Ok(SampleReport { nfe: 0, steps: stats.accepted, rejected: stats.rejected });
        }
        Steps::Schedule { .. } => return Err(incompatible(solver, "a grid built before the solve")),
    };
    let s = Solve { full_final_step: config.full_final_step(), process, model, grid, x, noise, observer };
    match solver {
        Solver::Euler
        | Solver::Midpoint
        | Solver::Heun
        | Solver::Rk4
        | Solver::Rk4_38
        | Solver::Tsit5
        | Solver::Dopri5 => s.rk(tableau_of(solver).ok_or_else(|| incompatible(solver, "a tableau"))?, space)?,
        Solver::EulerLogSnr => s.ode(&EulerLogSnr)?,
        Solver::Dpm2 => s.ode(&Dpm2)?,
        Solver::Lms4 => s.ode(&Lms::new(4)?)?,
        Solver::DpmPp2M => s.ode(&DpmPp2M)?,
        Solver::DpmSolver { orders } => s.ode(&DpmSolver::new(orders.clone())?)?,
        Solver::EulerAncestral(o) => {
            let flow = s.flow();
            s.sde_on(solver, &EulerAncestral::new(o.eta, o.s_noise)?, &flow)?
        }
        Solver::DpmPp2MSde(o) => {
            let flow = s.flow();
            s.sde_on(solver, &DpmPp2MSde::new(o.eta, o.s_noise)?, &flow)?
        }
        Solver::Ddim { eta } if *eta == 0.0 => s.ode(&Ddim)?,
        Solver::Ddim { eta } => {
            // DDIM with eta in x~ = x / alpha is k-diffusion's Euler-ancestral step (sigma_up =
            // eta sigma~_1 sqrt(1 - sigma~_1^2 / sigma~_0^2)).
            let flow = s.flow();
            s.sde_on(solver, &EulerAncestral::new(*eta, 1.0)?, &flow)?
        }
        Solver::EulerCfgPp => s.guided(solver, &EulerCfgPp)?,
        Solver::DpmPp2MCfgPp => s.guided(solver, &DpmPp2MCfgPp)?,
        Solver::DpmSolver2M(m) => s.ode(&DpmSolverMultistep::new(2, m.lower_order_final)?)?,
        Solver::DpmSolver3M(m) => s.ode(&DpmSolverMultistep::new(3, m.lower_order_final)?)?,
        Solver::DpmPp3M(m) => s.ode(&DpmSolverPpMultistep::new(3, m.lower_order_final)?)?,
        Solver::DpmPp2S(m) => s.ode(&DpmSolverPpSinglestep::new(2, m.lower_order_final)?)?,
        Solver::DpmPp3S(m) => s.ode(&DpmSolverPpSinglestep::new(3, m.lower_order_final)?)?,
        Solver::UniPc2(m) => s.ode(&UniPc::new(2, m.lower_order_final)?)?,
        Solver::UniPc3(m) => s.ode(&UniPc::new(3, m.lower_order_final)?)?,
        Solver::Deis2(m) => s.ode(&Deis::new(2, m.lower_order_final)?)?,
        Solver::Deis3(m) => s.ode(&Deis::new(3, m.lower_order_final)?)?,
        Solver::DpmSolverAdaptive => {
            return Err(incompatible(solver, "adaptive steps: --rtol/--atol with a sigma range"));
        }
        Solver::EdmSde(c) => {
            let flow = s.flow();
            s.sde_on(solver, &EdmSde::new(c.s_churn, c.s_tmin, c.s_tmax, c.s_noise)?, &flow)?
        }
        Solver::EulerMaruyama => {
            let sde = s.sde();
            s.sde_on(solver, &EulerMaruyama, &sde)?
        }
        Solver::Ancestral => {
            let sde = s.sde();
            s.sde_on(solver, &Ancestral, &sde)?
        }
        Solver::Ddpm(v) => {
            let sde = s.sde();
            s.sde_on(solver, &Ddpm::new(*v), &sde)?
        }
        Solver::ReverseDiffusion => {
            let sde = s.sde();
            s.sde_on(solver, &ReverseDiffusion, &sde)?
        }
        Solver::Pc(l) => s.pc(solver, l)?,
        Solver::Ald { step_size, langevin_steps } => {
            let sigma_last = process.sigma(grid.end());
            let sde = s.sde();
            s.sde_on(solver, &AnnealedLangevin::new(*step_size, *langevin_steps, sigma_last)?, &sde)?
        }
    }
    Ok(SampleReport { nfe: 0, steps: grid.steps(), rejected: 0 })
}

/// The tableau of a Runge-Kutta solver.
fn tableau_of(solver: &Solver) -> Option<ButcherTableau> {
    match solver {
        Solver::Euler => Some(tableau::EULER),
        Solver::Midpoint => Some(tableau::MIDPOINT),
        Solver::Heun => Some(tableau::HEUN),
        Solver::Rk4 => Some(tableau::RK4),
        Solver::Rk4_38 => Some(tableau::RK4_38),
        Solver::Tsit5 => Some(tableau::TSIT5),
        Solver::Dopri5 => Some(tableau::DOPRI5),
        _ => None,
    }
}

/// An adaptive solve in sigma space reports where it stopped in sigma~, and says so (its
/// errors would otherwise call the position t).
fn in_sigma(e: scoresde_solvers::SolverError) -> ScoreError {
    use scoresde_solvers::{Num, SolverError as E};
    let line = match e {
        E::MaxStepsExceeded { max_steps, t } => {
            format!("adaptive solve took more than max_steps = {max_steps} steps and stopped at sigma~ = {}", Num(t))
        }
        E::StepSizeTooSmall { t, h } => format!(
            "step size {h:e} at sigma~ = {} is below the minimum: the problem is too stiff for rtol/atol",
            Num(t)
        ),
        E::Rejected { count, t, h } => format!(
            "{count} consecutive steps rejected at sigma~ = {} (last size {h:e}): the error estimate does not fall with the step",
            Num(t)
        ),
        E::NonFinite { step, t0, t1, row } => {
            format!("non-finite state after step {step} (sigma~ {} -> {}), sample row {row}", Num(t0), Num(t1))
        }
        other => return other.into(),
    };
    ScoreError::Stopped(line)
}

#[cfg(test)]
mod tests {
    use scoresde_solvers::SolverError as E;

    #[test]
    fn sigma_space_stops_name_sigma() {
        let line = |e| super::in_sigma(e).to_string();
        assert_eq!(
            line(E::MaxStepsExceeded { max_steps: 10, t: 152.17 }),
            "adaptive solve took more than max_steps = 10 steps and stopped at sigma~ = 152.17"
        );
        assert!(
            line(E::Rejected { count: 64, t: 3.0, h: 1e-9 }).starts_with("64 consecutive steps rejected at sigma~ = 3")
        );
        assert_eq!(
            line(E::NonFinite { step: 4, t0: 2.0, t1: 1.5, row: 7 }),
            "non-finite state after step 4 (sigma~ 2 -> 1.5), sample row 7"
        );
        assert!(line(E::GridTooShort { len: 1 }).contains("grid has 1 point"));
    }
}
