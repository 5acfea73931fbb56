"""The sampling cases of tests/reference/cases_v2 (diffusers' flow-match, DDPM and DDIM-eta
schedulers) replayed through scoresde.sample with each manifest's recorded flags as keywords and
the model as a numpy callable: the flow cases with the velocity (parameterisation="velocity"),
the chain's with the noise prediction. Held to check_v2.py's rule: max |out - ref| <= the peer's
atol for every peer."""

import json
import os

import numpy as np
import pytest

import scoresde
from conftest import ROOT, ring8_mixture_arrays
from numpy_mixture import NumpyMixtureEps, NumpyMixtureVelocity

CASES_V2 = os.path.join(ROOT, "tests", "reference", "cases_v2")
PATH_FLAGS = {"target", "z_init", "grid", "alphas_cumprod", "timesteps", "noise"}


def cases(kind):
    """The manifests of the cases of `kind` ("sample" or "grid")."""
    for name in sorted(os.listdir(CASES_V2)):
        path = os.path.join(CASES_V2, name, "manifest.json")
        if os.path.exists(path):
            m = json.load(open(path))
            if m["kind"] == kind:
                yield m


def keywords(m):
    """The recorded argv as keywords: paths made absolute, a switch (a flag followed by another
    flag or nothing) as True, --out and --target dropped."""
    cdir = os.path.join(CASES_V2, m["case_id"])
    argv, kw, i = m["replay"]["argv"], {}, 0
    while i < len(argv):
        key = argv[i][2:].replace("-", "_")
        switch = i + 1 == len(argv) or argv[i + 1].startswith("--")
        value = True if switch else argv[i + 1]
        i += 1 if switch else 2
        if key in ("out", "target"):
            continue
        kw[key] = os.path.normpath(os.path.join(cdir, value)) if key in PATH_FLAGS else value
    return kw


@pytest.mark.parametrize("m", list(cases("sample")), ids=lambda m: m["case_id"])
def test_v2_case_with_a_python_model(m):
    w, mu, var = ring8_mixture_arrays()
    kw = keywords(m)
    if kw["process"] == "flow":
        model, param = NumpyMixtureVelocity(w, mu, var), "velocity"
    else:
        model, param = NumpyMixtureEps(w, mu, var), "eps"
    x = scoresde.sample(model=model, parameterisation=param, dim=2, **kw)
    cdir = os.path.join(CASES_V2, m["case_id"])
    for peer, pm in m["peers"].items():
        err = np.abs(x - np.load(os.path.join(cdir, pm["file"]))).max()
        assert err <= pm["atol"], f"{m['case_id']} vs {peer}: {err:.3e} > {pm['atol']:.1e}"


@pytest.mark.parametrize("m", list(cases("grid")), ids=lambda m: m["case_id"])
def test_v2_grid_case_through_scoresde_grid(m):
    # scoresde.grid gives the grid a sampler steps on: sigma~ levels for the chain (diffusers'
    # Euler sigmas), times t for flow (FlowMatch's sigmas).
    kw = keywords(m)
    g = scoresde.grid(**kw)
    got = g["t"] if kw["process"] == "flow" else g["sigma_tilde"]
    pm = m["peers"]["diffusers_f64"]
    ref = np.load(os.path.join(CASES_V2, m["case_id"], pm["files"]["sigmas"]))
    tol = pm["tol"]["sigmas"]
    assert got.shape == ref.shape
    assert np.all(np.abs(got - ref) <= tol["atol"] + tol["rtol"] * np.abs(ref)), (got, ref)
