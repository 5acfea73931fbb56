//! Exact output law of a sampler on a Gaussian target, and exact W2 between Gaussians.
//!
//! For a single-Gaussian target the score is affine in x, and every sampler step built from
//! affine operations (every fixed-grid ODE and SDE sampler here except the Langevin corrector,
//! whose step size depends on the batch) is affine in the state and the fresh noise. The whole
//! sampler is then an affine map x = m + A z + sum_k B_k xi_k of the prior draw z and the step
//! noises xi_k, all independent standard normals, so its output law is exactly
//! N(m, A A^T + sum_k B_k B_k^T). The map is read off by running the sampler itself on probe
//! inputs (z = 0, unit vectors, and unit noise at one step and coordinate at a time) in one batch,
//! so the law is that of the very code that samples, to round-off; no peer computes this. The
//! exact W2 distance to the target's law at the grid end then separates discretisation error from
//! Monte Carlo error completely.

use nalgebra::{DMatrix, SymmetricEigen};
use ndarray::{Array1, Array2, Array3};
use scoresde_solvers::{no_observer, Draw, FixedNoise};

use crate::error::{Result, ScoreError};
use crate::gmm::GaussianMixture;
use crate::model::ExactScore;
use crate::process::ForwardProcess;
use crate::sampler::{sample, SamplerConfig, Solver, Steps};

/// Mean and covariance of a Gaussian law.
#[derive(Debug, Clone, PartialEq)]
pub struct GaussianLaw {
    /// Mean vector.
    pub mean: Array1<f64>,
    /// Covariance matrix.
    pub cov: Array2<f64>,
}

/// The exact law of `config`'s output on the single-Gaussian `target`.
pub fn exact_output_law(
    process: &dyn ForwardProcess,
    target: &GaussianMixture,
    config: &SamplerConfig,
) -> Result<GaussianLaw> {
    if target.n_components() != 1 {
        return Err(ScoreError::InvalidParameter {
            name: "target components".into(),
            value: target.n_components() as f64,
            expected: "the exact output law needs a single Gaussian (an affine score)",
        });
    }
    let steps = match config.steps() {
        Steps::Grid(g) => g.steps(),
        Steps::Schedule { steps, .. } => *steps,
        Steps::Adaptive { .. } => {
            return Err(ScoreError::Incompatible {
                solver: config.solver().name(),
                requirement: "a fixed grid for the exact law (adaptive steps depend on the batch)",
            })
        }
    };
    if matches!(config.solver(), Solver::Pc(_)) {
        return Err(ScoreError::Incompatible {
            solver: "pc",
            requirement: "row-independent steps for the exact law (the Langevin step size averages over the batch)",
        });
    }
    let d = target.dim();
    let stochastic = config.solver().is_stochastic();
    let draws = Draw::total(steps, config.solver().extra_draws());
    let noise_probes = if stochastic { draws * d } else { 0 };
    let rows = 1 + d + noise_probes;
    // Row 0: z = 0, no noise. Rows 1..=d: z = e_j. Then one row per (draw, coordinate) with unit
    // noise: every draw of every step, main and extra.
    let mut z = Array2::zeros((rows, d));
    for j in 0..d {
        z[[1 + j, j]] = 1.0;
    }
    let model = ExactScore::new(target.clone());
    let x = if stochastic {
        let mut xi = Array3::zeros((draws, rows, d));
        for k in 0..draws {
            for j in 0..d {
                xi[[k, 1 + d + k * d + j, j]] = 1.0;
            }
        }
        let mut noise = FixedNoise::new(xi);
        sample(process, &model, config, z.view(), Some(&mut noise), &mut no_observer)?.0
    } else {
        sample(process, &model, config, z.view(), None, &mut no_observer)?.0
    };
    let mean = x.row(0).to_owned();
    let mut cov = Array2::zeros((d, d));
    for r in 1..rows {
        let col = &x.row(r) - &mean;
        for a in 0..d {
            for b in 0..d {
                cov[[a, b]] += col[a] * col[b];
            }
        }
    }
    Ok(GaussianLaw { mean, cov })
}

/// The target's law at signal coefficient `alpha` and noise `sigma`: N(alpha mu, alpha^2 S + sigma^2 I).
pub fn target_law(target: &GaussianMixture, alpha: f64, sigma: f64) -> GaussianLaw {
    let (mean, cov) = target.moments(alpha, sigma);
    GaussianLaw { mean, cov }
}

fn to_na(a: &Array2<f64>) -> DMatrix<f64> {
    DMatrix::from_fn(a.nrows(), a.ncols(), |i, j| a[[i, j]])
}

fn sqrt_psd(m: &DMatrix<f64>) -> DMatrix<f64> {
    let e = SymmetricEigen::new(0.5 * (m + m.transpose()));
    let s = DMatrix::from_diagonal(&e.eigenvalues.map(|l| l.max(0.0).sqrt()));
    &e.eigenvectors * s * e.eigenvectors.transpose()
}

/// Exact 2-Wasserstein distance between two Gaussian laws:
/// W2^2 = |m1 - m2|^2 + tr(S1 + S2 - 2 (S2^{1/2} S1 S2^{1/2})^{1/2}).
pub fn w2_gaussian(p: &GaussianLaw, q: &GaussianLaw) -> f64 {
    let dm: f64 = (&p.mean - &q.mean).iter().map(|v| v * v).sum();
    let (s1, s2) = (to_na(&p.cov), to_na(&q.cov));
    let r2 = sqrt_psd(&s2);
    let cross = sqrt_psd(&(&r2 * &s1 * &r2));
    let tr = s1.trace() + s2.trace() - 2.0 * cross.trace();
    (dm + tr.max(0.0)).sqrt()
}

/// The single Gaussian's mean and the matrix M = Q diag(sqrt(c_i(t)/c_i(u))) Q^T of the exact flow
/// from u to t: x(t) = alpha(t) mu + M (x(u) - alpha(u) mu).
fn flow_matrix(
    process: &dyn ForwardProcess,
    target: &GaussianMixture,
    u: f64,
    t: f64,
) -> Result<(Array1<f64>, DMatrix<f64>)> {
    flow_matrix_at(target, (process.alpha(u), process.sigma(u)), (process.alpha(t), process.sigma(t)))
}

/// [`flow_matrix`] between two noise levels (alpha, sigma).
fn flow_matrix_at(
    target: &GaussianMixture,
    (au, su): (f64, f64),
    (at, st): (f64, f64),
) -> Result<(Array1<f64>, DMatrix<f64>)> {
    if target.n_components() != 1 {
        return Err(ScoreError::InvalidParameter {
            name: "target components".into(),
            value: target.n_components() as f64,
            expected: "the exact flow needs a single Gaussian",
        });
    }
    let e = SymmetricEigen::new(to_na(&target.component_covariance(0)));
    let ratio = e.eigenvalues.map(|l| ((at * at * l + st * st) / (au * au * l + su * su)).sqrt());
    Ok((
        target.means().row(0).to_owned(),
        &e.eigenvectors * DMatrix::from_diagonal(&ratio) * e.eigenvectors.transpose(),
    ))
}

/// The law at `t_end` of the exact probability-flow map applied to x(t_start) ~ N(0, prior_std^2 I),
/// for a single-Gaussian target N(mu, S = Q diag(l) Q^T): x(t) = alpha(t) mu + Q D Q^T (x(u) -
/// alpha(u) mu), D = diag(sqrt(c_i(t) / c_i(u))), c_i = alpha^2 l_i + sigma^2 (MATH.md section 4).
/// This is the limit of every consistent ODE sampler started from the prior: it differs from the
/// target law at t_end only by the transported prior mismatch, so W2 to it measures
/// discretisation error alone.
pub fn exact_flow_law(
    process: &dyn ForwardProcess,
    target: &GaussianMixture,
    t_start: f64,
    t_end: f64,
) -> Result<GaussianLaw> {
    let d = target.dim();
    let (mu, m) = flow_matrix(process, target, t_start, t_end)?;
    let (au, at) = (process.alpha(t_start), process.alpha(t_end));
    let v = process.prior_std().powi(2);
    let mut mean = Array1::zeros(d);
    let mut cov = Array2::zeros((d, d));
    for a in 0..d {
        mean[a] = at * mu[a] - (0..d).map(|b| m[(a, b)] * au * mu[b]).sum::<f64>();
        for b in 0..d {
            cov[[a, b]] = v * (0..d).map(|c| m[(a, c)] * m[(b, c)]).sum::<f64>();
        }
    }
    Ok(GaussianLaw { mean, cov })
}

/// [`exact_flow_law`] in k-diffusion's convention (alpha = 1, the state x~ = x / alpha against
/// sigma~): the law at `sigma_end` of the exact flow from x~ ~ N(0, sigma_start^2 I) at
/// `sigma_start`, the law a consistent sampler started there converges to.
pub fn exact_flow_law_sigma(target: &GaussianMixture, sigma_start: f64, sigma_end: f64) -> Result<GaussianLaw> {
    for (name, value) in [("sigma_start", sigma_start), ("sigma_end", sigma_end)] {
        if !(value.is_finite() && value >= 0.0) {
            return Err(ScoreError::InvalidParameter { name: name.into(), value, expected: "must be finite and >= 0" });
        }
    }
    let d = target.dim();
    let (mu, m) = flow_matrix_at(target, (1.0, sigma_start), (1.0, sigma_end))?;
    let v = sigma_start * sigma_start;
    let mut mean = Array1::zeros(d);
    let mut cov = Array2::zeros((d, d));
    for a in 0..d {
        mean[a] = mu[a] - (0..d).map(|b| m[(a, b)] * mu[b]).sum::<f64>();
        for b in 0..d {
            cov[[a, b]] = v * (0..d).map(|c| m[(a, c)] * m[(b, c)]).sum::<f64>();
        }
    }
    Ok(GaussianLaw { mean, cov })
}

/// The exact probability-flow map of a single-Gaussian target N(mu, S = Q diag(l) Q^T): moves
/// every row of `x` from time `u` to time `t` by z = Q^T (x - alpha mu), z_i(t) = sqrt(c_i(t) /
/// c_i(u)) z_i(u), c_i = alpha^2 l_i + sigma^2 (MATH.md section 4).
pub fn exact_flow_map(
    process: &dyn ForwardProcess,
    target: &GaussianMixture,
    x: ndarray::ArrayView2<f64>,
    u: f64,
    t: f64,
) -> Result<Array2<f64>> {
    let d = target.dim();
    let (mu, m) = flow_matrix(process, target, u, t)?;
    let (au, at) = (process.alpha(u), process.alpha(t));
    let mut out = Array2::zeros(x.dim());
    for (xr, mut or) in x.outer_iter().zip(out.outer_iter_mut()) {
        for a in 0..d {
            or[a] = at * mu[a] + (0..d).map(|b| m[(a, b)] * (xr[b] - au * mu[b])).sum::<f64>();
        }
    }
    Ok(out)
}
