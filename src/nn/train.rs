//! Denoising score matching (Vincent 2011; Song et al. 2021, eq. 7): draw x0 from the data, t,
//! and eps ~ N(0, I); regress the network on the noise of x_t = alpha x0 + sigma eps.
//!
//! Every weighting is written as a weight on the eps error, since lambda(t) ||s - grad log
//! p(x_t | x0)||^2 = lambda / sigma^2 ||eps_hat - eps||^2, whatever the network predicts (its
//! output is converted to eps_hat first):
//! - `sigma2`: lambda = sigma^2, the plain eps loss of DDPM (weight 1);
//! - `likelihood`: lambda = g^2, which makes the loss a bound on the KL (Song et al. 2021b;
//!   weight g^2 / sigma^2);
//! - `edm`: EDM's loss weighting and noise distribution (Karras et al. 2022, Table 1): ln sigma~ ~
//!   N(-1.2, 1.2^2) and lambda(sigma~) = (sigma~^2 + sigma_data^2) / (sigma~ sigma_data)^2 on the
//!   denoiser error, i.e. weight (sigma~^2 + sigma_data^2) / sigma_data^2 on the eps error.
//!   EDM's preconditioning is the network's (`NetOutput::Edm`), independent of the weighting.
//!
//! Times are uniform on [t_end, T] for `sigma2` and `likelihood`, or with `importance` (likelihood
//! only) drawn in proportion to the likelihood weight ([`super::LikelihoodTimes`]).

use std::collections::BTreeMap;

use candle_core::{Tensor, D};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::{Result, ScoreError};
use crate::gmm::GaussianMixture;
use crate::model::Parameterisation;
use crate::process::ForwardProcess;

use super::adam::{values, AdamW};
use super::backprop::{host_trainer, HostTrainer};
use super::batch::DsmBatch;
use super::candle_err;
use super::mlp::{MlpConfig, ScoreMlp};

/// The DSM loss weighting lambda(t).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Weighting {
    /// lambda = sigma^2: the plain eps-prediction loss.
    Sigma2,
    /// lambda = g^2: likelihood weighting.
    Likelihood,
    /// EDM's weighting and log-normal noise levels.
    Edm,
}

/// Training hyper-parameters (stored in the checkpoint).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Rows per step.
    pub batch: usize,
    /// AdamW learning rate.
    pub lr: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    /// EMA decay of the weights used for sampling.
    pub ema: f64,
    /// Loss weighting.
    pub weighting: Weighting,
    /// EDM's sigma_data (used by `edm` only).
    pub sigma_data: f64,
    /// Seed of every draw (weights, data, times, noise).
    pub seed: u64,
    /// Class-conditional training: the components of each class (empty: unconditional).
    #[serde(default)]
    pub classes: Vec<Vec<usize>>,
    /// Probability of replacing a label by the null label (classifier-free guidance training).
    #[serde(default)]
    pub label_dropout: f64,
    /// Likelihood weighting only: draw t with density proportional to g^2 / sigma^2 and weight
    /// each row by the ratio to the uniform density (same objective, lower variance; see
    /// [`LikelihoodTimes`](super::LikelihoodTimes)).
    #[serde(default)]
    pub importance: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            batch: 256,
            lr: 2e-3,
            weight_decay: 0.0,
            ema: 0.999,
            weighting: Weighting::Sigma2,
            sigma_data: 0.5,
            seed: 0,
            classes: vec![],
            label_dropout: 0.0,
            importance: false,
        }
    }
}

impl TrainConfig {
    /// Checks every field, naming the first bad one.
    pub fn validate(&self) -> Result<()> {
        let bad = |name: &str, value: f64, expected: &'static str| {
            Err(ScoreError::InvalidParameter { name: name.into(), value, expected })
        };
        if self.batch == 0 {
            return bad("batch", 0.0, "must be at least 1");
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad("lr", self.lr, "must be positive and finite");
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return bad("weight_decay", self.weight_decay, "must be non-negative and finite");
        }
        if !(0.0..1.0).contains(&self.ema) {
            return bad("ema", self.ema, "must be in [0, 1)");
        }
        if !(0.0..=1.0).contains(&self.label_dropout) {
            return bad("label_dropout", self.label_dropout, "must be in [0, 1]");
        }
        if !(self.sigma_data > 0.0 && self.sigma_data.is_finite()) {
            return bad("sigma_data", self.sigma_data, "must be positive and finite");
        }
        if self.importance && self.weighting != Weighting::Likelihood {
            return Err(ScoreError::Model {
                context: "training".into(),
                message: format!(
                    "importance = true with weighting {:?}: importance sampling of t is for the likelihood weighting",
                    self.weighting
                ),
            });
        }
        Ok(())
    }
}

/// The generator of training step `step`: a function of (seed, step) only, so a resumed run
/// draws what the uninterrupted run draws. Step `u64::MAX` initialises the weights.
pub fn train_step_rng(seed: u64, step: u64) -> rand_pcg::Pcg64 {
    use scoresde_solvers::noise::mix;
    rand_pcg::Pcg64::seed_from_u64(mix(mix(seed ^ 0x7a11_d5e1_0000_0000) ^ step))
}

/// One batch of the loss: inputs and targets as tensors.
pub struct DsmLoss;

impl DsmLoss {
    /// The weighted eps error of `net` on a fresh batch from `rng`; returns the scalar loss tensor.
    pub fn batch<R: Rng + ?Sized>(
        net: &ScoreMlp,
        process: &dyn ForwardProcess,
        target: &GaussianMixture,
        config: &TrainConfig,
        rng: &mut R,
    ) -> candle_core::Result<Tensor> {
        let batch = DsmBatch::draw(net.config(), process, target, config, rng)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        Self::on(net, &batch)
    }

    /// The weighted eps error of `net` on `batch`, through candle (the scalar loss tensor, whose
    /// `backward` gives the gradients).
    pub fn on(net: &ScoreMlp, batch: &DsmBatch) -> candle_core::Result<Tensor> {
        let (b, d) = batch.x0.dim();
        let dev = net.device();
        let col = |v: &[f64]| Tensor::from_vec(v.to_vec(), (b, 1), dev);
        let xt = Tensor::from_vec(batch.xt.iter().copied().collect::<Vec<f64>>(), (b, d), dev)?;
        let eps = Tensor::from_vec(batch.eps.iter().copied().collect::<Vec<f64>>(), (b, d), dev)?;
        let (a, s) = (col(&batch.alpha)?, col(&batch.sigma)?);
        let y = if batch.labels.is_empty() { None } else { Some(net.labels(&batch.labels)?) };
        let out = net.predict(&xt, &a, &s, &col(&batch.cond)?, y.as_ref())?;
        let err = if net.config().parameterisation() == Parameterisation::Velocity {
            // The flow-matching loss: the velocity against its target eps - x0.
            let x0 = Tensor::from_vec(batch.x0.iter().copied().collect::<Vec<f64>>(), (b, d), dev)?;
            (out - (eps - x0)?)?.sqr()?.sum_keepdim(D::Minus1)?
        } else {
            let eps_hat = to_eps(net.config().parameterisation(), &out, &xt, &a, &s)?;
            (eps_hat - eps)?.sqr()?.sum_keepdim(D::Minus1)?
        };
        (err * col(&batch.weight)?)?.mean_all()? / d as f64
    }
}

/// The network's output converted to eps (tensor form of [`Parameterisation::to_eps`]).
pub(crate) fn to_eps(
    p: Parameterisation,
    out: &Tensor,
    x: &Tensor,
    a: &Tensor,
    s: &Tensor,
) -> candle_core::Result<Tensor> {
    match p {
        Parameterisation::Eps => Ok(out.clone()),
        Parameterisation::Score => out.broadcast_mul(&s.neg()?),
        Parameterisation::X0 => (x - out.broadcast_mul(a)?)?.broadcast_div(s),
        Parameterisation::V => {
            let n = (a.sqr()? + s.sqr()?)?;
            (out.broadcast_mul(a)? + x.broadcast_mul(s)?)?.broadcast_div(&n)
        }
        Parameterisation::Velocity => (x + out.broadcast_mul(a)?)?.broadcast_div(&(a + s)?),
    }
}

/// How a training step computes the loss and its gradient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrainBackend {
    /// The host forward and backward passes of [`super::backprop`] (CPU weights).
    Fused,
    /// candle's forward pass and autograd, on the network's device.
    Candle,
}

impl TrainBackend {
    /// [`TrainBackend::Fused`] for a network on the CPU, [`TrainBackend::Candle`] otherwise.
    pub fn for_device(device: &candle_core::Device) -> Self {
        if device.is_cpu() {
            Self::Fused
        } else {
            Self::Candle
        }
    }
}

/// A training run's state: network, EMA weights, optimizer, steps done and the loss curve.
pub struct Trainer {
    /// The network being trained (its weights are current after every step).
    pub net: ScoreMlp,
    /// EMA of its weights, by parameter name (flattened).
    pub ema: BTreeMap<String, Vec<f64>>,
    /// The optimizer.
    pub adam: AdamW,
    /// Hyper-parameters.
    pub config: TrainConfig,
    /// Loss of every step so far.
    pub losses: Vec<f64>,
    /// How steps compute the gradient.
    pub backend: TrainBackend,
    /// The host copy of the weights the fused backend trains (made at its first step).
    host: Option<Box<dyn HostTrainer>>,
}

impl Trainer {
    /// A fresh run: weights from `train_step_rng(seed, u64::MAX)`.
    pub fn new(net_config: MlpConfig, config: TrainConfig, device: &candle_core::Device) -> Result<Self> {
        config.validate()?;
        if net_config.classes != config.classes.len() {
            return Err(ScoreError::Model {
                context: "training".into(),
                message: format!(
                    "the network has {} classes, the training config {}",
                    net_config.classes,
                    config.classes.len()
                ),
            });
        }
        let net = ScoreMlp::init(net_config, device, &mut train_step_rng(config.seed, u64::MAX))?;
        let mut ema = BTreeMap::new();
        for (k, v) in net.params() {
            ema.insert(k.clone(), values(v.as_tensor()).map_err(candle_err("network init"))?);
        }
        let adam = AdamW::new(net.params(), config.lr, config.weight_decay);
        Ok(Self::from_parts(net, ema, adam, config, vec![]))
    }

    /// A run from its parts (a checkpoint's), trained by the backend its device gets.
    pub(crate) fn from_parts(
        net: ScoreMlp,
        ema: BTreeMap<String, Vec<f64>>,
        adam: AdamW,
        config: TrainConfig,
        losses: Vec<f64>,
    ) -> Self {
        let backend = TrainBackend::for_device(net.device());
        Self { net, ema, adam, config, losses, backend, host: None }
    }

    /// Trains on in precision `dtype` from the next step (the fused CPU backend; the network's
    /// config, and so its checkpoint, records it).
    pub fn set_dtype(&mut self, dtype: super::real::NetDtype) {
        self.net.set_dtype(dtype);
        self.host = None;
    }

    /// Steps done.
    pub fn steps_done(&self) -> u64 {
        self.losses.len() as u64
    }

    /// One optimisation step; returns its loss.
    pub fn step(&mut self, process: &dyn ForwardProcess, target: &GaussianMixture) -> Result<f64> {
        let k = self.steps_done();
        let err = candle_err("training step");
        let mut rng = train_step_rng(self.config.seed, k);
        let batch = DsmBatch::draw(self.net.config(), process, target, &self.config, &mut rng)?;
        let finite = |value: f64| {
            if value.is_finite() {
                Ok(value)
            } else {
                Err(ScoreError::Model { context: "training".into(), message: format!("step {k}: loss = {value}") })
            }
        };
        let decay = self.config.ema;
        let value = match self.backend {
            TrainBackend::Fused => {
                if self.host.is_none() {
                    self.host = Some(host_trainer(&self.net).map_err(&err)?);
                }
                let host = self.host.as_mut().expect("made above");
                let value = finite(host.loss_and_grad(&batch))?;
                host.apply(&mut self.adam);
                for (name, range) in host.names() {
                    let w = &host.params()[range.clone()];
                    ema_update(self.ema.get_mut(name).expect("ema per parameter"), w, decay);
                    let p = &self.net.params()[name];
                    let t = Tensor::from_slice(w, p.as_tensor().shape(), p.as_tensor().device()).map_err(&err)?;
                    p.set(&t).map_err(&err)?;
                }
                value
            }
            TrainBackend::Candle => {
                self.host = None;
                let loss = DsmLoss::on(&self.net, &batch).map_err(&err)?;
                let value = finite(loss.to_scalar::<f64>().map_err(&err)?)?;
                let grads = loss.backward().map_err(&err)?;
                self.adam.step(self.net.params(), &grads)?;
                for (name, p) in self.net.params() {
                    let w = values(p.as_tensor()).map_err(&err)?;
                    ema_update(self.ema.get_mut(name).expect("ema per parameter"), &w, decay);
                }
                value
            }
        };
        self.losses.push(value);
        Ok(value)
    }
}

/// `ema <- decay ema + (1 - decay) w`, element-wise.
fn ema_update(ema: &mut [f64], w: &[f64], decay: f64) {
    for (e, &w) in ema.iter_mut().zip(w) {
        *e = decay * *e + (1.0 - decay) * w;
    }
}
