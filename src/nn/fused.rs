//! The score MLP's forward pass without candle, for sampling on the CPU: preallocated buffers,
//! matrix products through the `gemm` crate, bias and SiLU fused into one pass per layer, rows
//! in parallel.
//!
//! Why it exists: through candle, every operation of every evaluation allocates a fresh N x 64
//! tensor (two dozen per NFE), and at N = 10^4 most of the time went to the allocator and page
//! faults. Here:
//! - **one noise level per call**, so the embedding (c, its Fourier features and the label) is
//!   the same on every row: its part of the first layer is folded into that layer's bias once per
//!   chunk, and the first product is N x d by d x width instead of N x (d + 17) by (d + 17) x width;
//! - **no bias passes**: every bias is added in the SiLU pass that reads the layer's output (the
//!   residual stream is kept without its biases, their running sum added where it is read), so
//!   each layer is one product and one activation pass over the chunk;
//! - **fixed chunks of [`CHUNK`] rows** run as rayon tasks, each on its thread's scratch buffer
//!   (grown once, then reused: no allocation per NFE), split at the same rows whatever the thread
//!   count, so the output is bit-identical for any number of threads;
//! - **SiLU over whole buffers** ([`super::silu`]), vectorised.
//!
//! It computes what [`ScoreMlp::predict`] computes (EDM preconditioning included) with the
//! order of its sums (the products', the biases') as the only difference: the two agree to
//! 1e-12 (tested against candle's forward, for every output and for classifier-free guidance).

use ndarray::{ArrayView2, ArrayViewMut2, Axis};

use super::mlp::{MlpConfig, NetOutput, ScoreMlp};
use super::real::Real;
use super::silu::silu_shifted_into;
use crate::model::NoiseLevel;

/// Rows per task: 256 rows of width 64 keep a task's three activation buffers (384 KiB) within
/// the L2 caches of the CPUs measured.
pub const CHUNK: usize = 256;

/// A dense layer, row-major `inputs x outputs` weights.
pub(super) struct Linear<T> {
    pub(super) w: Vec<T>,
    pub(super) b: Vec<T>,
}

/// The weights of a [`ScoreMlp`] laid out for inference in precision `T` (f64 or f32; the
/// input rows, activations and products in `T`, the EDM and guidance combinations in f64).
pub struct FusedMlp<T: Real = f64> {
    pub(super) config: MlpConfig,
    /// The first layer's rows that multiply x (d x width).
    pub(super) w_x: Vec<T>,
    /// The first layer's rows that multiply the embedding (c, sin, cos, label; E x width).
    pub(super) w_emb: Vec<T>,
    pub(super) b_in: Vec<T>,
    pub(super) blocks: Vec<[Linear<T>; 2]>,
    pub(super) out: Linear<T>,
}

/// What every row of one call shares.
struct Shared<'a> {
    /// The conditioning value c of the noise level.
    c: f64,
    /// EDM preconditioning at this level: (alpha, norm, c_skip, c_out).
    edm: Option<(f64, f64, f64, f64)>,
    /// The output is the sum of `weight * prediction(label)` over these terms.
    terms: &'a [(Option<usize>, f64)],
}

impl<T: Real> FusedMlp<T> {
    /// The weights of `net`, copied off its device (rounded to `T`).
    pub fn new(net: &ScoreMlp) -> candle_core::Result<Self> {
        if net.config().logits > 0 {
            candle_core::bail!("a classifier's network (logits) has no fused score pass");
        }
        let p = |name: &str| -> candle_core::Result<Vec<T>> {
            let v: Vec<f64> =
                net.params()[name].as_tensor().flatten_all()?.to_dtype(candle_core::DType::F64)?.to_vec1()?;
            Ok(v.into_iter().map(T::of).collect())
        };
        let lin = |name: &str| -> candle_core::Result<Linear<T>> {
            Ok(Linear { w: p(&format!("{name}.w"))?, b: p(&format!("{name}.b"))? })
        };
        let config = net.config().clone();
        let (d, w) = (config.dim, config.width);
        let mut w_in = p("in.w")?;
        let w_emb = w_in.split_off(d * w);
        let blocks = (0..config.depth)
            .map(|k| Ok([lin(&format!("block{k}.0"))?, lin(&format!("block{k}.1"))?]))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self { w_x: w_in, w_emb, b_in: p("in.b")?, blocks, out: lin("out")?, config })
    }

    /// The architecture.
    pub fn config(&self) -> &MlpConfig {
        &self.config
    }

    /// The model's prediction at `level` for every row of `x` into `out` (both N x d), as
    /// [`ScoreMlp::predict`]: `terms` lists (label, weight) pairs and the output is
    /// `sum weight * prediction(label)`; an unconditional network takes one term whose label is
    /// ignored, classifier-free guidance two (`(Some(class), 1 + w)`, `(None, -w)`).
    pub fn predict(
        &self,
        level: NoiseLevel,
        x: ArrayView2<f64>,
        terms: &[(Option<usize>, f64)],
        out: ArrayViewMut2<f64>,
    ) {
        assert_eq!(x.dim(), out.dim(), "FusedMlp::predict: x and out differ in shape");
        assert_eq!(x.ncols(), self.config.dim, "FusedMlp::predict: x has the wrong number of columns");
        let edm = (self.config.output == NetOutput::Edm).then(|| {
            let (norm, c_skip, c_out) = self.config.edm_factors(level.alpha, level.sigma);
            (level.alpha, norm, c_skip, c_out)
        });
        let shared = Shared { c: self.config.conditioning.value(level), edm, terms };
        rows_in_parallel(x, out, &|x, out| self.chunk(&shared, x, out));
    }

    /// One chunk of rows on this thread's scratch buffers.
    ///
    /// The residual stream `h` is kept without its biases: `shift` holds what it lacks (the
    /// first layer's bias with the embedding, plus each block's second bias so far) and is added
    /// in the SiLU pass that reads `h`, as each block's first bias is in the pass that reads
    /// `a`; so no pass over the buffers only fills or adds biases, and every product writes its
    /// output (or adds to `h`) directly.
    fn chunk(&self, s: &Shared<'_>, x: ArrayView2<f64>, mut out: ArrayViewMut2<f64>) {
        let (r, d, w) = (x.nrows(), self.config.dim, self.config.width);
        T::with_scratch(|buf| {
            let need = 3 * r * w + 2 * r * d + w;
            if buf.len() < need {
                buf.resize(need, T::default());
            }
            let (h, rest) = buf[..need].split_at_mut(r * w);
            let (a, rest) = rest.split_at_mut(r * w);
            let (act, rest) = rest.split_at_mut(r * w);
            let (xin, rest) = rest.split_at_mut(r * d);
            let (o, shift) = rest.split_at_mut(r * d);
            // The network's input rows: x, or EDM's x / alpha / norm.
            for (dst, row) in xin.chunks_exact_mut(d).zip(x.rows()) {
                for (v, &xi) in dst.iter_mut().zip(row) {
                    *v = T::of(match s.edm {
                        Some((alpha, norm, _, _)) => xi / alpha / norm,
                        None => xi,
                    });
                }
            }
            for (j, &(label, weight)) in s.terms.iter().enumerate() {
                self.embedding_bias(s.c, label, shift);
                gemm_set(r, d, w, xin, &self.w_x, h);
                for [l0, l1] in &self.blocks {
                    silu_shifted_into(h, shift, act);
                    gemm_set(r, w, w, act, &l0.w, a);
                    silu_shifted_into(a, &l0.b, act);
                    gemm_acc(r, w, w, act, &l1.w, h);
                    for (c, &b) in shift.iter_mut().zip(&l1.b) {
                        *c += b;
                    }
                }
                silu_shifted_into(h, shift, act);
                gemm_set(r, w, d, act, &self.out.w, o);
                for ((i, k), dst) in out.indexed_iter_mut() {
                    let f = (o[i * d + k] + self.out.b[k]).wide();
                    let p = match s.edm {
                        Some((alpha, _, c_skip, c_out)) => (x[[i, k]] / alpha) * c_skip + f * c_out,
                        None => f,
                    };
                    *dst = if j == 0 { p * weight } else { *dst + p * weight };
                }
            }
        });
    }

    /// The first layer's bias plus the embedding's contribution (c, its Fourier features and
    /// the one-hot label) into `bias` (width entries).
    pub(super) fn embedding_bias(&self, c: f64, label: Option<usize>, bias: &mut [T]) {
        let (w, f) = (self.config.width, self.config.frequencies);
        bias.copy_from_slice(&self.b_in);
        let mut add = |row: usize, v: f64| {
            let v = T::of(v);
            for (b, &wi) in bias.iter_mut().zip(&self.w_emb[row * w..(row + 1) * w]) {
                *b += v * wi;
            }
        };
        add(0, c);
        for k in 0..f {
            let angle = c * MlpConfig::frequency(k);
            add(1 + k, angle.sin());
            add(1 + f + k, angle.cos());
        }
        if self.config.classes > 0 {
            add(1 + 2 * f + label.unwrap_or(self.config.classes), 1.0);
        }
    }
}

/// Runs `f` on chunks of [`CHUNK`] rows of `x` and `out`, in parallel; the chunks start at
/// multiples of `CHUNK` whatever the number of threads.
fn rows_in_parallel<F>(x: ArrayView2<f64>, out: ArrayViewMut2<f64>, f: &F)
where
    F: Fn(ArrayView2<f64>, ArrayViewMut2<f64>) + Sync,
{
    let n = x.nrows();
    if n <= CHUNK {
        return f(x, out);
    }
    let mid = n.div_ceil(CHUNK) / 2 * CHUNK;
    let (x0, x1) = x.split_at(Axis(0), mid);
    let (o0, o1) = out.split_at(Axis(0), mid);
    rayon::join(|| rows_in_parallel(x0, o0, f), || rows_in_parallel(x1, o1, f));
}

/// Every row of `m` (row-major, rows of `row.len()`) set to `row`.
pub(super) fn fill_rows<T: Real>(m: &mut [T], row: &[T]) {
    for dst in m.chunks_exact_mut(row.len()) {
        dst.copy_from_slice(row);
    }
}

/// `row` added to every row of `m`.
pub(super) fn add_rows<T: Real>(m: &mut [T], row: &[T]) {
    for dst in m.chunks_exact_mut(row.len()) {
        for (v, &b) in dst.iter_mut().zip(row) {
            *v += b;
        }
    }
}

/// `dst += lhs rhs` for row-major `lhs` (m x k), `rhs` (k x n) and `dst` (m x n).
pub(super) fn gemm_acc<T: Real>(m: usize, k: usize, n: usize, lhs: &[T], rhs: &[T], dst: &mut [T]) {
    gemm_acc_t(m, k, n, (lhs, false), (rhs, false), dst);
}

/// `dst = lhs rhs` for row-major `lhs` (m x k), `rhs` (k x n) and `dst` (m x n; its values
/// are not read).
pub(super) fn gemm_set<T: Real>(m: usize, k: usize, n: usize, lhs: &[T], rhs: &[T], dst: &mut [T]) {
    product(m, k, n, (lhs, false), (rhs, false), dst, false);
}

/// `dst += op(lhs) op(rhs)` for `dst` m x n row-major, where `op(lhs)` is m x k and `op(rhs)`
/// k x n: a `false` flag reads the slice as that matrix row-major, `true` as its transpose
/// (the slice holds the k x m, or n x k, matrix row-major).
pub(super) fn gemm_acc_t<T: Real>(m: usize, k: usize, n: usize, lhs: (&[T], bool), rhs: (&[T], bool), dst: &mut [T]) {
    product(m, k, n, lhs, rhs, dst, true);
}

/// `dst = op(lhs) op(rhs)`, plus `dst`'s values if `read_dst`; see [`gemm_acc_t`].
fn product<T: Real>(m: usize, k: usize, n: usize, lhs: (&[T], bool), rhs: (&[T], bool), dst: &mut [T], read_dst: bool) {
    let ((lhs, lt), (rhs, rt)) = (lhs, rhs);
    assert!(lhs.len() == m * k && rhs.len() == k * n && dst.len() == m * n, "gemm_acc: shapes");
    // (row stride, column stride) of op(lhs) and op(rhs) in their slices.
    let (lrs, lcs) = if lt { (1, m) } else { (k, 1) };
    let (rrs, rcs) = if rt { (1, k) } else { (n, 1) };
    // SAFETY: with these strides every element (i, j) of op(lhs) (i < m, j < k) is at
    // i lrs + j lcs < m k = lhs.len(), likewise for op(rhs) and dst (row stride n, unit column
    // stride; checked above); `dst` is borrowed mutably, so it aliases neither input. gemm
    // computes dst = 1 * dst + 1 * op(lhs) op(rhs), or op(lhs) op(rhs) without `read_dst`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            read_dst,
            lhs.as_ptr(),
            lcs as isize,
            lrs as isize,
            rhs.as_ptr(),
            rcs as isize,
            rrs as isize,
            T::of(1.0),
            T::of(1.0),
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}
