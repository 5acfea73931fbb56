//! Annealed Langevin dynamics (NCSN's sampler).

use ndarray::{Array2, ArrayViewMut2, Zip};

use crate::error::{Result, SolverError};
use crate::stepper::{SdeStepper, StepInfo, StepNoise};
use crate::system::SemiLinear;

/// Annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1): at each noise level, `moves`
/// unadjusted Langevin moves x <- x + (a/2) s(x) + sqrt(a) z with the score s of that level's
/// marginal and the step a = eps sigma^2 / sigma_L^2 (sigma_L the last level's noise). Step k of a
/// grid runs the moves of its end point t1, so the levels are the grid's points after the first
/// (the prior stands for the first); a one-step grid is plain Langevin dynamics at the noise level
/// of its end.
///
/// - Not a discretisation of an SDE in time: its error is the bias of unadjusted Langevin (on a
///   Gaussian level N(m, C) its stationary law is N(m, C (I - a C^{-1}/4)^{-1}): variances
///   inflated by the factor 1 / (1 - a / (4 c)) per eigenvalue c), plus the lack of mixing when
///   `moves` is small. NFE per step: `moves`. Requires: [`SemiLinear`] (the level's eps and sigma).
/// - Draws: `moves` per step, the main one and `moves - 1` extra.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AnnealedLangevin {
    eps: f64,
    moves: usize,
    sigma_last: f64,
}

impl AnnealedLangevin {
    /// Validates eps > 0, moves >= 1 and sigma_last > 0 (the noise std of the last level).
    pub fn new(eps: f64, moves: usize, sigma_last: f64) -> Result<Self> {
        if !(eps.is_finite() && eps > 0.0) {
            return Err(SolverError::InvalidParameter {
                name: "step_size",
                value: eps,
                expected: "must be positive and finite",
            });
        }
        if moves == 0 {
            return Err(SolverError::InvalidParameter {
                name: "langevin_steps",
                value: 0.0,
                expected: "must be at least 1",
            });
        }
        if !(sigma_last.is_finite() && sigma_last > 0.0) {
            return Err(SolverError::InvalidParameter {
                name: "sigma at the last level",
                value: sigma_last,
                expected: "must be positive: Langevin needs the score of a noised level (end the grid above sigma = 0)",
            });
        }
        Ok(Self { eps, moves, sigma_last })
    }
}

impl<S: SemiLinear + ?Sized> SdeStepper<S> for AnnealedLangevin {
    type State = Array2<f64>;
    fn extra_draws(&self) -> usize {
        self.moves - 1
    }
    fn init(&self, rows: usize, cols: usize) -> Array2<f64> {
        Array2::zeros((rows, cols))
    }
    fn step(
        &self,
        sys: &S,
        at: StepInfo,
        mut x: ArrayViewMut2<f64>,
        noise: &StepNoise<'_>,
        eps: &mut Array2<f64>,
    ) -> Result<()> {
        let t = at.t1;
        let sigma = sys.sigma(t);
        let a = self.eps * (sigma / self.sigma_last).powi(2);
        // score = -eps / sigma, so (a/2) s = -(a / (2 sigma)) eps.
        let (ce, cz) = (-0.5 * a / sigma, a.sqrt());
        for j in 0..self.moves {
            let z = if j == 0 { noise.main() } else { noise.extra(j - 1) };
            sys.eps(t, x.view(), eps.view_mut())?;
            Zip::from(&mut x).and(&*eps).and(z).for_each(|x, &e, &z| *x += ce * e + cz * z);
        }
        Ok(())
    }
}
