//! UniPC: unified predictor-corrector (B(h) = e^h - 1 variant), as in diffusers.

use ndarray::{Array2, ArrayViewMut2, Zip};

use crate::error::{Result, SolverError};
use crate::stepper::{OdeStepper, StepInfo};
use crate::system::SigmaSpace;

/// UniPC-p with `bh2` (Zhao et al. 2023, Algorithms 1-3; diffusers `UniPCMultistepScheduler`,
/// `solver_type="bh2"`, data prediction): each step first corrects the current state with UniC
/// (using the model output just evaluated there, so no extra NFE), then predicts the next one with
/// UniP of order p from the last p data predictions. In EDM's variables, with lambda = -ln sigma,
/// h = lambda_t - lambda_s and B(h) = expm1(-h):
/// x_t = (sigma_t / sigma_s) x_s - expm1(-h) D_s - B(h) sum_k rho_k (D_k - D_s) / r_k,
/// r_k = (lambda_k - lambda_s) / h, rho from the order conditions R rho = b (rho = 1/2 for UniP-2
/// and UniC-1, as in the paper).
/// - Order p + 1 with the corrector (paper, Theorem 3.1); NFE 1 per step. Order schedule as
///   diffusers: warm-up from order 1, and `lower_order_final` (at any length) caps the order at the
///   number of steps left. Requires: [`SigmaSpace`]. Deterministic.
/// - Reproduces diffusers: `d2_disc_unipc2_n10`, `d2_disc_unipc3_n10`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UniPc {
    order: usize,
    lower_order_final: bool,
}

impl UniPc {
    /// Validates order 1 to 3.
    pub fn new(order: usize, lower_order_final: bool) -> Result<Self> {
        if !(1..=3).contains(&order) {
            return Err(SolverError::InvalidParameter {
                name: "order",
                value: order as f64,
                expected: "UniPC order must be 1, 2 or 3",
            });
        }
        Ok(Self { order, lower_order_final })
    }
}

/// Data predictions of the last steps (newest first) with their sigmas, the state before the last
/// predictor step, that step's order, and how many outputs the warm-up has.
#[derive(Debug)]
pub struct UniPcState {
    d: Vec<Array2<f64>>,
    sigmas: Vec<f64>,
    model_t: Array2<f64>,
    last: Array2<f64>,
    last_order: usize,
    filled: usize,
}

/// Solves the small dense system a x = b (Gaussian elimination with partial pivoting).
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Vec<f64> {
    let n = b.len();
    for c in 0..n {
        let p = (c..n).max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs())).unwrap_or(c);
        a.swap(c, p);
        b.swap(c, p);
        let pivot = a[c].clone();
        for r in c + 1..n {
            let f = a[r][c] / pivot[c];
            for (ark, &ack) in a[r].iter_mut().zip(&pivot).skip(c) {
                *ark -= f * ack;
            }
            b[r] -= f * b[c];
        }
    }
    let mut x = vec![0.0; n];
    for r in (0..n).rev() {
        let s: f64 = (r + 1..n).map(|k| a[r][k] * x[k]).sum();
        x[r] = (b[r] - s) / a[r][r];
    }
    x
}

/// The order-condition system of UniP/UniC: rows R_i = r^(i-1), b_i = (i)! h phi_{i+1}(hh) / B(h),
/// for i = 1..=order, with hh = -h (data prediction) and B(h) = expm1(hh); also returns expm1(hh).
fn conditions(rks: &[f64], h: f64, order: usize) -> (Vec<Vec<f64>>, Vec<f64>, f64) {
    let hh = -h;
    let h_phi_1 = hh.exp_m1();
    let b_h = h_phi_1;
    let mut h_phi_k = h_phi_1 / hh - 1.0;
    let mut factorial = 1.0;
    let mut r = vec![];
    let mut b = vec![];
    for i in 1..=order {
        r.push(rks.iter().map(|rk| rk.powi(i as i32 - 1)).collect());
        b.push(h_phi_k * factorial / b_h);
        factorial *= (i + 1) as f64;
        h_phi_k = h_phi_k / hh - 1.0 / factorial;
    }
    (r, b, h_phi_1)
}

impl UniPc {
    /// x <- (s_t / s_0) x - h_phi_1 D_0 - B(h) (sum_k rho_k Delta_k [+ rho_last (model_t - D_0)]):
    /// the shared form of UniP (`model_t` None) and UniC, from the history slots 0 (D_0 at s_0),
    /// 1, .., order - 1.
    fn update(
        &self,
        x: &mut ArrayViewMut2<f64>,
        hist: &[Array2<f64>],
        sig: &[f64],
        t: f64,
        order: usize,
        model_t: Option<&Array2<f64>>,
    ) {
        let s0 = sig[0];
        let (l0, lt) = (-s0.ln(), -t.ln());
        let h = lt - l0;
        let mut rks: Vec<f64> = (1..order).map(|k| (-sig[k].ln() - l0) / h).collect();
        rks.push(1.0);
        let (r, b, h_phi_1) = conditions(&rks, h, order);
        let b_h = h_phi_1;
        let ratio = t / s0;
        let rhos: Vec<f64> = match (model_t, order) {
            (None, 1) => vec![],
            (None, 2) => vec![0.5],
            (None, _) => {
                solve(r[..order - 1].iter().map(|row| row[..order - 1].to_vec()).collect(), b[..order - 1].to_vec())
            }
            (Some(_), 1) => vec![0.5],
            (Some(_), _) => solve(r, b),
        };
        let d0 = &hist[0];
        Zip::from(x.view_mut()).and(d0).for_each(|x, &d| *x = ratio * *x - h_phi_1 * d);
        for k in 1..order {
            if let Some(&rho) = rhos.get(k - 1) {
                let c = -b_h * rho / rks[k - 1];
                Zip::from(x.view_mut()).and(&hist[k]).and(d0).for_each(|x, &dk, &d| *x += c * (dk - d));
            }
        }
        if let Some(mt) = model_t {
            let c = -b_h * rhos[rhos.len() - 1];
            Zip::from(x.view_mut()).and(mt).and(d0).for_each(|x, &m, &d| *x += c * (m - d));
        }
    }
}

impl<S: SigmaSpace + ?Sized> OdeStepper<S> for UniPc {
    type State = UniPcState;

    fn init(&self, rows: usize, cols: usize) -> UniPcState {
        let z = || Array2::zeros((rows, cols));
        UniPcState {
            d: (0..self.order).map(|_| z()).collect(),
            sigmas: vec![0.0; self.order],
            model_t: z(),
            last: z(),
            last_order: 1,
            filled: 0,
        }
    }
    fn step(&self, sys: &S, at: StepInfo, mut x: ArrayViewMut2<f64>, st: &mut UniPcState) -> Result<()> {
        let s = at.t0;
        sys.denoise(s, x.view(), st.model_t.view_mut())?;
        if at.step > 0 {
            // UniC: correct x (predicted from `last`) with the output just evaluated at it.
            let mut corrected = st.last.clone();
            self.update(&mut corrected.view_mut(), &st.d, &st.sigmas, s, st.last_order, Some(&st.model_t));
            x.assign(&corrected);
        }
        st.d.rotate_right(1);
        st.sigmas.rotate_right(1);
        std::mem::swap(&mut st.d[0], &mut st.model_t);
        st.sigmas[0] = s;
        st.filled = (st.filled + 1).min(self.order);
        let mut order = self.order;
        if self.lower_order_final {
            order = order.min(at.total - at.step);
        }
        // A step to sigma = 0 is first order (lambda = +inf there).
        let order = if at.t1 == 0.0 { 1 } else { order.min(st.filled) };
        st.last.assign(&x);
        st.last_order = order;
        self.update(&mut x, &st.d, &st.sigmas, at.t1, order, None);
        Ok(())
    }
}
