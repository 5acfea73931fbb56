//! A Python callable as a score model: `model(x, t, alpha, sigma) -> array`, called once per
//! NFE on the whole (N, d) batch, with the GIL taken only for the call.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use ndarray::{ArrayView2, ArrayViewMut2};
use numpy::{PyArray2, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::prelude::*;
use scoresde::model::{NoiseLevel, Parameterisation, ScoreModel};
use scoresde::ScoreError;

/// What a failed call left behind: the message naming the step and time, and the exception
/// the callable raised, if it raised one.
#[derive(Default)]
pub struct Failure {
    pub message: String,
    pub cause: Option<PyErr>,
}

/// Where a sampling run is, shared between the run's observer and the model, and what failed.
#[derive(Default)]
pub struct CallState {
    /// Accepted steps so far (the index of the step being computed).
    pub step: AtomicUsize,
    /// Steps of the grid (0 for adaptive steps).
    pub steps: usize,
    pub failure: Mutex<Option<Failure>>,
}

/// A Python callable predicting eps, x0, v or the score.
pub struct PyModel {
    pub f: Py<PyAny>,
    pub dim: usize,
    pub parameterisation: Parameterisation,
    pub state: Arc<CallState>,
    /// The input array handed to the callable, reused while nothing else holds it (a fresh
    /// 160 kB numpy array per call costs page faults at N = 10^4).
    pub input: Mutex<Option<Py<PyArray2<f64>>>>,
}

impl PyModel {
    /// A model of dimension `dim` calling `f`.
    pub fn new(f: Py<PyAny>, dim: usize, parameterisation: Parameterisation, state: Arc<CallState>) -> Self {
        Self { f, dim, parameterisation, state, input: Mutex::new(None) }
    }

    /// `x` in a numpy array: the previous call's array if only this model holds it and the
    /// shape fits, else a new one.
    fn input<'py>(&self, py: Python<'py>, x: ArrayView2<f64>) -> Bound<'py, PyArray2<f64>> {
        let mut slot = self.input.lock().expect("not poisoned");
        if let Some(held) = slot.as_ref() {
            let arr = held.bind(py);
            // SAFETY: reading the reference count of a live object while attached.
            let refs = unsafe { pyo3::ffi::Py_REFCNT(arr.as_ptr()) };
            if refs == 1 && arr.shape() == [x.nrows(), x.ncols()] {
                let arr = arr.clone();
                // SAFETY: the only other reference is the slot's own (refcount 1 before the clone),
                // so no Python code can see the array while it is written.
                unsafe { arr.as_array_mut() }.assign(&x);
                return arr;
            }
        }
        let arr = PyArray2::from_array(py, &x);
        *slot = Some(arr.clone().unbind());
        arr
    }
}

impl PyModel {
    /// Records a failure at the current step and returns the error that stops the run.
    fn fail(&self, level: NoiseLevel, what: String, cause: Option<PyErr>) -> ScoreError {
        let step = self.state.step.load(Ordering::Relaxed);
        let at = match self.state.steps {
            0 => format!("step {}", step + 1),
            n if step >= n => "the final denoising step".to_string(),
            n => format!("step {} of {n}", step + 1),
        };
        let message = format!(
            "model(x, t, alpha, sigma) at {at} (t = {}, alpha = {}, sigma = {}): {what}",
            level.t, level.alpha, level.sigma
        );
        *self.state.failure.lock().expect("not poisoned") = Some(Failure { message: message.clone(), cause });
        ScoreError::Model { context: "python model".into(), message }
    }
}

impl ScoreModel for PyModel {
    fn dim(&self) -> usize {
        self.dim
    }

    fn parameterisation(&self) -> Parameterisation {
        self.parameterisation
    }

    fn predict(&self, level: NoiseLevel, x: ArrayView2<f64>, mut out: ArrayViewMut2<f64>) -> scoresde::Result<()> {
        Python::attach(|py| {
            if let Err(e) = py.check_signals() {
                return Err(self.fail(level, "interrupted".into(), Some(e)));
            }
            let input = self.input(py, x);
            let result = match self.f.bind(py).call1((input, level.t, level.alpha, level.sigma)) {
                Ok(r) => r,
                Err(e) => {
                    let what = format!("raised {}", e);
                    return Err(self.fail(level, what, Some(e)));
                }
            };
            let Ok(arr) = result.cast::<PyArray2<f64>>() else {
                let what = match result.getattr("dtype") {
                    Ok(dtype) => format!(
                        "returned {} of dtype {dtype} and shape {}: expected a float64 numpy array of shape {:?}",
                        result.get_type().name().map(|n| n.to_string()).unwrap_or_default(),
                        result.getattr("shape").map(|s| s.to_string()).unwrap_or_default(),
                        x.dim()
                    ),
                    Err(_) => format!(
                        "returned {}: expected a float64 numpy array of shape {:?}",
                        result.get_type().name().map(|n| n.to_string()).unwrap_or_default(),
                        x.dim()
                    ),
                };
                return Err(self.fail(level, what, None));
            };
            if arr.shape() != [x.nrows(), x.ncols()] {
                let what = format!("returned shape {:?}: expected {:?}", arr.shape(), x.dim());
                return Err(self.fail(level, what, None));
            }
            let values = arr.readonly();
            let values = values.as_array();
            out.assign(&values);
            let finite = match out.as_slice() {
                Some(flat) => flat.iter().fold(true, |ok, v| ok & v.is_finite()),
                None => out.iter().all(|v| v.is_finite()),
            };
            if !finite {
                let ((i, j), v) = out.indexed_iter().find(|(_, v)| !v.is_finite()).expect("a non-finite value");
                let what = format!("returned {v} at row {i}, column {j}: must be finite");
                return Err(self.fail(level, what, None));
            }
            Ok(())
        })
    }
}
