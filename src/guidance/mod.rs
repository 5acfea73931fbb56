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

pub use classifier::{ClassifierGuided, ExactClassifier};
pub use guided::Guided;
pub use rule::{Guidance, GuidanceRule};

use ndarray::{Array1, Array2, ArrayView2, ArrayViewMut2};

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
}

/// Moments of the tilted density q_w ∝ p(x | c)^{1 + w} p(x)^{-w} (both at noise level
/// (alpha, sigma)) of a 2-d target, by the midpoint rule on an m x m grid over `[-r, r]^2`:
/// (mean, covariance, probability that the most responsible component is in the class,
/// expected log p(x | c)). A grid point where the best component in the class and the best one
/// outside tie to within rounding (a symmetric target puts whole rows of grid points on such
/// boundaries) counts one half, so that the result does not depend on rounding or tie-breaking.
pub fn tilted_moments_2d(
    target: &GaussianMixture,
    components: &[usize],
    w: f64,
    (alpha, sigma): (f64, f64),
    r: f64,
    m: usize,
) -> Result<(Array1<f64>, Array2<f64>, f64, f64)> {
    if target.dim() != 2 {
        return Err(ScoreError::DimensionMismatch {
            what: "tilted density quadrature".into(),
            expected: 2,
            found: target.dim(),
        });
    }
    let cond = sub_mixture(target, components)?;
    let h = 2.0 * r / m as f64;
    let pts = Array2::from_shape_fn((m * m, 2), |(k, j)| -r + h * (0.5 + if j == 0 { k % m } else { k / m } as f64));
    let (mut lc, mut lu) = (Array1::zeros(m * m), Array1::zeros(m * m));
    cond.log_prob(alpha, sigma, pts.view(), lc.view_mut());
    target.log_prob(alpha, sigma, pts.view(), lu.view_mut());
    let logq: Array1<f64> = (1.0 + w) * &lc - w * &lu;
    let top = logq.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let q = logq.mapv(|v| (v - top).exp());
    let z = q.sum();
    let mut mean = Array1::<f64>::zeros(2);
    let mut second = Array2::<f64>::zeros((2, 2));
    // ln w_k + ln N_k(x) per component: a one-component mixture's log density (exact, no
    // log-sum-exp rounding), the same arithmetic for every component.
    let mut terms = Array2::<f64>::zeros((target.n_components(), m * m));
    for (k, mut row) in terms.outer_iter_mut().enumerate() {
        sub_mixture(target, &[k])?.log_prob(alpha, sigma, pts.view(), row.view_mut());
        row.mapv_inplace(|v| v + target.weights()[k].ln());
    }
    let best = |point: usize, inside: bool| {
        (0..target.n_components())
            .filter(|c| components.contains(c) == inside)
            .map(|c| terms[[c, point]])
            .fold(f64::NEG_INFINITY, f64::max)
    };
    let (mut in_class, mut ll) = (0.0, 0.0);
    for (k, &qk) in q.iter().enumerate() {
        let p = qk / z;
        let x = [pts[[k, 0]], pts[[k, 1]]];
        for a in 0..2 {
            mean[a] += p * x[a];
            for b in 0..2 {
                second[[a, b]] += p * x[a] * x[b];
            }
        }
        let (inside, outside) = (best(k, true), best(k, false));
        // Ties within rounding (the log-terms of two components on their boundary are equal up to
        // the order of the terms' sums) count one half.
        in_class += p * if (inside - outside).abs() <= 1e-12 * (1.0 + inside.abs()) {
            0.5
        } else if inside > outside {
            1.0
        } else {
            0.0
        };
        ll += p * lc[k];
    }
    let cov = Array2::from_shape_fn((2, 2), |(a, b)| second[[a, b]] - mean[a] * mean[b]);
    Ok((mean, cov, in_class, ll))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With w = 0 the tilted density is p(x | c): its quadrature moments equal the closed form.
    #[test]
    fn tilted_moments_at_zero_weight_are_the_class_moments() {
        let target = crate::targets::ring8();
        let class = [0, 2, 4, 6];
        let (mean, cov, in_class, _) = tilted_moments_2d(&target, &class, 0.0, (1.0, 0.05), 6.0, 600).unwrap();
        let (m, c) = sub_mixture(&target, &class).unwrap().moments(1.0, 0.05);
        // Midpoint rule on a smooth, well-contained density: error far below 1e-8.
        for a in 0..2 {
            assert!((mean[a] - m[a]).abs() < 1e-8, "{mean} vs {m}");
            for b in 0..2 {
                assert!((cov[[a, b]] - c[[a, b]]).abs() < 1e-8, "{cov} vs {c}");
            }
        }
        assert!(in_class > 0.999, "{in_class}");
    }

    /// quad4 is symmetric under x -> -x, which swaps components 0 <-> 2 and 1 <-> 3, and so does
    /// the midpoint grid: the two classes' tilted moments mirror each other, including the
    /// precision, whose grid has whole rows of points where an in-class and an out-of-class
    /// component tie (breaking those ties by index would differ between the classes by ~1e-3).
    #[test]
    fn tilted_moments_of_mirror_classes_mirror_each_other() {
        let target = crate::targets::quad4();
        for w in [0.0, 2.0] {
            let (m1, c1, p1, l1) = tilted_moments_2d(&target, &[0, 1], w, (0.99, 0.1), 4.0, 400).unwrap();
            let (m2, c2, p2, l2) = tilted_moments_2d(&target, &[2, 3], w, (0.99, 0.1), 4.0, 400).unwrap();
            // Equal up to the order of the quadrature sums.
            let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
            assert!(close(p1, p2), "w = {w}: precision {p1} vs {p2}");
            assert!(close(l1, l2), "w = {w}: log-likelihood {l1} vs {l2}");
            for a in 0..2 {
                assert!(close(m1[a], -m2[a]), "w = {w}: mean {m1} vs {m2}");
                for b in 0..2 {
                    assert!(close(c1[[a, b]], c2[[a, b]]), "w = {w}: covariance {c1} vs {c2}");
                }
            }
        }
    }

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
