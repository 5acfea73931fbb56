//! Score models and their parameterisations (MATH.md section 2).
//!
//! A sampler needs the score, a network may predict noise, data or velocity instead: all four
//! are exact affine transformations of one another given the noise level (alpha, sigma) and the
//! input x, so a model states which one it predicts and the systems convert in place. The
//! [`NoiseLevel`] handed to a model carries t and (alpha, sigma) together: an analytic target
//! needs the latter, a network is conditioned on the former, and neither has to reconstruct
//! one from the other. NFE is counted in one place, [`Counting`].

use std::sync::atomic::{AtomicUsize, Ordering};

use ndarray::{ArrayView2, ArrayViewMut2, Zip};

use crate::error::Result;
use crate::gmm::GaussianMixture;
use crate::process::ForwardProcess;

/// Where along the forward process a model is evaluated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NoiseLevel {
    /// Process time.
    pub t: f64,
    /// Signal coefficient alpha(t).
    pub alpha: f64,
    /// Noise standard deviation sigma(t).
    pub sigma: f64,
}

impl NoiseLevel {
    /// The level at time `t` of `process`.
    pub fn at_time<P: ForwardProcess + ?Sized>(process: &P, t: f64) -> Self {
        Self { t, alpha: process.alpha(t), sigma: process.sigma(t) }
    }

    /// The level where sigma / alpha = `sigma_tilde` (EDM's sigma), from closed forms.
    pub fn at_sigma_tilde<P: ForwardProcess + ?Sized>(process: &P, sigma_tilde: f64) -> Self {
        let alpha = process.alpha_from_sigma_tilde(sigma_tilde);
        Self { t: process.t_from_sigma_tilde(sigma_tilde), alpha, sigma: sigma_tilde * alpha }
    }
}

/// What a model predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parameterisation {
    /// The noise eps with x = alpha x0 + sigma eps.
    Eps,
    /// The clean data x0 (Tweedie's denoiser).
    X0,
    /// The score grad log p_t(x).
    Score,
    /// The velocity v = alpha eps - sigma x0 (Salimans & Ho 2022).
    V,
    /// The flow-matching velocity v = eps - x0 (z - x0 for rectified flow: Liu et al. 2023,
    /// Lipman et al. 2023), what flow models (SD3, Flux) predict.
    Velocity,
}

impl Parameterisation {
    /// Converts `values` (a prediction of kind `self` at input `x`) into eps, in place.
    ///
    /// score: eps = -sigma s; x0: eps = (x - alpha x0) / sigma;
    /// v: eps = (alpha v + sigma x) / (alpha^2 + sigma^2).
    pub fn to_eps(self, level: NoiseLevel, x: ArrayView2<f64>, values: ArrayViewMut2<f64>) {
        let NoiseLevel { alpha: a, sigma: s, .. } = level;
        if self != Self::Eps {
            Zip::from(values).and(x).for_each(|v, &x| *v = self.eps_of(*v, x, a, s));
        }
    }

    /// One value of kind `self` at input coordinate `x` and level (`alpha`, `sigma`) as eps:
    /// the formulas of [`Parameterisation::to_eps`].
    #[inline]
    pub fn eps_of(self, value: f64, x: f64, alpha: f64, sigma: f64) -> f64 {
        let (a, s) = (alpha, sigma);
        match self {
            Self::Eps => value,
            Self::Score => value * -s,
            Self::X0 => (x - a * value) / s,
            Self::V => (a * value + s * x) / (a * a + s * s),
            Self::Velocity => (x + a * value) / (a + s),
        }
    }

    /// The map of [`Self::to_x0`] at one level written affinely, x0 = ca x + cb value: what a
    /// vector-Jacobian product through it needs (J_x0^T r = ca r + cb J_value^T r).
    pub fn x0_coefficients(self, level: NoiseLevel) -> (f64, f64) {
        let NoiseLevel { alpha: a, sigma: s, .. } = level;
        match self {
            Self::X0 => (0.0, 1.0),
            Self::Eps => (1.0 / a, -s / a),
            Self::V => (a / (a * a + s * s), -s / (a * a + s * s)),
            Self::Velocity => (1.0 / (a + s), -s / (a + s)),
            Self::Score => (1.0 / a, s * s / a),
        }
    }

    /// Converts `values` (a prediction of kind `self` at input `x`) into x0, in place.
    ///
    /// eps: x0 = (x - sigma eps) / alpha; score: x0 = (x + sigma^2 s) / alpha;
    /// v: x0 = (alpha x - sigma v) / (alpha^2 + sigma^2); velocity: x0 = (x - sigma v) / (alpha + sigma).
    pub fn to_x0(self, level: NoiseLevel, x: ArrayView2<f64>, values: ArrayViewMut2<f64>) {
        let NoiseLevel { alpha: a, sigma: s, .. } = level;
        match self {
            Self::X0 => {}
            Self::Eps => Zip::from(values).and(x).for_each(|v, &x| *v = (x - s * *v) / a),
            Self::Score => Zip::from(values).and(x).for_each(|v, &x| *v = (x + s * s * *v) / a),
            Self::V => {
                let n = a * a + s * s;
                Zip::from(values).and(x).for_each(|v, &x| *v = (a * x - s * *v) / n)
            }
            Self::Velocity => Zip::from(values).and(x).for_each(|v, &x| *v = (x - s * *v) / (a + s)),
        }
    }

    /// Converts eps `values` at input `x` into a prediction of kind `self`, in place.
    pub fn from_eps(self, level: NoiseLevel, x: ArrayView2<f64>, values: ArrayViewMut2<f64>) {
        let NoiseLevel { alpha: a, sigma: s, .. } = level;
        match self {
            Self::Eps => {}
            Self::Score => Zip::from(values).for_each(|v| *v /= -s),
            Self::X0 => Zip::from(values).and(x).for_each(|v, &x| *v = (x - s * *v) / a),
            Self::V => {
                let n = a * a + s * s;
                Zip::from(values).and(x).for_each(|v, &x| *v = (n * *v - s * x) / a)
            }
            Self::Velocity => Zip::from(values).and(x).for_each(|v, &x| *v = ((a + s) * *v - x) / a),
        }
    }

    /// The name used on the command line and in Python (`eps`, `x0`, `v`, `velocity`, `score`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Eps => "eps",
            Self::X0 => "x0",
            Self::V => "v",
            Self::Velocity => "velocity",
            Self::Score => "score",
        }
    }

    /// The parameterisation called `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Eps, Self::X0, Self::V, Self::Velocity, Self::Score].into_iter().find(|p| p.name() == name)
    }
}

/// A model of the score of the noised data distribution, in any parameterisation.
///
/// Any model (the exact mixture, a network, a Python callable) implements `predict` in its own
/// parameterisation; the samplers read eps through [`ScoreModel::predict_eps`]. A point mass at
/// `m` has x0(x) = m at every level:
///
/// ```
/// use ndarray::{array, ArrayView2, ArrayViewMut2};
/// use scoresde::model::{NoiseLevel, Parameterisation, ScoreModel};
///
/// struct PointMass;
/// impl ScoreModel for PointMass {
///     fn dim(&self) -> usize { 2 }
///     fn parameterisation(&self) -> Parameterisation { Parameterisation::X0 }
///     fn predict(&self, _: NoiseLevel, _: ArrayView2<f64>, mut out: ArrayViewMut2<f64>) -> scoresde::Result<()> {
///         out.rows_mut().into_iter().for_each(|mut r| r.assign(&array![1.0, -1.0]));
///         Ok(())
///     }
/// }
///
/// // eps = (x - alpha x0) / sigma at alpha = 0.6, sigma = 0.8.
/// let level = NoiseLevel { t: 0.5, alpha: 0.6, sigma: 0.8 };
/// let x = array![[0.6, 0.2]];
/// let mut eps = x.clone();
/// PointMass.predict_eps(level, x.view(), eps.view_mut())?;
/// assert!((eps[[0, 0]] - 0.0).abs() < 1e-15 && (eps[[0, 1]] - 1.0).abs() < 1e-15);
/// # Ok::<(), scoresde::ScoreError>(())
/// ```
pub trait ScoreModel: Send + Sync {
    /// Data dimension d.
    fn dim(&self) -> usize;
    /// What [`ScoreModel::predict`] returns.
    fn parameterisation(&self) -> Parameterisation;
    /// Writes the prediction for every row of `x` (N x d) at `level` into `out` (N x d).
    fn predict(&self, level: NoiseLevel, x: ArrayView2<f64>, out: ArrayViewMut2<f64>) -> Result<()>;

    /// Writes the noise prediction eps(x) into `out`, converting from the model's own output.
    fn predict_eps(&self, level: NoiseLevel, x: ArrayView2<f64>, mut out: ArrayViewMut2<f64>) -> Result<()> {
        self.predict(level, x, out.view_mut())?;
        self.parameterisation().to_eps(level, x, out);
        Ok(())
    }

    /// Writes the data prediction x0(x) = E[x0 | x_t = x] into `out`, converting from the model's
    /// own output (an eps model cannot give it where alpha = 0; the exact mixture and x0, v and
    /// velocity models can).
    fn predict_x0(&self, level: NoiseLevel, x: ArrayView2<f64>, mut out: ArrayViewMut2<f64>) -> Result<()> {
        self.predict(level, x, out.view_mut())?;
        self.parameterisation().to_x0(level, x, out);
        Ok(())
    }

    /// Writes `a x + b eps(x)` into `out` (one NFE): the affine maps of the probability flow and
    /// the reverse SDE's drift. The default is [`predict_eps`](Self::predict_eps) and a pass over
    /// the batch; a model may fuse the two (same values, one pass less over memory).
    fn predict_eps_affine(
        &self,
        level: NoiseLevel,
        x: ArrayView2<f64>,
        mut out: ArrayViewMut2<f64>,
        a: f64,
        b: f64,
    ) -> Result<()> {
        self.predict_eps(level, x, out.view_mut())?;
        scoresde_solvers::par::zip_mut(out, x, |o, x| *o = a * x + b * *o);
        Ok(())
    }

    /// Whether the model is guided and gives its unconditional prediction beside the guided one
    /// ([`predict_pair`](Self::predict_pair)): what CFG++'s solvers need.
    fn has_pair(&self) -> bool {
        false
    }

    /// A guided model's guided prediction (what [`predict`](Self::predict) writes) into `guided`
    /// and its unconditional one into `uncond`, both in the model's parameterisation, in one
    /// guided evaluation (one NFE, as CFG's two passes count as one). Models without a pair
    /// ([`has_pair`](Self::has_pair) false) refuse.
    fn predict_pair(
        &self,
        level: NoiseLevel,
        x: ArrayView2<f64>,
        guided: ArrayViewMut2<f64>,
        uncond: ArrayViewMut2<f64>,
    ) -> Result<()> {
        let _ = (level, x, guided, uncond);
        Err(crate::error::ScoreError::Model {
            context: "guided prediction pair".into(),
            message: "the model is not guided (CFG++ needs --class C with --guidance W, or --classifier-scale S)"
                .into(),
        })
    }

    /// The data prediction x0(x) into `x0` and the vector-Jacobian product J^T r of it
    /// (J = d x0 / d x, per row) into `vjp`, exactly, where the model can (a network on the
    /// fused f64 path: forward-mode tangents); returns false, writing nothing, where it cannot.
    fn predict_x0_vjp(
        &self,
        level: NoiseLevel,
        x: ArrayView2<f64>,
        r: ArrayView2<f64>,
        x0: ArrayViewMut2<f64>,
        vjp: ArrayViewMut2<f64>,
    ) -> Result<bool> {
        let _ = (level, x, r, x0, vjp);
        Ok(false)
    }

    /// [`predict_pair`](Self::predict_pair) converted to noise predictions.
    fn predict_eps_pair(
        &self,
        level: NoiseLevel,
        x: ArrayView2<f64>,
        mut guided: ArrayViewMut2<f64>,
        mut uncond: ArrayViewMut2<f64>,
    ) -> Result<()> {
        self.predict_pair(level, x, guided.view_mut(), uncond.view_mut())?;
        self.parameterisation().to_eps(level, x, guided);
        self.parameterisation().to_eps(level, x, uncond);
        Ok(())
    }

    /// The Euler update `x <- x + h (a x + b eps(x))` in place (one NFE), with `scratch` (same
    /// shape) free for the model: an Euler step of the probability flow. Returns whether the
    /// model checked every updated value to be finite (so the sampler can skip its own scan).
    /// The default is [`predict_eps_affine`](Self::predict_eps_affine) into `scratch` and
    /// `x += h scratch`, unchecked; a model may fuse them (same values bit for bit, two passes
    /// over memory less) and check as it writes.
    fn eps_affine_update(
        &self,
        level: NoiseLevel,
        step: AffineStep,
        x: ArrayViewMut2<f64>,
        mut scratch: ArrayViewMut2<f64>,
    ) -> Result<bool> {
        self.predict_eps_affine(level, x.view(), scratch.view_mut(), step.a, step.b)?;
        scoresde_solvers::par::scaled_add(x, step.h, scratch.view());
        Ok(false)
    }
}

/// The coefficients of [`ScoreModel::eps_affine_update`]: `x <- x + h (a x + b eps(x))`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AffineStep {
    /// Factor of `x` in the affine map.
    pub a: f64,
    /// Factor of `eps(x)` in the affine map.
    pub b: f64,
    /// Step size.
    pub h: f64,
}

impl<M: ScoreModel + ?Sized> ScoreModel for &M {
    fn dim(&self) -> usize {
        (**self).dim()
    }
    fn parameterisation(&self) -> Parameterisation {
        (**self).parameterisation()
    }
    fn predict(&self, level: NoiseLevel, x: ArrayView2<f64>, out: ArrayViewMut2<f64>) -> Result<()> {
        (**self).predict(level, x, out)
    }
    fn predict_eps(&self, level: NoiseLevel, x: ArrayView2<f64>, out: ArrayViewMut2<f64>) -> Result<()> {
        (**self).predict_eps(level, x, out)
    }
    fn predict_x0(&self, level: NoiseLevel, x: ArrayView2<f64>, out: ArrayViewMut2<f64>) -> Result<()> {
        (**self).predict_x0(level, x, out)
    }
    fn has_pair(&self) -> bool {
        (**self).has_pair()
    }
    fn predict_x0_vjp(
        &self,
        level: NoiseLevel,
        x: ArrayView2<f64>,
        r: ArrayView2<f64>,
        x0: ArrayViewMut2<f64>,
        vjp: ArrayViewMut2<f64>,
    ) -> Result<bool> {
        (**self).predict_x0_vjp(level, x, r, x0, vjp)
    }
    fn predict_pair(
        &self,
        level: NoiseLevel,
        x: ArrayView2<f64>,
        guided: ArrayViewMut2<f64>,
        uncond: ArrayViewMut2<f64>,
    ) -> Result<()> {
        (**self).predict_pair(level, x, guided, uncond)
    }
    fn predict_eps_affine(
        &self,
        level: NoiseLevel,
        x: ArrayView2<f64>,
        out: ArrayViewMut2<f64>,
        a: f64,
        b: f64,
    ) -> Result<()> {
        (**self).predict_eps_affine(level, x, out, a, b)
    }
    fn eps_affine_update(
        &self,
        level: NoiseLevel,
        step: AffineStep,
        x: ArrayViewMut2<f64>,
        scratch: ArrayViewMut2<f64>,
    ) -> Result<bool> {
        (**self).eps_affine_update(level, step, x, scratch)
    }
}

/// The exact noise prediction of a Gaussian-mixture target: every sampler can be tested against a
/// distribution known in closed form.
#[derive(Debug, Clone)]
pub struct ExactScore {
    target: GaussianMixture,
}

impl ExactScore {
    /// The exact model of `target`.
    pub fn new(target: GaussianMixture) -> Self {
        Self { target }
    }
    /// The target.
    pub fn target(&self) -> &GaussianMixture {
        &self.target
    }
}

impl ScoreModel for ExactScore {
    fn dim(&self) -> usize {
        self.target.dim()
    }
    fn parameterisation(&self) -> Parameterisation {
        Parameterisation::Eps
    }
    fn predict(&self, level: NoiseLevel, x: ArrayView2<f64>, out: ArrayViewMut2<f64>) -> Result<()> {
        self.target.check_level(level.alpha, level.sigma)?;
        self.target.eps(level.alpha, level.sigma, x, out);
        Ok(())
    }
    fn predict_x0(&self, level: NoiseLevel, x: ArrayView2<f64>, out: ArrayViewMut2<f64>) -> Result<()> {
        self.target.check_level(level.alpha, level.sigma)?;
        self.target.x0(level.alpha, level.sigma, x, out);
        Ok(())
    }
    fn predict_eps_affine(
        &self,
        level: NoiseLevel,
        x: ArrayView2<f64>,
        out: ArrayViewMut2<f64>,
        a: f64,
        b: f64,
    ) -> Result<()> {
        self.target.check_level(level.alpha, level.sigma)?;
        self.target.eps_affine(level.alpha, level.sigma, x, out, a, b);
        Ok(())
    }
    fn eps_affine_update(
        &self,
        level: NoiseLevel,
        step: AffineStep,
        x: ArrayViewMut2<f64>,
        _scratch: ArrayViewMut2<f64>,
    ) -> Result<bool> {
        self.target.check_level(level.alpha, level.sigma)?;
        Ok(self.target.eps_affine_update(level.alpha, level.sigma, x, step.a, step.b, step.h))
    }
}

/// Counts model evaluations (NFE, the x-axis of every figure): one call = one NFE, whatever the
/// batch size.
#[derive(Debug)]
pub struct Counting<M> {
    inner: M,
    calls: AtomicUsize,
}

impl<M> Counting<M> {
    /// Starts at zero.
    pub fn new(inner: M) -> Self {
        Self { inner, calls: AtomicUsize::new(0) }
    }
    /// Evaluations so far.
    pub fn nfe(&self) -> usize {
        self.calls.load(Ordering::Relaxed)
    }
    /// The wrapped model.
    pub fn inner(&self) -> &M {
        &self.inner
    }
}

impl<M: ScoreModel> ScoreModel for Counting<M> {
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn parameterisation(&self) -> Parameterisation {
        self.inner.parameterisation()
    }
    fn predict(&self, level: NoiseLevel, x: ArrayView2<f64>, out: ArrayViewMut2<f64>) -> Result<()> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.inner.predict(level, x, out)
    }
    fn predict_eps(&self, level: NoiseLevel, x: ArrayView2<f64>, out: ArrayViewMut2<f64>) -> Result<()> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.inner.predict_eps(level, x, out)
    }
    fn predict_x0(&self, level: NoiseLevel, x: ArrayView2<f64>, out: ArrayViewMut2<f64>) -> Result<()> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.inner.predict_x0(level, x, out)
    }
    fn has_pair(&self) -> bool {
        self.inner.has_pair()
    }
    fn predict_pair(
        &self,
        level: NoiseLevel,
        x: ArrayView2<f64>,
        guided: ArrayViewMut2<f64>,
        uncond: ArrayViewMut2<f64>,
    ) -> Result<()> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.inner.predict_pair(level, x, guided, uncond)
    }
    fn predict_eps_affine(
        &self,
        level: NoiseLevel,
        x: ArrayView2<f64>,
        out: ArrayViewMut2<f64>,
        a: f64,
        b: f64,
    ) -> Result<()> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.inner.predict_eps_affine(level, x, out, a, b)
    }
    fn eps_affine_update(
        &self,
        level: NoiseLevel,
        step: AffineStep,
        x: ArrayViewMut2<f64>,
        scratch: ArrayViewMut2<f64>,
    ) -> Result<bool> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.inner.eps_affine_update(level, step, x, scratch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn x0_coefficients_are_the_map_of_to_x0() {
        use Parameterisation::*;
        let x = Array2::from_shape_fn((5, 3), |(i, j)| (i as f64 - 2.0) * 0.7 + j as f64 * 0.3);
        let v = Array2::from_shape_fn((5, 3), |(i, j)| 1.1 - (i * j) as f64 * 0.2);
        for (alpha, sigma) in [(0.99, 0.14), (0.5, 0.87), (0.02, 3.0), (1.0, 0.0)] {
            let level = NoiseLevel { t: 0.5, alpha, sigma };
            for p in [Eps, X0, Score, V, Velocity] {
                let mut x0 = v.clone();
                p.to_x0(level, x.view(), x0.view_mut());
                let (ca, cb) = p.x0_coefficients(level);
                for ((&x0, &x), &v) in x0.iter().zip(&x).zip(&v) {
                    let (affine, size) = (ca * x + cb * v, (ca * x).abs() + (cb * v).abs());
                    // Each side is a few roundings of the same expression: 8 eps of its terms.
                    assert!(
                        (x0 - affine).abs() <= 8.0 * f64::EPSILON * size,
                        "{p:?} at {alpha}, {sigma}: {x0} vs {affine}"
                    );
                }
            }
        }
    }
}
