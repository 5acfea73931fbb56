//! Unit tests of the mixture: scores against finite differences, JSON, kernel layouts and bits.

use std::path::Path;

use super::*;
use crate::fastexp::SimdPath;
use ndarray::{array, ArrayView2, Axis};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;

const EPS: f64 = f64::EPSILON;

fn iso() -> GaussianMixture {
    GaussianMixture::new(
        vec![0.2, 0.5, 0.3],
        array![[1.0, 0.0, -0.5], [-1.0, 0.5, 0.0], [0.0, -1.0, 1.0]],
        Covariance::Isotropic(vec![0.3, 0.8, 0.15]),
    )
    .unwrap()
}

fn diag() -> GaussianMixture {
    GaussianMixture::new(
        vec![0.25, 0.35, 0.4],
        array![[1.5, 0.0, -0.5], [-1.0, 1.0, 0.5], [0.0, -1.0, 1.0]],
        Covariance::Diagonal(array![[0.2, 0.5, 1.0], [0.9, 0.1, 0.3], [0.4, 0.4, 0.25]]),
    )
    .unwrap()
}

/// Random full covariances `S = A A^T + 0.1 I` (smallest eigenvalue >= 0.1).
fn full(seed: u64) -> GaussianMixture {
    let mut rng = Pcg64::seed_from_u64(seed);
    let (k, d) = (3, 3);
    let mut normal = || -> f64 { StandardNormal.sample(&mut rng) };
    let means = Array2::from_shape_fn((k, d), |_| 1.5 * normal());
    let mats = (0..k)
        .map(|_| {
            let a = Array2::from_shape_fn((d, d), |_| 0.6 * normal());
            a.dot(&a.t()) + Array2::<f64>::eye(d) * 0.1
        })
        .collect();
    GaussianMixture::new(vec![0.3, 0.45, 0.25], means, Covariance::Full(mats)).unwrap()
}

fn mixtures() -> Vec<(&'static str, GaussianMixture)> {
    vec![("isotropic", iso()), ("diagonal", diag()), ("full", full(7))]
}

/// (alpha, sigma) pairs: data (sigma = 0), nearly clean, VP-like, VE-like, alpha -> 0.
const SCHEDULES: [(f64, f64); 7] = [
    (1.0, 0.0),
    (1.0, 1e-3),
    (0.8, 0.6),
    (0.3, 0.953_939_201_416_945_6),
    (0.05, 0.998_749_217_771_908_8),
    (1.0, 2.0),
    (0.0, 1.0),
];

fn points(n: usize, d: usize, scale: f64, seed: u64) -> Array2<f64> {
    let mut rng = Pcg64::seed_from_u64(seed);
    Array2::from_shape_fn((n, d), |_| {
        let z: f64 = StandardNormal.sample(&mut rng);
        scale * z
    })
}

fn row(x: &[f64]) -> Array2<f64> {
    Array2::from_shape_vec((1, x.len()), x.to_vec()).unwrap()
}

fn lp1(gm: &GaussianMixture, a: f64, s: f64, x: &[f64]) -> f64 {
    let mut o = Array1::zeros(1);
    gm.log_prob(a, s, row(x).view(), o.view_mut());
    o[0]
}

fn score1(gm: &GaussianMixture, a: f64, s: f64, x: &[f64]) -> Vec<f64> {
    let mut o = Array2::zeros((1, x.len()));
    gm.score(a, s, row(x).view(), o.view_mut());
    o.into_raw_vec_and_offset().0
}

/// `C_k = alpha^2 S_k + sigma^2 I` as an nalgebra matrix.
fn c_mat(gm: &GaussianMixture, k: usize, a: f64, s: f64) -> DMatrix<f64> {
    let sk = gm.component_covariance(k);
    let d = gm.dim();
    DMatrix::from_fn(d, d, |i, j| a * a * sk[[i, j]] + if i == j { s * s } else { 0.0 })
}

/// `C_k^{-1} (x - alpha mu_k)` by an independent route (Cholesky solve).
fn g_ref(gm: &GaussianMixture, k: usize, a: f64, s: f64, x: &[f64]) -> Vec<f64> {
    let d = gm.dim();
    let z = nalgebra::DVector::from_fn(d, |i, _| x[i] - a * gm.means()[[k, i]]);
    c_mat(gm, k, a, s).cholesky().unwrap().solve(&z).iter().copied().collect()
}

/// Size of the terms the score is a weighted average of: `max(1, max_k |g_k|_inf)`.
/// Finite-difference and rounding errors scale with it (the score itself may cancel).
fn term_scale(gm: &GaussianMixture, a: f64, s: f64, x: &[f64]) -> f64 {
    (0..gm.n_components()).flat_map(|k| g_ref(gm, k, a, s, x)).fold(1.0f64, |m, v| m.max(v.abs()))
}

fn trace_max(gm: &GaussianMixture, a: f64, s: f64) -> f64 {
    (0..gm.n_components()).map(|k| c_mat(gm, k, a, s).try_inverse().unwrap().trace()).fold(0.0, f64::max)
}

fn max_abs(v: impl IntoIterator<Item = f64>) -> f64 {
    v.into_iter().fold(0.0f64, |m, x| m.max(x.abs()))
}

// Central differences with h = 1e-5: truncation h^2/6 |d^3 log p| and rounding
// eps |log p| / h. For these mixtures (covariance eigenvalues >= 0.1, |x| <~ 5) both are
// <~ 1e-8 relative to the term scale, so 1e-6 leaves a margin of 100 while any error in the
// formulas (O(1) relative) fails.
#[test]
fn score_matches_finite_differences_of_log_prob() {
    let h = 1e-5;
    for (name, gm) in mixtures() {
        let x = points(16, 3, 1.5, 11);
        for &(a, s) in &SCHEDULES {
            for xr in x.outer_iter() {
                let xr = xr.to_vec();
                let sc = score1(&gm, a, s, &xr);
                let scale = term_scale(&gm, a, s, &xr);
                for i in 0..3 {
                    let (mut xp, mut xm) = (xr.clone(), xr.clone());
                    xp[i] += h;
                    xm[i] -= h;
                    let fd = (lp1(&gm, a, s, &xp) - lp1(&gm, a, s, &xm)) / (2.0 * h);
                    assert!(
                        (sc[i] - fd).abs() <= 1e-6 * scale,
                        "{name} a={a} s={s} x={xr:?} i={i}: score {} vs fd {fd}",
                        sc[i]
                    );
                }
            }
        }
    }
}

// Same error budget as above, one derivative higher (h^2/6 |d^3 s| + eps |s| / h).
#[test]
fn divergence_matches_finite_difference_trace() {
    let h = 1e-5;
    for (name, gm) in mixtures() {
        let x = points(16, 3, 1.5, 12);
        for &(a, s) in &SCHEDULES {
            let mut sc = Array2::zeros(x.dim());
            let mut div = Array1::zeros(x.nrows());
            gm.score_divergence(a, s, x.view(), sc.view_mut(), div.view_mut());
            let mut sc2 = Array2::zeros(x.dim());
            gm.score(a, s, x.view(), sc2.view_mut());
            assert_eq!(sc, sc2, "{name}: score_divergence's score differs from score");
            for (n, xr) in x.outer_iter().enumerate() {
                let xr = xr.to_vec();
                let mut tr = 0.0;
                for i in 0..3 {
                    let (mut xp, mut xm) = (xr.clone(), xr.clone());
                    xp[i] += h;
                    xm[i] -= h;
                    tr += (score1(&gm, a, s, &xp)[i] - score1(&gm, a, s, &xm)[i]) / (2.0 * h);
                }
                // The divergence is a weighted sum of |g_k|^2 and tr C_k^{-1} terms.
                let scale = term_scale(&gm, a, s, &xr).powi(2).max(trace_max(&gm, a, s));
                assert!((div[n] - tr).abs() <= 1e-6 * scale, "{name} a={a} s={s}: div {} vs fd {tr}", div[n]);
            }
        }
    }
}

// The identities hold exactly in real arithmetic; the bounds are a few ulps of the largest
// term involved (the Tweedie form loses |x| eps / alpha to cancellation).
#[test]
fn eps_x0_v_round_trips() {
    for (name, gm) in mixtures() {
        let x = points(64, 3, 2.0, 13);
        let mu_max = max_abs(gm.means().iter().copied());
        for theta in [0.01f64, 0.5, 1.0, 1.5, 1.56] {
            let (a, s) = (theta.cos(), theta.sin());
            let mut sc = Array2::zeros(x.dim());
            let mut ep = Array2::zeros(x.dim());
            let mut x0 = Array2::zeros(x.dim());
            gm.score(a, s, x.view(), sc.view_mut());
            gm.eps(a, s, x.view(), ep.view_mut());
            gm.x0(a, s, x.view(), x0.view_mut());
            assert_eq!(ep, sc.mapv(|v| -s * v), "{name}: eps != -sigma score");
            for n in 0..x.nrows() {
                // Terms of both routes: x, sigma eps (Tweedie, divided by alpha) and mu_k,
                // alpha S C^{-1} z (posterior mean, x0 space); rotations mix coordinates,
                // so the scale is the row's, times d for the length-d dot products.
                let big = 3.0
                    * (max_abs(x.row(n).iter().copied())
                        + s * max_abs(ep.row(n).iter().copied())
                        + a * max_abs(x0.row(n).iter().copied())
                        + a * mu_max);
                for i in 0..3 {
                    let (xi, e, z0) = (x[[n, i]], ep[[n, i]], x0[[n, i]]);
                    let tweedie = (xi - s * e) / a;
                    assert!(
                        (z0 - tweedie).abs() <= 16.0 * EPS * big / a,
                        "{name} theta={theta}: x0 {z0} vs tweedie {tweedie}"
                    );
                    assert!((a * z0 + s * e - xi).abs() <= 16.0 * EPS * big);
                    // v-parametrisation: v = alpha eps - sigma x0, eps = sigma x + alpha v.
                    let v = a * e - s * z0;
                    assert!((s * xi + a * v - e).abs() <= 16.0 * EPS * big, "{name} theta={theta}: v round trip");
                    assert!((a * xi - s * v - z0).abs() <= 16.0 * EPS * big);
                }
            }
        }
    }
}

#[test]
fn single_gaussian_is_exact() {
    let mu = array![[0.5, -1.0, 2.0]];
    let cases = vec![
        GaussianMixture::new(vec![1.0], mu.clone(), Covariance::Diagonal(array![[0.3, 1.2, 0.05]])).unwrap(),
        GaussianMixture::new(
            vec![1.0],
            mu.clone(),
            Covariance::Full(vec![array![[1.0, 0.3, -0.2], [0.3, 0.5, 0.1], [-0.2, 0.1, 0.8]]]),
        )
        .unwrap(),
    ];
    let x = points(32, 3, 2.0, 14);
    for gm in &cases {
        for &(a, s) in &SCHEDULES {
            let c = c_mat(gm, 0, a, s);
            let chol = c.clone().cholesky().unwrap();
            let logdet: f64 = 2.0 * chol.l().diagonal().iter().map(|v| v.ln()).sum::<f64>();
            let mut sc = Array2::zeros(x.dim());
            let mut lp = Array1::zeros(x.nrows());
            gm.score(a, s, x.view(), sc.view_mut());
            gm.log_prob(a, s, x.view(), lp.view_mut());
            for (n, xr) in x.outer_iter().enumerate() {
                let xr = xr.to_vec();
                let g = g_ref(gm, 0, a, s, &xr);
                let z: Vec<f64> = (0..3).map(|i| xr[i] - a * mu[[0, i]]).collect();
                let quad: f64 = z.iter().zip(&g).map(|(z, g)| z * g).sum();
                let exact = -0.5 * (quad + logdet + 3.0 * (2.0 * std::f64::consts::PI).ln());
                // Condition numbers here are <~ 1e2 (<~ 2e4 at alpha -> 0 for the diagonal
                // case is still exact per coordinate): 1e-12 relative is generous.
                assert!((lp[n] - exact).abs() <= 1e-12 * exact.abs().max(1.0));
                let gmax = max_abs(g.iter().copied());
                for i in 0..3 {
                    assert!(
                        (sc[[n, i]] + g[i]).abs() <= 1e-12 * gmax.max(1e-300),
                        "a={a} s={s}: {} vs {}",
                        sc[[n, i]],
                        -g[i]
                    );
                }
            }
        }
    }
    // Diagonal: single component, so r = 1 exactly and the score is -(x - a mu) / c to
    // within the one rounding of multiplying by 1/c instead of dividing by c.
    let gm = &cases[0];
    let v = [0.3, 1.2, 0.05];
    let (a, s) = (0.7, 0.4);
    let mut sc = Array2::zeros(x.dim());
    gm.score(a, s, x.view(), sc.view_mut());
    for n in 0..x.nrows() {
        for i in 0..3 {
            let exact = -(x[[n, i]] - a * mu[[0, i]]) / (a * a * v[i] + s * s);
            assert!((sc[[n, i]] - exact).abs() <= 2.0 * EPS * exact.abs());
        }
    }
}

#[test]
fn far_points_zero_sigma_and_zero_alpha_are_finite() {
    let far = array![[1e3, -1e3], [-1e3, 1e3], [3e4, 2e4]];
    let mixes = [
        GaussianMixture::new(
            vec![0.5, 0.5],
            array![[1.0, 1.0], [-1.0, -1.0]],
            Covariance::Diagonal(array![[0.1, 0.2], [0.3, 0.05]]),
        )
        .unwrap(),
        GaussianMixture::new(
            vec![0.5, 0.5],
            array![[1.0, 1.0], [-1.0, -1.0]],
            Covariance::Full(vec![array![[0.2, 0.15], [0.15, 0.2]], array![[0.1, 0.0], [0.0, 0.4]]]),
        )
        .unwrap(),
    ];
    for gm in &mixes {
        for &(a, s) in &[(1.0, 0.0), (1.0, 1e-3), (0.6, 0.8), (1e-3, 1.0), (0.0, 1.0), (1.0, 80.0)] {
            let mut sc = Array2::zeros(far.dim());
            let mut ep = Array2::zeros(far.dim());
            let mut x0 = Array2::zeros(far.dim());
            let mut lp = Array1::zeros(far.nrows());
            let mut dv = Array1::zeros(far.nrows());
            gm.score_divergence(a, s, far.view(), sc.view_mut(), dv.view_mut());
            gm.eps(a, s, far.view(), ep.view_mut());
            gm.x0(a, s, far.view(), x0.view_mut());
            gm.log_prob(a, s, far.view(), lp.view_mut());
            let all = sc.iter().chain(&ep).chain(&x0).chain(&lp).chain(&dv);
            assert!(all.clone().all(|v| v.is_finite()), "a={a} s={s}: non-finite output");
            // Far away (relative to the noise scale) the responsibilities are one-hot: the
            // score is that of the most responsible component (up to exp(-huge)
            // contributions and rounding).
            if s > 1.0 || a < 0.5 {
                continue;
            }
            let best = gm.most_responsible(a, s, far.view());
            for (n, xr) in far.outer_iter().enumerate() {
                let g = g_ref(gm, best[n], a, s, &xr.to_vec());
                for i in 0..2 {
                    assert!((sc[[n, i]] + g[i]).abs() <= 1e-12 * max_abs(g.iter().copied()));
                }
            }
        }
        // sigma = 0, alpha = 1: p_t = p_0, eps = 0 exactly and the denoiser is the identity.
        let x = points(32, 2, 1.0, 15);
        let mut ep = Array2::zeros(x.dim());
        let mut x0 = Array2::zeros(x.dim());
        gm.eps(1.0, 0.0, x.view(), ep.view_mut());
        gm.x0(1.0, 0.0, x.view(), x0.view_mut());
        assert!(ep.iter().all(|&v| v == 0.0));
        for (a, b) in x0.iter().zip(&x) {
            assert!((a - b).abs() <= 8.0 * EPS * (b.abs() + 1.0), "{a} vs {b}");
        }
        // alpha = 0, sigma = 1: p_t = N(0, I), score = -x, x0 = prior mean.
        let mut sc = Array2::zeros(x.dim());
        gm.score(0.0, 1.0, x.view(), sc.view_mut());
        gm.x0(0.0, 1.0, x.view(), x0.view_mut());
        let (m, _) = gm.moments(1.0, 0.0);
        // Rounding: sum_k r_k = 1 only to K ulps, and Q (Q^T x) = x only to d ulps of |x|.
        for n in 0..x.nrows() {
            let xmax = max_abs(x.row(n).iter().copied());
            for i in 0..2 {
                assert!((sc[[n, i]] + x[[n, i]]).abs() <= 8.0 * EPS * xmax);
                assert!((x0[[n, i]] - m[i]).abs() <= 8.0 * EPS);
            }
        }
    }
}

/// The reference convention, written naively with divisions.
fn eps_reference(w: &[f64], mu: &Array2<f64>, v: &Array2<f64>, a: f64, s: f64, x: &[f64]) -> Vec<f64> {
    let (k, d) = mu.dim();
    let logits: Vec<f64> = (0..k)
        .map(|c| {
            let mut acc = 0.0;
            for j in 0..d {
                let var = a * a * v[[c, j]] + s * s;
                acc += (x[j] - a * mu[[c, j]]).powi(2) / var + var.ln();
            }
            w[c].ln() - 0.5 * acc
        })
        .collect();
    let m = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = logits.iter().map(|l| (l - m).exp()).collect();
    let tot: f64 = e.iter().sum();
    (0..d)
        .map(|j| s * (0..k).map(|c| e[c] / tot * (x[j] - a * mu[[c, j]]) / (a * a * v[[c, j]] + s * s)).sum::<f64>())
        .collect()
}

// Agreement to ~1e-15 relative: the implementations differ only in rounding (1/c times z
// versus z / c, order of the log-det sum), a few ulps of sigma * max_k |g_k| per entry
// plus ulps of the logits (|logit| eps) passed through the softmax.
#[test]
fn eps_matches_reference_convention() {
    let gm = diag();
    let w = gm.weights().to_vec();
    let mu = gm.means().to_owned();
    let Covariance::Diagonal(v) = gm.covariance().clone() else { unreachable!() };
    let x = points(200, 3, 2.0, 16);
    let mut worst = 0.0f64;
    for &(a, s) in &SCHEDULES {
        let mut ep = Array2::zeros(x.dim());
        gm.eps(a, s, x.view(), ep.view_mut());
        for (n, xr) in x.outer_iter().enumerate() {
            let xr = xr.to_vec();
            let r = eps_reference(&w, &mu, &v, a, s, &xr);
            let scale = s * term_scale(&gm, a, s, &xr);
            let logit_scale = 1.0 + 0.5 * term_scale(&gm, a, s, &xr).powi(2);
            for i in 0..3 {
                let err = (ep[[n, i]] - r[i]).abs();
                worst = worst.max(err / scale.max(1e-300));
                assert!(err <= 8.0 * EPS * scale * logit_scale.min(8.0), "a={a} s={s}: {} vs {}", ep[[n, i]], r[i]);
            }
        }
    }
    assert!(worst < 2e-15, "worst relative deviation {worst}");
}

/// Mean and covariance of the rows of `x`, and standard errors of both (the covariance's
/// from the empirical variance of the centred products).
fn sample_stats(x: &Array2<f64>) -> (Array1<f64>, Array2<f64>, Array2<f64>) {
    let n = x.nrows() as f64;
    let d = x.ncols();
    let mean = x.mean_axis(Axis(0)).unwrap();
    let xc = x - &mean;
    let cov = xc.t().dot(&xc) / n;
    let mut se = Array2::zeros((d, d));
    for i in 0..d {
        for j in 0..d {
            let var: f64 = xc.outer_iter().map(|r| (r[i] * r[j] - cov[[i, j]]).powi(2)).sum::<f64>() / n;
            se[[i, j]] = (var / n).sqrt();
        }
    }
    (mean, cov, se)
}

// 5-sigma bounds on d + d(d+1)/2 = 9 asymptotically normal statistics per (alpha, sigma):
// false-positive rate <= 9 * P(|Z| > 5) = 9 * 5.7e-7 ~ 5e-6 per seed (the seed is fixed, so
// the outcome is deterministic). A wrong square root (e.g. L L^T != S) or component choice
// shifts some statistic by O(0.1) = O(100) standard errors.
#[test]
fn samples_match_exact_moments() {
    let gm = full(21);
    let n = 200_000;
    let mut rng = Pcg64::seed_from_u64(2024);
    let x0 = gm.sample(n, &mut rng);
    for &(a, s) in &[(1.0, 0.0), (0.6, 0.8)] {
        let xt = if s == 0.0 {
            x0.clone()
        } else {
            let noise = points(n, 3, 1.0, 99);
            &x0 * a + &noise * s
        };
        let (m, c) = gm.moments(a, s);
        let (sm, sc, se) = sample_stats(&xt);
        for i in 0..3 {
            let se_mean = (c[[i, i]] / n as f64).sqrt();
            assert!((sm[i] - m[i]).abs() <= 5.0 * se_mean, "mean[{i}]: {} vs {}", sm[i], m[i]);
            for j in 0..3 {
                assert!(
                    (sc[[i, j]] - c[[i, j]]).abs() <= 5.0 * se[[i, j]],
                    "a={a} cov[{i},{j}]: {} vs {} (se {})",
                    sc[[i, j]],
                    c[[i, j]],
                    se[[i, j]]
                );
            }
        }
    }
    // Same seed, same samples; documented draw order (uniform, then d normals per row).
    let mut rng = Pcg64::seed_from_u64(2024);
    assert_eq!(gm.sample(n, &mut rng), x0);
    let one = GaussianMixture::new(vec![1.0], array![[1.0, -2.0]], Covariance::Diagonal(array![[4.0, 0.25]])).unwrap();
    let mut rng = Pcg64::seed_from_u64(5);
    let got = one.sample(3, &mut rng);
    let mut rng = Pcg64::seed_from_u64(5);
    for r in 0..3 {
        let _u: f64 = StandardUniform.sample(&mut rng);
        let z0: f64 = StandardNormal.sample(&mut rng);
        let z1: f64 = StandardNormal.sample(&mut rng);
        assert_eq!(got[[r, 0]], 1.0 + 2.0 * z0);
        assert_eq!(got[[r, 1]], -2.0 + 0.5 * z1);
    }
}

// 1-D mixture: moments by hand, and the trapezoid rule on a fine grid (exponentially accurate
// for Gaussians once the tails are negligible) for the normalisation and moments of
// exp(log_prob), so log_prob's constants are checked too.
#[test]
fn moments_match_closed_form_and_quadrature() {
    let gm =
        GaussianMixture::new(vec![0.25, 0.75], array![[-1.0], [2.0]], Covariance::Isotropic(vec![0.5, 2.0])).unwrap();
    let (a, s) = (0.6, 0.8);
    let (m, c) = gm.moments(a, s);
    // mean = a (0.25 (-1) + 0.75 (2)) = 0.75;
    // var = sum w (a^2 v + s^2) + a^2 (sum w mu^2 - m0^2) = 0.585 + 0.64 + 0.6075.
    assert!((m[0] - 0.75).abs() <= 4.0 * EPS);
    assert!((c[[0, 0]] - 1.8325).abs() <= 8.0 * EPS * 1.8325);

    let n = 40_001;
    let (lo, hi) = (-30.0, 30.0);
    let h = (hi - lo) / (n - 1) as f64;
    let grid = Array2::from_shape_fn((n, 1), |(i, _)| lo + h * i as f64);
    let mut lp = Array1::zeros(n);
    gm.log_prob(a, s, grid.view(), lp.view_mut());
    let (mut z, mut m1, mut m2) = (0.0, 0.0, 0.0);
    for i in 0..n {
        let wt = if i == 0 || i == n - 1 { 0.5 } else { 1.0 } * h * lp[i].exp();
        let xv = grid[[i, 0]];
        z += wt;
        m1 += wt * xv;
        m2 += wt * xv * xv;
    }
    assert!((z - 1.0).abs() < 1e-12, "normalisation {z}");
    assert!((m1 - m[0]).abs() < 1e-12);
    assert!((m2 - m1 * m1 - c[[0, 0]]).abs() < 1e-11);

    // Full mixture: moments at (a, s) are the affine image of those at (1, 0).
    let gm = full(3);
    let (m0, c0) = gm.moments(1.0, 0.0);
    let (mt, ct) = gm.moments(a, s);
    for i in 0..3 {
        assert!((mt[i] - a * m0[i]).abs() <= 8.0 * EPS * m0[i].abs());
        for j in 0..3 {
            let want = a * a * c0[[i, j]] + if i == j { s * s } else { 0.0 };
            assert!((ct[[i, j]] - want).abs() <= 16.0 * EPS * (want.abs() + 1.0));
        }
    }
}

#[test]
fn most_responsible_picks_the_nearby_component() {
    let gm = diag();
    let x = gm.means().to_owned();
    assert_eq!(gm.most_responsible(1.0, 1e-3, x.view()), vec![0, 1, 2]);
    let xs = &x * 0.5;
    assert_eq!(gm.most_responsible(0.5, 1e-3, xs.view()), vec![0, 1, 2]);
}

fn err_of(json: &str) -> ScoreError {
    GaussianMixture::from_json_str(json).expect_err(json)
}

fn assert_msg(e: &ScoreError, parts: &[&str]) {
    let msg = e.to_string();
    for p in parts {
        assert!(msg.contains(p), "message {msg:?} lacks {p:?}");
    }
}

#[test]
fn validation_errors_name_field_and_value() {
    use ScoreError as E;
    let e = err_of(r#"{"weights":[-0.5,1.5],"means":[[0],[1]],"variances":[1,1]}"#);
    assert!(matches!(e, E::InvalidWeight { index: 0, value } if value == -0.5));
    assert_msg(&e, &["weights[0]", "-0.5"]);

    let e = err_of(r#"{"weights":[0.5,0.6],"means":[[0],[1]],"variances":[1,1]}"#);
    assert!(matches!(e, E::WeightsDoNotSumToOne { .. }));
    assert_msg(&e, &["weights", "1.1"]);

    let e = err_of(r#"{"weights":[],"means":[],"variances":[]}"#);
    assert!(matches!(e, E::InvalidParameter { .. }));
    assert_msg(&e, &["weights length", "0"]);

    let e = err_of(r#"{"weights":[1],"means":[[]],"variances":[1]}"#);
    assert!(matches!(e, E::InvalidParameter { .. }));
    assert_msg(&e, &["means[0] length", "0"]);

    // Too large for f64: a JSON error naming where (serde_json's float_roundtrip parser).
    let e = err_of(r#"{"weights":[1],"means":[[0, 1e400]],"variances":[1]}"#);
    assert!(matches!(e, E::Target(_)), "{e:?}");
    assert_msg(&e, &["number out of range", "line 1 column 33"]);

    let e = err_of(r#"{"weights":[0.5,0.5],"means":[[0,0],[1,1]],"diag":[[1,1],[1,1e999]]}"#);
    assert_msg(&e, &["number out of range", "line 1 column 65"]);

    for (json, what, exp, found) in [
        (r#"{"weights":[0.5,0.5],"means":[[0,0],[1]],"variances":[1,1]}"#, "means[1] length", 2, 1),
        (r#"{"weights":[0.5,0.5],"means":[[0,0]],"variances":[1,1]}"#, "means length", 2, 1),
        (r#"{"weights":[0.5,0.5],"means":[[0,0],[1,1]],"variances":[1]}"#, "variances length", 2, 1),
        (r#"{"weights":[0.5,0.5],"means":[[0,0],[1,1]],"diag":[[1,1],[1,1,1]]}"#, "diag[1] length", 2, 3),
        (r#"{"weights":[1],"means":[[0,0]],"full":[[[1,0]]]}"#, "full[0] rows", 2, 1),
        (r#"{"weights":[1],"means":[[0,0]],"full":[[[1,0],[0]]]}"#, "full[0][1] length", 2, 1),
    ] {
        let e = err_of(json);
        assert!(matches!(e, E::DimensionMismatch { .. }), "{json}: {e:?}");
        assert_msg(&e, &[what, &format!("expected {exp}"), &format!("found {found}")]);
    }

    let e = err_of(r#"{"weights":[1],"means":[[0,0]],"full":[[[1,0.5],[0.4,1]]]}"#);
    assert!(matches!(e, E::NotSymmetric { component: 0, row: 0, col: 1, .. }));
    assert_msg(&e, &["full[0]", "0.5", "0.4"]);

    let e = err_of(r#"{"weights":[0.5,0.5],"means":[[0],[1]],"variances":[1,0]}"#);
    assert!(matches!(e, E::NotPositiveDefinite { field: "variances", component: 1, .. }));
    assert_msg(&e, &["variances[1]", "0"]);
    let e = err_of(r#"{"weights":[1],"means":[[0,0]],"diag":[[1,-1]]}"#);
    assert!(matches!(e, E::NotPositiveDefinite { field: "diag", component: 0, .. }));
    assert_msg(&e, &["diag[0]", "-1"]);
    let e = err_of(r#"{"weights":[1],"means":[[0,0]],"full":[[[1,2],[2,1]]]}"#);
    match &e {
        E::NotPositiveDefinite { field: "full", component: 0, min_eigenvalue } => {
            assert!((min_eigenvalue + 1.0).abs() < 1e-12)
        }
        other => panic!("{other:?}"),
    }
    assert_msg(&e, &["full[0]", "-1"]);
    // Numerically singular (eigenvalues 2 and 0 up to rounding).
    let e = err_of(r#"{"weights":[1],"means":[[0,0]],"full":[[[1,1],[1,1]]]}"#);
    assert!(matches!(e, E::NotPositiveDefinite { field: "full", .. }));

    for (json, parts) in [
        ("{\"weights\":[1],", &["invalid JSON"][..]),
        ("[1, 2]", &["top level"][..]),
        (r#"{"weights":[1],"variances":[1]}"#, &["missing key", "means"][..]),
        (r#"{"means":[[0]],"variances":[1]}"#, &["missing key", "weights"][..]),
        (r#"{"weights":[1],"means":[[0]]}"#, &["variances", "diag", "full"][..]),
        (r#"{"weights":[1],"means":[[0]],"variances":[1],"diag":[[1]]}"#, &["more than one", "diag", "variances"][..]),
        (r#"{"weights":[1],"means":[[0]],"variances":[1],"colour":"red"}"#, &["unknown key", "colour"][..]),
        (r#"{"weights":["abc"],"means":[[0]],"variances":[1]}"#, &["weights[0]", "\"abc\""][..]),
        (r#"{"weights":[1],"means":[0],"variances":[1]}"#, &["means[0]", "expected an array", "0"][..]),
        (r#"{"weights":1,"means":[[0]],"variances":[1]}"#, &["weights", "expected an array", "1"][..]),
        (r#"{"weights":[1],"means":[[01]],"variances":[1]}"#, &["invalid number", "line 1 column 27"][..]),
        ("{\"weights\":[1],\n \"means\":[[-]],\"variances\":[1]}", &["invalid number", "line 2 column 13"][..]),
        (r#"{"weights":[1],"means":[[NaN]],"variances":[1]}"#, &["invalid JSON"][..]),
        (r#"{"weights":[1],"means":[["1"]],"variances":[1]}"#, &["means[0][0]", "expected a number", "\"1\""][..]),
    ] {
        let e = err_of(json);
        assert!(matches!(e, E::Target(_)), "{json}: {e:?}");
        assert_msg(&e, parts);
    }

    // Programmatic construction reports the same variants.
    let e = GaussianMixture::new(
        vec![0.5, 0.5],
        array![[0.0, 1.0], [f64::NAN, 0.0]],
        Covariance::Isotropic(vec![1.0, 1.0]),
    )
    .unwrap_err();
    assert!(matches!(e, E::NonFiniteInput { index: 2, .. }));
    assert_msg(&e, &["means[2]", "NaN"]);
    let e = GaussianMixture::new(
        vec![1.0],
        array![[0.0, 1.0]],
        Covariance::Full(vec![array![[1.0, f64::INFINITY], [f64::INFINITY, 1.0]]]),
    )
    .unwrap_err();
    assert_msg(&e, &["full[1]", "inf"]);
    let e =
        GaussianMixture::new(vec![1.0], array![[0.0, 1.0]], Covariance::Diagonal(array![[1.0, 1.0, 1.0]])).unwrap_err();
    assert_msg(&e, &["diag columns", "expected 2", "found 3"]);

    let path = Path::new("/nonexistent/dir/mixture.json");
    let e = GaussianMixture::from_json_file(path).unwrap_err();
    assert!(matches!(e, E::Io { .. }));
    assert_msg(&e, &["/nonexistent/dir/mixture.json"]);
}

#[test]
fn json_round_trip_is_bit_exact() {
    let awkward = GaussianMixture::new(
        vec![1.0 / 3.0, 1.0 / 3.0, 1.0 - 2.0 / 3.0],
        array![
            [0.1 + 0.2, -1.0 / 7.0, 5e-324],
            [1e300, -2.2250738585072014e-308, 9007199254740993.0],
            [0.123_456_789_012_345_68, -7.0, 1e-5]
        ],
        Covariance::Isotropic(vec![std::f64::consts::PI, 1.0 / 3.0, 2.0f64.sqrt()]),
    )
    .unwrap();
    let mut cases = mixtures();
    cases.push(("awkward", awkward));
    cases.push(("full(9)", full(9)));
    for (name, gm) in cases {
        let text = gm.to_json_string();
        let back = GaussianMixture::from_json_str(&text).unwrap();
        assert_eq!(back.weights(), gm.weights(), "{name}");
        assert_eq!(back.means(), gm.means(), "{name}");
        assert_eq!(back.covariance(), gm.covariance(), "{name}");
        assert_eq!(back.to_json_string(), text, "{name}");
    }
    // Many random doubles: the correctly rounded parser reads every shortest representation.
    let mut rng = Pcg64::seed_from_u64(77);
    let means = Array2::from_shape_fn((1, 2000), |_| {
        let bits: u64 = rng.random();
        let v = f64::from_bits(bits);
        if v.is_finite() {
            v
        } else {
            0.5
        }
    });
    let gm = GaussianMixture::new(vec![1.0], means, Covariance::Isotropic(vec![1.0])).unwrap();
    let back = GaussianMixture::from_json_str(&gm.to_json_string()).unwrap();
    assert_eq!(back.means(), gm.means());
}

#[test]
fn bit_identical_across_thread_counts_and_layouts() {
    let gm = full(5);
    let x = points(1000, 3, 2.0, 17);
    let run = || {
        let mut sc = Array2::zeros(x.dim());
        let mut ep = Array2::zeros(x.dim());
        let mut x0 = Array2::zeros(x.dim());
        let mut lp = Array1::zeros(x.nrows());
        let mut sd = Array2::zeros(x.dim());
        let mut dv = Array1::zeros(x.nrows());
        gm.score(0.7, 0.5, x.view(), sc.view_mut());
        gm.eps(0.7, 0.5, x.view(), ep.view_mut());
        gm.x0(0.7, 0.5, x.view(), x0.view_mut());
        gm.log_prob(0.7, 0.5, x.view(), lp.view_mut());
        gm.score_divergence(0.7, 0.5, x.view(), sd.view_mut(), dv.view_mut());
        let best = gm.most_responsible(0.7, 0.5, x.view());
        (sc, ep, x0, lp, sd, dv, best)
    };
    let pool = |n| rayon::ThreadPoolBuilder::new().num_threads(n).build().unwrap();
    let one = pool(1).install(run);
    let two = pool(2).install(run);
    let bits = |a: &Array2<f64>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&one.0), bits(&two.0));
    assert_eq!(bits(&one.1), bits(&two.1));
    assert_eq!(bits(&one.2), bits(&two.2));
    assert_eq!(one.3, two.3);
    assert_eq!(bits(&one.4), bits(&two.4));
    assert_eq!(one.5, two.5);
    assert_eq!(one.6, two.6);
    // Rows of a transposed (non-contiguous) view, and a single row, give the same bits.
    let xt = x.t().as_standard_layout().into_owned();
    let mut sc = Array2::zeros(x.dim());
    gm.score(0.7, 0.5, xt.t(), sc.view_mut());
    assert_eq!(bits(&sc), bits(&one.0));
    let single = score1(&gm, 0.7, 0.5, &x.row(500).to_vec());
    assert_eq!(single, one.0.row(500).to_vec());
    // Column-major output.
    let mut cm = Array2::zeros((3, 1000));
    gm.score(0.7, 0.5, x.view(), cm.view_mut().reversed_axes());
    assert_eq!(cm.t(), one.0);
}

/// Every output of the kernel for `x` at `(a, s)`, with a given layout and copy.
type Outputs = (Vec<u64>, Vec<u64>, Vec<u64>, Vec<u64>, Vec<u64>, Vec<u64>, Vec<usize>, Vec<u64>);

fn all_outputs(gm: &GaussianMixture, x: ArrayView2<f64>, a: f64, s: f64, layout: Layout, path: SimdPath) -> Outputs {
    let fr = gm.frame(a, s);
    let mut sc = Array2::zeros(x.dim());
    let mut ep = Array2::zeros(x.dim());
    let mut x0 = Array2::zeros(x.dim());
    let mut lp = Array1::zeros(x.nrows());
    let mut sd = Array2::zeros(x.dim());
    let mut dv = Array1::zeros(x.nrows());
    let mut best = vec![0; x.nrows()];
    kernel::run_on(gm, &fr, Task::Precision { scale: -1.0 }, Some(x), Sink::Rows(sc.view_mut()), layout, path);
    kernel::run_on(gm, &fr, Task::Precision { scale: s }, Some(x), Sink::Rows(ep.view_mut()), layout, path);
    kernel::run_on(gm, &fr, Task::Posterior, Some(x), Sink::Rows(x0.view_mut()), layout, path);
    kernel::run_on(gm, &fr, Task::LogSumExp { shift: 0.0 }, Some(x), Sink::Values(lp.view_mut()), layout, path);
    let sink = Sink::RowsValues(sd.view_mut(), dv.view_mut());
    kernel::run_on(gm, &fr, Task::Divergence, Some(x), sink, layout, path);
    kernel::run_on(gm, &fr, Task::Argmax, Some(x), Sink::Indices(&mut best), layout, path);
    let mut up = x.to_owned();
    let step = Task::AffineUpdate { scale: s, a: -0.3, b: 1.7, h: 0.05 };
    kernel::run_on(gm, &fr, step, None, Sink::Update(up.view_mut()), layout, path);
    let bits = |a: &[f64]| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    let flat = |a: Array2<f64>| bits(&a.into_raw_vec_and_offset().0);
    (flat(sc), flat(ep), flat(x0), bits(lp.as_slice().unwrap()), flat(sd), bits(dv.as_slice().unwrap()), best, flat(up))
}

#[test]
fn eps_affine_is_eps_then_the_affine_map_bit_for_bit() {
    let x = points(333, 3, 2.0, 20);
    for (name, gm) in mixtures() {
        for &(a, s) in &SCHEDULES {
            let (f, c) = (-0.37 * a, 1.9 * s + 0.1);
            let mut ep = Array2::zeros(x.dim());
            gm.eps(a, s, x.view(), ep.view_mut());
            let want = Array2::from_shape_fn(x.dim(), |(n, i)| f * x[[n, i]] + c * ep[[n, i]]);
            let mut got = Array2::zeros(x.dim());
            gm.eps_affine(a, s, x.view(), got.view_mut(), f, c);
            let bits = |m: &Array2<f64>| m.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "{name} a={a} s={s}");
        }
    }
}

/// A `k`-component mixture in `d` dimensions with random means and diagonal or full
/// covariances.
fn wide(k: usize, d: usize, full: bool, seed: u64) -> GaussianMixture {
    let mut rng = Pcg64::seed_from_u64(seed);
    let mut normal = || -> f64 { StandardNormal.sample(&mut rng) };
    let means = Array2::from_shape_fn((k, d), |_| 1.5 * normal());
    let cov = if full {
        Covariance::Full(
            (0..k)
                .map(|_| {
                    let a = Array2::from_shape_fn((d, d), |_| 0.4 * normal());
                    a.dot(&a.t()) + Array2::<f64>::eye(d) * 0.1
                })
                .collect(),
        )
    } else {
        Covariance::Diagonal(Array2::from_shape_fn((k, d), |_| 0.2 + normal().abs()))
    };
    GaussianMixture::new(vec![1.0 / k as f64; k], means, cov).unwrap()
}

// Where rows are contiguous, the AVX2 copy moves them in and out of its blocks by 4 x 4
// tiles (gmm/tiles.rs), and one value at a time elsewhere: transposed inputs and
// column-major outputs take the second way. Every N x d output must have the same bits
// either way, for d with and without a partial tile and row counts that leave partial tiles
// in the last block; and a non-finite value is flagged wherever it falls.
#[test]
fn tiled_and_scalar_transposition_give_the_same_bits() {
    let bits = |a: ArrayView2<f64>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    for (d, full) in [(4, false), (6, false), (9, true), (16, false)] {
        let gm = wide(3, d, full, 40 + d as u64);
        let x = points(1037, d, 2.0, 41);
        // Standard layout, so that xt.t() is a column-major view of the same values.
        let xt = x.t().as_standard_layout().into_owned();
        let fr = gm.frame(0.7, 0.5);
        let layout = Layout::for_mixture(&gm);
        let tasks = [
            (Task::Precision { scale: -1.0 }, "score"),
            (Task::Affine { scale: 0.5, a: -0.3, b: 1.7 }, "affine"),
            (Task::Posterior, "x0"),
        ];
        for (task, what) in tasks {
            let mut tiled = Array2::zeros(x.dim());
            kernel::run(&gm, &fr, task, x.view(), Sink::Rows(tiled.view_mut()), layout);
            let mut cm = Array2::zeros((d, x.nrows()));
            kernel::run(&gm, &fr, task, xt.t(), Sink::Rows(cm.view_mut().reversed_axes()), layout);
            assert_eq!(bits(tiled.view()), bits(cm.t()), "d={d} {what}");
        }
        let (mut sd, mut dv) = (Array2::zeros(x.dim()), Array1::zeros(x.nrows()));
        kernel::run(&gm, &fr, Task::Divergence, x.view(), Sink::RowsValues(sd.view_mut(), dv.view_mut()), layout);
        let (mut sd2, mut dv2) = (Array2::zeros((d, x.nrows())), Array1::zeros(x.nrows()));
        let sink = Sink::RowsValues(sd2.view_mut().reversed_axes(), dv2.view_mut());
        kernel::run(&gm, &fr, Task::Divergence, xt.t(), sink, layout);
        assert_eq!(bits(sd.view()), bits(sd2.t()), "d={d} divergence score");
        assert_eq!(dv, dv2, "d={d} divergence");
        let step = Task::AffineUpdate { scale: 0.5, a: -0.3, b: 1.7, h: 0.05 };
        let mut up = x.clone();
        assert!(kernel::run_in_place(&gm, &fr, step, Sink::Update(up.view_mut()), layout));
        let mut up2 = xt.clone();
        assert!(kernel::run_in_place(&gm, &fr, step, Sink::Update(up2.view_mut().reversed_axes()), layout));
        assert_eq!(bits(up.view()), bits(up2.t()), "d={d} update");
        // A huge coordinate makes its row's update NaN (the log-terms overflow): in a whole
        // tile (row 4), in the rows after the last whole tile (row 1036), and in the
        // coordinates after the last whole tile (d = 6, 9).
        for (row, col) in [(4, 0), (1036, 1), (500, d - 1)] {
            for (flat, what) in [(true, "tiled"), (false, "scalar")] {
                let mut bad = x.clone();
                bad[[row, col]] = f64::MAX;
                let finite = if flat {
                    kernel::run_in_place(&gm, &fr, step, Sink::Update(bad.view_mut()), layout)
                } else {
                    let mut t = bad.t().as_standard_layout().into_owned();
                    kernel::run_in_place(&gm, &fr, step, Sink::Update(t.view_mut().reversed_axes()), layout)
                };
                assert!(!finite, "d={d} {what}: overflow at ({row}, {col}) not flagged");
            }
        }
    }
}

// Blocks are padded to groups of 16 rows and chunks split the batch anywhere: none of it
// may change a bit of any output, on either copy of the kernel (the AVX2 copy only where the
// CPU has it).
#[test]
fn bit_identical_across_chunk_and_block_sizes() {
    let x = points(1037, 3, 2.0, 18);
    let layouts = [(1, 1), (7, 3), (100, 16), (1037, 256), (513, 200), (2000, 40)];
    for (name, gm) in mixtures() {
        for copy in SimdPath::supported_paths() {
            let reference = all_outputs(&gm, x.view(), 0.7, 0.5, Layout::for_mixture(&gm), copy);
            for (chunk, block) in layouts {
                let got = all_outputs(&gm, x.view(), 0.7, 0.5, Layout { chunk, block }, copy);
                assert!(got == reference, "{name} {}: chunk {chunk} block {block} changes the bits", copy.name());
            }
            let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
            let threaded = pool.install(|| all_outputs(&gm, x.view(), 0.7, 0.5, Layout::for_mixture(&gm), copy));
            assert!(threaded == reference, "{name}: 3 threads change the bits");
        }
    }
}

// The copies evaluate the same formulas with and without fused multiply-adds: the portable one
// agrees with each fused one to rounding (a few ulps of the terms, amplified at most by the
// softmax), and the two fused copies (4 and 8 lanes, the same operations per row) to the bit.
// Every copy this CPU runs is compared.
#[test]
fn every_copy_this_cpu_runs_agrees() {
    let x = points(300, 3, 2.0, 19);
    let fused: Vec<SimdPath> = SimdPath::supported_paths().into_iter().filter(|&p| p != SimdPath::Portable).collect();
    for (name, gm) in mixtures() {
        for &(a, s) in &SCHEDULES {
            let layout = Layout::for_mixture(&gm);
            let p = all_outputs(&gm, x.view(), a, s, layout, SimdPath::Portable);
            for &copy in &fused {
                let v = all_outputs(&gm, x.view(), a, s, layout, copy);
                let close = |u: &[u64], w: &[u64], what: &str| {
                    for (n, (&u, &w)) in u.iter().zip(w).enumerate() {
                        let (u, w) = (f64::from_bits(u), f64::from_bits(w));
                        let scale = 1.0 + u.abs().max(w.abs());
                        assert!(
                            (u - w).abs() <= 1e-12 * scale,
                            "{name} {} a={a} s={s} {what}[{n}]: {u} vs {w}",
                            copy.name()
                        );
                    }
                };
                close(&p.0, &v.0, "score");
                close(&p.2, &v.2, "x0");
                close(&p.3, &v.3, "log_prob");
                close(&p.5, &v.5, "divergence");
                let first = all_outputs(&gm, x.view(), a, s, layout, fused[0]);
                assert!(v == first, "{name} a={a} s={s}: the {} and {} copies differ", copy.name(), fused[0].name());
            }
        }
    }
}

fn diag_mixture() -> impl Strategy<Value = (GaussianMixture, Vec<f64>, f64, f64)> {
    (1usize..=4, 1usize..=4).prop_flat_map(|(k, d)| {
        (
            prop::collection::vec(0.1f64..1.0, k),
            prop::collection::vec(-3.0f64..3.0, k * d),
            prop::collection::vec(0.2f64..3.0, k * d),
            prop::collection::vec(-4.0f64..4.0, d),
            0.5f64..=1.0,
            prop_oneof![Just(0.0), 1e-3f64..1.0],
        )
            .prop_map(move |(w, mu, v, x, a, s)| {
                let tot: f64 = w.iter().sum();
                let w: Vec<f64> = w.iter().map(|w| w / tot).collect();
                let gm = GaussianMixture::new(
                    w,
                    Array2::from_shape_vec((k, d), mu).unwrap(),
                    Covariance::Diagonal(Array2::from_shape_vec((k, d), v).unwrap()),
                )
                .unwrap();
                (gm, x, a, s)
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    // h is scaled to the narrowest noised component (c_min >= 0.5^2 * 0.2 = 0.05) so that the
    // truncation error h^2/6 |d^3 log p| <~ 1e-10 c_min G^3 / 6 with G <~ 14 / c_min stays
    // <~ 1e-7 relative to the term scale G, and the rounding eps |log p| / h <~ 1e-8 G.
    #[test]
    fn random_diagonal_scores_are_finite_and_match_fd((gm, x, a, s) in diag_mixture()) {
        let d = gm.dim();
        let sc = score1(&gm, a, s, &x);
        prop_assert!(sc.iter().all(|v| v.is_finite()));
        let Covariance::Diagonal(v) = gm.covariance() else { unreachable!() };
        let cmin = v.iter().fold(f64::INFINITY, |m, &l| m.min(a * a * l + s * s));
        let h = 1e-5 * cmin.sqrt();
        let scale = term_scale(&gm, a, s, &x);
        for i in 0..d {
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp[i] += h;
            xm[i] -= h;
            let fd = (lp1(&gm, a, s, &xp) - lp1(&gm, a, s, &xm)) / (2.0 * h);
            prop_assert!((sc[i] - fd).abs() <= 1e-6 * scale, "i={} score {} fd {}", i, sc[i], fd);
        }
    }
}

/// serde_json with `float_roundtrip` (what the JSON reader uses) parses numbers to the same bits as
/// Rust's correctly rounded `str::parse`, on hard cases and on 200k random bit patterns written
/// four ways: the reason the reader needs no number lexer of its own.
#[test]
fn serde_json_numbers_are_correctly_rounded() {
    let same = |s: &str| {
        let v: serde_json::Value = serde_json::from_str(s).unwrap();
        v.as_f64().map(f64::to_bits) == Some(s.parse::<f64>().unwrap().to_bits())
    };
    for s in [
        "0.1",
        "1e-320",
        "4.9406564584124654e-324",
        "2.4703282292062328e-324",
        "2.2250738585072011e-308",
        "2.2250738585072014e-308",
        "1.7976931348623157e308",
        "1.00000000000000011102230246251565404236316680908203125",
        "9007199254740993",
        "0.30000000000000004",
        "123456789012345678901234567890e-10",
    ] {
        assert!(same(s), "{s}");
    }
    let mut rng = Pcg64::seed_from_u64(11);
    for _ in 0..200_000 {
        let v = f64::from_bits(rng.random());
        if v.is_finite() {
            for s in [format!("{v:e}"), format!("{v:.17e}"), format!("{v:.20e}"), format!("{v}")] {
                assert!(s.len() > 400 || same(&s), "{s}");
            }
        }
    }
}

#[test]
fn check_level_names_the_bad_level() {
    let ring = crate::targets::ring8();
    assert!(ring.check_level(1.0, 0.0).is_ok() && ring.check_level(0.0, 1.0).is_ok());
    let message = |a: f64, s: f64| ring.check_level(a, s).unwrap_err().to_string();
    assert_eq!(message(1.0, -1.0), "sigma = -1: must be finite and >= 0");
    assert_eq!(message(f64::NAN, 1.0), "alpha = NaN: must be finite and >= 0");
    assert_eq!(message(1.0, 1e200), "sigma = 1e200: its square overflows f64");
    assert!(message(0.0, 0.0).starts_with("sigma = 0: alpha^2 S_k + sigma^2 I must be positive definite"));
    // Every level check_level accepts can be evaluated (the kernel asserts the same conditions).
    let x = ndarray::Array2::from_elem((3, 2), 1.0);
    let mut out = ndarray::Array2::zeros((3, 2));
    for (a, s) in [(1.0, 0.0), (0.0, 1e-3), (1e150, 0.0), (1.0, 1e150)] {
        assert!(ring.check_level(a, s).is_ok());
        ring.eps(a, s, x.view(), out.view_mut());
    }
}
