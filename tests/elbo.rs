//! Variational bounds with the exact score against the exact log-density.

use ndarray::{array, Array1};
use scoresde::elbo::{continuous_elbo, ddpm_bound};
use scoresde::model::ExactScore;
use scoresde::process::{Ddpm, DdpmTable, ForwardProcess, Vp};
use scoresde::sampler::DdpmVariance;
use scoresde::targets;

/// The chain of `steps` levels uniform in ln SNR between the VP process at `t0` and at 1.
fn vp_chain(vp: &Vp, t0: f64, steps: usize) -> Ddpm {
    let snr = |t: f64| (vp.alpha(t) / vp.sigma(t)).powi(2).ln();
    let (hi, lo) = (snr(t0), snr(1.0));
    let ac = (0..steps)
        .map(|i| {
            let l = hi + (lo - hi) * i as f64 / (steps - 1) as f64;
            1.0 / (1.0 + (-l).exp())
        })
        .collect();
    Ddpm::new(DdpmTable::AlphasCumprod { alphas_cumprod: ac }).unwrap()
}

fn points() -> (ndarray::Array2<f64>, Array1<f64>) {
    // A mode, a saddle between components and a tail point of quad4.
    let x = array![[-1.0, 0.1], [0.5, 0.5], [2.0, -1.5]];
    let mut lp = Array1::zeros(3);
    targets::quad4().log_prob(1.0, 0.0, x.view(), lp.view_mut());
    (x, lp)
}

/// The DDPM bound with the exact score and the fixed small variance lies below ln p(x) at every
/// point (5 standard errors: false-positive rate 2.9e-7 per point), and its gap falls as 1/T:
/// on a chain uniform in ln SNR each of the T steps has ln-SNR width h = O(1/T), the true
/// reverse kernel differs from the model's Gaussian by O(h^2) in KL, and the T steps add to
/// O(1/T). The fitted slope of ln gap against ln T over T = 50..200 is -1 up to the next order
/// (O(1/T), under 0.15 here) and its Monte Carlo error (5 standard errors, by the delta method).
#[test]
fn the_ddpm_bound_is_below_log_p_and_its_gap_falls_as_one_over_t() {
    let vp = Vp::new(0.1, 20.0).unwrap();
    let model = ExactScore::new(targets::quad4());
    let (x, lp) = points();
    let (mut ln_t, mut ln_gap, mut var_ln_gap) = (vec![], vec![], vec![]);
    for steps in [50, 100, 200] {
        let e = ddpm_bound(&vp_chain(&vp, 1e-3, steps), &model, x.view(), DdpmVariance::FixedSmall, 2048, 1).unwrap();
        let gap = &lp - &e.elbo;
        for i in 0..3 {
            assert!(
                gap[i] > -5.0 * e.se[i],
                "T = {steps}, point {i}: ELBO {} above ln p {} ({} SE)",
                e.elbo[i],
                lp[i],
                gap[i] / e.se[i]
            );
        }
        let (g, v) = (gap.mean().unwrap(), e.se.mapv(|s| s * s).sum() / 9.0);
        println!("T = {steps}: mean gap {g:.4} +- {:.4}", v.sqrt());
        ln_t.push((steps as f64).ln());
        ln_gap.push(g.ln());
        var_ln_gap.push(v / (g * g));
    }
    let mt = ln_t.iter().sum::<f64>() / 3.0;
    let sxx: f64 = ln_t.iter().map(|t| (t - mt).powi(2)).sum();
    let slope = ln_t.iter().zip(&ln_gap).map(|(t, g)| (t - mt) * g).sum::<f64>() / sxx;
    let se = (ln_t.iter().zip(&var_ln_gap).map(|(t, v)| (t - mt).powi(2) * v).sum::<f64>()).sqrt() / sxx;
    println!("slope {slope:.3} +- {se:.3}");
    assert!((slope + 1.0).abs() < 0.15 + 5.0 * se, "slope {slope} (SE {se})");
}

/// The continuous-time bound with the exact score is tight up to the prior's and the
/// decoder's mismatch: alpha(1) = 7e-3 makes the prior's O(alpha(1)^2) = 4e-5 nats, and the
/// decoder's width sigma(t0) / alpha(t0) = 0.01 smooths ln p by O(1e-4 |Hessian|) = 1e-3 nats
/// on quad4 (components of variance 0.25): at every point ln p(x) is within 5 standard errors
/// (false-positive rate 5.7e-7 per point) plus 1e-3 of the bound.
#[test]
fn the_continuous_bound_is_tight_with_the_exact_score() {
    let vp = Vp::new(0.1, 20.0).unwrap();
    let model = ExactScore::new(targets::quad4());
    let (x, lp) = points();
    let e = continuous_elbo(&vp, &model, x.view(), 1e-3, 64, 1024, 3).unwrap();
    for i in 0..3 {
        let gap = lp[i] - e.elbo[i];
        println!("point {i}: ln p {:.4}, ELBO {:.4} +- {:.4}", lp[i], e.elbo[i], e.se[i]);
        assert!(gap.abs() < 5.0 * e.se[i] + 1e-3, "point {i}: gap {gap} ({} SE)", gap / e.se[i]);
    }
    let bits = e.bits_per_dim(2);
    assert!((bits[0] + e.elbo[0] / (2.0 * std::f64::consts::LN_2)).abs() < 1e-15);
}

/// Bad arguments name the field.
#[test]
fn bad_arguments_are_named() {
    let vp = Vp::new(0.1, 20.0).unwrap();
    let model = ExactScore::new(targets::quad4());
    let (x, _) = points();
    let e = continuous_elbo(&vp, &model, x.view(), 0.0, 8, 8, 0).unwrap_err().to_string();
    assert!(e.contains("t-end"), "{e}");
    let e = continuous_elbo(&vp, &model, x.view(), 1e-3, 8, 1, 0).unwrap_err().to_string();
    assert!(e.contains("draws"), "{e}");
    let e = continuous_elbo(&vp, &model, array![[1.0, 2.0, 3.0]].view(), 1e-3, 8, 8, 0).unwrap_err().to_string();
    assert!(e.contains("data columns"), "{e}");
}
