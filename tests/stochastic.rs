//! Distribution-level tests of the stochastic samplers against the exact law of a Gaussian target.
//!
//! For p_0 = N(mu, diag(l)) the sampler's target at the grid end t_e is exactly
//! N(alpha mu, diag(alpha^2 l + sigma^2)). With n independent samples, each coordinate's sample
//! mean has standard error sqrt(C_jj / n) and its sample variance sqrt(2 / (n - 1)) C_jj. A check
//! fails when an error exceeds 5 standard errors: probability 5.7e-7 per check (normal tails), 56
//! checks here, so a false alarm about once in 31,000 runs. The samplers are weak order 1, so their
//! bias is O(h): at 1000 uniform steps it stays around one standard error (the ancestral step's
//! variance deficit on VE was 2.5 SE at 500 steps and 0.6 SE at 2000; print the errors with
//! `cargo test --release --test stochastic -- --nocapture`), while a wrong drift or noise scale
//! misses by many standard errors. All samplers share the initial draws, so their errors correlate.

use ndarray::{array, Axis};
use scoresde::gmm::{Covariance, GaussianMixture};
use scoresde::grids::{build_grid, Schedule, Space};
use scoresde::model::ExactScore;
use scoresde::process::{ForwardProcess, Ve, Vp};
use scoresde::sampler::{
    prior_noise, sample, AncestralNoise, Churn, Langevin, Predictor, SamplerConfig, Solver, Steps,
};
use scoresde_solvers::{no_observer, KeyedNoise};

const MU: [f64; 2] = [1.0, -0.5];
const L: [f64; 2] = [0.5, 2.0];

#[test]
fn stochastic_samplers_hit_the_exact_gaussian_law() {
    let target =
        GaussianMixture::new(vec![1.0], array![[MU[0], MU[1]]], Covariance::Diagonal(array![[L[0], L[1]]])).unwrap();
    let model = ExactScore::new(target);
    let vp = Vp::new(0.1, 20.0).unwrap();
    let ve = Ve::new(0.01, 50.0).unwrap();
    let processes: [&dyn ForwardProcess; 2] = [&vp, &ve];
    let (n, steps) = (20_000usize, 1000usize);
    let z = prior_noise(17, n, 2);
    let mut failures = vec![];
    for p in processes {
        for solver in [
            Solver::EulerMaruyama,
            Solver::Ancestral,
            Solver::ReverseDiffusion,
            // The Langevin corrector is unadjusted: at signal-to-noise ratio r its stationary variance
            // is high by about r^2 relative (ULA on a Gaussian), whatever the step count. At r = 0.05
            // that is 0.25%, a quarter of a standard error.
            Solver::Pc(Langevin { snr: 0.05, ..Langevin::default() }),
            Solver::EulerAncestral(AncestralNoise::default()),
            Solver::DpmPp2MSde(AncestralNoise::default()),
            // EDM's churn at S_churn = 40 (gamma = 0.04 per step on 1000 steps).
            Solver::EdmSde(Churn { s_churn: 40.0, ..Churn::default() }),
        ] {
            let t_end = p.t_end_default();
            let grid = build_grid(p, Schedule::UniformT, steps, p.t_max(), t_end, Space::Time).unwrap();
            let cfg = SamplerConfig::new(p, solver.clone(), Space::Time, Steps::Grid(grid)).unwrap();
            let mut noise = KeyedNoise::new(99);
            let (x, _) = sample(p, &model, &cfg, z.view(), Some(&mut noise), &mut no_observer).unwrap();
            let (a, s) = (p.alpha(t_end), p.sigma(t_end));
            let mean = x.mean_axis(Axis(0)).unwrap();
            for j in 0..2 {
                let (m, c) = (a * MU[j], a * a * L[j] + s * s);
                let var = x.column(j).iter().map(|v| (v - mean[j]).powi(2)).sum::<f64>() / (n - 1) as f64;
                let z_mean = (mean[j] - m) / (c / n as f64).sqrt();
                let z_var = (var - c) / (c * (2.0 / (n - 1) as f64).sqrt());
                println!(
                    "{:<3} {:<18} coord {j}: mean error {z_mean:+.2} SE, variance error {z_var:+.2} SE",
                    p.name(),
                    solver.name()
                );
                if z_mean.abs() > 5.0 || z_var.abs() > 5.0 {
                    failures.push(format!("{} {} coord {j}: {z_mean:.2}, {z_var:.2} SE", p.name(), solver.name()));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{failures:?}");
}

#[test]
fn corrector_only_pc_samples_unadjusted_langevins_law_at_its_last_level() {
    // `pc --predictor none`: Langevin moves at each grid point but the last, x unchanged between
    // levels, so with enough moves the output is unadjusted Langevin's stationary law at the last
    // corrected level t_{K-1}: on N(m, C) with step h it is N(m, V diag(c / (1 - h / (4 c))) V^T).
    // The step is score_sde's, from the batch: x += e s + sqrt(2 e) z with e = 2 a (snr mean|z| /
    // mean|s|)^2 and a = (alpha(t_{K-1}) / alpha(t_K))^2, i.e. ULA with h = 2 e; at stationarity
    // it is recomputed here from the output
    // (its relative spread over batches of 20k is ~0.5%, a variance effect 100x below the check).
    // Checks: mean and each variance within 5 standard errors of that law (false-positive rate
    // 5.7e-7 per check), and the variance measurably above the level's own (the bias exists).
    let vp = Vp::new(0.1, 20.0).unwrap();
    let target = scoresde::targets::gauss2();
    let (k, t_end) = (40usize, 0.3);
    let grid = build_grid(&vp, Schedule::UniformT, k, 1.0, t_end, Space::Time).unwrap();
    let (t_last, t_next) = (grid.points()[k - 1], grid.points()[k]);
    let snr = 0.3;
    let solver = Solver::Pc(Langevin { snr, corrector_steps: 50, predictor: Predictor::None });
    let cfg = SamplerConfig::new(&vp, solver, Space::Time, Steps::Grid(grid)).unwrap();
    let n = 20_000;
    let model = ExactScore::new(target.clone());
    let z = prior_noise(4, n, 2);
    let (x, _) = sample(&vp, &model, &cfg, z.view(), Some(&mut KeyedNoise::new(9)), &mut no_observer).unwrap();
    let (al, sg) = (vp.alpha(t_last), vp.sigma(t_last));
    let (m, c) = target.moments(al, sg);
    // The step the last corrector move used, from the stationary batch.
    let mut eps = ndarray::Array2::zeros(x.dim());
    target.eps(al, sg, x.view(), eps.view_mut());
    let s_norm = eps.outer_iter().map(|r| r.dot(&r).sqrt()).sum::<f64>() / n as f64 / sg;
    let w = prior_noise(77, n, 2);
    let z_norm = w.outer_iter().map(|r| r.dot(&r).sqrt()).sum::<f64>() / n as f64;
    let a = (vp.alpha(t_last) / vp.alpha(t_next)).powi(2);
    let h = 2.0 * (2.0 * a * (snr * z_norm / s_norm).powi(2));
    let cm = nalgebra::DMatrix::from_fn(2, 2, |i, j| c[[i, j]]);
    let e = nalgebra::SymmetricEigen::new(cm);
    let inflated = e.eigenvalues.map(|c| c / (1.0 - h / (4.0 * c)));
    let ula = &e.eigenvectors * nalgebra::DMatrix::from_diagonal(&inflated) * e.eigenvectors.transpose();
    let mean = x.mean_axis(Axis(0)).unwrap();
    for j in 0..2 {
        let v = x.column(j).iter().map(|v| (v - mean[j]).powi(2)).sum::<f64>() / (n - 1) as f64;
        let zm = (mean[j] - m[j]) / (ula[(j, j)] / n as f64).sqrt();
        let zv = (v - ula[(j, j)]) / (ula[(j, j)] * (2.0 / (n - 1) as f64).sqrt());
        let bias = (ula[(j, j)] - c[[j, j]]) / (c[[j, j]] * (2.0 / (n - 1) as f64).sqrt());
        println!("coord {j}: h = {h:.4}, mean {zm:+.2} SE, variance {zv:+.2} SE of ULA's law; ULA's bias {bias:.1} SE");
        assert!(zm.abs() < 5.0 && zv.abs() < 5.0, "coord {j}: {zm}, {zv}");
        assert!(bias > 5.0, "coord {j}: the test must see ULA's bias ({bias} SE)");
    }
}
