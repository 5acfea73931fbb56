//! Predictor-corrector sampling with a Langevin corrector (Song et al. 2021, Algorithms 2-3).
//!
//! At each grid point the corrector runs `steps` Langevin MCMC moves that leave the current
//! marginal p_t invariant (in the limit), then any SDE stepper (the predictor) moves to the next
//! point. The corrector's noise comes from the same [`NoiseSource`] as the predictor's, under keys
//! after the predictor's (`grid steps + step * corrector steps + j`), so every draw of a sample is
//! still a pure function of its key.

use ndarray::{Array2, ArrayView2, ArrayViewMut2, Zip};

use crate::error::{Result, SolverError};
use crate::grid::TimeGrid;
use crate::noise::NoiseSource;
use crate::stepper::{check_finite, SdeStepper, StepInfo};
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

/// Integrates with `predictor` over `grid`, running `corrector` before each predictor step.
pub fn integrate_pc<S, M, B>(
    predictor: &M,
    corrector: &LangevinCorrector,
    sys: &S,
    grid: &TimeGrid,
    mut x: ArrayViewMut2<f64>,
    noise: &mut B,
    observer: &mut dyn FnMut(StepInfo),
) -> Result<()>
where
    S: SemiLinear + ?Sized,
    M: SdeStepper<S> + ?Sized,
    B: NoiseSource + ?Sized,
{
    let (rows, cols) = x.dim();
    let mut state = predictor.init(rows, cols);
    let mut z = Array2::<f64>::zeros((rows, cols));
    let mut eps = Array2::<f64>::zeros((rows, cols));
    let total = grid.steps();
    for (step, (t0, t1)) in grid.intervals().enumerate() {
        let a = (sys.alpha(t0) / sys.alpha(t1)).powi(2);
        for j in 0..corrector.steps {
            noise.normals(total + step * corrector.steps + j, z.view_mut())?;
            corrector.correct(sys, t0, a, x.view_mut(), z.view(), &mut eps)?;
        }
        noise.normals(step, z.view_mut())?;
        let at = StepInfo { step, total, t0, t1 };
        predictor.step(sys, at, x.view_mut(), z.view(), &mut state)?;
        check_finite(x.view(), step, t0, t1)?;
        observer(at);
    }
    Ok(())
}
