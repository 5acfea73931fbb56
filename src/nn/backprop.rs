//! The DSM loss of the score MLP and its gradient, on the host without candle: the training
//! step's forward and backward passes written out for this one architecture.
//!
//! Why it exists: through candle a step is two dozen tensor operations forward and as many
//! backward, each allocating its output, and at batch 256 the allocator, not the arithmetic, set
//! the step's time. Here the batch is cut into fixed chunks of [`ROWS`] rows; each chunk runs
//! forward (keeping every pre-activation and its sigmoid) and backward on its thread's scratch
//! buffers and writes its gradient into its own slot of a buffer owned by [`HostNet`]; the slots
//! are then summed in chunk order. The chunks and the order of every sum are fixed by the batch
//! size alone, so the gradient, and the whole training run, is bit-identical for any number of
//! threads, and a resumed run repeats the uninterrupted one bit for bit.
//!
//! The forward pass is [`super::ScoreMlp::predict`]'s (the embedding of each row's own noise
//! level, EDM preconditioning), the loss [`super::DsmLoss::on`]'s: the row weights times the
//! squared error of eps_hat (or of the flow velocity), averaged over rows and coordinates.
//! With z the pre-activation of a SiLU and s = sigmoid(z): SiLU(z) = z s and
//! SiLU'(z) = s (1 + z (1 - s)). The gradients agree with candle's autograd to 1e-10 (tested for
//! every output, both conditionings, labels and weightings).

use std::ops::Range;

use rayon::prelude::*;

use super::adam::AdamW;
use super::batch::DsmBatch;
use super::fused::{add_rows, fill_rows, gemm_acc, gemm_acc_t};
use super::mlp::{MlpConfig, NetOutput, ScoreMlp};
use super::real::Real;
use super::silu::sigmoid_into;
use crate::model::Parameterisation;

/// Rows per chunk (a parallel task) of the training batch.
pub const ROWS: usize = 128;

/// Where one dense layer's weights and bias sit in the flat parameter vector.
#[derive(Clone)]
struct Slots {
    w: Range<usize>,
    b: Range<usize>,
}

/// The network's parameters as one flat vector, with the gradient buffers of a training step;
/// the passes compute in `T` (f64 or f32), the master weights, the gradient sum and the
/// optimizer stay f64.
pub struct HostNet<T: Real = f64> {
    config: MlpConfig,
    /// Name and range of every parameter, in [`MlpConfig::shapes`] order.
    names: Vec<(String, Range<usize>)>,
    input: Slots,
    blocks: Vec<[Slots; 2]>,
    output: Slots,
    /// All parameters, flat (the master copy).
    params: Vec<f64>,
    /// The parameters rounded to `T`, which the passes read.
    weights: Vec<T>,
    /// The gradient of the last [`HostNet::loss_and_grad`].
    grad: Vec<f64>,
    /// One gradient slot per chunk (reused between steps).
    chunk_grads: Vec<T>,
}

impl<T: Real> HostNet<T> {
    /// The current weights of `net`, copied to the host.
    pub fn new(net: &ScoreMlp) -> candle_core::Result<Self> {
        let config = net.config().clone();
        let mut names = vec![];
        let mut params = vec![];
        for (name, _) in config.shapes() {
            let v: Vec<f64> = net.params()[&name].as_tensor().flatten_all()?.to_vec1()?;
            names.push((name, params.len()..params.len() + v.len()));
            params.extend(v);
        }
        let slot = |n: &str| {
            let find = |s: String| names.iter().find(|(k, _)| *k == s).expect("every layer is named").1.clone();
            Slots { w: find(format!("{n}.w")), b: find(format!("{n}.b")) }
        };
        let blocks = (0..config.depth).map(|k| [slot(&format!("block{k}.0")), slot(&format!("block{k}.1"))]).collect();
        let (input, output) = (slot("in"), slot("out"));
        let grad = vec![0.0; params.len()];
        let weights = params.iter().map(|&v| T::of(v)).collect();
        Ok(Self { config, names, input, blocks, output, params, weights, grad, chunk_grads: vec![] })
    }

    /// Every parameter's name and range in [`HostNet::params`].
    pub fn names(&self) -> &[(String, Range<usize>)] {
        &self.names
    }

    /// All parameters, flat, in [`MlpConfig::shapes`] order.
    pub fn params(&self) -> &[f64] {
        &self.params
    }

    /// The gradient of the last [`HostNet::loss_and_grad`], flat like [`HostNet::params`].
    pub fn grad(&self) -> &[f64] {
        &self.grad
    }

    /// One step of `adam` with the last gradient (and the weights the passes read refreshed).
    pub fn apply(&mut self, adam: &mut AdamW) {
        adam.step_host(&self.names, &mut self.params, &self.grad);
        for (w, &p) in self.weights.iter_mut().zip(&self.params) {
            *w = T::of(p);
        }
    }

    /// The loss on `batch` (the value [`super::DsmLoss::on`] gives) and its gradient into
    /// [`HostNet::grad`].
    pub fn loss_and_grad(&mut self, batch: &DsmBatch) -> f64 {
        let (b, d) = batch.x0.dim();
        let p = self.params.len();
        let chunks = b.div_ceil(ROWS);
        if self.chunk_grads.len() < chunks * p {
            self.chunk_grads.resize(chunks * p, T::default());
        }
        let mut slots = std::mem::take(&mut self.chunk_grads);
        let this = &*self;
        let scale = 1.0 / (b * d) as f64;
        let partial: Vec<f64> = slots[..chunks * p]
            .par_chunks_mut(p)
            .enumerate()
            .map(|(c, g)| this.chunk(batch, c * ROWS..((c + 1) * ROWS).min(b), scale, g))
            .collect();
        // The chunks' gradients summed in chunk order, element by element (in parallel over
        // elements: each element's sum has the same order whatever the thread count).
        self.grad.par_chunks_mut(1024).enumerate().for_each(|(e, g)| {
            let (at, len) = (e * 1024, g.len());
            for (gi, s) in g.iter_mut().zip(&slots[at..at + len]) {
                *gi = s.wide();
            }
            for c in 1..chunks {
                for (gi, s) in g.iter_mut().zip(&slots[c * p + at..c * p + at + len]) {
                    *gi += s.wide();
                }
            }
        });
        self.chunk_grads = std::mem::take(&mut slots);
        partial.iter().sum::<f64>() * scale
    }

    /// Forward and backward over the batch rows `rows` into the gradient slot `g` (overwritten);
    /// returns their sum of weighted squared errors.
    fn chunk(&self, batch: &DsmBatch, rows: Range<usize>, scale: f64, g: &mut [T]) -> f64 {
        let cfg = &self.config;
        let (r, d, w, depth) = (rows.len(), cfg.dim, cfg.width, cfg.depth);
        let f = cfg.frequencies;
        let k_in = d + 1 + 2 * f + if cfg.classes > 0 { cfg.classes + 1 } else { 0 };
        let rw = r * w;
        T::with_scratch(|buf| {
            let need = r * k_in + (4 * depth + 2) * rw + 3 * rw + 2 * r * d;
            if buf.len() < need {
                buf.resize(need, T::default());
            }
            let (u, rest) = buf[..need].split_at_mut(r * k_in);
            let (hs, rest) = rest.split_at_mut((depth + 1) * rw);
            let (sh, rest) = rest.split_at_mut((depth + 1) * rw);
            let (pre_a, rest) = rest.split_at_mut(depth * rw);
            let (sa, rest) = rest.split_at_mut(depth * rw);
            let (act, rest) = rest.split_at_mut(rw);
            let (gh, rest) = rest.split_at_mut(rw);
            let (ga, rest) = rest.split_at_mut(rw);
            let (out, gout) = rest.split_at_mut(r * d);
            let edm = cfg.output == NetOutput::Edm;
            // EDM's per-row factors (norm, c_skip, c_out).
            let edm_at = |i: usize| cfg.edm_factors(batch.alpha[i], batch.sigma[i]);
            // The input rows: x (EDM: x / alpha / norm), c, sin and cos of c f_k, the label.
            for (li, i) in rows.clone().enumerate() {
                let row = &mut u[li * k_in..(li + 1) * k_in];
                let c = batch.cond[i];
                for (v, &x) in row[..d].iter_mut().zip(batch.xt.row(i)) {
                    *v = T::of(if edm { x / batch.alpha[i] / edm_at(i).0 } else { x });
                }
                row[d] = T::of(c);
                for k in 0..f {
                    let angle = c * MlpConfig::frequency(k);
                    row[d + 1 + k] = T::of(angle.sin());
                    row[d + 1 + f + k] = T::of(angle.cos());
                }
                if cfg.classes > 0 {
                    row[d + 1 + 2 * f..].fill(T::default());
                    row[d + 1 + 2 * f + batch.labels[i].unwrap_or(cfg.classes)] = T::of(1.0);
                }
            }
            let prm = &self.weights;
            // Forward, keeping h_k, a_k and their sigmoids.
            let h0 = &mut hs[..rw];
            fill_rows(h0, &prm[self.input.b.clone()]);
            gemm_acc(r, k_in, w, u, &prm[self.input.w.clone()], h0);
            for (k, [l0, l1]) in self.blocks.iter().enumerate() {
                let (done, next) = hs.split_at_mut((k + 1) * rw);
                let h = &done[k * rw..];
                sigmoid_into(h, &mut sh[k * rw..(k + 1) * rw]);
                silu_from(h, &sh[k * rw..(k + 1) * rw], act);
                let a = &mut pre_a[k * rw..(k + 1) * rw];
                fill_rows(a, &prm[l0.b.clone()]);
                gemm_acc(r, w, w, act, &prm[l0.w.clone()], a);
                sigmoid_into(a, &mut sa[k * rw..(k + 1) * rw]);
                silu_from(a, &sa[k * rw..(k + 1) * rw], act);
                let h_next = &mut next[..rw];
                h_next.copy_from_slice(h);
                add_rows(h_next, &prm[l1.b.clone()]);
                gemm_acc(r, w, w, act, &prm[l1.w.clone()], h_next);
            }
            let top = depth * rw..(depth + 1) * rw;
            sigmoid_into(&hs[top.clone()], &mut sh[top.clone()]);
            silu_from(&hs[top.clone()], &sh[top.clone()], act);
            fill_rows(out, &prm[self.output.b.clone()]);
            gemm_acc(r, w, d, act, &prm[self.output.w.clone()], out);
            // The loss and its gradient with respect to the network's output.
            let param = cfg.parameterisation();
            let mut loss = 0.0;
            for (li, i) in rows.clone().enumerate() {
                let (a, s, wt) = (batch.alpha[i], batch.sigma[i], batch.weight[i]);
                let (c_skip, c_out) = if edm {
                    let (_, cs, co) = edm_at(i);
                    (cs, co)
                } else {
                    (0.0, 1.0)
                };
                // d eps_hat / d prediction.
                let slope = match param {
                    Parameterisation::X0 => -a / s,
                    Parameterisation::V => a / (a * a + s * s),
                    Parameterisation::Score => -s,
                    Parameterisation::Eps | Parameterisation::Velocity => 1.0,
                };
                let mut row_err = 0.0;
                for j in 0..d {
                    let x = batch.xt[[i, j]];
                    let o = out[li * d + j].wide();
                    let pred = if edm { (x / a) * c_skip + o * c_out } else { o };
                    let e = match param {
                        Parameterisation::Velocity => pred - (batch.eps[[i, j]] - batch.x0[[i, j]]),
                        _ => param.eps_of(pred, x, a, s) - batch.eps[[i, j]],
                    };
                    row_err += e * e;
                    gout[li * d + j] = T::of(2.0 * scale * wt * e * slope * c_out);
                }
                loss += row_err * wt;
            }
            // Backward.
            g.fill(T::default());
            let (gw, gb) = (self.output.w.clone(), self.output.b.clone());
            gemm_acc_t(w, r, d, (act, true), (gout, false), &mut g[gw]);
            column_sums(gout, d, &mut g[gb]);
            gh.fill(T::default());
            gemm_acc_t(r, d, w, (gout, false), (&prm[self.output.w.clone()], true), gh);
            times_silu_prime(gh, &hs[top.clone()], &sh[top]);
            for (k, [l0, l1]) in self.blocks.iter().enumerate().rev() {
                let (kr, a, s_a) = (k * rw..(k + 1) * rw, &pre_a[k * rw..(k + 1) * rw], &sa[k * rw..(k + 1) * rw]);
                // h_{k+1} = h_k + silu(a_k) W1 + b1.
                silu_from(a, s_a, act);
                gemm_acc_t(w, r, w, (act, true), (gh, false), &mut g[l1.w.clone()]);
                column_sums(gh, w, &mut g[l1.b.clone()]);
                ga.fill(T::default());
                gemm_acc_t(r, w, w, (gh, false), (&prm[l1.w.clone()], true), ga);
                times_silu_prime(ga, a, s_a);
                // a_k = silu(h_k) W0 + b0.
                silu_from(&hs[kr.clone()], &sh[kr.clone()], act);
                gemm_acc_t(w, r, w, (act, true), (ga, false), &mut g[l0.w.clone()]);
                column_sums(ga, w, &mut g[l0.b.clone()]);
                act.fill(T::default());
                gemm_acc_t(r, w, w, (ga, false), (&prm[l0.w.clone()], true), act);
                times_silu_prime(act, &hs[kr.clone()], &sh[kr]);
                for (x, &y) in gh.iter_mut().zip(act.iter()) {
                    *x += y;
                }
            }
            gemm_acc_t(k_in, r, w, (u, true), (gh, false), &mut g[self.input.w.clone()]);
            column_sums(gh, w, &mut g[self.input.b.clone()]);
            loss
        })
    }
}

/// `out = z s` (SiLU from its pre-activation and sigmoid).
fn silu_from<T: Real>(z: &[T], s: &[T], out: &mut [T]) {
    for ((o, &z), &s) in out.iter_mut().zip(z).zip(s) {
        *o = z * s;
    }
}

/// `g *= SiLU'(z) = s (1 + z (1 - s))`, element-wise.
fn times_silu_prime<T: Real>(g: &mut [T], z: &[T], s: &[T]) {
    let one = T::of(1.0);
    for ((g, &z), &s) in g.iter_mut().zip(z).zip(s) {
        *g *= s * (one + z * (one - s));
    }
}

/// `dst += ` the column sums of the row-major matrix `m` (rows of `cols`), rows in order.
fn column_sums<T: Real>(m: &[T], cols: usize, dst: &mut [T]) {
    for row in m.chunks_exact(cols) {
        for (d, &v) in dst.iter_mut().zip(row) {
            *d += v;
        }
    }
}

/// A fused training backend in either precision.
pub(crate) trait HostTrainer: Send {
    /// [`HostNet::loss_and_grad`].
    fn loss_and_grad(&mut self, batch: &DsmBatch) -> f64;
    /// [`HostNet::apply`].
    fn apply(&mut self, adam: &mut AdamW);
    /// [`HostNet::names`].
    fn names(&self) -> &[(String, Range<usize>)];
    /// [`HostNet::params`].
    fn params(&self) -> &[f64];
}

impl<T: Real> HostTrainer for HostNet<T> {
    fn loss_and_grad(&mut self, batch: &DsmBatch) -> f64 {
        HostNet::loss_and_grad(self, batch)
    }
    fn apply(&mut self, adam: &mut AdamW) {
        HostNet::apply(self, adam)
    }
    fn names(&self) -> &[(String, Range<usize>)] {
        HostNet::names(self)
    }
    fn params(&self) -> &[f64] {
        HostNet::params(self)
    }
}

/// The fused backend for `net` in the precision its config names.
pub(crate) fn host_trainer(net: &ScoreMlp) -> candle_core::Result<Box<dyn HostTrainer>> {
    Ok(match net.config().dtype {
        super::real::NetDtype::F64 => Box::new(HostNet::<f64>::new(net)?),
        super::real::NetDtype::F32 => Box::new(HostNet::<f32>::new(net)?),
    })
}
