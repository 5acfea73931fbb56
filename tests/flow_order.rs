//! Probability-flow solvers against the exact flow of a Gaussian target (MATH.md section 4).
//!
//! For N(mu, diag(l)) the PF-ODE maps x(u) to x_i(t) = alpha(t) mu_i + sqrt(c_i(t) / c_i(u))
//! (x_i(u) - alpha(u) mu_i), c_i = alpha^2 l_i + sigma^2, on every process. So the global error of a
//! solver is known exactly and its order is the slope of log error against log step size (fitted
//! over halvings; required within 0.15 of theory), in t and in sigma space.

mod common;
use common::order_slope;
use ndarray::{array, Array2};
use scoresde::gmm::{Covariance, GaussianMixture};
use scoresde::grids::{build_grid, Schedule, Space};
use scoresde::model::ExactScore;
use scoresde::process::{BetaSchedule, Ddpm, DdpmTable, Flow, ForwardProcess, SubVp, Trig, Ve, Vp};
use scoresde::sampler::{prior_noise, sample, SamplerConfig, Solver, Steps};
use scoresde_solvers::no_observer;

const MU: [f64; 2] = [1.0, -0.5];
const L: [f64; 2] = [0.5, 2.0];

fn target(l: [f64; 2]) -> GaussianMixture {
    GaussianMixture::new(vec![1.0], array![[MU[0], MU[1]]], Covariance::Diagonal(array![[l[0], l[1]]])).unwrap()
}

/// Exact PF-ODE transport of x (given at time u) to time t.
fn exact_flow(p: &dyn ForwardProcess, x: &Array2<f64>, u: f64, t: f64) -> Array2<f64> {
    scoresde::gaussian::exact_flow_map(p, &target(L), x.view(), u, t).unwrap()
}

fn fitted_order(
    p: &dyn ForwardProcess,
    solver: Solver,
    space: Space,
    schedule: Schedule,
    steps: &[usize],
) -> (f64, Vec<f64>) {
    let model = ExactScore::new(target(L));
    let (t0, t1) = (p.t_max(), p.t_end_default());
    let z = prior_noise(3, 64, 2);
    let x_start = z.mapv(|v| v * p.prior_std());
    let truth = exact_flow(p, &x_start, t0, t1);
    let mut errs = vec![];
    for &n in steps {
        let grid = build_grid(p, schedule, n, t0, t1, space).unwrap();
        let cfg = SamplerConfig::new(p, solver.clone(), space, Steps::Grid(grid)).unwrap().with_full_final_step(true);
        let (x, _) = sample(p, &model, &cfg, z.view(), None, &mut no_observer).unwrap();
        errs.push((&x - &truth).iter().fold(0.0f64, |m, d| m.max(d.abs())));
    }
    (order_slope(steps, &errs), errs)
}

/// Process, solver, space, schedule, step counts, theoretical order.
type Case<'a> = (&'a dyn ForwardProcess, Solver, Space, Schedule, Vec<usize>, f64);

#[test]
fn pf_ode_solvers_converge_at_their_order_against_the_exact_gaussian_flow() {
    let vp = Vp::new(0.1, 20.0).unwrap();
    let subvp = SubVp::new(0.1, 20.0).unwrap();
    let ve = Ve::new(0.01, 50.0).unwrap();
    let ddpm = Ddpm::new(DdpmTable::Betas {
        train_steps: 1000,
        schedule: BetaSchedule::Linear,
        beta_start: 1e-4,
        beta_end: 0.02,
        rescale_zero_snr: false,
    })
    .unwrap();
    let cases: Vec<Case> = vec![
        // Flow and trig start where alpha = 0 (the velocity form of the flow) and end at sigma = 0,
        // where their flow is regular: with the full final step, RK4 keeps order 4.
        (&Flow, Solver::Euler, Space::Time, Schedule::UniformT, vec![200, 400, 800, 1600], 1.0),
        (&Flow, Solver::Heun, Space::Time, Schedule::UniformT, vec![100, 200, 400, 800], 2.0),
        (&Trig, Solver::Rk4, Space::Time, Schedule::UniformT, vec![40, 80, 160, 320], 4.0),
        // The discrete chain's flow in sigma~ (its table between timesteps: linear in t).
        (&ddpm, Solver::Heun, Space::SigmaTilde, Schedule::Karras { rho: 7.0 }, vec![50, 100, 200, 400], 2.0),
        (&vp, Solver::Euler, Space::Time, Schedule::UniformT, vec![200, 400, 800, 1600], 1.0),
        (&vp, Solver::Heun, Space::Time, Schedule::UniformT, vec![100, 200, 400, 800], 2.0),
        (&vp, Solver::Midpoint, Space::Time, Schedule::UniformT, vec![100, 200, 400, 800], 2.0),
        (&vp, Solver::Rk4, Space::Time, Schedule::UniformT, vec![40, 80, 160, 320], 4.0),
        (&subvp, Solver::Heun, Space::Time, Schedule::LogSnr, vec![50, 100, 200, 400], 2.0),
        (&ve, Solver::Rk4_38, Space::Time, Schedule::UniformT, vec![40, 80, 160, 320], 4.0),
        (&vp, Solver::Euler, Space::SigmaTilde, Schedule::Karras { rho: 7.0 }, vec![100, 200, 400, 800], 1.0),
        (&vp, Solver::Heun, Space::SigmaTilde, Schedule::Karras { rho: 7.0 }, vec![50, 100, 200, 400], 2.0),
        (&ve, Solver::Heun, Space::SigmaTilde, Schedule::LogSnr, vec![50, 100, 200, 400], 2.0),
    ];
    let mut bad = vec![];
    for (p, solver, space, schedule, steps, order) in cases {
        assert_eq!(order, solver.order() as f64, "{}: the registry's order", solver.name());
        let (fitted, errs) = fitted_order(p, solver.clone(), space, schedule, &steps);
        println!(
            "{:<6} {:<9} {space:?} {schedule:?}: theory {order}, fitted {fitted:.3}, errors {errs:?}",
            p.name(),
            solver.name()
        );
        if (fitted - order).abs() >= 0.15 {
            bad.push(format!("{} {} {space:?}: fitted {fitted}", p.name(), solver.name()));
        }
    }
    assert!(bad.is_empty(), "{bad:?}");
}

#[test]
fn euler_in_sigma_space_is_ddim_and_lands_on_a_point_mass_in_one_step() {
    // N(mu, 1e-12 I) is a point mass to within 1e-12: the denoiser is the constant mu, and one
    // Euler step in sigma space to sigma~ = 0 (which is DDIM) returns D = mu exactly.
    let model = ExactScore::new(target([1e-12, 1e-12]));
    let vp = Vp::new(0.1, 20.0).unwrap();
    let grid = scoresde_solvers::TimeGrid::new(vec![vp.sigma_tilde(1.0), 0.0]).unwrap();
    let cfg = SamplerConfig::new(&vp, Solver::Euler, Space::SigmaTilde, Steps::Grid(grid)).unwrap();
    let z = prior_noise(1, 16, 2);
    let (x, report) = sample(&vp, &model, &cfg, z.view(), None, &mut no_observer).unwrap();
    assert_eq!(report.nfe, 1);
    for r in x.outer_iter() {
        assert!((r[0] - MU[0]).abs() < 1e-12 && (r[1] - MU[1]).abs() < 1e-12, "{r}");
    }
}

#[test]
fn final_tweedie_step_returns_the_posterior_mean() {
    // Point mass: E[x0 | x_t] = mu for every x_t, so one coarse step plus the final denoising lands
    // on mu whatever the solver's error, and costs exactly one extra NFE.
    let model = ExactScore::new(target([1e-12, 1e-12]));
    let vp = Vp::new(0.1, 20.0).unwrap();
    let grid = scoresde_solvers::TimeGrid::new(vec![1.0, 0.5]).unwrap();
    let cfg = SamplerConfig::new(&vp, Solver::Euler, Space::Time, Steps::Grid(grid)).unwrap().with_denoise_final(true);
    let z = prior_noise(2, 8, 2);
    let (x, report) = sample(&vp, &model, &cfg, z.view(), None, &mut no_observer).unwrap();
    assert_eq!(report.nfe, 2, "one solver evaluation plus the denoising evaluation");
    for r in x.outer_iter() {
        assert!((r[0] - MU[0]).abs() < 1e-10 && (r[1] - MU[1]).abs() < 1e-10, "{r}");
    }
}
