//! The divergence of the network's output (the trace of its Jacobian in x) by forward-mode
//! differentiation of the fused MLP: for each input direction e_j the tangent is pushed through
//! the layers (dh = W_x e_j; a residual block's tangent dh + (silu'(z) * ((silu'(h) * dh) W0)) W1;
//! the output's (silu'(h) * dh) W_out), and its j-th output component is d out_j / d x_j. The
//! cost is d + 1 forward passes; exact to round-off, so `nll --model` can use the exact
//! divergence for small d (Hutchinson's estimator otherwise). The same tangents give the full
//! Jacobian, so also J^T r (DPS's gradient for a network, `inpaint`).

use ndarray::{ArrayView2, ArrayViewMut1, ArrayViewMut2, Axis};
use rayon::prelude::*;

use super::fused::{fill_rows, gemm_acc, FusedMlp, CHUNK};
use super::mlp::NetOutput;
use super::silu::{sigmoid_into, silu_into};
use crate::model::NoiseLevel;

/// silu'(v) = s (1 + v (1 - s)) with s the logistic sigmoid of v, over a slice.
fn silu_prime(v: &[f64], out: &mut [f64]) {
    sigmoid_into(v, out);
    for (o, &v) in out.iter_mut().zip(v) {
        *o *= 1.0 + v * (1.0 - *o);
    }
}

/// EDM's affine wrapping of the raw network F: out = diag x + c_out F(u), u = input_scale x
/// (diag = c_skip / alpha, input_scale = 1 / (alpha norm)); out = F(x) otherwise.
struct Wrap {
    diag: f64,
    scale: f64,
    input_scale: f64,
}

impl FusedMlp<f64> {
    fn wrap(&self, level: NoiseLevel) -> Wrap {
        match self.config.output {
            NetOutput::Edm => {
                let (norm, c_skip, c_out) = self.config.edm_factors(level.alpha, level.sigma);
                let input_scale = 1.0 / (level.alpha * norm);
                Wrap { diag: c_skip / level.alpha, scale: c_out * input_scale, input_scale }
            }
            _ => Wrap { diag: 0.0, scale: 1.0, input_scale: 1.0 },
        }
    }

    /// For every input coordinate j, the r x d tangent dF/du_j of the raw network at the
    /// chunk's rows `u` (r x d, row-major), handed to `each(j, tangent)`.
    fn tangents(&self, bias: &[f64], u: &[f64], r: usize, each: &mut dyn FnMut(usize, &[f64])) {
        let (d, w) = (self.config.dim, self.config.width);
        let depth = self.blocks.len();
        // Forward, keeping h before each block and the inner pre-activation z of each.
        let mut hs = vec![vec![0.0; r * w]; depth + 1];
        let mut zs = vec![vec![0.0; r * w]; depth];
        let mut act = vec![0.0; r * w];
        fill_rows(&mut hs[0], bias);
        gemm_acc(r, d, w, u, &self.w_x, &mut hs[0]);
        for (k, [l0, l1]) in self.blocks.iter().enumerate() {
            silu_into(&hs[k], &mut act);
            fill_rows(&mut zs[k], &l0.b);
            gemm_acc(r, w, w, &act, &l0.w, &mut zs[k]);
            silu_into(&zs[k], &mut act);
            let mut next = hs[k].clone();
            for (n, b) in next.chunks_exact_mut(w).flat_map(|row| row.iter_mut().zip(&l1.b)) {
                *n += b;
            }
            gemm_acc(r, w, w, &act, &l1.w, &mut next);
            hs[k + 1] = next;
        }
        let primes = |bufs: &[Vec<f64>]| -> Vec<Vec<f64>> {
            bufs.iter()
                .map(|v| {
                    let mut o = vec![0.0; r * w];
                    silu_prime(v, &mut o);
                    o
                })
                .collect()
        };
        let (sp_h, sp_z) = (primes(&hs), primes(&zs));
        let (mut dh, mut da, mut dz) = (vec![0.0; r * w], vec![0.0; r * w], vec![0.0; r * w]);
        let mut tangent = vec![0.0; r * d];
        for j in 0..d {
            fill_rows(&mut dh, &self.w_x[j * w..(j + 1) * w]);
            for (k, [l0, l1]) in self.blocks.iter().enumerate() {
                da.iter_mut().zip(&sp_h[k]).zip(&dh).for_each(|((a, s), h)| *a = s * h);
                dz.fill(0.0);
                gemm_acc(r, w, w, &da, &l0.w, &mut dz);
                dz.iter_mut().zip(&sp_z[k]).for_each(|(z, s)| *z *= s);
                gemm_acc(r, w, w, &dz, &l1.w, &mut dh);
            }
            // The output's tangent: (silu'(h) * dh) W_out.
            da.iter_mut().zip(&sp_h[depth]).zip(&dh).for_each(|((a, s), h)| *a = s * h);
            tangent.fill(0.0);
            gemm_acc(r, w, d, &da, &self.out.w, &mut tangent);
            each(j, &tangent);
        }
    }

    /// The unconditional prediction into `out`, then what the tangents at `level` share: EDM's
    /// wrapping and the first layer's bias with the embedding folded in.
    fn predict_and_frame(&self, level: NoiseLevel, x: ArrayView2<f64>, out: ArrayViewMut2<f64>) -> (Wrap, Vec<f64>) {
        self.predict(level, x, &[(None, 1.0)], out);
        let mut bias = vec![0.0; self.config.width];
        self.embedding_bias(self.config.conditioning.value(level), None, &mut bias);
        (self.wrap(level), bias)
    }

    /// [`Self::tangents`] at the rows `xc` of one chunk (scaled to the network's input).
    fn chunk_tangents(&self, wrap: &Wrap, bias: &[f64], xc: ArrayView2<f64>, each: &mut dyn FnMut(usize, &[f64])) {
        let u: Vec<f64> = xc.iter().map(|v| v * wrap.input_scale).collect();
        self.tangents(bias, &u, xc.nrows(), each);
    }

    /// The unconditional prediction at `level` for every row of `x` into `out` and the
    /// divergence of that prediction in x (sum_j d out_j / d x_j) into `div`.
    pub fn predict_divergence(
        &self,
        level: NoiseLevel,
        x: ArrayView2<f64>,
        out: ArrayViewMut2<f64>,
        mut div: ArrayViewMut1<f64>,
    ) {
        let (wrap, bias) = self.predict_and_frame(level, x, out);
        let d = self.config.dim;
        let chunks: Vec<_> = x.axis_chunks_iter(Axis(0), CHUNK).zip(div.axis_chunks_iter_mut(Axis(0), CHUNK)).collect();
        chunks.into_par_iter().for_each(|(xc, mut dc)| {
            let mut trace = vec![0.0; xc.nrows()];
            self.chunk_tangents(&wrap, &bias, xc, &mut |j, tangent| {
                for (i, t) in trace.iter_mut().enumerate() {
                    *t += tangent[i * d + j];
                }
            });
            for (o, t) in dc.iter_mut().zip(&trace) {
                *o = d as f64 * wrap.diag + wrap.scale * t;
            }
        });
    }

    /// The unconditional prediction at `level` for every row of `x` into `out` and the
    /// vector-Jacobian product J^T r of that prediction (J = d out / d x per row) into `vjp`.
    pub fn predict_vjp(
        &self,
        level: NoiseLevel,
        x: ArrayView2<f64>,
        r: ArrayView2<f64>,
        out: ArrayViewMut2<f64>,
        mut vjp: ArrayViewMut2<f64>,
    ) {
        let (wrap, bias) = self.predict_and_frame(level, x, out);
        let d = self.config.dim;
        let chunks: Vec<_> = x
            .axis_chunks_iter(Axis(0), CHUNK)
            .zip(r.axis_chunks_iter(Axis(0), CHUNK))
            .zip(vjp.axis_chunks_iter_mut(Axis(0), CHUNK))
            .collect();
        chunks.into_par_iter().for_each(|((xc, rc), mut vc)| {
            let rows = xc.nrows();
            self.chunk_tangents(&wrap, &bias, xc, &mut |j, tangent| {
                for i in 0..rows {
                    let dot: f64 = (0..d).map(|m| rc[[i, m]] * tangent[i * d + m]).sum();
                    vc[[i, j]] = wrap.diag * rc[[i, j]] + wrap.scale * dot;
                }
            });
        });
    }
}
