//! The blocked mixture kernel behind `score`, `eps`, `x0`, `log_prob`, `score_divergence` and
//! `most_responsible`.
//!
//! Why this module exists: these functions are the whole cost of sampling with an exact score,
//! and a row-by-row loop with libm's `exp` leaves most of the CPU's vector units idle. Here rows
//! are taken in blocks of `block` rows and every pass runs over contiguous slices of one block:
//!
//! ```text
//! xs  d x B   coordinate i of row b at xs[i B + b]          (the block, transposed)
//! lt  K x B   log-terms ln w_k - ln det C_k / 2 - |x - alpha mu_k|^2_{C_k^{-1}} / 2,
//!             then e_k = exp(lt_k - max_j lt_j) (fastexp); r_k = e_k / sum_j e_j
//! acc d x B   sum_k r_k g_k (the output rows, transposed)
//! y   K x d x B   full covariances only: g_k = C_k^{-1} (x - alpha mu_k)
//! ```
//!
//! Diagonal and isotropic components use `z = x - alpha mu_k` directly: the quadratic form is
//! accumulated as `z * (z / c)` and `g = z / c` is recomputed in the mixing pass (the expanded
//! form `|x|^2_P - 2 x.(P mu) + |mu|^2_P` saves one operation per term but cancels near the
//! means, where the tests require the score to a few ulps). Full covariances use the precision
//! matrices of the call: `g_k = C_k^{-1} z_k` is one matrix-vector product, the quadratic form is
//! `z_k . g_k`, and `g_k` is kept for the mixing pass (the posterior mean needs a second product
//! with `alpha S_k C_k^{-1}`). Every pass works on groups of G rows held in registers.
//!
//! # Determinism
//!
//! Each row goes through the same sequence of floating-point operations whatever block or
//! chunk it falls in, however many rows the block has, and whichever thread runs it (rows never
//! interact; vectorising over rows does not reorder any row's arithmetic), so results are
//! bit-identical for any thread count, chunk size and block size. Within one process the kernel
//! flavour is fixed (see below), so the guarantee holds on one machine; two machines with and
//! without FMA differ in the last bits.
//!
//! # CPU features
//!
//! The kernel has three copies, one chosen once per process ([`crate::fastexp::simd_path`]):
//! on x86-64 CPUs with AVX-512 (F and DQ), a copy compiled for it (8 lanes); with AVX2 and FMA,
//! one compiled for those (4 lanes); both evaluate `a * b + c` with one rounding and give the same
//! bits. Elsewhere the portable copy (SSE2 on x86-64) uses a separate multiply and add.
//! `SCORESDE_KERNEL=portable|avx2+fma|avx512` forces a copy and `SCORESDE_PORTABLE_KERNEL` (any
//! value) the portable one, for comparisons.

use std::cell::RefCell;

use ndarray::{ArrayView2, ArrayViewMut1, ArrayViewMut2, Axis};
use rayon::prelude::*;

use super::rowmap::{non_finite, RowMap};
use super::{Frame, GaussianMixture};
use crate::fastexp::{exp_with, MulAdd, Separate, SimdPath};

/// Rows per parallel work item. The split never depends on the thread count, and results do not
/// depend on it at all.
pub(super) const CHUNK_ROWS: usize = 512;

/// Upper bound of the rows per block.
const MAX_BLOCK: usize = 256;

/// Rows per register group: the diagonal passes keep G rows' accumulators in registers (two
/// AVX2 vectors) and every block is padded to a multiple of G.
const G: usize = 16;

/// What the kernel computes per row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Task {
    /// `scale * sum_k r_k C_k^{-1} (x - alpha mu_k)` (score: `scale = -1`; eps: `scale = sigma`).
    Precision {
        /// Factor applied to the mixed vector.
        scale: f64,
    },
    /// `a x + b (scale sum_k r_k C_k^{-1} (x - alpha mu_k))`: the affine maps of `eps` that the
    /// probability flow and the reverse SDE's drift apply, fused into the output pass.
    Affine {
        /// Factor of the mixed vector (`sigma`: eps).
        scale: f64,
        /// Factor of `x`.
        a: f64,
        /// Factor of `scale * sum_k r_k g_k`.
        b: f64,
    },
    /// The Euler update `x + h (a x + b (scale sum_k r_k g_k))` written over `x` (the rows of
    /// [`Sink::Update`]): evaluated as the unfused `eps`, affine map and `x += h f` would.
    AffineUpdate {
        /// Factor of the mixed vector (`sigma`: eps).
        scale: f64,
        /// Factor of `x`.
        a: f64,
        /// Factor of `scale * sum_k r_k g_k`.
        b: f64,
        /// Step size.
        h: f64,
    },
    /// `sum_k r_k (mu_k + alpha S_k C_k^{-1} (x - alpha mu_k))` (posterior mean of `x_0`).
    Posterior,
    /// `ln sum_k exp(log-term_k) - shift`.
    LogSumExp {
        /// Constant subtracted (the `d/2 ln 2 pi` of the density).
        shift: f64,
    },
    /// The score and its divergence `sum_k r_k (|g_k - gbar|^2 - tr C_k^{-1})`.
    Divergence,
    /// `argmax_k r_k` (first index on ties).
    Argmax,
}

/// Where the results of [`Task`] go, one entry per row of `x`.
pub(super) enum Sink<'a> {
    /// N x d (`Precision`, `Affine`, `Posterior`).
    Rows(ArrayViewMut2<'a, f64>),
    /// N x d, both the input rows and the output (`AffineUpdate`): each block is read before
    /// it is written.
    Update(ArrayViewMut2<'a, f64>),
    /// N (`LogSumExp`).
    Values(ArrayViewMut1<'a, f64>),
    /// N x d and N (`Divergence`).
    RowsValues(ArrayViewMut2<'a, f64>, ArrayViewMut1<'a, f64>),
    /// N (`Argmax`).
    Indices(&'a mut [usize]),
}

/// How rows are grouped: `chunk` rows per parallel work item, `block` rows per pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Layout {
    /// Rows per parallel work item.
    pub chunk: usize,
    /// Rows per block (at most `chunk`).
    pub block: usize,
}

impl Layout {
    /// Chunks of [`CHUNK_ROWS`]; blocks of up to 256 rows whose scratch fits in about 24 KiB (an
    /// L1 data cache), at least 16 rows.
    pub fn for_mixture(gm: &GaussianMixture) -> Self {
        let (k, d) = (gm.n_components(), gm.dim());
        let per_row = scratch_per_row(k, d, gm.full);
        let block = (24 * 1024 / 8 / per_row).clamp(16, MAX_BLOCK) / 8 * 8;
        Layout { chunk: CHUNK_ROWS, block }
    }
}

/// Doubles of scratch per block row.
fn scratch_per_row(k: usize, d: usize, full: bool) -> usize {
    // xs, acc, z: 3 d; lt: K; m, s, div: 3; y (full): K d.
    3 * d + k + 3 + if full { k * d } else { 0 }
}

/// Runs `task` over every row of `x` into `sink`, in chunks of `layout.chunk` rows (in parallel
/// when there is more than one) and blocks of `layout.block` rows.
pub(super) fn run(gm: &GaussianMixture, fr: &Frame, task: Task, x: ArrayView2<f64>, sink: Sink, layout: Layout) {
    run_on(gm, fr, task, Some(x), sink, layout, crate::fastexp::simd_path());
}

/// [`run`] for tasks whose input rows are the sink's own ([`Sink::Update`]); returns whether
/// every value written is finite.
pub(super) fn run_in_place(gm: &GaussianMixture, fr: &Frame, task: Task, sink: Sink, layout: Layout) -> bool {
    run_on(gm, fr, task, None, sink, layout, crate::fastexp::simd_path())
}

/// [`run`] on the copy `path` (which the caller has checked the CPU runs);
/// `x: None` reads the rows of the sink ([`Sink::Update`]). Returns whether every row written
/// (N x d sinks) is finite, checked as it is stored.
pub(super) fn run_on(
    gm: &GaussianMixture,
    fr: &Frame,
    task: Task,
    x: Option<ArrayView2<f64>>,
    sink: Sink,
    layout: Layout,
    path: SimdPath,
) -> bool {
    assert!(path.supported(), "the {} copy of the kernel needs CPU features this CPU lacks", path.name());
    let chunk_rows = layout.chunk.max(1);
    let layout = Layout { chunk: chunk_rows, block: layout.block.clamp(1, chunk_rows).next_multiple_of(G) };
    let sinks = sink.split(layout.chunk);
    let jobs: Vec<(Option<ArrayView2<f64>>, Sink)> = match &x {
        Some(x) => x.axis_chunks_iter(Axis(0), layout.chunk).map(Some).zip(sinks).collect(),
        None => sinks.into_iter().map(|sc| (None, sc)).collect(),
    };
    let work = |(xc, sc): (Option<ArrayView2<f64>>, Sink)| chunk(gm, fr, task, layout.block, xc, sc, path);
    // Every chunk runs (no short-circuit): the flags are and-ed after the work.
    if jobs.len() <= 1 {
        jobs.into_iter().map(work).fold(true, |a, b| a & b)
    } else {
        jobs.into_par_iter().map(work).reduce(|| true, |a, b| a & b)
    }
}

/// Which copy of the kernel runs: `"avx512"`, `"avx2+fma"` or `"portable"`.
pub(super) fn path() -> &'static str {
    crate::fastexp::vector_path()
}

fn chunk(
    gm: &GaussianMixture,
    fr: &Frame,
    task: Task,
    block: usize,
    x: Option<ArrayView2<f64>>,
    sink: Sink,
    path: SimdPath,
) -> bool {
    let need = scratch_per_row(gm.n_components(), gm.dim(), gm.full) * block;
    SCRATCH.with_borrow_mut(|buf| {
        if buf.len() < need {
            buf.resize(need, 0.0);
        }
        let buf = &mut buf[..need];
        match path {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `chunk_avx512` requires AVX-512F/DQ, AVX2 and FMA; `run_on` checked that
            // the CPU supports the copy (`SimdPath::supported`).
            SimdPath::Avx512 => unsafe { chunk_avx512(gm, fr, task, block, x, sink, buf) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `chunk_avx2_fma` requires AVX2 and FMA, checked as above.
            SimdPath::Avx2Fma => unsafe { chunk_avx2_fma(gm, fr, task, block, x, sink, buf) },
            _ => chunk_with::<Separate, false>(gm, fr, task, block, x, sink, buf),
        }
    })
}

/// The kernel compiled with AVX2 and FMA enabled, using fused multiply-adds. (Everything it
/// calls is `#[inline(always)]` and free of closures, so that all of it is compiled with these
/// features; a closure or an outlined call would be compiled for the baseline CPU and turn each
/// `mul_add` into a library call.)
///
/// # Safety
///
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn chunk_avx2_fma(
    gm: &GaussianMixture,
    fr: &Frame,
    task: Task,
    block: usize,
    x: Option<ArrayView2<f64>>,
    sink: Sink,
    buf: &mut [f64],
) -> bool {
    chunk_with::<crate::fastexp::Fused, true>(gm, fr, task, block, x, sink, buf)
}

/// The kernel compiled with AVX-512 enabled (8 lanes; the same operations as the AVX2 copy,
/// hence the same bits).
///
/// # Safety
///
/// The CPU must support AVX-512F, AVX-512DQ, AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx2,fma")]
unsafe fn chunk_avx512(
    gm: &GaussianMixture,
    fr: &Frame,
    task: Task,
    block: usize,
    x: Option<ArrayView2<f64>>,
    sink: Sink,
    buf: &mut [f64],
) -> bool {
    chunk_with::<crate::fastexp::Fused, true>(gm, fr, task, block, x, sink, buf)
}

impl<'a> Sink<'a> {
    /// Splits into consecutive pieces of `rows` rows (at least one piece).
    fn split(self, rows: usize) -> Vec<Sink<'a>> {
        match self {
            Sink::Rows(m) => split_rows(m, rows).into_iter().map(Sink::Rows).collect(),
            Sink::Update(m) => split_rows(m, rows).into_iter().map(Sink::Update).collect(),
            Sink::Values(v) => split_values(v, rows).into_iter().map(Sink::Values).collect(),
            Sink::RowsValues(m, v) => split_rows(m, rows)
                .into_iter()
                .zip(split_values(v, rows))
                .map(|(m, v)| Sink::RowsValues(m, v))
                .collect(),
            Sink::Indices(s) => {
                if s.is_empty() {
                    vec![Sink::Indices(s)]
                } else {
                    s.chunks_mut(rows).map(Sink::Indices).collect()
                }
            }
        }
    }
}

fn split_rows(mut m: ArrayViewMut2<f64>, rows: usize) -> Vec<ArrayViewMut2<f64>> {
    let mut out = Vec::with_capacity(m.nrows() / rows + 1);
    while m.nrows() > rows {
        let (head, tail) = m.split_at(Axis(0), rows);
        out.push(head);
        m = tail;
    }
    out.push(m);
    out
}

fn split_values(mut v: ArrayViewMut1<f64>, rows: usize) -> Vec<ArrayViewMut1<f64>> {
    let mut out = Vec::with_capacity(v.len() / rows + 1);
    while v.len() > rows {
        let (head, tail) = v.split_at(Axis(0), rows);
        out.push(head);
        v = tail;
    }
    out.push(v);
    out
}

thread_local! {
    /// Per-thread scratch, grown when a call needs more and reused by every later call (rayon's
    /// worker threads live as long as the pool), so the step loop does not allocate it.
    static SCRATCH: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
}

/// One block's work buffers, carved out of the thread's scratch (layouts in the module docs).
struct Scratch<'s> {
    xs: &'s mut [f64],
    lt: &'s mut [f64],
    acc: &'s mut [f64],
    z: &'s mut [f64],
    y: &'s mut [f64],
    m: &'s mut [f64],
    s: &'s mut [f64],
    div: &'s mut [f64],
}

impl<'s> Scratch<'s> {
    fn carve(buf: &'s mut [f64], k: usize, d: usize, b: usize, full: bool) -> Self {
        let (xs, rest) = buf.split_at_mut(d * b);
        let (lt, rest) = rest.split_at_mut(k * b);
        let (acc, rest) = rest.split_at_mut(d * b);
        let (z, rest) = rest.split_at_mut(d * b);
        let (y, rest) = rest.split_at_mut(if full { k * d * b } else { 0 });
        let (m, rest) = rest.split_at_mut(b);
        let (s, rest) = rest.split_at_mut(b);
        let (div, _) = rest.split_at_mut(b);
        Scratch { xs, lt, acc, z, y, m, s, div }
    }
}

/// The per-call constants the passes read, as flat slices.
struct Coeffs<'c> {
    k: usize,
    d: usize,
    /// Diagonal components whose `c_ki` do not depend on i (isotropic, or diagonal with equal
    /// entries, as the ring's): the quadratic form is `|z|^2 / c_k`, one multiply-add per term.
    iso: bool,
    /// `alpha mu_k`, K x d.
    amu: &'c [f64],
    /// Diagonal: `alpha mu` and `1 / c` transposed, d x K.
    amu_t: &'c [f64],
    ic_t: &'c [f64],
    /// `1 / c_ki`, K x d.
    ic: &'c [f64],
    /// `alpha l_ki / c_ki`, K x d.
    gain: &'c [f64],
    /// `mu_k`, K x d.
    mu: &'c [f64],
    /// `ln w_k - ln det C_k / 2`, K.
    base: &'c [f64],
    /// `tr C_k^{-1}`, K.
    trace: &'c [f64],
    /// Full only: `C_k^{-1}` and `alpha S_k C_k^{-1}`, K x d x d row-major.
    prec: &'c [f64],
    post: &'c [f64],
}

#[inline(always)]
fn chunk_with<M: MulAdd, const TILES: bool>(
    gm: &GaussianMixture,
    fr: &Frame,
    task: Task,
    block: usize,
    x: Option<ArrayView2<f64>>,
    sink: Sink,
    buf: &mut [f64],
) -> bool {
    let (k, d, full) = (gm.n_components(), gm.dim(), gm.full);
    let iso = !full && fr.inv_c.chunks_exact(d).all(|ic| ic.iter().all(|&v| v == ic[0]));
    let c = Coeffs {
        k,
        d,
        iso,
        amu: &fr.amu,
        amu_t: &fr.amu_t,
        ic_t: &fr.inv_c_t,
        ic: &fr.inv_c,
        gain: &fr.gain,
        mu: gm.means.as_slice().expect("means are stored in standard layout"),
        base: &fr.base,
        trace: &fr.trace,
        prec: &fr.prec,
        post: &fr.post,
    };
    let mut sink = sink;
    let mut s = Scratch::carve(buf, k, d, block, full);
    let n = match (&x, &sink) {
        (Some(x), _) => x.nrows(),
        (None, Sink::Update(m)) => m.nrows(),
        (None, _) => unreachable!("only Sink::Update carries its own input rows"),
    };
    let mut start = 0;
    let mut finite = true;
    while start < n {
        let nb = block.min(n - start);
        // Rows nb..np of the block are zeros, computed and never stored, so that every pass
        // runs over whole groups of G rows.
        let np = nb.next_multiple_of(G);
        match (&x, &sink) {
            (Some(x), _) => load::<TILES>(x.view(), start, nb, np, block, s.xs),
            (None, Sink::Update(m)) => load::<TILES>(m.view(), start, nb, np, block, s.xs),
            (None, _) => unreachable!("only Sink::Update carries its own input rows"),
        }
        if full {
            log_terms_full::<M>(&c, np, block, &mut s);
        } else {
            log_terms_diag::<M>(&c, np, block, &mut s);
        }
        match task {
            Task::Argmax => {}
            Task::LogSumExp { .. } => softmax::<M>(k, np, block, &mut s, false),
            Task::Precision { .. }
            | Task::Affine { .. }
            | Task::AffineUpdate { .. }
            | Task::Posterior
            | Task::Divergence => {
                softmax::<M>(k, np, block, &mut s, true);
                let posterior = task == Task::Posterior;
                if full {
                    mix_full::<M>(&c, np, block, &mut s, posterior);
                } else {
                    mix_diag::<M>(&c, np, block, &mut s, posterior);
                }
                if task == Task::Divergence {
                    if full {
                        divergence_full::<M>(&c, np, block, &mut s);
                    } else {
                        divergence_diag::<M>(&c, np, block, &mut s);
                    }
                }
            }
        }
        finite &= store::<TILES>(task, &c, &mut s, start, nb, block, &mut sink);
        start += nb;
    }
    finite
}

/// `xs[i B + b] = x[start + b, i]` for `b < nb`, zero for `nb <= b < np`; with `TILES` (the
/// AVX2 copy only) by 4 x 4 tiles when `x` is contiguous.
#[inline(always)]
fn load<const TILES: bool>(x: ArrayView2<f64>, start: usize, nb: usize, np: usize, bs: usize, xs: &mut [f64]) {
    let d = x.ncols();
    for i in 0..d {
        xs[i * bs + nb..i * bs + np].fill(0.0);
    }
    #[cfg(target_arch = "x86_64")]
    if let (true, Some(flat)) = (TILES, x.as_slice()) {
        // SAFETY: TILES is true only in the AVX2 and AVX-512 copies, whose callers checked that
        // the CPU has AVX2.
        unsafe { super::tiles::load(&flat[start * d..(start + nb) * d], d, bs, xs) };
        return;
    }
    if let Some(flat) = x.as_slice() {
        for (b, row) in flat[start * d..(start + nb) * d].chunks_exact(d).enumerate() {
            for (i, &v) in row.iter().enumerate() {
                xs[i * bs + b] = v;
            }
        }
    } else {
        for b in 0..nb {
            for i in 0..d {
                xs[i * bs + b] = x[[start + b, i]];
            }
        }
    }
}

/// `acc[i B + b] <- map(xs[i B + b], acc[i B + b])` over the block's padded rows, vectorised
/// over the G rows of each group; returns whether every value of the block's `nb` real rows is
/// finite (a branch-free test of the exponent bits as each value is made, so that a sampler
/// need not scan its state again).
#[inline(always)]
fn map_rows(map: RowMap, d: usize, nb: usize, np: usize, bs: usize, s: &mut Scratch) -> bool {
    let mut finite = true;
    for g in (0..np).step_by(G) {
        let mut bad = [0u64; G];
        for i in 0..d {
            let xv = *lanes(s.xs, i * bs + g);
            let acc = lanes_mut(s.acc, i * bs + g);
            for l in 0..G {
                let v = map.apply(xv[l], acc[l]);
                acc[l] = v;
                bad[l] |= non_finite(v);
            }
        }
        // Padded rows (at or past nb) are never stored, so they do not count.
        finite &= bad[..G.min(nb - g)].iter().all(|&b| b == 0);
    }
    finite
}

/// `out[start + b, i] = map(xs[i B + b], acc[i B + b])` for the block's `nb` rows; returns
/// whether every value written is finite. With `TILES` (the AVX2 copy only) and contiguous rows,
/// by 4 x 4 tiles (gmm/tiles.rs); otherwise mapped in place by [`map_rows`], then transposed
/// one value at a time.
#[inline(always)]
fn store_rows<const TILES: bool>(
    out: &mut ArrayViewMut2<f64>,
    s: &mut Scratch,
    map: RowMap,
    start: usize,
    nb: usize,
    bs: usize,
) -> bool {
    let d = out.ncols();
    #[cfg(target_arch = "x86_64")]
    if let (true, Some(flat)) = (TILES, out.as_slice_mut()) {
        // SAFETY: as in `load`.
        return unsafe { super::tiles::store(&mut flat[start * d..(start + nb) * d], d, bs, s.xs, s.acc, map) };
    }
    let finite = map_rows(map, d, nb, nb.next_multiple_of(G), bs, s);
    if let Some(flat) = out.as_slice_mut() {
        for (b, row) in flat[start * d..(start + nb) * d].chunks_exact_mut(d).enumerate() {
            for (i, o) in row.iter_mut().enumerate() {
                *o = s.acc[i * bs + b];
            }
        }
    } else {
        for b in 0..nb {
            for i in 0..d {
                out[[start + b, i]] = s.acc[i * bs + b];
            }
        }
    }
    finite
}

/// Writes the block's results; returns whether the N x d rows written are finite (true for the
/// other sinks).
#[inline(always)]
fn store<const TILES: bool>(
    task: Task,
    c: &Coeffs,
    s: &mut Scratch,
    start: usize,
    nb: usize,
    bs: usize,
    sink: &mut Sink,
) -> bool {
    match (task, sink) {
        (Task::Precision { scale }, Sink::Rows(out)) => {
            store_rows::<TILES>(out, s, RowMap::Scaled(scale), start, nb, bs)
        }
        (Task::Affine { scale, a, b }, Sink::Rows(out)) => {
            store_rows::<TILES>(out, s, RowMap::Affine(scale, a, b), start, nb, bs)
        }
        (Task::AffineUpdate { scale, a, b, h }, Sink::Update(out)) => {
            store_rows::<TILES>(out, s, RowMap::Update(scale, a, b, h), start, nb, bs)
        }
        (Task::Posterior, Sink::Rows(out)) => store_rows::<TILES>(out, s, RowMap::Scaled(1.0), start, nb, bs),
        (Task::LogSumExp { shift }, Sink::Values(out)) => {
            for b in 0..nb {
                out[start + b] = s.m[b] + s.s[b].ln() - shift;
            }
            true
        }
        (Task::Divergence, Sink::RowsValues(out, div)) => {
            let finite = store_rows::<TILES>(out, s, RowMap::Scaled(-1.0), start, nb, bs);
            for b in 0..nb {
                div[start + b] = s.div[b];
            }
            finite
        }
        (Task::Argmax, Sink::Indices(out)) => {
            for (b, o) in out[start..start + nb].iter_mut().enumerate() {
                let mut best = 0;
                for kk in 1..c.k {
                    if s.lt[kk * bs + b] > s.lt[best * bs + b] {
                        best = kk;
                    }
                }
                *o = best;
            }
            true
        }
        _ => unreachable!("task and sink are paired by the callers in gmm/mod.rs"),
    }
}

/// Diagonal components: `lt[k] = base_k - 0.5 sum_i z_i (z_i / c_ki)`, `z = x - alpha mu_k`, and
/// `m = max_k lt[k]`, for groups of [`G`] rows held in registers.
#[inline(always)]
fn log_terms_diag<M: MulAdd>(c: &Coeffs, np: usize, bs: usize, s: &mut Scratch) {
    let d = c.d;
    for g in (0..np).step_by(G) {
        let mut mx = [f64::NEG_INFINITY; G];
        for k in 0..c.k {
            let mut q = [0.0; G];
            // -1/2 for the general form, -1/(2 c_k) when the precision is a multiple of I.
            let mut half = -0.5;
            // (Iterators over the block's columns and the component's coefficients, rather than
            // indices: no bounds checks in the innermost loops.)
            let (amu, ic) = (&c.amu[k * d..(k + 1) * d], &c.ic[k * d..(k + 1) * d]);
            let columns = s.xs.chunks_exact(bs);
            if c.iso {
                half *= ic[0];
                for (&a, col) in amu.iter().zip(columns) {
                    let xv = lanes(col, g);
                    for l in 0..G {
                        let z = xv[l] - a;
                        q[l] = M::mul_add(z, z, q[l]);
                    }
                }
            } else {
                for ((&a, &ic), col) in amu.iter().zip(ic).zip(columns) {
                    let xv = lanes(col, g);
                    for l in 0..G {
                        let z = xv[l] - a;
                        q[l] = M::mul_add(z, z * ic, q[l]);
                    }
                }
            }
            let base = c.base[k];
            let lk = lanes_mut(s.lt, k * bs + g);
            for l in 0..G {
                let v = M::mul_add(half, q[l], base);
                lk[l] = v;
                mx[l] = if v > mx[l] { v } else { mx[l] };
            }
        }
        *lanes_mut(s.m, g) = mx;
    }
}

/// Full components: `g_k = C_k^{-1} z_k` with `z_k = x - alpha mu_k` (kept for the mixing and
/// divergence passes, K x d x B in `y`), `lt[k] = base_k - 0.5 z_k . g_k` and `m = max_k lt[k]`.
/// One d x d matrix-vector product per component and row, G rows at a time in registers.
#[inline(always)]
fn log_terms_full<M: MulAdd>(c: &Coeffs, np: usize, bs: usize, s: &mut Scratch) {
    let d = c.d;
    for g in (0..np).step_by(G) {
        let mut mx = [f64::NEG_INFINITY; G];
        for k in 0..c.k {
            component_offsets::<M>(c, k, g, bs, s);
            let mut q = [0.0; G];
            let pk = &c.prec[k * d * d..(k + 1) * d * d];
            for (i, prow) in pk.chunks_exact(d).enumerate() {
                let gi = mat_row::<M>(prow, s.z, g, bs);
                let zi = lanes(s.z, i * bs + g);
                for l in 0..G {
                    q[l] = M::mul_add(zi[l], gi[l], q[l]);
                }
                *lanes_mut(s.y, (k * d + i) * bs + g) = gi;
            }
            let base = c.base[k];
            let lk = lanes_mut(s.lt, k * bs + g);
            for l in 0..G {
                let v = M::mul_add(-0.5, q[l], base);
                lk[l] = v;
                mx[l] = if v > mx[l] { v } else { mx[l] };
            }
        }
        *lanes_mut(s.m, g) = mx;
    }
}

/// `z = x - alpha mu_k` for the G rows at `g`, into `s.z` (d x B).
#[inline(always)]
fn component_offsets<M: MulAdd>(c: &Coeffs, k: usize, g: usize, bs: usize, s: &mut Scratch) {
    for (i, &a) in c.amu[k * c.d..(k + 1) * c.d].iter().enumerate() {
        let xv = *lanes(s.xs, i * bs + g);
        let zv = lanes_mut(s.z, i * bs + g);
        for l in 0..G {
            zv[l] = xv[l] - a;
        }
    }
}

/// `sum_j row_j v_j` for the G rows at `g` of `v` (d x B).
#[inline(always)]
fn mat_row<M: MulAdd>(row: &[f64], v: &[f64], g: usize, bs: usize) -> [f64; G] {
    let mut acc = [0.0; G];
    for (j, &a) in row.iter().enumerate() {
        let vj = lanes(v, j * bs + g);
        for l in 0..G {
            acc[l] = M::mul_add(a, vj[l], acc[l]);
        }
    }
    acc
}

/// Log-sum-exp over components per row, given `m = max_k lt_k`: `lt_k <- e_k = exp(lt_k - m)`
/// and `s = sum_k e_k`, or with `normalise` `s = 1 / sum_k e_k` (the responsibilities are
/// `r_k = e_k s`; the mixing passes apply `s` once to their sums instead of to every `e_k`).
#[inline(always)]
fn softmax<M: MulAdd>(k: usize, np: usize, bs: usize, s: &mut Scratch, normalise: bool) {
    for g in (0..np).step_by(G) {
        let mv = *lanes(s.m, g);
        let mut sum = [0.0; G];
        for kk in 0..k {
            let lk = lanes_mut(s.lt, kk * bs + g);
            for l in 0..G {
                let e = exp_with::<M>(lk[l] - mv[l]);
                lk[l] = e;
                sum[l] += e;
            }
        }
        if normalise {
            for v in sum.iter_mut() {
                *v = 1.0 / *v;
            }
        }
        *lanes_mut(s.s, g) = sum;
    }
}

/// Diagonal components: `acc_i = sum_k r_k g_ki` with `g_ki = z_i / c_ki` (precision) or
/// `mu_ki + gain_ki z_i` (posterior).
#[inline(always)]
fn mix_diag<M: MulAdd>(c: &Coeffs, np: usize, bs: usize, s: &mut Scratch, posterior: bool) {
    let d = c.d;
    for g in (0..np).step_by(G) {
        let inv = *lanes(s.s, g);
        for (i, (xcol, acol)) in s.xs.chunks_exact(bs).zip(s.acc.chunks_exact_mut(bs)).enumerate() {
            let xv = *lanes(xcol, g);
            let mut acc = [0.0; G];
            // Coordinate i of every component: row i of the transposed coefficients.
            let (amu, ic) = (&c.amu_t[i * c.k..(i + 1) * c.k], &c.ic_t[i * c.k..(i + 1) * c.k]);
            let rows = s.lt.chunks_exact(bs).zip(amu).zip(ic);
            if posterior {
                let (mu, gain) = (c.mu[i..].iter().step_by(d), c.gain[i..].iter().step_by(d));
                for (((rcol, &a), _), (&mu, &ga)) in rows.zip(mu.zip(gain)) {
                    let r = lanes(rcol, g);
                    for l in 0..G {
                        let gv = M::mul_add(ga, xv[l] - a, mu);
                        acc[l] = M::mul_add(r[l], gv, acc[l]);
                    }
                }
            } else if c.iso {
                // (e_k / c_k) (x_i - alpha mu_ki): e_k / c_k is the same for every i, but
                // recomputing it here is cheaper than a pass to store it.
                for ((rcol, &a), &ic) in rows {
                    let r = lanes(rcol, g);
                    for l in 0..G {
                        acc[l] = M::mul_add(r[l] * ic, xv[l] - a, acc[l]);
                    }
                }
            } else {
                for ((rcol, &a), &ic) in rows {
                    let r = lanes(rcol, g);
                    for l in 0..G {
                        let gv = (xv[l] - a) * ic;
                        acc[l] = M::mul_add(r[l], gv, acc[l]);
                    }
                }
            }
            for l in 0..G {
                acc[l] *= inv[l];
            }
            *lanes_mut(acol, g) = acc;
        }
    }
}

/// Full components: `acc = sum_k r_k g_k` with `g_k = C_k^{-1} z_k` (precision, kept by
/// `log_terms_full`) or `mu_k + alpha S_k C_k^{-1} z_k` (posterior, computed here).
#[inline(always)]
fn mix_full<M: MulAdd>(c: &Coeffs, np: usize, bs: usize, s: &mut Scratch, posterior: bool) {
    let d = c.d;
    for g in (0..np).step_by(G) {
        if !posterior {
            for i in 0..d {
                let mut acc = [0.0; G];
                for k in 0..c.k {
                    let (r, gi) = (lanes(s.lt, k * bs + g), lanes(s.y, (k * d + i) * bs + g));
                    for l in 0..G {
                        acc[l] = M::mul_add(r[l], gi[l], acc[l]);
                    }
                }
                let inv = lanes(s.s, g);
                for l in 0..G {
                    acc[l] *= inv[l];
                }
                *lanes_mut(s.acc, i * bs + g) = acc;
            }
            continue;
        }
        for i in 0..d {
            lanes_mut(s.acc, i * bs + g).fill(0.0);
        }
        for k in 0..c.k {
            component_offsets::<M>(c, k, g, bs, s);
            let pk = &c.post[k * d * d..(k + 1) * d * d];
            for (i, prow) in pk.chunks_exact(d).enumerate() {
                let h = mat_row::<M>(prow, s.z, g, bs);
                let (mu, r) = (c.mu[k * d + i], *lanes(s.lt, k * bs + g));
                let acc = lanes_mut(s.acc, i * bs + g);
                for l in 0..G {
                    acc[l] = M::mul_add(r[l], mu + h[l], acc[l]);
                }
            }
        }
        let inv = *lanes(s.s, g);
        for i in 0..d {
            let acc = lanes_mut(s.acc, i * bs + g);
            for l in 0..G {
                acc[l] *= inv[l];
            }
        }
    }
}

/// Diagonal components, after `mix_diag` (precision): `div = sum_k r_k (|g_k - gbar|^2 - tr_k)`.
#[inline(always)]
fn divergence_diag<M: MulAdd>(c: &Coeffs, np: usize, bs: usize, s: &mut Scratch) {
    let d = c.d;
    for g in (0..np).step_by(G) {
        let mut div = [0.0; G];
        for k in 0..c.k {
            let mut spread = [0.0; G];
            for i in 0..d {
                let (a, ic) = (c.amu[k * d + i], c.ic[k * d + i]);
                let (xv, gbar) = (lanes(s.xs, i * bs + g), lanes(s.acc, i * bs + g));
                for l in 0..G {
                    let e = (xv[l] - a) * ic - gbar[l];
                    spread[l] = M::mul_add(e, e, spread[l]);
                }
            }
            let (tr, r) = (c.trace[k], lanes(s.lt, k * bs + g));
            for l in 0..G {
                div[l] = M::mul_add(r[l], spread[l] - tr, div[l]);
            }
        }
        let inv = lanes(s.s, g);
        for l in 0..G {
            div[l] *= inv[l];
        }
        *lanes_mut(s.div, g) = div;
    }
}

/// The [`G`] values at `at`.
#[inline(always)]
fn lanes(v: &[f64], at: usize) -> &[f64; G] {
    v[at..at + G].try_into().expect("G values")
}

/// The [`G`] values at `at`, mutably.
#[inline(always)]
fn lanes_mut(v: &mut [f64], at: usize) -> &mut [f64; G] {
    (&mut v[at..at + G]).try_into().expect("G values")
}

/// Full components, after `mix_full` (precision): as [`divergence_diag`] with the `g_k` kept by
/// `log_terms_full`.
#[inline(always)]
fn divergence_full<M: MulAdd>(c: &Coeffs, np: usize, bs: usize, s: &mut Scratch) {
    let d = c.d;
    for g in (0..np).step_by(G) {
        let mut div = [0.0; G];
        for k in 0..c.k {
            let mut spread = [0.0; G];
            for i in 0..d {
                let (gi, gbar) = (lanes(s.y, (k * d + i) * bs + g), lanes(s.acc, i * bs + g));
                for l in 0..G {
                    let e = gi[l] - gbar[l];
                    spread[l] = M::mul_add(e, e, spread[l]);
                }
            }
            let (tr, r) = (c.trace[k], lanes(s.lt, k * bs + g));
            for l in 0..G {
                div[l] = M::mul_add(r[l], spread[l] - tr, div[l]);
            }
        }
        let inv = lanes(s.s, g);
        for l in 0..G {
            div[l] *= inv[l];
        }
        *lanes_mut(s.div, g) = div;
    }
}
