//! AdamW (Loshchilov & Hutter 2019) with its state in the open: first and second moments per
//! parameter and the step count, so a checkpoint can hold them and a resumed run is identical.

use std::collections::BTreeMap;

use candle_core::{backprop::GradStore, Tensor, Var};

use crate::error::Result;

use super::candle_err;

/// The optimizer: hyper-parameters and per-parameter moments.
pub struct AdamW {
    /// Learning rate.
    pub lr: f64,
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Denominator guard.
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    /// Steps taken (for the bias correction).
    pub steps: u64,
    /// First moments by parameter name.
    pub m: BTreeMap<String, Tensor>,
    /// Second moments by parameter name.
    pub v: BTreeMap<String, Tensor>,
}

impl AdamW {
    /// Zero moments for `params`.
    pub fn new(params: &BTreeMap<String, Var>, lr: f64, weight_decay: f64) -> Result<Self> {
        let mut m = BTreeMap::new();
        let mut v = BTreeMap::new();
        for (name, p) in params {
            m.insert(name.clone(), p.as_tensor().zeros_like().map_err(candle_err("adam init"))?);
            v.insert(name.clone(), p.as_tensor().zeros_like().map_err(candle_err("adam init"))?);
        }
        Ok(Self { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay, steps: 0, m, v })
    }

    /// One update of every parameter from its gradient (parameters without one are left alone).
    pub fn step(&mut self, params: &BTreeMap<String, Var>, grads: &GradStore) -> Result<()> {
        self.steps += 1;
        let t = self.steps as i32;
        let (c1, c2) = (1.0 - self.beta1.powi(t), 1.0 - self.beta2.powi(t));
        let err = candle_err("adam step");
        for (name, p) in params {
            let Some(g) = grads.get(p.as_tensor()) else { continue };
            let m = ((&self.m[name] * self.beta1).map_err(&err)? + (g * (1.0 - self.beta1)).map_err(&err)?).map_err(&err)?;
            let v = ((&self.v[name] * self.beta2).map_err(&err)? + (g.sqr().map_err(&err)? * (1.0 - self.beta2)).map_err(&err)?)
                .map_err(&err)?;
            let m_hat = (&m / c1).map_err(&err)?;
            let denom = ((&v / c2).map_err(&err)?.sqrt().map_err(&err)? + self.eps).map_err(&err)?;
            let update = (m_hat / denom).map_err(&err)?;
            let decayed = (p.as_tensor() * (1.0 - self.lr * self.weight_decay)).map_err(&err)?;
            p.set(&(decayed - (update * self.lr).map_err(&err)?).map_err(&err)?).map_err(&err)?;
            self.m.insert(name.clone(), m);
            self.v.insert(name.clone(), v);
        }
        Ok(())
    }
}
