//! DPM-Solver++(2M) SDE (k-diffusion, midpoint variant).

use ndarray::{Array2, ArrayViewMut2, Zip};

use crate::error::Result;
use crate::stepper::{SdeStepper, StepInfo, StepNoise};
use crate::system::SigmaSpace;

/// DPM-Solver++(2M) SDE (Lu et al. 2022b, section 5 and appendix; k-diffusion
/// `sample_dpmpp_2m_sde` with `solver_type='midpoint'`): with lambda = -log sigma, h = lambda_1 -
/// lambda_0 and eta_h = eta h,
/// x1 = (s1/s0) e^{-eta_h} x + (1 - e^{-h - eta_h}) D_0
///      + (1/2) (1 - e^{-h - eta_h}) (D_0 - D_prev) / r     (from the second step; r = h_prev / h)
///      + s_noise s1 sqrt(1 - e^{-2 eta_h}) z,
/// and x1 = D_0 on a step to sigma = 0.
/// - Weak order 1 for eta > 0 (second order as an ODE solver at eta = 0); NFE 1 per step.
///   Requires: [`SigmaSpace`]. Stochastic.
/// - Reproduces k-diffusion with recorded noise: `d2_vp-t_dpmpp2m-sde-sigma-fixednoise_n10`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DpmPp2MSde {
    eta: f64,
    s_noise: f64,
}

impl DpmPp2MSde {
    /// Validates eta >= 0 and s_noise >= 0.
    pub fn new(eta: f64, s_noise: f64) -> Result<Self> {
        crate::error::check_nonnegative(&[("eta", eta), ("s_noise", s_noise)])?;
        Ok(Self { eta, s_noise })
    }
}

/// Current and previous data predictions, and the previous step's h.
#[derive(Debug)]
pub struct DpmPp2MSdeState {
    d: Array2<f64>,
    prev: Array2<f64>,
    h_prev: Option<f64>,
}

impl<S: SigmaSpace + ?Sized> SdeStepper<S> for DpmPp2MSde {
    type State = DpmPp2MSdeState;
    fn init(&self, rows: usize, cols: usize) -> DpmPp2MSdeState {
        DpmPp2MSdeState { d: Array2::zeros((rows, cols)), prev: Array2::zeros((rows, cols)), h_prev: None }
    }
    fn step(
        &self,
        sys: &S,
        at: StepInfo,
        mut x: ArrayViewMut2<f64>,
        noise: &StepNoise<'_>,
        st: &mut DpmPp2MSdeState,
    ) -> Result<()> {
        let z = noise.main();
        let (s0, s1) = (at.t0, at.t1);
        sys.denoise(s0, x.view(), st.d.view_mut())?;
        if s1 == 0.0 {
            x.assign(&st.d);
        } else {
            let h = s0.ln() - s1.ln();
            let eta_h = self.eta * h;
            let a = s1 / s0 * (-eta_h).exp();
            let c = -(-h - eta_h).exp_m1();
            let g = self.s_noise * s1 * (-(-2.0 * eta_h).exp_m1()).sqrt();
            let use_noise = self.eta != 0.0;
            match st.h_prev {
                Some(h_prev) => {
                    let half = 0.5 * c * h / h_prev;
                    Zip::from(&mut x).and(&st.d).and(&st.prev).and(z).for_each(|x, &d, &p, &z| {
                        let mut v = a * *x + c * d;
                        v += half * (d - p);
                        if use_noise {
                            v += z * g;
                        }
                        *x = v;
                    });
                }
                None => Zip::from(&mut x).and(&st.d).and(z).for_each(|x, &d, &z| {
                    let mut v = a * *x + c * d;
                    if use_noise {
                        v += z * g;
                    }
                    *x = v;
                }),
            }
            st.h_prev = Some(h);
        }
        std::mem::swap(&mut st.d, &mut st.prev);
        Ok(())
    }
}
