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

use std::cell::RefCell;
use std::ops::Range;

use rayon::prelude::*;

use super::batch::DsmBatch;
use super::fused::{add_rows, fill_rows, gemm_acc, gemm_acc_t};
use super::mlp::{MlpConfig, NetOutput, ScoreMlp};
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

/// The network's parameters as one flat vector, with the gradient buffers of a training step.
pub struct HostNet {
    config: MlpConfig,
    /// Name and range of every parameter, in [`MlpConfig::shapes`] order.
    names: Vec<(String, Range<usize>)>,
    input: Slots,
    blocks: Vec<[Slots; 2]>,
    output: Slots,
    /// All parameters, flat.
    params: Vec<f64>,
    /// The gradient of the last [`HostNet::loss_and_grad`].
    grad: Vec<f64>,
    /// One gradient slot per chunk (reused between steps).
    chunk_grads: Vec<f64>,
}

thread_local! {
    /// Each thread's forward and backward buffers, grown to the largest chunk seen.
    static SCRATCH: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
}

impl HostNet {
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
        Ok(Self { config, names, input, blocks, output, params, grad, chunk_grads: vec![] })
    }

    /// Every parameter's name and range in [`HostNet::params`].
    pub fn names(&self) -> &[(String, Range<usize>)] {
        &self.names
    }

    /// All parameters, flat, in [`MlpConfig::shapes`] order.
    pub fn params(&self) -> &[f64] {
        &self.params
    }

    /// The parameters and the last gradient, for an optimizer step.
    pub fn params_and_grad(&mut self) -> (&mut [f64], &[f64]) {
        (&mut self.params, &self.grad)
    }

    /// The loss on `batch` (the value [`super::DsmLoss::on`] gives) and its gradient into
    /// [`HostNet::params_and_grad`].
    pub fn loss_and_grad(&mut self, batch: &DsmBatch) -> f64 {
        let (b, d) = batch.x0.dim();
        let p = self.params.len();
        let chunks = b.div_ceil(ROWS);
        if self.chunk_grads.len() < chunks * p {
            self.chunk_grads.resize(chunks * p, 0.0);
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
            g.copy_from_slice(&slots[at..at + len]);
            for c in 1..chunks {
                for (gi, s) in g.iter_mut().zip(&slots[c * p + at..c * p + at + len]) {
                    *gi += s;
                }
            }
        });
        self.chunk_grads = std::mem::take(&mut slots);
        partial.iter().sum::<f64>() * scale
    }

    /// Forward and backward over the batch rows `rows` into the gradient slot `g` (overwritten);
    /// returns their sum of weighted squared errors.
    fn chunk(&self, batch: &DsmBatch, rows: Range<usize>, scale: f64, g: &mut [f64]) -> f64 {
        let cfg = &self.config;
        let (r, d, w, depth) = (rows.len(), cfg.dim, cfg.width, cfg.depth);
        let f = cfg.frequencies;
        let k_in = d + 1 + 2 * f + if cfg.classes > 0 { cfg.classes + 1 } else { 0 };
        let rw = r * w;
        SCRATCH.with_borrow_mut(|buf| {
            let need = r * k_in + (4 * depth + 2) * rw + 3 * rw + 2 * r * d;
            if buf.len() < need {
                buf.resize(need, 0.0);
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
            let sd = cfg.sigma_data;
            // EDM's per-row factors (norm, c_skip, c_out), as `ScoreMlp::predict` computes them.
            let edm_at = |i: usize| {
                let (a, s) = (batch.alpha[i], batch.sigma[i]);
                let st = s / a;
                let norm = (st * st + sd * sd).sqrt();
                (norm, (norm * norm).recip() * (sd * sd), (st * sd) / norm)
            };
            // The input rows: x (EDM: x / alpha / norm), c, sin and cos of c f_k, the label.
            for (li, i) in rows.clone().enumerate() {
                let row = &mut u[li * k_in..(li + 1) * k_in];
                let c = batch.cond[i];
                for (v, &x) in row[..d].iter_mut().zip(batch.xt.row(i)) {
                    *v = if edm { x / batch.alpha[i] / edm_at(i).0 } else { x };
                }
                row[d] = c;
                for k in 0..f {
                    let angle = c * (std::f64::consts::PI * 2f64.powi(k as i32) / 4.0);
                    row[d + 1 + k] = angle.sin();
                    row[d + 1 + f + k] = angle.cos();
                }
                if cfg.classes > 0 {
                    row[d + 1 + 2 * f..].fill(0.0);
                    row[d + 1 + 2 * f + batch.labels[i].unwrap_or(cfg.classes)] = 1.0;
                }
            }
            let prm = &self.params;
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
                    let o = out[li * d + j];
                    let pred = if edm { (x / a) * c_skip + o * c_out } else { o };
                    let e = match param {
                        Parameterisation::Velocity => pred - (batch.eps[[i, j]] - batch.x0[[i, j]]),
                        _ => param.eps_of(pred, x, a, s) - batch.eps[[i, j]],
                    };
                    row_err += e * e;
                    gout[li * d + j] = 2.0 * scale * wt * e * slope * c_out;
                }
                loss += row_err * wt;
            }
            // Backward.
            g.fill(0.0);
            let (gw, gb) = (self.output.w.clone(), self.output.b.clone());
            gemm_acc_t(w, r, d, (act, true), (gout, false), &mut g[gw]);
            column_sums(gout, d, &mut g[gb]);
            gh.fill(0.0);
            gemm_acc_t(r, d, w, (gout, false), (&prm[self.output.w.clone()], true), gh);
            times_silu_prime(gh, &hs[top.clone()], &sh[top]);
            for (k, [l0, l1]) in self.blocks.iter().enumerate().rev() {
                let (kr, a, s_a) = (k * rw..(k + 1) * rw, &pre_a[k * rw..(k + 1) * rw], &sa[k * rw..(k + 1) * rw]);
                // h_{k+1} = h_k + silu(a_k) W1 + b1.
                silu_from(a, s_a, act);
                gemm_acc_t(w, r, w, (act, true), (gh, false), &mut g[l1.w.clone()]);
                column_sums(gh, w, &mut g[l1.b.clone()]);
                ga.fill(0.0);
                gemm_acc_t(r, w, w, (gh, false), (&prm[l1.w.clone()], true), ga);
                times_silu_prime(ga, a, s_a);
                // a_k = silu(h_k) W0 + b0.
                silu_from(&hs[kr.clone()], &sh[kr.clone()], act);
                gemm_acc_t(w, r, w, (act, true), (ga, false), &mut g[l0.w.clone()]);
                column_sums(ga, w, &mut g[l0.b.clone()]);
                act.fill(0.0);
                gemm_acc_t(r, w, w, (ga, false), (&prm[l0.w.clone()], true), act);
                times_silu_prime(act, &hs[kr.clone()], &sh[kr]);
                for (x, y) in gh.iter_mut().zip(act.iter()) {
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
fn silu_from(z: &[f64], s: &[f64], out: &mut [f64]) {
    for ((o, &z), &s) in out.iter_mut().zip(z).zip(s) {
        *o = z * s;
    }
}

/// `g *= SiLU'(z) = s (1 + z (1 - s))`, element-wise.
fn times_silu_prime(g: &mut [f64], z: &[f64], s: &[f64]) {
    for ((g, &z), &s) in g.iter_mut().zip(z).zip(s) {
        *g *= s * (1.0 + z * (1.0 - s));
    }
}

/// `dst += ` the column sums of the row-major matrix `m` (rows of `cols`), rows in order.
fn column_sums(m: &[f64], cols: usize, dst: &mut [f64]) {
    for row in m.chunks_exact(cols) {
        for (d, v) in dst.iter_mut().zip(row) {
            *d += v;
        }
    }
}
