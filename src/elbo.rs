//! Variational bounds on log p(x) (the ELBO), in nats and bits per dimension, for any model.
//!
//! - [`ddpm_bound`]: the DDPM bound for the discrete chain (Sohl-Dickstein et al. 2015;
//!   Ho et al. 2020, eq. 5): -L = -(L_T + sum_{t>1} L_{t-1} + L_0) with
//!   L_T = KL(q(x_T | x_0) || N(0, I)), L_{t-1} = E_q KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t))
//!   (two Gaussians: the model's mean is the posterior mean with x0 replaced by the model's x0,
//!   its variance beta~_t (fixed small) or beta_t (fixed large)), and the decoder term
//!   L_0 = -E_q ln N(x_0; x0_hat(x_1), beta_1) (a Gaussian decoder: the data are continuous).
//!   In diffusers' indexing: x_t for t = 0..T-1 with alpha-bar = alphas_cumprod[t], data at -1.
//! - [`continuous_elbo`]: the continuous-time bound (Kingma et al. 2021, "Variational diffusion
//!   models", eq. 17 with a Gaussian decoder; Song et al. 2021, "Maximum likelihood training of
//!   score-based diffusion models") for any process with alpha(t), sigma(t): the prior term
//!   KL(q(z_T | x) || N(0, prior_std^2)), the reconstruction E ln N(x; z_0 / alpha_0,
//!   (sigma_0 / alpha_0)^2) at the data end t_0, and the diffusion term
//!   1/2 int SNR(lambda) E ||x - x0_hat(z_lambda)||^2 dlambda over lambda = ln SNR, by
//!   Gauss-Legendre quadrature in lambda.
//!
//! Expectations over the noise are Monte Carlo, `draws` per time, every draw keyed by (seed,
//! point, time, draw): each point's bound comes with its standard error.

use ndarray::{Array1, Array2, ArrayView2, Axis};
use rand::Rng;

use crate::error::{Result, ScoreError};
use crate::model::{NoiseLevel, ScoreModel};
use crate::process::{Ddpm, ForwardProcess};
use crate::sampler::DdpmVariance;

/// Per-point bounds and their parts, in nats.
#[derive(Debug, Clone)]
pub struct Elbo {
    /// The bound on ln p(x) per point.
    pub elbo: Array1<f64>,
    /// Its Monte Carlo standard error per point.
    pub se: Array1<f64>,
    /// The prior term (L_T), per point.
    pub prior: Array1<f64>,
    /// The diffusion term (sum of the L_{t-1}, or the integral), per point.
    pub diffusion: Array1<f64>,
    /// The reconstruction term (-L_0), per point.
    pub reconstruction: Array1<f64>,
    /// Model evaluations.
    pub nfe: usize,
}

impl Elbo {
    /// The bound in bits per dimension, -elbo / (d ln 2), per point.
    pub fn bits_per_dim(&self, d: usize) -> Array1<f64> {
        self.elbo.mapv(|e| -e / (d as f64 * std::f64::consts::LN_2))
    }
}

fn check(model: &dyn ScoreModel, x: ArrayView2<f64>, draws: usize) -> Result<()> {
    if x.ncols() != model.dim() {
        return Err(ScoreError::DimensionMismatch {
            what: "data columns vs the model's dimension".into(),
            expected: model.dim(),
            found: x.ncols(),
        });
    }
    if draws < 2 {
        return Err(ScoreError::InvalidParameter {
            name: "draws".into(),
            value: draws as f64,
            expected: "must be at least 2 (a standard error needs two)",
        });
    }
    Ok(())
}

/// For each point and draw: z = alpha x + sigma eps (rows point-major: point i, draw k at
/// row i draws + k), the model's x0 at z, and the per-row sum over coordinates of
/// `f(x_j, x0_j, eps_j)`; returns (mean over draws, variance of that mean) per point.
fn expect<F>(
    model: &dyn ScoreModel,
    level: NoiseLevel,
    x: ArrayView2<f64>,
    draws: usize,
    seed: u64,
    key: u64,
    f: F,
) -> Result<(Array1<f64>, Array1<f64>)>
where
    F: Fn(f64, f64, f64) -> f64,
{
    let (n, d) = x.dim();
    let keys = scoresde_solvers::KeyedNoise::new(seed);
    let mut eps = Array2::zeros((n * draws, d));
    for (r, mut row) in eps.axis_iter_mut(Axis(0)).enumerate() {
        let mut rng = keys.rng(r as u64, key);
        row.iter_mut().for_each(|v| *v = rng.sample(rand_distr::StandardNormal));
    }
    let z = Array2::from_shape_fn((n * draws, d), |(r, j)| level.alpha * x[[r / draws, j]] + level.sigma * eps[[r, j]]);
    let mut x0 = Array2::zeros(z.dim());
    model.predict_x0(level, z.view(), x0.view_mut())?;
    let (mut mean, mut var) = (Array1::zeros(n), Array1::zeros(n));
    for i in 0..n {
        let vals: Vec<f64> = (0..draws)
            .map(|k| {
                let r = i * draws + k;
                (0..d).map(|j| f(x[[i, j]], x0[[r, j]], eps[[r, j]])).sum::<f64>()
            })
            .collect();
        let m = vals.iter().sum::<f64>() / draws as f64;
        let v = vals.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (draws - 1) as f64;
        mean[i] = m;
        var[i] = v / draws as f64;
    }
    if let Some(i) = mean.iter().position(|v: &f64| !v.is_finite()) {
        return Err(ScoreError::Stopped(format!("elbo: a non-finite term at t = {} for point {i}", level.t)));
    }
    Ok((mean, var))
}

/// KL(N(m, s2) || N(0, p2)) of one coordinate.
fn kl_to_centred(m: f64, s2: f64, p2: f64) -> f64 {
    0.5 * ((s2 + m * m) / p2 - 1.0 - (s2 / p2).ln())
}

/// The DDPM bound of every row of `x` under `model` on the discrete chain `process`, with the
/// reverse variance `variance` and `draws` noise draws per timestep.
pub fn ddpm_bound(
    process: &Ddpm,
    model: &dyn ScoreModel,
    x: ArrayView2<f64>,
    variance: DdpmVariance,
    draws: usize,
    seed: u64,
) -> Result<Elbo> {
    check(model, x, draws)?;
    let ac = process.alphas_cumprod();
    let t_last = ac.len() - 1;
    let n = x.nrows();
    let prior = Array1::from_shape_fn(n, |i| {
        -x.row(i).iter().map(|&v| kl_to_centred(ac[t_last].sqrt() * v, 1.0 - ac[t_last], 1.0)).sum::<f64>()
    });
    let (mut diffusion, mut var) = (Array1::zeros(n), Array1::zeros(n));
    for t in 1..=t_last {
        let (a, a_prev) = (ac[t], ac[t - 1]);
        let beta = 1.0 - a / a_prev;
        let post_var = (1.0 - a_prev) / (1.0 - a) * beta;
        let s2 = match variance {
            DdpmVariance::FixedSmall => post_var,
            DdpmVariance::FixedLarge => beta,
        };
        // Posterior mean minus model mean: c1 (x0 - x0_hat).
        let c1 = a_prev.sqrt() * beta / (1.0 - a);
        let level = NoiseLevel::at_time(process, t as f64);
        let (m, v) = expect(model, level, x, draws, seed, t as u64, |x, x0, _| {
            let diff = c1 * (x - x0);
            0.5 * (s2 / post_var).ln() + (post_var + diff * diff) / (2.0 * s2) - 0.5
        })?;
        diffusion -= &m;
        var += &v;
    }
    // The decoder: N(x; x0_hat(x_0), beta_0) with beta_0 = 1 - alphas_cumprod[0].
    let b0 = 1.0 - ac[0];
    let level = NoiseLevel::at_time(process, 0.0);
    let (m, v) = expect(model, level, x, draws, seed, 0, |x, x0, _| {
        -0.5 * (2.0 * std::f64::consts::PI * b0).ln() - (x - x0).powi(2) / (2.0 * b0)
    })?;
    var += &v;
    let elbo = &prior + &diffusion + &m;
    Ok(Elbo { elbo, se: var.mapv(f64::sqrt), prior, diffusion, reconstruction: m, nfe: (t_last + 1) * draws * n })
}

/// (alpha, sigma) at the data end `t0` of a path integral, checked positive (`field` names it).
fn data_end(process: &dyn ForwardProcess, t0: f64, field: &str) -> Result<(f64, f64)> {
    let (a0, s0) = (process.alpha(t0), process.sigma(t0));
    if !(s0 > 0.0 && a0 > 0.0) {
        return Err(ScoreError::InvalidParameter {
            name: field.into(),
            value: t0,
            expected: "needs sigma(t) > 0 and alpha(t) > 0 (the decoder's variance is (sigma/alpha)^2)",
        });
    }
    Ok((a0, s0))
}

/// Gauss-Legendre nodes and weights on [-1, 1] (Newton's iteration on P_n from Chebyshev
/// starting points; nodes to round-off).
fn gauss_legendre(n: usize) -> (Vec<f64>, Vec<f64>) {
    let (mut x, mut w) = (vec![0.0; n], vec![0.0; n]);
    for i in 0..n {
        let mut z = (std::f64::consts::PI * (i as f64 + 0.75) / (n as f64 + 0.5)).cos();
        let mut dp = 0.0;
        for _ in 0..100 {
            let (mut p0, mut p1) = (1.0, z);
            for k in 2..=n {
                let p2 = ((2 * k - 1) as f64 * z * p1 - (k - 1) as f64 * p0) / k as f64;
                p0 = p1;
                p1 = p2;
            }
            let p = if n == 0 { 1.0 } else { p1 };
            let pm = if n == 1 { 1.0 } else { p0 };
            dp = n as f64 * (z * p - pm) / (z * z - 1.0);
            let dz = p / dp;
            z -= dz;
            if dz.abs() < 1e-16 {
                break;
            }
        }
        x[i] = z;
        w[i] = 2.0 / ((1.0 - z * z) * dp * dp);
    }
    (x, w)
}

/// The continuous-time bound of every row of `x` under `model` on `process`, from the data end
/// `t0` to the process's t_max, with `nodes` Gauss-Legendre nodes in ln SNR and `draws` noise
/// draws per node.
pub fn continuous_elbo(
    process: &dyn ForwardProcess,
    model: &dyn ScoreModel,
    x: ArrayView2<f64>,
    t0: f64,
    nodes: usize,
    draws: usize,
    seed: u64,
) -> Result<Elbo> {
    check(model, x, draws)?;
    let (a0, s0) = data_end(process, t0, "t-end")?;
    if nodes == 0 {
        return Err(ScoreError::InvalidParameter { name: "nodes".into(), value: 0.0, expected: "must be at least 1" });
    }
    let t1 = process.t_max();
    let (a1, s1) = (process.alpha(t1), process.sigma(t1));
    let (n, d) = x.dim();
    let p2 = process.prior_std().powi(2);
    let prior =
        Array1::from_shape_fn(n, |i| -x.row(i).iter().map(|&v| kl_to_centred(a1 * v, s1 * s1, p2)).sum::<f64>());
    // E ln N(x; z0 / a0, s^2), z0 = a0 x + s0 eps: -d/2 - d/2 ln(2 pi s^2), exactly.
    let s2 = (s0 / a0).powi(2);
    let reconstruction = Array1::from_elem(n, -0.5 * d as f64 * (1.0 + (2.0 * std::f64::consts::PI * s2).ln()));
    // lambda = ln SNR = -2 ln sigma~ from the noise end (lo) to the data end (hi).
    let (lo, hi) = (-2.0 * (s1 / a1).ln(), -2.0 * (s0 / a0).ln());
    let (gx, gw) = gauss_legendre(nodes);
    let (mut diffusion, mut var) = (Array1::zeros(n), Array1::zeros(n));
    for (k, (&u, &w)) in gx.iter().zip(&gw).enumerate() {
        let lambda = 0.5 * (hi + lo) + 0.5 * (hi - lo) * u;
        let weight = 0.5 * (hi - lo) * w * 0.5 * lambda.exp();
        let level = NoiseLevel::at_sigma_tilde(process, (-0.5 * lambda).exp());
        let (m, v) = expect(model, level, x, draws, seed, k as u64, |x, x0, _| (x - x0).powi(2))?;
        diffusion.scaled_add(-weight, &m);
        var.scaled_add(weight * weight, &v);
    }
    let elbo = &prior + &diffusion + &reconstruction;
    Ok(Elbo { elbo, se: var.mapv(f64::sqrt), prior, diffusion, reconstruction, nfe: nodes * draws * n })
}

/// The score error along the noising path of every row of `x`: 1/2 int E ||eps_model(z) -
/// eps_ref(z)||^2 dlambda over lambda = ln SNR from the process's t_max to `t0` (z = alpha x +
/// sigma eps), by the quadrature of [`continuous_elbo`]. Since g^2 dt = -sigma^2 dlambda, this is
/// 1/2 int g^2 E ||s_model - s_ref||^2 dt, the score-matching term of Song et al. 2021
/// (theorem 1) that bounds how far the model's likelihood is from the reference's: what explains
/// a network's ln p beside the exact one. Returns (value, standard error) per row.
pub fn score_error_along_path(
    process: &dyn ForwardProcess,
    (model, reference): (&dyn ScoreModel, &dyn ScoreModel),
    x: ArrayView2<f64>,
    t0: f64,
    (nodes, draws, seed): (usize, usize, u64),
) -> Result<(Array1<f64>, Array1<f64>)> {
    check(model, x, draws)?;
    let (a0, s0) = data_end(process, t0, "t-start")?;
    let t1 = process.t_max();
    let (lo, hi) = (-2.0 * (process.sigma(t1) / process.alpha(t1)).ln(), -2.0 * (s0 / a0).ln());
    let (gx, gw) = gauss_legendre(nodes.max(1));
    let (n, d) = x.dim();
    let keys = scoresde_solvers::KeyedNoise::new(seed);
    let (mut total, mut var) = (Array1::zeros(n), Array1::zeros(n));
    for (k, (&u, &w)) in gx.iter().zip(&gw).enumerate() {
        let lambda = 0.5 * (hi + lo) + 0.5 * (hi - lo) * u;
        let weight = 0.5 * (hi - lo) * w * 0.5;
        let level = NoiseLevel::at_sigma_tilde(process, (-0.5 * lambda).exp());
        let z = Array2::from_shape_fn((n * draws, d), |(r, j)| {
            let mut rng = keys.rng(r as u64, (k * d + j) as u64);
            level.alpha * x[[r / draws, j]] + level.sigma * rng.sample::<f64, _>(rand_distr::StandardNormal)
        });
        let (mut em, mut er) = (Array2::zeros(z.dim()), Array2::zeros(z.dim()));
        model.predict_eps(level, z.view(), em.view_mut())?;
        reference.predict_eps(level, z.view(), er.view_mut())?;
        for i in 0..n {
            let vals: Vec<f64> = (0..draws)
                .map(|q| {
                    let r = i * draws + q;
                    (0..d).map(|j| (em[[r, j]] - er[[r, j]]).powi(2)).sum::<f64>()
                })
                .collect();
            let m = vals.iter().sum::<f64>() / draws as f64;
            let v = vals.iter().map(|v| (v - m).powi(2)).sum::<f64>() / ((draws - 1) * draws) as f64;
            total[i] += weight * m;
            var[i] += weight * weight * v;
        }
    }
    Ok((total, var.mapv(f64::sqrt)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model against itself has no score error; a model whose eps is off by a constant c in
    /// every coordinate has 1/2 d c^2 (lambda_hi - lambda_lo) exactly (every draw the same).
    #[test]
    fn score_error_of_a_shifted_model_is_its_closed_form() {
        struct Shifted(crate::model::ExactScore, f64);
        impl ScoreModel for Shifted {
            fn dim(&self) -> usize {
                self.0.dim()
            }
            fn parameterisation(&self) -> crate::model::Parameterisation {
                crate::model::Parameterisation::Eps
            }
            fn predict(
                &self,
                level: NoiseLevel,
                x: ArrayView2<f64>,
                mut out: ndarray::ArrayViewMut2<f64>,
            ) -> Result<()> {
                self.0.predict_eps(level, x, out.view_mut())?;
                out.mapv_inplace(|v| v + self.1);
                Ok(())
            }
        }
        let vp = crate::process::Vp::new(0.1, 20.0).unwrap();
        let exact = crate::model::ExactScore::new(crate::targets::quad4());
        let x = ndarray::array![[0.3, -0.2], [1.0, 1.0]];
        let (e0, _) = score_error_along_path(&vp, (&exact, &exact), x.view(), 1e-3, (16, 4, 0)).unwrap();
        assert!(e0.iter().all(|&v| v == 0.0));
        let c = 0.1;
        let shifted = Shifted(crate::model::ExactScore::new(crate::targets::quad4()), c);
        let (e, se) = score_error_along_path(&vp, (&shifted, &exact), x.view(), 1e-3, (16, 4, 0)).unwrap();
        let snr = |t: f64| -2.0 * (vp.sigma(t) / vp.alpha(t)).ln();
        let want = 0.5 * 2.0 * c * c * (snr(1e-3) - snr(1.0));
        for (v, s) in e.iter().zip(&se) {
            assert!((v - want).abs() < 1e-10 * want && *s < 1e-12, "{v} vs {want} (se {s})");
        }
    }

    #[test]
    fn gauss_legendre_integrates_polynomials_exactly() {
        for n in [1, 2, 5, 16, 64] {
            let (x, w) = gauss_legendre(n);
            // Degree 2n - 1 is exact: int_{-1}^{1} t^k = 2 / (k + 1) for even k, 0 for odd.
            for k in 0..2 * n {
                let q: f64 = x.iter().zip(&w).map(|(x, w)| w * x.powi(k as i32)).sum();
                let exact = if k % 2 == 0 { 2.0 / (k as f64 + 1.0) } else { 0.0 };
                assert!((q - exact).abs() < 1e-13, "n = {n}, k = {k}: {q} vs {exact}");
            }
        }
    }
}
