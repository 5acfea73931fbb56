//! Gaussian-mixture targets with exact scores at every noise level.
//!
//! Why this module exists: every sampler of the crate (reverse SDE, probability flow, DDIM-like
//! schemes, ...) needs a score `grad log p_t`, and a learned score mixes the sampler's error with
//! the network's. For a Gaussian mixture `p_0 = sum_k w_k N(mu_k, S_k)` the noised marginal of
//! `x_t = alpha x_0 + sigma eps` is again a Gaussian mixture, so its density, score, noise
//! prediction, Tweedie denoiser and score divergence are all known in closed form (MATH.md
//! section 4):
//!
//! ```text
//! p_t    = sum_k w_k N(alpha mu_k, C_k),        C_k = alpha^2 S_k + sigma^2 I
//! u_k(x) = -C_k^{-1} (x - alpha mu_k),          r_k(x) = w_k N(x; alpha mu_k, C_k) / p_t(x)
//! s      = sum_k r_k u_k                        eps = -sigma s
//! x0     = E[x_0 | x_t = x] = (x + sigma^2 s) / alpha = sum_k r_k (mu_k + alpha S_k C_k^{-1} (x - alpha mu_k))
//! div s  = -sum_k r_k tr(C_k^{-1}) + sum_k r_k |u_k|^2 - |s|^2
//! ```
//!
//! With the exact score any sampler can be run against a distribution known exactly, so its
//! discretisation error can be measured in isolation (samples vs. [`GaussianMixture::sample`],
//! moments vs. [`GaussianMixture::moments`], log-likelihoods vs. [`GaussianMixture::log_prob`]).
//!
//! # Numerics
//!
//! * Every covariance is stored through its eigendecomposition `S_k = Q_k diag(l_k) Q_k^T`
//!   (`Q_k = I` for diagonal and isotropic components, which take a fast path without rotation).
//!   For a given `(alpha, sigma)` the per-call setup computes `c_ki = alpha^2 l_ki + sigma^2`,
//!   `1 / c_ki` and `log det C_k = sum_i ln c_ki` once, and for full covariances the matrices
//!   `C_k^{-1} = Q_k diag(1 / c_k) Q_k^T` and `alpha S_k C_k^{-1}`; per row and component a
//!   full covariance then costs one d x d matrix-vector product `g_k = C_k^{-1} (x - alpha mu_k)`
//!   (the quadratic form is `(x - alpha mu_k) . g_k`), a diagonal one d products.
//! * Responsibilities are computed in log space with a log-sum-exp, so points far from every
//!   mode (`|x| ~ 1e3` and well beyond) give finite results; squares overflow only past
//!   `|x| ~ 1e150`.
//! * `eps` is computed as `sigma * sum_k r_k C_k^{-1} (x - alpha mu_k)` (not `-sigma * score`
//!   after a division), so `sigma = 0` gives exactly zero.
//! * `x0` is computed as the posterior mean `sum_k r_k (mu_k + alpha S_k C_k^{-1} (x - alpha mu_k))`,
//!   equal to Tweedie's `(x - sigma eps) / alpha` in exact arithmetic but free of the
//!   cancellation of that form for large `sigma / alpha`, and finite at `alpha = 0`
//!   (where it is the prior mean).
//! * The divergence uses `sum_k r_k |u_k|^2 - |s|^2 = sum_k r_k |u_k - s|^2`, which cannot
//!   cancel below zero.
//! * `alpha` and `sigma` may be any finite numbers with `alpha^2 l_ki + sigma^2 > 0`
//!   for all components, which holds whenever `sigma != 0` or `alpha != 0` (the covariances
//!   are positive definite); `alpha = 1, sigma = 0` (the data distribution itself) is allowed.
//!
//! # Panics
//!
//! Shape mismatches between `x` and the outputs (and `x` without `dim()` columns) are
//! programmer errors and panic, as do non-finite `alpha`/`sigma` and `alpha = sigma = 0`.
//!
//! Batches are `N x d` arrays, one sample per row. Rows go through a blocked kernel (module
//! `kernel`): blocks of rows in a component-major layout, a vectorisable `exp`
//! ([`crate::fastexp`]), chunks of rows in parallel with rayon, and copies compiled for AVX-512
//! and for AVX2 + FMA chosen at run time ([`GaussianMixture::kernel_path`]). Each row is computed independently
//! by a fixed sequence of operations, so results are bit-identical for any number of threads
//! and any chunking.

use nalgebra::DMatrix;
use ndarray::{Array1, Array2, ArrayView2, ArrayViewMut1, ArrayViewMut2};
use rand::distr::{Distribution, StandardUniform};
use rand::Rng;
use rand_distr::StandardNormal;

use crate::error::{Result, ScoreError};

mod json;
mod kernel;
mod rowmap;
#[cfg(target_arch = "x86_64")]
mod tiles;

use kernel::{Layout, Sink, Task};

/// Relative tolerance of the symmetry check of full covariances (relative to the largest
/// absolute entry of the matrix).
const SYMMETRY_RTOL: f64 = 1e-12;

/// Covariances of the mixture components.
#[derive(Debug, Clone, PartialEq)]
pub enum Covariance {
    /// `S_k = v_k I`: one variance per component (length K).
    Isotropic(Vec<f64>),
    /// `S_k = diag(v_k)`: one row of variances per component (K x d).
    Diagonal(Array2<f64>),
    /// General symmetric positive-definite `S_k` (K matrices of d x d).
    Full(Vec<Array2<f64>>),
}

/// A Gaussian mixture `p_0 = sum_k w_k N(mu_k, S_k)` and its exact noised marginals
/// `p_t = sum_k w_k N(alpha mu_k, alpha^2 S_k + sigma^2 I)` (MATH.md section 4).
///
/// See the [module documentation](self) for the formulas and numerical choices.
#[derive(Debug, Clone)]
pub struct GaussianMixture {
    /// Weights exactly as given (their sum is within 1e-9 of one).
    weights: Vec<f64>,
    /// `ln(w_k / sum_j w_j)`.
    log_weights: Vec<f64>,
    /// `w_k / sum_j w_j`.
    norm_weights: Vec<f64>,
    /// Cumulative normalised weights, for sampling.
    cum_weights: Vec<f64>,
    /// K x d, standard layout.
    means: Array2<f64>,
    /// The covariances as given (full matrices symmetrised).
    cov: Covariance,
    /// Eigenvalues `l_ki` of `S_k` (variances for diagonal/isotropic), K * d, row-major.
    lambda: Vec<f64>,
    /// Full only: `Q_k` row-major, K * d * d (columns are eigenvectors). Empty otherwise.
    q: Vec<f64>,
    /// Square roots for sampling: `sqrt(l_k)` (K * d) for diagonal/isotropic,
    /// `Q_k diag(sqrt(l_k))` row-major (K * d * d) for full.
    root: Vec<f64>,
    /// Whether components need a rotation (full covariances).
    full: bool,
}

/// Quantities that depend on `(alpha, sigma)` but not on `x`.
struct Frame {
    /// `1 / (alpha^2 l_ki + sigma^2)`, K * d.
    inv_c: Vec<f64>,
    /// `alpha mu_k`, K * d.
    amu: Vec<f64>,
    /// Diagonal only: `alpha mu` and `1 / c` transposed, d * K (coordinate i of every component
    /// together, as the mixing pass reads them; empty for full covariances).
    amu_t: Vec<f64>,
    inv_c_t: Vec<f64>,
    /// `alpha l_ki / (alpha^2 l_ki + sigma^2)`, K * d (posterior-mean gain).
    gain: Vec<f64>,
    /// `ln w_k - 1/2 log det C_k`, K.
    base: Vec<f64>,
    /// `tr C_k^{-1}`, K.
    trace: Vec<f64>,
    /// Full only: `C_k^{-1} = Q_k diag(1 / c_k) Q_k^T`, K * d * d row-major (empty otherwise).
    prec: Vec<f64>,
    /// Full only: `alpha S_k C_k^{-1} = Q_k diag(gain_k) Q_k^T`, K * d * d (empty otherwise).
    post: Vec<f64>,
}

impl GaussianMixture {
    /// Builds and validates a mixture.
    ///
    /// `weights` (length K >= 1) must be positive and finite and sum to one within 1e-9 (they
    /// are used normalised by their sum); `means` is K x d with d >= 1 and finite entries;
    /// `cov` gives K covariances: isotropic variances and diagonal entries must be positive and
    /// finite, full matrices finite, symmetric (within 1e-12 relative to their largest entry;
    /// they are then symmetrised) and numerically positive definite (smallest eigenvalue above
    /// `d * f64::EPSILON` times the largest). Each violation is reported by the matching
    /// [`ScoreError`] variant naming the field and the value.
    ///
    /// ```
    /// use ndarray::array;
    /// use scoresde::gmm::{Covariance, GaussianMixture};
    ///
    /// let gm = GaussianMixture::new(vec![0.5, 0.5], array![[-1.0, 0.0], [1.0, 0.0]], Covariance::Isotropic(vec![0.1, 0.1]))?;
    /// // At the midpoint the two components pull equally: the score is 0.
    /// let mut s = array![[0.0, 0.0]];
    /// gm.score(1.0, 0.0, array![[0.0, 0.0]].view(), s.view_mut());
    /// assert!(s.iter().all(|v| v.abs() < 1e-15));
    /// let err = GaussianMixture::new(vec![1.2, -0.2], array![[0.0], [1.0]], Covariance::Isotropic(vec![1.0, 1.0]));
    /// assert_eq!(err.unwrap_err().to_string(), "weights[1] = -0.2: must be positive and finite");
    /// # Ok::<(), scoresde::ScoreError>(())
    /// ```
    pub fn new(weights: Vec<f64>, means: Array2<f64>, cov: Covariance) -> Result<Self> {
        check_weights(&weights)?;
        let k = weights.len();
        if means.nrows() != k {
            return Err(mismatch("means rows", k, means.nrows()));
        }
        let d = means.ncols();
        if d == 0 {
            return Err(ScoreError::InvalidParameter {
                name: "means columns".into(),
                value: 0.0,
                expected: "at least 1 (dimension d >= 1)",
            });
        }
        let means = means.as_standard_layout().into_owned();
        check_finite("means", means.iter())?;

        let mut lambda = Vec::with_capacity(k * d);
        let mut q = Vec::new();
        let full;
        let cov = match cov {
            Covariance::Isotropic(v) => {
                full = false;
                if v.len() != k {
                    return Err(mismatch("variances length", k, v.len()));
                }
                check_finite("variances", v.iter())?;
                for (c, &vk) in v.iter().enumerate() {
                    if vk <= 0.0 {
                        return Err(not_pd("variances", c, vk));
                    }
                    lambda.extend(std::iter::repeat_n(vk, d));
                }
                Covariance::Isotropic(v)
            }
            Covariance::Diagonal(v) => {
                full = false;
                if v.nrows() != k {
                    return Err(mismatch("diag rows", k, v.nrows()));
                }
                if v.ncols() != d {
                    return Err(mismatch("diag columns", d, v.ncols()));
                }
                let v = v.as_standard_layout().into_owned();
                check_finite("diag", v.iter())?;
                for (c, row) in v.outer_iter().enumerate() {
                    let min = row.iter().copied().fold(f64::INFINITY, f64::min);
                    if min <= 0.0 {
                        return Err(not_pd("diag", c, min));
                    }
                    lambda.extend(row.iter().copied());
                }
                Covariance::Diagonal(v)
            }
            Covariance::Full(mats) => {
                full = true;
                if mats.len() != k {
                    return Err(mismatch("full length", k, mats.len()));
                }
                let mut sym = Vec::with_capacity(k);
                q.reserve(k * d * d);
                for (c, m) in mats.iter().enumerate() {
                    if m.nrows() != d {
                        return Err(mismatch(&format!("full[{c}] rows"), d, m.nrows()));
                    }
                    if m.ncols() != d {
                        return Err(mismatch(&format!("full[{c}] columns"), d, m.ncols()));
                    }
                    if let Some((i, &v)) = m.iter().enumerate().find(|(_, v)| !v.is_finite()) {
                        return Err(ScoreError::NonFiniteInput {
                            field: "full".into(),
                            index: c * d * d + i,
                            value: v,
                        });
                    }
                    let scale = m.iter().fold(0.0f64, |a, v| a.max(v.abs()));
                    for i in 0..d {
                        for j in (i + 1)..d {
                            let (a, b) = (m[[i, j]], m[[j, i]]);
                            if (a - b).abs() > SYMMETRY_RTOL * scale {
                                return Err(ScoreError::NotSymmetric { component: c, row: i, col: j, a, b });
                            }
                        }
                    }
                    // Exactly symmetric input is kept bit for bit.
                    let s = Array2::from_shape_fn((d, d), |(i, j)| {
                        let (a, b) = (m[[i, j]], m[[j, i]]);
                        if a == b {
                            a
                        } else {
                            0.5 * (a + b)
                        }
                    });
                    let eig = DMatrix::from_fn(d, d, |i, j| s[[i, j]]).symmetric_eigen();
                    let lmin = eig.eigenvalues.iter().copied().fold(f64::INFINITY, f64::min);
                    let lmax = eig.eigenvalues.iter().copied().fold(0.0f64, f64::max);
                    if lmin <= (d as f64) * f64::EPSILON * lmax {
                        return Err(not_pd("full", c, lmin));
                    }
                    lambda.extend(eig.eigenvalues.iter().copied());
                    for i in 0..d {
                        for j in 0..d {
                            q.push(eig.eigenvectors[(i, j)]);
                        }
                    }
                    sym.push(s);
                }
                Covariance::Full(sym)
            }
        };

        let root = if full {
            let mut root = Vec::with_capacity(k * d * d);
            for c in 0..k {
                let qc = &q[c * d * d..(c + 1) * d * d];
                let lc = &lambda[c * d..(c + 1) * d];
                for i in 0..d {
                    for j in 0..d {
                        root.push(qc[i * d + j] * lc[j].sqrt());
                    }
                }
            }
            root
        } else {
            lambda.iter().map(|l| l.sqrt()).collect()
        };

        let total: f64 = weights.iter().sum();
        let norm_weights: Vec<f64> = weights.iter().map(|w| w / total).collect();
        let log_weights = norm_weights.iter().map(|w| w.ln()).collect();
        let mut acc = 0.0;
        let cum_weights = norm_weights
            .iter()
            .map(|w| {
                acc += w;
                acc
            })
            .collect();

        Ok(GaussianMixture { weights, log_weights, norm_weights, cum_weights, means, cov, lambda, q, root, full })
    }

    /// Dimension d of the samples.
    pub fn dim(&self) -> usize {
        self.means.ncols()
    }

    /// Number K of components.
    pub fn n_components(&self) -> usize {
        self.weights.len()
    }

    /// The weights as given (they sum to one within 1e-9; computations use them normalised).
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    /// The means, K x d.
    pub fn means(&self) -> ArrayView2<'_, f64> {
        self.means.view()
    }

    /// The covariance model as stored (full matrices symmetrised).
    pub fn covariance(&self) -> &Covariance {
        &self.cov
    }

    /// Covariance `S_k` of component `k` as a d x d matrix. Panics if `k >= K`.
    pub fn component_covariance(&self, k: usize) -> Array2<f64> {
        assert!(k < self.n_components(), "component {k} out of range");
        let d = self.dim();
        match &self.cov {
            Covariance::Isotropic(v) => Array2::from_diag_elem(d, v[k]),
            Covariance::Diagonal(v) => Array2::from_diag(&v.row(k)),
            Covariance::Full(m) => m[k].clone(),
        }
    }

    /// `n` exact samples of `p_0`, one per row (see [`sample_into`](Self::sample_into) for the
    /// draw order).
    pub fn sample<R: Rng + ?Sized>(&self, n: usize, rng: &mut R) -> Array2<f64> {
        let mut out = Array2::zeros((n, self.dim()));
        self.sample_into(rng, out.view_mut());
        out
    }

    /// Fills every row of `out` (N x d) with an exact sample of `p_0`.
    ///
    /// Draw order, per row and row by row: one `u ~ U[0, 1)` (`StandardUniform` for `f64`)
    /// picks the first component `k` whose cumulative normalised weight exceeds `u`; then `d`
    /// standard normals `z_0, .., z_{d-1}` (`rand_distr::StandardNormal`) give
    /// `x = mu_k + L_k z` with `L_k = sqrt(v_k) I` (isotropic), `diag(sqrt(v_k))` (diagonal) or
    /// `Q_k diag(sqrt(l_k))` (full, from the eigendecomposition). The uniform is drawn even
    /// when K = 1. Sequential, since it consumes `rng`.
    pub fn sample_into<R: Rng + ?Sized>(&self, rng: &mut R, mut out: ArrayViewMut2<f64>) {
        let d = self.dim();
        assert_eq!(out.ncols(), d, "sample_into: output columns must equal dim");
        let last = self.n_components() - 1;
        let mut z = vec![0.0; d];
        for mut row in out.outer_iter_mut() {
            let u: f64 = StandardUniform.sample(rng);
            let k = self.cum_weights.iter().position(|&c| u < c).unwrap_or(last);
            for zi in z.iter_mut() {
                *zi = StandardNormal.sample(rng);
            }
            let mu = self.mean(k);
            if self.full {
                let l = &self.root[k * d * d..(k + 1) * d * d];
                for (i, o) in row.iter_mut().enumerate() {
                    let li = &l[i * d..(i + 1) * d];
                    *o = mu[i] + li.iter().zip(&z).map(|(a, b)| a * b).sum::<f64>();
                }
            } else {
                let l = &self.root[k * d..(k + 1) * d];
                for (i, o) in row.iter_mut().enumerate() {
                    *o = mu[i] + l[i] * z[i];
                }
            }
        }
    }

    /// Checks that the noised marginal at (`alpha`, `sigma`) is a proper Gaussian mixture that
    /// the kernel can evaluate: both finite and >= 0, and every `alpha^2 S_k + sigma^2 I` positive
    /// definite with finite entries (the evaluation methods assert this; callers with user input
    /// check first). The error names `alpha` or `sigma` and the value.
    pub fn check_level(&self, alpha: f64, sigma: f64) -> Result<()> {
        for (name, value) in [("alpha", alpha), ("sigma", sigma)] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(ScoreError::InvalidParameter {
                    name: name.into(),
                    value,
                    expected: "must be finite and >= 0",
                });
            }
        }
        let (a2, s2) = (alpha * alpha, sigma * sigma);
        if !(a2.is_finite() && s2.is_finite()) {
            let (name, value) = if a2.is_finite() { ("sigma", sigma) } else { ("alpha", alpha) };
            return Err(ScoreError::InvalidParameter {
                name: name.into(),
                value,
                expected: "its square overflows f64",
            });
        }
        if self.lambda.iter().any(|&l| !(a2 * l + s2 > 0.0 && (a2 * l + s2).is_finite())) {
            let (name, value) = if sigma == 0.0 { ("sigma", sigma) } else { ("alpha", alpha) };
            return Err(ScoreError::InvalidParameter {
                name: name.into(),
                value,
                expected: "alpha^2 S_k + sigma^2 I must be positive definite and finite for every component",
            });
        }
        Ok(())
    }

    /// Exact `log p_t(x)` per row of `x` (N x d), including the `2 pi` constants, into `out`
    /// (length N).
    pub fn log_prob(&self, alpha: f64, sigma: f64, x: ArrayView2<f64>, out: ArrayViewMut1<f64>) {
        assert_eq!(out.len(), x.nrows(), "log_prob: output length must equal rows of x");
        let shift = 0.5 * self.dim() as f64 * (2.0 * std::f64::consts::PI).ln();
        self.run(alpha, sigma, x, Task::LogSumExp { shift }, Sink::Values(out));
    }

    /// Exact score `grad_x log p_t(x)` per row of `x` (N x d) into `out` (N x d).
    pub fn score(&self, alpha: f64, sigma: f64, x: ArrayView2<f64>, out: ArrayViewMut2<f64>) {
        assert_eq!(out.dim(), x.dim(), "output shape must equal the shape of x");
        self.run(alpha, sigma, x, Task::Precision { scale: -1.0 }, Sink::Rows(out));
    }

    /// Exact noise prediction `E[eps | x_t = x] = -sigma * score`, computed as
    /// `sigma * sum_k r_k C_k^{-1} (x - alpha mu_k)` (exactly zero at `sigma = 0`).
    pub fn eps(&self, alpha: f64, sigma: f64, x: ArrayView2<f64>, out: ArrayViewMut2<f64>) {
        assert_eq!(out.dim(), x.dim(), "output shape must equal the shape of x");
        self.run(alpha, sigma, x, Task::Precision { scale: sigma }, Sink::Rows(out));
    }

    /// `a x + b eps(x)` per row (N x d) into `out`, with `eps` as in [`eps`](Self::eps): the affine
    /// maps of the probability-flow ODE and the reverse SDE's drift, fused into one pass over the
    /// batch. Bit for bit equal to `eps` followed by `a * x + b * eps` element by element.
    pub fn eps_affine(&self, alpha: f64, sigma: f64, x: ArrayView2<f64>, out: ArrayViewMut2<f64>, a: f64, b: f64) {
        assert_eq!(out.dim(), x.dim(), "output shape must equal the shape of x");
        self.run(alpha, sigma, x, Task::Affine { scale: sigma, a, b }, Sink::Rows(out));
    }

    /// The Euler update `x <- x + h (a x + b eps(x))` in place, fused into the kernel's output
    /// pass: bit for bit equal to [`eps_affine`](Self::eps_affine) into a buffer followed by
    /// `x += h f` element by element, with one pass over the batch instead of three. Returns
    /// whether every updated value is finite (tested as it is written).
    pub fn eps_affine_update(&self, alpha: f64, sigma: f64, x: ArrayViewMut2<f64>, a: f64, b: f64, h: f64) -> bool {
        self.check_x(x.view());
        let fr = self.frame(alpha, sigma);
        kernel::run_in_place(
            self,
            &fr,
            Task::AffineUpdate { scale: sigma, a, b, h },
            Sink::Update(x),
            Layout::for_mixture(self),
        )
    }

    /// Exact denoiser `E[x_0 | x_t = x]` (Tweedie: `(x - sigma eps) / alpha`), computed as the
    /// posterior mean `sum_k r_k (mu_k + alpha S_k C_k^{-1} (x - alpha mu_k))`, which stays
    /// accurate for large `sigma / alpha` and equals the prior mean at `alpha = 0`.
    pub fn x0(&self, alpha: f64, sigma: f64, x: ArrayView2<f64>, out: ArrayViewMut2<f64>) {
        assert_eq!(out.dim(), x.dim(), "output shape must equal the shape of x");
        self.run(alpha, sigma, x, Task::Posterior, Sink::Rows(out));
    }

    /// Exact score (into `score`, N x d) and its divergence `tr grad_x score` (into `div`,
    /// length N), computed as `sum_k r_k (|u_k - s|^2 - tr C_k^{-1})`.
    pub fn score_divergence(
        &self,
        alpha: f64,
        sigma: f64,
        x: ArrayView2<f64>,
        score: ArrayViewMut2<f64>,
        div: ArrayViewMut1<f64>,
    ) {
        assert_eq!(score.dim(), x.dim(), "score_divergence: score shape must equal x");
        assert_eq!(div.len(), x.nrows(), "score_divergence: div length must equal rows of x");
        self.run(alpha, sigma, x, Task::Divergence, Sink::RowsValues(score, div));
    }

    /// Exact mean and covariance of `p_t`:
    /// `alpha sum_k w_k mu_k` and
    /// `sum_k w_k (alpha^2 S_k + sigma^2 I) + alpha^2 sum_k w_k (mu_k - m)(mu_k - m)^T`
    /// with `m = sum_k w_k mu_k` (normalised weights).
    pub fn moments(&self, alpha: f64, sigma: f64) -> (Array1<f64>, Array2<f64>) {
        let d = self.dim();
        let mut m0 = Array1::<f64>::zeros(d);
        for (w, mu) in self.norm_weights.iter().zip(self.means.outer_iter()) {
            m0.scaled_add(*w, &mu);
        }
        let mut cov = Array2::<f64>::from_diag_elem(d, sigma * sigma);
        for (k, w) in self.norm_weights.iter().enumerate() {
            let dm = &self.means.row(k) - &m0;
            let s = self.component_covariance(k);
            for i in 0..d {
                for j in 0..d {
                    cov[[i, j]] += w * alpha * alpha * (s[[i, j]] + dm[i] * dm[j]);
                }
            }
        }
        (m0 * alpha, cov)
    }

    /// Index of the most responsible component `argmax_k r_k(x)` per row of `x` (first index
    /// on ties).
    pub fn most_responsible(&self, alpha: f64, sigma: f64, x: ArrayView2<f64>) -> Vec<usize> {
        let mut out = vec![0usize; x.nrows()];
        self.run(alpha, sigma, x, Task::Argmax, Sink::Indices(&mut out));
        out
    }

    /// Which copy of the mixture kernel this process runs: `"avx512"` or `"avx2+fma"` (x86-64
    /// CPUs with those features) or `"portable"` ([`crate::fastexp::simd_path`], which also says
    /// how to force one). Results are bit-identical for any thread count within one copy; the
    /// two fused copies give the same bits, the portable one differs in the last bits.
    pub fn kernel_path() -> &'static str {
        kernel::path()
    }

    // ---------------------------------------------------------------- internals

    fn mean(&self, k: usize) -> &[f64] {
        let d = self.dim();
        &self.means.as_slice().expect("means are stored in standard layout")[k * d..(k + 1) * d]
    }

    fn check_x(&self, x: ArrayView2<f64>) {
        assert_eq!(x.ncols(), self.dim(), "x must have dim() columns");
    }

    fn frame(&self, alpha: f64, sigma: f64) -> Frame {
        assert!(alpha.is_finite() && sigma.is_finite(), "alpha = {alpha}, sigma = {sigma}: must be finite");
        let (a2, s2) = (alpha * alpha, sigma * sigma);
        let (k, d) = (self.n_components(), self.dim());
        let mut inv_c = Vec::with_capacity(k * d);
        let mut gain = Vec::with_capacity(k * d);
        let mut base = Vec::with_capacity(k);
        let mut trace = Vec::with_capacity(k);
        for (lk, lw) in self.lambda.chunks_exact(d).zip(&self.log_weights) {
            let mut logdet = 0.0;
            let mut tr = 0.0;
            for &l in lk {
                let c = a2 * l + s2;
                assert!(
                    c > 0.0 && c.is_finite(),
                    "alpha = {alpha}, sigma = {sigma}: alpha^2 S + sigma^2 I is not positive \
                     definite and finite"
                );
                let ic = 1.0 / c;
                logdet += c.ln();
                tr += ic;
                inv_c.push(ic);
                gain.push(alpha * l * ic);
            }
            base.push(lw - 0.5 * logdet);
            trace.push(tr);
        }
        let (prec, post) =
            if self.full { (self.rotate_back(&inv_c), self.rotate_back(&gain)) } else { (Vec::new(), Vec::new()) };
        let amu: Vec<f64> = self.means.iter().map(|m| alpha * m).collect();
        let transpose = |v: &[f64]| {
            if self.full {
                Vec::new()
            } else {
                (0..d * k).map(|at| v[(at % k) * d + at / k]).collect()
            }
        };
        let (amu_t, inv_c_t) = (transpose(&amu), transpose(&inv_c));
        Frame { amu, amu_t, inv_c_t, inv_c, gain, base, trace, prec, post }
    }

    /// Full only: `Q_k diag(v_k) Q_k^T` for each component, K * d * d row-major.
    fn rotate_back(&self, v: &[f64]) -> Vec<f64> {
        let d = self.dim();
        let mut out = Vec::with_capacity(self.n_components() * d * d);
        for (qk, vk) in self.q.chunks_exact(d * d).zip(v.chunks_exact(d)) {
            for i in 0..d {
                for j in 0..d {
                    out.push((0..d).map(|m| qk[i * d + m] * vk[m] * qk[j * d + m]).sum::<f64>());
                }
            }
        }
        out
    }

    /// Checks the shapes and runs the blocked kernel with the default layout.
    fn run(&self, alpha: f64, sigma: f64, x: ArrayView2<f64>, task: Task, sink: Sink) {
        self.run_with(alpha, sigma, x, task, sink, Layout::for_mixture(self));
    }

    fn run_with(&self, alpha: f64, sigma: f64, x: ArrayView2<f64>, task: Task, sink: Sink, layout: Layout) {
        self.check_x(x);
        let fr = self.frame(alpha, sigma);
        kernel::run(self, &fr, task, x, sink, layout);
    }
}

// -------------------------------------------------------------------- validation helpers

fn mismatch(what: &str, expected: usize, found: usize) -> ScoreError {
    ScoreError::DimensionMismatch { what: what.into(), expected, found }
}

fn not_pd(field: &'static str, component: usize, min_eigenvalue: f64) -> ScoreError {
    ScoreError::NotPositiveDefinite { field, component, min_eigenvalue }
}

fn check_finite<'a>(field: &str, values: impl Iterator<Item = &'a f64>) -> Result<()> {
    for (index, &value) in values.enumerate() {
        if !value.is_finite() {
            return Err(ScoreError::NonFiniteInput { field: field.into(), index, value });
        }
    }
    Ok(())
}

fn check_weights(weights: &[f64]) -> Result<()> {
    if weights.is_empty() {
        return Err(ScoreError::InvalidParameter {
            name: "weights length".into(),
            value: 0.0,
            expected: "at least one component",
        });
    }
    for (index, &value) in weights.iter().enumerate() {
        if value <= 0.0 || !value.is_finite() {
            return Err(ScoreError::InvalidWeight { index, value });
        }
    }
    let sum: f64 = weights.iter().sum();
    if (sum - 1.0).abs() > 1e-9 {
        return Err(ScoreError::WeightsDoNotSumToOne { sum });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
