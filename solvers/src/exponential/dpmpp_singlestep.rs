//! Singlestep DPM-Solver++ with data prediction on a fixed grid (diffusers'
//! `DPMSolverSinglestepScheduler`, `algorithm_type = "dpmsolver++"`).

use ndarray::{Array2, ArrayViewMut2, Zip};

use crate::error::{Result, SolverError};
use crate::exponential::{log_snr, phi, singlestep_order, History};
use crate::stepper::{OdeStepper, StepInfo};
use crate::system::SigmaSpace;

/// Singlestep DPM-Solver++(2S) / (3S) whose intermediate points are the grid's own points.
///
/// The grid's steps are grouped into blocks by the order schedule [`singlestep_order`]
/// (diffusers' `get_order_list`: [1, 2] or [1, 2, 3] repeated, the last block shortened). A
/// block starts at (x_b, sigma_b); its j-th step evaluates D at the current (intermediate)
/// state and moves from x_b, not from the current state, to the step's end with an update of
/// order j (h = ln(sigma_b / sigma_t), r = (lambda_0 - lambda_b) / h where lambda_0 is the log-SNR
/// of the newest output m_0 and m_b is the output at the block start):
///
/// - j = 1: x_t = (sigma_t / sigma_b) x_b + (1 - sigma_t / sigma_b) m_b;
/// - j = 2: x_t = (sigma_t / sigma_b) x_b + (1 - sigma_t / sigma_b) (m_b + (m_0 - m_b) / (2 r));
/// - j = 3: x_t = (sigma_t / sigma_b) x_b + (1 - sigma_t / sigma_b) m_b + h phi_2(-h) (m_0 - m_b) / r.
///
/// So a block of k steps is one step of the k-stage singlestep DPM-Solver++ (Lu et al. 2022b,
/// arXiv 2211.01095, Algorithm 1 for 2S; the third-order stage is DPM-Solver-3 of Lu et al.
/// 2022a, arXiv 2206.00927, section 3.3, in data-prediction form), with the stage points placed at the grid's
/// points; this is diffusers' "midpoint" `solver_type`, divided by alpha_t.
///
/// - Order 2 or 3 in lambda when the blocks are whole (`lower_order_final` off, the number of
///   steps a multiple of the order; diffusers lowers the order of the final block at any number
///   of steps when `lower_order_final` is set, and forces it on otherwise). A step to sigma = 0
///   is first order.
/// - NFE per step: 1 (each model call is one grid step; a block of k steps costs k).
/// - Requires: [`SigmaSpace`] (its denoiser D = x - sigma eps). Deterministic. Exact for a
///   point-mass target (D constant) in one step to sigma = 0.
/// - Reproduces diffusers 0.42 on its own sigma table: reference cases `d2_disc_dpmpp2s_n10`,
///   `d2_disc_dpmpp3s_n10` (same model-call sequence as `model_calls.npy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DpmSolverPpSinglestep {
    order: usize,
    lower_order_final: bool,
}

impl DpmSolverPpSinglestep {
    /// A singlestep DPM-Solver++ of `order` 2 or 3.
    pub fn new(order: usize, lower_order_final: bool) -> Result<Self> {
        if !(2..=3).contains(&order) {
            return Err(SolverError::InvalidParameter {
                name: "order",
                value: order as f64,
                expected: "singlestep DPM-Solver++ has order 2 or 3",
            });
        }
        Ok(Self { order, lower_order_final })
    }
}

/// The block's start state and sigma, and the data predictions of the block so far.
#[derive(Debug)]
pub struct DpmSolverPpSinglestepState {
    start: Array2<f64>,
    sigma_start: f64,
    history: History,
}

impl<S: SigmaSpace + ?Sized> OdeStepper<S> for DpmSolverPpSinglestep {
    type State = DpmSolverPpSinglestepState;

    fn init(&self, rows: usize, cols: usize) -> Self::State {
        DpmSolverPpSinglestepState {
            start: Array2::zeros((rows, cols)),
            sigma_start: f64::NAN,
            history: History::new(self.order, rows, cols),
        }
    }

    fn step(&self, sys: &S, at: StepInfo, mut x: ArrayViewMut2<f64>, st: &mut Self::State) -> Result<()> {
        let (s, t) = (at.t0, at.t1);
        let order = if t == 0.0 { 1 } else { singlestep_order(at.step, at.total, self.order, self.lower_order_final) };
        if order == 1 || st.history.is_empty() {
            st.start.assign(&x);
            st.sigma_start = s;
            st.history.clear();
        }
        let xs = x.view();
        st.history.push_with(log_snr(s), |out| sys.denoise(s, xs, out))?;
        let order = order.min(st.history.len());
        let sb = st.sigma_start;
        let (ratio, a) = (t / sb, (sb - t) / sb);
        let (lambda_b, mb) = st.history.get(order - 1);
        if order == 1 {
            Zip::from(&mut x).and(&st.start).and(mb).for_each(|x, &xb, &mb| *x = ratio * xb + a * mb);
            return Ok(());
        }
        let (lambda_0, m0) = st.history.get(0);
        let h = log_snr(t) - lambda_b;
        let r = (lambda_0 - lambda_b) / h;
        let c = if order == 2 { 0.5 * a / r } else { h * phi(-h)[1] / r };
        Zip::from(&mut x)
            .and(&st.start)
            .and(mb)
            .and(m0)
            .for_each(|x, &xb, &mb, &m0| *x = ratio * xb + a * mb + c * (m0 - mb));
        Ok(())
    }
}
