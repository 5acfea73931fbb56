"""Bad keywords, bad flags and misbehaving model callables: a Python exception naming what is
wrong (for a callable: the step and the time), the command line's message for bad flags, and
nothing written or returned."""

import numpy as np
import pytest

import scoresde
from conftest import run_cli


def zeros(x, t, alpha, sigma):
    return np.zeros_like(x)


def test_unknown_keyword_is_a_type_error():
    with pytest.raises(TypeError, match="unexpected keyword argument 'stepz'"):
        scoresde.sample(stepz=3)
    with pytest.raises(TypeError, match="switch takes True or False"):
        scoresde.sample(brownian="yes")
    with pytest.raises(TypeError, match="target"):
        scoresde.sample(target=3.5)


@pytest.mark.parametrize(
    "kw, flags",
    [
        (dict(steps=-1), ["--steps=-1"]),
        (dict(solver="heunn"), ["--solver", "heunn"]),
        (dict(steps=3, grid=np.array([1.0, 0.5])), ["--steps", "3", "--grid", "<grid array>"]),
        (dict(t_end=-1.0), ["--t-end=-1.0"]),
        (dict(beta_max=float("nan")), ["--beta-max", "NaN"]),
        (dict(n=0), ["--n", "0"]),
        (dict(solver="dpmpp-2m", eta=0.5, orders=[1, 2]), ["--solver", "dpmpp-2m", "--eta", "0.5", "--orders", "1,2"]),
        (dict(solver="dopri5", rtol=-1.0), ["--solver", "dopri5", "--rtol=-1.0"]),
        (dict(solver="heun", nfe=10), ["--solver", "heun", "--nfe", "10"]),
        (dict(solver="heun", noise=np.zeros((3, 5, 2)), steps=3, n=5), None),
    ],
)
def test_bad_flags_raise_the_cli_message(kw, flags, tmp):
    with pytest.raises(ValueError) as e:
        scoresde.sample(**kw)
    message = str(e.value)
    assert "\n" not in message and message
    if flags is not None:
        code, err = run_cli("sample", *flags, "--out", str(tmp / "o.npy"), "--quiet")
        assert code != 0 and not (tmp / "o.npy").exists()
        # NaN is spelled "nan" by Python's repr and "NaN" on this command line: same value. The
        # command line adds where its flags are listed to a usage error.
        line = err.splitlines()[0]
        want = "error: " + message.replace("nan", "NaN")
        assert line == want or line.startswith(want + " (`scoresde help`"), err


def test_array_inputs_are_checked():
    with pytest.raises(ValueError, match=r"^z_init\[1\] = NaN: must be finite$"):
        scoresde.sample(z_init=np.array([[0.0, np.nan]]), steps=2)
    with pytest.raises(ValueError, match=r"--z-init <z_init array>: shape \(4, 3\) but the target has dimension 2"):
        scoresde.sample(z_init=np.zeros((4, 3)), steps=2)
    with pytest.raises(ValueError, match=r"^noise: shape \[3, 4\] has 2 dimension"):
        scoresde.sample(solver="euler-maruyama", noise=np.zeros((3, 4)), steps=2, n=4)
    with pytest.raises(ValueError, match=r"--noise <noise array>: 1 draws of noise but euler-maruyama needs 2"):
        scoresde.sample(solver="euler-maruyama", noise=np.zeros((1, 4, 2)), steps=2, n=4)
    with pytest.raises(ValueError, match=r"grid\[1\] = 2"):
        scoresde.sample(grid=np.array([1.0, 2.0]))


def test_model_keywords_are_checked():
    with pytest.raises(ValueError, match="give dim= or z_init="):
        scoresde.sample(model=zeros, steps=2)
    with pytest.raises(ValueError, match="dim = 3: but z_init has 2 columns"):
        scoresde.sample(model=zeros, dim=3, z_init=np.zeros((2, 2)), steps=2)
    with pytest.raises(ValueError, match='parameterisation = "eta": unknown'):
        scoresde.sample(model=zeros, dim=2, parameterisation="eta", steps=2)
    with pytest.raises(ValueError, match="parameterisation: applies to a model callable only"):
        scoresde.sample(parameterisation="x0", steps=2)
    with pytest.raises(ValueError, match="--class: guidance needs the exact score"):
        scoresde.sample(model=zeros, dim=2, class_=0, steps=2)
    with pytest.raises(TypeError, match="model = 3"):
        scoresde.sample(model=3)


def run_bad(model, out=None, **kw):
    args = dict(model=model, dim=2, n=5, steps=3, solver="heun")
    args.update(kw)
    with pytest.raises(scoresde.ModelError) as e:
        scoresde.sample(out=out, **args)
    if out is not None:
        assert not out.exists()
    return e.value


def test_a_raising_callable_names_step_and_time(tmp):
    def boom(x, t, alpha, sigma):
        if t < 0.5:
            raise ZeroDivisionError("from the model")
        return np.zeros_like(x)

    e = run_bad(boom, out=tmp / "o.npy")
    assert "at step 2 of 3 (t = 0.334" in str(e) and "ZeroDivisionError: from the model" in str(e)
    assert isinstance(e.__cause__, ZeroDivisionError)
    assert isinstance(e, RuntimeError)


def test_a_nan_names_step_time_and_row():
    def nan_late(x, t, alpha, sigma):
        out = np.zeros_like(x)
        if t < 0.5:
            out[3, 1] = np.nan
        return out

    e = run_bad(nan_late)
    assert "at step 2 of 3 (t = 0.334" in str(e) and "returned NaN at row 3, column 1: must be finite" in str(e)
    e = run_bad(lambda x, t, a, s: np.full_like(x, np.inf), solver="euler-maruyama", steps=4)
    assert "at step 1 of 4 (t = 1," in str(e) and "returned inf" in str(e)


@pytest.mark.parametrize(
    "model, what",
    [
        (lambda x, t, a, s: np.zeros((2, 2)), "returned shape [2, 2]: expected (5, 2)"),
        (lambda x, t, a, s: np.zeros(10), "and shape (10,): expected a float64 numpy array of shape (5, 2)"),
        (lambda x, t, a, s: x.astype(np.float32), "of dtype float32 and shape (5, 2): expected a float64 numpy array"),
        (lambda x, t, a, s: x.tolist(), "returned list: expected a float64 numpy array of shape (5, 2)"),
        (lambda x, t, a, s: None, "returned NoneType"),
    ],
)
def test_a_wrong_return_is_named(model, what):
    e = run_bad(model)
    assert "at step 1 of 3 (t = 1," in str(e) and what in str(e), str(e)


def test_adaptive_and_final_denoise_steps_are_named():
    def late(x, t, alpha, sigma):
        if t < 0.01:
            return np.full_like(x, np.nan)
        return np.zeros_like(x)

    e = run_bad(late, solver="dopri5", rtol=1e-3, atol=1e-3, steps=None)
    assert "model(x, t, alpha, sigma) at step " in str(e)
    def final(x, t, alpha, sigma):
        return np.full_like(x, np.nan) if t < 0.03 else np.zeros_like(x)

    # Euler evaluates at the start of each step only: the NaN comes from the final denoising call.
    e = run_bad(final, solver="euler", steps=3, t_end=0.02, denoise_final=True)
    assert "at the final denoising step (t = 0.02," in str(e), str(e)
