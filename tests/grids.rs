//! Generated grids: exact end points, strict monotonicity, the domain of each space, and the
//! Karras grid of the k-diffusion reference case.

use ndarray::Array1;
use ndarray_npy::read_npy;
use scoresde::grids::{build_grid, Schedule, Space};
use scoresde::process::*;

#[test]
fn every_schedule_gives_exact_end_points_in_every_space() {
    let processes: Vec<Box<dyn ForwardProcess>> = vec![
        Box::new(Vp::new(0.1, 20.0).unwrap()),
        Box::new(SubVp::new(0.1, 20.0).unwrap()),
        Box::new(Ve::new(0.01, 50.0).unwrap()),
        Box::new(VpCosine::default()),
        Box::new(Edm::new(0.002, 80.0).unwrap()),
    ];
    let schedules = [Schedule::UniformT, Schedule::LogSnr, Schedule::Quadratic, Schedule::Karras { rho: 7.0 }];
    for p in &processes {
        let (t0, t1) = (p.t_max(), p.t_end_default());
        for schedule in schedules {
            for steps in [1, 2, 7, 50] {
                let g = build_grid(p.as_ref(), schedule, steps, t0, t1, Space::Time).unwrap();
                assert_eq!((g.start(), g.end(), g.steps()), (t0, t1, steps), "{} {schedule:?}", p.name());
                assert!(g.points().iter().all(|&t| (0.0..=t0).contains(&t)));
                let s = build_grid(p.as_ref(), schedule, steps, t0, t1, Space::SigmaTilde).unwrap();
                assert_eq!((s.start(), s.end()), (p.sigma_tilde(t0), p.sigma_tilde(t1)));
                // The same points, expressed in the other variable.
                for (t, sig) in g.points().iter().zip(s.points()) {
                    assert!((p.sigma_tilde(*t) / sig - 1.0).abs() < 1e-9, "{} {schedule:?}: {t} vs {sig}", p.name());
                }
            }
        }
    }
}

#[test]
fn karras_grid_matches_the_k_diffusion_case() {
    let case =
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/reference/cases/d2_vp-karras_euler-sigma_n10/grid_sigma_tilde.npy");
    let reference: Array1<f64> = read_npy(case).unwrap();
    // get_sigmas_karras(n=10, ...) gives 10 levels and then 0: our 9 steps are the first 10.
    let vp = Vp::new(0.1, 20.0).unwrap();
    let g = build_grid(&vp, Schedule::Karras { rho: 7.0 }, 9, 1.0, 1e-3, Space::SigmaTilde).unwrap();
    for (a, b) in g.points().iter().zip(reference.iter()) {
        assert!((a / b - 1.0).abs() < 1e-12, "{a} vs {b}");
    }
    assert_eq!(reference[10], 0.0);
}

#[test]
fn bad_grid_requests_name_the_field() {
    let vp = Vp::new(0.1, 20.0).unwrap();
    let e = |r: scoresde::Result<_>| r.map(|_: scoresde_solvers::TimeGrid| ()).unwrap_err().to_string();
    assert_eq!(e(build_grid(&vp, Schedule::UniformT, 0, 1.0, 1e-3, Space::Time)), "steps = 0: must be at least 1");
    assert!(e(build_grid(&vp, Schedule::UniformT, 5, 1.5, 1e-3, Space::Time)).starts_with("t_start = 1.5"));
    assert!(e(build_grid(&vp, Schedule::UniformT, 5, 0.5, 0.7, Space::Time)).starts_with("t_end = 0.7"));
    assert!(e(build_grid(&vp, Schedule::Karras { rho: -1.0 }, 5, 1.0, 1e-3, Space::Time)).starts_with("rho = -1"));
}
