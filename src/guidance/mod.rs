//! Classifier-free guidance (Ho & Salimans 2022) with exact scores.
//!
//! A class-conditional mixture target: class c is a group of the mixture's components, so
//! p(x | c) is the sub-mixture of those components (weights renormalised) and p(x) the whole
//! mixture, and both have exact scores at every noise level. Guidance with weight w samples with
//! eps_w = (1 + w) eps(x | c) - w eps(x), the score of p_t(x | c)^{1 + w} p_t(x)^{-w} at every t.
//! That family of tilted marginals is *not* the diffusion of the tilted data density
//! q_w(x) ∝ p(x | c)^{1 + w} p(x)^{-w}, so a guided sampler does not sample q_w exactly; with
//! exact scores the gap is measured, not guessed ([`tilted_moments_2d`] integrates q_w).
//!
//! Beside plain CFG: the guidance rules in use ([`rule`]: guidance rescale, APG, CFG-Zero*, a
//! guidance interval) over any conditional and unconditional pair ([`Guided`]), and classifier
//! guidance with the exact noisy classifier of a component-group class ([`classifier`]).

pub mod classifier;
mod guided;
pub mod rule;
mod tilted;

pub use classifier::{ClassGradient, ClassifierGuided, ExactClassifier};
pub use guided::Guided;
pub use rule::{Guidance, GuidanceRule, GuidanceState};
pub use tilted::{tilted_moments_2d, TiltedGrid};

use ndarray::{Array2, ArrayView2, ArrayViewMut2};

use crate::error::{Result, ScoreError};
use crate::gmm::{Covariance, GaussianMixture};
use crate::model::{NoiseLevel, Parameterisation, ScoreModel};

/// The sub-mixture of `components` (weights renormalised): p(x | c) for the class made of them.
pub fn sub_mixture(target: &GaussianMixture, components: &[usize]) -> Result<GaussianMixture> {
    let k = target.n_components();
    if components.is_empty() {
        return Err(ScoreError::Target("class: no components".into()));
    }
    if let Some(&bad) = components.iter().find(|&&c| c >= k) {
        return Err(ScoreError::Target(format!("class component {bad}: the target has {k} components")));
    }
    let total: f64 = components.iter().map(|&c| target.weights()[c]).sum();
    let weights = components.iter().map(|&c| target.weights()[c] / total).collect();
    let means = Array2::from_shape_fn((components.len(), target.dim()), |(i, j)| target.means()[[components[i], j]]);
    let cov = match target.covariance() {
        Covariance::Isotropic(v) => Covariance::Isotropic(components.iter().map(|&c| v[c]).collect()),
        Covariance::Diagonal(v) => {
            Covariance::Diagonal(Array2::from_shape_fn((components.len(), target.dim()), |(i, j)| {
                v[[components[i], j]]
            }))
        }
        Covariance::Full(s) => Covariance::Full(components.iter().map(|&c| s[c].clone()).collect()),
    };
    GaussianMixture::new(weights, means, cov)
}

/// The exact guided noise prediction eps_w = (1 + w) eps(x | c) - w eps(x) (one NFE: the
/// conditional and unconditional evaluations of a network count as one guided evaluation).
pub struct GuidedExact {
    cond: GaussianMixture,
    uncond: GaussianMixture,
    w: f64,
}

impl GuidedExact {
    /// Guidance weight `w` (0: the conditional model) towards the class made of `components`.
    pub fn new(target: &GaussianMixture, components: &[usize], w: f64) -> Result<Self> {
        if !w.is_finite() {
            return Err(ScoreError::InvalidParameter {
                name: "guidance weight".into(),
                value: w,
                expected: "must be finite",
            });
        }
        Ok(Self { cond: sub_mixture(target, components)?, uncond: target.clone(), w })
    }
}

impl ScoreModel for GuidedExact {
    fn dim(&self) -> usize {
        self.uncond.dim()
    }
    fn parameterisation(&self) -> Parameterisation {
        Parameterisation::Eps
    }
    fn predict(&self, level: NoiseLevel, x: ArrayView2<f64>, mut out: ArrayViewMut2<f64>) -> Result<()> {
        self.cond.check_level(level.alpha, level.sigma)?;
        self.uncond.check_level(level.alpha, level.sigma)?;
        self.cond.eps(level.alpha, level.sigma, x, out.view_mut());
        let mut u = Array2::zeros(x.dim());
        self.uncond.eps(level.alpha, level.sigma, x, u.view_mut());
        out.zip_mut_with(&u, |c, &u| *c = (1.0 + self.w) * *c - self.w * u);
        Ok(())
    }
    fn has_pair(&self) -> bool {
        true
    }
    fn predict_pair(
        &self,
        level: NoiseLevel,
        x: ArrayView2<f64>,
        mut guided: ArrayViewMut2<f64>,
        mut uncond: ArrayViewMut2<f64>,
    ) -> Result<()> {
        self.cond.check_level(level.alpha, level.sigma)?;
        self.cond.eps(level.alpha, level.sigma, x, guided.view_mut());
        self.uncond.eps(level.alpha, level.sigma, x, uncond.view_mut());
        guided.zip_mut_with(&uncond, |c, &u| *c = (1.0 + self.w) * *c - self.w * u);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array1;

    /// eps_w is the eps of p_t(x | c)^{1 + w} p_t(x)^{-w}: a finite difference of its log density.
    #[test]
    fn guided_eps_is_the_tilted_score() {
        let target = crate::targets::ring8();
        let class = [1, 3, 5, 7];
        let (a, s, w) = (0.8, 0.6, 1.5);
        let model = GuidedExact::new(&target, &class, w).unwrap();
        let cond = sub_mixture(&target, &class).unwrap();
        let x = ndarray::array![[0.7, -1.2]];
        let mut eps = Array2::zeros((1, 2));
        model.predict(NoiseLevel { t: 0.5, alpha: a, sigma: s }, x.view(), eps.view_mut()).unwrap();
        let logq = |x: &Array2<f64>| {
            let (mut lc, mut lu) = (Array1::zeros(1), Array1::zeros(1));
            cond.log_prob(a, s, x.view(), lc.view_mut());
            target.log_prob(a, s, x.view(), lu.view_mut());
            (1.0 + w) * lc[0] - w * lu[0]
        };
        for j in 0..2 {
            let hstep = 1e-5;
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp[[0, j]] += hstep;
            xm[[0, j]] -= hstep;
            let score = (logq(&xp) - logq(&xm)) / (2.0 * hstep);
            // Central difference: O(h^2) ~ 1e-10 truncation, ~1e-11 / h rounding: 1e-6 is safe.
            assert!((eps[[0, j]] + s * score).abs() < 1e-6, "coordinate {j}: {} vs {}", eps[[0, j]], -s * score);
        }
    }
}
