//! Classifier guidance (Dhariwal & Nichol 2021, "Diffusion models beat GANs on image
//! synthesis", algorithm 1 and its DDIM form, algorithm 2): the unconditional score plus S times
//! the gradient of a noisy classifier's log p_t(y | x).
//!
//! For a mixture whose classes are groups of components, the noisy classifier is exact:
//! p_t(y | x) = sum_{k in y} w_k N_k(x) / sum_k w_k N_k(x) with the components noised to
//! level t, and, because p_t(x | y) = p_t(x) p_t(y | x) / p(y),
//! grad log p_t(y | x) = grad log p_t(x | y) - grad log p_t(x): the class's noised score minus
//! the whole mixture's, both through the kernel. At S = 1 the guided score is the class's exact
//! noised score, so a sampler that is exact for the unguided flow samples the class's law.

use ndarray::{Array1, Array2, ArrayView2, ArrayViewMut1, ArrayViewMut2, Zip};

use super::sub_mixture;
use crate::error::{Result, ScoreError};
use crate::gmm::GaussianMixture;
use crate::model::{NoiseLevel, Parameterisation, ScoreModel};

/// The exact noisy classifier of one class of a mixture (a group of its components).
pub struct ExactClassifier {
    class: GaussianMixture,
    all: GaussianMixture,
    /// ln p(y): the class's total weight.
    log_prior: f64,
}

impl ExactClassifier {
    /// The classifier of the class made of `components` of `target`.
    pub fn new(target: &GaussianMixture, components: &[usize]) -> Result<Self> {
        let class = sub_mixture(target, components)?;
        let log_prior = components.iter().map(|&c| target.weights()[c]).sum::<f64>().ln();
        Ok(Self { class, all: target.clone(), log_prior })
    }

    /// ln p_t(y | x) for every row of `x` at level (`alpha`, `sigma`).
    pub fn log_prob(&self, alpha: f64, sigma: f64, x: ArrayView2<f64>, mut out: ArrayViewMut1<f64>) {
        let mut all = Array1::zeros(x.nrows());
        self.class.log_prob(alpha, sigma, x, out.view_mut());
        self.all.log_prob(alpha, sigma, x, all.view_mut());
        Zip::from(&mut out).and(&all).for_each(|o, &a| *o += self.log_prior - a);
    }

    /// grad_x ln p_t(y | x) for every row of `x` into `out` (N x d).
    pub fn grad_log_prob(&self, alpha: f64, sigma: f64, x: ArrayView2<f64>, mut out: ArrayViewMut2<f64>) {
        let mut all = Array2::zeros(x.dim());
        self.class.score(alpha, sigma, x, out.view_mut());
        self.all.score(alpha, sigma, x, all.view_mut());
        out -= &all;
    }
}

/// What classifier guidance needs of a noisy classifier: grad_x ln p_t(y | x) of its class.
pub trait ClassGradient: Send + Sync {
    /// Data dimension.
    fn dim(&self) -> usize;
    /// grad_x ln p_t(y | x) at `level` for every row of `x` into `out` (N x d).
    fn grad_log_prob_at(&self, level: NoiseLevel, x: ArrayView2<f64>, out: ArrayViewMut2<f64>) -> Result<()>;
}

impl ClassGradient for ExactClassifier {
    fn dim(&self) -> usize {
        self.all.dim()
    }
    fn grad_log_prob_at(&self, level: NoiseLevel, x: ArrayView2<f64>, out: ArrayViewMut2<f64>) -> Result<()> {
        self.all.check_level(level.alpha, level.sigma)?;
        self.grad_log_prob(level.alpha, level.sigma, x, out);
        Ok(())
    }
}

/// An unconditional model plus `scale` times a noisy classifier's gradient:
/// eps = eps(x) - scale sigma grad ln p_t(y | x).
pub struct ClassifierGuided {
    uncond: Box<dyn ScoreModel>,
    classifier: Box<dyn ClassGradient>,
    scale: f64,
}

impl ClassifierGuided {
    /// Guidance of the exact score towards the class made of `components` of `target` with
    /// the exact classifier and classifier scale `scale`.
    pub fn new(target: &GaussianMixture, components: &[usize], scale: f64) -> Result<Self> {
        let classifier = ExactClassifier::new(target, components)?;
        Self::with(Box::new(crate::model::ExactScore::new(target.clone())), Box::new(classifier), scale)
    }

    /// Guidance of any unconditional model with any noisy classifier (a trained one:
    /// `nn::NetClassifier::of_class`).
    pub fn with(uncond: Box<dyn ScoreModel>, classifier: Box<dyn ClassGradient>, scale: f64) -> Result<Self> {
        if !scale.is_finite() {
            return Err(ScoreError::InvalidParameter {
                name: "classifier-scale".into(),
                value: scale,
                expected: "must be finite",
            });
        }
        if uncond.dim() != classifier.dim() {
            return Err(ScoreError::DimensionMismatch {
                what: "classifier guidance: the classifier's dimension".into(),
                expected: uncond.dim(),
                found: classifier.dim(),
            });
        }
        Ok(Self { uncond, classifier, scale })
    }
}

impl ScoreModel for ClassifierGuided {
    fn dim(&self) -> usize {
        self.uncond.dim()
    }
    fn parameterisation(&self) -> Parameterisation {
        Parameterisation::Eps
    }
    fn predict(&self, level: NoiseLevel, x: ArrayView2<f64>, mut out: ArrayViewMut2<f64>) -> Result<()> {
        self.uncond.predict_eps(level, x, out.view_mut())?;
        let mut g = Array2::zeros(x.dim());
        self.classifier.grad_log_prob_at(level, x, g.view_mut())?;
        let sigma = level.sigma;
        Zip::from(&mut out).and(&g).for_each(|o, &g| *o -= self.scale * sigma * g);
        Ok(())
    }
    fn has_pair(&self) -> bool {
        true
    }
    /// The classifier-guided eps and the unconditional model's own.
    fn predict_pair(
        &self,
        level: NoiseLevel,
        x: ArrayView2<f64>,
        mut guided: ArrayViewMut2<f64>,
        mut uncond: ArrayViewMut2<f64>,
    ) -> Result<()> {
        self.uncond.predict_eps(level, x, uncond.view_mut())?;
        let mut g = Array2::zeros(x.dim());
        self.classifier.grad_log_prob_at(level, x, g.view_mut())?;
        let sigma = level.sigma;
        Zip::from(&mut guided).and(&uncond).and(&g).for_each(|o, &u, &g| *o = u - self.scale * sigma * g);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guidance::GuidedExact;
    use ndarray::array;

    /// The gradient is the finite difference of ln p_t(y | x); p_t(y | x) over the classes of
    /// a partition sums to one.
    #[test]
    fn classifier_gradient_and_normalisation() {
        let target = crate::targets::ring8();
        let (a, s) = (0.7, 0.5);
        let x = array![[0.9, -0.3], [-1.4, 2.0]];
        let even = ExactClassifier::new(&target, &[0, 2, 4, 6]).unwrap();
        let odd = ExactClassifier::new(&target, &[1, 3, 5, 7]).unwrap();
        let (mut le, mut lo) = (Array1::zeros(2), Array1::zeros(2));
        even.log_prob(a, s, x.view(), le.view_mut());
        odd.log_prob(a, s, x.view(), lo.view_mut());
        for i in 0..2 {
            assert!((le[i].exp() + lo[i].exp() - 1.0).abs() < 1e-14);
        }
        let mut g = Array2::zeros((2, 2));
        even.grad_log_prob(a, s, x.view(), g.view_mut());
        for i in 0..2 {
            for j in 0..2 {
                let h = 1e-5;
                let at = |d: f64| {
                    let mut y = x.slice(ndarray::s![i..i + 1, ..]).to_owned();
                    y[[0, j]] += d;
                    let mut l = Array1::zeros(1);
                    even.log_prob(a, s, y.view(), l.view_mut());
                    l[0]
                };
                let fd = (at(h) - at(-h)) / (2.0 * h);
                // Central difference: O(h^2) truncation and ~1e-16 / h rounding.
                assert!((g[[i, j]] - fd).abs() < 1e-7, "({i}, {j}): {} vs {fd}", g[[i, j]]);
            }
        }
    }

    /// Classifier scale S is classifier-free guidance with w = S - 1 (exact scores); S = 1 is
    /// the class's exact eps.
    #[test]
    fn classifier_scale_is_cfg_with_w_one_less() {
        let target = crate::targets::quad4();
        let class = [0, 1];
        let level = NoiseLevel { t: 0.3, alpha: 0.9, sigma: 0.45 };
        let x = array![[0.3, 1.1], [-2.0, 0.4], [1.5, -1.5]];
        for scale in [0.0, 1.0, 3.5] {
            let (mut cg, mut cfg) = (Array2::zeros((3, 2)), Array2::zeros((3, 2)));
            ClassifierGuided::new(&target, &class, scale).unwrap().predict(level, x.view(), cg.view_mut()).unwrap();
            GuidedExact::new(&target, &class, scale - 1.0).unwrap().predict(level, x.view(), cfg.view_mut()).unwrap();
            // Two evaluation orders of the same exact expression: round-off only.
            for (p, q) in cg.iter().zip(&cfg) {
                assert!((p - q).abs() < 1e-12 * (1.0 + q.abs()), "S = {scale}: {p} vs {q}");
            }
        }
        assert!(ClassifierGuided::new(&target, &class, f64::NAN).is_err());
        assert!(ClassifierGuided::new(&target, &[4], 1.0).is_err());
    }
}
