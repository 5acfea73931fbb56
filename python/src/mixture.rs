//! `scoresde.GaussianMixture`: the exact target, its noised marginals and their scores, on
//! (N, d) float64 arrays, with the GIL released while the kernel runs.

use ndarray::{Array1, Array2, Array3, Ix1, Ix2, Ix3};
use numpy::{IntoPyArray, PyArray1, PyArray2, PyArray3};
use pyo3::prelude::*;
use rand::SeedableRng;
use rand_pcg::Pcg64;
use scoresde::gaussian::{w2_gaussian, GaussianLaw};
use scoresde::gmm::{Covariance, GaussianMixture};

use crate::arrays::{f64_array, value_error};

/// A Gaussian mixture p_0 = sum_k w_k N(mu_k, S_k) and its exact noised marginals
/// p_t = sum_k w_k N(alpha mu_k, alpha^2 S_k + sigma^2 I).
///
/// GaussianMixture(weights, means, *, variances=None, diag=None, full=None): weights (K,),
/// means (K, d) and exactly one covariance: variances (K,) for v_k I, diag (K, d) for diag(v_k),
/// full (K, d, d). Invalid input raises ValueError naming the field and the value.
#[pyclass(name = "GaussianMixture", module = "scoresde", frozen)]
#[derive(Clone)]
pub struct PyMixture {
    pub inner: GaussianMixture,
}

type Out2<'py> = PyResult<Bound<'py, PyArray2<f64>>>;
/// A mean vector and a covariance matrix.
type Law<'py> = PyResult<(Bound<'py, PyArray1<f64>>, Bound<'py, PyArray2<f64>>)>;

impl PyMixture {
    /// `x` as (N, d) rows of this mixture's dimension.
    fn rows(&self, x: &Bound<'_, PyAny>, field: &str) -> PyResult<Array2<f64>> {
        let x: Array2<f64> = f64_array::<Ix2>(x, field)?;
        if x.ncols() != self.inner.dim() {
            return Err(value_error(format!(
                "{field}: shape ({}, {}) but the target has dimension {}",
                x.nrows(),
                x.ncols(),
                self.inner.dim()
            )));
        }
        Ok(x)
    }

    /// Runs `f(target, alpha, sigma, x, out)` on a fresh (N, d) output without the GIL; `field`
    /// names `x` in errors.
    fn rowwise<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        field: &str,
        alpha: f64,
        sigma: f64,
        f: fn(&GaussianMixture, f64, f64, ndarray::ArrayView2<f64>, ndarray::ArrayViewMut2<f64>),
    ) -> Out2<'py> {
        self.inner.check_level(alpha, sigma).map_err(value_error)?;
        let x = self.rows(x, field)?;
        let target = &self.inner;
        let out = py.detach(|| {
            let mut out = Array2::zeros(x.dim());
            f(target, alpha, sigma, x.view(), out.view_mut());
            out
        });
        Ok(out.into_pyarray(py))
    }
}

#[pymethods]
impl PyMixture {
    #[new]
    #[pyo3(signature = (weights, means, *, variances=None, diag=None, full=None))]
    fn new(
        weights: &Bound<'_, PyAny>,
        means: &Bound<'_, PyAny>,
        variances: Option<&Bound<'_, PyAny>>,
        diag: Option<&Bound<'_, PyAny>>,
        full: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let weights = f64_array::<Ix1>(weights, "weights")?.to_vec();
        let means = f64_array::<Ix2>(means, "means")?;
        let cov = match (variances, diag, full) {
            (Some(v), None, None) => Covariance::Isotropic(f64_array::<Ix1>(v, "variances")?.to_vec()),
            (None, Some(v), None) => Covariance::Diagonal(f64_array::<Ix2>(v, "diag")?),
            (None, None, Some(v)) => {
                let v: Array3<f64> = f64_array::<Ix3>(v, "full")?;
                Covariance::Full(v.outer_iter().map(|m| m.to_owned()).collect())
            }
            (None, None, None) => {
                return Err(value_error(
                    "target: missing covariance: need exactly one of the keywords variances, diag, full",
                ))
            }
            _ => {
                return Err(value_error(
                    "target: more than one covariance keyword: need exactly one of variances, diag, full",
                ))
            }
        };
        Ok(Self { inner: GaussianMixture::new(weights, means, cov).map_err(value_error)? })
    }

    /// Reads a mixture from a JSON file {"weights", "means", and one of "variances" | "diag" |
    /// "full"} (the command line's --target file).
    #[staticmethod]
    fn from_json(path: std::path::PathBuf) -> PyResult<Self> {
        Ok(Self { inner: GaussianMixture::from_json_file(&path).map_err(value_error)? })
    }

    /// Parses a mixture from JSON text (the format of from_json).
    #[staticmethod]
    fn from_json_str(text: &str) -> PyResult<Self> {
        Ok(Self { inner: GaussianMixture::from_json_str(text).map_err(value_error)? })
    }

    /// The mixture as JSON text that from_json_str reads back bit for bit.
    fn to_json(&self) -> String {
        self.inner.to_json_string()
    }

    /// Dimension d.
    #[getter]
    fn dim(&self) -> usize {
        self.inner.dim()
    }

    /// Number of components K.
    #[getter]
    fn n_components(&self) -> usize {
        self.inner.n_components()
    }

    /// The weights as given, (K,).
    #[getter]
    fn weights<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        Array1::from(self.inner.weights().to_vec()).into_pyarray(py)
    }

    /// The means, (K, d).
    #[getter]
    fn means<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray2<f64>> {
        self.inner.means().to_owned().into_pyarray(py)
    }

    /// The component covariances S_k, (K, d, d).
    #[getter]
    fn covariances<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray3<f64>> {
        let (k, d) = (self.inner.n_components(), self.inner.dim());
        let mut out = Array3::zeros((k, d, d));
        for c in 0..k {
            out.index_axis_mut(ndarray::Axis(0), c).assign(&self.inner.component_covariance(c));
        }
        out.into_pyarray(py)
    }

    /// The exact noise prediction E[eps | x_t = x] at x_t = alpha x_0 + sigma eps, (N, d).
    fn eps<'py>(&self, py: Python<'py>, x: &Bound<'py, PyAny>, alpha: f64, sigma: f64) -> Out2<'py> {
        self.rowwise(py, x, "x", alpha, sigma, GaussianMixture::eps)
    }

    /// The exact score grad_x log p_t(x), (N, d).
    fn score<'py>(&self, py: Python<'py>, x: &Bound<'py, PyAny>, alpha: f64, sigma: f64) -> Out2<'py> {
        self.rowwise(py, x, "x", alpha, sigma, GaussianMixture::score)
    }

    /// The exact denoiser E[x_0 | x_t = x], (N, d).
    fn x0<'py>(&self, py: Python<'py>, x: &Bound<'py, PyAny>, alpha: f64, sigma: f64) -> Out2<'py> {
        self.rowwise(py, x, "x", alpha, sigma, GaussianMixture::x0)
    }

    /// k-diffusion's denoiser D(x~, sigma~) = E[x_0 | x_0 + sigma~ eps = x~], (N, d): the
    /// convention of k-diffusion's and EDM's samplers (x~ = x / alpha, sigma~ = sigma / alpha).
    fn denoiser<'py>(&self, py: Python<'py>, x_tilde: &Bound<'py, PyAny>, sigma_tilde: f64) -> Out2<'py> {
        self.rowwise(py, x_tilde, "x_tilde", 1.0, sigma_tilde, GaussianMixture::x0)
    }

    /// The exact log-density log p_t(x) per row, (N,); alpha = 1, sigma = 0 is the data.
    #[pyo3(signature = (x, alpha=1.0, sigma=0.0))]
    fn log_prob<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        alpha: f64,
        sigma: f64,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        self.inner.check_level(alpha, sigma).map_err(value_error)?;
        let x = self.rows(x, "x")?;
        let target = &self.inner;
        let out = py.detach(|| {
            let mut out = Array1::zeros(x.nrows());
            target.log_prob(alpha, sigma, x.view(), out.view_mut());
            out
        });
        Ok(out.into_pyarray(py))
    }

    /// n exact samples of p_0, (n, d), from a PCG64 stream seeded with `seed` (the stream
    /// `scoresde eval --seed` draws its reference from).
    #[pyo3(signature = (n, seed=0))]
    fn sample<'py>(&self, py: Python<'py>, n: usize, seed: u64) -> PyResult<Bound<'py, PyArray2<f64>>> {
        if n == 0 {
            return Err(value_error("n = 0: must be at least 1"));
        }
        let target = &self.inner;
        let out = py.detach(|| target.sample(n, &mut Pcg64::seed_from_u64(seed)));
        Ok(out.into_pyarray(py))
    }

    /// The mean (d,) and covariance (d, d) of the noised marginal p_t.
    #[pyo3(signature = (alpha=1.0, sigma=0.0))]
    fn moments<'py>(&self, py: Python<'py>, alpha: f64, sigma: f64) -> Law<'py> {
        self.inner.check_level(alpha, sigma).map_err(value_error)?;
        let (m, c) = self.inner.moments(alpha, sigma);
        Ok((m.into_pyarray(py), c.into_pyarray(py)))
    }

    fn __repr__(&self) -> String {
        format!("GaussianMixture(K={}, d={})", self.inner.n_components(), self.inner.dim())
    }
}

/// A built-in target by name (ring8, aniso16, gauss2, quad4, diag16).
#[pyfunction]
pub fn target(name: &str) -> PyResult<PyMixture> {
    scoresde::targets::builtin(name).map(|inner| PyMixture { inner }).ok_or_else(|| {
        value_error(format!("target = {name:?}: unknown (expected one of {})", builtin_targets().join(", ")))
    })
}

/// The names of the built-in targets.
#[pyfunction]
pub fn builtin_targets() -> Vec<&'static str> {
    scoresde::targets::BUILTIN.to_vec()
}

fn law(mean: &Bound<'_, PyAny>, cov: &Bound<'_, PyAny>, which: &str) -> PyResult<GaussianLaw> {
    let mean = f64_array::<Ix1>(mean, &format!("mean{which}"))?;
    let cov = f64_array::<Ix2>(cov, &format!("cov{which}"))?;
    if cov.dim() != (mean.len(), mean.len()) {
        return Err(value_error(format!(
            "cov{which}: shape {:?} but mean{which} has length {}",
            cov.dim(),
            mean.len()
        )));
    }
    Ok(GaussianLaw { mean, cov })
}

/// The exact 2-Wasserstein distance between N(mean1, cov1) and N(mean2, cov2).
#[pyfunction]
pub fn gaussian_w2(
    mean1: &Bound<'_, PyAny>,
    cov1: &Bound<'_, PyAny>,
    mean2: &Bound<'_, PyAny>,
    cov2: &Bound<'_, PyAny>,
) -> PyResult<f64> {
    let (p, q) = (law(mean1, cov1, "1")?, law(mean2, cov2, "2")?);
    if p.mean.len() != q.mean.len() {
        return Err(value_error(format!("mean2: length {} but mean1 has length {}", q.mean.len(), p.mean.len())));
    }
    Ok(w2_gaussian(&p, &q))
}

/// The law (mean, cov) of the exact probability-flow map of a single-Gaussian target, in
/// k-diffusion's convention, from x~ ~ N(0, sigma_start^2 I) at sigma_start to sigma_end.
#[pyfunction]
pub fn flow_law_sigma<'py>(py: Python<'py>, target: &PyMixture, sigma_start: f64, sigma_end: f64) -> Law<'py> {
    let law = scoresde::gaussian::exact_flow_law_sigma(&target.inner, sigma_start, sigma_end).map_err(value_error)?;
    Ok((law.mean.into_pyarray(py), law.cov.into_pyarray(py)))
}
