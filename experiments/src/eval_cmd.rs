//! `scoresde eval`: metrics of a sample file against the exact target.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Args;
use rand::SeedableRng;
use rand_pcg::Pcg64;
use scoresde::io::{read_npy_2d, write_atomic};
use scoresde::metrics::discrepancy::{energy_distance, frechet_distance, median_distance, mmd2_rbf};
use scoresde::metrics::target::{ks_per_coordinate, missed_modes, mode_occupancy, w2_per_coordinate};
use scoresde::metrics::{covariance_error, mean_error, random_directions, sliced_w2_with_directions};
use scoresde::targets;

use ndarray::ArrayView2;
use scoresde::gmm::GaussianMixture;

use crate::choices::{CmdError, CmdResult};

/// Flags of `scoresde eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Target: a built-in name or a JSON file.
    #[arg(long, default_value = "ring8")]
    pub target: String,
    /// Samples to evaluate, (N, d) float64 .npy.
    #[arg(long, default_value = "samples.npy")]
    pub samples: PathBuf,
    /// Also write the metrics as JSON here (atomically).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Compare with the noised target p_t at signal coefficient alpha (with --sigma); 1 = data.
    #[arg(long, default_value_t = 1.0)]
    pub alpha: f64,
    /// Compare with the noised target p_t at noise level sigma; 0 = data.
    #[arg(long, default_value_t = 0.0)]
    pub sigma: f64,
    /// Exact reference samples for sliced W2 [default: as many as the samples].
    #[arg(long)]
    pub reference_n: Option<usize>,
    /// Random projections for sliced W2.
    #[arg(long, default_value_t = 256)]
    pub projections: usize,
    /// Seed of the reference samples and projections.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Rows used by the O(n^2) metrics (MMD, energy distance).
    #[arg(long, default_value_t = 2000)]
    pub pairwise_max: usize,
    /// Largest dimension evaluated without asking: the Frechet distance and the covariance
    /// metrics cost O(d^3) time and O(d^2) memory whatever N.
    #[arg(long, default_value_t = 512)]
    pub max_dim: usize,
}

/// Runs `scoresde eval`.
pub fn run(a: EvalArgs) -> CmdResult {
    let target = targets::load(&a.target)?;
    let x = read_npy_2d(&a.samples, "samples")?;
    let metrics = metrics(&a, &target, x.view())?;
    let text = serde_json::to_string_pretty(&metrics)?;
    if let Some(p) = &a.json {
        write_atomic(p, format!("{text}\n").as_bytes())?;
    }
    println!("{text}");
    Ok(())
}

/// The metrics `scoresde eval` prints, of samples `x` against `target` (the flags give the rest;
/// `--samples` and `--target` only name the inputs in the result and in messages).
pub fn metrics(a: &EvalArgs, target: &GaussianMixture, x: ArrayView2<f64>) -> Result<serde_json::Value, CmdError> {
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
    if d > a.max_dim {
        // About 30 d^3 flops (two symmetric eigendecompositions and products) at ~1 GFLOP/s.
        let seconds = 30.0 * (d as f64).powi(3) / 1e9;
        return Err(format!(
            "--samples {}: dimension {d} is above --max-dim {}: the covariance metrics cost O(d^3), about {seconds:.0} s \
             and {} here; pass --max-dim {d} to run them",
            a.samples.display(),
            a.max_dim,
            scoresde::limits::human(8 * 6 * (d as u128) * (d as u128))
        )
        .into());
    }
    for (name, v) in [("alpha", a.alpha), ("sigma", a.sigma)] {
        if !(v.is_finite() && v >= 0.0) {
            return Err(format!("--{name} = {v}: must be finite and >= 0").into());
        }
    }
    if a.alpha == 0.0 && a.sigma == 0.0 {
        return Err("--alpha = 0 and --sigma = 0: the law would be a point mass at 0".into());
    }
    target.check_level(a.alpha, a.sigma).map_err(|e| format!("--{e}"))?;
    if a.pairwise_max < 2 {
        return Err(format!("--pairwise-max = {}: must be at least 2", a.pairwise_max).into());
    }
    if a.projections == 0 {
        return Err("--projections = 0: must be at least 1".into());
    }
    let n_ref = a.reference_n.unwrap_or(n);
    if n_ref < 2 {
        return Err(format!("--reference-n = {n_ref}: must be at least 2").into());
    }
    // The reference and an independent draw of N rows, each d wide, plus the projections.
    let elements = (n_ref as u128 + n as u128) * d as u128 * 2 + a.projections as u128 * (d as u128 + n_ref as u128);
    scoresde::limits::check_f64s("--reference-n", n_ref, elements, "the reference draws and their projections")?;
    let (alpha, sigma) = (a.alpha, a.sigma);
    // A spinner with the elapsed time on a terminal: the metrics take seconds at large d or N.
    let spinner = if std::io::stderr().is_terminal() && (d >= 64 || n >= 100_000) {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_message(format!("eval: {n} x {d} samples"));
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
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
    target.log_prob(alpha, sigma, x, logp.view_mut());
    let mut logp_ref = ndarray::Array1::zeros(n);
    target.log_prob(alpha, sigma, independent.view(), logp_ref.view_mut());
    // Pairwise (O(n^2)) metrics on the first rows only.
    let m = a.pairwise_max.min(n).min(n_ref);
    let (xs, rs, is) =
        (x.slice(ndarray::s![..m, ..]), reference.slice(ndarray::s![..m, ..]), independent.slice(ndarray::s![..m, ..]));
    let bw = median_distance(rs, 1000);
    let occupancy = mode_occupancy(target, x);
    let ks = ks_per_coordinate(target, alpha, sigma, x).fold(0.0f64, |a, &b| a.max(b));
    let ks_floor = ks_per_coordinate(target, alpha, sigma, independent.view()).fold(0.0f64, |a, &b| a.max(b));
    let w2m = w2_per_coordinate(target, alpha, sigma, x).fold(0.0f64, |a, &b| a.max(b));
    let w2m_floor = w2_per_coordinate(target, alpha, sigma, independent.view()).fold(0.0f64, |a, &b| a.max(b));
    let metrics = serde_json::json!({
        "samples": a.samples.display().to_string(),
        "target": a.target,
        "n": n,
        "d": d,
        "alpha": alpha,
        "sigma": sigma,
        "mean_error": mean_error(x, mean.view()),
        "cov_error_rel_fro": covariance_error(x, cov.view()),
        "sliced_w2": sliced_w2_with_directions(x, reference.view(), dirs.view()),
        "sliced_w2_floor": sliced_w2_with_directions(independent.view(), reference.view(), dirs.view()),
        "mean_log_density": logp.mean().unwrap_or(f64::NAN),
        "exact_mean_log_density": logp_ref.mean().unwrap_or(f64::NAN),
        "mmd2_rbf": mmd2_rbf(xs, rs, bw),
        "mmd2_rbf_floor": mmd2_rbf(is, rs, bw),
        "mmd_bandwidth": bw,
        "energy_distance": energy_distance(xs, rs),
        "energy_distance_floor": energy_distance(is, rs),
        "pairwise_n": m,
        "frechet": frechet_distance(x, reference.view()),
        "frechet_floor": frechet_distance(independent.view(), reference.view()),
        "ks_max": ks,
        "ks_max_floor": ks_floor,
        "w2_marginal_max": w2m,
        "w2_marginal_max_floor": w2m_floor,
        "mode_occupancy": occupancy.to_vec(),
        "missed_modes": missed_modes(target, &occupancy),
        "projections": a.projections,
        "reference_n": n_ref,
        "seed": a.seed,
    });
    spinner.finish_and_clear();
    Ok(metrics)
}
