//! A trained noisy classifier p_t(y | x_t) (Dhariwal & Nichol 2021, section 4): the score
//! network's MLP with one logit per class, conditioned on the noise level like the score
//! network, trained by cross-entropy on noised draws x_t = alpha x0 + sigma z of each class's
//! sub-mixture, and its gradient grad_x log p_t(y | x) through candle's autodiff for classifier
//! guidance ([`crate::guidance::ClassifierGuided`]).
//!
//! The classes are groups of the target's components, as for class-conditional score networks,
//! so the exact noisy classifier ([`crate::guidance::ExactClassifier`]) is the reference the
//! trained one is measured against: its cross-entropy is the lowest any classifier can reach
//! (Gibbs' inequality). Every draw comes from `train_step_rng(seed, step)`, so the same seed
//! gives the same weights. The checkpoint is one safetensors file (`param.*` and the description
//! as the bytes of a `classifier.json` tensor, format `scoresde-classifier-1`) and a readable
//! copy of the description beside it; a score-network checkpoint is refused, and this one is
//! refused as a score network.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::{Tensor, Var, D};
use ndarray::{Array2, ArrayView2, ArrayViewMut2};
use serde::{Deserialize, Serialize};

use super::adam::AdamW;
use super::batch::DsmBatch;
use super::candle_err;
use super::checkpoint::json_path;
use super::mlp::{Conditioning, MlpConfig, ScoreMlp};
use super::train::{train_step_rng, TrainConfig};
use crate::error::{Result, ScoreError};
use crate::gmm::GaussianMixture;
use crate::model::NoiseLevel;
use crate::process::ForwardProcess;

/// Format tag of a classifier checkpoint.
const FORMAT: &str = "scoresde-classifier-1";
/// The tensor holding the description's bytes.
const EMBEDDED: &str = "classifier.json";

/// How a classifier is trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifierTraining {
    /// The components of each class.
    pub classes: Vec<Vec<usize>>,
    /// Optimisation steps.
    pub steps: u64,
    /// Rows per step.
    pub batch: usize,
    /// AdamW learning rate.
    pub lr: f64,
    /// Seed of every draw.
    pub seed: u64,
}

/// The description stored with the weights.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifierCheckpoint {
    /// Always `scoresde-classifier-1`.
    pub format: String,
    /// The architecture (`logits` = the number of classes).
    pub network: MlpConfig,
    /// How it was trained.
    pub training: ClassifierTraining,
    /// The caller's description (process, target).
    pub meta: serde_json::Value,
    /// Cross-entropy of every step (nats).
    pub losses: Vec<f64>,
}

/// A noisy classifier network and its description.
pub struct NetClassifier {
    net: ScoreMlp,
    checkpoint: ClassifierCheckpoint,
}

/// Mean cross-entropy of `logits` (B x K) against one-hot `onehot` (B x K), and the log-softmax.
fn cross_entropy(logits: &Tensor, onehot: &Tensor) -> candle_core::Result<Tensor> {
    let logp = log_softmax(logits)?;
    (logp * onehot)?.sum_all()?.affine(-1.0 / logits.dim(0)? as f64, 0.0)
}

/// log softmax over the last axis, shifted by the row maximum.
fn log_softmax(logits: &Tensor) -> candle_core::Result<Tensor> {
    let top = logits.max_keepdim(D::Minus1)?.detach();
    let shifted = logits.broadcast_sub(&top)?;
    shifted.broadcast_sub(&shifted.exp()?.sum_keepdim(D::Minus1)?.log()?)
}

impl NetClassifier {
    /// Trains a classifier of `target`'s classes on `process` (noise levels drawn as the score
    /// network's sigma^2-weighted training draws them), width 64, 3 blocks.
    pub fn train(
        process: &dyn ForwardProcess,
        target: &GaussianMixture,
        training: ClassifierTraining,
        meta: serde_json::Value,
        device: &candle_core::Device,
    ) -> Result<Self> {
        let k = training.classes.len();
        if k < 2 {
            return Err(ScoreError::Model {
                context: "classifier".into(),
                message: format!("{k} class given: a classifier needs at least 2"),
            });
        }
        for group in &training.classes {
            crate::guidance::sub_mixture(target, group)?;
        }
        let conditioning = if process.rates(0.5).is_some() { Conditioning::Time } else { Conditioning::LogSnr };
        let network = MlpConfig { logits: k, conditioning, ..MlpConfig::new(target.dim()) };
        let draws = TrainConfig {
            batch: training.batch,
            lr: training.lr,
            seed: training.seed,
            classes: training.classes.clone(),
            ..TrainConfig::default()
        };
        draws.validate()?;
        let net = ScoreMlp::init(network.clone(), device, &mut train_step_rng(training.seed, u64::MAX))?;
        let mut adam = AdamW::new(net.params(), training.lr, 0.0);
        let err = candle_err("classifier training");
        let mut losses = Vec::with_capacity(training.steps as usize);
        for step in 0..training.steps {
            let batch = DsmBatch::draw(&network, process, target, &draws, &mut train_step_rng(training.seed, step))?;
            let b = batch.xt.nrows();
            let x =
                Tensor::from_vec(batch.xt.iter().copied().collect::<Vec<_>>(), batch.xt.dim(), device).map_err(&err)?;
            let c = Tensor::from_vec(batch.cond.clone(), (b, 1), device).map_err(&err)?;
            let mut onehot = vec![0.0; b * k];
            for (i, label) in batch.labels.iter().enumerate() {
                onehot[i * k + label.unwrap_or(0)] = 1.0;
            }
            let onehot = Tensor::from_vec(onehot, (b, k), device).map_err(&err)?;
            let loss = cross_entropy(&net.forward(&x, &c, None).map_err(&err)?, &onehot).map_err(&err)?;
            let grads = loss.backward().map_err(&err)?;
            adam.step(net.params(), &grads)?;
            losses.push(loss.to_scalar::<f64>().map_err(&err)?);
        }
        let checkpoint = ClassifierCheckpoint { format: FORMAT.into(), network, training, meta, losses };
        Ok(Self { net, checkpoint })
    }

    /// Mean cross-entropy of the trained and of the exact classifier on `n` fresh noised draws at
    /// level `t` of `process` (labels by the class that drew each row; `target` is the mixture it
    /// was trained on), and the standard error of their
    /// difference (paired draws).
    pub fn cross_entropies(
        &self,
        process: &dyn ForwardProcess,
        target: &GaussianMixture,
        t: f64,
        (n, seed): (usize, u64),
    ) -> Result<(f64, f64, f64)> {
        let classes = &self.checkpoint.training.classes;
        let net = self;
        let level = NoiseLevel::at_time(process, t);
        let mut rng = <rand_pcg::Pcg64 as rand::SeedableRng>::seed_from_u64(seed);
        let weights: Vec<f64> = classes.iter().map(|c| c.iter().map(|&k| target.weights()[k]).sum()).collect();
        let mut x = ndarray::Array2::zeros((n, target.dim()));
        let mut labels = vec![0; n];
        for (i, mut row) in x.rows_mut().into_iter().enumerate() {
            let mut u = rand::Rng::random::<f64>(&mut rng) * weights.iter().sum::<f64>();
            let mut c = 0;
            while c + 1 < weights.len() && u >= weights[c] {
                u -= weights[c];
                c += 1;
            }
            labels[i] = c;
            let sub = crate::guidance::sub_mixture(target, &classes[c])?;
            let x0 = sub.sample(1, &mut rng);
            for j in 0..target.dim() {
                let z: f64 = rand::Rng::sample(&mut rng, rand_distr::StandardNormal);
                row[j] = level.alpha * x0[[0, j]] + level.sigma * z;
            }
        }
        let trained = net.log_probs(level, x.view())?;
        let mut exact = ndarray::Array2::zeros((n, classes.len()));
        for (c, group) in classes.iter().enumerate() {
            let mut col = ndarray::Array1::zeros(n);
            crate::guidance::ExactClassifier::new(target, group)?.log_prob(
                level.alpha,
                level.sigma,
                x.view(),
                col.view_mut(),
            );
            exact.column_mut(c).assign(&col);
        }
        let diffs: Vec<f64> = (0..n).map(|i| exact[[i, labels[i]]] - trained[[i, labels[i]]]).collect();
        let ce = |m: &ndarray::Array2<f64>| -(0..n).map(|i| m[[i, labels[i]]]).sum::<f64>() / n as f64;
        let mean = diffs.iter().sum::<f64>() / n as f64;
        let var = diffs.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (n as f64 - 1.0);
        Ok((ce(&trained), ce(&exact), (var / n as f64).sqrt()))
    }

    /// The description (architecture, training, meta, losses).
    pub fn checkpoint(&self) -> &ClassifierCheckpoint {
        &self.checkpoint
    }

    /// Data dimension.
    pub fn dim(&self) -> usize {
        self.net.config().dim
    }

    /// Number of classes.
    pub fn n_classes(&self) -> usize {
        self.net.config().logits
    }

    /// Writes the weights and their description to `path` (renamed into place) and the
    /// readable copy to `path.json`.
    pub fn save(&self, path: &Path) -> Result<()> {
        let err =
            |e: candle_core::Error| ScoreError::Model { context: path.display().to_string(), message: e.to_string() };
        let mut tensors: HashMap<String, Tensor> = HashMap::new();
        for (name, p) in self.net.params() {
            tensors.insert(format!("param.{name}"), p.as_tensor().to_device(&candle_core::Device::Cpu).map_err(err)?);
        }
        let text = serde_json::to_string_pretty(&self.checkpoint)
            .map_err(|e| ScoreError::Model { context: path.display().to_string(), message: e.to_string() })?;
        let bytes = text.as_bytes().to_vec();
        let len = bytes.len();
        tensors.insert(EMBEDDED.into(), Tensor::from_vec(bytes, len, &candle_core::Device::Cpu).map_err(err)?);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| ScoreError::Io { path: dir.display().to_string(), source: e })?;
        }
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        candle_core::safetensors::save(&tensors, &tmp)
            .map_err(|e| ScoreError::Model { context: path.display().to_string(), message: e.to_string() })?;
        std::fs::rename(&tmp, path).map_err(|e| ScoreError::Io { path: path.display().to_string(), source: e })?;
        crate::io::write_atomic(&json_path(path), text.as_bytes())
    }

    /// Reads a classifier written by [`NetClassifier::save`], checking its format and tensors.
    pub fn load(path: &Path, device: &candle_core::Device) -> Result<Self> {
        let bad = |message: String| ScoreError::Model { context: path.display().to_string(), message };
        if !path.exists() {
            return Err(bad("no such classifier file".into()));
        }
        let mut tensors: BTreeMap<String, Tensor> =
            candle_core::safetensors::load(path, device).map_err(|e| bad(e.to_string()))?.into_iter().collect();
        let text = tensors
            .remove(EMBEDDED)
            .ok_or_else(|| {
                bad(format!("no {EMBEDDED} inside: not a classifier (train one with `scoresde train-classifier`)"))
            })?
            .to_vec1::<u8>()
            .map_err(|e| bad(e.to_string()))?;
        let text = String::from_utf8(text).map_err(|e| bad(e.to_string()))?;
        let checkpoint: ClassifierCheckpoint = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        if checkpoint.format != FORMAT {
            return Err(bad(format!("format = {:?}: expected {FORMAT:?}", checkpoint.format)));
        }
        let params = tensors.iter().filter_map(|(k, v)| k.strip_prefix("param.").map(|n| (n.to_string(), v.clone())));
        let net = ScoreMlp::from_tensors(checkpoint.network.clone(), &params.collect(), &path.display().to_string())?;
        Ok(Self { net, checkpoint })
    }

    /// The rows of `x` (N x d) and the conditioning column at `level`, as tensors.
    fn inputs(&self, level: NoiseLevel, x: ArrayView2<f64>) -> candle_core::Result<(Tensor, Tensor)> {
        let dev = self.net.device();
        let xt = Tensor::from_vec(x.iter().copied().collect::<Vec<_>>(), x.dim(), dev)?;
        let c = Tensor::full(self.net.config().conditioning.value(level), (x.nrows(), 1), dev)?;
        Ok((xt, c))
    }

    /// log p_t(y | x) of every class for every row of `x` at `level` (N x K).
    pub fn log_probs(&self, level: NoiseLevel, x: ArrayView2<f64>) -> Result<Array2<f64>> {
        let err = candle_err("classifier");
        let (xt, c) = self.inputs(level, x).map_err(&err)?;
        let logp = log_softmax(&self.net.forward(&xt, &c, None).map_err(&err)?).map_err(&err)?;
        let v: Vec<f64> = logp.flatten_all().and_then(|t| t.to_vec1()).map_err(&err)?;
        Array2::from_shape_vec((x.nrows(), self.n_classes()), v)
            .map_err(|e| ScoreError::Model { context: "classifier".into(), message: e.to_string() })
    }

    /// grad_x log p_t(`class` | x) for every row of `x` at `level` into `out` (N x d), by
    /// reverse-mode autodiff through the network (rows are independent, so the gradient of the
    /// sum over rows is each row's own).
    pub fn grad_log_prob(
        &self,
        level: NoiseLevel,
        x: ArrayView2<f64>,
        class: usize,
        mut out: ArrayViewMut2<f64>,
    ) -> Result<()> {
        // Rows in chunks: candle's per-op buffers stay small (cache-resident, no page faults of
        // fresh large allocations); each row's gradient is its own, so chunking changes nothing.
        const CHUNK: usize = 512;
        let n = x.nrows();
        let mut start = 0;
        while start < n {
            let end = (start + CHUNK).min(n);
            let rows = ndarray::s![start..end, ..];
            self.grad_chunk(level, x.slice(rows), class, out.slice_mut(rows))?;
            start = end;
        }
        Ok(())
    }

    fn grad_chunk(
        &self,
        level: NoiseLevel,
        x: ArrayView2<f64>,
        class: usize,
        mut out: ArrayViewMut2<f64>,
    ) -> Result<()> {
        let err = candle_err("classifier gradient");
        let (xt, c) = self.inputs(level, x).map_err(&err)?;
        let xv = Var::from_tensor(&xt).map_err(&err)?;
        let logp = log_softmax(&self.net.forward(xv.as_tensor(), &c, None).map_err(&err)?).map_err(&err)?;
        let picked = logp.narrow(1, class, 1).map_err(&err)?.sum_all().map_err(&err)?;
        let grads = picked.backward().map_err(&err)?;
        let g = grads.get(xv.as_tensor()).ok_or_else(|| ScoreError::Model {
            context: "classifier gradient".into(),
            message: "no gradient reached the input".into(),
        })?;
        let v: Vec<f64> = g.flatten_all().and_then(|t| t.to_vec1()).map_err(&err)?;
        for (o, v) in out.iter_mut().zip(v) {
            *o = v;
        }
        Ok(())
    }
}

/// A trained classifier's class: the [`crate::guidance::ClassGradient`] of classifier guidance.
pub struct ClassOf {
    net: NetClassifier,
    class: usize,
}

impl NetClassifier {
    /// Guidance towards `class` (an index into the checkpoint's classes).
    pub fn of_class(self, class: usize) -> Result<ClassOf> {
        let k = self.n_classes();
        if class >= k {
            return Err(ScoreError::Model {
                context: "--class".into(),
                message: format!("class = {class}: the classifier has {k} classes"),
            });
        }
        Ok(ClassOf { net: self, class })
    }
}

impl crate::guidance::ClassGradient for ClassOf {
    fn dim(&self) -> usize {
        self.net.dim()
    }
    fn grad_log_prob_at(&self, level: NoiseLevel, x: ArrayView2<f64>, out: ArrayViewMut2<f64>) -> Result<()> {
        self.net.grad_log_prob(level, x, self.class, out)
    }
}
