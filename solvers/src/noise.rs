//! Sources of standard-normal noise for stochastic steppers.
//!
//! Noise is an input of a solve, never drawn inside a stepper: the integration loop asks the
//! source for the fresh standard normals of each step, and the stepper scales them (by sqrt|dt|
//! for a Brownian increment, by sigma_up for an ancestral step). Two sources here:
//! [`FixedNoise`] replays recorded standard-normal draws (to reproduce a peer run exactly), and
//! [`KeyedNoise`] draws the normals of sample row `i` at step `k` from a generator seeded by
//! `(seed, i, k)` alone, so a sample never depends on the batch size, on how rows are chunked or
//! on the thread count. (Consistency across *grid refinements* needs a Brownian bridge tree, a
//! later addition.)

use ndarray::{Array3, ArrayViewMut2, Axis};
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use rand_pcg::Pcg64;
use rayon::prelude::*;

use crate::error::{Result, SolverError};

/// Fills the fresh standard normals of one step for every sample.
pub trait NoiseSource {
    /// Writes the standard normals of step `step` into `out` (N x d).
    fn normals(&mut self, step: usize, out: ArrayViewMut2<f64>) -> Result<()>;
}

/// Recorded standard normals, shape (steps, N, d): step k uses `z[k]`.
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

impl NoiseSource for FixedNoise {
    fn normals(&mut self, step: usize, mut out: ArrayViewMut2<f64>) -> Result<()> {
        if step >= self.steps() {
            return Err(SolverError::NoiseExhausted { available: self.steps(), needed: step + 1 });
        }
        let z = self.z.index_axis(Axis(0), step);
        if z.dim() != out.dim() {
            return Err(SolverError::DimensionMismatch {
                what: "noise rows x columns (rows)",
                expected: out.nrows(),
                found: z.nrows(),
            });
        }
        out.assign(&z);
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
        Self { seed, row_offset: 0 }
    }
    /// Noise for a chunk whose first row is global row `offset`.
    pub fn with_row_offset(seed: u64, offset: u64) -> Self {
        Self { seed, row_offset: offset }
    }
    /// The generator for one (row, step) key.
    pub fn rng(&self, row: u64, step: u64) -> Pcg64 {
        Pcg64::seed_from_u64(mix(mix(mix(self.seed) ^ row) ^ step.rotate_left(32)))
    }
}

impl NoiseSource for KeyedNoise {
    fn normals(&mut self, step: usize, mut out: ArrayViewMut2<f64>) -> Result<()> {
        let fill = |first: usize, row: &mut [f64]| {
            let mut rng = self.rng(self.row_offset + first as u64, step as u64);
            for v in row.iter_mut() {
                let z: f64 = rng.sample(StandardNormal);
                *v = z;
            }
        };
        let d = out.ncols();
        match out.as_slice_mut() {
            // Rows are independent draws: filled in parallel, the same values for any split.
            Some(flat) if d > 0 && flat.len() >= crate::par::PAR_MIN => {
                flat.par_chunks_mut(d).enumerate().with_min_len(1024).for_each(|(i, row)| fill(i, row));
            }
            _ => {
                for (i, mut row) in out.outer_iter_mut().enumerate() {
                    match row.as_slice_mut() {
                        Some(r) => fill(i, r),
                        None => {
                            let mut rng = self.rng(self.row_offset + i as u64, step as u64);
                            for v in row.iter_mut() {
                                let z: f64 = rng.sample(StandardNormal);
                                *v = z;
                            }
                        }
                    }
                }
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
