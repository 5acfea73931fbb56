//! Sources of Brownian increments for SDE steppers.
//!
//! Noise is an input of a solve, never drawn inside a stepper. Two sources here:
//! [`FixedNoise`] replays recorded standard-normal draws (to reproduce a peer run exactly), and
//! [`KeyedNoise`] draws the normals of sample row `i` at step `k` from a generator seeded by
//! `(seed, i, k)` alone, so a sample never depends on the batch size, on how rows are chunked or
//! on the thread count. (Consistency across *grid refinements* needs a Brownian bridge tree, a
//! later addition.)

use ndarray::{Array3, ArrayViewMut2, Axis};
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use rand_pcg::Pcg64;

use crate::error::{Result, SolverError};

/// Fills the Brownian increment W(t1) - W(t0) of every sample over one step.
pub trait BrownianIncrements {
    /// Writes the increment of step `step` (from `t0` to `t1`; variance |t1 - t0|) into `out`.
    fn increment(&mut self, step: usize, t0: f64, t1: f64, out: ArrayViewMut2<f64>) -> Result<()>;
}

/// Recorded standard normals, shape (steps, N, d): step k uses `z[k] * sqrt(|t1 - t0|)`.
#[derive(Debug, Clone)]
pub struct FixedNoise {
    z: Array3<f64>,
}

impl FixedNoise {
    /// Wraps recorded draws.
    pub fn new(z: Array3<f64>) -> Self {
        Self { z }
    }
    /// Number of steps of noise available.
    pub fn steps(&self) -> usize {
        self.z.len_of(Axis(0))
    }
}

impl BrownianIncrements for FixedNoise {
    fn increment(
        &mut self,
        step: usize,
        t0: f64,
        t1: f64,
        mut out: ArrayViewMut2<f64>,
    ) -> Result<()> {
        if step >= self.steps() {
            return Err(SolverError::NoiseExhausted {
                available: self.steps(),
                needed: step + 1,
            });
        }
        let z = self.z.index_axis(Axis(0), step);
        if z.dim() != out.dim() {
            return Err(SolverError::DimensionMismatch {
                what: "noise rows x columns (rows)",
                expected: out.nrows(),
                found: z.nrows(),
            });
        }
        let s = (t1 - t0).abs().sqrt();
        out.zip_mut_with(&z, |o, &z| *o = s * z);
        Ok(())
    }
}

/// Standard normals keyed by `(seed, global row, step)`; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyedNoise {
    seed: u64,
    row_offset: u64,
}

impl KeyedNoise {
    /// Noise for rows numbered from 0.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            row_offset: 0,
        }
    }
    /// Noise for a chunk whose first row is global row `offset`.
    pub fn with_row_offset(seed: u64, offset: u64) -> Self {
        Self {
            seed,
            row_offset: offset,
        }
    }
    /// The generator for one (row, step) key.
    pub fn rng(&self, row: u64, step: u64) -> Pcg64 {
        Pcg64::seed_from_u64(mix(mix(mix(self.seed) ^ row) ^ step.rotate_left(32)))
    }
}

impl BrownianIncrements for KeyedNoise {
    fn increment(
        &mut self,
        step: usize,
        t0: f64,
        t1: f64,
        mut out: ArrayViewMut2<f64>,
    ) -> Result<()> {
        let s = (t1 - t0).abs().sqrt();
        for (i, mut row) in out.outer_iter_mut().enumerate() {
            let mut rng = self.rng(self.row_offset + i as u64, step as u64);
            for v in row.iter_mut() {
                let z: f64 = rng.sample(StandardNormal);
                *v = s * z;
            }
        }
        Ok(())
    }
}

/// SplitMix64 finaliser: a bijective 64-bit mixer used to derive independent-looking keys.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
