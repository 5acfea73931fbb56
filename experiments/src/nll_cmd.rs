//! `scoresde nll`: log-likelihood of points through the probability-flow ODE.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use ndarray::{Array1, ArrayView2};
use scoresde::gmm::GaussianMixture;
use scoresde::io::{read_npy_2d, write_npy};
use scoresde::likelihood::{log_likelihood, Hutchinson, Prior, ProbeKind, ScoreDivergence};
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
    /// Target: a built-in name or a JSON file (with --model: the exact density printed beside
    /// the network's; default there: the checkpoint's built-in target).
    #[arg(long, default_value = "ring8")]
    pub target: String,
    /// A trained network (`scoresde train --out`): its probability-flow likelihood, with the exact
    /// divergence of its score (forward-mode through the MLP) or --hutchinson probes.
    #[arg(long)]
    pub model: Option<PathBuf>,
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
    /// The ids of the flags given explicitly.
    #[arg(skip)]
    pub given: Vec<String>,
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
    let target = match &a.model {
        Some(path) if !a.given.iter().any(|g| g == "target") => {
            let net = scoresde::nn::NetScore::load(path, &scoresde::nn::device())?;
            let name = net.checkpoint().meta["target"].as_str().unwrap_or_default().to_string();
            targets::builtin(&name).ok_or_else(|| {
                format!(
                    "--model {}: its target {name:?} is not built in: name the exact one with --target",
                    path.display()
                )
            })?
        }
        _ => targets::load(&a.target)?,
    };
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
    let options = AdaptiveOptions::new(a.rtol, a.atol)?;
    let exact_model = ExactScore::new(target.clone());
    let net = match &a.model {
        None => None,
        Some(path) => {
            let net = a.process.load_model(path)?;
            if net.dim() != target.dim() {
                return Err(format!(
                    "--model {}: dimension {} but the target has {}",
                    path.display(),
                    net.dim(),
                    target.dim()
                )
                .into());
            }
            if process.sigma(a.t_start) <= 0.0 {
                return Err(format!(
                    "--t-start = {}: a network's score needs sigma > 0 there (score_sde starts at 1e-5)",
                    a.t_start
                )
                .into());
            }
            Some(net)
        }
    };
    let model: &dyn ScoreDivergence = match &net {
        Some(n) => n,
        None => &exact_model,
    };
    let run = |m: &dyn ScoreDivergence| log_likelihood(&*process, m, points, a.t_start, options, prior, Some(target));
    let logp = if a.hutchinson == 0 {
        run(model)?
    } else {
        let kind = match a.probe {
            ProbeArg::Rademacher => ProbeKind::Rademacher,
            ProbeArg::Gaussian => ProbeKind::Gaussian,
        };
        run(&Hutchinson::new(model, a.hutchinson, kind, a.seed)?)?
    };
    // Hutchinson's error against the exact divergence, point by point.
    let hutchinson = if a.hutchinson > 0 {
        let exact_div = run(model)?;
        let diff: Vec<f64> = logp.iter().zip(&exact_div).map(|(h, e)| h - e).collect();
        let m = diff.iter().sum::<f64>() / diff.len() as f64;
        let sd = (diff.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (diff.len().max(2) - 1) as f64).sqrt();
        Some(serde_json::json!({"mean_minus_exact_divergence": m, "sd_minus_exact_divergence": sd}))
    } else {
        None
    };
    let mut exact = Array1::zeros(points.nrows());
    target.log_prob(process.alpha(a.t_start), process.sigma(a.t_start), points, exact.view_mut());
    let err = logp.iter().zip(&exact).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
    let mut summary = serde_json::json!({
        "n": logp.len(),
        "mean_log_likelihood": logp.mean().unwrap_or(f64::NAN),
        "exact_mean_log_density": exact.mean().unwrap_or(f64::NAN),
        "max_abs_error_vs_exact": err,
    });
    if let Some(h) = hutchinson {
        summary["hutchinson"] = h;
    }
    if let Some(net) = &net {
        summary["model"] = serde_json::json!("network");
        // What explains the difference: the score error along each point's noising path.
        let (err, se) = scoresde::elbo::score_error_along_path(
            &*process,
            (net, &exact_model),
            points,
            a.t_start,
            (32, 16, a.seed),
        )?;
        summary["score_error_along_path"] = serde_json::json!({
            "mean": err.mean(),
            "se": (se.mapv(|s| s * s).sum()).sqrt() / se.len() as f64,
            "what": "1/2 int g^2 E|s_net - s_exact|^2 dt from t_start to T (Song et al. 2021, theorem 1)",
        });
    }
    Ok((logp, summary))
}
