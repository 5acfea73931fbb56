//! From (process, model) to the systems the generic solvers integrate (MATH.md section 3).
//!
//! - [`ProbabilityFlow`]: dx/dt = f(t) x + g(t)^2 eps / (2 sigma(t)), in t.
//! - [`SigmaFlow`]: the same trajectories in EDM's variables x~ = x / alpha against
//!   sigma~ = sigma / alpha, where dx~/dsigma~ = eps(alpha x~). The change of variables changes
//!   what a given integrator computes (Euler here is DDIM), which is why the space is an explicit
//!   choice of the caller.
//! - [`ReverseSde`]: dx = [f x + g^2 eps / sigma] dt + g dW (Anderson 1982), in t.
//!
//! Model errors are wrapped into the solver error with the time of the call.

use std::cell::RefCell;

use ndarray::{Array2, ArrayView2, ArrayViewMut2};
use scoresde_solvers::{par, GuidedSigmaSpace, OdeSystem, SdeSystem, SemiLinear, SigmaSpace, SolverError};

use crate::model::{AffineStep, NoiseLevel, ScoreModel};
use crate::process::ForwardProcess;

fn wrap(t: f64) -> impl FnOnce(crate::error::ScoreError) -> SolverError {
    move |e| SolverError::System { t, source: Box::new(e) }
}

/// The probability-flow ODE in t.
#[derive(Debug, Clone, Copy)]
pub struct ProbabilityFlow<'a, P: ?Sized, M: ?Sized> {
    process: &'a P,
    model: &'a M,
    full_final_step: bool,
}

impl<'a, P: ForwardProcess + ?Sized, M: ScoreModel + ?Sized> ProbabilityFlow<'a, P, M> {
    /// Pairs a process with a model.
    pub fn new(process: &'a P, model: &'a M) -> Self {
        Self { process, model, full_final_step: false }
    }

    /// Where the flow is regular at sigma = 0 (processes with rates: flow, trig), let solvers take
    /// their full step there. By default every step that reaches sigma = 0 is one Euler step, as
    /// EDM, k-diffusion and diffusers (FlowMatchHeun's last step) do, which caps the global order
    /// of methods above 2 at 2.
    pub fn with_full_final_step(mut self, on: bool) -> Self {
        self.full_final_step = on;
        self
    }
}

/// The velocity form of the flow of a process with rates (flow, trig): v = alpha' x0 + sigma' eps,
/// written as `a x + b eps` where alpha >= sigma and as `a x + c x0` where sigma > alpha (so
/// neither form divides by a vanishing coefficient: alpha = 0 at T, sigma = 0 at 0).
enum Velocity {
    Eps { a: f64, b: f64 },
    X0 { a: f64, c: f64 },
}

fn velocity(level: NoiseLevel, (da, ds): (f64, f64)) -> Velocity {
    let NoiseLevel { alpha, sigma, .. } = level;
    if alpha >= sigma {
        Velocity::Eps { a: da / alpha, b: ds - da * sigma / alpha }
    } else {
        Velocity::X0 { a: ds / sigma, c: da - ds * alpha / sigma }
    }
}

impl<P: ForwardProcess + ?Sized, M: ScoreModel + ?Sized> ProbabilityFlow<'_, P, M> {
    /// `a x + c x0(x)` into `out` (one NFE).
    fn x0_affine(&self, level: NoiseLevel, x: ArrayView2<f64>, mut out: ArrayViewMut2<f64>, a: f64, c: f64) -> Result {
        self.model.predict_x0(level, x, out.view_mut()).map_err(wrap(level.t))?;
        par::zip_mut(out, x, |o, x| *o = a * x + c * *o);
        Ok(())
    }
}

type Result<T = ()> = scoresde_solvers::Result<T>;

impl<P: ForwardProcess + ?Sized, M: ScoreModel + ?Sized> OdeSystem for ProbabilityFlow<'_, P, M> {
    fn rhs(&self, t: f64, x: ArrayView2<f64>, out: ArrayViewMut2<f64>) -> scoresde_solvers::Result<()> {
        let p = self.process;
        let level = NoiseLevel { t, alpha: p.alpha(t), sigma: p.sigma(t) };
        if let Some(rates) = p.rates(t) {
            return match velocity(level, rates) {
                Velocity::Eps { a, b } => self.model.predict_eps_affine(level, x, out, a, b).map_err(wrap(t)),
                Velocity::X0 { a, c } => self.x0_affine(level, x, out, a, c),
            };
        }
        let (f, c) = (p.f(t), 0.5 * p.g2(t) / level.sigma);
        self.model.predict_eps_affine(level, x, out, f, c).map_err(wrap(t))
    }
    fn is_singular_at(&self, t: f64) -> bool {
        self.process.sigma(t) == 0.0 && !(self.full_final_step && self.process.rates(t).is_some())
    }
    fn euler_update(
        &self,
        t: f64,
        h: f64,
        x: ArrayViewMut2<f64>,
        scratch: ArrayViewMut2<f64>,
    ) -> scoresde_solvers::Result<bool> {
        let p = self.process;
        let level = NoiseLevel { t, alpha: p.alpha(t), sigma: p.sigma(t) };
        let step = match p.rates(t).map(|r| velocity(level, r)) {
            None => AffineStep { a: p.f(t), b: 0.5 * p.g2(t) / level.sigma, h },
            Some(Velocity::Eps { a, b }) => AffineStep { a, b, h },
            Some(Velocity::X0 { a, c }) => {
                let mut scratch = scratch;
                self.x0_affine(level, x.view(), scratch.view_mut(), a, c)?;
                par::scaled_add(x, h, scratch.view());
                return Ok(false);
            }
        };
        self.model.eps_affine_update(level, step, x, scratch).map_err(wrap(t))
    }
}

/// The probability-flow ODE in EDM's sigma space: state x~ = x / alpha, time sigma~.
#[derive(Debug)]
pub struct SigmaFlow<'a, P: ?Sized, M: ?Sized> {
    process: &'a P,
    model: &'a M,
    scaled: RefCell<Array2<f64>>,
}

impl<'a, P: ForwardProcess + ?Sized, M: ScoreModel + ?Sized> SigmaFlow<'a, P, M> {
    /// Pairs a process with a model.
    pub fn new(process: &'a P, model: &'a M) -> Self {
        Self { process, model, scaled: RefCell::new(Array2::zeros((0, 0))) }
    }
}

impl<P: ForwardProcess + ?Sized, M: ScoreModel + ?Sized> SigmaSpace for SigmaFlow<'_, P, M> {
    fn eps(&self, s: f64, xt: ArrayView2<f64>, out: ArrayViewMut2<f64>) -> scoresde_solvers::Result<()> {
        let level = NoiseLevel::at_sigma_tilde(self.process, s);
        if level.alpha == 1.0 {
            return self.model.predict_eps(level, xt, out).map_err(wrap(level.t));
        }
        let mut x = self.scaled.borrow_mut();
        if x.dim() != xt.dim() {
            *x = Array2::zeros(xt.dim());
        }
        par::zip_mut(x.view_mut(), xt, |x, xt| *x = level.alpha * xt);
        self.model.predict_eps(level, x.view(), out).map_err(wrap(level.t))
    }
}

/// CFG++'s pair: the model's guided and unconditional noise predictions at the same input
/// (scaled to x = alpha x~ as `eps` does), as data predictions D = x~ - sigma~ eps.
impl<P: ForwardProcess + ?Sized, M: ScoreModel + ?Sized> GuidedSigmaSpace for SigmaFlow<'_, P, M> {
    fn denoise_pair(
        &self,
        s: f64,
        xt: ArrayView2<f64>,
        mut guided: ArrayViewMut2<f64>,
        mut uncond: ArrayViewMut2<f64>,
    ) -> scoresde_solvers::Result<()> {
        let level = NoiseLevel::at_sigma_tilde(self.process, s);
        if level.alpha == 1.0 {
            self.model.predict_eps_pair(level, xt, guided.view_mut(), uncond.view_mut()).map_err(wrap(level.t))?;
        } else {
            let mut x = self.scaled.borrow_mut();
            if x.dim() != xt.dim() {
                *x = Array2::zeros(xt.dim());
            }
            par::zip_mut(x.view_mut(), xt, |x, xt| *x = level.alpha * xt);
            self.model
                .predict_eps_pair(level, x.view(), guided.view_mut(), uncond.view_mut())
                .map_err(wrap(level.t))?;
        }
        par::zip_mut(guided, xt, |o, x| *o = x - s * *o);
        par::zip_mut(uncond, xt, |o, x| *o = x - s * *o);
        Ok(())
    }
}

impl<P: ForwardProcess + ?Sized, M: ScoreModel + ?Sized> OdeSystem for SigmaFlow<'_, P, M> {
    fn rhs(&self, s: f64, xt: ArrayView2<f64>, out: ArrayViewMut2<f64>) -> scoresde_solvers::Result<()> {
        self.eps(s, xt, out)
    }
    fn is_singular_at(&self, s: f64) -> bool {
        s == 0.0
    }
}

/// The reverse-time SDE in t, for Euler-Maruyama and other SDE steppers.
#[derive(Debug, Clone, Copy)]
pub struct ReverseSde<'a, P: ?Sized, M: ?Sized> {
    process: &'a P,
    model: &'a M,
}

impl<'a, P: ForwardProcess + ?Sized, M: ScoreModel + ?Sized> ReverseSde<'a, P, M> {
    /// Pairs a process with a model.
    pub fn new(process: &'a P, model: &'a M) -> Self {
        Self { process, model }
    }
}

impl<P: ForwardProcess + ?Sized, M: ScoreModel + ?Sized> SdeSystem for ReverseSde<'_, P, M> {
    fn drift(&self, t: f64, x: ArrayView2<f64>, out: ArrayViewMut2<f64>) -> scoresde_solvers::Result<()> {
        let p = self.process;
        let level = NoiseLevel { t, alpha: p.alpha(t), sigma: p.sigma(t) };
        let (f, c) = (p.f(t), p.g2(t) / level.sigma);
        self.model.predict_eps_affine(level, x, out, f, c).map_err(wrap(t))
    }
    fn diffusion(&self, t: f64) -> f64 {
        self.process.g2(t).sqrt()
    }
}

/// Implements [`SemiLinear`] for a system holding `process` and `model`.
macro_rules! semi_linear {
    ($system:ident) => {
        impl<P: ForwardProcess + ?Sized, M: ScoreModel + ?Sized> SemiLinear for $system<'_, P, M> {
            fn alpha(&self, t: f64) -> f64 {
                self.process.alpha(t)
            }
            fn sigma(&self, t: f64) -> f64 {
                self.process.sigma(t)
            }
            fn eps(&self, t: f64, x: ArrayView2<f64>, out: ArrayViewMut2<f64>) -> scoresde_solvers::Result<()> {
                let level = NoiseLevel::at_time(self.process, t);
                self.model.predict_eps(level, x, out).map_err(wrap(t))
            }
        }
    };
}
semi_linear!(ProbabilityFlow);
semi_linear!(ReverseSde);
