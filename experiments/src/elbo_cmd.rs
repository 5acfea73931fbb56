//! `scoresde elbo`: variational bounds on ln p(x) of points, in nats and bits per dimension,
//! for the exact score of a target or a trained network.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use ndarray::Array1;
use scoresde::elbo::{continuous_elbo, ddpm_bound, Elbo};
use scoresde::io::{read_npy_2d, write_npy};
use scoresde::model::{ExactScore, ScoreModel};
use scoresde::process::{Ddpm, ProcessSpec};
use scoresde::sampler::DdpmVariance;
use scoresde::targets;

use crate::choices::{CmdError, CmdResult, ProcessArgs, VarianceKind};

/// Which bound (--bound).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BoundKind {
    /// The DDPM bound L_T + sum L_{t-1} + L_0 of the discrete chain (--process ddpm).
    Ddpm,
    /// The continuous-time bound (prior, reconstruction, diffusion integral in ln SNR).
    Continuous,
}

/// Flags of `scoresde elbo`.
#[derive(Debug, Args)]
pub struct ElboArgs {
    /// Target whose exact score is the model (and whose exact ln p is printed beside the bound).
    #[arg(long, default_value = "ring8")]
    pub target: String,
    /// A trained network (`scoresde train --out`) as the model instead of the exact score.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Points, (N, d) float64 .npy.
    #[arg(long)]
    pub points: PathBuf,
    /// Output bounds in nats, (N,) float64 .npy (written atomically).
    #[arg(long, default_value = "elbo.npy")]
    pub out: PathBuf,
    #[command(flatten)]
    pub process: ProcessArgs,
    /// The bound [default: ddpm for --process ddpm, continuous otherwise].
    #[arg(long, value_enum)]
    pub bound: Option<BoundKind>,
    /// The DDPM bound: the reverse variance.
    #[arg(long, value_enum, default_value_t = VarianceKind::FixedSmall)]
    pub variance: VarianceKind,
    /// Noise draws per timestep (per quadrature node for the continuous bound).
    #[arg(long, default_value_t = 64)]
    pub draws: usize,
    /// The continuous bound: Gauss-Legendre nodes in ln SNR.
    #[arg(long, default_value_t = 64)]
    pub nodes: usize,
    /// The continuous bound: the data end t_0 of the integral (the decoder's level)
    /// [default: the process's t_end].
    #[arg(long)]
    pub t_end: Option<f64>,
    /// Seed of the noise draws.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// Runs `scoresde elbo`.
pub fn run(a: ElboArgs) -> CmdResult {
    let points = read_npy_2d(&a.points, "points")?;
    let (e, summary) = bound(&a, points.view(), None)?;
    write_npy(&a.out, &e.elbo)?;
    println!("{summary}");
    Ok(())
}

/// The bound of every point and the summary line `scoresde elbo` prints; `target` (in memory)
/// replaces `--target`.
pub fn bound(
    a: &ElboArgs,
    points: ndarray::ArrayView2<f64>,
    target: Option<scoresde::gmm::GaussianMixture>,
) -> Result<(Elbo, serde_json::Value), CmdError> {
    let spec = a.process.spec()?;
    let process = a.process.build()?;
    let (model, target): (Box<dyn ScoreModel>, Option<scoresde::gmm::GaussianMixture>) = match &a.model {
        None => {
            let t = match target {
                Some(t) => t,
                None => targets::load(&a.target)?,
            };
            (Box::new(ExactScore::new(t.clone())), Some(t))
        }
        Some(path) => {
            let net = a.process.load_model(path)?;
            let target = net.checkpoint().meta["target"].as_str().and_then(targets::builtin);
            (Box::new(net), target)
        }
    };
    if points.ncols() != model.dim() || points.nrows() == 0 {
        return Err(format!(
            "--points {}: shape ({}, {}) but the model has dimension {} (need N >= 1 rows)",
            a.points.display(),
            points.nrows(),
            points.ncols(),
            model.dim()
        )
        .into());
    }
    let kind =
        a.bound.unwrap_or(if matches!(spec, ProcessSpec::Ddpm(_)) { BoundKind::Ddpm } else { BoundKind::Continuous });
    let e = match kind {
        BoundKind::Ddpm => {
            let ProcessSpec::Ddpm(table) = &spec else {
                return Err(format!("--bound ddpm: needs --process ddpm (the flags give {spec}); --bound continuous works on any process").into());
            };
            let variance = match a.variance {
                VarianceKind::FixedSmall => DdpmVariance::FixedSmall,
                VarianceKind::FixedLarge => DdpmVariance::FixedLarge,
            };
            ddpm_bound(&Ddpm::new(table.clone())?, &*model, points, variance, a.draws, a.seed)?
        }
        BoundKind::Continuous => {
            let t0 = a.t_end.unwrap_or(process.t_end_default());
            continuous_elbo(&*process, &*model, points, t0, a.nodes, a.draws, a.seed)?
        }
    };
    let d = points.ncols();
    let n = e.elbo.len() as f64;
    let mean = e.elbo.mean().unwrap_or(f64::NAN);
    let se = (e.se.mapv(|s| s * s).sum()).sqrt() / n;
    let mut summary = serde_json::json!({
        "bound": format!("{kind:?}").to_lowercase(),
        "n": e.elbo.len(),
        "mean_elbo_nats": mean,
        "mean_elbo_se": se,
        "bits_per_dim": -mean / (d as f64 * std::f64::consts::LN_2),
        "prior": e.prior.mean(),
        "diffusion": e.diffusion.mean(),
        "reconstruction": e.reconstruction.mean(),
        "nfe": e.nfe,
    });
    if let Some(t) = target {
        let mut lp = Array1::zeros(points.nrows());
        t.log_prob(1.0, 0.0, points, lp.view_mut());
        summary["exact_mean_log_density"] = serde_json::json!(lp.mean());
        summary["mean_gap_nats"] = serde_json::json!(lp.mean().unwrap_or(f64::NAN) - mean);
    }
    Ok((e, summary))
}
