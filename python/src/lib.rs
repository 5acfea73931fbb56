//! `scoresde._scoresde`: the compiled half of the Python package. It holds no numerics of its
//! own: the exact mixture is the library's `GaussianMixture`, and `sample`, `eval`, `nll` and
//! `grid` parse the same flags as the command line (`scoresde_experiments::flags`) and run the
//! same functions, with arrays and Python callables in place of files. The Python half
//! (`python/scoresde/`) turns keywords into those flags and holds `certify`.

mod arrays;
mod callable;
mod commands;
mod mixture;

use pyo3::prelude::*;

pyo3::create_exception!(
    scoresde,
    ModelError,
    pyo3::exceptions::PyRuntimeError,
    "A model callable raised, returned an array of the wrong type or shape, or returned a non-finite value; the message names the step and time."
);

#[pymodule]
fn _scoresde(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<mixture::PyMixture>()?;
    m.add("ModelError", m.py().get_type::<ModelError>())?;
    m.add_function(wrap_pyfunction!(mixture::target, m)?)?;
    m.add_function(wrap_pyfunction!(mixture::builtin_targets, m)?)?;
    m.add_function(wrap_pyfunction!(mixture::gaussian_w2, m)?)?;
    m.add_function(wrap_pyfunction!(mixture::flow_law_sigma, m)?)?;
    m.add_function(wrap_pyfunction!(commands::sample, m)?)?;
    m.add_function(wrap_pyfunction!(commands::grid, m)?)?;
    m.add_function(wrap_pyfunction!(commands::eval, m)?)?;
    m.add_function(wrap_pyfunction!(commands::nll, m)?)?;
    m.add_function(wrap_pyfunction!(commands::elbo, m)?)?;
    m.add_function(wrap_pyfunction!(commands::command_flags, m)?)?;
    m.add_function(wrap_pyfunction!(commands::solvers, m)?)?;
    m.add_function(wrap_pyfunction!(commands::write_npy, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
