//! Ancestral (DDPM posterior) and reverse-diffusion (Song) steps in process time.

use ndarray::{Array2, ArrayViewMut2, Zip};

use super::ddpm::{Ddpm, DdpmVariance};
use crate::error::Result;
use crate::stepper::{SdeStepper, StepInfo, StepNoise};
use crate::system::SemiLinear;

/// Coefficients of the forward transition from t1 to t0 > t1: x_t0 = a x_t1 + sqrt(v) z.
pub(crate) fn transition<S: SemiLinear + ?Sized>(sys: &S, t0: f64, t1: f64) -> (f64, f64) {
    let a = sys.alpha(t0) / sys.alpha(t1);
    let (s0, s1) = (sys.sigma(t0), sys.sigma(t1));
    (a, (s0 * s0 - a * a * s1 * s1).max(0.0))
}

/// Ancestral sampling: draw x_t1 from the Gaussian posterior q(x_t1 | x_t0, x0 = D(x_t0)), with
/// the data prediction D from Tweedie's formula. On the VP process this is DDPM's sampler (Ho et
/// al. 2020, Algorithm 2) on an arbitrary grid, i.e. DDIM with eta = 1 (Song et al. 2021a, eq. 16).
///
/// - Weak order 1; 1 NFE per step; the step is exact when the target is a point mass.
/// - With a = alpha_t0/alpha_t1 and v = sigma_t0^2 - a^2 sigma_t1^2 (the forward transition):
///   mean = a sigma_t1^2/sigma_t0^2 x + alpha_t1 v/sigma_t0^2 D, variance v sigma_t1^2/sigma_t0^2.
/// - Requires: [`SemiLinear`] (alpha, sigma, eps in t). Steps in t.
/// - The step is [`Ddpm`] with [`DdpmVariance::FixedSmall`]; this is its name on any grid.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ancestral;

impl<S: SemiLinear + ?Sized> SdeStepper<S> for Ancestral {
    type State = Array2<f64>;
    fn init(&self, rows: usize, cols: usize) -> Array2<f64> {
        Array2::zeros((rows, cols))
    }
    fn step(
        &self,
        sys: &S,
        at: StepInfo,
        x: ArrayViewMut2<f64>,
        noise: &StepNoise<'_>,
        eps: &mut Array2<f64>,
    ) -> Result<()> {
        // The posterior step is DDPM's with the fixed-small variance (which adds no noise on a
        // step to sigma = 0, where the posterior variance is 0 anyway).
        Ddpm::new(DdpmVariance::FixedSmall).step(sys, at, x, noise, eps)
    }
}

/// Song et al.'s reverse-diffusion predictor (Song et al. 2021, eq. 46 and Algorithms 2-3): the
/// reverse of the forward discretisation x_t0 = a x_t1 + sqrt(v) z, evaluated at x_t0:
/// x_t1 = (2 - a) x + v s(x, t0) + sqrt(v) z. On VE this is SMLD's update
/// (x + (sigma_0^2 - sigma_1^2) s + sqrt(sigma_0^2 - sigma_1^2) z); on VP, with v = 1 - a^2 = beta_i,
/// score_sde's (2 - sqrt(1 - beta_i)) x + beta_i s + sqrt(beta_i) z. Unlike score_sde, a and v come
/// from the grid's own end points (no table lookup by truncated index).
///
/// - Weak order 1; 1 NFE per step. Requires: [`SemiLinear`]. Steps in t.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReverseDiffusion;

impl<S: SemiLinear + ?Sized> SdeStepper<S> for ReverseDiffusion {
    type State = Array2<f64>;
    fn init(&self, rows: usize, cols: usize) -> Array2<f64> {
        Array2::zeros((rows, cols))
    }
    fn step(
        &self,
        sys: &S,
        at: StepInfo,
        x: ArrayViewMut2<f64>,
        noise: &StepNoise<'_>,
        eps: &mut Array2<f64>,
    ) -> Result<()> {
        let z = noise.main();
        let (t0, t1) = (at.t0, at.t1);
        sys.eps(t0, x.view(), eps.view_mut())?;
        let (a, v) = transition(sys, t0, t1);
        // score = -eps / sigma_t0.
        let (cs, g) = (v / sys.sigma(t0), v.sqrt());
        Zip::from(x).and(&*eps).and(z).for_each(|x, &e, &z| *x = (2.0 - a) * *x - cs * e + g * z);
        Ok(())
    }
}
