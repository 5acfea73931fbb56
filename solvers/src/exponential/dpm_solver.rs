//! Singlestep DPM-Solver-1/2/3 on the noise prediction (k-diffusion's `DPMSolver`).

use ndarray::{Array2, ArrayViewMut2, Zip};

use crate::error::{Result, SolverError};
use crate::stepper::{OdeStepper, StepInfo};
use crate::system::SigmaSpace;

/// Per-step orders of DPM-Solver-fast for a budget of `nfe` evaluations (Lu et al. 2022a,
/// section 3.4; k-diffusion `dpm_solver_fast`): m = floor(nfe/3) + 1 steps, all of order 3 but the
/// last one(s): [3, .., 3, 2, 1] when 3 divides nfe, else [3, .., 3, nfe mod 3]. The grid for it
/// has m steps, uniform in lambda.
pub fn fast_orders(nfe: usize) -> Vec<usize> {
    let m = nfe / 3 + 1;
    if nfe.is_multiple_of(3) {
        let mut o = vec![3; m.saturating_sub(2)];
        o.extend([2, 1]);
        o
    } else {
        let mut o = vec![3; m - 1];
        o.push(nfe % 3);
        o
    }
}

/// Singlestep DPM-Solver (Lu et al. 2022a, Algorithms 1-2 with r1 = 1/2 for order 2 and
/// r1 = 1/3, r2 = 2/3 for order 3), written in EDM's variables with lambda = -log sigma and
/// h = lambda_1 - lambda_0: order 1 is x1 = x - s1 expm1(h) eps_0 (= DDIM), order 2 adds a stage at
/// lambda_0 + r1 h, order 3 two stages.
/// - Order k on a step of order k; NFE k per such step. A step to sigma = 0 is taken at order 1
///   (x1 = D(x0)), since h is infinite there. Requires: [`SigmaSpace`]. Deterministic.
/// - Orders per step: given (must match the grid's steps), or 3 everywhere; `fast_orders` gives
///   DPM-Solver-fast's schedule for an NFE budget.
/// - Reproduces k-diffusion `sample_dpm_fast` (`d2_vp-logsnr_dpm-solver-fast_nfe10`, orders 3,3,3,1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpmSolver {
    orders: Option<Vec<usize>>,
}

impl DpmSolver {
    /// Validates the orders (each 1, 2 or 3).
    pub fn new(orders: Option<Vec<usize>>) -> Result<Self> {
        if let Some(o) = &orders {
            if let Some(&bad) = o.iter().find(|&&k| !(1..=3).contains(&k)) {
                return Err(SolverError::InvalidParameter {
                    name: "orders",
                    value: bad as f64,
                    expected: "each order must be 1, 2 or 3",
                });
            }
        }
        Ok(Self { orders })
    }

    fn order_at(&self, at: &StepInfo) -> Result<usize> {
        match &self.orders {
            None => Ok(3),
            Some(o) if o.len() != at.total => Err(SolverError::DimensionMismatch {
                what: "orders (one per grid step)",
                expected: at.total,
                found: o.len(),
            }),
            Some(o) => Ok(o[at.step]),
        }
    }
}

/// Stage workspace.
#[derive(Debug)]
pub struct DpmSolverState {
    eps: Array2<f64>,
    e1: Array2<f64>,
    e2: Array2<f64>,
    u: Array2<f64>,
}

impl<S: SigmaSpace + ?Sized> OdeStepper<S> for DpmSolver {
    type State = DpmSolverState;

    fn init(&self, rows: usize, cols: usize) -> DpmSolverState {
        let z = || Array2::zeros((rows, cols));
        DpmSolverState { eps: z(), e1: z(), e2: z(), u: z() }
    }
    fn step(&self, sys: &S, at: StepInfo, mut x: ArrayViewMut2<f64>, st: &mut DpmSolverState) -> Result<()> {
        let order = self.order_at(&at)?;
        let (s0, s1) = (at.t0, at.t1);
        sys.eps(s0, x.view(), st.eps.view_mut())?;
        if s1 == 0.0 {
            // D(x0) = x0 - s0 eps_0: the limit of every order's update as h -> infinity at order 1.
            x.scaled_add(-s0, &st.eps);
            return Ok(());
        }
        let (t, t1) = (-s0.ln(), -s1.ln());
        let h = t1 - t;
        let sigma = |lam: f64| (-lam).exp();
        match order {
            1 => x.scaled_add(-s1 * h.exp_m1(), &st.eps),
            2 => {
                let r1 = 0.5;
                let s_1 = sigma(t + r1 * h);
                let c = s_1 * (r1 * h).exp_m1();
                Zip::from(&mut st.u).and(&x).and(&st.eps).for_each(|u, &x, &e| *u = x - c * e);
                sys.eps(s_1, st.u.view(), st.e1.view_mut())?;
                let (a, b) = (s1 * h.exp_m1(), s1 / (2.0 * r1) * h.exp_m1());
                Zip::from(&mut x).and(&st.eps).and(&st.e1).for_each(|x, &e, &e1| *x = *x - a * e - b * (e1 - e));
            }
            _ => {
                let (r1, r2) = (1.0 / 3.0, 2.0 / 3.0);
                let (s_1, s_2) = (sigma(t + r1 * h), sigma(t + r2 * h));
                let c1 = s_1 * (r1 * h).exp_m1();
                Zip::from(&mut st.u).and(&x).and(&st.eps).for_each(|u, &x, &e| *u = x - c1 * e);
                sys.eps(s_1, st.u.view(), st.e1.view_mut())?;
                let c2 = s_2 * (r2 * h).exp_m1();
                let c3 = s_2 * (r2 / r1) * ((r2 * h).exp_m1() / (r2 * h) - 1.0);
                Zip::from(&mut st.u)
                    .and(&x)
                    .and(&st.eps)
                    .and(&st.e1)
                    .for_each(|u, &x, &e, &e1| *u = x - c2 * e - c3 * (e1 - e));
                sys.eps(s_2, st.u.view(), st.e2.view_mut())?;
                let (a, b) = (s1 * h.exp_m1(), s1 / r2 * (h.exp_m1() / h - 1.0));
                Zip::from(&mut x).and(&st.eps).and(&st.e2).for_each(|x, &e, &e2| *x = *x - a * e - b * (e2 - e));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::fast_orders;

    #[test]
    fn fast_schedule_spends_exactly_the_budget() {
        assert_eq!(fast_orders(10), vec![3, 3, 3, 1]);
        assert_eq!(fast_orders(9), vec![3, 3, 2, 1]);
        assert_eq!(fast_orders(11), vec![3, 3, 3, 2]);
        for nfe in 3..60 {
            assert_eq!(fast_orders(nfe).iter().sum::<usize>(), nfe, "nfe {nfe}");
        }
    }
}
