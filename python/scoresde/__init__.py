"""scoresde: exact ground truth for diffusion samplers.

Gaussian-mixture targets with exact scores and exact noised laws (`GaussianMixture`,
`target`), every scoresde solver driven by a built-in target or by any Python model
(`sample`, `grid`, `solvers`), the metrics of the command line (`eval`, `nll`), and a
certifier that measures the convergence order of anyone's sampler against exact laws
(`certify`). The numerics are the Rust library's; `sample(**kw)` parses the same flags as
`scoresde sample` and returns what the command line writes.
"""

from __future__ import annotations

import json as _json
import os as _os
import tempfile as _tempfile

import numpy as _np

from . import _keywords
from ._scoresde import GaussianMixture, ModelError, __version__, builtin_targets, gaussian_w2, target
from ._scoresde import flow_law_sigma as _flow_law_sigma
from . import _scoresde
from .certify import certify

__all__ = [
    "GaussianMixture",
    "ModelError",
    "builtin_targets",
    "certify",
    "eval",
    "flow_law",
    "gaussian_w2",
    "grid",
    "nll",
    "elbo",
    "sample",
    "solvers",
    "target",
]


def _from_dict(d):
    return GaussianMixture.from_json_str(_json.dumps(d, default=lambda o: _np.asarray(o).tolist()))


GaussianMixture.from_dict = staticmethod(_from_dict)


def _target(value):
    """(mixture object, --target word) for a `target=` value."""
    if value is None:
        return None, None
    if isinstance(value, GaussianMixture):
        return value, None
    if isinstance(value, dict):
        return _from_dict(value), None
    if isinstance(value, (str, _os.PathLike)):
        return None, _os.fspath(value)
    raise TypeError(f"target = {value!r}: expected a GaussianMixture, a built-in name, a JSON path or a dict")


_SAMPLE_ARRAYS = ("z_init", "grid", "sigmas", "noise")
_SAMPLE_EXTRA = [("target", "ring8"), ("model", None), ("parameterisation", "eps"), ("dim", None)]


def _file_word(name, value):
    """A file flag's word and the array that travels in memory: a path stays a file flag (no
    array), an array goes behind the flag with a name for messages."""
    flag = "--" + name.replace("_", "-")
    if isinstance(value, (str, _os.PathLike)):
        return f"{flag}={_os.fspath(value)}", None
    return f"{flag}=<{name} array>", value


def _split_arrays(kwargs, names):
    """The words and in-memory arrays of the array keywords among `kwargs` (removed from it)."""
    words, arrays = [], {}
    for name in names:
        value = kwargs.pop(name, None)
        if value is None:
            continue
        word, array = _file_word(name, value)
        words.append(word)
        if array is not None:
            arrays[name] = array
    return words, arrays


def _sample_words(kwargs, function):
    kwargs = dict(kwargs)
    mixture, target_word = _target(kwargs.pop("target", None))
    model = kwargs.pop("model", None)
    array_words, arrays = _split_arrays(kwargs, _SAMPLE_ARRAYS)
    extra = {k: kwargs.pop(k) for k in ("parameterisation", "dim", "out", "quiet") if k in kwargs}
    words = _keywords.words("sample", function, kwargs) + array_words
    if target_word is not None:
        words.append(f"--target={target_word}")
    callable_model = None
    if model is not None:
        if callable(model):
            callable_model = model
        elif isinstance(model, (str, _os.PathLike)):
            words.append(f"--model={_os.fspath(model)}")
        else:
            raise TypeError(f"model = {model!r}: expected a callable model(x, t, alpha, sigma) or a checkpoint path")
    return words, mixture, callable_model, arrays, extra


def sample(**kwargs):
    """Draw samples with any scoresde solver; returns an (N, d) float64 array.

    Every flag of `scoresde sample` is a keyword of the same name with dashes as underscores,
    and the result equals the command line's for the same flags. The file flags take arrays
    (or paths): grid (K+1,), sigmas (K+1,), z_init (N, d), noise (draws, N, d).

    target: a GaussianMixture, a built-in name ("ring8", ...), a JSON path, or a dict shaped
        like the JSON file; its exact score drives the solver unless `model` is given.
    model: a callable model(x, t, alpha, sigma) -> (N, d) float64 array, called once per NFE
        with the whole batch (x is (N, d) float64; t, alpha, sigma are floats: the noise level
        of that call, x = alpha x0 + sigma eps), or the path of a `scoresde train` checkpoint.
    parameterisation: what a callable returns: "eps" (default), "x0", "v" or "score".
    dim: the data dimension for a callable, when z_init is not given.
    out: also write the samples to this .npy path (atomically).
    quiet: accepted for the command line's sake; nothing is printed.

    A callable that raises, returns the wrong shape or dtype, or returns a non-finite value
    raises ModelError naming the step and time (the exception it raised is the __cause__);
    bad flags raise ValueError with the command line's message. Nothing is returned then.

    Keywords (the flags of `scoresde sample`):
{keywords}
    """
    words, mixture, model, arrays, extra = _sample_words(kwargs, "sample")
    x = _scoresde.sample(
        words,
        target=mixture,
        model=model,
        parameterisation=extra.get("parameterisation") or "eps",
        dim=extra.get("dim"),
        **arrays,
    )
    if extra.get("out") is not None:
        _scoresde.write_npy(extra["out"], x)
    return x


def grid(**kwargs):
    """The grid `sample` would step on for the same keywords, as a dict: "space" ("t" or
    "sigma": where the solver steps), "solver", "points" (the grid in that space, noise to
    data), "t" (the points as process times) and "sigma_tilde" (as sigma / alpha).

    Takes the keywords of `sample` (target, model and the array inputs other than grid and
    sigmas are not needed and not read).
    """
    words, _, _, arrays, _ = _sample_words(kwargs, "grid")
    return _scoresde.grid(words, grid=arrays.get("grid"), sigmas=arrays.get("sigmas"))


def _load(value):
    if isinstance(value, (str, _os.PathLike)):
        return _np.load(_os.fspath(value))
    return value


def _atomic_text(path, text):
    path = _os.fspath(path)
    directory = _os.path.dirname(_os.path.abspath(path))
    fd, tmp = _tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        with _os.fdopen(fd, "w") as f:
            f.write(text)
        _os.replace(tmp, path)
    except BaseException:
        _os.unlink(tmp)
        raise


def _data_words(command, target, field, data, kwargs):
    """The flag words of a command on in-memory data (eval, nll, elbo): the keywords, the
    target (unless in memory) and the data's field; and the in-memory mixture, if any."""
    mixture, target_word = _target(target)
    words = _keywords.words(command, command, kwargs)
    if target_word is not None:
        words.append(f"--target={target_word}")
    words.append(_file_word(field, data)[0])
    return words, mixture


def eval(target, samples, **kwargs):  # noqa: A001 - the command line's name
    """Metrics of (N, d) samples against the exact target: the dict `scoresde eval --json`
    writes (mean and covariance error, sliced W2 with its Monte Carlo floor, MMD, energy
    distance, KS and exact marginal W2, log-density, mode occupancy, ...).

    target: a GaussianMixture, a built-in name, a JSON path or a dict. samples: an array or a
    .npy path. json: also write the dict to this path. The other keywords are the flags of
    `scoresde eval`:
{keywords}
    """
    json_path = kwargs.pop("json", None)
    words, mixture = _data_words("eval", target, "samples", samples, kwargs)
    result = _scoresde.eval(words, _load(samples), target=mixture)
    if json_path is not None:
        _atomic_text(json_path, _json.dumps(result, indent=2) + "\n")
    return result


def nll(target, points, **kwargs):
    """Log-likelihoods of (N, d) points through the probability-flow ODE (the `scoresde nll`
    flags as keywords): a dict with "log_likelihood" (N,) and the summary the command line
    prints (n, mean_log_likelihood, exact_mean_log_density, max_abs_error_vs_exact).
    out: also write the log-likelihoods to this .npy path.

    Keywords (the flags of `scoresde nll`):
{keywords}
    """
    out = kwargs.pop("out", None)
    words, mixture = _data_words("nll", target, "points", points, kwargs)
    logp, summary = _scoresde.nll(words, _load(points), target=mixture)
    if out is not None:
        _scoresde.write_npy(out, logp)
    return dict(summary, log_likelihood=logp)


def elbo(target, points, **kwargs):
    """Variational bounds on ln p of (N, d) points (the `scoresde elbo` flags as keywords): a
    dict with "elbo" (N,, nats), "se" (N,, their Monte Carlo standard errors) and the summary the
    command line prints (mean_elbo_nats, mean_elbo_se, bits_per_dim, the terms, and with an
    exact target exact_mean_log_density and mean_gap_nats).
    out: also write the bounds to this .npy path.

    Keywords (the flags of `scoresde elbo`):
{keywords}
    """
    out = kwargs.pop("out", None)
    words, mixture = _data_words("elbo", target, "points", points, kwargs)
    result = _scoresde.elbo(words, _load(points), target=mixture)
    if out is not None:
        _scoresde.write_npy(out, result["elbo"])
    return result


def solvers():
    """The solver registry: one dict per solver with name, order, order_note, nfe_per_step,
    nfe_note, space ("any", "t" or "sigma"), stochastic, adaptive ("never", "optional",
    "required"), options (name, default, doc), summary, paper and the peer runs it matches."""
    return _scoresde.solvers()


def flow_law(target, sigma_start, sigma_end):
    """(mean, cov) of the exact probability flow of a single-Gaussian target in k-diffusion's
    convention, from x~ ~ N(0, sigma_start^2 I) at sigma_start to sigma_end: the law every
    consistent deterministic sampler on such a grid converges to."""
    mixture, name = _target(target)
    return _flow_law_sigma(mixture if mixture is not None else _scoresde.target(name), sigma_start, sigma_end)


_SAMPLE_SKIP = ("out", "quiet", "target", "model")
sample.__signature__ = _keywords.signature(
    "sample", _SAMPLE_EXTRA + [("out", None), ("quiet", False)], skip=("target", "model")
)
sample.__doc__ = sample.__doc__.replace("{keywords}", _keywords.keyword_doc("sample", skip=_SAMPLE_SKIP))
grid.__signature__ = _keywords.signature("sample", [], skip=("target", "model", "z_init", "noise", "out", "quiet"))
eval.__doc__ = eval.__doc__.replace("{keywords}", _keywords.keyword_doc("eval", skip=("target", "samples")))
nll.__doc__ = nll.__doc__.replace("{keywords}", _keywords.keyword_doc("nll", skip=("target", "points")))
elbo.__doc__ = elbo.__doc__.replace("{keywords}", _keywords.keyword_doc("elbo", skip=("target", "points")))
