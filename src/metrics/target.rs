//! Metrics against the exact target itself (no reference samples needed): mode occupancy, missed
//! modes, per-coordinate Kolmogorov-Smirnov distance to the exact marginal CDF, and the average
//! exact log-density.

use ndarray::{Array1, ArrayView2};

use crate::gmm::GaussianMixture;

/// Standard normal CDF, Phi(x) = erfc(-x / sqrt 2) / 2 (libm's erfc: relative error ~1e-16).
pub fn normal_cdf(x: f64) -> f64 {
    0.5 * libm::erfc(-x / std::f64::consts::SQRT_2)
}

/// Fraction of the samples whose most responsible component (at alpha = 1, sigma = 0) is k.
pub fn mode_occupancy(target: &GaussianMixture, x: ArrayView2<f64>) -> Array1<f64> {
    let mut counts = Array1::zeros(target.n_components());
    for k in target.most_responsible(1.0, 0.0, x) {
        counts[k] += 1.0;
    }
    counts / x.nrows().max(1) as f64
}

/// Components whose occupancy is below half their weight: modes the sampler (nearly) missed.
pub fn missed_modes(target: &GaussianMixture, occupancy: &Array1<f64>) -> usize {
    let total: f64 = target.weights().iter().sum();
    occupancy.iter().zip(target.weights()).filter(|(o, w)| **o < 0.5 * **w / total).count()
}

/// Kolmogorov-Smirnov distance sup |F_n - F| of each coordinate's empirical CDF to the exact
/// marginal CDF of the target at (alpha, sigma): F(v) = sum_k w_k Phi((v - alpha mu_kj) / s_kj),
/// s_kj^2 = alpha^2 S_k[j, j] + sigma^2.
pub fn ks_per_coordinate(target: &GaussianMixture, alpha: f64, sigma: f64, x: ArrayView2<f64>) -> Array1<f64> {
    let (n, d) = x.dim();
    assert!(n >= 1, "ks_per_coordinate: no samples");
    let total: f64 = target.weights().iter().sum();
    let covs: Vec<_> = (0..target.n_components()).map(|k| target.component_covariance(k)).collect();
    Array1::from_shape_fn(d, |j| {
        let mut v: Vec<f64> = x.column(j).to_vec();
        v.sort_by(f64::total_cmp);
        let cdf = |t: f64| -> f64 {
            covs.iter()
                .enumerate()
                .map(|(k, c)| {
                    let s = (alpha * alpha * c[[j, j]] + sigma * sigma).sqrt();
                    target.weights()[k] / total * normal_cdf((t - alpha * target.means()[[k, j]]) / s)
                })
                .sum()
        };
        v.iter()
            .enumerate()
            .map(|(i, &t)| {
                let f = cdf(t);
                (f - i as f64 / n as f64).abs().max(((i + 1) as f64 / n as f64 - f).abs())
            })
            .fold(0.0, f64::max)
    })
}

/// Mean exact log-density of the samples under the target at (alpha, sigma).
pub fn mean_log_density(target: &GaussianMixture, alpha: f64, sigma: f64, x: ArrayView2<f64>) -> f64 {
    let mut l = Array1::zeros(x.nrows());
    target.log_prob(alpha, sigma, x, l.view_mut());
    l.mean().unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn normal_cdf_values() {
        assert_eq!(normal_cdf(0.0), 0.5);
        assert!((normal_cdf(1.96) - 0.975_002_104_851_780_1).abs() < 1e-15);
        assert!((normal_cdf(-8.0) - 6.220_960_574_271_785e-16).abs() < 1e-28);
    }

    #[test]
    fn exact_samples_pass_ks_and_fill_modes_by_weight() {
        // n = 4000 exact samples: the KS statistic exceeds 1.95 / sqrt(n) with probability 0.001
        // per coordinate (Kolmogorov distribution); each component's count is Binomial(n, w_k),
        // within 5 standard deviations except with probability 5.7e-7.
        let target = crate::targets::ring8();
        let mut rng = rand_pcg::Pcg64::seed_from_u64(12);
        let n = 4000;
        let x = target.sample(n, &mut rng);
        for ks in ks_per_coordinate(&target, 1.0, 0.0, x.view()) {
            assert!(ks < 1.95 / (n as f64).sqrt(), "KS {ks}");
        }
        let occ = mode_occupancy(&target, x.view());
        for (o, w) in occ.iter().zip(target.weights()) {
            assert!((o - w).abs() < 5.0 * (w * (1.0 - w) / n as f64).sqrt(), "{o} vs {w}");
        }
        assert_eq!(missed_modes(&target, &occ), 0);
        // A shifted sample set fails KS and a set on one mode misses seven.
        let shifted = x.mapv(|v| v + 0.5);
        assert!(ks_per_coordinate(&target, 1.0, 0.0, shifted.view())[0] > 0.05);
        let one_mode = x.mapv(|_| 0.0) + target.means().row(0);
        assert_eq!(missed_modes(&target, &mode_occupancy(&target, one_mode.view())), 7);
    }
}
