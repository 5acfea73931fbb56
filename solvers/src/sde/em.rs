//! Euler-Maruyama.

use ndarray::{Array2, ArrayViewMut2};

use crate::error::Result;
use crate::par;
use crate::stepper::{SdeStepper, StepInfo, StepNoise};
use crate::system::SdeSystem;

/// Euler-Maruyama: x1 = x0 + b(t0, x0) (t1 - t0) + g(t0) dW.
///
/// - Strong order 1 for additive noise (0.5 in general), weak order 1; 1 drift evaluation per
///   step; Itô. Steps in whatever variable the system uses (t for the reverse SDE, where
///   t1 < t0 and dW has variance |t1 - t0|).
/// - Requires: [`SdeSystem`].
/// - Reference: Kloeden & Platen (1992), Section 9.1; as torchsde's `sdeint(method='euler')`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EulerMaruyama;

impl<S: SdeSystem + ?Sized> SdeStepper<S> for EulerMaruyama {
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
        drift: &mut Array2<f64>,
    ) -> Result<()> {
        let z = noise.main();
        sys.drift(at.t0, x.view(), drift.view_mut())?;
        let h = at.t1 - at.t0;
        // dW = sqrt|h| z, the Brownian increment over the step.
        let gs = sys.diffusion(at.t0) * h.abs().sqrt();
        par::zip3_mut(x, drift.view(), z, |x, b, z| *x += b * h + gs * z);
        Ok(())
    }
}
