//! Sample-quality metrics: how far a set of sampler outputs is from a known target.
//!
//! `scoresde eval` runs a sampler against a target whose law is known exactly
//! (exact mean, exact covariance, and exact samples drawn independently), and needs
//! numbers that say how good the sampler output is. This module provides them:
//!
//! * [`mean_error`] and [`covariance_error`] compare the first two moments with the
//!   exact ones. They are cheap and easy to interpret, but blind to everything beyond
//!   second order (a sampler can match mean and covariance and still be badly wrong).
//! * [`sliced_w2`] compares the whole distributions through the sliced Wasserstein-2
//!   distance against exact samples. Each projection onto a direction reduces the
//!   problem to one dimension, where optimal transport is solved exactly by sorting,
//!   so the cost is `O(P (n log n + m log m + (n + m) d))` for `P` directions instead
//!   of the cubic cost of a full optimal-transport solve. For a fixed set of
//!   directions it is a pseudometric (symmetric, non-negative, triangle inequality);
//!   averaged over the whole sphere it is a metric on distributions with finite
//!   second moment, so it goes to zero exactly when the sampler gets the law right.
//!
//! Samples are stored one per row of an `N x d` array of `f64`.
//!
//! # Preconditions
//! Shape mismatches (different dimensions, too few samples for the statistic) are
//! programmer errors: every function documents what it needs and asserts it with a
//! clear message instead of returning `NaN`. On finite input that meets the
//! preconditions nothing panics.
//!
//! # Determinism
//! [`sliced_w2_with_directions`] evaluates the projections in parallel with rayon,
//! but each projection is computed independently into its own slot and the slots
//! are summed sequentially in projection order, so the result is bit-identical for
//! any number of threads. [`sliced_w2`] draws all directions from the caller's RNG
//! up front (see [`random_directions`]), so it is reproducible from the RNG state.

pub mod discrepancy;
pub mod target;

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis};
use ndarray_rand::RandomExt;
use rand::Rng;
use rand_distr::StandardNormal;
use rayon::prelude::*;

/// Largest accepted deviation of `|u|^2` from 1 for a direction row `u` passed to
/// [`sliced_w2_with_directions`]. Loose enough for any honest normalisation in
/// `f64` (or even `f32`), tight enough to catch rows that were never normalised.
const UNIT_NORM_TOLERANCE: f64 = 1e-6;

/// Sample mean of the rows of `x` (shape `N x d`), a length-`d` vector.
///
/// # Panics
/// If `x` has no rows (`N == 0`): the mean of nothing is undefined.
pub fn sample_mean(x: ArrayView2<f64>) -> Array1<f64> {
    let n = x.nrows();
    assert!(n >= 1, "sample_mean: need at least 1 sample, got 0");
    x.sum_axis(Axis(0)) / n as f64
}

/// Unbiased sample covariance of the rows of `x` (shape `N x d`), normalised by
/// `N - 1`; a symmetric `d x d` matrix.
///
/// Computed in two passes (centre, then `X_c^T X_c / (N - 1)`), which avoids the
/// cancellation of the one-pass `E[x x^T] - m m^T` formula. The result is exactly
/// symmetric.
///
/// # Panics
/// If `x` has fewer than 2 rows: the unbiased estimator needs `N >= 2`.
pub fn sample_covariance(x: ArrayView2<f64>) -> Array2<f64> {
    let n = x.nrows();
    assert!(n >= 2, "sample_covariance: need at least 2 samples for the unbiased (n-1) covariance, got {n}");
    let mean = sample_mean(x);
    let centred = &x - &mean;
    let mut cov = centred.t().dot(&centred) / (n - 1) as f64;
    // The matrix product need not be bit-symmetric; make it so.
    let d = cov.nrows();
    for j in 0..d {
        for k in (j + 1)..d {
            let s = 0.5 * (cov[[j, k]] + cov[[k, j]]);
            cov[[j, k]] = s;
            cov[[k, j]] = s;
        }
    }
    cov
}

/// Euclidean distance `|mean(x) - m|_2` between the sample mean of the rows of `x`
/// (shape `N x d`) and the exact mean `m` (length `d`).
///
/// # Panics
/// If `x` has no rows, or if `exact_mean.len() != d`.
pub fn mean_error(x: ArrayView2<f64>, exact_mean: ArrayView1<f64>) -> f64 {
    assert_eq!(
        x.ncols(),
        exact_mean.len(),
        "mean_error: samples have dimension {} but the exact mean has length {}",
        x.ncols(),
        exact_mean.len()
    );
    let mean = sample_mean(x);
    mean.iter().zip(exact_mean.iter()).map(|(a, b)| (a - b) * (a - b)).sum::<f64>().sqrt()
}

/// Relative Frobenius error `||cov(x) - C||_F / ||C||_F` of the unbiased sample
/// covariance of the rows of `x` (shape `N x d`, see [`sample_covariance`]) against
/// the exact covariance `C` (shape `d x d`).
///
/// # Panics
/// If `x` has fewer than 2 rows, if `exact_cov` is not `d x d`, or if
/// `||C||_F == 0` (the relative error is undefined for a zero covariance).
pub fn covariance_error(x: ArrayView2<f64>, exact_cov: ArrayView2<f64>) -> f64 {
    let d = x.ncols();
    assert_eq!(
        exact_cov.dim(),
        (d, d),
        "covariance_error: samples have dimension {d} but the exact covariance has shape {:?}",
        exact_cov.dim()
    );
    let norm_c = exact_cov.iter().map(|c| c * c).sum::<f64>().sqrt();
    assert!(norm_c > 0.0, "covariance_error: the exact covariance must have a nonzero Frobenius norm");
    let cov = sample_covariance(x);
    let diff = cov.iter().zip(exact_cov.iter()).map(|(a, c)| (a - c) * (a - c)).sum::<f64>().sqrt();
    diff / norm_c
}

/// Squared Wasserstein-2 distance between the empirical measures of `a` and `b`
/// (uniform weights `1/n` and `1/m`; the sizes may differ).
///
/// Both slices are sorted in place (ascending, [`f64::total_cmp`]). The value is the
/// exact quantile coupling
/// `int_0^1 (F^-1(u) - G^-1(u))^2 du`, where `F^-1` and `G^-1` are the step quantile
/// functions (`F^-1(u) = a_(i)` for `u` in `(i/n, (i+1)/n]`). The integral is
/// evaluated piecewise by merging the breakpoints `i/n` and `j/m`, with the
/// breakpoints compared in exact integer arithmetic (multiples of `1/(n m)`). For
/// `n == m` it reduces to the mean of the squared differences of the sorted values,
/// and that case is computed directly.
///
/// The result is exactly symmetric in `(a, b)` and non-negative; `O(n log n + m log m)`
/// time, no allocation.
///
/// # Panics
/// If either slice is empty.
pub fn w2_1d_squared(a: &mut [f64], b: &mut [f64]) -> f64 {
    let (n, m) = (a.len(), b.len());
    assert!(n >= 1 && m >= 1, "w2_1d_squared: both samples must be non-empty (got sizes {n} and {m})");
    a.sort_unstable_by(f64::total_cmp);
    b.sort_unstable_by(f64::total_cmp);
    if n == m {
        let sum: f64 = a.iter().zip(b.iter()).map(|(x, y)| (x - y) * (x - y)).sum();
        return sum / n as f64;
    }
    // Positions on [0, 1] in units of 1/(n m): step i of `a` ends at (i + 1) m,
    // step j of `b` ends at (j + 1) n. u128 cannot overflow for any slice lengths.
    let (nu, mu) = (n as u128, m as u128);
    let (mut i, mut j) = (0usize, 0usize);
    let mut pos: u128 = 0;
    let mut acc = 0.0f64;
    while i < n && j < m {
        let end_a = (i as u128 + 1) * mu;
        let end_b = (j as u128 + 1) * nu;
        let end = end_a.min(end_b);
        let diff = a[i] - b[j];
        acc += (end - pos) as f64 * diff * diff;
        pos = end;
        if end_a <= end_b {
            i += 1;
        }
        if end_b <= end_a {
            j += 1;
        }
    }
    acc / (nu * mu) as f64
}

/// `p` directions drawn uniformly on the unit sphere `S^{d-1}`, as the rows of a
/// `p x d` array.
///
/// Each row is a vector of `d` independent standard normals (drawn in row-major
/// order from `rng`) divided by its Euclidean norm; a row whose norm is zero (or
/// underflows to zero) is redrawn, which happens with probability zero in exact
/// arithmetic. The result is therefore a deterministic function of the RNG state.
///
/// # Panics
/// If `d == 0` (there is no unit vector in `R^0`).
pub fn random_directions<R: Rng + ?Sized>(p: usize, d: usize, rng: &mut R) -> Array2<f64> {
    assert!(d >= 1, "random_directions: dimension must be at least 1");
    // All rows drawn at once, row-major (the same draws, in the same order, as row by row).
    let mut dirs = Array2::<f64>::random_using((p, d), StandardNormal, rng);
    for mut row in dirs.rows_mut() {
        loop {
            let norm = row.iter().map(|v| v * v).sum::<f64>().sqrt();
            if norm > 0.0 {
                row.mapv_inplace(|v| v / norm);
                break;
            }
            row.assign(&Array1::<f64>::random_using(d, StandardNormal, rng));
        }
    }
    dirs
}

/// Sliced Wasserstein-2 distance between the rows of `x` (`n x d`) and `y` (`m x d`)
/// along `n_projections` random directions drawn from `rng`:
/// `sqrt( (1/P) sum_k W2^2(<x, u_k>, <y, u_k>) )`.
///
/// The directions are drawn up front with [`random_directions`]`(n_projections, d,
/// rng)` and the value is then exactly [`sliced_w2_with_directions`] with them, so
/// it is reproducible from the RNG state and independent of the thread count.
///
/// # Panics
/// If `x` or `y` has no rows, if their dimensions differ, if `d == 0`, or if
/// `n_projections == 0`.
pub fn sliced_w2<R: Rng + ?Sized>(x: ArrayView2<f64>, y: ArrayView2<f64>, n_projections: usize, rng: &mut R) -> f64 {
    check_sets(x, y, "sliced_w2");
    assert!(n_projections >= 1, "sliced_w2: need at least one projection");
    let directions = random_directions(n_projections, x.ncols(), rng);
    sliced_w2_with_directions(x, y, directions.view())
}

/// Sliced Wasserstein-2 distance between the rows of `x` (`n x d`) and `y` (`m x d`)
/// along the given unit directions (the rows of `directions`, `P x d`):
/// `sqrt( (1/P) sum_k W2^2(<x, u_k>, <y, u_k>) )`, each one-dimensional term computed
/// exactly by [`w2_1d_squared`].
///
/// The projections run in parallel with rayon; the per-projection values are
/// collected in order and summed sequentially, so the result is bit-identical for
/// any thread count. For fixed directions the value is exactly symmetric in
/// `(x, y)`, non-negative and satisfies the triangle inequality (up to rounding).
///
/// # Panics
/// If `x` or `y` has no rows, if the dimensions of `x`, `y` and `directions` differ,
/// if `d == 0`, if there are no directions, or if some direction row `u` has
/// `| |u|^2 - 1 | > 1e-6` (the rows must be unit vectors).
pub fn sliced_w2_with_directions(x: ArrayView2<f64>, y: ArrayView2<f64>, directions: ArrayView2<f64>) -> f64 {
    check_sets(x, y, "sliced_w2_with_directions");
    let d = x.ncols();
    let p = directions.nrows();
    assert_eq!(
        directions.ncols(),
        d,
        "sliced_w2_with_directions: samples have dimension {d} but directions have dimension {}",
        directions.ncols()
    );
    assert!(p >= 1, "sliced_w2_with_directions: need at least one direction");
    for (k, u) in directions.rows().into_iter().enumerate() {
        let sq = u.iter().map(|v| v * v).sum::<f64>();
        assert!(
            (sq - 1.0).abs() <= UNIT_NORM_TOLERANCE,
            "sliced_w2_with_directions: direction {k} is not a unit vector (|u|^2 = {sq})"
        );
    }
    let (n, m) = (x.nrows(), y.nrows());
    let per_projection: Vec<f64> = (0..p)
        .into_par_iter()
        .map_init(
            || (Vec::with_capacity(n), Vec::with_capacity(m)),
            |(px, py): &mut (Vec<f64>, Vec<f64>), k| {
                let u = directions.row(k);
                project_into(x, u, px);
                project_into(y, u, py);
                w2_1d_squared(px, py)
            },
        )
        .collect();
    let total: f64 = per_projection.iter().sum();
    (total / p as f64).sqrt()
}

/// Shared shape checks of the two sample sets of a sliced distance.
fn check_sets(x: ArrayView2<f64>, y: ArrayView2<f64>, who: &str) {
    assert!(
        x.nrows() >= 1 && y.nrows() >= 1,
        "{who}: both sample sets must be non-empty (got {} and {} samples)",
        x.nrows(),
        y.nrows()
    );
    assert_eq!(x.ncols(), y.ncols(), "{who}: sample sets have different dimensions ({} vs {})", x.ncols(), y.ncols());
    assert!(x.ncols() >= 1, "{who}: dimension must be at least 1");
}

/// Overwrite `out` with the projections `<x_i, u>` of the rows of `x` on `u`
/// (sequential sum over coordinates, so the value does not depend on the layout).
fn project_into(x: ArrayView2<f64>, u: ArrayView1<f64>, out: &mut Vec<f64>) {
    out.clear();
    out.extend(x.rows().into_iter().map(|row| row.iter().zip(u.iter()).map(|(a, b)| a * b).sum::<f64>()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{array, Array1};
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};
    use rand_pcg::Pcg64Mcg;

    fn rng(seed: u64) -> Pcg64Mcg {
        Pcg64Mcg::seed_from_u64(seed)
    }

    /// `n x d` array of independent uniforms on `[-s, s]`.
    fn uniform_set(n: usize, d: usize, s: f64, rng: &mut Pcg64Mcg) -> Array2<f64> {
        Array2::random_using((n, d), rand_distr::Uniform::new(-s, s).unwrap(), rng)
    }

    /// `n` samples of `N(m, L L^T)` with `L` lower triangular, as rows.
    fn gaussian_set(n: usize, m: &Array1<f64>, l: &Array2<f64>, rng: &mut Pcg64Mcg) -> Array2<f64> {
        // Rows z_i ~ N(0, I) in row-major order (the same draws as row by row); x_i = m + L z_i.
        let z = Array2::<f64>::random_using((n, m.len()), StandardNormal, rng);
        z.dot(&l.t()) + m
    }

    // ---------------------------------------------------------------- w2_1d_squared

    #[test]
    fn w2_1d_hand_examples() {
        // a = {0, 1}: F^-1 = 0 on (0, 1/2], 1 on (1/2, 1].
        // b = {0, 1, 2, 3}: G^-1 = 0, 1, 2, 3 on the quarters.
        // Integral: 0 * 1/4 + (0-1)^2 * 1/4 + (1-2)^2 * 1/4 + (1-3)^2 * 1/4 = 3/2.
        let mut a = [1.0, 0.0];
        let mut b = [3.0, 0.0, 2.0, 1.0];
        assert_eq!(w2_1d_squared(&mut a, &mut b), 1.5);
        assert_eq!(a, [0.0, 1.0], "sorted in place");
        assert_eq!(b, [0.0, 1.0, 2.0, 3.0], "sorted in place");

        // a = {0, 3}: 0 on (0, 1/2], 3 on (1/2, 1].
        // b = {1, 2, 4}: 1 on (0, 1/3], 2 on (1/3, 2/3], 4 on (2/3, 1].
        // (0-1)^2/3 + (0-2)^2/6 + (3-2)^2/6 + (3-4)^2/3 = 2/6 + 4/6 + 1/6 + 2/6 = 3/2.
        let mut a = [3.0, 0.0];
        let mut b = [4.0, 1.0, 2.0];
        assert_eq!(w2_1d_squared(&mut a, &mut b), 1.5);

        // {0} vs {0, 1}: 1/2 * 0 + 1/2 * 1 = 1/2.
        assert_eq!(w2_1d_squared(&mut [0.0], &mut [1.0, 0.0]), 0.5);

        // Equal sizes: mean squared difference of the sorted values.
        // {2, 0, 1} vs {5, 3, 4}: sorted pairs differ by 3 each -> 9.
        assert_eq!(w2_1d_squared(&mut [2.0, 0.0, 1.0], &mut [5.0, 3.0, 4.0]), 9.0);

        // A single point against a set: the only coupling, mean (b_j - x)^2.
        // {1} vs {0, 2, 4}: (1 + 1 + 9) / 3 = 11/3.
        let v = w2_1d_squared(&mut [1.0], &mut [4.0, 0.0, 2.0]);
        assert!((v - 11.0 / 3.0).abs() <= 4.0 * f64::EPSILON, "{v}");
    }

    #[test]
    fn w2_1d_symmetric_and_zero_on_same_measure() {
        let mut r = rng(1);
        for &(n, m) in &[(1, 1), (1, 7), (5, 3), (10, 10), (13, 29), (64, 48)] {
            let a: Vec<f64> = (0..n).map(|_| r.random_range(-5.0..5.0)).collect();
            let b: Vec<f64> = (0..m).map(|_| r.random_range(-5.0..5.0)).collect();
            let ab = w2_1d_squared(&mut a.clone(), &mut b.clone());
            let ba = w2_1d_squared(&mut b.clone(), &mut a.clone());
            assert_eq!(ab.to_bits(), ba.to_bits(), "exact symmetry for n={n}, m={m}");
            assert!(ab >= 0.0);
            // Repeating every point k times leaves the empirical measure unchanged,
            // so the merged quantile functions coincide exactly: distance 0.
            let aaa: Vec<f64> = a.iter().flat_map(|&v| [v, v, v]).collect();
            assert_eq!(w2_1d_squared(&mut a.clone(), &mut aaa.clone()), 0.0);
            // ... and the distance to b is the same (unequal-size merge path vs the
            // equal-size / other merge path), up to summation rounding.
            let aaa_b = w2_1d_squared(&mut aaa.clone(), &mut b.clone());
            assert!((aaa_b - ab).abs() <= 1e-13 * (1.0 + ab), "replication invariance n={n}, m={m}: {aaa_b} vs {ab}");
        }
    }

    #[test]
    fn w2_1d_translation() {
        // Dyadic data and shift: every operation is exact, so W2 = |c| exactly.
        let mut a = [0.5, -3.25, 7.0, 1.125, 2.0];
        let c = -0.75;
        let mut b: Vec<f64> = a.iter().map(|v| v + c).collect();
        assert_eq!(w2_1d_squared(&mut a, &mut b).sqrt(), c.abs());

        // General data: (a_i + c) - a_i differs from c by at most one rounding of
        // a_i + c, i.e. |err_i| <= eps * max|a_i + c|, and W2 is 1-Lipschitz in the
        // sup norm, so |W2 - |c|| <= eps * (max|a| + |c|).
        let mut r = rng(2);
        for _ in 0..20 {
            let a: Vec<f64> = (0..50).map(|_| r.random_range(-10.0..10.0)).collect();
            let c: f64 = r.random_range(-3.0..3.0);
            let b: Vec<f64> = a.iter().map(|v| v + c).collect();
            let w = w2_1d_squared(&mut a.clone(), &mut b.clone()).sqrt();
            let tol = 2.0 * f64::EPSILON * (10.0 + c.abs());
            assert!((w - c.abs()).abs() <= tol, "{w} vs {}", c.abs());
        }

        // Unequal sizes: W2^2(a, b + c) = W2^2(a, b) - 2 c (mean a - mean b) + c^2,
        // since shifting b shifts its quantile function by c.
        for &(n, m) in &[(3, 8), (17, 5), (40, 31)] {
            let a: Vec<f64> = (0..n).map(|_| r.random_range(-2.0..2.0)).collect();
            let b: Vec<f64> = (0..m).map(|_| r.random_range(-2.0..2.0)).collect();
            let c = 0.625;
            let bc: Vec<f64> = b.iter().map(|v| v + c).collect();
            let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
            let expected = w2_1d_squared(&mut a.clone(), &mut b.clone()) - 2.0 * c * (mean(&a) - mean(&b)) + c * c;
            let got = w2_1d_squared(&mut a.clone(), &mut bc.clone());
            assert!((got - expected).abs() <= 1e-13, "n={n} m={m}: {got} vs {expected}");
        }
    }

    #[test]
    #[should_panic(expected = "must be non-empty")]
    fn w2_1d_rejects_empty() {
        w2_1d_squared(&mut [], &mut [1.0]);
    }

    // ---------------------------------------------------------- random directions

    #[test]
    fn random_directions_are_unit_and_uniform() {
        let (p, d) = (20_000, 3);
        let dirs = random_directions(p, d, &mut rng(3));
        assert_eq!(dirs.dim(), (p, d));
        for u in dirs.rows() {
            let sq: f64 = u.iter().map(|v| v * v).sum();
            assert!((sq - 1.0).abs() <= 4.0 * f64::EPSILON);
        }
        // Same RNG state -> same directions.
        assert_eq!(dirs, random_directions(p, d, &mut rng(3)));
        // Uniform on S^2: u_1 is uniform on [-1, 1] (Archimedes), so
        // E[u_1] = 0 (var 1/3) and E[u_1^2] = 1/3 (var 1/5 - 1/9 = 4/45).
        // Check both within 5 standard errors (two-sided Gaussian tail 5.7e-7 each).
        for j in 0..d {
            let col = dirs.column(j);
            let m1 = col.sum() / p as f64;
            let m2 = col.iter().map(|v| v * v).sum::<f64>() / p as f64;
            assert!(m1.abs() <= 5.0 * (1.0 / 3.0 / p as f64).sqrt(), "E u_{j} = {m1}");
            assert!((m2 - 1.0 / 3.0).abs() <= 5.0 * (4.0 / 45.0 / p as f64).sqrt(), "E u_{j}^2 = {m2}");
        }
    }

    // ------------------------------------------------------------------ sliced W2

    #[test]
    fn sliced_w2_of_a_set_with_itself_is_zero() {
        let mut r = rng(4);
        let x = uniform_set(200, 3, 4.0, &mut r);
        assert_eq!(sliced_w2(x.view(), x.view(), 50, &mut r), 0.0);
        // Same empirical measure with a different size (every row twice): the
        // unequal-size path must also give exactly 0.
        let xx = ndarray::concatenate(Axis(0), &[x.view(), x.view()]).unwrap();
        assert_eq!(sliced_w2(x.view(), xx.view(), 50, &mut r), 0.0);
    }

    #[test]
    fn sliced_w2_of_a_translated_set() {
        let mut r = rng(5);
        let (n, d) = (300, 4);
        let x = uniform_set(n, d, 3.0, &mut r);
        let c = array![0.7, -1.2, 0.25, 2.0];
        let y = &x + &c;
        let dirs = random_directions(40, d, &mut r);
        let got = sliced_w2_with_directions(x.view(), y.view(), dirs.view());
        // Each projection is the 1-d set shifted by u.c, whose W2^2 is (u.c)^2, so
        // SW2 = sqrt(mean_k (u_k.c)^2) = |c| sqrt(mean_k (u_k.c_hat)^2).
        let c_norm = c.dot(&c).sqrt();
        let c_hat = &c / c_norm;
        let mean_sq = dirs.rows().into_iter().map(|u| u.dot(&c_hat).powi(2)).sum::<f64>() / 40.0;
        let expected = c_norm * mean_sq.sqrt();
        // Rounding: each projected value is off by at most ~(d + 1) eps times the
        // l1 size of the row (|x|_inf <= 3, so |x + c|_1 <= 4 * 3 + |c|_1), and both
        // W2 (sup-norm Lipschitz) and the root-mean-square over directions are
        // 1-Lipschitz, so the error is bounded by 2 (d + 1) eps (12 + |c|_1).
        let tol = 2.0 * (d as f64 + 1.0) * f64::EPSILON * (12.0 + c.iter().map(|v| v.abs()).sum::<f64>());
        assert!((got - expected).abs() <= tol, "{got} vs {expected} (tol {tol})");
    }

    #[test]
    fn sliced_w2_uses_the_rng_directions() {
        let mut r = rng(6);
        let x = uniform_set(50, 3, 1.0, &mut r);
        let y = uniform_set(70, 3, 1.0, &mut r);
        let a = sliced_w2(x.view(), y.view(), 16, &mut rng(7));
        let dirs = random_directions(16, 3, &mut rng(7));
        let b = sliced_w2_with_directions(x.view(), y.view(), dirs.view());
        assert_eq!(a.to_bits(), b.to_bits());
    }

    /// N(0, I) vs N(m, I) in d = 2: SW2^2 -> E_u[(u.m)^2] = |m|^2 / d.
    ///
    /// Error budget. Write y = m + z with z ~ N(0, I). For direction u_k with shift
    /// s_k = u_k.m, sorting commutes with the shift, so
    /// W2^2_k = E_k - 2 s_k u_k.delta + s_k^2, where E_k = W2^2 between the projected
    /// x and z sets and delta = mean(x) - mean(z) ~ N(0, (2/n) I). Hence
    ///   SW2^2 - |m|^2/d = [mean_k s_k^2 - |m|^2/d] - 2 m^T M delta + mean_k E_k,
    /// with M = mean_k u_k u_k^T ~ I/2.
    /// * directions: s_k^2 = |m|^2 cos^2(psi), psi uniform, Var cos^2 = 1/8,
    ///   so sd_1 = |m|^2 / sqrt(8 P);
    /// * sample means: sd_2 = 2 |M m| sqrt(2/n) ~ |m| sqrt(2/n);
    /// * bias: 0 <= E[E_k] = O(log log n / n) for Gaussians (empirical vs
    ///   empirical), measured ~1.4e-3 here; we allow 0.01.
    ///
    /// With m = (3, 4) (|m|^2/d = 12.5), n = 4000, P = 1000: sd_1 = 0.28,
    /// sd_2 = 0.11, sd = 0.30 (30 independent seeds gave an empirical sd of 0.25).
    /// The band is 5 sd + 0.01 = 1.52 (~12 % of the target); false-positive rate
    /// ~6e-7 under the CLT. A missing square, a 1/P or 1/d slip, or unnormalised
    /// directions move the value by >= 50 % and fail.
    #[test]
    fn sliced_w2_two_gaussians_converges() {
        let (n, p, d) = (4000, 1000, 2);
        let m = array![3.0, 4.0];
        let id = Array2::<f64>::eye(d);
        let mut r = rng(8);
        let x = gaussian_set(n, &Array1::zeros(d), &id, &mut r);
        let y = gaussian_set(n, &m, &id, &mut r);
        let sw2 = sliced_w2(x.view(), y.view(), p, &mut r).powi(2);
        let m2 = m.dot(&m);
        let target = m2 / d as f64;
        let sd1 = m2 / (8.0 * p as f64).sqrt();
        let sd2 = m2.sqrt() * (2.0 / n as f64).sqrt();
        let tol = 5.0 * (sd1 * sd1 + sd2 * sd2).sqrt() + 0.01;
        assert!((sw2 - target).abs() <= tol, "SW2^2 = {sw2}, target {target}, tol {tol}");
    }

    #[test]
    fn sliced_w2_thread_invariance() {
        let mut r = rng(9);
        let x = uniform_set(300, 5, 2.0, &mut r);
        let y = uniform_set(211, 5, 2.5, &mut r);
        let dirs = random_directions(97, 5, &mut r);
        let run = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| sliced_w2_with_directions(x.view(), y.view(), dirs.view()))
        };
        let one = run(1);
        assert!(one > 0.0);
        for threads in [2, 3, 4] {
            assert_eq!(one.to_bits(), run(threads).to_bits(), "{threads} threads");
        }
    }

    #[test]
    #[should_panic(expected = "different dimensions")]
    fn sliced_w2_rejects_dimension_mismatch() {
        let x = Array2::<f64>::zeros((4, 2));
        let y = Array2::<f64>::zeros((4, 3));
        sliced_w2(x.view(), y.view(), 4, &mut rng(0));
    }

    #[test]
    #[should_panic(expected = "not a unit vector")]
    fn sliced_w2_rejects_non_unit_directions() {
        let x = Array2::<f64>::zeros((4, 2));
        let dirs = array![[1.0, 1.0]];
        sliced_w2_with_directions(x.view(), x.view(), dirs.view());
    }

    #[test]
    #[should_panic(expected = "non-empty")]
    fn sliced_w2_rejects_empty_set() {
        let x = Array2::<f64>::zeros((0, 2));
        let y = Array2::<f64>::zeros((3, 2));
        sliced_w2(x.view(), y.view(), 4, &mut rng(0));
    }

    // ------------------------------------------------------------------- moments

    #[test]
    fn moments_hand_example() {
        // Rows (0,0), (2,0), (1,3): mean (1,1); centred (-1,-1), (1,-1), (0,2);
        // sum of outer products [[2,0],[0,6]], / (n-1) = 2 -> [[1,0],[0,3]].
        let x = array![[0.0, 0.0], [2.0, 0.0], [1.0, 3.0]];
        assert_eq!(sample_mean(x.view()), array![1.0, 1.0]);
        assert_eq!(sample_covariance(x.view()), array![[1.0, 0.0], [0.0, 3.0]]);
        // |(1,1) - (4,5)| = |(-3,-4)| = 5.
        assert_eq!(mean_error(x.view(), array![4.0, 5.0].view()), 5.0);
        // C = [[1,0],[0,4]]: ||cov - C||_F = 1, ||C||_F = sqrt(17).
        let e = covariance_error(x.view(), array![[1.0, 0.0], [0.0, 4.0]].view());
        assert!((e - 1.0 / 17f64.sqrt()).abs() <= 2.0 * f64::EPSILON, "{e}");
    }

    /// Sample of N(m, C) with C = L L^T, d = 3, n = 20000.
    ///
    /// * mean: mean(x) - m ~ N(0, C/n) exactly, so E|mean(x) - m|^2 = tr(C)/n; the
    ///   squared error is a weighted sum of chi^2_1 with weights summing to tr(C)/n,
    ///   and for thresholds above ~1.54 times the mean such a sum's tail is at most
    ///   that of a single chi^2_1 (Szekely & Bakirov 2003), so
    ///   P(|err| > k sqrt(tr C / n)) <= P(|Z| > k).
    /// * covariance: the entries of cov(x) - C are asymptotically Gaussian with
    ///   Var = (C_jj C_kk + C_jk^2)/(n-1) (Wishart), so
    ///   E||cov - C||_F^2 = ((tr C)^2 + ||C||_F^2)/(n-1) and the same argument bounds
    ///   the tail of the relative error at k standard errors by P(|Z| > k) (CLT).
    ///
    /// k = 5: false-positive rate <= 5.7e-7 for each check.
    #[test]
    fn moments_of_a_known_gaussian() {
        let n = 20_000;
        let m = array![1.0, -2.0, 0.5];
        let l = array![[1.0, 0.0, 0.0], [0.5, 2.0, 0.0], [-0.3, 0.4, 0.7]];
        let c = l.dot(&l.t());
        let x = gaussian_set(n, &m, &l, &mut rng(10));

        let k = 5.0;
        let tr = c.diag().sum();
        let fro = c.iter().map(|v| v * v).sum::<f64>().sqrt();
        let me = mean_error(x.view(), m.view());
        let me_bound = k * (tr / n as f64).sqrt();
        assert!(me <= me_bound, "mean error {me} > {me_bound}");
        let ce = covariance_error(x.view(), c.view());
        let ce_bound = k * ((tr * tr + fro * fro) / (n - 1) as f64).sqrt() / fro;
        assert!(ce <= ce_bound, "covariance error {ce} > {ce_bound}");

        // The estimators must also be sensitive: a mean shifted by 12 standard
        // errors, or a covariance scaled by 1.2, is detected.
        let shifted = &m + 12.0 * (tr / n as f64).sqrt() / 3f64.sqrt();
        assert!(mean_error(x.view(), shifted.view()) > me_bound);
        assert!(covariance_error(x.view(), (1.2 * &c).view()) > ce_bound);

        // Consistency with the direct formulas.
        let mean = sample_mean(x.view());
        let direct = (&mean - &m).mapv(|v| v * v).sum().sqrt();
        assert!((me - direct).abs() <= 1e-15);
        let cov = sample_covariance(x.view());
        assert_eq!(cov, cov.t());
        let mut naive = Array2::<f64>::zeros((3, 3));
        for row in x.rows() {
            let r = &row - &mean;
            for a in 0..3 {
                for b in 0..3 {
                    naive[[a, b]] += r[a] * r[b];
                }
            }
        }
        naive /= (n - 1) as f64;
        for (a, b) in cov.iter().zip(naive.iter()) {
            assert!((a - b).abs() <= 1e-12 * (1.0 + b.abs()));
        }
    }

    #[test]
    #[should_panic(expected = "at least 2 samples")]
    fn covariance_needs_two_samples() {
        let x = Array2::<f64>::zeros((1, 3));
        sample_covariance(x.view());
    }

    #[test]
    #[should_panic(expected = "at least 1 sample")]
    fn mean_needs_one_sample() {
        let x = Array2::<f64>::zeros((0, 3));
        sample_mean(x.view());
    }

    #[test]
    #[should_panic(expected = "exact mean has length")]
    fn mean_error_rejects_dimension_mismatch() {
        let x = Array2::<f64>::zeros((3, 3));
        mean_error(x.view(), array![0.0, 0.0].view());
    }

    #[test]
    #[should_panic(expected = "exact covariance has shape")]
    fn covariance_error_rejects_dimension_mismatch() {
        let x = Array2::<f64>::zeros((3, 3));
        covariance_error(x.view(), Array2::<f64>::eye(2).view());
    }

    #[test]
    #[should_panic(expected = "nonzero Frobenius norm")]
    fn covariance_error_rejects_zero_covariance() {
        let x = Array2::<f64>::zeros((3, 2));
        covariance_error(x.view(), Array2::<f64>::zeros((2, 2)).view());
    }

    // ------------------------------------------------------------------ proptest

    /// Three sample sets of sizes in 1..=9 in a common dimension 1..=4, values in
    /// [-10, 10], plus a seed and a count for the directions.
    fn three_sets() -> impl Strategy<Value = (Array2<f64>, Array2<f64>, Array2<f64>, u64, usize)> {
        (1usize..=4, 1usize..=9, 1usize..=9, 1usize..=9).prop_flat_map(|(d, n1, n2, n3)| {
            let set = move |n: usize| {
                prop::collection::vec(-10.0f64..10.0, n * d)
                    .prop_map(move |v| Array2::from_shape_vec((n, d), v).unwrap())
            };
            (set(n1), set(n2), set(n3), any::<u64>(), 1usize..=8)
        })
    }

    proptest! {
        #[test]
        fn sliced_w2_is_a_pseudometric((x, y, z, seed, p) in three_sets()) {
            let dirs = random_directions(p, x.ncols(), &mut rng(seed));
            let sw = |a: &Array2<f64>, b: &Array2<f64>| {
                sliced_w2_with_directions(a.view(), b.view(), dirs.view())
            };
            let (xy, yx, yz, xz) = (sw(&x, &y), sw(&y, &x), sw(&y, &z), sw(&x, &z));
            prop_assert_eq!(xy.to_bits(), yx.to_bits(), "symmetry");
            prop_assert!(xy >= 0.0 && yz >= 0.0 && xz >= 0.0);
            prop_assert_eq!(sw(&x, &x), 0.0);
            let rhs = xy + yz;
            prop_assert!(xz <= rhs + 1e-12 * rhs.max(1.0), "triangle: {} > {} + {}", xz, xy, yz);
        }
    }
}
