//! Metrics against the exact target itself (no reference samples needed): mode occupancy, missed
//! modes, per-coordinate Kolmogorov-Smirnov distance and exact W2 to the exact marginal, and the
//! average exact log-density.

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

/// The 1-d Gaussian mixture of coordinate `j` at (alpha, sigma): (weight, mean, sd) per component.
fn marginal(target: &GaussianMixture, alpha: f64, sigma: f64, j: usize) -> Vec<(f64, f64, f64)> {
    let total: f64 = target.weights().iter().sum();
    (0..target.n_components())
        .map(|k| {
            let c = target.component_covariance(k);
            let s = (alpha * alpha * c[[j, j]] + sigma * sigma).sqrt();
            (target.weights()[k] / total, alpha * target.means()[[k, j]], s)
        })
        .collect()
}

/// Exact W2 of each coordinate's empirical law to the exact marginal of the target at (alpha,
/// sigma). With sorted samples x_(1..n) and the marginal's quantiles q_i = F^{-1}(i / n), the
/// monotone coupling gives W2^2 = mean(x^2) - 2 sum_i x_(i) [G(q_i) - G(q_{i-1})] + E[Y^2], where
/// G(q) = E[Y; Y <= q] = sum_k w_k (m_k Phi(a_k) - s_k phi(a_k)), a_k = (q - m_k) / s_k (no
/// quadrature, no reference samples). Quantiles by safeguarded Newton to machine precision.
pub fn w2_per_coordinate(target: &GaussianMixture, alpha: f64, sigma: f64, x: ArrayView2<f64>) -> Array1<f64> {
    let (n, d) = x.dim();
    assert!(n >= 1, "w2_per_coordinate: no samples");
    Array1::from_shape_fn(d, |j| {
        let comps = marginal(target, alpha, sigma, j);
        // F and its density at q, in one pass.
        let cdf_pdf = |q: f64| {
            comps.iter().fold((0.0, 0.0), |(f, p), &(w, m, s)| {
                let a = (q - m) / s;
                (f + w * normal_cdf(a), p + w * (-0.5 * a * a).exp() / (s * (2.0 * std::f64::consts::PI).sqrt()))
            })
        };
        let partial = |q: f64| {
            comps
                .iter()
                .map(|&(w, m, s)| {
                    let a = (q - m) / s;
                    w * (m * normal_cdf(a) - s * (-0.5 * a * a).exp() / (2.0 * std::f64::consts::PI).sqrt())
                })
                .sum::<f64>()
        };
        let second: f64 = comps.iter().map(|&(w, m, s)| w * (m * m + s * s)).sum();
        let lo0 = comps.iter().map(|&(_, m, s)| m - 40.0 * s).fold(f64::INFINITY, f64::min);
        let hi0 = comps.iter().map(|&(_, m, s)| m + 40.0 * s).fold(f64::NEG_INFINITY, f64::max);
        // Bisection to machine precision inside [lo, hi] (F(lo) < u <= F(hi)).
        let bisect = |u: f64, mut lo: f64, mut hi: f64| {
            while hi - lo > 1e-15 * (1.0 + lo.abs().max(hi.abs())) {
                let mid = 0.5 * (lo + hi);
                if mid <= lo || mid >= hi {
                    break;
                }
                if cdf_pdf(mid).0 < u {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            0.5 * (lo + hi)
        };
        // A coarse quantile table brackets every quantile within 1/TABLE of the mass.
        const TABLE: usize = 128;
        let mut table = vec![lo0; TABLE + 1];
        table[TABLE] = hi0;
        for m in 1..TABLE {
            table[m] = bisect(m as f64 / TABLE as f64, table[m - 1], hi0);
        }
        let mut v: Vec<f64> = x.column(j).to_vec();
        v.sort_by(f64::total_cmp);
        let (mut prev_g, mut q) = (0.0, lo0);
        let mut cross = 0.0;
        for (i, &xi) in v.iter().enumerate() {
            let g = if i + 1 == n {
                partial(f64::INFINITY)
            } else {
                // Safeguarded Newton inside the table's bracket, from the previous quantile.
                let u = (i + 1) as f64 / n as f64;
                let m = ((u * TABLE as f64) as usize).min(TABLE - 1);
                let (mut lo, mut hi) = (table[m], table[m + 1]);
                q = q.clamp(lo, hi);
                for _ in 0..100 {
                    let (f, p) = cdf_pdf(q);
                    if f < u {
                        lo = q;
                    } else {
                        hi = q;
                    }
                    let mut next = q + (u - f) / p;
                    if !(next > lo && next < hi) {
                        next = 0.5 * (lo + hi);
                    }
                    // Newton converges quadratically from within 1/n of the mass; 1e-12 is far below
                    // what the W2 sum can resolve (the G differences telescope).
                    let done = (next - q).abs() <= 1e-12 * (1.0 + q.abs());
                    q = next;
                    if done || hi - lo <= 1e-15 * (1.0 + q.abs()) {
                        break;
                    }
                }
                partial(q)
            };
            cross += xi * (g - prev_g);
            prev_g = g;
        }
        let mean_sq = v.iter().map(|t| t * t).sum::<f64>() / n as f64;
        (mean_sq - 2.0 * cross + second).max(0.0).sqrt()
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

    /// Brute force: W2^2 = integral over u of (F_n^{-1}(u) - F^{-1}(u))^2 by the midpoint rule
    /// on a fine u grid, with F^{-1} by bisection.
    fn w2_brute(comps: &[(f64, f64, f64)], x: &[f64]) -> f64 {
        let cdf = |q: f64| comps.iter().map(|&(w, m, s)| w * normal_cdf((q - m) / s)).sum::<f64>();
        let quantile = |u: f64| {
            let (mut lo, mut hi) = (-50.0, 50.0);
            for _ in 0..100 {
                let mid = 0.5 * (lo + hi);
                if cdf(mid) < u {
                    lo = mid
                } else {
                    hi = mid
                }
            }
            0.5 * (lo + hi)
        };
        let mut v = x.to_vec();
        v.sort_by(f64::total_cmp);
        // A multiple of n: the jumps of F_n^{-1} fall on cell boundaries.
        let m = 3000 * v.len();
        let mut acc = 0.0;
        for i in 0..m {
            let u = (i as f64 + 0.5) / m as f64;
            let xe = v[((u * v.len() as f64) as usize).min(v.len() - 1)];
            acc += (xe - quantile(u)).powi(2);
        }
        (acc / m as f64).sqrt()
    }

    #[test]
    fn exact_marginal_w2_matches_quadrature_and_detects_a_shift() {
        let target = crate::targets::ring8();
        let mut rng = rand_pcg::Pcg64::seed_from_u64(3);
        let x = target.sample(7, &mut rng);
        let w = w2_per_coordinate(&target, 0.9, 0.3, x.view());
        for j in 0..2 {
            let brute = w2_brute(&marginal(&target, 0.9, 0.3, j), &x.column(j).to_vec());
            // The cells align with the 7 jumps, so the midpoint rule's error is O(1/m^2) except in
            // the two tail cells (F^{-1} ~ sqrt(2 ln 1/u)), about 1e-5 relative here: 1e-4 is ample.
            assert!((w[j] - brute).abs() < 1e-4 * brute, "coordinate {j}: {} vs {brute}", w[j]);
        }
        // Shifting the samples by c moves W2 by at most the unshifted W2 (triangle inequality:
        // W2(mu_n + c, nu) lies within W2(mu_n, nu) of W2(mu_n + c, mu_n) = c).
        let x = target.sample(5_000, &mut rng);
        let base = w2_per_coordinate(&target, 1.0, 0.0, x.view());
        let shifted = w2_per_coordinate(&target, 1.0, 0.0, (&x + 0.5).view());
        for j in 0..2 {
            assert!((shifted[j] - 0.5).abs() <= base[j] + 1e-9, "coordinate {j}: {} vs 0.5 +- {}", shifted[j], base[j]);
        }
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
