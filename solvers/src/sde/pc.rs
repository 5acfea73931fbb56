//! Predictor-corrector sampling with a Langevin corrector (Song et al. 2021, Algorithms 2-3).
//!
//! At each grid point the corrector runs `steps` Langevin MCMC moves that leave the current
//! marginal p_t invariant (in the limit), then any SDE stepper (the predictor) moves to the next
//! point. [`Pc`] is that pair as one SDE stepper: the corrector's moves are the step's extra
//! draws, so they come from the same [`crate::NoiseSource`] as the predictor's (keyed as
//! [`crate::noise::Draw`] lays them out: after every step's main draw), and the one SDE loop,
//! [`crate::integrate_sde`], runs it.

use ndarray::{Array2, ArrayView2, ArrayViewMut2, Zip};

use crate::error::{Result, SolverError};
use crate::stepper::{SdeStepper, StepInfo, StepNoise};
use crate::system::SemiLinear;

/// Langevin corrector with score_sde's step-size rule.
///
/// Each move: s = -eps(x, t)/sigma(t), step = 2 a (r mean|z| / mean|s|)^2,
/// x <- x + step s + sqrt(2 step) z, with r the signal-to-noise ratio and a = (alpha(t0)/alpha(t1))^2
/// the one-step signal retention of the grid (score_sde's discrete DDPM alpha_i on VP and sub-VP;
/// 1 on VE and EDM). 1 NFE per move. Requires: [`SemiLinear`].
///
/// As in score_sde, |z| and |s| are the per-sample norms averaged over the batch: one step size for
/// all samples. (Per-sample norms are not an option: near a mode |s_i| -> 0 and the step blows up.)
/// The price is that a sample depends on its batch: PC output for `--n 10` is not the first 10 rows
/// of `--n 1000`, unlike every other fixed-grid sampler here.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LangevinCorrector {
    snr: f64,
    steps: usize,
}

impl LangevinCorrector {
    /// Validates snr > 0 (score_sde uses 0.16 on CIFAR-10 VE, 0.01 on VP).
    pub fn new(snr: f64, steps: usize) -> Result<Self> {
        if !(snr.is_finite() && snr > 0.0) {
            return Err(SolverError::InvalidParameter {
                name: "snr",
                value: snr,
                expected: "must be positive and finite",
            });
        }
        Ok(Self { snr, steps })
    }

    /// Moves per noise level.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// One Langevin move at time `t` with retention `a` and normals `z`; `eps` is workspace.
    pub fn correct<S: SemiLinear + ?Sized>(
        &self,
        sys: &S,
        t: f64,
        a: f64,
        mut x: ArrayViewMut2<f64>,
        z: ArrayView2<f64>,
        eps: &mut Array2<f64>,
    ) -> Result<()> {
        sys.eps(t, x.view(), eps.view_mut())?;
        let inv_sigma = 1.0 / sys.sigma(t);
        let rows = x.nrows().max(1) as f64;
        let norm = |r: ndarray::ArrayView1<f64>| r.iter().map(|v| v * v).sum::<f64>().sqrt();
        let s_norm = eps.outer_iter().map(norm).sum::<f64>() / rows * inv_sigma;
        let z_norm = z.outer_iter().map(norm).sum::<f64>() / rows;
        if s_norm == 0.0 {
            return Ok(());
        }
        let step = 2.0 * a * (self.snr * z_norm / s_norm).powi(2);
        let (cs, noise) = (-step * inv_sigma, (2.0 * step).sqrt());
        Zip::from(&mut x).and(&*eps).and(z).for_each(|x, &e, &z| *x += cs * e + noise * z);
        Ok(())
    }
}

/// Predictor-corrector: before each step of `predictor`, `corrector.steps()` Langevin moves at the
/// step's start (Song et al. 2021, Algorithm 2 with any SDE predictor).
///
/// - Weak order that of the predictor up to the corrector's O(snr^2) bias; NFE per step: the
///   predictor's plus one per corrector move. Requires: [`SemiLinear`].
/// - Draws: the predictor's main draw, then one extra draw per corrector move.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pc<P> {
    predictor: P,
    corrector: LangevinCorrector,
}

impl<P> Pc<P> {
    /// The pair.
    pub fn new(predictor: P, corrector: LangevinCorrector) -> Self {
        Self { predictor, corrector }
    }
}

/// The predictor's workspace and the corrector's eps buffer.
#[derive(Debug)]
pub struct PcState<T> {
    predictor: T,
    eps: Array2<f64>,
}

impl<S, P> SdeStepper<S> for Pc<P>
where
    S: SemiLinear + ?Sized,
    P: SdeStepper<S>,
{
    type State = PcState<P::State>;

    fn extra_draws(&self) -> usize {
        self.corrector.steps + self.predictor.extra_draws()
    }
    fn init(&self, rows: usize, cols: usize) -> Self::State {
        PcState { predictor: self.predictor.init(rows, cols), eps: Array2::zeros((rows, cols)) }
    }
    fn step(
        &self,
        sys: &S,
        at: StepInfo,
        mut x: ArrayViewMut2<f64>,
        noise: &StepNoise<'_>,
        state: &mut Self::State,
    ) -> Result<()> {
        let a = (sys.alpha(at.t0) / sys.alpha(at.t1)).powi(2);
        for j in 0..self.corrector.steps {
            self.corrector.correct(sys, at.t0, a, x.view_mut(), noise.extra(j), &mut state.eps)?;
        }
        let rest = noise.extras_from(self.corrector.steps);
        self.predictor.step(sys, at, x, &StepNoise::new(noise.main(), rest), &mut state.predictor)
    }
}

/// The predictor that does not move (score_sde's `NonePredictor`): with it, [`Pc`] is a
/// corrector-only sampler, Langevin moves at each grid point but the last. Draws its main
/// normal and ignores it. 0 NFE.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoMove;

impl<S: ?Sized> SdeStepper<S> for NoMove {
    type State = ();
    fn init(&self, _rows: usize, _cols: usize) {}
    fn step(&self, _: &S, _: StepInfo, _: ArrayViewMut2<f64>, _: &StepNoise<'_>, _: &mut ()) -> Result<()> {
        Ok(())
    }
}
