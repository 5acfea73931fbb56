//! The registry's declared facts against what the solvers do: NFE per step counted on a run, the
//! space a solver steps in, options validated when the configuration is built.

use scoresde::grids::{Schedule, Space};
use scoresde::model::ExactScore;
use scoresde::process::Vp;
use scoresde::sampler::{prior_noise, sample, Adaptivity, Langevin, SamplerConfig, Solver, SolverId, SpaceRule, Steps};
use scoresde::targets;
use scoresde_solvers::{no_observer, KeyedNoise, NoiseSource};

#[test]
fn every_solver_costs_its_declared_nfe_per_step() {
    // 12 steps of a log-SNR grid ending at t = 1e-3 (no step to sigma = 0, where some solvers take a
    // cheaper Euler step): NFE = 12 x nfe_per_step, plus one per corrector move for pc.
    let vp = Vp::new(0.1, 20.0).unwrap();
    let model = ExactScore::new(targets::ring8());
    let guided = scoresde::guidance::GuidedExact::new(&targets::ring8(), &[0, 2], 1.5).unwrap();
    let z = prior_noise(0, 5, 2);
    let steps = 12;
    for id in SolverId::ALL {
        let info = id.info();
        if info.adaptive == Adaptivity::Required {
            continue;
        }
        let solver = Solver::new(id);
        let extra = solver.extra_draws();
        let grid = Steps::Schedule { schedule: Schedule::LogSnr, steps, t_start: 1.0, t_end: 1e-3 };
        let cfg = SamplerConfig::new(&vp, solver, Space::Time, grid).unwrap();
        let expected_space = match info.space {
            SpaceRule::Sigma => Space::SigmaTilde,
            _ => Space::Time,
        };
        assert_eq!(cfg.space(), expected_space, "{}", info.name);
        let mut keyed = KeyedNoise::new(1);
        let noise: Option<&mut dyn NoiseSource> = if info.stochastic { Some(&mut keyed) } else { None };
        let model: &dyn scoresde::model::ScoreModel = if info.guided { &guided } else { &model };
        let (_, report) = sample(&vp, model, &cfg, z.view(), noise, &mut no_observer).unwrap();
        assert_eq!(report.nfe, steps * (info.nfe_per_step as usize + extra), "{}", info.name);
    }
}

#[test]
fn options_are_validated_when_the_configuration_is_built() {
    let vp = Vp::new(0.1, 20.0).unwrap();
    let grid = Steps::Schedule { schedule: Schedule::UniformT, steps: 10, t_start: 1.0, t_end: 1e-3 };
    let bad = Solver::Pc(Langevin { snr: -1.0, ..Langevin::default() });
    let err = SamplerConfig::new(&vp, bad, Space::Time, grid).unwrap_err().to_string();
    assert_eq!(err, "snr = -1: must be positive and finite");
}

#[test]
fn an_adaptive_only_solver_refuses_a_grid_and_a_fixed_step_solver_refuses_tolerances() {
    let vp = Vp::new(0.1, 20.0).unwrap();
    let grid = Steps::Schedule { schedule: Schedule::UniformT, steps: 10, t_start: 1.0, t_end: 1e-3 };
    let err = SamplerConfig::new(&vp, Solver::DpmSolverAdaptive, Space::Time, grid).unwrap_err().to_string();
    assert!(err.starts_with("solver dpm-solver-adaptive: needs adaptive steps"), "{err}");
    let options = scoresde_solvers::AdaptiveOptions::new(1e-5, 1e-5).unwrap();
    let adaptive = Steps::Adaptive { start: 1.0, end: 1e-3, options };
    let err = SamplerConfig::new(&vp, Solver::Heun, Space::Time, adaptive).unwrap_err().to_string();
    assert!(err.starts_with("solver heun: needs an embedded pair"), "{err}");
}
