//! Checkpoints: `PATH` (safetensors: `param.*`, `ema.*`, `adam_m.*`, `adam_v.*`, and the
//! checkpoint's description as the UTF-8 bytes of a `checkpoint.json` tensor: format tag, network
//! and training config, the caller's metadata such as process and target, steps done, the loss
//! curve) and a readable copy of that description in `PATH.json` beside it.
//!
//! The weights and their description are one file, renamed into place at once, so no kill can
//! pair step-101 weights with a step-100 config. On load the copy must equal the embedded
//! description: an edited or left-over `PATH.json` is a one-line error, never silently used.
//! Checkpoints written before the description was embedded are read from `PATH.json` alone.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::error::{Result, ScoreError};

use super::adam::{values, AdamW};
use super::mlp::{MlpConfig, ScoreMlp};
use super::train::{TrainConfig, Trainer};

/// Format tag of the JSON half.
const FORMAT: &str = "scoresde-dsm-1";
/// The tensor holding the description's bytes.
const EMBEDDED: &str = "checkpoint.json";

/// The JSON half of a checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// Always `scoresde-dsm-1`.
    pub format: String,
    /// The architecture.
    pub network: MlpConfig,
    /// The training hyper-parameters.
    pub train: TrainConfig,
    /// The caller's description of what was trained (process, target, ...).
    pub meta: serde_json::Value,
    /// Optimisation steps done.
    pub steps_done: u64,
    /// Loss of every step.
    pub losses: Vec<f64>,
}

/// The JSON file beside a weights file.
pub fn json_path(weights: &Path) -> PathBuf {
    let mut s = weights.as_os_str().to_owned();
    s.push(".json");
    PathBuf::from(s)
}

fn model_err(path: &Path, message: impl Into<String>) -> ScoreError {
    ScoreError::Model { context: path.display().to_string(), message: message.into() }
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

/// Writes the trainer's full state to `path` and `path.json`.
pub fn save_checkpoint(path: &Path, trainer: &Trainer, meta: serde_json::Value) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| ScoreError::Io { path: dir.display().to_string(), source: e })?;
    }
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    let err = |e: candle_core::Error| model_err(path, e.to_string());
    for (name, p) in trainer.net.params() {
        let shape = p.as_tensor().shape();
        let host = |v: &Vec<f64>| Tensor::from_vec(v.clone(), shape, &candle_core::Device::Cpu);
        tensors.insert(format!("param.{name}"), p.as_tensor().to_device(&candle_core::Device::Cpu).map_err(err)?);
        tensors.insert(format!("ema.{name}"), host(&trainer.ema[name]).map_err(err)?);
        tensors.insert(format!("adam_m.{name}"), host(&trainer.adam.m[name]).map_err(err)?);
        tensors.insert(format!("adam_v.{name}"), host(&trainer.adam.v[name]).map_err(err)?);
    }
    let ckpt = Checkpoint {
        format: FORMAT.into(),
        network: trainer.net.config().clone(),
        train: trainer.config.clone(),
        meta,
        steps_done: trainer.steps_done(),
        losses: trainer.losses.clone(),
    };
    let text = serde_json::to_string_pretty(&ckpt).map_err(|e| model_err(path, e.to_string()))?;
    let bytes = text.as_bytes().to_vec();
    let len = bytes.len();
    tensors.insert(EMBEDDED.into(), Tensor::from_vec(bytes, len, &candle_core::Device::Cpu).map_err(err)?);
    let tmp = tmp_path(path);
    candle_core::safetensors::save(&tensors, &tmp).map_err(|e| model_err(path, e.to_string()))?;
    // The copy beside the weights goes first, so that a kill between the two renames leaves new
    // weights with no copy (whole on their own), never new weights beside the old description,
    // which reads as a foreign or edited pair and is refused.
    let jpath = json_path(path);
    match std::fs::remove_file(&jpath) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(ScoreError::Io { path: jpath.display().to_string(), source: e });
        }
        _ => {}
    }
    std::fs::rename(&tmp, path).map_err(|e| ScoreError::Io { path: path.display().to_string(), source: e })?;
    crate::io::write_atomic(&jpath, text.as_bytes())
}

/// Reads `path.json` and `path`: the checkpoint's description and its tensors by name, checked
/// for the format tag, finite losses and the Adam step count.
pub fn load_checkpoint(path: &Path, device: &candle_core::Device) -> Result<(Checkpoint, BTreeMap<String, Tensor>)> {
    let jpath = json_path(path);
    if !path.exists() {
        return Err(model_err(path, "no such checkpoint file"));
    }
    let mut tensors: BTreeMap<String, Tensor> =
        candle_core::safetensors::load(path, device).map_err(|e| model_err(path, e.to_string()))?.into_iter().collect();
    let copy = std::fs::read_to_string(&jpath);
    let text = match tensors.remove(EMBEDDED) {
        Some(t) => {
            let bytes = t.to_vec1::<u8>().map_err(|e| model_err(path, e.to_string()))?;
            let embedded = String::from_utf8(bytes).map_err(|e| model_err(path, format!("{EMBEDDED}: {e}")))?;
            if let Ok(copy) = &copy {
                if *copy != embedded {
                    return Err(model_err(
                        &jpath,
                        "differs from the description inside the checkpoint (edited, or left by another run): \
                         delete it (the next save rewrites it) or restore it",
                    ));
                }
            }
            embedded
        }
        None => copy.map_err(|e| model_err(&jpath, format!("cannot read the checkpoint's config: {e}")))?,
    };
    let ckpt: Checkpoint = serde_json::from_str(&text).map_err(|e| model_err(&jpath, e.to_string()))?;
    if ckpt.format != FORMAT {
        return Err(model_err(&jpath, format!("format = {:?}: expected {FORMAT:?}", ckpt.format)));
    }
    if ckpt.losses.len() as u64 != ckpt.steps_done {
        return Err(model_err(&jpath, format!("steps_done = {} but {} losses", ckpt.steps_done, ckpt.losses.len())));
    }
    ckpt.network.validate()?;
    ckpt.train.validate()?;
    Ok((ckpt, tensors))
}

/// The tensors under `prefix.` with the prefix removed.
fn strip(tensors: &BTreeMap<String, Tensor>, prefix: &str) -> BTreeMap<String, Tensor> {
    tensors.iter().filter_map(|(k, v)| k.strip_prefix(prefix).map(|n| (n.to_string(), v.clone()))).collect()
}

impl Trainer {
    /// Restores a run from a checkpoint, to continue it exactly where it stopped.
    pub fn from_checkpoint(path: &Path, device: &candle_core::Device) -> Result<(Self, serde_json::Value)> {
        let (ckpt, tensors) = load_checkpoint(path, device)?;
        let ctx = path.display().to_string();
        let net = ScoreMlp::from_tensors(ckpt.network.clone(), &strip(&tensors, "param."), &ctx)?;
        let ema = ScoreMlp::from_tensors(ckpt.network.clone(), &strip(&tensors, "ema."), &ctx)?;
        let m = ScoreMlp::from_tensors(ckpt.network.clone(), &strip(&tensors, "adam_m."), &ctx)?;
        let v = ScoreMlp::from_tensors(ckpt.network.clone(), &strip(&tensors, "adam_v."), &ctx)?;
        let take = |n: &ScoreMlp| -> Result<BTreeMap<String, Vec<f64>>> {
            n.params()
                .iter()
                .map(|(k, v)| Ok((k.clone(), values(v.as_tensor()).map_err(|e| model_err(path, e.to_string()))?)))
                .collect()
        };
        let mut adam = AdamW::new(net.params(), ckpt.train.lr, ckpt.train.weight_decay);
        adam.m = take(&m)?;
        adam.v = take(&v)?;
        adam.steps = ckpt.steps_done;
        let trainer = Trainer::from_parts(net, take(&ema)?, adam, ckpt.train, ckpt.losses);
        Ok((trainer, ckpt.meta))
    }
}
