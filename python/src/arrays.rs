//! Python objects to float64 arrays and errors to Python exceptions, every message one line
//! naming the field and the value, as the command line prints it.

use ndarray::{Array, Dimension};
use numpy::{PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// A ValueError with `message`.
pub fn value_error(message: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(message.to_string())
}

/// A command's error as the ValueError the command line's one line would name (without its
/// `error: ` prefix).
pub fn cmd_error(e: &(dyn std::error::Error + 'static)) -> PyErr {
    let line = scoresde_experiments::cli::error_line(e);
    value_error(line.strip_prefix("error: ").unwrap_or(&line))
}

/// `obj` as an owned float64 array of `D`'s dimension, through `numpy.asarray(obj, float64)`,
/// with every entry finite. Errors name `field`.
pub fn f64_array<D: Dimension>(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<Array<f64, D>> {
    let py = obj.py();
    let kwargs = PyDict::new(py);
    kwargs.set_item("dtype", "float64")?;
    let converted = py
        .import("numpy")?
        .getattr("asarray")?
        .call((obj,), Some(&kwargs))
        .map_err(|e| value_error(format!("{field}: cannot be read as a float64 array: {}", e.value(py))))?;
    let arr = converted.cast::<PyArrayDyn<f64>>().map_err(|e| value_error(format!("{field}: {e}")))?;
    if let Some(ndim) = D::NDIM.filter(|&n| n != arr.ndim()) {
        return Err(value_error(format!(
            "{field}: shape {:?} has {} dimension(s), expected {ndim}",
            arr.shape(),
            arr.ndim()
        )));
    }
    let owned = arr.readonly().as_array().to_owned().into_dimensionality::<D>().expect("dimension checked");
    if let Some((index, value)) = owned.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(value_error(scoresde::ScoreError::NonFiniteInput { field: field.into(), index, value: *value }));
    }
    Ok(owned)
}
