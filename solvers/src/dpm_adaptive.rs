//! Adaptive DPM-Solver-12 / DPM-Solver-23 (Lu et al. 2022a, section 4.2; k-diffusion
//! `sample_dpm_adaptive`).

use ndarray::{Array2, ArrayViewMut2, Zip};

use crate::adaptive::AdaptiveStats;
use crate::error::{Result, SolverError};
use crate::stepper::StepInfo;
use crate::system::SigmaSpace;

/// Adaptive DPM-Solver in lambda = -ln sigma: each attempt takes a DPM-Solver step of order
/// `order` (2 or 3) and one of order `order - 1` sharing its stages (order 3: DPM-Solver-2 with
/// r1 = 1/3 and DPM-Solver-3; order 2: DPM-Solver-1 and -2), estimates the error as the RMS of
/// (x_low - x_high) / max(atol, rtol max(|x_low|, |x_prev|)) over the batch, and sets the next
/// step with k-diffusion's PID controller (I-controller by default: factor = limiter(err^(-1/order)),
/// limiter(f) = 1 + atan(f - 1), accept when factor >= 0.81), starting from h = 0.05.
/// - Order `order`; NFE `order` per attempted step. Requires: [`SigmaSpace`]. Deterministic.
///   Integrates from sigma_start down to sigma_end > 0. The error norm couples the rows (as in
///   k-diffusion), so a row's result depends on its batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DpmSolverAdaptive {
    order: usize,
    rtol: f64,
    atol: f64,
    h_init: f64,
    accept_safety: f64,
    max_steps: usize,
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
        Ok(Self { order, rtol, atol, h_init: 0.05, accept_safety: 0.81, max_steps: 100_000 })
    }

    /// Integrates x (in EDM's variables) from `sigma_start` to `sigma_end` (0 < sigma_end < sigma_start).
    pub fn integrate<S: SigmaSpace + ?Sized>(
        &self,
        sys: &S,
        sigma_start: f64,
        sigma_end: f64,
        mut x: ArrayViewMut2<f64>,
        observer: &mut dyn FnMut(StepInfo),
    ) -> Result<AdaptiveStats> {
        if !(sigma_end > 0.0 && sigma_end < sigma_start && sigma_start.is_finite()) {
            return Err(SolverError::InvalidParameter {
                name: "sigma_end",
                value: sigma_end,
                expected: "needs 0 < sigma_end < sigma_start",
            });
        }
        let dim = x.dim();
        let z = || Array2::<f64>::zeros(dim);
        let (mut eps, mut e1, mut e2, mut u, mut low, mut high, mut prev) =
            (z(), z(), z(), z(), z(), z(), x.to_owned());
        let (t_end, order) = (-sigma_end.ln(), self.order as f64);
        let mut s = -sigma_start.ln();
        let mut h = self.h_init;
        let mut stats = AdaptiveStats::default();
        let sig = |l: f64| (-l).exp();
        while s < t_end - 1e-5 {
            if stats.accepted + stats.rejected >= self.max_steps {
                return Err(SolverError::MaxStepsExceeded { max_steps: self.max_steps, t: sig(s) });
            }
            let t = t_end.min(s + h);
            let hs = t - s;
            sys.eps(sig(s), x.view(), eps.view_mut())?;
            let r1 = if self.order == 3 { 1.0 / 3.0 } else { 0.5 };
            let s1 = sig(s + r1 * hs);
            let c = s1 * (r1 * hs).exp_m1();
            Zip::from(&mut u).and(&x).and(&eps).for_each(|u, &x, &e| *u = x - c * e);
            sys.eps(s1, u.view(), e1.view_mut())?;
            let (st, em) = (sig(t), hs.exp_m1());
            // DPM-Solver-2 with stage r1: x - s_t expm1(h) eps - s_t / (2 r1) expm1(h) (e1 - eps).
            let (a2, b2) = (st * em, st / (2.0 * r1) * em);
            if self.order == 2 {
                Zip::from(&mut low).and(&x).and(&eps).for_each(|l, &x, &e| *l = x - st * em * e);
                Zip::from(&mut high)
                    .and(&x)
                    .and(&eps)
                    .and(&e1)
                    .for_each(|o, &x, &e, &e1| *o = x - a2 * e - b2 * (e1 - e));
            } else {
                Zip::from(&mut low)
                    .and(&x)
                    .and(&eps)
                    .and(&e1)
                    .for_each(|o, &x, &e, &e1| *o = x - a2 * e - b2 * (e1 - e));
                let r2 = 2.0 / 3.0;
                let s2 = sig(s + r2 * hs);
                let c2 = s2 * (r2 * hs).exp_m1();
                let c3 = s2 * (r2 / r1) * ((r2 * hs).exp_m1() / (r2 * hs) - 1.0);
                Zip::from(&mut u).and(&x).and(&eps).and(&e1).for_each(|u, &x, &e, &e1| *u = x - c2 * e - c3 * (e1 - e));
                sys.eps(s2, u.view(), e2.view_mut())?;
                let b3 = st / r2 * (em / hs - 1.0);
                Zip::from(&mut high)
                    .and(&x)
                    .and(&eps)
                    .and(&e2)
                    .for_each(|o, &x, &e, &e2| *o = x - a2 * e - b3 * (e2 - e));
            }
            let mut sum = 0.0;
            Zip::from(&low).and(&high).and(&prev).for_each(|&l, &hi, &p| {
                let delta = self.atol.max(self.rtol * l.abs().max(p.abs()));
                let r = (l - hi) / delta;
                sum += r * r;
            });
            let error = (sum / low.len().max(1) as f64).sqrt();
            // k-diffusion's PID controller with pcoeff = dcoeff = 0, icoeff = 1.
            let inv = 1.0 / (error + 1e-8);
            let factor = 1.0 + (inv.powf(1.0 / order) - 1.0).atan();
            let accept = factor >= self.accept_safety;
            h *= factor;
            if accept {
                prev.assign(&low);
                x.assign(&high);
                observer(StepInfo { step: stats.accepted, total: 0, t0: sig(s), t1: sig(t) });
                crate::stepper::check_finite(x.view(), stats.accepted, sig(s), sig(t))?;
                s = t;
                stats.accepted += 1;
            } else {
                stats.rejected += 1;
            }
        }
        Ok(stats)
    }
}
