//! Euler ancestral sampling in sigma space (k-diffusion).

use ndarray::{Array2, ArrayViewMut2, Zip};

use crate::error::Result;
use crate::stepper::{SdeStepper, StepInfo, StepNoise};
use crate::system::SigmaSpace;

/// The ancestral split of a step from sigma s0 to s1 (k-diffusion `get_ancestral_step`):
/// sigma_up = min(s1, eta sqrt(s1^2 (s0^2 - s1^2) / s0^2)), sigma_down = sqrt(s1^2 - sigma_up^2).
pub fn ancestral_split(s0: f64, s1: f64, eta: f64) -> (f64, f64) {
    if eta == 0.0 {
        return (s1, 0.0);
    }
    let up = s1.min(eta * (s1 * s1 * (s0 * s0 - s1 * s1) / (s0 * s0)).sqrt());
    ((s1 * s1 - up * up).sqrt(), up)
}

/// Euler ancestral (k-diffusion `sample_euler_ancestral`; the ancestral sampler of Ho et al. 2020
/// written as an Euler step to sigma_down plus fresh noise of scale sigma_up): x <- x +
/// (sigma_down - s0) eps(x, s0) + s_noise sigma_up z, no noise on a step to sigma = 0.
/// - Weak order 1; NFE 1 per step. Requires: [`SigmaSpace`]. Stochastic (eta = 0: Euler).
/// - Reproduces k-diffusion with recorded noise: `d2_vp-t_euler-ancestral-sigma-fixednoise_n10`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EulerAncestral {
    eta: f64,
    s_noise: f64,
}

impl EulerAncestral {
    /// Validates eta >= 0 and s_noise >= 0.
    pub fn new(eta: f64, s_noise: f64) -> Result<Self> {
        crate::error::check_nonnegative(&[("eta", eta), ("s_noise", s_noise)])?;
        Ok(Self { eta, s_noise })
    }
}

impl<S: SigmaSpace + ?Sized> SdeStepper<S> for EulerAncestral {
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
        let (s0, s1) = (at.t0, at.t1);
        sys.eps(s0, x.view(), eps.view_mut())?;
        let (down, up) = ancestral_split(s0, s1, self.eta);
        let g = if s1 > 0.0 { self.s_noise * up } else { 0.0 };
        Zip::from(x).and(&*eps).and(z).for_each(|x, &e, &z| *x = *x + e * (down - s0) + z * g);
        Ok(())
    }
}
