//! `scoresde nll`: log-likelihood of points through the probability-flow ODE.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use ndarray::{Array1, ArrayView2};
use scoresde::gmm::GaussianMixture;
use scoresde::io::{read_npy_2d, write_npy};
use scoresde::likelihood::{log_likelihood, Hutchinson, Prior, ProbeKind};
use scoresde::model::ExactScore;
use scoresde::targets;
use scoresde_solvers::AdaptiveOptions;

use crate::choices::{CmdError, CmdResult, ProcessArgs};

/// The density used at the noise end of the likelihood ODE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PriorKind {
    /// The process's Gaussian prior N(0, prior_std^2 I), as with a trained model.
    Gaussian,
    /// The target's exact p_T, so that only the ODE error remains.
    Exact,
}

/// Flags of `scoresde nll`.
#[derive(Debug, Args)]
pub struct NllArgs {
    /// Target: a built-in name or a JSON file.
    #[arg(long, default_value = "ring8")]
    pub target: String,
    /// Points, (N, d) float64 .npy.
    #[arg(long)]
    pub points: PathBuf,
    /// Output log-likelihoods, (N,) float64 .npy (written atomically).
    #[arg(long, default_value = "loglik.npy")]
    pub out: PathBuf,
    #[command(flatten)]
    pub process: ProcessArgs,
    /// Time the points live at (0 = data).
    #[arg(long, default_value_t = 0.0)]
    pub t_start: f64,
    /// Relative tolerance of the adaptive Dormand-Prince solve.
    #[arg(long, default_value_t = 1e-8)]
    pub rtol: f64,
    /// Absolute tolerance.
    #[arg(long, default_value_t = 1e-8)]
    pub atol: f64,
    /// Density at the noise end T.
    #[arg(long, value_enum, default_value_t = PriorKind::Gaussian)]
    pub prior: PriorKind,
    /// Estimate the divergence with Hutchinson's estimator and this many probes per point, instead
    /// of the exact divergence (0 = exact).
    #[arg(long, default_value_t = 0)]
    pub hutchinson: usize,
    /// Distribution of Hutchinson's probe vectors.
    #[arg(long, value_enum, default_value_t = ProbeArg::Rademacher)]
    pub probe: ProbeArg,
    /// Seed of the probe vectors.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Distribution of Hutchinson's probe vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProbeArg {
    /// Entries +-1.
    Rademacher,
    /// Standard normal entries.
    Gaussian,
}

/// Runs `scoresde nll`.
pub fn run(a: NllArgs) -> CmdResult {
    let target = targets::load(&a.target)?;
    let points = read_npy_2d(&a.points, "points")?;
    let (logp, summary) = loglik(&a, &target, points.view())?;
    write_npy(&a.out, &logp)?;
    println!("{summary}");
    Ok(())
}

/// The log-likelihoods of `points` under the flags' ODE and a summary (the line `scoresde nll`
/// prints: n, mean log-likelihood, the exact mean log-density and the largest error against it).
pub fn loglik(
    a: &NllArgs,
    target: &GaussianMixture,
    points: ArrayView2<f64>,
) -> Result<(Array1<f64>, serde_json::Value), CmdError> {
    let process = a.process.build()?;
    if !(a.t_start >= 0.0 && a.t_start < process.t_max()) {
        return Err(format!(
            "--t-start = {}: the points' time must be in [0, T) (T = {} for process {})",
            a.t_start,
            process.t_max(),
            process.name()
        )
        .into());
    }
    if points.ncols() != target.dim() || points.nrows() == 0 {
        return Err(format!(
            "--points {}: shape ({}, {}) but the target has dimension {} (need N >= 1 rows)",
            a.points.display(),
            points.nrows(),
            points.ncols(),
            target.dim()
        )
        .into());
    }
    let prior = match a.prior {
        PriorKind::Gaussian => Prior::Gaussian,
        PriorKind::Exact => Prior::ExactTarget,
    };
    let model = ExactScore::new(target.clone());
    let options = AdaptiveOptions::new(a.rtol, a.atol)?;
    let logp = if a.hutchinson == 0 {
        log_likelihood(&*process, &model, points, a.t_start, options, prior, Some(target))?
    } else {
        let kind = match a.probe {
            ProbeArg::Rademacher => ProbeKind::Rademacher,
            ProbeArg::Gaussian => ProbeKind::Gaussian,
        };
        let estimator = Hutchinson::new(&model, a.hutchinson, kind, a.seed)?;
        log_likelihood(&*process, &estimator, points, a.t_start, options, prior, Some(target))?
    };
    let mut exact = Array1::zeros(points.nrows());
    target.log_prob(process.alpha(a.t_start), process.sigma(a.t_start), points, exact.view_mut());
    let err = logp.iter().zip(&exact).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
    let summary = serde_json::json!({
        "n": logp.len(),
        "mean_log_likelihood": logp.mean().unwrap_or(f64::NAN),
        "exact_mean_log_density": exact.mean().unwrap_or(f64::NAN),
        "max_abs_error_vs_exact": err,
    });
    Ok((logp, summary))
}
