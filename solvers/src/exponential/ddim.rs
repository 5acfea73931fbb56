//! Deterministic DDIM (eta = 0), which is DPM-Solver-1 and Euler in sigma space.

use ndarray::{Array2, ArrayViewMut2};

use crate::error::Result;
use crate::stepper::{OdeStepper, StepInfo};
use crate::system::SigmaSpace;

/// DDIM with eta = 0 (Song, Meng and Ermon 2021, eq. 12 with sigma_t = 0).
///
/// In x-space DDIM moves x_s to x_t = alpha_t (x_s - sigma_s eps) / alpha_s + sigma_t eps.
/// Divided by alpha_t this is, in EDM's variables (x~ = x / alpha, sigma~ = sigma / alpha),
/// x~_t = x~_s + (sigma~_t - sigma~_s) eps(x~_s, sigma~_s): one explicit Euler step of
/// dx~/dsigma~ = eps (Karras et al. 2022, section 4), and also the first-order DPM-Solver
/// (Lu et al. 2022a, eq. 3.7, `DPMSolverMultistepScheduler.dpm_solver_first_order_update`). The
/// step is written as exactly that Euler step, so it agrees bit for bit with the `euler` tableau
/// on the same sigma grid.
///
/// - Order 1 in sigma (exact for a point-mass target: one step to sigma~ = 0 lands on the point,
///   since D = x~ - sigma~ eps is then constant).
/// - NFE per step: 1 (every step, first and last included).
/// - Requires: [`SigmaSpace`]; steps over sigma~ levels, the last may be 0. Deterministic.
/// - Reproduces diffusers `DDIMScheduler` (eta = 0, `set_alpha_to_one`, trailing spacing) on its
///   own sigma table: reference case `d2_disc_ddim_n10` (peers diffusers, diffusers_f64 and
///   k-diffusion `sample_euler`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ddim;

/// The noise prediction of the current step.
#[derive(Debug)]
pub struct DdimState {
    eps: Array2<f64>,
}

impl<S: SigmaSpace + ?Sized> OdeStepper<S> for Ddim {
    type State = DdimState;

    fn init(&self, rows: usize, cols: usize) -> DdimState {
        DdimState { eps: Array2::zeros((rows, cols)) }
    }

    fn step(&self, sys: &S, at: StepInfo, mut x: ArrayViewMut2<f64>, st: &mut DdimState) -> Result<()> {
        sys.eps(at.t0, x.view(), st.eps.view_mut())?;
        x.scaled_add(at.t1 - at.t0, &st.eps);
        Ok(())
    }
}
