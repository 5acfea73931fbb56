//! The trained network as a [`ScoreModel`]: EMA weights, batched inference. On the CPU through
//! the fused forward pass ([`FusedMlp`]); on a GPU, or when asked ([`NetScore::through_candle`]),
//! through candle on the model's device.

use std::path::Path;

use candle_core::Tensor;
use ndarray::{ArrayView2, ArrayViewMut2};

use crate::error::{Result, ScoreError};
use crate::model::{NoiseLevel, Parameterisation, ScoreModel};

use super::candle_err;
use super::checkpoint::{load_checkpoint, Checkpoint};
use super::fused::FusedMlp;
use super::mlp::ScoreMlp;
use super::real::NetDtype;

/// A trained score network (the EMA weights of a checkpoint).
pub struct NetScore {
    net: ScoreMlp,
    param: Parameterisation,
    checkpoint: Checkpoint,
    /// Class and guidance weight of a class-conditional network.
    guidance: Option<(usize, f64)>,
    /// The CPU inference path (`None`: candle's forward on the model's device).
    fused: Option<Fused>,
}

impl NetScore {
    /// Loads the EMA weights of the checkpoint at `path` onto `device`.
    pub fn load(path: &Path, device: &candle_core::Device) -> Result<Self> {
        let (checkpoint, tensors) = load_checkpoint(path, device)?;
        let ema =
            tensors.iter().filter_map(|(k, v)| k.strip_prefix("ema.").map(|n| (n.to_string(), v.clone()))).collect();
        let net = ScoreMlp::from_tensors(checkpoint.network.clone(), &ema, &path.display().to_string())?;
        let param = checkpoint.network.parameterisation();
        let fused = fused_on_cpu(&net, net.config().dtype)?;
        Ok(Self { net, param, checkpoint, guidance: None, fused })
    }

    /// The same model with the fused CPU passes in precision `dtype` (whatever the checkpoint
    /// was trained in); no effect on a GPU model, which runs through candle in f64.
    pub fn with_dtype(mut self, dtype: NetDtype) -> Result<Self> {
        if self.fused.is_some() {
            self.fused = fused_on_cpu(&self.net, dtype)?;
        }
        Ok(self)
    }

    /// The precision the model is evaluated in.
    pub fn dtype(&self) -> NetDtype {
        match &self.fused {
            Some(Fused::F32(_)) => NetDtype::F32,
            _ => NetDtype::F64,
        }
    }

    /// The same model evaluated through candle's forward pass (on the model's device) instead
    /// of the fused CPU path: for comparisons.
    pub fn through_candle(mut self) -> Self {
        self.fused = None;
        self
    }

    /// A guided copy sharing the weights (see [`NetScore::with_guidance`]).
    pub fn guided(&self, class: usize, w: f64) -> Result<Self> {
        let tensors = self.net.params().iter().map(|(k, v)| (k.clone(), v.as_tensor().clone())).collect();
        let net = ScoreMlp::from_tensors(self.net.config().clone(), &tensors, "guided copy")?;
        let fused = if self.fused.is_some() { fused_on_cpu(&net, self.dtype())? } else { None };
        Self { net, param: self.param, checkpoint: self.checkpoint.clone(), guidance: None, fused }
            .with_guidance(class, w)
    }

    /// Classifier-free guidance towards `class` with weight `w`: every evaluation is
    /// (1 + w) out(x, class) - w out(x, null), in the network's own parameterisation (which is
    /// affine in eps at fixed x and level, so this is the guided eps too). Needs a
    /// class-conditional checkpoint.
    pub fn with_guidance(mut self, class: usize, w: f64) -> Result<Self> {
        let classes = self.net.config().classes;
        if class >= classes {
            return Err(ScoreError::Model {
                context: "--class".into(),
                message: format!("class = {class}: the model has {classes} classes"),
            });
        }
        if !w.is_finite() {
            return Err(ScoreError::InvalidParameter { name: "guidance".into(), value: w, expected: "must be finite" });
        }
        self.guidance = Some((class, w));
        Ok(self)
    }

    /// The checkpoint's description (config, metadata, loss curve).
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }
}

/// The fused CPU forward pass in one of its precisions.
enum Fused {
    F64(FusedMlp<f64>),
    F32(FusedMlp<f32>),
}

/// The fused inference path of `net` in `dtype` when its weights live on the CPU.
fn fused_on_cpu(net: &ScoreMlp, dtype: NetDtype) -> Result<Option<Fused>> {
    if !net.device().is_cpu() {
        return Ok(None);
    }
    let err = candle_err("network inference");
    Ok(Some(match dtype {
        NetDtype::F64 => Fused::F64(FusedMlp::new(net).map_err(err)?),
        NetDtype::F32 => Fused::F32(FusedMlp::new(net).map_err(err)?),
    }))
}

impl ScoreModel for NetScore {
    fn dim(&self) -> usize {
        self.net.config().dim
    }
    fn parameterisation(&self) -> Parameterisation {
        self.param
    }
    fn predict(&self, level: NoiseLevel, x: ArrayView2<f64>, out: ArrayViewMut2<f64>) -> Result<()> {
        let guided;
        let terms: &[(Option<usize>, f64)] = match (self.net.config().classes, self.guidance) {
            (0, _) | (_, None) => &[(None, 1.0)],
            // The conditional model: one pass.
            (_, Some((class, 0.0))) => {
                guided = [(Some(class), 1.0), (None, 0.0)];
                &guided[..1]
            }
            (_, Some((class, w))) => {
                guided = [(Some(class), 1.0 + w), (None, -w)];
                &guided
            }
        };
        self.evaluate(level, x, terms, out)
    }
    fn has_pair(&self) -> bool {
        self.net.config().classes > 0 && self.guidance.is_some()
    }
    /// Exact on the fused f64 path without guidance: the output's J^T r by forward-mode
    /// tangents, then x0 = a x + b out (the parameterisation's map at fixed level), so
    /// J_x0^T r = a r + b J_out^T r.
    fn predict_x0_vjp(
        &self,
        level: NoiseLevel,
        x: ArrayView2<f64>,
        r: ArrayView2<f64>,
        mut x0: ArrayViewMut2<f64>,
        mut vjp: ArrayViewMut2<f64>,
    ) -> Result<bool> {
        let Some(Fused::F64(f)) = &self.fused else { return Ok(false) };
        if self.guidance.is_some() || x.ncols() != self.dim() || r.dim() != x.dim() {
            return Ok(false);
        }
        f.predict_vjp(level, x, r, x0.view_mut(), vjp.view_mut());
        let (ca, cb) = self.param.x0_coefficients(level);
        self.param.to_x0(level, x, x0);
        ndarray::Zip::from(&mut vjp).and(r).for_each(|v, &r| *v = ca * r + cb * *v);
        Ok(true)
    }
    /// Two passes (the class's and the null label's), combined as `predict` combines them.
    fn predict_pair(
        &self,
        level: NoiseLevel,
        x: ArrayView2<f64>,
        mut guided: ArrayViewMut2<f64>,
        mut uncond: ArrayViewMut2<f64>,
    ) -> Result<()> {
        let Some((class, w)) = self.guidance.filter(|_| self.has_pair()) else {
            return Err(ScoreError::Model {
                context: "guided prediction pair".into(),
                message: "the network is not guided (CFG++ needs --class C with --guidance W)".into(),
            });
        };
        self.evaluate(level, x, &[(Some(class), 1.0)], guided.view_mut())?;
        self.evaluate(level, x, &[(None, 1.0)], uncond.view_mut())?;
        guided.zip_mut_with(&uncond, |c, &u| *c = (1.0 + w) * *c - w * u);
        Ok(())
    }
}

impl NetScore {
    /// `sum weight * out(x, label)` over `terms` (the null label for `None` on a
    /// class-conditional network; an unconditional one takes one term, its label ignored), on
    /// the fused CPU path or through candle.
    fn evaluate(
        &self,
        level: NoiseLevel,
        x: ArrayView2<f64>,
        terms: &[(Option<usize>, f64)],
        mut out: ArrayViewMut2<f64>,
    ) -> Result<()> {
        let (n, d) = x.dim();
        if d != self.dim() {
            return Err(ScoreError::DimensionMismatch {
                what: "model input columns".into(),
                expected: self.dim(),
                found: d,
            });
        }
        if let Some(fused) = &self.fused {
            match fused {
                Fused::F64(f) => f.predict(level, x, terms, out),
                Fused::F32(f) => f.predict(level, x, terms, out),
            }
            return Ok(());
        }
        let err = candle_err("network inference");
        let dev = self.net.device();
        let flat: Vec<f64> = x.iter().copied().collect();
        let xt = Tensor::from_vec(flat, (n, d), dev).map_err(&err)?;
        let col = |v: f64| Tensor::full(v, (n, 1), dev);
        let c = col(self.net.config().conditioning.value(level)).map_err(&err)?;
        let (a, s) = (col(level.alpha).map_err(&err)?, col(level.sigma).map_err(&err)?);
        let conditional = self.net.config().classes > 0;
        let y = (|| {
            let mut total: Option<Tensor> = None;
            for &(label, weight) in terms {
                let y = if conditional {
                    self.net.predict(&xt, &a, &s, &c, Some(&self.net.labels(&vec![label; n])?))?
                } else {
                    self.net.predict(&xt, &a, &s, &c, None)?
                };
                let y = if terms.len() == 1 { y } else { (y * weight)? };
                total = Some(match total {
                    None => y,
                    Some(t) => (t + y)?,
                });
            }
            total.ok_or_else(|| candle_core::Error::Msg("no terms".into()))
        })()
        .map_err(&err)?;
        let values: Vec<f64> = y.flatten_all().and_then(|t| t.to_vec1()).map_err(&err)?;
        for (o, v) in out.iter_mut().zip(values) {
            *o = v;
        }
        Ok(())
    }
}

/// The score and its exact divergence (forward-mode through the fused MLP), for
/// `nll --model`: the network's output o converts to eps affinely at fixed x, so
/// div eps follows from div o (eps: div o; x0: (d - alpha div o) / sigma;
/// v: (alpha div o + sigma d) / (alpha^2 + sigma^2); velocity: (d + alpha div o) / (alpha + sigma)),
/// and s = -eps / sigma. Needs the f64 CPU path, an unguided network and sigma > 0.
impl crate::likelihood::ScoreDivergence for NetScore {
    fn dim(&self) -> usize {
        self.net.config().dim
    }
    fn score_divergence(
        &self,
        level: NoiseLevel,
        x: ArrayView2<f64>,
        mut score: ArrayViewMut2<f64>,
        mut div: ndarray::ArrayViewMut1<f64>,
    ) -> Result<()> {
        let err = |message: &str| ScoreError::Model { context: "network divergence".into(), message: message.into() };
        let Some(Fused::F64(f)) = &self.fused else {
            return Err(err("the exact divergence needs the network on the CPU in f64 (--dtype f64)"));
        };
        if self.guidance.is_some() {
            return Err(err("the likelihood is the unconditional model's: no guidance"));
        }
        let NoiseLevel { alpha: a, sigma: s, .. } = level;
        if s <= 0.0 {
            return Err(err(
                "a network's score needs sigma > 0 (start the likelihood ODE at t > 0, e.g. --t-start 1e-5)",
            ));
        }
        let dim = self.net.config().dim;
        if x.ncols() != dim {
            return Err(ScoreError::DimensionMismatch {
                what: "model input columns".into(),
                expected: dim,
                found: x.ncols(),
            });
        }
        f.predict_divergence(level, x, score.view_mut(), div.view_mut());
        let d = dim as f64;
        for v in div.iter_mut() {
            let div_eps = match self.param {
                Parameterisation::Eps => *v,
                Parameterisation::X0 => (d - a * *v) / s,
                Parameterisation::V => (a * *v + s * d) / (a * a + s * s),
                Parameterisation::Velocity => (d + a * *v) / (a + s),
                Parameterisation::Score => -s * *v,
            };
            *v = -div_eps / s;
        }
        self.param.to_eps(level, x, score.view_mut());
        score.mapv_inplace(|e| -e / s);
        Ok(())
    }
}
