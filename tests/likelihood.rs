//! Log-likelihood through the probability-flow ODE against the closed-form mixture density.
//!
//! With the exact divergence and the exact p_T the only error is the ODE solver's: at rtol = atol
//! = 1e-8 the bound, |error| < 1e-4 per point, leaves a margin of ~1e3 over the tolerance.

use ndarray::Array1;
use rand::SeedableRng;
use scoresde::likelihood::{log_likelihood, Prior};
use scoresde::model::ExactScore;
use scoresde::process::{ForwardProcess, SubVp, Ve, Vp};
use scoresde::targets;
use scoresde_solvers::AdaptiveOptions;

fn check(target: scoresde::gmm::GaussianMixture, process: &dyn ForwardProcess, n: usize) -> f64 {
    let mut rng = rand_pcg::Pcg64::seed_from_u64(4);
    let x = target.sample(n, &mut rng);
    let mut exact = Array1::zeros(n);
    // The ODE starts at t = 0, where VE still has sigma = sigma_min: compare with p at t = 0.
    target.log_prob(process.alpha(0.0), process.sigma(0.0), x.view(), exact.view_mut());
    let model = ExactScore::new(target.clone());
    let opts = AdaptiveOptions::new(1e-8, 1e-8).unwrap();
    let got = log_likelihood(process, &model, x.view(), 0.0, opts, Prior::ExactTarget, Some(&target)).unwrap();
    got.iter().zip(&exact).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max)
}

#[test]
fn pf_ode_likelihood_matches_the_exact_density() {
    let vp = Vp::new(0.1, 20.0).unwrap();
    let subvp = SubVp::new(0.1, 20.0).unwrap();
    let ve = Ve::new(0.01, 50.0).unwrap();
    for (name, target, p, n) in [
        ("ring8 vp", targets::ring8(), &vp as &dyn ForwardProcess, 1000),
        ("ring8 subvp", targets::ring8(), &subvp, 300),
        ("ring8 ve", targets::ring8(), &ve, 300),
        ("aniso16 vp", targets::aniso16(), &vp, 1000),
    ] {
        let err = check(target, p, n);
        println!("{name}: max abs log-density error over {n} exact samples: {err:.2e}");
        assert!(err < 1e-4, "{name}: {err}");
    }
}

fn mean_and_se(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let m = x.iter().sum::<f64>() / n;
    let v = x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (n - 1.0);
    (m, (v / n).sqrt())
}

#[test]
fn hutchinson_is_unbiased_within_its_standard_error() {
    // Per point the estimate v^T J v has mean div s; over n points the mean of (estimate - exact)
    // is within 5 standard errors of 0 unless biased (false-positive rate 5.7e-7 per check).
    use scoresde::likelihood::{Hutchinson, ProbeKind, ScoreDivergence};
    use scoresde::model::NoiseLevel;
    let target = targets::aniso16();
    let model = ExactScore::new(target.clone());
    let vp = Vp::new(0.1, 20.0).unwrap();
    let mut rng = rand_pcg::Pcg64::seed_from_u64(5);
    let x = target.sample(2000, &mut rng);
    let level = NoiseLevel::at_time(&vp, 0.3);
    let xt = x.mapv(|v| v * level.alpha) + scoresde::sampler::prior_noise(1, 2000, 16) * level.sigma;
    let mut s = ndarray::Array2::zeros(xt.dim());
    let mut exact = Array1::zeros(2000);
    model.score_divergence(level, xt.view(), s.view_mut(), exact.view_mut()).unwrap();
    for kind in [ProbeKind::Rademacher, ProbeKind::Gaussian] {
        let h = Hutchinson::new(&model, 1, kind, 11).unwrap();
        let mut est = Array1::zeros(2000);
        h.score_divergence(level, xt.view(), s.view_mut(), est.view_mut()).unwrap();
        let diff: Vec<f64> = est.iter().zip(&exact).map(|(a, b)| a - b).collect();
        let (m, se) = mean_and_se(&diff);
        println!("{kind:?}: mean (estimate - exact) {m:.3e}, standard error {se:.3e}");
        assert!(m.abs() < 5.0 * se, "{kind:?}: bias {m} vs SE {se}");
        assert!(se > 0.0);
    }
    // The likelihood through the ODE with a Hutchinson divergence: unbiased over points.
    let pts = target.sample(300, &mut rng);
    let opts = AdaptiveOptions::new(1e-6, 1e-6).unwrap();
    let exact_ll = log_likelihood(&vp, &model, pts.view(), 0.0, opts, Prior::ExactTarget, Some(&target)).unwrap();
    let h = Hutchinson::new(&model, 2, ProbeKind::Rademacher, 3).unwrap();
    let hutch_ll = log_likelihood(&vp, &h, pts.view(), 0.0, opts, Prior::ExactTarget, Some(&target)).unwrap();
    let diff: Vec<f64> = hutch_ll.iter().zip(&exact_ll).map(|(a, b)| a - b).collect();
    let (m, se) = mean_and_se(&diff);
    println!("log-likelihood: mean (Hutchinson - exact divergence) {m:.3e}, standard error {se:.3e}");
    assert!(m.abs() < 5.0 * se, "bias {m} vs SE {se}");
}
