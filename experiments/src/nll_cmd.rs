//! `scoresde nll`: log-likelihood of points through the probability-flow ODE.

use ndarray::Array1;
use scoresde::io::{read_npy_2d, write_npy};
use scoresde::likelihood::{log_likelihood, Hutchinson, Prior, ProbeKind};
use scoresde::model::ExactScore;
use scoresde::targets;
use scoresde_solvers::AdaptiveOptions;

use crate::cli::{CmdResult, NllArgs, PriorKind, ProbeArg};

/// Runs `scoresde nll`.
pub fn run(a: NllArgs) -> CmdResult {
    let target = targets::load(&a.target)?;
    let process = a.process.build()?;
    let points = read_npy_2d(&a.points, "points")?;
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
        log_likelihood(&*process, &model, points.view(), a.t_start, options, prior, Some(&target))?
    } else {
        let kind = match a.probe {
            ProbeArg::Rademacher => ProbeKind::Rademacher,
            ProbeArg::Gaussian => ProbeKind::Gaussian,
        };
        let estimator = Hutchinson::new(&model, a.hutchinson, kind, a.seed)?;
        log_likelihood(&*process, &estimator, points.view(), a.t_start, options, prior, Some(&target))?
    };
    write_npy(&a.out, &logp)?;
    let mut exact = Array1::zeros(points.nrows());
    target.log_prob(process.alpha(a.t_start), process.sigma(a.t_start), points.view(), exact.view_mut());
    let err = logp.iter().zip(&exact).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
    println!(
        "{{\"n\": {}, \"mean_log_likelihood\": {}, \"exact_mean_log_density\": {}, \"max_abs_error_vs_exact\": {}}}",
        logp.len(),
        logp.mean().unwrap_or(f64::NAN),
        exact.mean().unwrap_or(f64::NAN),
        err
    );
    Ok(())
}
