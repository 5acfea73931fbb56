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
use scoresde::sampler::{prior_noise, sample, AncestralNoise, Churn, Langevin, SamplerConfig, Solver, Steps};
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
