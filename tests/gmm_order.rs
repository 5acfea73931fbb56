//! Convergence orders on a multimodal target, where no closed-form flow exists: against a
//! Dormand-Prince solve at rtol = atol = 1e-12 from the same prior draws (its error is far below the
//! errors compared). Slopes of log(max error) against log(h) over halvings, within 0.15 of theory.

mod common;
use common::order_slope;
use scoresde::grids::{build_grid, Schedule, Space};
use scoresde::model::ExactScore;
use scoresde::process::{ForwardProcess, Ve, Vp};
use scoresde::sampler::{prior_noise, sample, SamplerConfig, Solver, Steps};
use scoresde::targets;
use scoresde_solvers::{no_observer, AdaptiveOptions};

#[test]
fn ode_solvers_converge_at_their_order_on_the_ring() {
    let model = ExactScore::new(targets::ring8());
    let vp = Vp::new(0.1, 20.0).unwrap();
    let ve = Ve::new(0.01, 50.0).unwrap();
    let z = prior_noise(21, 64, 2);
    for (p, solver, space, schedule, order, ns) in [
        (&vp as &dyn ForwardProcess, Solver::Euler, Space::Time, Schedule::LogSnr, 1.0, [400usize, 800, 1600, 3200]),
        (&vp, Solver::Heun, Space::Time, Schedule::LogSnr, 2.0, [200, 400, 800, 1600]),
        (&vp, Solver::Heun, Space::SigmaTilde, Schedule::Karras { rho: 7.0 }, 2.0, [200, 400, 800, 1600]),
        (&vp, Solver::Rk4, Space::Time, Schedule::LogSnr, 4.0, [100, 200, 400, 800]),
        (&ve, Solver::Midpoint, Space::SigmaTilde, Schedule::LogSnr, 2.0, [200, 400, 800, 1600]),
    ] {
        assert_eq!(order, solver.order() as f64, "{}: the registry's order", solver.name());
        let (t0, t1) = (p.t_max(), p.t_end_default());
        let tight = Steps::Adaptive { start: t0, end: t1, options: AdaptiveOptions::new(1e-12, 1e-12).unwrap() };
        let reference = SamplerConfig::new(p, Solver::Dopri5, Space::Time, tight).unwrap();
        let (truth, _) = sample(p, &model, &reference, z.view(), None, &mut no_observer).unwrap();
        let errs: Vec<f64> = ns
            .iter()
            .map(|&n| {
                let grid = build_grid(p, schedule, n, t0, t1, space).unwrap();
                let cfg = SamplerConfig::new(p, solver.clone(), space, Steps::Grid(grid)).unwrap();
                let (x, _) = sample(p, &model, &cfg, z.view(), None, &mut no_observer).unwrap();
                (&x - &truth).iter().fold(0.0f64, |m, v| m.max(v.abs()))
            })
            .collect();
        let s = order_slope(&ns, &errs);
        println!(
            "ring8 {} {} {space:?} {schedule:?}: theory {order}, fitted {s:.3}, errors {errs:?}",
            p.name(),
            solver.name()
        );
        assert!((s - order).abs() < 0.15, "{} {}: fitted {s}", p.name(), solver.name());
    }
}
