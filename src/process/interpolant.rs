//! Interpolants whose signal coefficient reaches zero at T: rectified flow and the trigonometric
//! interpolant. Their f = d log alpha / dt is infinite at T, so they also state the rates
//! (alpha', sigma') with which the probability flow is written as a velocity
//! v = alpha' x0 + sigma' eps, finite on all of [0, T] ([`ForwardProcess::rates`]).

use std::f64::consts::FRAC_PI_2;

use super::{ForwardProcess, ProcessSpec};

/// Rectified flow / flow matching (Liu et al. 2023; Lipman et al. 2023; Stable Diffusion 3, Flux):
/// x_t = (1 - t) x0 + t z, alpha = 1 - t, sigma = t, t in [0, 1], prior N(0, I) at t = 1. The
/// velocity is v = z - x0 (alpha' = -1, sigma' = 1); sigma~ = t / (1 - t). Sampling ends at t = 0
/// (diffusers' flow-match schedulers end their sigmas there).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flow;

impl ForwardProcess for Flow {
    fn name(&self) -> &'static str {
        "flow"
    }
    fn t_max(&self) -> f64 {
        1.0
    }
    fn t_end_default(&self) -> f64 {
        0.0
    }
    fn f(&self, t: f64) -> f64 {
        -1.0 / (1.0 - t)
    }
    fn g2(&self, t: f64) -> f64 {
        2.0 * t / (1.0 - t)
    }
    fn alpha(&self, t: f64) -> f64 {
        1.0 - t
    }
    fn sigma(&self, t: f64) -> f64 {
        t
    }
    fn log_snr(&self, t: f64) -> f64 {
        ((1.0 - t) / t).ln()
    }
    fn t_from_log_snr(&self, lambda: f64) -> f64 {
        // (1 - t) / t = e^lambda.
        1.0 / (1.0 + lambda.exp())
    }
    fn prior_std(&self) -> f64 {
        1.0
    }
    fn sigma_tilde(&self, t: f64) -> f64 {
        t / (1.0 - t)
    }
    fn alpha_from_sigma_tilde(&self, s: f64) -> f64 {
        1.0 / (1.0 + s)
    }
    fn t_from_sigma_tilde(&self, s: f64) -> f64 {
        if s.is_infinite() {
            1.0
        } else {
            s / (1.0 + s)
        }
    }
    fn rates(&self, _t: f64) -> Option<(f64, f64)> {
        Some((-1.0, 1.0))
    }
    fn spec(&self) -> ProcessSpec {
        ProcessSpec::Flow
    }
}

/// The trigonometric interpolant (Albergo & Vanden-Eijnden 2023; the cosine schedule with no
/// offset): alpha = cos(pi t / 2), sigma = sin(pi t / 2), t in [0, 1], prior N(0, I). A VP
/// process (alpha^2 + sigma^2 = 1) with f = -(pi/2) tan(pi t / 2), g^2 = pi tan(pi t / 2); alpha
/// is exactly 0 at t = 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Trig;

impl Trig {
    fn cos_sin(t: f64) -> (f64, f64) {
        if t == 1.0 {
            (0.0, 1.0)
        } else {
            let (s, c) = (FRAC_PI_2 * t).sin_cos();
            (c, s)
        }
    }
}

impl ForwardProcess for Trig {
    fn name(&self) -> &'static str {
        "trig"
    }
    fn t_max(&self) -> f64 {
        1.0
    }
    fn t_end_default(&self) -> f64 {
        0.0
    }
    fn f(&self, t: f64) -> f64 {
        let (c, s) = Self::cos_sin(t);
        -FRAC_PI_2 * s / c
    }
    fn g2(&self, t: f64) -> f64 {
        -2.0 * self.f(t)
    }
    fn alpha(&self, t: f64) -> f64 {
        Self::cos_sin(t).0
    }
    fn sigma(&self, t: f64) -> f64 {
        Self::cos_sin(t).1
    }
    fn log_snr(&self, t: f64) -> f64 {
        let (c, s) = Self::cos_sin(t);
        (c / s).ln()
    }
    fn t_from_log_snr(&self, lambda: f64) -> f64 {
        // tan(pi t / 2) = e^{-lambda}.
        (-lambda).exp().atan() / FRAC_PI_2
    }
    fn prior_std(&self) -> f64 {
        1.0
    }
    fn sigma_tilde(&self, t: f64) -> f64 {
        let (c, s) = Self::cos_sin(t);
        s / c
    }
    fn alpha_from_sigma_tilde(&self, s: f64) -> f64 {
        1.0 / (1.0 + s * s).sqrt()
    }
    fn t_from_sigma_tilde(&self, s: f64) -> f64 {
        s.atan() / FRAC_PI_2
    }
    fn rates(&self, t: f64) -> Option<(f64, f64)> {
        let (c, s) = Self::cos_sin(t);
        Some((-FRAC_PI_2 * s, FRAC_PI_2 * c))
    }
    fn spec(&self) -> ProcessSpec {
        ProcessSpec::Trig
    }
}
