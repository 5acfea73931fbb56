//! The divergence of the network's output (the trace of its Jacobian in x) by forward-mode
//! differentiation of the fused MLP: for each input direction e_j the tangent is pushed through
//! the layers (dh = W_x e_j; a residual block's tangent dh + (silu'(z) * ((silu'(h) * dh) W0)) W1;
//! the output's (silu'(h) * dh) W_out), and its j-th output component is d out_j / d x_j. The
//! cost is d + 1 forward passes; exact to round-off, so `nll --model` can use the exact
//! divergence for small d (Hutchinson's estimator otherwise).

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

impl FusedMlp<f64> {
    /// The unconditional prediction at `level` for every row of `x` into `out` and the
    /// divergence of that prediction in x (sum_j d out_j / d x_j) into `div`.
    pub fn predict_divergence(
        &self,
        level: NoiseLevel,
        x: ArrayView2<f64>,
        out: ArrayViewMut2<f64>,
        mut div: ArrayViewMut1<f64>,
    ) {
        self.predict(level, x, &[(None, 1.0)], out);
        let (d, w) = (self.config.dim, self.config.width);
        // EDM: out = c_skip x / alpha + c_out F(u), u = x / (alpha norm), so
        // div out = d c_skip / alpha + (c_out / (alpha norm)) div_u F.
        let (offset, scale, input_scale) = match self.config.output {
            NetOutput::Edm => {
                let (norm, c_skip, c_out) = self.config.edm_factors(level.alpha, level.sigma);
                let input_scale = 1.0 / (level.alpha * norm);
                (d as f64 * c_skip / level.alpha, c_out * input_scale, input_scale)
            }
            _ => (0.0, 1.0, 1.0),
        };
        let c = self.config.conditioning.value(level);
        let mut bias = vec![0.0; w];
        self.embedding_bias(c, None, &mut bias);
        let chunks: Vec<_> = x.axis_chunks_iter(Axis(0), CHUNK).zip(div.axis_chunks_iter_mut(Axis(0), CHUNK)).collect();
        chunks.into_par_iter().for_each(|(xc, mut dc)| {
            let r = xc.nrows();
            let depth = self.blocks.len();
            // Forward, keeping h before each block and the inner pre-activation z of each.
            let u: Vec<f64> = xc.iter().map(|v| v * input_scale).collect();
            let mut hs = vec![vec![0.0; r * w]; depth + 1];
            let mut zs = vec![vec![0.0; r * w]; depth];
            let mut act = vec![0.0; r * w];
            fill_rows(&mut hs[0], &bias);
            gemm_acc(r, d, w, &u, &self.w_x, &mut hs[0]);
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
            let mut trace = vec![0.0; r];
            for j in 0..d {
                fill_rows(&mut dh, &self.w_x[j * w..(j + 1) * w]);
                for (k, [l0, l1]) in self.blocks.iter().enumerate() {
                    da.iter_mut().zip(&sp_h[k]).zip(&dh).for_each(|((a, s), h)| *a = s * h);
                    dz.fill(0.0);
                    gemm_acc(r, w, w, &da, &l0.w, &mut dz);
                    dz.iter_mut().zip(&sp_z[k]).for_each(|(z, s)| *z *= s);
                    gemm_acc(r, w, w, &dz, &l1.w, &mut dh);
                }
                // Output component j: (silu'(h) * dh) . W_out[:, j].
                for (i, t) in trace.iter_mut().enumerate() {
                    let row = i * w;
                    *t += (0..w).map(|m| sp_h[depth][row + m] * dh[row + m] * self.out.w[m * d + j]).sum::<f64>();
                }
            }
            for (o, t) in dc.iter_mut().zip(&trace) {
                *o = offset + scale * t;
            }
        });
    }
}
