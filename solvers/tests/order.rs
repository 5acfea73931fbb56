//! Convergence orders of every Runge-Kutta stepper and of Euler-Maruyama, on problems with exact
//! solutions, integrated downwards in time as diffusion samplers do.
//!
//! Problem: dx/dt = cos(t) A x with A = [[-1, 2], [-2, -1]], exact x(t) = exp((sin t - sin t0) A) x0,
//! where exp(sA) = e^{-s} [[cos 2s, sin 2s], [-sin 2s, cos 2s]]. Non-autonomous (tests the nodes c)
//! and coupled (tests the matrix a). The fitted slope of log(error) against log(h) must be within
//! 0.15 of the method's order.

use ndarray::{array, Array2, ArrayView2, ArrayViewMut2};
use scoresde_solvers::noise::Draw;
use scoresde_solvers::rk::tableau::{DOPRI5, EULER, HEUN, MIDPOINT, RK4, RK4_38, TSIT5};
use scoresde_solvers::*;

struct Rotating;

impl OdeSystem for Rotating {
    fn rhs(&self, t: f64, x: ArrayView2<f64>, mut out: ArrayViewMut2<f64>) -> Result<()> {
        let c = t.cos();
        for (xr, mut o) in x.outer_iter().zip(out.outer_iter_mut()) {
            o[0] = c * (-xr[0] + 2.0 * xr[1]);
            o[1] = c * (-2.0 * xr[0] - xr[1]);
        }
        Ok(())
    }
}

fn x0() -> Array2<f64> {
    array![[1.0, 0.5], [-0.3, 2.0], [0.7, -1.1]]
}

fn exact(t0: f64, t1: f64) -> Array2<f64> {
    let s = t1.sin() - t0.sin();
    let (e, c, sn) = ((-s).exp(), (2.0 * s).cos(), (2.0 * s).sin());
    let mut out = x0();
    for mut r in out.outer_iter_mut() {
        let (a, b) = (r[0], r[1]);
        r[0] = e * (c * a + sn * b);
        r[1] = e * (-sn * a + c * b);
    }
    out
}

fn max_err(a: &Array2<f64>, b: &Array2<f64>) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

/// Least-squares slope of log(err) against log(h).
fn slope(hs: &[f64], errs: &[f64]) -> f64 {
    let lx: Vec<f64> = hs.iter().map(|h| h.ln()).collect();
    let ly: Vec<f64> = errs.iter().map(|e| e.ln()).collect();
    let n = lx.len() as f64;
    let (mx, my) = (lx.iter().sum::<f64>() / n, ly.iter().sum::<f64>() / n);
    let sxy: f64 = lx.iter().zip(&ly).map(|(x, y)| (x - mx) * (y - my)).sum();
    let sxx: f64 = lx.iter().map(|x| (x - mx).powi(2)).sum();
    sxy / sxx
}

const T0: f64 = 2.0;
const T1: f64 = 0.0;

fn fitted_order(tab: ButcherTableau, steps: &[usize]) -> f64 {
    let truth = exact(T0, T1);
    let stepper = ExplicitRk::new(tab);
    let mut hs = vec![];
    let mut errs = vec![];
    for &n in steps {
        let grid = TimeGrid::uniform(T0, T1, n).unwrap();
        let mut x = x0();
        integrate_ode(&stepper, &Rotating, &grid, x.view_mut(), &mut no_observer).unwrap();
        hs.push((T0 - T1) / n as f64);
        errs.push(max_err(&x, &truth));
    }
    let p = slope(&hs, &errs);
    println!("{:<9} theory {}  fitted {p:.3}  errors {errs:?}", tab.name, tab.order);
    p
}

#[test]
fn runge_kutta_orders_match_theory() {
    for (tab, steps) in [
        (EULER, &[64usize, 128, 256, 512][..]),
        (MIDPOINT, &[32, 64, 128, 256][..]),
        (HEUN, &[32, 64, 128, 256][..]),
        (RK4, &[16, 32, 64, 128][..]),
        (RK4_38, &[16, 32, 64, 128][..]),
        (TSIT5, &[16, 32, 64, 128][..]),
        (DOPRI5, &[16, 32, 64, 128][..]),
    ] {
        let p = fitted_order(tab, steps);
        let q = tab.order as f64;
        // On this non-autonomous problem the fifth-order pairs' principal error coefficient is
        // tiny, so between the first halvings and the f64 round-off floor their error still falls
        // faster than h^5 (5.4-5.6 here): require 5 - 0.15 < p < 6 here; the strict 0.15 band is
        // asserted on the rotation below, and the order conditions in tableau.rs prove order 5.
        let upper = if q >= 5.0 { q + 1.0 } else { q + 0.15 };
        assert!(p > q - 0.15 && p < upper, "{}: fitted order {p}, theory {q}", tab.name);
    }
}

/// Pure rotation dx/dt = 3 J x (J = [[0, 1], [-1, 0]]), exact x(t) = exp(3 (t - t0) J) x0.
struct Rotation;

impl OdeSystem for Rotation {
    fn rhs(&self, _t: f64, x: ArrayView2<f64>, mut out: ArrayViewMut2<f64>) -> Result<()> {
        for (xr, mut o) in x.outer_iter().zip(out.outer_iter_mut()) {
            o[0] = 3.0 * xr[1];
            o[1] = -3.0 * xr[0];
        }
        Ok(())
    }
}

#[test]
fn fifth_order_pairs_have_order_five_on_a_rotation() {
    // On this autonomous linear problem the global error of a fifth-order method is
    // C5 h^5 (1 + O(h)) with a C5 large enough to be seen above round-off: the strict 0.15 band.
    let (t0, t1) = (2.0, 0.0);
    let s = 3.0 * (t1 - t0);
    let (c, sn) = (f64::cos(s), f64::sin(s));
    let truth = x0().map_axis(ndarray::Axis(1), |r| [c * r[0] + sn * r[1], -sn * r[0] + c * r[1]]);
    for tab in [DOPRI5, TSIT5] {
        let steps = [64usize, 128, 256, 512];
        let mut errs = vec![];
        for &n in &steps {
            let mut x = x0();
            integrate_ode(
                &ExplicitRk::new(tab),
                &Rotation,
                &TimeGrid::uniform(t0, t1, n).unwrap(),
                x.view_mut(),
                &mut no_observer,
            )
            .unwrap();
            let e = x
                .outer_iter()
                .zip(truth.iter())
                .map(|(r, t)| (r[0] - t[0]).abs().max((r[1] - t[1]).abs()))
                .fold(0.0, f64::max);
            errs.push(e);
        }
        let hs: Vec<f64> = steps.iter().map(|&n| 2.0 / n as f64).collect();
        let p = slope(&hs, &errs);
        println!("{:<9} rotation: theory 5  fitted {p:.3}  errors {errs:?}", tab.name);
        assert!((p - 5.0).abs() < 0.15, "{}: fitted order {p}", tab.name);
    }
}

#[test]
fn nfe_per_step_is_exact() {
    for tab in [EULER, MIDPOINT, HEUN, RK4, RK4_38, TSIT5, DOPRI5] {
        let sys = Counted::new(Rotating);
        let stepper = ExplicitRk::new(tab);
        let grid = TimeGrid::uniform(1.0, 0.0, 7).unwrap();
        let mut x = x0();
        integrate_ode(&stepper, &sys, &grid, x.view_mut(), &mut no_observer).unwrap();
        let per = tab.solution_stages();
        assert_eq!(sys.calls(), 7 * per, "{}", tab.name);
    }
    assert_eq!(TSIT5.solution_stages(), 6);
    assert_eq!(DOPRI5.solution_stages(), 6);
}

/// A system singular at t = 0, like the sigma-space ODE at sigma = 0.
struct SingularAtZero;

impl OdeSystem for SingularAtZero {
    fn rhs(&self, t: f64, x: ArrayView2<f64>, mut out: ArrayViewMut2<f64>) -> Result<()> {
        assert!(t != 0.0, "evaluated at the singular point");
        out.assign(&x);
        Ok(())
    }
    fn is_singular_at(&self, t: f64) -> bool {
        t == 0.0
    }
}

#[test]
fn step_to_a_singular_point_is_an_euler_step() {
    let sys = Counted::new(SingularAtZero);
    let grid = TimeGrid::new(vec![2.0, 1.0, 0.0]).unwrap();
    let mut x = array![[1.0]];
    integrate_ode(&ExplicitRk::new(HEUN), &sys, &grid, x.view_mut(), &mut no_observer).unwrap();
    // Heun on x' = x from 2 to 1 (h = -1): 1 + h/2 (1 + (1 + h)) = 0.5, then Euler: 0.5 (1 + h) = 0.
    assert_eq!(sys.calls(), 3);
    assert_eq!(x[[0, 0]], 0.0);
}

#[test]
fn adaptive_pairs_meet_their_tolerance_and_scale_with_it() {
    let truth = exact(T0, T1);
    for tab in [DOPRI5, TSIT5] {
        let mut errs = vec![];
        let tols = [1e-5, 1e-7, 1e-9];
        for tol in tols {
            let solver = AdaptiveRk::new(tab, AdaptiveOptions::new(tol, tol).unwrap()).unwrap();
            let mut x = x0();
            let stats = solver.integrate(&Rotating, T0, T1, x.view_mut(), &mut no_observer).unwrap();
            let e = max_err(&x, &truth);
            println!("{} tol {tol:e}: error {e:.2e}, {stats:?}", tab.name);
            // Local error control keeps the global error within a small multiple of the tolerance
            // on this smooth, contracting problem.
            assert!(e < 20.0 * tol, "{}: error {e} at tol {tol}", tab.name);
            errs.push(e);
        }
        // Error falls with the tolerance: two orders of magnitude of tolerance buy at least one.
        assert!(errs[2] < errs[0] * 1e-2, "{}: {errs:?}", tab.name);
    }
}

#[test]
fn adaptive_rejects_bad_options() {
    assert!(AdaptiveOptions::new(-1.0, 1e-6).unwrap_err().to_string().contains("rtol = -1"));
    assert!(AdaptiveOptions::new(1e-6, f64::NAN).unwrap_err().to_string().contains("atol = NaN"));
    assert!(AdaptiveRk::new(HEUN, AdaptiveOptions::new(1e-6, 1e-6).unwrap()).is_err());
}

struct Exploding;

impl OdeSystem for Exploding {
    fn rhs(&self, t: f64, x: ArrayView2<f64>, mut out: ArrayViewMut2<f64>) -> Result<()> {
        out.assign(&x);
        if t <= 0.5 {
            out.row_mut(1).fill(f64::NAN);
        }
        Ok(())
    }
}

#[test]
fn non_finite_state_names_step_time_and_row() {
    // Steps 1.0 -> 0.75 -> 0.5 -> 0.25: the evaluation at t = 0.5 (start of step 2) poisons row 1.
    let grid = TimeGrid::uniform(1.0, 0.0, 4).unwrap();
    let mut x = array![[1.0], [1.0], [1.0]];
    let err = integrate_ode(&ExplicitRk::new(EULER), &Exploding, &grid, x.view_mut(), &mut no_observer).unwrap_err();
    match err {
        SolverError::NonFinite { step, t0, t1, row } => {
            assert_eq!((step, t0, t1, row), (2, 0.5, 0.25, 1));
        }
        e => panic!("unexpected {e}"),
    }
}

#[test]
fn grids_are_validated() {
    assert!(matches!(TimeGrid::new(vec![1.0]), Err(SolverError::GridTooShort { len: 1 })));
    let e = TimeGrid::new(vec![1.0, 0.5, 0.7]).unwrap_err();
    assert_eq!(e.to_string(), "grid[2] = 0.7 after grid[1] = 0.5: grid must be strictly monotone in one direction");
    assert!(matches!(TimeGrid::new(vec![1.0, f64::NAN]), Err(SolverError::NonFiniteGrid { index: 1, .. })));
    assert!(TimeGrid::uniform(1.0, 0.0, 0).is_err());
    let g = TimeGrid::uniform(1.0, 1e-3, 10).unwrap();
    assert_eq!((g.start(), g.end(), g.steps()), (1.0, 1e-3, 10));
    assert!(g.is_decreasing());
}

/// Ornstein-Uhlenbeck process dx = -theta x dt + s dW (additive noise).
struct Ou {
    theta: f64,
    s: f64,
}

impl SdeSystem for Ou {
    fn drift(&self, _t: f64, x: ArrayView2<f64>, mut out: ArrayViewMut2<f64>) -> Result<()> {
        out.assign(&x);
        out *= -self.theta;
        Ok(())
    }
    fn diffusion(&self, _t: f64) -> f64 {
        self.s
    }
}

#[test]
fn euler_maruyama_has_strong_order_one_for_additive_noise() {
    // Every resolution integrates the same Brownian path (a virtual Brownian tree), so the error
    // against a 2^11-step reference on that path is the strong error. The reference's own error
    // O(2^-11) is far below the coarse errors compared here.
    let (paths, fine) = (1000usize, 2048usize);
    let sys = Ou { theta: 2.0, s: 0.8 };
    let run = |n: usize| -> Array2<f64> {
        let grid = TimeGrid::uniform(1.0, 0.0, n).unwrap();
        let mut noise = BrownianNoise::new(11, &grid, 0).unwrap();
        let mut x = Array2::from_elem((paths, 1), 1.0);
        integrate_sde(&EulerMaruyama, &sys, &grid, x.view_mut(), &mut noise, &mut no_observer).unwrap();
        x
    };
    let reference = run(fine);
    let steps = [16usize, 32, 64, 128];
    let errs: Vec<f64> = steps
        .iter()
        .map(|&n| {
            let x = run(n);
            (&x - &reference).iter().map(|d| d.abs()).sum::<f64>() / paths as f64
        })
        .collect();
    let hs: Vec<f64> = steps.iter().map(|&n| 1.0 / n as f64).collect();
    let p = slope(&hs, &errs);
    println!("euler-maruyama strong order: theory 1, fitted {p:.3}, errors {errs:?}");
    assert!((p - 1.0).abs() < 0.15, "fitted strong order {p}");
}

/// The main draw of step `k` of a 10-step solve with no extra draws.
fn key(k: usize) -> Draw {
    Draw::main(k, 10, 0, 1.0 - k as f64 / 10.0, 0.9 - k as f64 / 10.0)
}

#[test]
fn draws_are_laid_out_main_draws_first_then_extras_by_step() {
    // 4 steps with 2 extra draws each: main draws 0..4, then step k's extras at 4 + 2k, 4 + 2k + 1.
    let all: Vec<usize> = (0..4)
        .flat_map(|k| {
            let d = Draw::main(k, 4, 2, 0.0, 0.0);
            [d.index(), d.extra(0).index(), d.extra(1).index()]
        })
        .collect();
    assert_eq!(all, vec![0, 4, 5, 1, 6, 7, 2, 8, 9, 3, 10, 11]);
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(sorted, (0..Draw::total(4, 2)).collect::<Vec<_>>());
}

#[test]
fn keyed_noise_does_not_depend_on_chunking() {
    let mut all = Array2::zeros((10, 3));
    KeyedNoise::new(7).normals(&key(3), all.view_mut()).unwrap();
    let mut tail = Array2::zeros((4, 3));
    KeyedNoise::with_row_offset(7, 6).normals(&key(3), tail.view_mut()).unwrap();
    assert_eq!(all.slice(ndarray::s![6.., ..]), tail);
    let mut other_step = Array2::zeros((10, 3));
    KeyedNoise::new(7).normals(&key(4), other_step.view_mut()).unwrap();
    assert_ne!(all, other_step);
}

#[test]
fn fixed_noise_runs_out_with_a_clear_error() {
    let mut n = FixedNoise::new(ndarray::Array3::zeros((2, 3, 1)));
    let mut out = Array2::zeros((3, 1));
    assert!(n.normals(&key(1), out.view_mut()).is_ok());
    assert_eq!(n.normals(&key(2), out.view_mut()).unwrap_err().to_string(), "noise has 2 steps but the grid needs 3");
}
