//! DDPM's ancestral sampler with its two variance choices (diffusers' `variance_type`).

use ndarray::{Array2, ArrayViewMut2, Zip};

use super::ancestral::transition;
use crate::error::Result;
use crate::stepper::{SdeStepper, StepInfo, StepNoise};
use crate::system::SemiLinear;

/// The variance of DDPM's reverse step (Ho et al. 2020, section 3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DdpmVariance {
    /// sigma_t^2 = beta~_t = (1 - ab_{t-1}) / (1 - ab_t) beta_t, the posterior variance
    /// (`fixed_small`; optimal for a point-mass target).
    #[default]
    FixedSmall,
    /// sigma_t^2 = beta_t (`fixed_large`; optimal for x0 ~ N(0, I)).
    FixedLarge,
}

/// DDPM sampling (Ho et al. 2020, Algorithm 2) between consecutive points of a grid in t, on any
/// process: with a = alpha_t0 / alpha_t1 and v = sigma_t0^2 - a^2 sigma_t1^2 (on the discrete
/// chain v is beta_t of the step and a = sqrt(1 - beta_t)), the mean is
/// a sigma_t1^2 / sigma_t0^2 x + alpha_t1 v / sigma_t0^2 x0(x) and the variance
/// v sigma_t1^2 / sigma_t0^2 (fixed-small) or v (fixed-large). The step that reaches the data
/// (sigma_t1 = 0) adds no noise, as diffusers' `DDPMScheduler` at t = 0.
///
/// - Weak order 1; 1 NFE per step. Requires: [`SemiLinear`]. Steps in t.
/// - Reproduces diffusers `DDPMScheduler(clip_sample=False)` with recorded noise:
///   `d2_ddpm_fixed-small_n50`, `d2_ddpm_fixed-large_n50` (cases_v2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ddpm {
    variance: DdpmVariance,
}

impl Ddpm {
    /// The sampler with `variance`.
    pub fn new(variance: DdpmVariance) -> Self {
        Self { variance }
    }
}

impl<S: SemiLinear + ?Sized> SdeStepper<S> for Ddpm {
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
        let (al0, s0, al1, s1) = (sys.alpha(t0), sys.sigma(t0), sys.alpha(t1), sys.sigma(t1));
        let (cx, cd) = (a * s1 * s1 / (s0 * s0), al1 * v / (s0 * s0));
        let sd = match (s1 > 0.0, self.variance) {
            (false, _) => 0.0,
            (true, DdpmVariance::FixedSmall) => (v * s1 * s1 / (s0 * s0)).sqrt(),
            (true, DdpmVariance::FixedLarge) => v.sqrt(),
        };
        Zip::from(x).and(&*eps).and(z).for_each(|x, &e, &z| {
            let d = (*x - s0 * e) / al0;
            *x = cx * *x + cd * d + sd * z;
        });
        Ok(())
    }
}
