//! `sample`, `grid`, `eval` and `nll` from Python: the command line's flags (as words, built by
//! the Python half from keywords) parsed by the same parser, run by the same functions, with
//! arrays, mixtures and callables in place of files.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use ndarray::{Array1, Ix1, Ix2, Ix3};
use numpy::{IntoPyArray, PyArray1, PyArray2};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use scoresde::grids::Space;
use scoresde::model::Parameterisation;
use scoresde::sampler::registry::{Adaptivity, SpaceRule};
use scoresde::sampler::{SolverId, Steps};
use scoresde_experiments::elbo_cmd::{self, ElboArgs};
use scoresde_experiments::eval_cmd::{self, EvalArgs};
use scoresde_experiments::flags as cli_flags;
use scoresde_experiments::nll_cmd::{self, NllArgs};
use scoresde_experiments::sample_cmd::{self, SampleArgs, SampleInputs};

use crate::arrays::{cmd_error, f64_array, value_error};
use crate::callable::{CallState, PyModel};
use crate::mixture::PyMixture;
use crate::ModelError;

/// One command's flags from words, and the ids of those given; a bad word is a ValueError with
/// the command line's message.
fn parse<A: clap::Args + clap::FromArgMatches>(name: &'static str, words: &[String]) -> PyResult<(A, Vec<String>)> {
    cli_flags::parse::<A>(name, words).map_err(|e| value_error(cli_flags::clap_line(&e)))
}

/// The flags of `sample`, with the ones given noted.
fn parse_sample(words: &[String]) -> PyResult<SampleArgs> {
    let (mut a, given): (SampleArgs, _) = parse("sample", words)?;
    a.given = given;
    Ok(a)
}

fn json_to_py<'py>(py: Python<'py>, value: &serde_json::Value) -> PyResult<Bound<'py, PyAny>> {
    py.import("json")?.call_method1("loads", (value.to_string(),))
}

fn parameterisation(name: &str) -> PyResult<Parameterisation> {
    Parameterisation::from_name(name).ok_or_else(|| {
        value_error(format!("parameterisation = {name:?}: unknown (expected one of eps, x0, v, velocity, score)"))
    })
}

/// The in-memory inputs from the arrays given in place of the file flags.
fn inputs(
    target: Option<&PyMixture>,
    z_init: Option<&Bound<'_, PyAny>>,
    grid: Option<&Bound<'_, PyAny>>,
    sigmas: Option<&Bound<'_, PyAny>>,
    noise: Option<&Bound<'_, PyAny>>,
) -> PyResult<SampleInputs> {
    Ok(SampleInputs {
        target: target.map(|t| t.inner.clone()),
        model: None,
        z_init: z_init.map(|z| f64_array::<Ix2>(z, "z_init")).transpose()?,
        grid: grid.map(|g| f64_array::<Ix1>(g, "grid").map(|g| g.to_vec())).transpose()?,
        sigmas: sigmas.map(|g| f64_array::<Ix1>(g, "sigmas").map(|g| g.to_vec())).transpose()?,
        noise: noise.map(|z| f64_array::<Ix3>(z, "noise")).transpose()?,
    })
}

/// Runs `scoresde sample` on `words` (the flags), with the arrays, mixture and model callable
/// given in place of files; returns the (N, d) samples.
#[pyfunction]
#[pyo3(signature = (words, target=None, model=None, parameterisation="eps", dim=None, z_init=None, grid=None, sigmas=None, noise=None))]
#[allow(clippy::too_many_arguments)]
pub fn sample<'py>(
    py: Python<'py>,
    words: Vec<String>,
    target: Option<PyRef<'py, PyMixture>>,
    model: Option<Py<PyAny>>,
    parameterisation: &str,
    dim: Option<usize>,
    z_init: Option<&Bound<'py, PyAny>>,
    grid: Option<&Bound<'py, PyAny>>,
    sigmas: Option<&Bound<'py, PyAny>>,
    noise: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let args = parse_sample(&words)?;
    let mut inputs = inputs(target.as_deref(), z_init, grid, sigmas, noise)?;
    let plan = sample_cmd::plan(&args, &inputs).map_err(|e| cmd_error(&*e))?;
    let state = Arc::new(CallState { steps: plan.config.steps().count(), ..CallState::default() });
    if let Some(f) = model {
        let rows = inputs.z_init.as_ref().map(|z| z.ncols());
        let dim = match (dim, rows, &inputs.target) {
            (Some(d), Some(c), _) if d != c => {
                return Err(value_error(format!("dim = {d}: but z_init has {c} columns")));
            }
            (Some(0), _, _) => return Err(value_error("dim = 0: must be at least 1")),
            (Some(d), _, _) => d,
            (None, Some(c), _) => c,
            (None, None, Some(t)) => t.dim(),
            (None, None, None) => {
                return Err(value_error("dim: a model callable needs the data dimension: give dim= or z_init="))
            }
        };
        let parameterisation = self::parameterisation(parameterisation)?;
        inputs.model = Some(Box::new(PyModel::new(f, dim, parameterisation, state.clone())));
    } else if parameterisation != "eps" {
        return Err(value_error("parameterisation: applies to a model callable only"));
    }
    let result = py.detach(|| {
        sample_cmd::sample(&args, &plan, inputs, &mut |_| {
            state.step.fetch_add(1, Ordering::Relaxed);
        })
    });
    match result {
        Ok((x, _)) => Ok(x.into_pyarray(py)),
        Err(e) => match state.failure.lock().expect("not poisoned").take() {
            Some(failure) => {
                let err = ModelError::new_err(failure.message);
                err.set_cause(py, failure.cause);
                Err(err)
            }
            None => Err(cmd_error(&*e)),
        },
    }
}

/// The grid `sample` would step on for `words`: a dict with `space` ("t" or "sigma", where the
/// solver steps), `points` (the grid in that space), `t` and `sigma_tilde` (the same points as
/// process times and as sigma~ = sigma / alpha).
#[pyfunction]
#[pyo3(signature = (words, grid=None, sigmas=None))]
pub fn grid<'py>(
    py: Python<'py>,
    words: Vec<String>,
    grid: Option<&Bound<'py, PyAny>>,
    sigmas: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let args = parse_sample(&words)?;
    let inputs = inputs(None, None, grid, sigmas, None)?;
    let sample_cmd::Plan { process, config } = sample_cmd::plan(&args, &inputs).map_err(|e| cmd_error(&*e))?;
    let Steps::Grid(g) = config.steps() else {
        return Err(value_error("grid: adaptive steps (rtol, atol) have no grid before the solve"));
    };
    let points = Array1::from(g.points().to_vec());
    let (t, sigma_tilde) = match config.space() {
        Space::Time => (points.clone(), points.mapv(|t| process.sigma_tilde(t))),
        Space::SigmaTilde => (points.mapv(|s| process.t_from_sigma_tilde(s)), points.clone()),
    };
    let out = PyDict::new(py);
    out.set_item("space", space_name(config.space()))?;
    out.set_item("solver", config.solver().name())?;
    out.set_item("points", points.into_pyarray(py))?;
    out.set_item("t", t.into_pyarray(py))?;
    out.set_item("sigma_tilde", sigma_tilde.into_pyarray(py))?;
    Ok(out)
}

fn space_name(space: Space) -> &'static str {
    match space {
        Space::Time => "t",
        Space::SigmaTilde => "sigma",
    }
}

fn target_or_flag(target: Option<PyRef<'_, PyMixture>>, flag: &str) -> PyResult<scoresde::gmm::GaussianMixture> {
    match target {
        Some(t) => Ok(t.inner.clone()),
        None => scoresde::targets::load(flag).map_err(value_error),
    }
}

/// `scoresde eval` on in-memory samples: the dict its `--json` writes.
#[pyfunction]
#[pyo3(signature = (words, samples, target=None))]
pub fn eval<'py>(
    py: Python<'py>,
    words: Vec<String>,
    samples: &Bound<'py, PyAny>,
    target: Option<PyRef<'py, PyMixture>>,
) -> PyResult<Bound<'py, PyAny>> {
    let (args, _): (EvalArgs, _) = parse("eval", &words)?;
    let target = target_or_flag(target, &args.target)?;
    let x = f64_array::<Ix2>(samples, "samples")?;
    let metrics = py.detach(|| eval_cmd::metrics(&args, &target, x.view())).map_err(|e| cmd_error(&*e))?;
    json_to_py(py, &metrics)
}

/// `scoresde nll` on in-memory points: the log-likelihoods (N,) and the summary it prints.
#[pyfunction]
#[pyo3(signature = (words, points, target=None))]
pub fn nll<'py>(
    py: Python<'py>,
    words: Vec<String>,
    points: &Bound<'py, PyAny>,
    target: Option<PyRef<'py, PyMixture>>,
) -> PyResult<(Bound<'py, PyArray1<f64>>, Bound<'py, PyAny>)> {
    let (args, _): (NllArgs, _) = parse("nll", &words)?;
    let target = target_or_flag(target, &args.target)?;
    let x = f64_array::<Ix2>(points, "points")?;
    let (logp, summary) = py.detach(|| nll_cmd::loglik(&args, &target, x.view())).map_err(|e| cmd_error(&*e))?;
    Ok((logp.into_pyarray(py), json_to_py(py, &summary)?))
}

/// `scoresde elbo` on in-memory points: the summary it prints, with the bounds "elbo" (N,)
/// and their standard errors "se" (N,).
#[pyfunction]
#[pyo3(signature = (words, points, target=None))]
pub fn elbo<'py>(
    py: Python<'py>,
    words: Vec<String>,
    points: &Bound<'py, PyAny>,
    target: Option<PyRef<'py, PyMixture>>,
) -> PyResult<Bound<'py, PyAny>> {
    let (args, _): (ElboArgs, _) = parse("elbo", &words)?;
    let target = target.map(|t| t.inner.clone());
    let x = f64_array::<Ix2>(points, "points")?;
    let (e, summary) = py.detach(|| elbo_cmd::bound(&args, x.view(), target)).map_err(|e| cmd_error(&*e))?;
    let out = json_to_py(py, &summary)?;
    out.set_item("elbo", e.elbo.into_pyarray(py))?;
    out.set_item("se", e.se.into_pyarray(py))?;
    Ok(out)
}

/// The flags of `command` (sample, eval, nll, elbo): name, help, default, takes_value, choices.
#[pyfunction]
#[pyo3(name = "flags")]
pub fn command_flags<'py>(py: Python<'py>, command: &str) -> PyResult<Bound<'py, PyList>> {
    let docs = match command {
        "sample" => cli_flags::describe::<SampleArgs>("sample"),
        "eval" => cli_flags::describe::<EvalArgs>("eval"),
        "nll" => cli_flags::describe::<NllArgs>("nll"),
        "elbo" => cli_flags::describe::<ElboArgs>("elbo"),
        other => return Err(value_error(format!("command = {other:?}: unknown (expected sample, eval, nll, elbo)"))),
    };
    let list = PyList::empty(py);
    for f in docs {
        let d = PyDict::new(py);
        d.set_item("name", f.name)?;
        d.set_item("help", f.help)?;
        d.set_item("default", f.default)?;
        d.set_item("takes_value", f.takes_value)?;
        d.set_item("choices", f.choices)?;
        list.append(d)?;
    }
    Ok(list)
}

/// The solver registry: one dict per solver.
#[pyfunction]
pub fn solvers<'py>(py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for id in SolverId::ALL {
        let i = id.info();
        let d = PyDict::new(py);
        d.set_item("name", i.name)?;
        d.set_item("order", i.order)?;
        d.set_item("order_note", i.order_note)?;
        d.set_item("nfe_per_step", i.nfe_per_step)?;
        d.set_item("nfe_note", i.nfe_note)?;
        let space = match i.space {
            SpaceRule::Any => "any",
            SpaceRule::Time => "t",
            SpaceRule::Sigma => "sigma",
        };
        d.set_item("space", space)?;
        d.set_item("stochastic", i.stochastic)?;
        let adaptive = match i.adaptive {
            Adaptivity::Never => "never",
            Adaptivity::Optional => "optional",
            Adaptivity::Required => "required",
        };
        d.set_item("adaptive", adaptive)?;
        d.set_item("guided", i.guided)?;
        let options = PyList::empty(py);
        for o in i.options {
            let od = PyDict::new(py);
            od.set_item("name", o.name)?;
            od.set_item("default", o.default)?;
            od.set_item("doc", o.doc)?;
            options.append(od)?;
        }
        d.set_item("options", options)?;
        d.set_item("summary", i.summary)?;
        d.set_item("paper", i.paper)?;
        d.set_item("matches", i.matches)?;
        list.append(d)?;
    }
    Ok(list)
}

/// Writes `array` as float64 .npy to `path` atomically (the command line's writer: a
/// temporary file renamed into place, so no half-written file is ever seen).
#[pyfunction]
pub fn write_npy(path: std::path::PathBuf, array: &Bound<'_, PyAny>) -> PyResult<()> {
    let a = f64_array::<ndarray::IxDyn>(array, "array")?;
    scoresde::io::write_npy(&path, &a).map_err(value_error)
}
