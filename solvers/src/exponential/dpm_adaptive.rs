//! Adaptive DPM-Solver-12 / DPM-Solver-23 (Lu et al. 2022a, section 4.2; k-diffusion
//! `sample_dpm_adaptive`).

use ndarray::{Array2, ArrayView2, ArrayViewMut2, Zip};

use crate::controller::PidController;
use crate::embedded::{integrate_adaptive, AdaptiveStats, EmbeddedStepper, Landing, Span, Trial};
use crate::error::{Result, SolverError};
use crate::stepper::StepInfo;
use crate::system::SigmaSpace;

/// Adaptive DPM-Solver in lambda = -ln sigma (Lu et al. 2022a, section 4.2, as k-diffusion's
/// `sample_dpm_adaptive` with eta = 0): an [`EmbeddedStepper`] driven by [`integrate_adaptive`]
/// with a [`PidController`]. Each attempt takes a DPM-Solver step of order `order` (2 or 3) and
/// one of order `order - 1` sharing its stages (order 3: DPM-Solver-2 with r1 = 1/3 and
/// DPM-Solver-3; order 2: DPM-Solver-1 and -2), estimates the error as the RMS of
/// (x_low - x_high) / max(atol, rtol max(|x_low|, |x_prev|)) over the batch, and sets the next
/// step with k-diffusion's PID controller (integral controller: factor = limiter(err^(-1/order)),
/// limiter(f) = 1 + atan(f - 1), accept when factor >= 0.81), starting from h = 0.05; the solve
/// ends within 1e-5 of lambda(sigma_end), steps clipped to it ([`Landing::Clip`]).
/// - Order `order`, embedded order `order - 1`; NFE `order` per attempted step (no FSAL).
///   Requires: [`SigmaSpace`]. Deterministic. Integrates from sigma_start down to sigma_end > 0.
///   The error norm couples the rows (as in k-diffusion), so a row's result depends on its batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DpmSolverAdaptive {
    order: usize,
    rtol: f64,
    atol: f64,
    h_init: f64,
    controller: PidController,
    max_steps: usize,
}

/// Per-solve workspace of [`DpmSolverAdaptive`]: the three noise predictions, the stage state,
/// both solutions of an attempt (`high` is the candidate) and the last accepted low-order
/// solution, which scales the error.
#[derive(Debug)]
pub struct DpmAdaptiveState {
    eps: Array2<f64>,
    e1: Array2<f64>,
    e2: Array2<f64>,
    u: Array2<f64>,
    low: Array2<f64>,
    high: Array2<f64>,
    prev: Array2<f64>,
}

impl DpmSolverAdaptive {
    /// Validates order 2 or 3 and positive tolerances.
    pub fn new(order: usize, rtol: f64, atol: f64) -> Result<Self> {
        if order != 2 && order != 3 {
            return Err(SolverError::InvalidParameter {
                name: "order",
                value: order as f64,
                expected: "adaptive DPM-Solver order must be 2 or 3",
            });
        }
        for (name, v) in [("rtol", rtol), ("atol", atol)] {
            if !(v.is_finite() && v > 0.0) {
                return Err(SolverError::InvalidParameter { name, value: v, expected: "must be positive and finite" });
            }
        }
        let controller = PidController::integral(order as f64)?;
        Ok(Self { order, rtol, atol, h_init: 0.05, controller, max_steps: 100_000 })
    }

    /// Integrates x (in EDM's variables) from `sigma_start` to `sigma_end` (0 < sigma_end < sigma_start)
    /// with [`integrate_adaptive`] in lambda, reporting times as sigma.
    pub fn integrate<S: SigmaSpace + ?Sized>(
        &self,
        sys: &S,
        sigma_start: f64,
        sigma_end: f64,
        x: ArrayViewMut2<f64>,
        observer: &mut dyn FnMut(StepInfo),
    ) -> Result<AdaptiveStats> {
        if !(sigma_end > 0.0 && sigma_end < sigma_start && sigma_start.is_finite()) {
            return Err(SolverError::InvalidParameter {
                name: "sigma_end",
                value: sigma_end,
                expected: "needs 0 < sigma_end < sigma_start",
            });
        }
        let span = Span {
            t0: -sigma_start.ln(),
            t1: -sigma_end.ln(),
            max_steps: self.max_steps,
            landing: Landing::Clip { end_tol: 1e-5 },
        };
        integrate_adaptive(self, &self.controller, sys, span, x, observer)
    }
}

fn sig(lambda: f64) -> f64 {
    (-lambda).exp()
}

impl<S: SigmaSpace + ?Sized> EmbeddedStepper<S> for DpmSolverAdaptive {
    type State = DpmAdaptiveState;

    fn order(&self) -> u32 {
        self.order as u32
    }

    fn embedded_order(&self) -> u32 {
        self.order as u32 - 1
    }

    fn evals_per_attempt(&self) -> usize {
        self.order
    }

    fn init(&self, rows: usize, cols: usize) -> DpmAdaptiveState {
        let z = || Array2::<f64>::zeros((rows, cols));
        DpmAdaptiveState { eps: z(), e1: z(), e2: z(), u: z(), low: z(), high: z(), prev: z() }
    }

    fn start(&self, _sys: &S, _t0: f64, _t1: f64, x: ArrayView2<f64>, st: &mut DpmAdaptiveState) -> Result<f64> {
        st.prev.assign(&x);
        Ok(self.h_init)
    }

    fn attempt(&self, sys: &S, trial: Trial, x: ArrayView2<f64>, ws: &mut DpmAdaptiveState) -> Result<f64> {
        let Trial { t0: s, t1: t, h: hs } = trial;
        let DpmAdaptiveState { eps, e1, e2, u, low, high, prev } = ws;
        sys.eps(sig(s), x.view(), eps.view_mut())?;
        let r1 = if self.order == 3 { 1.0 / 3.0 } else { 0.5 };
        let s1 = sig(s + r1 * hs);
        let c = s1 * (r1 * hs).exp_m1();
        Zip::from(&mut *u).and(&x).and(&*eps).for_each(|u, &x, &e| *u = x - c * e);
        sys.eps(s1, u.view(), e1.view_mut())?;
        let (st, em) = (sig(t), hs.exp_m1());
        // DPM-Solver-2 with stage r1: x - s_t expm1(h) eps - s_t / (2 r1) expm1(h) (e1 - eps).
        let (a2, b2) = (st * em, st / (2.0 * r1) * em);
        if self.order == 2 {
            Zip::from(&mut *low).and(&x).and(&*eps).for_each(|l, &x, &e| *l = x - st * em * e);
            Zip::from(&mut *high)
                .and(&x)
                .and(&*eps)
                .and(&*e1)
                .for_each(|o, &x, &e, &e1| *o = x - a2 * e - b2 * (e1 - e));
        } else {
            Zip::from(&mut *low)
                .and(&x)
                .and(&*eps)
                .and(&*e1)
                .for_each(|o, &x, &e, &e1| *o = x - a2 * e - b2 * (e1 - e));
            let r2 = 2.0 / 3.0;
            let s2 = sig(s + r2 * hs);
            let c2 = s2 * (r2 * hs).exp_m1();
            let c3 = s2 * (r2 / r1) * ((r2 * hs).exp_m1() / (r2 * hs) - 1.0);
            Zip::from(&mut *u).and(&x).and(&*eps).and(&*e1).for_each(|u, &x, &e, &e1| *u = x - c2 * e - c3 * (e1 - e));
            sys.eps(s2, u.view(), e2.view_mut())?;
            let b3 = st / r2 * (em / hs - 1.0);
            Zip::from(&mut *high)
                .and(&x)
                .and(&*eps)
                .and(&*e2)
                .for_each(|o, &x, &e, &e2| *o = x - a2 * e - b3 * (e2 - e));
        }
        let mut sum = 0.0;
        Zip::from(&*low).and(&*high).and(&*prev).for_each(|&l, &hi, &p| {
            let delta = self.atol.max(self.rtol * l.abs().max(p.abs()));
            let r = (l - hi) / delta;
            sum += r * r;
        });
        Ok((sum / low.len().max(1) as f64).sqrt())
    }

    fn candidate<'a>(&self, st: &'a DpmAdaptiveState) -> ArrayView2<'a, f64> {
        st.high.view()
    }

    fn accepted(&self, _sys: &S, _t: f64, _x: ArrayView2<f64>, st: &mut DpmAdaptiveState) -> Result<()> {
        st.prev.assign(&st.low);
        Ok(())
    }

    fn reported_time(&self, lambda: f64) -> f64 {
        sig(lambda)
    }
}
