//! The fused passes of the exact mixture (`eps_affine`, `eps_affine_update`) are an optimisation
//! only: they must give the unfused values bit for bit, kernel by kernel and end to end.

use ndarray::{Array2, ArrayView2, ArrayViewMut2};
use scoresde::gmm::GaussianMixture;
use scoresde::grids::{build_grid, Schedule, Space};
use scoresde::model::{ExactScore, NoiseLevel, Parameterisation, ScoreModel};
use scoresde::process::{ForwardProcess, SubVp, Vp};
use scoresde::sampler::{prior_noise, sample, SamplerConfig, Solver, Steps};
use scoresde::targets;
use scoresde_solvers::no_observer;

/// The exact score through `predict` only: every fused default of `ScoreModel` is bypassed.
struct Unfused(ExactScore);

impl ScoreModel for Unfused {
    fn dim(&self) -> usize {
        self.0.dim()
    }
    fn parameterisation(&self) -> Parameterisation {
        Parameterisation::Eps
    }
    fn predict(&self, level: NoiseLevel, x: ArrayView2<f64>, out: ArrayViewMut2<f64>) -> scoresde::error::Result<()> {
        self.0.predict(level, x, out)
    }
}

fn mixtures() -> Vec<(&'static str, GaussianMixture)> {
    ["ring8", "aniso16", "diag16", "quad4"].iter().map(|&n| (n, targets::builtin(n).unwrap())).collect()
}

/// Rows spread over and beyond the targets (1037 rows: blocks and chunks end mid-way).
fn points(n: usize, d: usize) -> Array2<f64> {
    Array2::from_shape_fn((n, d), |(i, j)| 6.0 * ((i as f64 * 0.618 + j as f64 * 0.377).fract() - 0.5))
}

#[test]
fn fused_affine_map_and_update_equal_the_unfused_passes_bit_for_bit() {
    for (name, gm) in mixtures() {
        let x = points(1037, gm.dim());
        for &(alpha, sigma) in &[(0.999, 0.04), (0.6, 0.8), (0.01, 0.9999)] {
            let (a, b, h) = (-3.7, 12.5 / sigma, -0.013);
            let mut eps = Array2::zeros(x.dim());
            gm.eps(alpha, sigma, x.view(), eps.view_mut());
            let f_ref = Array2::from_shape_fn(x.dim(), |ij| a * x[ij] + b * eps[ij]);
            let mut f = Array2::zeros(x.dim());
            gm.eps_affine(alpha, sigma, x.view(), f.view_mut(), a, b);
            assert!(f == f_ref, "{name}: eps_affine differs from eps + affine map");
            let updated_ref = Array2::from_shape_fn(x.dim(), |ij| x[ij] + h * f_ref[ij]);
            let mut updated = x.clone();
            gm.eps_affine_update(alpha, sigma, updated.view_mut(), a, b, h);
            assert!(updated == updated_ref, "{name}: eps_affine_update differs from eps_affine + x += h f");
        }
    }
}

#[test]
fn euler_probability_flow_samples_are_the_same_fused_or_not() {
    let processes: [Box<dyn ForwardProcess>; 2] =
        [Box::new(Vp::new(0.1, 20.0).unwrap()), Box::new(SubVp::new(0.1, 20.0).unwrap())];
    for (name, gm) in mixtures() {
        for p in &processes {
            let (t0, t1) = (p.t_max(), p.t_end_default());
            let grid = build_grid(&**p, Schedule::UniformT, 20, t0, t1, Space::Time).unwrap();
            let cfg = SamplerConfig::new(&**p, Solver::Euler, Space::Time, Steps::Grid(grid)).unwrap();
            let z = prior_noise(7, 700, gm.dim());
            let exact = ExactScore::new(gm.clone());
            let (fused, rf) = sample(&**p, &exact, &cfg, z.view(), None, &mut no_observer).unwrap();
            let (plain, rp) = sample(&**p, &Unfused(exact.clone()), &cfg, z.view(), None, &mut no_observer).unwrap();
            assert_eq!(rf.nfe, rp.nfe);
            assert_eq!(rf.nfe, 20);
            assert!(fused == plain, "{name} on {}: fused Euler differs from the unfused one", p.name());
        }
    }
}

/// The fused update checks the state as it writes it; a non-finite value is still reported at
/// the step, times and row where it appears, exactly as the unfused path's scan reports it.
#[test]
fn fused_euler_reports_non_finite_states_like_the_scan() {
    let p = Vp::new(0.1, 20.0).unwrap();
    let gm = targets::ring8();
    let grid = build_grid(&p, Schedule::UniformT, 10, p.t_max(), p.t_end_default(), Space::Time).unwrap();
    let cfg = SamplerConfig::new(&p, Solver::Euler, Space::Time, Steps::Grid(grid)).unwrap();
    let exact = ExactScore::new(gm);
    for (row, value) in [(0, 1e308), (1300, f64::MAX), (2047, -1e308)] {
        let mut z = prior_noise(3, 2048, 2);
        z[[row, 1]] = value;
        let fused = sample(&p, &exact, &cfg, z.view(), None, &mut no_observer).unwrap_err().to_string();
        let plain =
            sample(&p, &Unfused(exact.clone()), &cfg, z.view(), None, &mut no_observer).unwrap_err().to_string();
        assert_eq!(fused, plain);
        assert!(fused.contains(&format!("row {row}")) && fused.contains("step 0"), "{fused}");
    }
    // And a finite run stays unflagged (the flag does not fire on large finite values).
    let z = prior_noise(3, 2048, 2);
    assert!(sample(&p, &exact, &cfg, z.view(), None, &mut no_observer).is_ok());
}
