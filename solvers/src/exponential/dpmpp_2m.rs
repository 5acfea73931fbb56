//! DPM-Solver++(2M) as in k-diffusion.

use ndarray::{Array2, ArrayViewMut2, Zip};

use crate::error::Result;
use crate::stepper::{OdeStepper, StepInfo};
use crate::system::SigmaSpace;

/// DPM-Solver++(2M) (Lu et al. 2022b, Algorithm 2; k-diffusion `sample_dpmpp_2m`): multistep on
/// the data prediction D in lambda = -log sigma. With h = lambda_1 - lambda_0 and r = h_prev / h,
/// D' = (1 + 1/(2r)) D_0 - 1/(2r) D_prev (D' = D_0 on the first step and on a step to sigma = 0),
/// x1 = (s1/s0) x - expm1(-h) D'.
/// - Order 2; NFE 1 per step. Requires: [`SigmaSpace`]. Deterministic. Exact on a point mass.
/// - Reproduces k-diffusion (`d2_vp-t_dpmpp2m-sigma_n10`, `d2_vp-karras_dpmpp2m-sigma_n10`,
///   `d2_ve-t_dpmpp2m-sigma_n10`) and diffusers' DPMSolverMultistep dpmsolver++ order 2 with
///   `lower_order_final` on 10 steps (`d2_disc_dpmpp2m_n10`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DpmPp2M;

/// Current and previous data predictions, and the previous step's h.
#[derive(Debug)]
pub struct DpmPp2MState {
    d: Array2<f64>,
    prev: Array2<f64>,
    h_prev: Option<f64>,
}

impl<S: SigmaSpace + ?Sized> OdeStepper<S> for DpmPp2M {
    type State = DpmPp2MState;

    fn init(&self, rows: usize, cols: usize) -> DpmPp2MState {
        DpmPp2MState { d: Array2::zeros((rows, cols)), prev: Array2::zeros((rows, cols)), h_prev: None }
    }
    fn step(&self, sys: &S, at: StepInfo, x: ArrayViewMut2<f64>, st: &mut DpmPp2MState) -> Result<()> {
        let (s0, s1) = (at.t0, at.t1);
        sys.denoise(s0, x.view(), st.d.view_mut())?;
        let h = s0.ln() - s1.ln();
        let (ratio, c) = (s1 / s0, -(-h).exp_m1());
        match st.h_prev {
            Some(h_prev) if s1 > 0.0 => {
                let r = h_prev / h;
                let (a, b) = (1.0 + 1.0 / (2.0 * r), 1.0 / (2.0 * r));
                Zip::from(x).and(&st.d).and(&st.prev).for_each(|x, &d, &p| *x = ratio * *x + c * (a * d - b * p));
            }
            _ => Zip::from(x).and(&st.d).for_each(|x, &d| *x = ratio * *x + c * d),
        }
        std::mem::swap(&mut st.d, &mut st.prev);
        st.h_prev = Some(h);
        Ok(())
    }
}
