//! Explicit Euler on the probability-flow ODE with log-sigma as the variable.

use ndarray::{Array2, ArrayViewMut2};

use crate::error::Result;
use crate::stepper::{OdeStepper, StepInfo};
use crate::system::SigmaSpace;

/// Explicit Euler in lambda = -ln sigma~ (half the log-SNR): with x~ = x / alpha the flow is
/// dx~/dlambda = -sigma~ eps(x~, sigma~), so a step from s0 to s1 is
/// x~ <- x~ + s0 ln(s1 / s0) eps(x~, s0). DDIM is the same equation stepped in sigma~ (its factor
/// is s1 - s0); the two agree to first order, and this one does not integrate the linear part
/// exactly, which is what the exponential integrators add.
///
/// - Order 1; NFE 1 per step. A step to sigma~ = 0 (lambda = infinity) is the Euler step in
///   sigma~, as in EDM and k-diffusion.
/// - Requires: [`SigmaSpace`]; deterministic.
/// - Reference: the log-SNR change of variables of Lu et al. 2022a, section 3.1, stepped with
///   Euler's method instead of their exponential integrator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EulerLogSnr;

impl<S: SigmaSpace + ?Sized> OdeStepper<S> for EulerLogSnr {
    type State = Array2<f64>;

    fn init(&self, rows: usize, cols: usize) -> Array2<f64> {
        Array2::zeros((rows, cols))
    }

    fn step(&self, sys: &S, at: StepInfo, mut x: ArrayViewMut2<f64>, eps: &mut Array2<f64>) -> Result<()> {
        let (s0, s1) = (at.t0, at.t1);
        sys.eps(s0, x.view(), eps.view_mut())?;
        let h = if s1 > 0.0 { s0 * (s1 / s0).ln() } else { s1 - s0 };
        x.scaled_add(h, eps);
        Ok(())
    }
}
