//! Sources of standard-normal noise for stochastic steppers, and the key space of their draws.
//!
//! Noise is an input of a solve, never drawn inside a stepper: the integration loop asks the
//! source for the standard normals of each [`Draw`] of a step, and the stepper scales them (by
//! sqrt|dt| for a Brownian increment, by sigma_up for an ancestral step). A step has one main draw
//! (the increment over its interval) and, for steppers that need them, extra draws (the Langevin
//! corrector's moves, the stages of a multi-draw SDE step); [`Draw`] names a draw both by its
//! interval and by its place in the solve, and this module alone decides how that place maps to a
//! key ([`Draw::index`]).
//!
//! Sources: [`FixedNoise`] replays recorded draws, slice [`Draw::index`] of a (draws, N, d) file;
//! [`KeyedNoise`] draws row `i` of a draw from a generator seeded by `(seed, i, index)` alone, so a
//! sample never depends on the batch size, on how rows are chunked or on the thread count; the
//! Brownian tree ([`crate::BrownianNoise`]) answers by interval, so its main draws are the same
//! Brownian path on every grid and under adaptive stepping.

pub mod brownian;

use ndarray::{Array3, ArrayViewMut2, Axis};
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use rand_pcg::Pcg64;
use rayon::prelude::*;

use crate::error::{Result, SolverError};

/// One request for standard normals: which step and interval it belongs to, and which of the
/// step's draws it is.
///
/// Layout of the flat index (the key of [`KeyedNoise`], the slice of [`FixedNoise`]): the main
/// draws of all `steps` steps come first (step k: index k), then the extra draws, `extras` per step
/// (extra j of step k: index `steps + k * extras + j`). A solve with no extra draws reads exactly
/// `steps` slices, one per step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Draw {
    /// 0-based step index.
    pub step: usize,
    /// Steps in the solve.
    pub steps: usize,
    /// Extra draws per step.
    pub extras: usize,
    /// `None`: the step's main draw (its increment); `Some(j)`: extra draw j < `extras`.
    pub extra: Option<usize>,
    /// Start of the step's interval.
    pub t0: f64,
    /// End of the step's interval.
    pub t1: f64,
}

impl Draw {
    /// The main draw of step `step` of `steps` over [t0, t1], in a solve with `extras` extra draws
    /// per step.
    pub fn main(step: usize, steps: usize, extras: usize, t0: f64, t1: f64) -> Self {
        Self { step, steps, extras, extra: None, t0, t1 }
    }

    /// Extra draw `j` of the same step.
    pub fn extra(self, j: usize) -> Self {
        Self { extra: Some(j), ..self }
    }

    /// The draw's place in the solve's key space (see the type's docs).
    pub fn index(&self) -> usize {
        match self.extra {
            None => self.step,
            Some(j) => self.steps + self.step * self.extras + j,
        }
    }

    /// Draws a whole solve reads: `steps * (1 + extras)`.
    pub fn total(steps: usize, extras: usize) -> usize {
        steps * (1 + extras)
    }
}

/// Fills the standard normals of one draw for every sample.
pub trait NoiseSource {
    /// Writes the standard normals of `draw` into `out` (N x d).
    fn normals(&mut self, draw: &Draw, out: ArrayViewMut2<f64>) -> Result<()>;
}

/// Recorded standard normals, shape (draws, N, d): draw `i` ([`Draw::index`]) uses `z[i]`.
#[derive(Debug, Clone)]
pub struct FixedNoise {
    z: Array3<f64>,
}

impl FixedNoise {
    /// Wraps recorded draws.
    pub fn new(z: Array3<f64>) -> Self {
        Self { z }
    }
    /// Number of draws of noise available.
    pub fn steps(&self) -> usize {
        self.z.len_of(Axis(0))
    }
}

impl NoiseSource for FixedNoise {
    fn normals(&mut self, draw: &Draw, mut out: ArrayViewMut2<f64>) -> Result<()> {
        let step = draw.index();
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

/// Standard normals keyed by `(seed, global row, draw index)`; see the module docs.
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
    /// The generator for one (row, draw index) key.
    pub fn rng(&self, row: u64, step: u64) -> Pcg64 {
        Pcg64::seed_from_u64(mix(mix(mix(self.seed) ^ row) ^ step.rotate_left(32)))
    }
}

impl NoiseSource for KeyedNoise {
    fn normals(&mut self, draw: &Draw, out: ArrayViewMut2<f64>) -> Result<()> {
        self.fill(draw.index() as u64, out);
        Ok(())
    }
}

impl KeyedNoise {
    /// Fills `out` with the normals of key `step` (row i of `out` is global row offset + i).
    pub(crate) fn fill(&self, step: u64, mut out: ArrayViewMut2<f64>) {
        let fill = |first: usize, row: &mut [f64]| {
            let mut rng = self.rng(self.row_offset + first as u64, step);
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
                            let mut rng = self.rng(self.row_offset + i as u64, step);
                            for v in row.iter_mut() {
                                let z: f64 = rng.sample(StandardNormal);
                                *v = z;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// SplitMix64 finaliser: a bijective 64-bit mixer used to derive independent-looking keys.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
