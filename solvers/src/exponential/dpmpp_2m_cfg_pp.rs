//! DPM-Solver++(2M) with CFG++, in ComfyUI's form.

use ndarray::{Array2, ArrayViewMut2, Zip};

use crate::error::Result;
use crate::stepper::{OdeStepper, StepInfo};
use crate::system::GuidedSigmaSpace;

/// DPM-Solver++(2M) with CFG++ (Chung et al. 2024; ComfyUI `sample_dpmpp_2m_cfg_pp`). With
/// h = ln(sigma_0 / sigma_1), the guided D_g and unconditional D_u at sigma_0 and the previous
/// step's unconditional D_u':
/// x1 = D_g + e^{-h} (x - D_u) on the first step and on a step to sigma = 0 (`euler-cfg-pp`),
/// x1 = D_g + e^{-h} (x - D_u) - expm1(-h) / (2r) (D_g - D_u') otherwise (r = h_prev / h):
/// the DPM-Solver++(2M) step of the unconditional flow from the guided estimate, whose
/// second-order correction differences the guided prediction against the previous
/// unconditional one, as ComfyUI writes it.
/// - Not a consistent scheme for an ODE (see [`crate::EulerCfgPp`]); with D_g = D_u it is
///   `dpmpp-2m` (order 2) to round-off.
/// - NFE per step: 1 guided evaluation.
/// - Requires: [`GuidedSigmaSpace`]. Deterministic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DpmPp2MCfgPp;

/// The current guided and unconditional data predictions, the previous unconditional one and
/// the previous step's h.
#[derive(Debug)]
pub struct DpmPp2MCfgPpState {
    guided: Array2<f64>,
    uncond: Array2<f64>,
    prev_uncond: Array2<f64>,
    h_prev: Option<f64>,
}

impl<S: GuidedSigmaSpace + ?Sized> OdeStepper<S> for DpmPp2MCfgPp {
    type State = DpmPp2MCfgPpState;

    fn init(&self, rows: usize, cols: usize) -> DpmPp2MCfgPpState {
        let z = || Array2::zeros((rows, cols));
        DpmPp2MCfgPpState { guided: z(), uncond: z(), prev_uncond: z(), h_prev: None }
    }
    fn step(&self, sys: &S, at: StepInfo, x: ArrayViewMut2<f64>, st: &mut DpmPp2MCfgPpState) -> Result<()> {
        let (s0, s1) = (at.t0, at.t1);
        sys.denoise_pair(s0, x.view(), st.guided.view_mut(), st.uncond.view_mut())?;
        let h = s0.ln() - s1.ln();
        let decay = (-h).exp();
        match st.h_prev {
            Some(h_prev) if s1 > 0.0 => {
                let c = (-h).exp_m1() * (1.0 / (2.0 * (h_prev / h)));
                Zip::from(x).and(&st.guided).and(&st.uncond).and(&st.prev_uncond).for_each(|x, &g, &u, &p| {
                    *x = g + (-decay * u - c * (g - p)) + decay * *x;
                });
            }
            _ => Zip::from(x).and(&st.guided).and(&st.uncond).for_each(|x, &g, &u| *x = g + -decay * u + decay * *x),
        }
        std::mem::swap(&mut st.uncond, &mut st.prev_uncond);
        st.h_prev = Some(h);
        Ok(())
    }
}
