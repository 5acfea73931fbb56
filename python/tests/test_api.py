"""The registry, grids and docstrings from Python."""

import inspect

import numpy as np
import pytest

import scoresde
from scoresde import _keywords


def test_solvers_is_the_registry():
    solvers = {s["name"]: s for s in scoresde.solvers()}
    assert len(solvers) == 34
    assert solvers["dpmpp-2m-cfg-pp"]["guided"] is True and solvers["dpmpp-2m"]["guided"] is False
    assert solvers["heun"]["order"] == 2 and solvers["heun"]["nfe_per_step"] == 2
    assert solvers["dpmpp-2m"]["space"] == "sigma"
    assert solvers["euler-maruyama"]["stochastic"] is True
    assert solvers["dopri5"]["adaptive"] == "optional"
    assert [o["name"] for o in solvers["euler-ancestral"]["options"]] == ["eta", "s_noise"]
    for s in solvers.values():
        assert s["summary"] and s["paper"]


def test_grid_is_what_sample_steps_on():
    g = scoresde.grid(steps=10, schedule="karras", space="sigma", solver="dpmpp-2m")
    assert g["space"] == "sigma" and g["solver"] == "dpmpp-2m" and len(g["points"]) == 11
    assert np.array_equal(g["points"], g["sigma_tilde"])
    assert np.all(np.diff(g["points"]) < 0) and g["t"][0] == pytest.approx(1.0, abs=1e-12)
    # Running DPM-Solver++(2M) on that grid, passed back as sigmas, is the same run.
    a = scoresde.sample(steps=10, schedule="karras", space="sigma", solver="dpmpp-2m", n=50)
    b = scoresde.sample(sigmas=g["points"], solver="dpmpp-2m", n=50)
    assert np.array_equal(a, b)
    t = scoresde.grid(steps=4, process="ve")
    np.testing.assert_allclose(t["t"], np.linspace(1.0, 1e-5, 5), rtol=1e-15)
    with pytest.raises(ValueError, match="adaptive steps"):
        scoresde.grid(solver="dopri5", rtol=1e-3)


def test_help_lists_every_keyword_with_its_default():
    doc = scoresde.sample.__doc__
    sig = inspect.signature(scoresde.sample)
    for key, flag in _keywords.flag_table("sample").items():
        if key in ("target", "model", "out", "quiet"):
            assert key in sig.parameters
            continue
        assert key in sig.parameters, key
        assert f"    {key} = " in doc, key
    assert sig.parameters["beta_min"].default == 0.1
    assert sig.parameters["solver"].default == "heun"
    assert sig.parameters["brownian"].default is False
    assert sig.parameters["lower_order_final"].default is True
    assert sig.parameters["steps"].default is None
    assert sig.parameters["parameterisation"].default == "eps"
    assert "class_" in sig.parameters
    assert "projections = 256" in scoresde.eval.__doc__
    assert "rtol = 1e-08" in scoresde.nll.__doc__


def test_solver_options_a_solver_does_not_take_are_refused():
    with pytest.raises(ValueError, match="solver dpmpp-2m: option eta = 0.5: not an option of this solver"):
        scoresde.sample(solver="dpmpp-2m", eta=0.5)
    scoresde.sample(solver="euler-ancestral", eta=0.5, steps=3, n=4)


@pytest.mark.parametrize("param", ["x0", "v", "score"])
def test_parameterisations_agree(param):
    """A callable predicting x0, v or the score drives the solver as the eps one does."""
    g = scoresde.target("quad4")

    def eps(x, t, a, s):
        return g.eps(x, a, s)

    def other(x, t, a, s):
        e = g.eps(x, a, s)
        x0 = (x - s * e) / a
        return {"x0": x0, "v": a * e - s * x0, "score": -e / s}[param]

    kw = dict(solver="dpmpp-2m", steps=20, space="sigma", n=200, seed=1, dim=2)
    a = scoresde.sample(model=eps, **kw)
    b = scoresde.sample(model=other, parameterisation=param, **kw)
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)
    exact = scoresde.sample(target=g, **{k: v for k, v in kw.items() if k != "dim"})
    np.testing.assert_allclose(a, exact, rtol=1e-12, atol=1e-12)


def test_the_gil_is_released_while_the_kernel_runs():
    """A second thread's Python code runs while a long exact-score sample is computed."""
    import threading
    import time

    ticks = []
    done = threading.Event()

    def ticker():
        while not done.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    th = threading.Thread(target=ticker)
    th.start()
    time.sleep(0.01)
    before = len(ticks)
    start = time.perf_counter()
    scoresde.sample(target="diag16", solver="heun", steps=40, n=200_000)
    elapsed = time.perf_counter() - start
    during = len(ticks) - before
    done.set()
    th.join()
    # Held GIL: the ticker would not run at all during the call. Released: it ticks about every
    # millisecond; one tick per 20 ms of the call is a bound far from both. The call is sized to
    # take about half a second on a fast 2-core machine (n = 200,000), ten times the 0.05 s below
    # which a count of ticks would mean little (at n = 20,000 a Zen 4 finished in 0.049 s).
    assert elapsed > 0.05 and during >= elapsed / 0.02, (elapsed, during)


def test_inputs_a_callable_keeps_are_never_overwritten():
    """The input array is reused between calls only while nothing else holds it."""
    kept, copies = [], []

    def keeper(x, t, a, s):
        if len(kept) < 3:
            kept.append(x)
            copies.append(x.copy())
        return np.zeros_like(x)

    scoresde.sample(model=keeper, dim=2, n=16, solver="heun", steps=4)
    for x, c in zip(kept, copies):
        assert np.array_equal(x, c)
    assert len({id(x) for x in kept}) == len(kept)

    seen = []

    def mutator(x, t, a, s):
        seen.append(x.copy())
        x *= 0.0  # a callable may scribble on its input: the next call still gets the state
        return np.zeros_like(x)

    scoresde.sample(model=mutator, dim=2, n=16, solver="euler", steps=3, seed=2)
    assert all(np.abs(v).max() > 0 for v in seen)
