//! Adaptive step sizes from an embedded Runge-Kutta pair with a PI controller.
//!
//! The error of a step is the RMS over every entry of the batch of
//! `e / (atol + rtol * max(|x0|, |x1|))` with `e = h * sum_i b_err_i k_i`; a step is accepted when
//! it is at most 1. The next step size is `h * clamp(safety * err^(-beta1) * err_prev^(beta2),
//! min_factor, max_factor)` with the PI gains of Hairer & Wanner (Solving ODEs II, IV.2,
//! beta1 = 0.7 / q, beta2 = 0.4 / q, q = embedded order + 1). The first step is chosen by
//! Hairer, Norsett & Wanner's algorithm (Solving ODEs I, II.4) unless given.
//!
//! Because the norm is taken over the whole batch (as in torchdiffeq and diffrax), the accepted
//! steps depend on every row: an adaptive solve of a subset of rows is not a subset of the
//! solve of all rows. Fixed grids have no such coupling.

use ndarray::{Array2, ArrayViewMut2, Zip};

use crate::error::{Result, SolverError};
use crate::rk::combine;
use crate::stepper::{check_finite, StepInfo};
use crate::system::OdeSystem;
use crate::tableau::ButcherTableau;

/// Tolerances and controller settings of an adaptive solve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdaptiveOptions {
    /// Relative tolerance.
    pub rtol: f64,
    /// Absolute tolerance.
    pub atol: f64,
    /// Initial step size magnitude; `None` selects it automatically (one extra evaluation).
    pub first_step: Option<f64>,
    /// Safety factor on the proposed step.
    pub safety: f64,
    /// Smallest step-size ratio per step.
    pub min_factor: f64,
    /// Largest step-size ratio per step.
    pub max_factor: f64,
    /// Maximum number of attempted steps.
    pub max_steps: usize,
}

impl AdaptiveOptions {
    /// Validated options with default controller settings (safety 0.9, factors in [0.2, 10],
    /// at most 100 000 steps).
    pub fn new(rtol: f64, atol: f64) -> Result<Self> {
        for (name, v) in [("rtol", rtol), ("atol", atol)] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(SolverError::InvalidParameter { name, value: v, expected: "must be finite and >= 0" });
            }
        }
        if rtol == 0.0 && atol == 0.0 {
            return Err(SolverError::InvalidParameter {
                name: "rtol",
                value: 0.0,
                expected: "rtol and atol cannot both be 0",
            });
        }
        Ok(Self { rtol, atol, first_step: None, safety: 0.9, min_factor: 0.2, max_factor: 10.0, max_steps: 100_000 })
    }
}

/// Counts of an adaptive solve.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AdaptiveStats {
    /// Accepted steps.
    pub accepted: usize,
    /// Rejected steps.
    pub rejected: usize,
}

/// An embedded pair (Dormand-Prince 5(4), Tsitouras 5(4)) with error control.
///
/// - Order: the tableau's (5 for both pairs); NFE: stages - 1 per attempted step with FSAL, plus
///   one at the start (and one more for automatic first-step selection).
/// - Requires: [`OdeSystem`]; the tableau must have `b_err`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdaptiveRk {
    tableau: ButcherTableau,
    opts: AdaptiveOptions,
}

impl AdaptiveRk {
    /// Fails if the tableau has no embedded error estimate.
    pub fn new(tableau: ButcherTableau, opts: AdaptiveOptions) -> Result<Self> {
        if tableau.b_err.is_none() {
            return Err(SolverError::InvalidParameter {
                name: "tableau",
                value: tableau.order as f64,
                expected: "adaptive stepping needs an embedded pair (dopri5, tsit5)",
            });
        }
        Ok(Self { tableau, opts })
    }

    /// The options.
    pub fn options(&self) -> &AdaptiveOptions {
        &self.opts
    }

    fn scaled_rms(&self, e: &Array2<f64>, x0: &ArrayViewMut2<f64>, x1: &Array2<f64>) -> f64 {
        let (rtol, atol) = (self.opts.rtol, self.opts.atol);
        let mut sum = 0.0;
        Zip::from(e).and(x0).and(x1).for_each(|&e, &a, &b| {
            let r = e / (atol + rtol * a.abs().max(b.abs()));
            sum += r * r;
        });
        (sum / e.len().max(1) as f64).sqrt()
    }

    fn initial_step<S: OdeSystem + ?Sized>(
        &self,
        sys: &S,
        t0: f64,
        t1: f64,
        x: &ArrayViewMut2<f64>,
        f0: &Array2<f64>,
        work: &mut [Array2<f64>; 2],
    ) -> Result<f64> {
        let (rtol, atol) = (self.opts.rtol, self.opts.atol);
        let rms = |v: &Array2<f64>| -> f64 {
            let mut s = 0.0;
            Zip::from(v).and(x).for_each(|&v, &x| {
                let r = v / (atol + rtol * x.abs());
                s += r * r;
            });
            (s / v.len().max(1) as f64).sqrt()
        };
        let xs = x.to_owned();
        let d0 = rms(&xs);
        let d1 = rms(f0);
        let h0 = if d0 < 1e-5 || d1 < 1e-5 { 1e-6 } else { 0.01 * d0 / d1 };
        let h0 = h0.min((t1 - t0).abs());
        let dir = (t1 - t0).signum();
        let [x1, f1] = work;
        x1.assign(x);
        x1.scaled_add(dir * h0, f0);
        sys.rhs(t0 + dir * h0, x1.view(), f1.view_mut())?;
        Zip::from(&mut *f1).and(f0).for_each(|f1, &f0| *f1 -= f0);
        let d2 = rms(f1) / h0;
        let q = (self.tableau.order + 1) as f64;
        let h1 = if d1.max(d2) <= 1e-15 { (h0 * 1e-3).max(1e-6) } else { (0.01 / d1.max(d2)).powf(1.0 / q) };
        Ok((100.0 * h0).min(h1).min((t1 - t0).abs()))
    }

    /// Integrates from `t0` to `t1` (either direction) in place.
    pub fn integrate<S: OdeSystem + ?Sized>(
        &self,
        sys: &S,
        t0: f64,
        t1: f64,
        mut x: ArrayViewMut2<f64>,
        observer: &mut dyn FnMut(StepInfo),
    ) -> Result<AdaptiveStats> {
        for (name, v) in [("t0", t0), ("t1", t1)] {
            if !v.is_finite() {
                return Err(SolverError::InvalidParameter { name, value: v, expected: "must be finite" });
            }
        }
        if t0 == t1 {
            return Err(SolverError::InvalidParameter { name: "t1", value: t1, expected: "must differ from t0" });
        }
        let tab = &self.tableau;
        let b_err = tab.b_err.expect("checked in new");
        let s = tab.stages();
        let dim = x.dim();
        let mut k: Vec<Array2<f64>> = (0..s).map(|_| Array2::zeros(dim)).collect();
        let mut tmp = Array2::zeros(dim);
        let mut err = Array2::zeros(dim);
        let dir = (t1 - t0).signum();
        sys.rhs(t0, x.view(), k[0].view_mut())?;
        let mut h = match self.opts.first_step {
            Some(h) if h.is_finite() && h > 0.0 => h.min((t1 - t0).abs()),
            Some(h) => {
                return Err(SolverError::InvalidParameter { name: "first_step", value: h, expected: "must be > 0" })
            }
            None => {
                let mut work = [Array2::zeros(dim), Array2::zeros(dim)];
                self.initial_step(sys, t0, t1, &x, &k[0], &mut work)?
            }
        };
        let q = (tab.embedded_order + 1) as f64;
        let (beta1, beta2) = (0.7 / q, 0.4 / q);
        let mut err_prev: f64 = 1.0;
        let mut stats = AdaptiveStats::default();
        let mut t = t0;
        let mut last_rejected = false;
        while (t1 - t) * dir > 0.0 {
            if stats.accepted + stats.rejected >= self.opts.max_steps {
                return Err(SolverError::MaxStepsExceeded { max_steps: self.opts.max_steps, t });
            }
            let remaining = (t1 - t).abs();
            let last = h >= remaining * (1.0 - 1e-12);
            let hs = if last { remaining * dir } else { h * dir };
            if hs.abs() <= 16.0 * f64::EPSILON * t.abs().max(1.0) {
                return Err(SolverError::StepSizeTooSmall { t, h: hs.abs() });
            }
            let t_new = if last { t1 } else { t + hs };
            for i in 1..s {
                tmp.assign(&x);
                for (j, &a) in tab.a[i].iter().enumerate() {
                    if a != 0.0 {
                        tmp.scaled_add(hs * a, &k[j]);
                    }
                }
                let ti = if tab.c[i] == 1.0 { t_new } else { t + tab.c[i] * hs };
                sys.rhs(ti, tmp.view(), k[i].view_mut())?;
            }
            // Candidate solution: the last stage state of an FSAL pair, else x + h sum b_i k_i.
            if !tab.fsal {
                tmp.assign(&x);
                combine(&mut tmp.view_mut(), hs, tab.b, &k);
            }
            err.fill(0.0);
            combine(&mut err.view_mut(), hs, b_err, &k);
            let e = self.scaled_rms(&err, &x, &tmp);
            if !e.is_finite() {
                // A non-finite trial state: shrink hard and retry.
                stats.rejected += 1;
                h *= self.opts.min_factor;
                last_rejected = true;
                continue;
            }
            if e <= 1.0 {
                x.assign(&tmp);
                check_finite(x.view(), stats.accepted, t, t_new)?;
                observer(StepInfo { step: stats.accepted, total: 0, t0: t, t1: t_new });
                stats.accepted += 1;
                t = t_new;
                if tab.fsal {
                    k.swap(0, s - 1);
                } else {
                    sys.rhs(t, x.view(), k[0].view_mut())?;
                }
                let mut factor = if e == 0.0 {
                    self.opts.max_factor
                } else {
                    self.opts.safety * e.powf(-beta1) * err_prev.powf(beta2)
                };
                factor = factor.clamp(self.opts.min_factor, self.opts.max_factor);
                if last_rejected {
                    factor = factor.min(1.0);
                }
                h = hs.abs() * factor;
                err_prev = e.max(1e-4);
                last_rejected = false;
            } else {
                stats.rejected += 1;
                let factor = (self.opts.safety * e.powf(-1.0 / q)).max(self.opts.min_factor);
                h = hs.abs() * factor;
                last_rejected = true;
            }
        }
        Ok(stats)
    }
}
