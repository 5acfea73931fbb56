//! Fixed-step explicit Runge-Kutta methods, any tableau.
//!
//! One generic stepper runs every [`ButcherTableau`]: Euler, midpoint, Heun, RK4, RK4 (3/8),
//! Tsit5 and Dormand-Prince used at fixed steps. Order and NFE per step come from the tableau.
//! Requires only an [`OdeSystem`]. Works in whatever variable the system is written in (t, or
//! sigma for EDM's sigma-space ODE, where Heun is EDM's Algorithm 1).

use ndarray::{Array2, ArrayViewMut2};

use crate::error::Result;
use crate::par;
use crate::rk::tableau::ButcherTableau;
use crate::stepper::{OdeStepper, StepInfo};
use crate::system::OdeSystem;

/// An explicit Runge-Kutta method taking the steps of a grid.
///
/// - Order: `tableau.order`; NFE per step: the stages the solution needs (`solution_stages`,
///   which drops the FSAL-only stage of embedded pairs).
/// - A step that ends where the system is singular ([`OdeSystem::is_singular_at`], e.g. sigma = 0
///   in sigma space) is an Euler step (1 NFE), as in EDM (Karras et al. 2022, Algorithm 1 line 6).
/// - Requires: [`OdeSystem`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExplicitRk {
    tableau: ButcherTableau,
}

impl ExplicitRk {
    /// Wraps a tableau.
    pub fn new(tableau: ButcherTableau) -> Self {
        Self { tableau }
    }
    /// The method's tableau.
    pub fn tableau(&self) -> &ButcherTableau {
        &self.tableau
    }
}

/// Stage derivatives and the stage state.
#[derive(Debug)]
pub struct RkState {
    k: Vec<Array2<f64>>,
    tmp: Array2<f64>,
    /// Whether the last step's fused Euler update checked the state to be finite.
    checked: bool,
}

impl<S: OdeSystem + ?Sized> OdeStepper<S> for ExplicitRk {
    type State = RkState;

    fn checked_finite(&self, state: &RkState) -> bool {
        state.checked
    }

    fn init(&self, rows: usize, cols: usize) -> RkState {
        let stages = self.tableau.solution_stages();
        RkState {
            k: (0..stages).map(|_| Array2::zeros((rows, cols))).collect(),
            // One-stage methods (Euler) never form a stage state.
            tmp: Array2::zeros((if stages > 1 { rows } else { 0 }, cols)),
            checked: false,
        }
    }

    fn step(&self, sys: &S, at: StepInfo, mut x: ArrayViewMut2<f64>, st: &mut RkState) -> Result<()> {
        let (t0, t1) = (at.t0, at.t1);
        let h = t1 - t0;
        let tab = &self.tableau;
        st.checked = false;
        if st.k.len() == 1 && tab.b[0] == 1.0 {
            // Euler: the system may fuse the evaluation into the update (same values) and check
            // the new state as it writes it.
            st.checked = sys.euler_update(t0, h, x, st.k[0].view_mut())?;
            return Ok(());
        }
        sys.rhs(t0, x.view(), st.k[0].view_mut())?;
        if sys.is_singular_at(t1) {
            par::scaled_add(x.view_mut(), h, st.k[0].view());
            return Ok(());
        }
        let stages = st.k.len();
        for i in 1..stages {
            st.tmp.assign(&x);
            for (j, &a) in tab.a[i].iter().enumerate() {
                if a != 0.0 {
                    par::scaled_add(st.tmp.view_mut(), h * a, st.k[j].view());
                }
            }
            sys.rhs(t0 + tab.c[i] * h, st.tmp.view(), st.k[i].view_mut())?;
        }
        combine(&mut x, h, tab.b, &st.k);
        Ok(())
    }
}

/// x += h * sum_i w_i k_i, skipping zero weights.
pub(crate) fn combine(x: &mut ArrayViewMut2<f64>, h: f64, w: &[f64], k: &[Array2<f64>]) {
    for (&w, k) in w.iter().zip(k) {
        if w != 0.0 {
            par::scaled_add(x.view_mut(), h * w, k.view());
        }
    }
}
