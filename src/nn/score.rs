//! The trained network as a [`ScoreModel`]: EMA weights, batched inference on the model's device.

use std::path::Path;

use candle_core::Tensor;
use ndarray::{ArrayView2, ArrayViewMut2};

use crate::error::{Result, ScoreError};
use crate::model::{NoiseLevel, Parameterisation, ScoreModel};

use super::candle_err;
use super::checkpoint::{load_checkpoint, Checkpoint};
use super::mlp::ScoreMlp;

/// A trained score network (the EMA weights of a checkpoint).
pub struct NetScore {
    net: ScoreMlp,
    param: Parameterisation,
    checkpoint: Checkpoint,
}

impl NetScore {
    /// Loads the EMA weights of the checkpoint at `path` onto `device`.
    pub fn load(path: &Path, device: &candle_core::Device) -> Result<Self> {
        let (checkpoint, tensors) = load_checkpoint(path, device)?;
        let ema =
            tensors.iter().filter_map(|(k, v)| k.strip_prefix("ema.").map(|n| (n.to_string(), v.clone()))).collect();
        let net = ScoreMlp::from_tensors(checkpoint.network.clone(), &ema, &path.display().to_string())?;
        let param = checkpoint.network.parameterisation()?;
        Ok(Self { net, param, checkpoint })
    }

    /// The checkpoint's description (config, metadata, loss curve).
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }
}

impl ScoreModel for NetScore {
    fn dim(&self) -> usize {
        self.net.config().dim
    }
    fn parameterisation(&self) -> Parameterisation {
        self.param
    }
    fn predict(&self, level: NoiseLevel, x: ArrayView2<f64>, mut out: ArrayViewMut2<f64>) -> Result<()> {
        let (n, d) = x.dim();
        if d != self.dim() {
            return Err(ScoreError::DimensionMismatch {
                what: "model input columns".into(),
                expected: self.dim(),
                found: d,
            });
        }
        let err = candle_err("network inference");
        let dev = self.net.device();
        let flat: Vec<f64> = x.iter().copied().collect();
        let xt = Tensor::from_vec(flat, (n, d), dev).map_err(&err)?;
        let c = Tensor::full(self.net.config().conditioning.value(level), (n, 1), dev).map_err(&err)?;
        let y = self.net.forward(&xt, &c).map_err(&err)?;
        let values: Vec<f64> = y.flatten_all().and_then(|t| t.to_vec1()).map_err(&err)?;
        for (o, v) in out.iter_mut().zip(values) {
            *o = v;
        }
        Ok(())
    }
}
