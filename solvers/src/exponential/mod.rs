//! Solvers in EDM's variables (sigma space): the exponential integrators (DDIM, DPM-Solver,
//! DPM-Solver++, UniPC, DEIS, their adaptive form) and k-diffusion's DPM-2, LMS and Euler in
//! log-sigma; this module holds the pieces the exponential integrators share.
//!
//!
//! In EDM's variables (state x = x_t / alpha_t, time sigma = sigma_t / alpha_t, see
//! [`SigmaSpace`](crate::SigmaSpace)) the half log-SNR is lambda = -ln sigma, and the
//! probability-flow ODE has the exact variation-of-constants solutions (Lu et al. 2022a, eq. 3.4;
//! Lu et al. 2022b, eq. 8), with h = lambda_t - lambda_s = ln(sigma_s / sigma_t) > 0:
//!
//! - noise prediction: x_t = x_s - sigma_t int_0^h e^u eps(lambda_s + u) du,
//! - data prediction:  x_t = e^{-h} x_s + int_0^h e^{u - h} D(lambda_s + u) du.
//!
//! Expanding eps or D in a Taylor series in lambda turns the integrals into the phi functions of
//! [`phi`]; the solvers differ only in how they estimate the derivatives (from previous steps:
//! multistep; from points inside the step: singlestep). This module holds the phi functions,
//! the order schedules that diffusers uses, and the history of model outputs of the multistep and
//! singlestep methods. Dividing diffusers' x-space updates by alpha_t gives exactly these
//! sigma-space updates (alpha_t / alpha_s x_s - sigma_t (e^h - 1) eps becomes
//! x_s - (sigma_s - sigma_t) eps, and sigma_t / sigma_s x_s - alpha_t (e^{-h} - 1) D becomes
//! (sigma_t / sigma_s) x_s + (1 - sigma_t / sigma_s) D).

pub mod ddim;
pub mod deis;
pub mod dpm2;
pub mod dpm_adaptive;
pub mod dpm_solver;
pub mod dpm_solver_multistep;
pub mod dpmpp_2m;
pub mod dpmpp_2m_cfg_pp;
pub mod dpmpp_multistep;
pub mod dpmpp_singlestep;
pub mod euler_cfg_pp;
pub mod euler_logsnr;
pub mod lms;
pub mod unipc;

use ndarray::{Array2, ArrayViewMut2};

use crate::error::Result;

/// Half log-SNR of a sigma-space noise level: lambda = ln(alpha / sigma_t) = -ln sigma.
pub fn log_snr(sigma: f64) -> f64 {
    -sigma.ln()
}

/// The phi functions of exponential integrators at z:
/// phi_1(z) = (e^z - 1) / z, phi_2(z) = (phi_1(z) - 1) / z, phi_3(z) = (phi_2(z) - 1/2) / z,
/// i.e. phi_k(z) = sum_j z^j / (j + k)!.
///
/// Accurate to a few ulps for every finite z: the closed forms cancel for small |z|, so there
/// the (rapidly converging) series is summed instead.
pub fn phi(z: f64) -> [f64; 3] {
    if z.abs() < 0.5 {
        phi_series(z)
    } else {
        let p1 = z.exp_m1() / z;
        let p2 = (p1 - 1.0) / z;
        let p3 = (p2 - 0.5) / z;
        [p1, p2, p3]
    }
}

/// phi_k(z) = (1 / k!) (1 + z / (k + 1) (1 + z / (k + 2) (1 + ...))), 18 nested terms: for
/// |z| < 1 the first term left out is below 1 / 18! relative.
fn phi_series(z: f64) -> [f64; 3] {
    let mut out = [0.0; 3];
    let mut k_factorial = 1.0;
    for (i, o) in out.iter_mut().enumerate() {
        let k = (i + 1) as f64;
        k_factorial *= k;
        let mut acc = 1.0;
        for j in (1..=18).rev() {
            acc = 1.0 + z / (k + j as f64) * acc;
        }
        *o = acc / k_factorial;
    }
    out
}

/// diffusers' order of a multistep DPM-Solver / DPM-Solver++ step (`DPMSolverMultistepScheduler`).
///
/// `step` is 0-based among `total` steps, `order` the method's order (1 to 3). The order is
/// `min(order, step + 1)` (a multistep method has only `step` earlier outputs), lowered:
/// - to 1 on the last step and to at most 2 on the one before when `lower_order_final` is set
///   and the grid has fewer than 15 steps (diffusers' `lower_order_final`, which stabilises
///   short runs);
/// - to 1 on a step that ends at sigma = 0 (`ends_at_zero`), where lambda = +inf and the
///   higher-order corrections are undefined (diffusers' `final_sigmas_type = "zero"`).
pub fn multistep_order(step: usize, total: usize, order: usize, lower_order_final: bool, ends_at_zero: bool) -> usize {
    let lower = lower_order_final && total < 15;
    let mut o = order.min(step + 1);
    if step + 1 == total && (lower || ends_at_zero) {
        o = 1;
    }
    if step + 2 == total && lower {
        o = o.min(2);
    }
    o
}

/// diffusers' order of a singlestep DPM-Solver++ step (`DPMSolverSinglestepScheduler.get_order_list`).
///
/// A singlestep method of order k groups the grid's steps into blocks of k steps: the j-th step
/// of a block (j = 1..k) is an update of order j from the block's start, using the model
/// outputs at the block's first j points (the later ones evaluated at the intermediate states
/// of the same block). Without `lower_order_final` the blocks are `[1, 2, .., k]` repeated. With
/// it (which diffusers applies at any number of steps, and forces on when `total` is not a
/// multiple of k), the last block is shortened as in diffusers:
/// - order 3: total % 3 == 0 ends with `[1, 2], [1]`; total % 3 == 1 ends with `[1]`;
///   total % 3 == 2 ends with `[1, 2]`;
/// - order 2: even totals end with `[1], [1]`; odd ones with `[1]`.
///
/// A step to sigma = 0 is first order (see [`multistep_order`]); [`singlestep_orders`] applies
/// that to the last entry, the steppers at the step itself.
pub fn singlestep_order(step: usize, total: usize, order: usize, lower_order_final: bool) -> usize {
    let base = step % order + 1;
    let lower = lower_order_final || !total.is_multiple_of(order);
    if !lower {
        return base;
    }
    let from_end = total - step; // 1 on the last step
    match (order, total % order) {
        (3, 0) if from_end <= 3 => [1, 2, 1][3 - from_end],
        (3, 1) if from_end == 1 => 1,
        (2, 0) if from_end <= 2 => 1,
        (2, 1) if from_end == 1 => 1,
        _ => base,
    }
}

/// The whole singlestep order list for `total` steps (diffusers' `order_list`): entry i is
/// [`singlestep_order`] of step i, and the last entry is 1 when the grid ends at sigma = 0.
pub fn singlestep_orders(total: usize, order: usize, lower_order_final: bool, ends_at_zero: bool) -> Vec<usize> {
    let mut orders: Vec<usize> = (0..total).map(|k| singlestep_order(k, total, order, lower_order_final)).collect();
    if ends_at_zero {
        if let Some(last) = orders.last_mut() {
            *last = 1;
        }
    }
    orders
}

/// The last few model outputs of a multistep or singlestep method and their half log-SNRs
/// (newest last), in buffers allocated once.
#[derive(Debug)]
pub struct History {
    lambdas: Vec<f64>,
    outputs: Vec<Array2<f64>>,
    len: usize,
}

impl History {
    /// Room for `capacity` outputs of shape `rows x cols`.
    pub fn new(capacity: usize, rows: usize, cols: usize) -> Self {
        Self {
            lambdas: vec![0.0; capacity],
            outputs: (0..capacity).map(|_| Array2::zeros((rows, cols))).collect(),
            len: 0,
        }
    }

    /// Number of stored outputs.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forgets every output.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Stores a new output at half log-SNR `lambda`, written by `fill` into the buffer of the
    /// oldest one when full.
    pub fn push_with(&mut self, lambda: f64, fill: impl FnOnce(ArrayViewMut2<f64>) -> Result<()>) -> Result<()> {
        if self.len == self.outputs.len() {
            self.outputs.rotate_left(1);
            self.lambdas.rotate_left(1);
        } else {
            self.len += 1;
        }
        let last = self.len - 1;
        self.lambdas[last] = lambda;
        fill(self.outputs[last].view_mut())
    }

    /// The output `back` steps before the newest (0: the newest) and its half log-SNR.
    pub fn get(&self, back: usize) -> (f64, &Array2<f64>) {
        let i = self.len - 1 - back;
        (self.lambdas[i], &self.outputs[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phi_series_and_closed_forms_agree_where_both_are_accurate() {
        // Around the switch at |z| = 0.5 both forms are accurate: the closed forms lose about
        // eps / |z|^(k-1) to cancellation, the series is exact to rounding.
        for &z in &[-0.9, -0.5, -0.3, 0.3, 0.5, 0.9] {
            let s = phi_series(z);
            let p1 = z.exp_m1() / z;
            let p2 = (p1 - 1.0) / z;
            let p3 = (p2 - 0.5) / z;
            for (k, (a, b)) in s.iter().zip([p1, p2, p3]).enumerate() {
                assert!((a - b).abs() <= 1e-14 * b.abs(), "phi_{} at z = {z}: series {a}, closed {b}", k + 1);
            }
        }
        assert_eq!(phi(0.0), [1.0, 0.5, 1.0 / 6.0]);
        // Large |z|: phi_1(-40) = (1 - e^-40) / 40, phi_2(-40) = (phi_1 - 1) / -40, ...
        let p = phi(-40.0);
        assert!((p[0] - 0.025).abs() < 1e-15 && (p[1] - 0.975 / 40.0).abs() < 1e-15, "{p:?}");
    }

    #[test]
    fn singlestep_lists_are_diffusers_lists() {
        assert_eq!(singlestep_orders(10, 3, true, true), [1, 2, 3, 1, 2, 3, 1, 2, 3, 1]);
        assert_eq!(singlestep_orders(9, 3, true, false), [1, 2, 3, 1, 2, 3, 1, 2, 1]);
        assert_eq!(singlestep_orders(11, 3, true, false), [1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2]);
        assert_eq!(singlestep_orders(9, 3, false, false), [1, 2, 3, 1, 2, 3, 1, 2, 3]);
        assert_eq!(singlestep_orders(9, 3, false, true), [1, 2, 3, 1, 2, 3, 1, 2, 1]);
        assert_eq!(singlestep_orders(10, 2, true, true), [1, 2, 1, 2, 1, 2, 1, 2, 1, 1]);
        assert_eq!(singlestep_orders(7, 2, false, false), [1, 2, 1, 2, 1, 2, 1]);
        assert_eq!(singlestep_orders(8, 2, false, false), [1, 2, 1, 2, 1, 2, 1, 2]);
    }

    #[test]
    fn multistep_orders_follow_diffusers() {
        let list = |n, o, lof, zero| (0..n).map(|k| multistep_order(k, n, o, lof, zero)).collect::<Vec<_>>();
        assert_eq!(list(10, 3, true, false), [1, 2, 3, 3, 3, 3, 3, 3, 2, 1]);
        assert_eq!(list(10, 3, false, false), [1, 2, 3, 3, 3, 3, 3, 3, 3, 3]);
        assert_eq!(list(10, 3, false, true), [1, 2, 3, 3, 3, 3, 3, 3, 3, 1]);
        assert_eq!(list(15, 3, true, false), [1, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3]);
        assert_eq!(list(10, 2, true, false), [1, 2, 2, 2, 2, 2, 2, 2, 2, 1]);
    }

    #[test]
    fn history_keeps_the_newest_outputs_in_order() {
        let mut h = History::new(2, 1, 1);
        for v in 0..4 {
            h.push_with(v as f64, |mut o| {
                o.fill(v as f64);
                Ok(())
            })
            .unwrap();
        }
        assert_eq!(h.len(), 2);
        assert_eq!(h.get(0).0, 3.0);
        assert_eq!(h.get(1).1[[0, 0]], 2.0);
    }
}
