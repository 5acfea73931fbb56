//! A virtual Brownian tree: Brownian paths that are the same at every resolution.
//!
//! Comparing SDE solvers at different step counts (strong errors, convergence orders, fair
//! step-count sweeps) needs the *same* Brownian path on every grid (MATH.md section 6). Storing a
//! path is O(steps); instead W(t) of sample row i is a pure function of (seed, i, t): it is found
//! by bisecting [t_lo, t_hi] from the root, drawing each midpoint from its Brownian bridge with
//! randomness keyed by (seed, row, node), down to a fixed depth, then bridging from the leaf's end
//! points to t with randomness keyed by t itself. So W does not depend on which other times are
//! queried, in which order, on the batch size or the chunking (the idea of diffrax's
//! VirtualBrownianTree and torchsde's BrownianInterval; Gaines & Lyons 1997 for the bridge).
//!
//! Joint law: the values at dyadic nodes are exact Brownian values; points in different leaves
//! are joined by independent bridges given the nodes, which is exact by the Markov property. Only
//! two query points in the same leaf (closer than (t_hi - t_lo) 2^-depth, 1e-10 of the range at
//! the default depth) would not be jointly exact.

use ndarray::{Array2, ArrayViewMut2, Axis};
use rand::Rng;
use rand_distr::StandardNormal;

use crate::error::{Result, SolverError};
use crate::grid::TimeGrid;
use crate::noise::{mix, Draw, KeyedNoise, NoiseSource};

/// SplitMix64 (Steele, Lea & Flood 2014): a generator whose seeding costs nothing, which matters
/// here because every tree node is a fresh key. Passes BigCrush; portable by construction.
#[derive(Debug, Clone, Copy)]
struct SplitMix64(u64);

impl rand::RngCore for SplitMix64 {
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn fill_bytes(&mut self, dst: &mut [u8]) {
        for chunk in dst.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// W(t) on [t_lo, t_hi] with W(t_lo) = 0, for any number of rows of dimension `dim`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BrownianTree {
    seed: u64,
    t_lo: f64,
    t_hi: f64,
    depth: u32,
}

impl BrownianTree {
    /// Bisection depth of [`BrownianTree::new`].
    pub const DEFAULT_DEPTH: u32 = 34;

    /// A tree on [t_lo, t_hi] (t_lo < t_hi, both finite).
    pub fn new(seed: u64, t_lo: f64, t_hi: f64) -> Result<Self> {
        if !(t_lo.is_finite() && t_hi.is_finite()) || t_hi <= t_lo {
            return Err(SolverError::InvalidParameter {
                name: "t_hi",
                value: t_hi,
                expected: "the Brownian interval needs finite t_lo < t_hi",
            });
        }
        Ok(Self { seed, t_lo, t_hi, depth: Self::DEFAULT_DEPTH })
    }

    fn normals(&self, row: u64, key: u64, out: &mut [f64]) {
        let mut rng = SplitMix64(mix(mix(self.seed ^ mix(row)) ^ key));
        for v in out.iter_mut() {
            *v = rng.sample(StandardNormal);
        }
    }

    /// Writes W(t) of sample `row` into `out` (one entry per coordinate); `work` is scratch of
    /// length at least 3 x `out.len()`. Panics if t is outside [t_lo, t_hi] (callers validate
    /// their grid against the tree once).
    pub fn value(&self, row: u64, t: f64, out: &mut [f64], work: &mut [f64]) {
        assert!(t >= self.t_lo && t <= self.t_hi, "t = {t} outside [{}, {}]", self.t_lo, self.t_hi);
        let d = out.len();
        let (wa, rest) = work.split_at_mut(d);
        let (wb, z) = rest.split_at_mut(d);
        let z = &mut z[..d];
        let (mut a, mut b) = (self.t_lo, self.t_hi);
        // Key 0: W(t_hi) ~ N(0, t_hi - t_lo). Key k >= 1: the midpoint of node k's interval, whose
        // children are 2k and 2k + 1 (the root interval is node 1).
        wa.fill(0.0);
        self.normals(row, 0, z);
        let s = (b - a).sqrt();
        wb.iter_mut().zip(z.iter()).for_each(|(w, z)| *w = s * z);
        let mut node: u64 = 1;
        for _ in 0..self.depth {
            if t == a || t == b {
                break;
            }
            let m = a + 0.5 * (b - a);
            // Midpoint bridge: mean (W(a) + W(b))/2, variance (b - a)/4.
            self.normals(row, node, z);
            let sm = 0.5 * (b - a).sqrt();
            let go_left = t < m;
            for j in 0..d {
                let wm = 0.5 * (wa[j] + wb[j]) + sm * z[j];
                if go_left {
                    wb[j] = wm;
                } else {
                    wa[j] = wm;
                }
            }
            if go_left {
                b = m;
                node *= 2;
            } else {
                a = m;
                node = 2 * node + 1;
            }
        }
        if t == a {
            out.copy_from_slice(wa);
        } else if t == b {
            out.copy_from_slice(wb);
        } else {
            // Leaf bridge to t, keyed by the leaf and t's bits.
            self.normals(row, mix(node) ^ t.to_bits(), z);
            let (u, h) = (t - a, b - a);
            let sd = (u * (b - t) / h).sqrt();
            for j in 0..d {
                out[j] = wa[j] + u / h * (wb[j] - wa[j]) + sd * z[j];
            }
        }
    }
}

/// Standard normals taken from a [`BrownianTree`], answered by interval: the main draw of a step
/// over [t0, t1] is (W(t1) - W(t0)) / sqrt|t1 - t0|, so refining the grid (adding points) leaves
/// the Brownian path, and therefore every coarse increment, unchanged, and an adaptive solve that
/// retries a step gets the increment of the interval it tries. Extra draws (Langevin moves, extra
/// stages) are independent of the path and keyed by the interval's end points and their number,
/// so they too are the same whatever the step's index.
#[derive(Debug, Clone)]
pub struct BrownianNoise {
    tree: BrownianTree,
    row_offset: u64,
    /// W at the end of the last main draw, and that time (the next step usually starts there).
    w_prev: Array2<f64>,
    t_prev: Option<f64>,
}

impl BrownianNoise {
    /// Noise for rows numbered from `row_offset`, from a tree spanning `grid`.
    pub fn new(seed: u64, grid: &TimeGrid, row_offset: u64) -> Result<Self> {
        let (lo, hi) = if grid.is_decreasing() { (grid.end(), grid.start()) } else { (grid.start(), grid.end()) };
        Self::over(seed, lo, hi, row_offset)
    }

    /// Noise for rows numbered from `row_offset`, from a tree on [lo, hi] (any interval inside it
    /// can be asked for, as an adaptive solve does).
    pub fn over(seed: u64, lo: f64, hi: f64, row_offset: u64) -> Result<Self> {
        Ok(Self { tree: BrownianTree::new(seed, lo, hi)?, row_offset, w_prev: Array2::zeros((0, 0)), t_prev: None })
    }

    fn fill(&self, t: f64, mut w: ArrayViewMut2<f64>) {
        let d = w.ncols();
        let mut work = vec![0.0; 3 * d];
        for (i, mut row) in w.axis_iter_mut(Axis(0)).enumerate() {
            match row.as_slice_mut() {
                Some(out) => self.tree.value(self.row_offset + i as u64, t, out, &mut work),
                None => {
                    let mut out = vec![0.0; d];
                    self.tree.value(self.row_offset + i as u64, t, &mut out, &mut work);
                    row.iter_mut().zip(&out).for_each(|(r, &v)| *r = v);
                }
            }
        }
    }

    fn check_inside(&self, t: f64) -> Result<()> {
        if t.is_finite() && t >= self.tree.t_lo && t <= self.tree.t_hi {
            Ok(())
        } else {
            Err(SolverError::InvalidParameter {
                name: "t",
                value: t,
                expected: "a noise interval must lie inside the Brownian tree's span",
            })
        }
    }
}

impl NoiseSource for BrownianNoise {
    fn normals(&mut self, draw: &Draw, out: ArrayViewMut2<f64>) -> Result<()> {
        let (t0, t1) = (draw.t0, draw.t1);
        self.check_inside(t0)?;
        self.check_inside(t1)?;
        if let Some(j) = draw.extra {
            // Independent of the path: a keyed stream of its own, keyed by the interval and j.
            let key = mix(mix(t0.to_bits()) ^ t1.to_bits()) ^ (j as u64);
            KeyedNoise::with_row_offset(mix(self.tree.seed ^ EXTRA_STREAM), self.row_offset).fill(key, out);
            return Ok(());
        }
        let mut out = out;
        if self.t_prev != Some(t0) || self.w_prev.dim() != out.dim() {
            let mut w0 = Array2::zeros(out.dim());
            self.fill(t0, w0.view_mut());
            self.w_prev = w0;
        }
        let mut w1 = Array2::zeros(out.dim());
        self.fill(t1, w1.view_mut());
        let inv = 1.0 / (t1 - t0).abs().sqrt();
        ndarray::Zip::from(&mut out).and(&w1).and(&self.w_prev).for_each(|o, &w1, &w0| *o = (w1 - w0) * inv);
        self.w_prev = w1;
        self.t_prev = Some(t1);
        Ok(())
    }
}

/// Separates the extra draws' stream from the tree's node keys.
const EXTRA_STREAM: u64 = 0x6578_7472_615f_6472;
