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
//! ([`crate::fastexp`]), chunks of rows in parallel with rayon, and a copy compiled for AVX2 and
//! FMA chosen at run time ([`GaussianMixture::kernel_path`]). Each row is computed independently
//! by a fixed sequence of operations, so results are bit-identical for any number of threads
//! and any chunking.

use std::path::Path;

use nalgebra::DMatrix;
use ndarray::{Array1, Array2, ArrayView2, ArrayViewMut1, ArrayViewMut2};
use rand::distr::{Distribution, StandardUniform};
use rand::Rng;
use rand_distr::StandardNormal;
use serde_json::{Map, Value};

use crate::error::{Result, ScoreError};

mod kernel;
#[cfg(target_arch = "x86_64")]
mod tiles;

use kernel::{Layout, Sink, Task};

/// Relative tolerance of the symmetry check of full covariances (relative to the largest
/// absolute entry of the matrix).
const SYMMETRY_RTOL: f64 = 1e-12;

/// Tag put in front of number tokens so that they reach us as strings and can be parsed with
/// correct rounding (serde_json's default float parser may be off by one ulp).
const NUMBER_TAG: char = '\u{1}';

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

    /// Parses a mixture from JSON:
    /// `{"weights": [..K], "means": [[..d]..K]}` plus exactly one of
    /// `"variances": [..K]`, `"diag": [[..d]..K]`, `"full": [[[..d]..d]..K]`.
    ///
    /// Numbers are parsed with correct rounding (so [`to_json_string`](Self::to_json_string)
    /// round-trips bit for bit); numbers too large for `f64` become infinite and are reported as
    /// [`ScoreError::NonFiniteInput`]. Malformed JSON, wrong types, missing, unknown or
    /// conflicting keys give [`ScoreError::Target`] naming the key; shapes and values are
    /// validated as in [`new`](Self::new), with shape errors named after the JSON path
    /// (`means[2] length`, `diag[1] length`, `variances length`, `full[0] rows`, ...).
    pub fn from_json_str(s: &str) -> Result<Self> {
        let value: Value = serde_json::from_str(&tag_numbers(s)?).map_err(|tagged| {
            // Report the error as serde_json finds it in the text as written, whose line and
            // column numbers are those the user sees (the tagged text is only a fallback).
            let e = serde_json::from_str::<Value>(s).err().unwrap_or(tagged);
            ScoreError::Target(format!("invalid JSON: {e}"))
        })?;
        let obj = value.as_object().ok_or_else(|| {
            ScoreError::Target(format!(
                "top level must be an object with keys weights, means and one of variances, \
                 diag, full; found {}",
                show(&value)
            ))
        })?;
        const KNOWN: [&str; 5] = ["weights", "means", "variances", "diag", "full"];
        if let Some(key) = obj.keys().find(|key| !KNOWN.contains(&key.as_str())) {
            return Err(ScoreError::Target(format!(
                "unknown key \"{key}\" (allowed: weights, means, and one of variances, diag, full)"
            )));
        }
        let weights = json_vector(required(obj, "weights")?, "weights")?;
        check_weights(&weights)?;
        let k = weights.len();

        let means = json_matrix(required(obj, "means")?, "means")?;
        if means.len() != k {
            return Err(mismatch("means length", k, means.len()));
        }
        let d = means[0].len();
        if d == 0 {
            return Err(ScoreError::InvalidParameter {
                name: "means[0] length".into(),
                value: 0.0,
                expected: "at least 1 (dimension d >= 1)",
            });
        }
        check_rows(&means, "means", d)?;
        let means = to_array2(&means, d);

        let present: Vec<&str> =
            ["variances", "diag", "full"].into_iter().filter(|key| obj.contains_key(*key)).collect();
        let cov = match present.as_slice() {
            [] => {
                return Err(ScoreError::Target(
                    "missing covariance: need exactly one of the keys \"variances\", \"diag\", \
                     \"full\""
                        .into(),
                ))
            }
            ["variances"] => {
                let v = json_vector(&obj["variances"], "variances")?;
                if v.len() != k {
                    return Err(mismatch("variances length", k, v.len()));
                }
                Covariance::Isotropic(v)
            }
            ["diag"] => {
                let v = json_matrix(&obj["diag"], "diag")?;
                if v.len() != k {
                    return Err(mismatch("diag length", k, v.len()));
                }
                check_rows(&v, "diag", d)?;
                Covariance::Diagonal(to_array2(&v, d))
            }
            ["full"] => {
                let list = json_array(&obj["full"], "full")?;
                if list.len() != k {
                    return Err(mismatch("full length", k, list.len()));
                }
                let mut mats = Vec::with_capacity(k);
                for (c, m) in list.iter().enumerate() {
                    let field = format!("full[{c}]");
                    let rows = json_matrix(m, &field)?;
                    if rows.len() != d {
                        return Err(mismatch(&format!("{field} rows"), d, rows.len()));
                    }
                    check_rows(&rows, &field, d)?;
                    mats.push(to_array2(&rows, d));
                }
                Covariance::Full(mats)
            }
            more => {
                return Err(ScoreError::Target(format!(
                    "more than one covariance key ({}): need exactly one of \"variances\", \
                     \"diag\", \"full\"",
                    more.join(", ")
                )))
            }
        };
        Self::new(weights, means, cov)
    }

    /// Reads a mixture from a JSON file (format of [`from_json_str`](Self::from_json_str)).
    ///
    /// I/O failures give [`ScoreError::Io`] naming the path; [`ScoreError::Target`] messages
    /// are prefixed with the path.
    pub fn from_json_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ScoreError::Io { path: path.display().to_string(), source })?;
        Self::from_json_str(&text).map_err(|e| match e {
            ScoreError::Target(msg) => ScoreError::Target(format!("{}: {msg}", path.display())),
            other => other,
        })
    }

    /// Serialises the mixture as pretty-printed JSON that
    /// [`from_json_str`](Self::from_json_str) reads back bit for bit.
    pub fn to_json_string(&self) -> String {
        let mut obj = Map::new();
        obj.insert("weights".into(), Value::from(self.weights.clone()));
        obj.insert("means".into(), matrix_value(self.means.view()));
        let (key, value) = match &self.cov {
            Covariance::Isotropic(v) => ("variances", Value::from(v.clone())),
            Covariance::Diagonal(v) => ("diag", matrix_value(v.view())),
            Covariance::Full(m) => ("full", Value::Array(m.iter().map(|m| matrix_value(m.view())).collect())),
        };
        obj.insert(key.into(), value);
        serde_json::to_string_pretty(&Value::Object(obj)).expect("finite numbers always serialise")
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

    /// Which copy of the mixture kernel this process runs: `"avx2+fma"` (x86-64 CPUs with both
    /// features, unless the environment variable `SCORESDE_PORTABLE_KERNEL` is set) or
    /// `"portable"`. Results are bit-identical for any thread count within one copy; the two
    /// copies differ in the last bits (fused multiply-adds).
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

// -------------------------------------------------------------------- JSON helpers

/// Wraps every number token outside strings into a string starting with [`NUMBER_TAG`], after
/// checking it against the JSON number grammar.
fn tag_numbers(s: &str) -> Result<String> {
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len() + s.len() / 2);
    let mut copied = 0;
    let mut i = 0;
    let mut in_string = false;
    while i < bytes.len() {
        let c = bytes[i];
        if in_string {
            match c {
                b'\\' => i += 2,
                b'"' => {
                    in_string = false;
                    i += 1;
                }
                _ => i += 1,
            }
            continue;
        }
        if c == b'"' {
            in_string = true;
            i += 1;
            continue;
        }
        if c == b'-' || c.is_ascii_digit() {
            let start = i;
            while i < bytes.len() && matches!(bytes[i], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') {
                i += 1;
            }
            let token = &s[start..i];
            if !is_json_number(token) {
                let line = s[..start].matches('\n').count() + 1;
                let column = start - s[..start].rfind('\n').map_or(0, |p| p + 1) + 1;
                return Err(ScoreError::Target(format!("invalid JSON number {token} at line {line} column {column}")));
            }
            out.push_str(&s[copied..start]);
            out.push_str("\"\\u0001");
            out.push_str(token);
            out.push('"');
            copied = i;
            continue;
        }
        i += 1;
    }
    out.push_str(&s[copied..]);
    Ok(out)
}

/// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
fn is_json_number(t: &str) -> bool {
    let b = t.as_bytes();
    let mut i = 0;
    let digits = |i: &mut usize| {
        let s = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - s
    };
    if b.first() == Some(&b'-') {
        i += 1;
    }
    let start = i;
    let n = digits(&mut i);
    if n == 0 || (n > 1 && b[start] == b'0') {
        return false;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// A value as the user wrote it (tagged numbers shown as numbers), shortened.
fn show(v: &Value) -> String {
    let text = match v {
        Value::String(s) if s.starts_with(NUMBER_TAG) => s[NUMBER_TAG.len_utf8()..].to_string(),
        Value::String(_) => v.to_string(),
        Value::Array(a) => format!("an array of length {}", a.len()),
        Value::Object(_) => "an object".to_string(),
        other => other.to_string(),
    };
    if text.chars().count() > 40 {
        format!("{}...", text.chars().take(40).collect::<String>())
    } else {
        text
    }
}

fn required<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<&'a Value> {
    obj.get(key).ok_or_else(|| ScoreError::Target(format!("missing key \"{key}\"")))
}

fn json_number(v: &Value, field: &str) -> Result<f64> {
    match v {
        Value::String(s) if s.starts_with(NUMBER_TAG) => {
            s[NUMBER_TAG.len_utf8()..].parse::<f64>().map_err(|e| ScoreError::Target(format!("{field}: {e}")))
        }
        other => Err(ScoreError::Target(format!("{field}: expected a number, found {}", show(other)))),
    }
}

fn json_array<'a>(v: &'a Value, field: &str) -> Result<&'a Vec<Value>> {
    v.as_array().ok_or_else(|| ScoreError::Target(format!("{field}: expected an array, found {}", show(v))))
}

fn json_vector(v: &Value, field: &str) -> Result<Vec<f64>> {
    json_array(v, field)?.iter().enumerate().map(|(i, x)| json_number(x, &format!("{field}[{i}]"))).collect()
}

fn json_matrix(v: &Value, field: &str) -> Result<Vec<Vec<f64>>> {
    json_array(v, field)?.iter().enumerate().map(|(i, row)| json_vector(row, &format!("{field}[{i}]"))).collect()
}

fn check_rows(rows: &[Vec<f64>], field: &str, d: usize) -> Result<()> {
    for (i, row) in rows.iter().enumerate() {
        if row.len() != d {
            return Err(mismatch(&format!("{field}[{i}] length"), d, row.len()));
        }
    }
    Ok(())
}

fn to_array2(rows: &[Vec<f64>], d: usize) -> Array2<f64> {
    Array2::from_shape_fn((rows.len(), d), |(i, j)| rows[i][j])
}

fn matrix_value(m: ArrayView2<f64>) -> Value {
    Value::Array(m.outer_iter().map(|row| Value::from(row.to_vec())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
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
            .map(|j| {
                s * (0..k).map(|c| e[c] / tot * (x[j] - a * mu[[c, j]]) / (a * a * v[[c, j]] + s * s)).sum::<f64>()
            })
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
        let one =
            GaussianMixture::new(vec![1.0], array![[1.0, -2.0]], Covariance::Diagonal(array![[4.0, 0.25]])).unwrap();
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
        let gm = GaussianMixture::new(vec![0.25, 0.75], array![[-1.0], [2.0]], Covariance::Isotropic(vec![0.5, 2.0]))
            .unwrap();
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

        let e = err_of(r#"{"weights":[1],"means":[[0, 1e400]],"variances":[1]}"#);
        assert!(matches!(e, E::NonFiniteInput { index: 1, .. }));
        assert_msg(&e, &["means[1]", "inf"]);

        let e = err_of(r#"{"weights":[0.5,0.5],"means":[[0,0],[1,1]],"diag":[[1,1],[1,1e999]]}"#);
        assert_msg(&e, &["diag[3]", "inf"]);

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
            (
                r#"{"weights":[1],"means":[[0]],"variances":[1],"diag":[[1]]}"#,
                &["more than one", "diag", "variances"][..],
            ),
            (r#"{"weights":[1],"means":[[0]],"variances":[1],"colour":"red"}"#, &["unknown key", "colour"][..]),
            (r#"{"weights":["abc"],"means":[[0]],"variances":[1]}"#, &["weights[0]", "\"abc\""][..]),
            (r#"{"weights":[1],"means":[0],"variances":[1]}"#, &["means[0]", "expected an array", "0"][..]),
            (r#"{"weights":1,"means":[[0]],"variances":[1]}"#, &["weights", "expected an array", "1"][..]),
            (r#"{"weights":[1],"means":[[01]],"variances":[1]}"#, &["invalid JSON number 01", "line 1 column 26"][..]),
            (
                "{\"weights\":[1],\n \"means\":[[-]],\"variances\":[1]}",
                &["invalid JSON number -", "line 2 column 12"][..],
            ),
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
        let e = GaussianMixture::new(vec![1.0], array![[0.0, 1.0]], Covariance::Diagonal(array![[1.0, 1.0, 1.0]]))
            .unwrap_err();
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

    fn all_outputs(gm: &GaussianMixture, x: ArrayView2<f64>, a: f64, s: f64, layout: Layout, avx2: bool) -> Outputs {
        let fr = gm.frame(a, s);
        let mut sc = Array2::zeros(x.dim());
        let mut ep = Array2::zeros(x.dim());
        let mut x0 = Array2::zeros(x.dim());
        let mut lp = Array1::zeros(x.nrows());
        let mut sd = Array2::zeros(x.dim());
        let mut dv = Array1::zeros(x.nrows());
        let mut best = vec![0; x.nrows()];
        kernel::run_on(gm, &fr, Task::Precision { scale: -1.0 }, Some(x), Sink::Rows(sc.view_mut()), layout, avx2);
        kernel::run_on(gm, &fr, Task::Precision { scale: s }, Some(x), Sink::Rows(ep.view_mut()), layout, avx2);
        kernel::run_on(gm, &fr, Task::Posterior, Some(x), Sink::Rows(x0.view_mut()), layout, avx2);
        kernel::run_on(gm, &fr, Task::LogSumExp { shift: 0.0 }, Some(x), Sink::Values(lp.view_mut()), layout, avx2);
        let sink = Sink::RowsValues(sd.view_mut(), dv.view_mut());
        kernel::run_on(gm, &fr, Task::Divergence, Some(x), sink, layout, avx2);
        kernel::run_on(gm, &fr, Task::Argmax, Some(x), Sink::Indices(&mut best), layout, avx2);
        let mut up = x.to_owned();
        let step = Task::AffineUpdate { scale: s, a: -0.3, b: 1.7, h: 0.05 };
        kernel::run_on(gm, &fr, step, None, Sink::Update(up.view_mut()), layout, avx2);
        let bits = |a: &[f64]| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        let flat = |a: Array2<f64>| bits(&a.into_raw_vec_and_offset().0);
        (
            flat(sc),
            flat(ep),
            flat(x0),
            bits(lp.as_slice().unwrap()),
            flat(sd),
            bits(dv.as_slice().unwrap()),
            best,
            flat(up),
        )
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
        let avx2 = kernel::path() == "avx2+fma";
        let x = points(1037, 3, 2.0, 18);
        let layouts = [(1, 1), (7, 3), (100, 16), (1037, 256), (513, 200), (2000, 40)];
        for (name, gm) in mixtures() {
            for copy in [false, avx2] {
                let reference = all_outputs(&gm, x.view(), 0.7, 0.5, Layout::for_mixture(&gm), copy);
                for (chunk, block) in layouts {
                    let got = all_outputs(&gm, x.view(), 0.7, 0.5, Layout { chunk, block }, copy);
                    assert!(got == reference, "{name} avx2={copy}: chunk {chunk} block {block} changes the bits");
                }
                let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
                let threaded = pool.install(|| all_outputs(&gm, x.view(), 0.7, 0.5, Layout::for_mixture(&gm), copy));
                assert!(threaded == reference, "{name}: 3 threads change the bits");
            }
        }
    }

    // The two copies evaluate the same formulas with and without fused multiply-adds: they agree
    // to rounding (a few ulps of the terms, amplified at most by the softmax).
    #[test]
    fn portable_and_avx2_copies_agree() {
        if kernel::path() != "avx2+fma" {
            return;
        }
        let x = points(300, 3, 2.0, 19);
        for (name, gm) in mixtures() {
            for &(a, s) in &SCHEDULES {
                let layout = Layout::for_mixture(&gm);
                let p = all_outputs(&gm, x.view(), a, s, layout, false);
                let v = all_outputs(&gm, x.view(), a, s, layout, true);
                let close = |u: &[u64], w: &[u64], what: &str| {
                    for (n, (&u, &w)) in u.iter().zip(w).enumerate() {
                        let (u, w) = (f64::from_bits(u), f64::from_bits(w));
                        let scale = 1.0 + u.abs().max(w.abs());
                        assert!((u - w).abs() <= 1e-12 * scale, "{name} a={a} s={s} {what}[{n}]: {u} vs {w}");
                    }
                };
                close(&p.0, &v.0, "score");
                close(&p.2, &v.2, "x0");
                close(&p.3, &v.3, "log_prob");
                close(&p.5, &v.5, "divergence");
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
}
