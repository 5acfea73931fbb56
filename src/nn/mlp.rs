//! The score network: x and a Fourier embedding of the noise level in, a residual MLP with SiLU
//! activations, d numbers out, read as eps, x0 or v (the model layer's [`Parameterisation`]), or
//! wrapped in EDM's preconditioning ([`NetOutput::Edm`]).

use std::collections::BTreeMap;

use candle_core::{DType, Device, Tensor, Var, D};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Result, ScoreError};
use crate::model::{NoiseLevel, Parameterisation};

use super::candle_err;
use super::real::NetDtype;

/// What the network is told about the noise level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Conditioning {
    /// The log-SNR lambda = ln(alpha^2 / sigma^2) / 2, scaled by 1/8 (works for every process).
    LogSnr,
    /// The process time t.
    Time,
}

impl Conditioning {
    /// The scalar fed to the embedding at `level`.
    pub fn value(self, level: NoiseLevel) -> f64 {
        match self {
            Self::LogSnr => (level.alpha / level.sigma).ln() / 8.0,
            Self::Time => level.t,
        }
    }
}

/// What the network's output means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetOutput {
    /// The noise eps.
    Eps,
    /// The clean data x0.
    X0,
    /// v = alpha eps - sigma x0 (Salimans and Ho 2022).
    V,
    /// The flow-matching velocity eps - x0 (z - x0: rectified flow; trained with the
    /// flow-matching loss |v - (eps - x0)|^2).
    Velocity,
    /// EDM's preconditioning (Karras et al. 2022, Table 1), in sigma~ = sigma / alpha and
    /// x~ = x / alpha: the network F sees c_in x~ with c_in = 1 / sqrt(sigma~^2 + sigma_data^2),
    /// and the model is the denoiser D = c_skip x~ + c_out F with
    /// c_skip = sigma_data^2 / (sigma~^2 + sigma_data^2), c_out = sigma~ sigma_data /
    /// sqrt(sigma~^2 + sigma_data^2): an x0 prediction whose network input and target both have
    /// unit variance at every noise level. (The noise level enters through `conditioning`; EDM's
    /// c_noise = ln(sigma~) / 4 is the log-SNR conditioning up to scale.)
    Edm,
}

/// Architecture of [`ScoreMlp`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlpConfig {
    /// Data dimension d.
    pub dim: usize,
    /// Hidden width.
    pub width: usize,
    /// Residual blocks (each: SiLU, linear, SiLU, linear, added back).
    pub depth: usize,
    /// Fourier frequencies of the embedding (sin and cos of each, plus the raw value).
    pub frequencies: usize,
    /// What the output predicts.
    pub output: NetOutput,
    /// EDM preconditioning's sigma_data (only read with [`NetOutput::Edm`]).
    #[serde(default = "default_sigma_data")]
    pub sigma_data: f64,
    /// What the embedding sees.
    pub conditioning: Conditioning,
    /// Classes of a class-conditional network (0: unconditional). The class enters as a one-hot
    /// vector of `classes + 1` entries, the last being the null label of classifier-free guidance.
    #[serde(default)]
    pub classes: usize,
    /// The precision the fused CPU passes compute in (f64 unless a checkpoint says f32).
    #[serde(default)]
    pub dtype: NetDtype,
    /// Outputs of a noisy classifier's logits (0: a score network, d outputs).
    #[serde(default)]
    pub logits: usize,
}

impl MlpConfig {
    /// A config for dimension `dim` with the defaults (width 64, 3 blocks, 8 frequencies, eps).
    pub fn new(dim: usize) -> Self {
        Self {
            dim,
            width: 64,
            depth: 3,
            frequencies: 8,
            output: NetOutput::Eps,
            sigma_data: default_sigma_data(),
            conditioning: Conditioning::LogSnr,
            classes: 0,
            dtype: NetDtype::F64,
            logits: 0,
        }
    }

    /// The parameterisation of [`ScoreMlp::predict`] (EDM's denoiser is an x0 prediction).
    pub fn parameterisation(&self) -> Parameterisation {
        match self.output {
            NetOutput::Eps => Parameterisation::Eps,
            NetOutput::X0 | NetOutput::Edm => Parameterisation::X0,
            NetOutput::V => Parameterisation::V,
            NetOutput::Velocity => Parameterisation::Velocity,
        }
    }

    /// Checks the sizes.
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [("dim", self.dim), ("width", self.width), ("frequencies", self.frequencies)] {
            if v == 0 {
                return Err(ScoreError::Model {
                    context: "network".into(),
                    message: format!("{name} = 0: must be positive"),
                });
            }
        }
        if self.output == NetOutput::Edm && !(self.sigma_data.is_finite() && self.sigma_data > 0.0) {
            return Err(ScoreError::Model {
                context: "network".into(),
                message: format!("sigma_data = {}: must be positive and finite", self.sigma_data),
            });
        }
        Ok(())
    }

    /// The k-th Fourier frequency of the embedding, pi 2^k / 4.
    pub fn frequency(k: usize) -> f64 {
        std::f64::consts::PI * 2f64.powi(k as i32) / 4.0
    }

    /// EDM's preconditioning factors at level (`alpha`, `sigma`): (norm, c_skip, c_out) with
    /// norm = sqrt(sigma~^2 + sigma_data^2), as [`ScoreMlp::predict`] computes them (the fused
    /// passes use this).
    pub(crate) fn edm_factors(&self, alpha: f64, sigma: f64) -> (f64, f64, f64) {
        let sd = self.sigma_data;
        let st = sigma / alpha;
        let norm = (st * st + sd * sd).sqrt();
        (norm, (norm * norm).recip() * (sd * sd), (st * sd) / norm)
    }

    /// Embedding width: raw value, then sin and cos per frequency.
    fn embedding(&self) -> usize {
        1 + 2 * self.frequencies + if self.classes > 0 { self.classes + 1 } else { 0 }
    }

    /// Every parameter's name and shape, in a fixed order.
    pub fn shapes(&self) -> Vec<(String, Vec<usize>)> {
        let (d, w) = (self.dim, self.width);
        let mut s = vec![("in.w".to_string(), vec![d + self.embedding(), w]), ("in.b".to_string(), vec![w])];
        for k in 0..self.depth {
            for j in 0..2 {
                s.push((format!("block{k}.{j}.w"), vec![w, w]));
                s.push((format!("block{k}.{j}.b"), vec![w]));
            }
        }
        let out = if self.logits > 0 { self.logits } else { d };
        s.push(("out.w".into(), vec![w, out]));
        s.push(("out.b".into(), vec![out]));
        s
    }
}

fn default_sigma_data() -> f64 {
    0.5
}

/// The MLP's parameters, by name (see [`MlpConfig::shapes`]).
pub struct ScoreMlp {
    config: MlpConfig,
    params: BTreeMap<String, Var>,
    device: Device,
}

impl ScoreMlp {
    /// Fresh weights: uniform in +-1/sqrt(fan_in) (the last layer scaled by 0.1), zero biases,
    /// all drawn from `rng`.
    pub fn init<R: Rng + ?Sized>(config: MlpConfig, device: &Device, rng: &mut R) -> Result<Self> {
        config.validate()?;
        let mut params = BTreeMap::new();
        for (name, shape) in config.shapes() {
            let n: usize = shape.iter().product();
            let values: Vec<f64> = if name.ends_with(".b") {
                vec![0.0; n]
            } else {
                let bound = (1.0 / shape[0] as f64).sqrt() * if name == "out.w" { 0.1 } else { 1.0 };
                (0..n).map(|_| rng.random_range(-bound..bound)).collect()
            };
            let t = Tensor::from_vec(values, shape, device).map_err(candle_err("network init"))?;
            params.insert(name, Var::from_tensor(&t).map_err(candle_err("network init"))?);
        }
        Ok(Self { config, params, device: device.clone() })
    }

    /// Weights from named tensors, checking that each is present with its shape.
    pub fn from_tensors(config: MlpConfig, tensors: &BTreeMap<String, Tensor>, context: &str) -> Result<Self> {
        config.validate()?;
        let mut params = BTreeMap::new();
        let mut device = Device::Cpu;
        let shapes = config.shapes();
        if let Some(extra) = tensors.keys().find(|k| !shapes.iter().any(|(name, _)| name == *k)) {
            return Err(ScoreError::Model {
                context: context.into(),
                message: format!(
                    "tensor {extra:?} is not part of the configured network (width {}, depth {})",
                    config.width, config.depth
                ),
            });
        }
        for (name, shape) in shapes {
            let t = tensors.get(&name).ok_or_else(|| ScoreError::Model {
                context: context.into(),
                message: format!("tensor {name:?} is missing"),
            })?;
            if t.dims() != shape.as_slice() {
                return Err(ScoreError::Model {
                    context: context.into(),
                    message: format!("tensor {name:?} has shape {:?}, the config needs {shape:?}", t.dims()),
                });
            }
            device = t.device().clone();
            let t = t.to_dtype(DType::F64).map_err(candle_err(context))?;
            params.insert(name, Var::from_tensor(&t).map_err(candle_err(context))?);
        }
        Ok(Self { config, params, device })
    }

    /// The architecture.
    pub fn config(&self) -> &MlpConfig {
        &self.config
    }

    /// Sets the precision of the fused CPU passes.
    pub(crate) fn set_dtype(&mut self, dtype: NetDtype) {
        self.config.dtype = dtype;
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Parameters by name.
    pub fn params(&self) -> &BTreeMap<String, Var> {
        &self.params
    }

    /// One-hot labels (N x (classes + 1)) for class indices; `None` is the null label.
    pub fn labels(&self, classes: &[Option<usize>]) -> candle_core::Result<Tensor> {
        let k = self.config.classes + 1;
        let mut v = vec![0.0; classes.len() * k];
        for (i, c) in classes.iter().enumerate() {
            v[i * k + c.unwrap_or(k - 1)] = 1.0;
        }
        Tensor::from_vec(v, (classes.len(), k), &self.device)
    }

    /// The model's prediction in its [`MlpConfig::parameterisation`] on a batch: `x` is N x d,
    /// `alpha` and `sigma` N x 1 (the noise level of each row), `c` and `y` as in
    /// [`ScoreMlp::forward`]. The raw network output, except with EDM preconditioning.
    pub fn predict(
        &self,
        x: &Tensor,
        alpha: &Tensor,
        sigma: &Tensor,
        c: &Tensor,
        y: Option<&Tensor>,
    ) -> candle_core::Result<Tensor> {
        if self.config.output != NetOutput::Edm {
            return self.forward(x, c, y);
        }
        let sd2 = self.config.sigma_data * self.config.sigma_data;
        let st = (sigma / alpha)?;
        let norm = (st.sqr()? + sd2)?.sqrt()?;
        let xt = x.broadcast_div(alpha)?;
        let f = self.forward(&xt.broadcast_div(&norm)?, c, y)?;
        let c_skip = norm.sqr()?.recip()?.affine(sd2, 0.0)?;
        let c_out = (st.affine(self.config.sigma_data, 0.0)? / &norm)?;
        xt.broadcast_mul(&c_skip)? + f.broadcast_mul(&c_out)?
    }

    /// The network on a batch: `x` is N x d, `c` is N x 1 (the conditioning values), `y` the
    /// one-hot labels of a class-conditional network ([`ScoreMlp::labels`]).
    pub fn forward(&self, x: &Tensor, c: &Tensor, y: Option<&Tensor>) -> candle_core::Result<Tensor> {
        let p = |n: &str| self.params[n].as_tensor();
        let freqs: Vec<f64> = (0..self.config.frequencies).map(MlpConfig::frequency).collect();
        let f = Tensor::from_vec(freqs, (1, self.config.frequencies), &self.device)?;
        let angles = c.broadcast_mul(&f)?;
        let (sin, cos) = (angles.sin()?, angles.cos()?);
        let mut parts = vec![x, c, &sin, &cos];
        match (self.config.classes > 0, y) {
            (true, Some(y)) => parts.push(y),
            (false, None) => {}
            _ => candle_core::bail!("labels given to an unconditional network, or missing for a conditional one"),
        }
        let input = Tensor::cat(&parts, D::Minus1)?;
        let mut h = input.matmul(p("in.w"))?.broadcast_add(p("in.b"))?;
        for k in 0..self.config.depth {
            let a = h.silu()?.matmul(p(&format!("block{k}.0.w")))?.broadcast_add(p(&format!("block{k}.0.b")))?;
            let b = a.silu()?.matmul(p(&format!("block{k}.1.w")))?.broadcast_add(p(&format!("block{k}.1.b")))?;
            h = (h + b)?;
        }
        h.silu()?.matmul(p("out.w"))?.broadcast_add(p("out.b"))
    }
}
