//! Inpainting: sampling the unobserved coordinates of each row given its observed ones, with
//! the methods in use, and the exact conditional they are measured against ([`conditional`]).
//!
//! - [`InpaintMethod::Replacement`]: score_sde's inpainter (Song et al. 2021, "Score-based
//!   generative modeling through SDEs", appendix I.2, `controllable_generation.py`): after
//!   every step of the solver to level t, the observed coordinates are replaced by a fresh
//!   forward-noised copy of the observation, alpha(t) y + sigma(t) z.
//! - [`InpaintMethod::RePaint`]: RePaint (Lugmayr et al. 2022, algorithm 1 with jump length
//!   1): each step is repeated `resample` times; between repeats the state is noised back from
//!   t_{k+1} to t_k by the forward transition, x <- (alpha_k / alpha_{k+1}) x +
//!   sqrt(sigma_k^2 - (alpha_k / alpha_{k+1})^2 sigma_{k+1}^2) z, which lets the unobserved
//!   coordinates harmonise with the observed ones. `resample = 1` is replacement.
//!
//! - [`InpaintMethod::Dps`]: diffusion posterior sampling (Chung et al. 2023, "Diffusion
//!   posterior sampling for general noisy inverse problems", algorithm 1): after each step the
//!   state moves along -grad_x ||y - A x0_hat(x)||^2 taken at the step's start, with step size
//!   zeta / ||y - A x0_hat(x)|| per row; no replacement. The gradient is -2 J^T A^T r with J the
//!   Jacobian of x0_hat, computed as J r by a central difference of x0_hat along r (2 NFE per
//!   step): exact for exact scores, whose J = (I + sigma^2 Hessian ln p_t) / alpha is
//!   symmetric, an approximation for a network's.
//!
//! All of them run the solver one grid step at a time ([`crate::sampler::advance`]), so they take
//! one-step solvers only (a multistep solver's history would restart every step). At the end
//! the observed coordinates are set to the observation. Every draw is keyed by (seed, row,
//! step, repeat): the output does not depend on the thread count or on batch chunking.

pub mod conditional;

use ndarray::{Array2, ArrayView2, Axis, Zip};
use rand::Rng;
use scoresde_solvers::{KeyedNoise, TimeGrid};

pub use conditional::{conditional, conditional_moments, sample_conditional, Conditional, Observation};

use crate::error::{Result, ScoreError};
use crate::grids::Space;
use crate::model::{NoiseLevel, ScoreModel};
use crate::process::ForwardProcess;
use crate::sampler::{advance, SampleReport, SamplerConfig, Solver, Steps};

/// How the observed coordinates enter the sampler.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum InpaintMethod {
    /// Replace the observed coordinates by the noised observation after every step.
    Replacement,
    /// Replacement with `resample` repeats of every step (RePaint).
    RePaint {
        /// Repeats per step (RePaint's U; 1 is replacement).
        resample: usize,
    },
    /// Diffusion posterior sampling with step size `scale` (the paper's zeta').
    Dps {
        /// zeta' of the normalised step zeta' / ||y - A x0_hat||.
        scale: f64,
    },
}

impl InpaintMethod {
    /// Repeats of every step.
    pub fn repeats(self) -> usize {
        match self {
            Self::Replacement | Self::Dps { .. } => 1,
            Self::RePaint { resample } => resample,
        }
    }
}

/// Whether `solver` steps without carrying history from one step to the next (what inpainting
/// runs).
pub fn one_step(solver: &Solver) -> bool {
    matches!(
        solver,
        Solver::Euler
            | Solver::Midpoint
            | Solver::Heun
            | Solver::Rk4
            | Solver::Rk4_38
            | Solver::EulerLogSnr
            | Solver::Dpm2
            | Solver::EulerAncestral(_)
            | Solver::Ddim { .. }
            | Solver::EdmSde(_)
            | Solver::EulerMaruyama
            | Solver::Ancestral
            | Solver::Ddpm(_)
            | Solver::ReverseDiffusion
            | Solver::Pc(_)
    )
}

/// Stream keys of the replacement and resampling draws (the solver's own noise uses a stream
/// per leg).
const REPLACE_KEY: u64 = 1 << 40;
const RENOISE_KEY: u64 = 2 << 40;

/// Samples every row of `z` (standard-normal prior draws, N x d) given `obs` with `method`:
/// the config's solver steps on its grid, one step at a time. Returns the samples (N x d).
pub fn inpaint(
    process: &dyn ForwardProcess,
    model: &dyn ScoreModel,
    config: &SamplerConfig,
    z: ArrayView2<f64>,
    obs: &Observation,
    method: InpaintMethod,
    seed: u64,
) -> Result<(Array2<f64>, SampleReport)> {
    obs.check(z.nrows(), model.dim())?;
    if z.ncols() != model.dim() {
        return Err(ScoreError::DimensionMismatch {
            what: "initial noise columns vs target dimension".into(),
            expected: model.dim(),
            found: z.ncols(),
        });
    }
    let solver = config.solver();
    let grid = match config.steps() {
        Steps::Grid(g) => g,
        _ => {
            return Err(ScoreError::Incompatible {
                solver: solver.name(),
                requirement: "a fixed grid for inpainting (adaptive steps cannot be interleaved with replacement)",
            })
        }
    };
    if !one_step(solver) {
        return Err(ScoreError::Incompatible {
            solver: solver.name(),
            requirement: "a one-step solver for inpainting (it steps one grid step at a time, so history across \
                          steps or adaptive steps would restart every step): euler, heun, rk4, ddim, ddpm, \
                          euler-ancestral, euler-maruyama, reverse-diffusion, pc, ...",
        });
    }
    let repeats = method.repeats();
    if repeats == 0 {
        return Err(ScoreError::InvalidParameter {
            name: "resample".into(),
            value: 0.0,
            expected: "must be at least 1",
        });
    }
    if let InpaintMethod::Dps { scale } = method {
        if !(scale.is_finite() && scale >= 0.0) {
            return Err(ScoreError::InvalidParameter {
                name: "dps-scale".into(),
                value: scale,
                expected: "must be finite and >= 0",
            });
        }
    }
    let keys = KeyedNoise::new(seed);
    let mut x = z.to_owned();
    x.mapv_inplace(|v| process.prior_std() * v);
    let space = config.space();
    let time = |v: f64| match space {
        Space::Time => v,
        Space::SigmaTilde => process.t_from_sigma_tilde(v),
    };
    let p = grid.points();
    let mut report = SampleReport::default();
    replace(process, &mut x, obs, time(p[0]), &keys, REPLACE_KEY);
    for (k, w) in p.windows(2).enumerate() {
        let leg = SamplerConfig::new(process, solver.clone(), space, Steps::Grid(TimeGrid::new(w.to_vec())?))?;
        let (t0, t1) = (time(w[0]), time(w[1]));
        for r in 0..repeats {
            let draw = (k * repeats + r) as u64;
            let mut noise = KeyedNoise::new(seed ^ (draw + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let pull = match method {
                InpaintMethod::Dps { scale } => {
                    let (pull, nfe) = dps_pull(process, model, &x, obs, t0, scale)?;
                    report.nfe += nfe;
                    Some(pull)
                }
                _ => None,
            };
            let leg_report =
                advance(process, model, &leg, x.view_mut(), Some(&mut noise)).map_err(|e| at_step(e, k, t1))?;
            report.nfe += leg_report.nfe;
            report.steps += leg_report.steps;
            match pull {
                Some(pull) => x += &pull,
                None => replace(process, &mut x, obs, t1, &keys, REPLACE_KEY + draw + 1),
            }
            if r + 1 < repeats {
                renoise(process, &mut x, (t1, t0), &keys, RENOISE_KEY + draw);
            }
        }
    }
    Zip::from(&mut x).and(obs.values()).and(obs.mask()).for_each(|x, &y, &m| {
        if m {
            *x = y;
        }
    });
    Ok((x, report))
}

fn at_step(e: ScoreError, k: usize, t: f64) -> ScoreError {
    match e {
        ScoreError::Stopped(m) => ScoreError::Stopped(format!("inpainting step {k} (to t = {t}): {m}")),
        e => e,
    }
}

/// DPS's move at time `t`: (zeta / ||r||) 2 J r per row, r = A^T (y - A x0_hat(x)).
fn dps_pull(
    process: &dyn ForwardProcess,
    model: &dyn ScoreModel,
    x: &Array2<f64>,
    obs: &Observation,
    t: f64,
    scale: f64,
) -> Result<(Array2<f64>, usize)> {
    let level = NoiseLevel::at_time(process, t);
    let mut x0 = Array2::zeros(x.dim());
    model.predict_x0(level, x.view(), x0.view_mut())?;
    let mut r = Array2::zeros(x.dim());
    Zip::from(&mut r).and(&x0).and(obs.values()).and(obs.mask()).for_each(|r, &x0, &y, &m| {
        if m {
            *r = y - x0;
        }
    });
    // (zeta / ||r||) 2 J r = 2 zeta J u with the unit direction u = r / ||r|| (u = 0 where the
    // row already fits the observation: no pull).
    for mut row in r.rows_mut() {
        let n = row.dot(&row).sqrt();
        if n > 0.0 {
            row /= n;
        }
    }
    let u = r;
    let mut pull = Array2::zeros(x.dim());
    // A model that gives J^T u exactly (a network's forward-mode tangents) gives it; otherwise
    // J u by a central difference with step h (the exact mixture's x0_hat has a symmetric
    // Jacobian, (I + sigma^2 Hessian) / alpha, so J u = J^T u).
    let nfe = if model.predict_x0_vjp(level, x.view(), u.view(), x0.view_mut(), pull.view_mut())? {
        1 + x.ncols()
    } else {
        let h = 1e-4;
        let (xp, xm) = (x + &(&u * h), x - &(&u * h));
        let (mut fp, mut fm) = (Array2::zeros(x.dim()), Array2::zeros(x.dim()));
        model.predict_x0(level, xp.view(), fp.view_mut())?;
        model.predict_x0(level, xm.view(), fm.view_mut())?;
        pull = (&fp - &fm) / (2.0 * h);
        3
    };
    pull *= 2.0 * scale;
    Ok((pull, nfe))
}

/// Observed coordinates <- alpha(t) y + sigma(t) z.
fn replace(process: &dyn ForwardProcess, x: &mut Array2<f64>, obs: &Observation, t: f64, keys: &KeyedNoise, key: u64) {
    let (a, s) = (process.alpha(t), process.sigma(t));
    for (i, (mut row, (y, m))) in
        x.axis_iter_mut(Axis(0)).zip(obs.values().rows().into_iter().zip(obs.mask().rows())).enumerate()
    {
        let mut rng = keys.rng(i as u64, key);
        for ((v, &y), &m) in row.iter_mut().zip(y).zip(m) {
            let e: f64 = rng.sample(rand_distr::StandardNormal);
            if m {
                *v = a * y + s * e;
            }
        }
    }
}

/// The forward transition from `from` back to the noisier `to`, on every coordinate.
fn renoise(process: &dyn ForwardProcess, x: &mut Array2<f64>, (from, to): (f64, f64), keys: &KeyedNoise, key: u64) {
    let ratio = process.alpha(to) / process.alpha(from);
    let std = (process.sigma(to).powi(2) - (ratio * process.sigma(from)).powi(2)).max(0.0).sqrt();
    for (i, mut row) in x.axis_iter_mut(Axis(0)).enumerate() {
        let mut rng = keys.rng(i as u64, key);
        for v in row.iter_mut() {
            let e: f64 = rng.sample(rand_distr::StandardNormal);
            *v = ratio * *v + std * e;
        }
    }
}
