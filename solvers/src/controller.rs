//! Step-size controllers for [`crate::embedded::integrate_adaptive`].
//!
//! A controller sees the error norm of each attempted step (RMS over the batch of the scaled
//! difference between the method and its embedded partner) and decides whether to accept it and
//! how large the next step is. Both controllers here are validated when built, so that the loop
//! never meets a factor range it cannot clamp to.

use crate::error::{Result, SolverError};

/// What a controller decided about one attempted step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    /// Whether the step is accepted.
    pub accept: bool,
    /// Magnitude of the next step size.
    pub next: f64,
}

/// Accept/reject and next step size from the error norm of an attempt.
pub trait StepController {
    /// Per-solve memory (previous errors, whether the last attempt was rejected).
    type State;
    /// The state at the start of a solve.
    fn init(&self) -> Self::State;
    /// Judges an attempt with error norm `err` (NaN or infinite when the trial was not finite:
    /// always rejected), planned with step-size magnitude `proposed` and taken with `taken`
    /// (shorter when the step was cut to land on the end point).
    fn judge(&self, state: &mut Self::State, err: f64, proposed: f64, taken: f64) -> Verdict;
}

fn check(name: &'static str, value: f64, ok: bool, expected: &'static str) -> Result<()> {
    if ok && value.is_finite() {
        Ok(())
    } else {
        Err(SolverError::InvalidParameter { name, value, expected })
    }
}

/// The PI controller of Hairer & Wanner (Solving ODEs II, section IV.2; also Hairer, Norsett &
/// Wanner, Solving ODEs I, section II.4), as in their codes, torchdiffeq and diffrax.
///
/// Accepts when `err <= 1`. After an accepted step the next size is
/// `taken * clamp(safety * err^(-beta1) * err_prev^beta2, min_factor, max_factor)` with
/// `beta1 = 0.7 / q`, `beta2 = 0.4 / q`, `q = embedded order + 1`, `err_prev` the previous accepted
/// error (at least 1e-4, initially 1), `max_factor` when `err == 0`, and no growth right after a
/// rejection. A rejected step shrinks to `taken * max(safety * err^(-1/q), min_factor)`, a
/// non-finite error to `proposed * min_factor`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PiController {
    q: f64,
    safety: f64,
    min_factor: f64,
    max_factor: f64,
}

/// Memory of [`PiController`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PiState {
    err_prev: f64,
    last_rejected: bool,
}

impl PiController {
    /// Gains for a pair whose embedded solution has order `embedded_order`. Requires
    /// `0 < safety <= 1`, `0 < min_factor <= 1 <= max_factor`, all finite.
    pub fn new(embedded_order: u32, safety: f64, min_factor: f64, max_factor: f64) -> Result<Self> {
        check("safety", safety, safety > 0.0 && safety <= 1.0, "must be in (0, 1]")?;
        check("min_factor", min_factor, min_factor > 0.0 && min_factor <= 1.0, "must be in (0, 1]")?;
        check("max_factor", max_factor, max_factor >= 1.0, "must be finite and >= 1")?;
        Ok(Self { q: (embedded_order + 1) as f64, safety, min_factor, max_factor })
    }
}

impl StepController for PiController {
    type State = PiState;

    fn init(&self) -> PiState {
        PiState { err_prev: 1.0, last_rejected: false }
    }

    fn judge(&self, state: &mut PiState, err: f64, proposed: f64, taken: f64) -> Verdict {
        if !err.is_finite() {
            state.last_rejected = true;
            return Verdict { accept: false, next: proposed * self.min_factor };
        }
        let q = self.q;
        if err <= 1.0 {
            let (beta1, beta2) = (0.7 / q, 0.4 / q);
            let mut factor =
                if err == 0.0 { self.max_factor } else { self.safety * err.powf(-beta1) * state.err_prev.powf(beta2) };
            factor = factor.clamp(self.min_factor, self.max_factor);
            if state.last_rejected {
                factor = factor.min(1.0);
            }
            *state = PiState { err_prev: err.max(1e-4), last_rejected: false };
            Verdict { accept: true, next: taken * factor }
        } else {
            state.last_rejected = true;
            let factor = (self.safety * err.powf(-1.0 / q)).max(self.min_factor);
            Verdict { accept: false, next: taken * factor }
        }
    }
}

/// k-diffusion's PID step-size controller (`PIDStepSizeController`, used by
/// `sample_dpm_adaptive` for the adaptive DPM-Solver of Lu et al. 2022a, section 4.2; after
/// Söderlind's digital filters).
///
/// With `inv_k = 1 / (err_k + 1e-8)` for the current and the two previous accepted errors, the
/// raw factor is `inv_0^(b1/order) inv_1^(b2/order) inv_2^(b3/order)` with `b1 = p + i + d`,
/// `b2 = -(p + 2d)`, `b3 = d`; it is limited to `1 + atan(f - 1)` (between 1 - pi/4 and 1 + pi/2),
/// the step is accepted when the factor is at least `accept_safety`, and the next size is
/// `proposed * factor`, accepted or not. A non-finite error counts as an infinite one
/// (`inv = 0`, factor 1 - pi/4). With `p = d = 0, i = 1` it is the integral controller
/// `1 + atan(inv^(1/order) - 1)`, k-diffusion's default.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PidController {
    b: [f64; 3],
    order: f64,
    accept_safety: f64,
}

impl PidController {
    /// Added to the error before inverting it.
    const EPS: f64 = 1e-8;

    /// Requires finite coefficients with `pcoeff + icoeff + dcoeff > 0`, a finite `order > 0` and
    /// `1 - pi/4 < accept_safety <= 1` (so that a non-finite attempt is never accepted).
    pub fn new(pcoeff: f64, icoeff: f64, dcoeff: f64, order: f64, accept_safety: f64) -> Result<Self> {
        check("pcoeff", pcoeff, true, "must be finite")?;
        check("icoeff", icoeff, true, "must be finite")?;
        check("dcoeff", dcoeff, true, "must be finite")?;
        let b1 = pcoeff + icoeff + dcoeff;
        check("icoeff", icoeff, b1 > 0.0, "pcoeff + icoeff + dcoeff must be > 0")?;
        check("order", order, order > 0.0, "must be finite and > 0")?;
        let floor = 1.0 - std::f64::consts::FRAC_PI_4;
        check(
            "accept_safety",
            accept_safety,
            accept_safety > floor && accept_safety <= 1.0,
            "must be in (1 - pi/4, 1]",
        )?;
        Ok(Self { b: [b1, -(pcoeff + 2.0 * dcoeff), dcoeff], order, accept_safety })
    }

    /// k-diffusion's default: the integral controller (`p = d = 0`, `i = 1`), accept at 0.81.
    pub fn integral(order: f64) -> Result<Self> {
        Self::new(0.0, 1.0, 0.0, order, 0.81)
    }
}

impl StepController for PidController {
    /// The inverse errors of the current attempt and the last two accepted steps (`None` before
    /// the first attempt).
    type State = Option<[f64; 3]>;

    fn init(&self) -> Self::State {
        None
    }

    fn judge(&self, state: &mut Self::State, err: f64, proposed: f64, _taken: f64) -> Verdict {
        let inv0 = 1.0 / (if err.is_nan() { f64::INFINITY } else { err } + Self::EPS);
        let inv = state.get_or_insert([inv0; 3]);
        inv[0] = inv0;
        let [b1, b2, b3] = self.b;
        let raw = inv[0].powf(b1 / self.order) * inv[1].powf(b2 / self.order) * inv[2].powf(b3 / self.order);
        let factor = 1.0 + (raw - 1.0).atan();
        let accept = factor >= self.accept_safety;
        if accept {
            inv[2] = inv[1];
            inv[1] = inv[0];
        }
        Verdict { accept, next: proposed * factor }
    }
}
