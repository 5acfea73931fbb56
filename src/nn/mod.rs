//! A learned score model: an MLP trained by denoising score matching with candle, plugged into
//! every sampler exactly like the analytic score ([`NetScore`] implements
//! [`crate::model::ScoreModel`]).
//!
//! Why it is built this way:
//! - **f64 and our own RNG.** The network runs in f64 like the rest of the numerics, and every
//!   random draw of training (initial weights, data, times, noise) comes from a `Pcg64` seeded
//!   by (seed, step): candle's CPU RNG cannot be seeded, and keying by step means a resumed run
//!   draws exactly what the uninterrupted run would have, with no RNG state to store.
//! - **Our own Adam(W) and EMA.** Their state (moments, EMA weights, step count) is part of the
//!   checkpoint, so `--resume` continues bit-identically.
//! - **A checkpoint is two files**: `model.safetensors` (weights, EMA weights, Adam moments) and
//!   `model.json` (network, process and training config, steps done, loss curve); both written
//!   atomically. Loading checks every tensor's presence and shape against the config.
//! - **CPU by default**, CUDA behind the `cuda` feature (`Device::cuda_if_available`).

mod adam;
mod backprop;
mod batch;
mod checkpoint;
mod classifier;
mod fused;
mod importance;
mod jacobian;
#[cfg(target_arch = "x86_64")]
mod lanes;
mod mlp;
mod real;
mod score;
mod silu;
mod train;

pub use adam::AdamW;
pub use backprop::HostNet;
pub use batch::DsmBatch;
pub use checkpoint::{load_checkpoint, save_checkpoint, Checkpoint};
pub use classifier::{ClassOf, ClassifierCheckpoint, ClassifierTraining, NetClassifier};
pub use fused::FusedMlp;
pub use importance::{likelihood_weight, LikelihoodTimes};
pub use mlp::{Conditioning, MlpConfig, NetOutput, ScoreMlp};
pub use real::{NetDtype, Real};
pub use score::NetScore;
pub use train::{train_step_rng, DsmLoss, TrainBackend, TrainConfig, Trainer, Weighting};

use crate::error::ScoreError;

/// Wraps a candle error with what was being done.
pub(crate) fn candle_err(context: &str) -> impl Fn(candle_core::Error) -> ScoreError + '_ {
    move |e| ScoreError::Model { context: context.to_string(), message: e.to_string() }
}

/// The device models run on: the first CUDA GPU with the `cuda` feature (when one is present),
/// the CPU otherwise.
pub fn device() -> candle_core::Device {
    #[cfg(feature = "cuda")]
    {
        if let Ok(d) = candle_core::Device::cuda_if_available(0) {
            return d;
        }
    }
    candle_core::Device::Cpu
}
