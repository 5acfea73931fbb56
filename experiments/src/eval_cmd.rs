//! `scoresde eval`: metrics of a sample file against the exact target.

use rand::SeedableRng;
use rand_pcg::Pcg64;
use scoresde::io::{read_npy_2d, write_atomic};
use scoresde::metrics::{covariance_error, mean_error, random_directions, sliced_w2_with_directions};
use scoresde::targets;

use crate::cli::{CmdResult, EvalArgs};

/// Runs `scoresde eval`.
pub fn run(a: EvalArgs) -> CmdResult {
    let target = targets::load(&a.target)?;
    let x = read_npy_2d(&a.samples, "samples")?;
    let (n, d) = x.dim();
    if d != target.dim() {
        return Err(format!(
            "--samples {}: {d} columns but the target has dimension {}",
            a.samples.display(),
            target.dim()
        )
        .into());
    }
    if n < 2 {
        return Err(format!("--samples {}: {n} rows: need at least 2", a.samples.display()).into());
    }
    for (name, v) in [("alpha", a.alpha), ("sigma", a.sigma)] {
        if !(v.is_finite() && v >= 0.0) {
            return Err(format!("--{name} = {v}: must be finite and >= 0").into());
        }
    }
    if a.alpha == 0.0 && a.sigma == 0.0 {
        return Err("--alpha = 0 and --sigma = 0: the law would be a point mass at 0".into());
    }
    if a.projections == 0 {
        return Err("--projections = 0: must be at least 1".into());
    }
    let n_ref = a.reference_n.unwrap_or(n);
    if n_ref < 2 {
        return Err(format!("--reference-n = {n_ref}: must be at least 2").into());
    }
    let (alpha, sigma) = (a.alpha, a.sigma);
    let mut rng = Pcg64::seed_from_u64(a.seed);
    let draw = |rng: &mut Pcg64, m: usize| {
        let x0 = target.sample(m, rng);
        let z = scoresde::sampler::prior_noise(rand::Rng::random(rng), m, d);
        x0 * alpha + z * sigma
    };
    let reference = draw(&mut rng, n_ref);
    let independent = draw(&mut rng, n);
    let dirs = random_directions(a.projections, d, &mut rng);
    let (mean, cov) = target.moments(alpha, sigma);
    let mut logp = ndarray::Array1::zeros(n);
    target.log_prob(alpha, sigma, x.view(), logp.view_mut());
    let mut logp_ref = ndarray::Array1::zeros(n);
    target.log_prob(alpha, sigma, independent.view(), logp_ref.view_mut());
    let metrics = serde_json::json!({
        "samples": a.samples.display().to_string(),
        "target": a.target,
        "n": n,
        "d": d,
        "alpha": alpha,
        "sigma": sigma,
        "mean_error": mean_error(x.view(), mean.view()),
        "cov_error_rel_fro": covariance_error(x.view(), cov.view()),
        "sliced_w2": sliced_w2_with_directions(x.view(), reference.view(), dirs.view()),
        "sliced_w2_floor": sliced_w2_with_directions(independent.view(), reference.view(), dirs.view()),
        "mean_log_density": logp.mean().unwrap_or(f64::NAN),
        "exact_mean_log_density": logp_ref.mean().unwrap_or(f64::NAN),
        "projections": a.projections,
        "reference_n": n_ref,
        "seed": a.seed,
    });
    let text = serde_json::to_string_pretty(&metrics)?;
    if let Some(p) = &a.json {
        write_atomic(p, format!("{text}\n").as_bytes())?;
    }
    println!("{text}");
    Ok(())
}
