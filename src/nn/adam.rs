//! AdamW (Loshchilov & Hutter 2019) with its state in the open: first and second moments per
//! parameter and the step count, so a checkpoint can hold them and a resumed run is identical.
//!
//! The update runs on host vectors, element by element: for the small networks of this crate a
//! dozen fused loops are far cheaper than a dozen tensor ops per parameter (each op allocates).

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
    /// First moments by parameter name (flattened, row-major).
    pub m: BTreeMap<String, Vec<f64>>,
    /// Second moments by parameter name.
    pub v: BTreeMap<String, Vec<f64>>,
}

/// A tensor's values, flattened.
pub(crate) fn values(t: &Tensor) -> candle_core::Result<Vec<f64>> {
    t.flatten_all()?.to_vec1::<f64>()
}

impl AdamW {
    /// Zero moments for `params`.
    pub fn new(params: &BTreeMap<String, Var>, lr: f64, weight_decay: f64) -> Self {
        let zeros = |p: &Var| vec![0.0; p.as_tensor().elem_count()];
        let m = params.iter().map(|(k, p)| (k.clone(), zeros(p))).collect();
        let v = params.iter().map(|(k, p)| (k.clone(), zeros(p))).collect();
        Self { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay, steps: 0, m, v }
    }

    /// One update of every parameter from its gradient (parameters without one are left alone).
    pub fn step(&mut self, params: &BTreeMap<String, Var>, grads: &GradStore) -> Result<()> {
        let (c1, c2) = self.begin();
        let err = candle_err("adam step");
        for (name, p) in params {
            let Some(g) = grads.get(p.as_tensor()) else { continue };
            let g = values(g).map_err(&err)?;
            let mut w = values(p.as_tensor()).map_err(&err)?;
            self.update(name, &mut w, &g, c1, c2);
            let new = Tensor::from_vec(w, p.as_tensor().shape(), p.as_tensor().device()).map_err(&err)?;
            p.set(&new).map_err(&err)?;
        }
        Ok(())
    }

    /// One update of host parameters: `params` and `grads` flat, `names` the name and range of
    /// each parameter in them (the fused training path, [`super::backprop::HostNet`]).
    pub fn step_host(&mut self, names: &[(String, std::ops::Range<usize>)], params: &mut [f64], grads: &[f64]) {
        let (c1, c2) = self.begin();
        for (name, range) in names {
            self.update(name, &mut params[range.clone()], &grads[range.clone()], c1, c2);
        }
    }

    /// Counts the step; returns the bias corrections 1 - beta1^t and 1 - beta2^t.
    fn begin(&mut self) -> (f64, f64) {
        self.steps += 1;
        let t = self.steps as i32;
        (1.0 - self.beta1.powi(t), 1.0 - self.beta2.powi(t))
    }

    /// The update of parameter `name` (values `w`, gradient `g`).
    fn update(&mut self, name: &str, w: &mut [f64], g: &[f64], c1: f64, c2: f64) {
        let (m, v) = (self.m.get_mut(name).expect("moments per parameter"), self.v.get_mut(name).expect("moments"));
        for (((wi, gi), mi), vi) in w.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            *mi = self.beta1 * *mi + (1.0 - self.beta1) * gi;
            *vi = self.beta2 * *vi + (1.0 - self.beta2) * gi * gi;
            let update = (*mi / c1) / ((*vi / c2).sqrt() + self.eps);
            *wi = *wi * (1.0 - self.lr * self.weight_decay) - self.lr * update;
        }
    }
}
