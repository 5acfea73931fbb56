//! One batch of denoising score matching, drawn on the host: the data x0, the times, the noised
//! rows x_t = alpha x0 + sigma eps, the conditioning values, the loss weights and the labels.
//! Both the candle loss ([`super::DsmLoss`]) and the fused one ([`super::backprop`]) read it, so
//! the two see the same draws from the same generator.

use ndarray::Array2;
use rand::Rng;
use rand_distr::StandardNormal;

use crate::error::Result;
use crate::gmm::GaussianMixture;
use crate::process::ForwardProcess;

use super::mlp::MlpConfig;
use super::train::{TrainConfig, Weighting};

/// The draws of one training step (rows grouped by class for a class-conditional network).
pub struct DsmBatch {
    /// Clean data, B x d.
    pub x0: Array2<f64>,
    /// Noised rows alpha x0 + sigma eps, B x d.
    pub xt: Array2<f64>,
    /// The noise, B x d.
    pub eps: Array2<f64>,
    /// The network's conditioning value of each row's noise level.
    pub cond: Vec<f64>,
    /// alpha of each row.
    pub alpha: Vec<f64>,
    /// sigma of each row.
    pub sigma: Vec<f64>,
    /// The loss weight of each row (on the eps error).
    pub weight: Vec<f64>,
    /// Each row's label (`None`: the null label); empty for an unconditional network.
    pub labels: Vec<Option<usize>>,
}

impl DsmBatch {
    /// A fresh batch of `config.batch` rows from `rng`.
    pub fn draw<R: Rng + ?Sized>(
        net: &MlpConfig,
        process: &dyn ForwardProcess,
        target: &GaussianMixture,
        config: &TrainConfig,
        rng: &mut R,
    ) -> Result<Self> {
        let (b, d) = (config.batch, target.dim());
        // Data, with labels for a class-conditional network: class c with probability pi_c (its
        // components' total weight), then a draw from its sub-mixture (rows grouped by class).
        let (x0, labels) = if config.classes.is_empty() {
            (target.sample(b, rng), vec![])
        } else {
            let weights: Vec<f64> =
                config.classes.iter().map(|c| c.iter().map(|&k| target.weights()[k]).sum()).collect();
            let total: f64 = weights.iter().sum();
            let mut counts = vec![0usize; weights.len()];
            for _ in 0..b {
                let mut u = rng.random::<f64>() * total;
                let mut c = 0;
                while c + 1 < weights.len() && u >= weights[c] {
                    u -= weights[c];
                    c += 1;
                }
                counts[c] += 1;
            }
            let mut x0 = Array2::zeros((b, d));
            let mut labels = Vec::with_capacity(b);
            let mut row = 0;
            for (c, &n) in counts.iter().enumerate() {
                if n == 0 {
                    continue;
                }
                let sub = crate::guidance::sub_mixture(target, &config.classes[c])?;
                x0.slice_mut(ndarray::s![row..row + n, ..]).assign(&sub.sample(n, rng));
                for _ in 0..n {
                    labels.push(if rng.random::<f64>() < config.label_dropout { None } else { Some(c) });
                }
                row += n;
            }
            (x0, labels)
        };
        let (t0, t1) = (process.t_end_default(), process.t_max());
        let mut xt = Array2::zeros((b, d));
        let mut eps = Array2::zeros((b, d));
        let (mut cond, mut alpha, mut sigma, mut weight) = (vec![], vec![], vec![], vec![]);
        let times = config.importance.then(|| super::LikelihoodTimes::new(process, t0, t1));
        for (i, row) in x0.outer_iter().enumerate() {
            // With importance sampling the draw also gives the row's weight.
            let mut drawn_weight = None;
            let t = match (config.weighting, &times) {
                (Weighting::Edm, _) => {
                    let z: f64 = rng.sample(StandardNormal);
                    let s = (-1.2 + 1.2 * z).exp();
                    process.t_from_sigma_tilde(s).clamp(t0, t1)
                }
                (_, Some(times)) => {
                    let (t, w) = times.draw(process, rng);
                    drawn_weight = Some(w);
                    t
                }
                // The discrete chain: t ~ U{0, .., T-1} (DDPM's Algorithm 1).
                _ => match process.discrete_steps() {
                    Some(steps) => rng.random_range(0..steps) as f64,
                    None => rng.random_range(t0..t1),
                },
            };
            let level = crate::model::NoiseLevel::at_time(process, t);
            let (a, s) = (level.alpha, level.sigma);
            for (j, &x) in row.iter().enumerate() {
                let e: f64 = rng.sample(StandardNormal);
                xt[[i, j]] = a * x + s * e;
                eps[[i, j]] = e;
            }
            cond.push(net.conditioning.value(level));
            alpha.push(a);
            sigma.push(s);
            weight.push(match (drawn_weight, config.weighting) {
                (Some(w), _) => w,
                (None, Weighting::Sigma2) => 1.0,
                (None, Weighting::Likelihood) => super::likelihood_weight(process, t),
                (None, Weighting::Edm) => {
                    let st = s / a;
                    (st * st + config.sigma_data.powi(2)) / config.sigma_data.powi(2)
                }
            });
        }
        Ok(Self { x0, xt, eps, cond, alpha, sigma, weight, labels })
    }
}
