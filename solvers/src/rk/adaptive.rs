//! Adaptive step sizes from an embedded Runge-Kutta pair with a PI controller.
//!
//! The error of a step is the RMS over every entry of the batch of
//! `e / (atol + rtol * max(|x0|, |x1|))` with `e = h * sum_i b_err_i k_i`; a step is accepted when
//! it is at most 1. The next step size is `h * clamp(safety * err^(-beta1) * err_prev^(beta2),
//! min_factor, max_factor)` with the PI gains of Hairer & Wanner (Solving ODEs II, IV.2,
//! beta1 = 0.7 / q, beta2 = 0.4 / q, q = embedded order + 1). The first step is chosen by
//! Hairer, Norsett & Wanner's algorithm (Solving ODEs I, II.4) unless given. The pair is an
//! [`EmbeddedStepper`], the controller a [`PiController`], and the loop the shared
//! [`integrate_adaptive`].
//!
//! Because the norm is taken over the whole batch (as in torchdiffeq and diffrax), the accepted
//! steps depend on every row: an adaptive solve of a subset of rows is not a subset of the
//! solve of all rows. Fixed grids have no such coupling.

use ndarray::{Array2, ArrayView2, ArrayViewMut2, Zip};

use crate::controller::PiController;
pub use crate::embedded::AdaptiveStats;
use crate::embedded::{integrate_adaptive, EmbeddedStepper, Landing, Span, Trial};
use crate::error::{Result, SolverError};
use crate::rk::explicit::combine;
use crate::rk::tableau::ButcherTableau;
use crate::stepper::StepInfo;
use crate::system::OdeSystem;

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

/// An embedded Runge-Kutta pair (Dormand-Prince 5(4), Tsitouras 5(4)) with error control
/// (Hairer, Norsett & Wanner, Solving ODEs I, II.4 and II.5): an [`EmbeddedStepper`] driven by
/// [`integrate_adaptive`] with the [`PiController`] built from the options.
///
/// - Order: the tableau's (5 for both pairs), embedded order 4; NFE: stages - 1 per attempted
///   step (6 for both pairs), plus one per accepted step for a pair without FSAL, one at the
///   start, and one more for automatic first-step selection.
/// - Requires: [`OdeSystem`]; the tableau must have `b_err`; valid controller settings
///   (see [`PiController::new`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdaptiveRk {
    tableau: ButcherTableau,
    b_err: &'static [f64],
    opts: AdaptiveOptions,
    controller: PiController,
}

/// Per-solve workspace of [`AdaptiveRk`]: stage derivatives (`k[0]` holds F at the current
/// state), the stage state (the candidate) and the error estimate.
#[derive(Debug)]
pub struct AdaptiveRkState {
    k: Vec<Array2<f64>>,
    tmp: Array2<f64>,
    err: Array2<f64>,
}

impl AdaptiveRk {
    /// Fails if the tableau has no embedded error estimate or the controller settings of `opts`
    /// are out of range.
    pub fn new(tableau: ButcherTableau, opts: AdaptiveOptions) -> Result<Self> {
        let Some(b_err) = tableau.b_err else {
            return Err(SolverError::InvalidParameter {
                name: "tableau",
                value: tableau.order as f64,
                expected: "adaptive stepping needs an embedded pair (dopri5, tsit5)",
            });
        };
        let controller = PiController::new(tableau.embedded_order, opts.safety, opts.min_factor, opts.max_factor)?;
        Ok(Self { tableau, b_err, opts, controller })
    }

    /// The options.
    pub fn options(&self) -> &AdaptiveOptions {
        &self.opts
    }

    fn scaled_rms(&self, e: &Array2<f64>, x0: &ArrayView2<f64>, x1: &Array2<f64>) -> f64 {
        let (rtol, atol) = (self.opts.rtol, self.opts.atol);
        let mut sum = 0.0;
        Zip::from(e).and(x0).and(x1).for_each(|&e, &a, &b| {
            let r = e / (atol + rtol * a.abs().max(b.abs()));
            sum += r * r;
        });
        (sum / e.len().max(1) as f64).sqrt()
    }

    /// Hairer, Norsett & Wanner's starting step (Solving ODEs I, II.4) from F(t0, x) in `k[0]`,
    /// with the stage state and error buffers as scratch.
    fn initial_step<S: OdeSystem + ?Sized>(
        &self,
        sys: &S,
        t0: f64,
        t1: f64,
        x: &ArrayView2<f64>,
        st: &mut AdaptiveRkState,
    ) -> Result<f64> {
        let AdaptiveRkState { k, tmp: x1, err: f1 } = st;
        let f0 = &k[0];
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
        x1.assign(x);
        x1.scaled_add(dir * h0, f0);
        sys.rhs(t0 + dir * h0, x1.view(), f1.view_mut())?;
        Zip::from(&mut *f1).and(f0).for_each(|f1, &f0| *f1 -= f0);
        let d2 = rms(f1) / h0;
        let q = (self.tableau.order + 1) as f64;
        let h1 = if d1.max(d2) <= 1e-15 { (h0 * 1e-3).max(1e-6) } else { (0.01 / d1.max(d2)).powf(1.0 / q) };
        Ok((100.0 * h0).min(h1).min((t1 - t0).abs()))
    }

    /// Integrates from `t0` to `t1` (either direction) in place; see [`integrate_adaptive`] for the
    /// errors.
    pub fn integrate<S: OdeSystem + ?Sized>(
        &self,
        sys: &S,
        t0: f64,
        t1: f64,
        x: ArrayViewMut2<f64>,
        observer: &mut dyn FnMut(StepInfo),
    ) -> Result<AdaptiveStats> {
        let span = Span { t0, t1, max_steps: self.opts.max_steps, landing: Landing::Snap };
        integrate_adaptive(self, &self.controller, sys, span, x, observer)
    }
}

impl<S: OdeSystem + ?Sized> EmbeddedStepper<S> for AdaptiveRk {
    type State = AdaptiveRkState;

    fn order(&self) -> u32 {
        self.tableau.order
    }

    fn embedded_order(&self) -> u32 {
        self.tableau.embedded_order
    }

    fn evals_per_attempt(&self) -> usize {
        self.tableau.stages() - 1
    }

    fn init(&self, rows: usize, cols: usize) -> AdaptiveRkState {
        let dim = (rows, cols);
        AdaptiveRkState {
            k: (0..self.tableau.stages()).map(|_| Array2::zeros(dim)).collect(),
            tmp: Array2::zeros(dim),
            err: Array2::zeros(dim),
        }
    }

    fn start(&self, sys: &S, t0: f64, t1: f64, x: ArrayView2<f64>, st: &mut AdaptiveRkState) -> Result<f64> {
        sys.rhs(t0, x, st.k[0].view_mut())?;
        match self.opts.first_step {
            Some(h) if h.is_finite() && h > 0.0 => Ok(h.min((t1 - t0).abs())),
            Some(h) => Err(SolverError::InvalidParameter { name: "first_step", value: h, expected: "must be > 0" }),
            None => self.initial_step(sys, t0, t1, &x, st),
        }
    }

    fn attempt(&self, sys: &S, trial: Trial, x: ArrayView2<f64>, st: &mut AdaptiveRkState) -> Result<f64> {
        let tab = &self.tableau;
        let Trial { t0: t, t1: t_new, h: hs } = trial;
        let AdaptiveRkState { k, tmp, err } = st;
        for i in 1..tab.stages() {
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
            combine(&mut tmp.view_mut(), hs, tab.b, k);
        }
        err.fill(0.0);
        combine(&mut err.view_mut(), hs, self.b_err, k);
        Ok(self.scaled_rms(err, &x, tmp))
    }

    fn candidate<'a>(&self, st: &'a AdaptiveRkState) -> ArrayView2<'a, f64> {
        st.tmp.view()
    }

    fn accepted(&self, sys: &S, t: f64, x: ArrayView2<f64>, st: &mut AdaptiveRkState) -> Result<()> {
        if self.tableau.fsal {
            let s = st.k.len();
            st.k.swap(0, s - 1);
            Ok(())
        } else {
            sys.rhs(t, x, st.k[0].view_mut())
        }
    }
}
