//! Euler (DDIM) with CFG++: the guided data prediction, renoised with the unconditional noise.

use ndarray::{Array2, ArrayViewMut2, Zip};

use crate::error::Result;
use crate::stepper::{OdeStepper, StepInfo};
use crate::system::GuidedSigmaSpace;

/// DDIM / Euler with CFG++ (Chung et al. 2024, "CFG++: manifold-constrained classifier free
/// guidance", algorithm 1 `ddim_cfg++`; ComfyUI `sample_euler_cfg_pp`): with the guided data
/// prediction D_g = D_u + lambda (D_c - D_u) and the unconditional D_u at sigma_0,
/// x1 = D_g + sigma_1 (x - D_u) / sigma_0: the step lands on the guided estimate and renoises it
/// with the unconditional noise, where CFG's Euler step renoises with the guided one.
/// - Not a consistent scheme for an ODE: each step moves x by lambda (D_c - D_u) beyond the
///   unconditional flow, a jump that does not shrink with the step, so the law it samples
///   depends on the number of steps (measured in `sweep guidance`). With D_g = D_u it is
///   `ddim` (order 1) to round-off.
/// - NFE per step: 1 guided evaluation (conditional and unconditional passes).
/// - Requires: [`GuidedSigmaSpace`]; steps over sigma~ levels, the last may be 0.
///   Deterministic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EulerCfgPp;

/// The guided and unconditional data predictions of the current step.
#[derive(Debug)]
pub struct EulerCfgPpState {
    guided: Array2<f64>,
    uncond: Array2<f64>,
}

impl<S: GuidedSigmaSpace + ?Sized> OdeStepper<S> for EulerCfgPp {
    type State = EulerCfgPpState;

    fn init(&self, rows: usize, cols: usize) -> EulerCfgPpState {
        EulerCfgPpState { guided: Array2::zeros((rows, cols)), uncond: Array2::zeros((rows, cols)) }
    }

    fn step(&self, sys: &S, at: StepInfo, x: ArrayViewMut2<f64>, st: &mut EulerCfgPpState) -> Result<()> {
        let (s0, s1) = (at.t0, at.t1);
        sys.denoise_pair(s0, x.view(), st.guided.view_mut(), st.uncond.view_mut())?;
        Zip::from(x).and(&st.guided).and(&st.uncond).for_each(|x, &g, &u| *x = g + (*x - u) / s0 * s1);
        Ok(())
    }
}
