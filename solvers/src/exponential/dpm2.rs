//! k-diffusion's DPM-2 sampler.

use ndarray::{Array2, ArrayViewMut2, Zip};

use crate::error::Result;
use crate::stepper::{OdeStepper, StepInfo};
use crate::system::SigmaSpace;

/// DPM-2: a midpoint step in log-sigma (k-diffusion `sample_dpm_2` without churn; Karras et al.
/// 2022, section 3, a second-order variant of their Algorithm 1 inspired by DPM-Solver-2).
///
/// x_mid = x + (s_mid - s0) eps(x, s0) with s_mid = sqrt(s0 s1) (the log-sigma midpoint), then
/// x1 = x + (s1 - s0) eps(x_mid, s_mid). A step to sigma = 0 is an Euler step.
/// - Order 2; NFE 2 per step (1 on a step to sigma = 0). Requires: [`SigmaSpace`]. Deterministic.
/// - Reproduces k-diffusion: cases `d2_vp-t_dpm2-sigma_n10`, `d2_vp-karras_dpm2-sigma_n10`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dpm2;

impl<S: SigmaSpace + ?Sized> OdeStepper<S> for Dpm2 {
    type State = [Array2<f64>; 2];

    fn init(&self, rows: usize, cols: usize) -> Self::State {
        [Array2::zeros((rows, cols)), Array2::zeros((rows, cols))]
    }
    fn step(&self, sys: &S, at: StepInfo, mut x: ArrayViewMut2<f64>, st: &mut Self::State) -> Result<()> {
        let (s0, s1) = (at.t0, at.t1);
        let [eps, mid] = st;
        sys.eps(s0, x.view(), eps.view_mut())?;
        if s1 == 0.0 {
            x.scaled_add(s1 - s0, eps);
            return Ok(());
        }
        let (l0, l1) = (s0.ln(), s1.ln());
        let s_mid = (l0 + 0.5 * (l1 - l0)).exp();
        Zip::from(&mut *mid).and(&x).and(&*eps).for_each(|m, &x, &e| *m = x + (s_mid - s0) * e);
        sys.eps(s_mid, mid.view(), eps.view_mut())?;
        x.scaled_add(s1 - s0, eps);
        Ok(())
    }
}
