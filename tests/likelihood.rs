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
