//! The adaptive driver: both adaptive solvers check each accepted state for non-finite values
//! before the observer sees it, report a NaN-producing system as `NonFinite` naming the step and
//! its times, count NFE as their docs say, and both controllers validate their settings.

use std::cell::RefCell;

use ndarray::{Array2, ArrayView2, ArrayViewMut2, Zip};
use scoresde_solvers::rk::tableau::{DOPRI5, TSIT5};
use scoresde_solvers::*;

/// x' = x, with row 1 NaN for t < 0.5.
struct NanBelowHalf;

impl OdeSystem for NanBelowHalf {
    fn rhs(&self, t: f64, x: ArrayView2<f64>, mut out: ArrayViewMut2<f64>) -> Result<()> {
        out.assign(&x);
        if t < 0.5 {
            out.row_mut(1).fill(f64::NAN);
        }
        Ok(())
    }
}

/// x' = 1e307 t: integrated exactly by every step (the error is round-off), until x overflows
/// near t = 6, where the derivative is still finite and the scaled error is 0.
struct Overflowing;

impl OdeSystem for Overflowing {
    fn rhs(&self, t: f64, _x: ArrayView2<f64>, mut out: ArrayViewMut2<f64>) -> Result<()> {
        out.fill(1e307 * t);
        Ok(())
    }
}

/// Data: a product of two-component Gaussian mixtures (means +-1, std 0.3); exact eps of the
/// noised law. Row 2 turns NaN below `nan_below`.
struct Mixture {
    nan_below: f64,
}

impl SigmaSpace for Mixture {
    fn eps(&self, sigma: f64, x: ArrayView2<f64>, mut out: ArrayViewMut2<f64>) -> Result<()> {
        let (s2, v) = (0.09, 0.09 + sigma * sigma);
        Zip::from(&mut out).and(&x).for_each(|o, &x| {
            let (lp, lm) = (-(x - 1.0).powi(2) / (2.0 * v), -(x + 1.0).powi(2) / (2.0 * v));
            let wp = 1.0 / (1.0 + (lm - lp).exp());
            let d = wp * (1.0 + s2 / v * (x - 1.0)) + (1.0 - wp) * (-1.0 + s2 / v * (x + 1.0));
            *o = (x - d) / sigma;
        });
        if sigma < self.nan_below {
            out.row_mut(2).fill(f64::NAN);
        }
        Ok(())
    }
}

fn start(rows: usize, cols: usize, scale: f64) -> Array2<f64> {
    Array2::from_shape_fn((rows, cols), |(i, j)| scale * ((i * 7 + j * 3) as f64 * 0.618).sin())
}

/// Runs `solve` with a recording observer; returns the error and the steps observed.
fn failing(solve: impl FnOnce(&mut dyn FnMut(StepInfo)) -> Result<AdaptiveStats>) -> (SolverError, Vec<StepInfo>) {
    let seen = RefCell::new(vec![]);
    let r = solve(&mut |s| seen.borrow_mut().push(s));
    match r {
        Err(e) => (e, seen.into_inner()),
        Ok(stats) => panic!("expected an error, got {stats:?}"),
    }
}

/// The observer saw steps 0..step, contiguous, ending where the failing step starts.
fn assert_not_observed(seen: &[StepInfo], step: usize, t0: f64) {
    assert_eq!(seen.len(), step, "observer called for the failing step");
    for (i, s) in seen.iter().enumerate() {
        assert_eq!(s.step, i);
    }
    if let Some(last) = seen.last() {
        assert_eq!(last.t1, t0, "the failing step starts where the last observed one ended");
    }
}

#[test]
fn nan_from_the_system_is_non_finite_and_not_observed_for_both_solvers() {
    for tab in [DOPRI5, TSIT5] {
        let rk = AdaptiveRk::new(tab, AdaptiveOptions::new(1e-6, 1e-6).unwrap()).unwrap();
        let mut x = start(3, 1, 1.0);
        let (e, seen) = failing(|obs| rk.integrate(&NanBelowHalf, 1.0, 0.0, x.view_mut(), obs));
        let SolverError::NonFinite { step, t0, t1, row } = e else { panic!("{}: {e}", tab.name) };
        println!("{}: {e}", tab.name);
        assert_eq!(row, 1);
        assert!(t0 >= 0.5 && t1 < 0.5 && t0 - t1 < 1e-12, "{}: {t0} -> {t1}", tab.name);
        assert_not_observed(&seen, step, t0);
    }
    for order in [2, 3] {
        let dpm = DpmSolverAdaptive::new(order, 1e-3, 1e-3).unwrap();
        let mut x = start(4, 2, 80.0);
        let sys = Mixture { nan_below: 1.0 };
        let (e, seen) = failing(|obs| dpm.integrate(&sys, 80.0, 0.01, x.view_mut(), obs));
        let SolverError::NonFinite { step, t0, t1, row } = e else { panic!("dpm{order}: {e}") };
        println!("dpm{order}: {e}");
        assert_eq!(row, 2);
        // The stages of a step from sigma_0 to sigma_1 evaluate eps above sigma_1, so the last
        // accepted step may end a little below 1; the next attempt fails at its start.
        assert!(t0 > 0.9 && t0 < 1.0 + 1e-9 && t1 < t0 && t0 - t1 < 1e-12, "dpm{order}: {t0} -> {t1}");
        assert_not_observed(&seen, step, t0);
    }
}

#[test]
fn an_accepted_non_finite_state_is_checked_before_it_is_observed() {
    let mut opts = AdaptiveOptions::new(1e-6, 1e-6).unwrap();
    opts.first_step = Some(0.01);
    let rk = AdaptiveRk::new(DOPRI5, opts).unwrap();
    let mut x = Array2::zeros((2, 1));
    let (e, seen) = failing(|obs| rk.integrate(&Overflowing, 0.0, 10.0, x.view_mut(), obs));
    let SolverError::NonFinite { step, t0, t1, row } = e else { panic!("{e}") };
    println!("{e}");
    assert!(step > 0 && row == 0 && t0 < 6.0 && t1 > 6.0, "{e}");
    assert_not_observed(&seen, step, t0);
    assert!(x.iter().all(|v| !v.is_finite()), "the state is left as the step produced it");
}

fn rejects(r: Result<impl std::fmt::Debug>, field: &str) {
    let msg = r.unwrap_err().to_string();
    assert!(msg.starts_with(&format!("{field} = ")), "expected an error naming {field}, got {msg:?}");
}

#[test]
fn controllers_reject_bad_settings_naming_the_field() {
    assert!(PiController::new(4, 0.9, 0.2, 10.0).is_ok());
    rejects(PiController::new(4, 0.0, 0.2, 10.0), "safety");
    rejects(PiController::new(4, 1.5, 0.2, 10.0), "safety");
    rejects(PiController::new(4, f64::NAN, 0.2, 10.0), "safety");
    rejects(PiController::new(4, 0.9, 0.0, 10.0), "min_factor");
    rejects(PiController::new(4, 0.9, 2.0, 10.0), "min_factor");
    rejects(PiController::new(4, 0.9, 0.2, 0.5), "max_factor");
    rejects(PiController::new(4, 0.9, 0.2, f64::INFINITY), "max_factor");
    assert!(PidController::integral(3.0).is_ok());
    assert!(PidController::new(0.1, 0.7, 0.05, 3.0, 0.81).is_ok());
    rejects(PidController::new(f64::NAN, 1.0, 0.0, 3.0, 0.81), "pcoeff");
    rejects(PidController::new(0.0, f64::INFINITY, 0.0, 3.0, 0.81), "icoeff");
    rejects(PidController::new(0.0, 1.0, f64::NAN, 3.0, 0.81), "dcoeff");
    rejects(PidController::new(0.0, -1.0, 0.0, 3.0, 0.81), "icoeff");
    rejects(PidController::new(0.0, 1.0, 0.0, 0.0, 0.81), "order");
    rejects(PidController::new(0.0, 1.0, 0.0, 3.0, 0.2), "accept_safety");
    rejects(PidController::new(0.0, 1.0, 0.0, 3.0, 1.5), "accept_safety");
    // The options' controller settings are checked when the solver is built.
    let mut opts = AdaptiveOptions::new(1e-6, 1e-6).unwrap();
    opts.min_factor = 20.0;
    rejects(AdaptiveRk::new(DOPRI5, opts), "min_factor");
    rejects(DpmSolverAdaptive::new(4, 1e-3, 1e-3), "order");
}

#[test]
fn the_loop_validates_its_span() {
    let rk = AdaptiveRk::new(DOPRI5, AdaptiveOptions::new(1e-6, 1e-6).unwrap()).unwrap();
    let pi = PiController::new(4, 0.9, 0.2, 10.0).unwrap();
    let mut x = start(3, 1, 1.0);
    let span = |t0, t1, landing| Span { t0, t1, max_steps: 100, landing };
    let mut run = |s: Span| integrate_adaptive(&rk, &pi, &NanBelowHalf, s, x.view_mut(), &mut no_observer);
    rejects(run(span(f64::NAN, 0.0, Landing::Snap)), "t0");
    rejects(run(span(1.0, f64::INFINITY, Landing::Snap)), "t1");
    rejects(run(span(1.0, 1.0, Landing::Snap)), "t1");
    rejects(run(span(1.0, 0.5, Landing::Clip { end_tol: -1.0 })), "end_tol");
    let e = run(Span { t0: 1.0, t1: 0.6, max_steps: 2, landing: Landing::Snap }).unwrap_err();
    assert!(matches!(e, SolverError::MaxStepsExceeded { max_steps: 2, .. }), "{e}");
}

#[test]
fn nfe_per_attempt_is_as_documented() {
    for order in [2usize, 3] {
        let dpm = DpmSolverAdaptive::new(order, 1e-3, 1e-4).unwrap();
        let sys = Counted::new(Mixture { nan_below: 0.0 });
        let mut x = start(8, 2, 80.0);
        let stats = dpm.integrate(&sys, 80.0, 0.002, x.view_mut(), &mut no_observer).unwrap();
        let per = <DpmSolverAdaptive as EmbeddedStepper<Counted<Mixture>>>::evals_per_attempt(&dpm);
        assert_eq!(per, order);
        assert!(stats.rejected > 0, "dpm{order}: {stats:?}");
        assert_eq!(sys.calls(), per * (stats.accepted + stats.rejected), "dpm{order}: {stats:?}");
    }
    for tab in [DOPRI5, TSIT5] {
        let rk = AdaptiveRk::new(tab, AdaptiveOptions::new(1e-6, 1e-6).unwrap()).unwrap();
        let sys = Counted::new(Decay);
        let mut x = start(3, 2, 1.0);
        let stats = rk.integrate(&sys, 2.0, 0.0, x.view_mut(), &mut no_observer).unwrap();
        let per = <AdaptiveRk as EmbeddedStepper<Counted<Decay>>>::evals_per_attempt(&rk);
        assert_eq!(per, 6);
        // One evaluation at the start and one for the automatic first step.
        assert_eq!(sys.calls(), 2 + per * (stats.accepted + stats.rejected), "{}: {stats:?}", tab.name);
    }
}

#[test]
fn any_stepper_runs_with_any_controller() {
    // The embedded pair under k-diffusion's controller still meets its tolerance on x' = -x.
    let rk = AdaptiveRk::new(DOPRI5, AdaptiveOptions::new(1e-8, 1e-8).unwrap()).unwrap();
    let pid = PidController::integral(5.0).unwrap();
    let mut x = start(3, 2, 1.0);
    let x0 = x.clone();
    let span = Span { t0: 0.0, t1: 2.0, max_steps: 10_000, landing: Landing::Snap };
    let stats = integrate_adaptive(&rk, &pid, &Decay, span, x.view_mut(), &mut no_observer).unwrap();
    let err = (&x - &(x0 * (-2.0f64).exp())).iter().fold(0.0f64, |m, d| m.max(d.abs()));
    println!("dopri5 + PID: {stats:?}, error {err:.2e}");
    assert!(stats.accepted > 5 && err < 1e-7, "{stats:?}, error {err}");
}

/// x' = -x.
struct Decay;

impl OdeSystem for Decay {
    fn rhs(&self, _t: f64, x: ArrayView2<f64>, mut out: ArrayViewMut2<f64>) -> Result<()> {
        Zip::from(&mut out).and(&x).for_each(|o, &x| *o = -x);
        Ok(())
    }
}
