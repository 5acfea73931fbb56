//! DEIS multistep (time-based Adams-Bashforth in the exponential integrator), as in diffusers.

use ndarray::{Array2, ArrayViewMut2, Zip};

use crate::error::{Result, SolverError};
use crate::exponential::multistep_order;
use crate::stepper::{OdeStepper, StepInfo};
use crate::system::SigmaSpace;

/// DEIS-tAB (Zhang & Chen 2023, eq. 15 with polynomial extrapolation in log sigma; diffusers
/// `DEISMultistepScheduler`, `algorithm_type="deis"`): in EDM's variables, where dx/dsigma = eps,
/// x_t = x_s + sum_j c_j eps_j with c_j the integral over [sigma_s, sigma_t] of the Lagrange basis
/// polynomial in log sigma of the j-th previous point (closed forms below). Order 1 is DDIM.
/// - Order `order` (2 or 3) after the warm-up steps; NFE 1 per step; diffusers' order schedule
///   ([`multistep_order`]: `lower_order_final` below 15 steps). Requires: [`SigmaSpace`].
///   Deterministic. A step to sigma = 0 is first order.
/// - Reproduces diffusers: `d2_disc_deis2_n10`, `d2_disc_deis3_n10`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deis {
    order: usize,
    lower_order_final: bool,
}

impl Deis {
    /// Validates order 1 to 3.
    pub fn new(order: usize, lower_order_final: bool) -> Result<Self> {
        if !(1..=3).contains(&order) {
            return Err(SolverError::InvalidParameter {
                name: "order",
                value: order as f64,
                expected: "DEIS order must be 1, 2 or 3",
            });
        }
        Ok(Self { order, lower_order_final })
    }
}

/// Noise predictions of the last steps (newest first) and their sigmas.
#[derive(Debug)]
pub struct DeisState {
    eps: Vec<Array2<f64>>,
    sigmas: Vec<f64>,
}

/// Antiderivative of the degree-1 Lagrange basis in u = ln t: integral of (u - ln c)/(ln b - ln c) dt.
fn ind2(t: f64, b: f64, c: f64) -> f64 {
    t * (-c.ln() + t.ln() - 1.0) / (b.ln() - c.ln())
}

/// Antiderivative of the degree-2 Lagrange basis in u = ln t with nodes b (value 1), c, d.
fn ind3(t: f64, b: f64, c: f64, d: f64) -> f64 {
    let (lt, lc, ld) = (t.ln(), c.ln(), d.ln());
    let num = t * (lc * (ld - lt + 1.0) - ld * lt + ld + lt * lt - 2.0 * lt + 2.0);
    num / ((b.ln() - lc) * (b.ln() - ld))
}

impl<S: SigmaSpace + ?Sized> OdeStepper<S> for Deis {
    type State = DeisState;

    fn init(&self, rows: usize, cols: usize) -> DeisState {
        DeisState { eps: (0..self.order).map(|_| Array2::zeros((rows, cols))).collect(), sigmas: vec![0.0; self.order] }
    }
    fn step(&self, sys: &S, at: StepInfo, mut x: ArrayViewMut2<f64>, st: &mut DeisState) -> Result<()> {
        let (s0, t) = (at.t0, at.t1);
        st.eps.rotate_right(1);
        st.sigmas.rotate_right(1);
        sys.eps(s0, x.view(), st.eps[0].view_mut())?;
        st.sigmas[0] = s0;
        let order = multistep_order(at.step, at.total, self.order, self.lower_order_final, t == 0.0);
        match order {
            1 => {
                let h = s0.ln() - t.ln();
                x.scaled_add(-t * h.exp_m1(), &st.eps[0]);
            }
            2 => {
                let s1 = st.sigmas[1];
                let c1 = ind2(t, s0, s1) - ind2(s0, s0, s1);
                let c2 = ind2(t, s1, s0) - ind2(s0, s1, s0);
                Zip::from(&mut x).and(&st.eps[0]).and(&st.eps[1]).for_each(|x, &m0, &m1| *x += c1 * m0 + c2 * m1);
            }
            _ => {
                let (s1, s2) = (st.sigmas[1], st.sigmas[2]);
                let c1 = ind3(t, s0, s1, s2) - ind3(s0, s0, s1, s2);
                let c2 = ind3(t, s1, s2, s0) - ind3(s0, s1, s2, s0);
                let c3 = ind3(t, s2, s0, s1) - ind3(s0, s2, s0, s1);
                Zip::from(&mut x)
                    .and(&st.eps[0])
                    .and(&st.eps[1])
                    .and(&st.eps[2])
                    .for_each(|x, &m0, &m1, &m2| *x += c1 * m0 + c2 * m1 + c3 * m2);
            }
        }
        Ok(())
    }
}
