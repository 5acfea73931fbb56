//! UniPC and DEIS: fitted order over halvings against a tight reference solve (lower_order_final off, so only the warm-up steps are of
//! lower order), within 0.15 of theory; and point-mass exactness of UniPC's data prediction.

mod common;
use common::order_slope;
use ndarray::array;
use scoresde::gmm::{Covariance, GaussianMixture};
use scoresde::grids::{build_grid, Schedule, Space};
use scoresde::model::ExactScore;
use scoresde::process::Vp;
use scoresde::sampler::{prior_noise, sample, Multistep, SamplerConfig, Solver, Steps};
use scoresde::targets;
use scoresde_solvers::no_observer;

#[test]
fn unipc_and_deis_converge_at_their_order() {
    // On the ring, against a Dormand-Prince solve at rtol = atol = 1e-12 from the same draws (the
    // exact-W2 route bottoms out near 1e-7, too early for these high orders).
    let vp = Vp::new(0.1, 20.0).unwrap();
    let model = ExactScore::new(targets::ring8());
    let z = prior_noise(9, 64, 2);
    let tight = Steps::Adaptive {
        start: 1.0,
        end: 1e-3,
        options: scoresde_solvers::AdaptiveOptions::new(1e-12, 1e-12).unwrap(),
    };
    let (truth, _) = sample(
        &vp,
        &model,
        &SamplerConfig::new(&vp, Solver::Dopri5, Space::Time, tight).unwrap(),
        z.view(),
        None,
        &mut no_observer,
    )
    .unwrap();
    let m = Multistep { lower_order_final: false };
    // Theory: the registry's order (UniPC with its corrector is one above its predictor).
    for (solver, ns) in [
        (Solver::Deis2(m), [100usize, 200, 400, 800]),
        (Solver::Deis3(m), [100, 200, 400, 800]),
        (Solver::UniPc2(m), [100, 200, 400, 800]),
        (Solver::UniPc3(m), [400, 800, 1600, 3200]),
    ] {
        let order = solver.order() as f64;
        let errs: Vec<f64> = ns
            .iter()
            .map(|&n| {
                let grid = build_grid(&vp, Schedule::LogSnr, n, 1.0, 1e-3, Space::SigmaTilde).unwrap();
                let cfg = SamplerConfig::new(&vp, solver.clone(), Space::SigmaTilde, Steps::Grid(grid)).unwrap();
                let (x, _) = sample(&vp, &model, &cfg, z.view(), None, &mut no_observer).unwrap();
                (&x - &truth).iter().fold(0.0f64, |m, v| m.max(v.abs()))
            })
            .collect();
        let s = order_slope(&ns, &errs);
        println!("ring8 vp {}: errors {errs:?}, fitted order {s:.3} (theory {order})", solver.name());
        assert!((s - order).abs() < 0.15, "{}: fitted {s}", solver.name());
    }
}

#[test]
fn unipc_lands_on_a_point_mass() {
    let mu = [0.5, 2.0];
    let target = GaussianMixture::new(vec![1.0], array![[mu[0], mu[1]]], Covariance::Isotropic(vec![1e-14])).unwrap();
    let vp = Vp::new(0.1, 20.0).unwrap();
    for solver in [Solver::UniPc2(Multistep::default()), Solver::UniPc3(Multistep::default())] {
        let grid = scoresde_solvers::TimeGrid::new(vec![150.0, 20.0, 3.0, 0.5, 0.1, 0.0]).unwrap();
        let cfg = SamplerConfig::new(&vp, solver.clone(), Space::SigmaTilde, Steps::Grid(grid)).unwrap();
        let (x, report) =
            sample(&vp, &ExactScore::new(target.clone()), &cfg, prior_noise(2, 4, 2).view(), None, &mut no_observer)
                .unwrap();
        assert_eq!(report.nfe, 5, "one model call per step: the corrector reuses it");
        for r in x.outer_iter() {
            assert!((r[0] - mu[0]).abs() < 1e-9 && (r[1] - mu[1]).abs() < 1e-9, "{}: {r}", solver.name());
        }
    }
}
