//! What a stepper integrates.
//!
//! Systems are split by the capability a stepper needs, so that a solver's trait bound says what
//! it requires (a Runge-Kutta method needs only a right-hand side; Euler-Maruyama needs a drift
//! and a diffusion coefficient). States are `N x d` batches, one sample per row; every system
//! used here acts on rows independently, which is what lets a caller chunk or parallelise rows
//! without changing any result.

use std::cell::Cell;

use ndarray::{ArrayView2, ArrayViewMut2};

use crate::error::Result;

/// An ordinary differential equation dx/dt = F(t, x) on an `N x d` batch.
pub trait OdeSystem {
    /// Writes F(t, x) into `dxdt` (same shape as `x`).
    fn rhs(&self, t: f64, x: ArrayView2<f64>, dxdt: ArrayViewMut2<f64>) -> Result<()>;

    /// Whether F is singular at `t` (for example sigma-space ODEs at sigma = 0). A fixed-step
    /// Runge-Kutta step that ends at such a point is taken as an Euler step, which evaluates F
    /// only at the start (as EDM and k-diffusion do on their last step to sigma = 0).
    fn is_singular_at(&self, t: f64) -> bool {
        let _ = t;
        false
    }

    /// The Euler update `x <- x + h F(t, x)` (one evaluation), with `scratch` (same shape as
    /// `x`) free for F. Returns whether the system checked every updated value to be finite
    /// (the integration loop then skips its own scan). The default writes F into `scratch` and
    /// adds it, unchecked; a system may fuse the two into one pass over the batch, but must give
    /// the same values bit for bit.
    fn euler_update(&self, t: f64, h: f64, x: ArrayViewMut2<f64>, mut scratch: ArrayViewMut2<f64>) -> Result<bool> {
        self.rhs(t, x.view(), scratch.view_mut())?;
        crate::par::scaled_add(x, h, scratch.view());
        Ok(false)
    }
}

/// An Itô SDE with additive, state-independent scalar noise: dx = b(t, x) dt + g(t) dW.
pub trait SdeSystem {
    /// Writes the drift b(t, x) into `out`.
    fn drift(&self, t: f64, x: ArrayView2<f64>, out: ArrayViewMut2<f64>) -> Result<()>;
    /// The diffusion coefficient g(t) (same for every coordinate and sample).
    fn diffusion(&self, t: f64) -> f64;
}

/// A noising path with Gaussian marginals N(alpha(t) x0, sigma(t)^2 I) and a noise prediction,
/// in process time t: what ancestral (DDPM posterior) and reverse-diffusion steps and the Langevin
/// corrector need, beyond a drift.
pub trait SemiLinear {
    /// Signal coefficient alpha(t).
    fn alpha(&self, t: f64) -> f64;
    /// Noise level sigma(t).
    fn sigma(&self, t: f64) -> f64;
    /// Writes the noise prediction eps(x, t) into `out`.
    fn eps(&self, t: f64, x: ArrayView2<f64>, out: ArrayViewMut2<f64>) -> Result<()>;
}

/// The probability-flow ODE in EDM's variables (Karras et al. 2022): state x (= x/alpha of the
/// process), time sigma (= sigma/alpha), dx/dsigma = eps(x, sigma), with the denoiser
/// D(x, sigma) = x - sigma eps(x, sigma). Exponential integrators (DDIM, DPM-Solver, UniPC, DEIS)
/// and k-diffusion's samplers need exactly this: a noise or data prediction at a noise level.
pub trait SigmaSpace {
    /// Writes the noise prediction eps(x, sigma) into `out`.
    fn eps(&self, sigma: f64, x: ArrayView2<f64>, out: ArrayViewMut2<f64>) -> Result<()>;

    /// Writes the data prediction D(x, sigma) = x - sigma eps(x, sigma) into `out`.
    fn denoise(&self, sigma: f64, x: ArrayView2<f64>, mut out: ArrayViewMut2<f64>) -> Result<()> {
        self.eps(sigma, x, out.view_mut())?;
        crate::par::zip_mut(out, x, |o, x| *o = x - sigma * *o);
        Ok(())
    }
}

/// A guided sigma-space flow that also gives, with each guided evaluation, the unconditional
/// prediction it was built from: what CFG++ (Chung et al. 2024) renoises with. The guided data
/// prediction is what [`SigmaSpace::denoise`] gives.
pub trait GuidedSigmaSpace: SigmaSpace {
    /// Writes the guided data prediction D_g(x, sigma) into `guided` and the unconditional
    /// D_u(x, sigma) into `uncond` (one guided evaluation).
    fn denoise_pair(
        &self,
        sigma: f64,
        x: ArrayView2<f64>,
        guided: ArrayViewMut2<f64>,
        uncond: ArrayViewMut2<f64>,
    ) -> Result<()>;
}

/// Wraps a system and counts its evaluations (right-hand side or drift calls).
///
/// The count lives here, in one place, not in the steppers.
#[derive(Debug)]
pub struct Counted<S> {
    inner: S,
    calls: Cell<usize>,
}

impl<S> Counted<S> {
    /// Starts counting at zero.
    pub fn new(inner: S) -> Self {
        Self { inner, calls: Cell::new(0) }
    }
    /// Number of evaluations so far.
    pub fn calls(&self) -> usize {
        self.calls.get()
    }
    /// The wrapped system.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S: OdeSystem> OdeSystem for Counted<S> {
    fn rhs(&self, t: f64, x: ArrayView2<f64>, dxdt: ArrayViewMut2<f64>) -> Result<()> {
        self.calls.set(self.calls.get() + 1);
        self.inner.rhs(t, x, dxdt)
    }
    fn is_singular_at(&self, t: f64) -> bool {
        self.inner.is_singular_at(t)
    }
    fn euler_update(&self, t: f64, h: f64, x: ArrayViewMut2<f64>, scratch: ArrayViewMut2<f64>) -> Result<bool> {
        self.calls.set(self.calls.get() + 1);
        self.inner.euler_update(t, h, x, scratch)
    }
}

impl<S: SigmaSpace> SigmaSpace for Counted<S> {
    fn eps(&self, sigma: f64, x: ArrayView2<f64>, out: ArrayViewMut2<f64>) -> Result<()> {
        self.calls.set(self.calls.get() + 1);
        self.inner.eps(sigma, x, out)
    }
}

impl<S: GuidedSigmaSpace> GuidedSigmaSpace for Counted<S> {
    fn denoise_pair(
        &self,
        sigma: f64,
        x: ArrayView2<f64>,
        guided: ArrayViewMut2<f64>,
        uncond: ArrayViewMut2<f64>,
    ) -> Result<()> {
        self.calls.set(self.calls.get() + 1);
        self.inner.denoise_pair(sigma, x, guided, uncond)
    }
}

impl<S: SdeSystem> SdeSystem for Counted<S> {
    fn drift(&self, t: f64, x: ArrayView2<f64>, out: ArrayViewMut2<f64>) -> Result<()> {
        self.calls.set(self.calls.get() + 1);
        self.inner.drift(t, x, out)
    }
    fn diffusion(&self, t: f64) -> f64 {
        self.inner.diffusion(t)
    }
}
