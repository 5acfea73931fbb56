"""GaussianMixture from Python: the exact eps, score, x0, denoiser, log-density, samples and
moments against formulas written here, and bad input as ValueError with the CLI's message."""

import json

import numpy as np
import pytest

import scoresde
from conftest import ring8_mixture_arrays, run_cli
from numpy_mixture import NumpyMixtureEps


@pytest.fixture
def ring():
    w, m, v = ring8_mixture_arrays()
    return scoresde.GaussianMixture(w, m, diag=v), NumpyMixtureEps(w, m, v)


def points(n=200, d=2, seed=0):
    return np.random.default_rng(seed).standard_normal((n, d)) * 3


def test_eps_matches_the_formula(ring):
    mix, ref = ring
    x = points()
    for a, s in [(1.0, 0.1), (0.6, 0.8), (0.05, 0.999), (1.0, 50.0)]:
        got = mix.eps(x, a, s)
        want = ref.eps(x, a, s)
        assert np.abs(got - want).max() <= 1e-12 * max(1.0, np.abs(want).max())


def test_parameterisation_identities(ring):
    mix, _ = ring
    x = points()
    a, s = 0.6, 0.8
    eps = mix.eps(x, a, s)
    np.testing.assert_allclose(mix.score(x, a, s), -eps / s, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(mix.x0(x, a, s), (x - s * eps) / a, rtol=1e-12, atol=1e-12)
    # k-diffusion's D: the same posterior mean in x~ = x / alpha against sigma~ = sigma / alpha.
    np.testing.assert_allclose(mix.denoiser(x / a, s / a), mix.x0(x, a, s), rtol=1e-12, atol=1e-12)


def test_log_prob_matches_the_formula(ring):
    mix, ref = ring
    x = points()
    a, s = 0.7, 0.5
    c = a * a * ref.var + s * s
    diff = x[:, None, :] - a * ref.means[None]
    comp = ref.log_w[None] - 0.5 * np.sum(diff**2 / c[None] + np.log(2 * np.pi * c)[None], axis=2)
    top = comp.max(axis=1)
    want = top + np.log(np.exp(comp - top[:, None]).sum(axis=1))
    np.testing.assert_allclose(mix.log_prob(x, a, s), want, rtol=1e-12, atol=1e-12)


def test_samples_are_seeded_and_have_the_exact_moments():
    mix = scoresde.target("aniso16")
    n = 20000
    x = mix.sample(n, seed=5)
    assert np.array_equal(x, mix.sample(n, seed=5)) and not np.array_equal(x, mix.sample(n, seed=6))
    mean, cov = mix.moments()
    # Each coordinate's sample mean within 5 standard errors: two-sided false-positive rate
    # 5.7e-7 per coordinate, 1e-5 for all 16.
    se = np.sqrt(np.diag(cov) / n)
    assert np.all(np.abs(x.mean(axis=0) - mean) <= 5 * se)


def test_moments_of_a_single_gaussian():
    mu = np.array([1.0, -2.0])
    s = np.array([[2.0, 0.3], [0.3, 0.5]])
    g = scoresde.GaussianMixture([1.0], [mu], full=[s])
    mean, cov = g.moments(0.6, 0.8)
    np.testing.assert_allclose(mean, 0.6 * mu, rtol=1e-15)
    np.testing.assert_allclose(cov, 0.36 * s + 0.64 * np.eye(2), rtol=1e-14)
    np.testing.assert_allclose(g.covariances[0], s, rtol=1e-15)


def test_every_covariance_form_and_json_round_trip():
    w, m = [0.25, 0.75], [[0.0, 1.0], [2.0, -1.0]]
    iso = scoresde.GaussianMixture(w, m, variances=[0.5, 2.0])
    diag = scoresde.GaussianMixture(w, m, diag=[[0.5, 0.5], [2.0, 2.0]])
    full = scoresde.GaussianMixture(w, m, full=[np.eye(2) * 0.5, np.eye(2) * 2.0])
    x = points(50)
    for other in (diag, full):
        np.testing.assert_allclose(other.eps(x, 0.9, 0.4), iso.eps(x, 0.9, 0.4), rtol=1e-12, atol=1e-14)
    back = scoresde.GaussianMixture.from_json_str(full.to_json())
    assert np.array_equal(back.eps(x, 0.9, 0.4), full.eps(x, 0.9, 0.4))
    from_dict = scoresde.GaussianMixture.from_dict(json.loads(iso.to_json()))
    assert np.array_equal(from_dict.means, iso.means) and from_dict.n_components == 2 and from_dict.dim == 2


def test_builtin_names():
    assert set(scoresde.builtin_targets()) == {"ring8", "aniso16", "gauss2", "quad4", "diag16"}
    with pytest.raises(ValueError, match="ring9"):
        scoresde.target("ring9")


def cli_message(tmp, target):
    path = tmp / "bad.json"
    path.write_text(json.dumps(target))
    code, err = run_cli("sample", "--target", str(path), "--steps", "2", "--n", "2", "--out", str(tmp / "o.npy"))
    assert code == 1 and err.startswith("error: ")
    assert not (tmp / "o.npy").exists()
    return err[len("error: "):], path


@pytest.mark.parametrize(
    "target",
    [
        {"weights": [-0.5, 1.5], "means": [[0, 0], [1, 1]], "variances": [1, 1]},
        {"weights": [0.5, 0.6], "means": [[0, 0], [1, 1]], "variances": [1, 1]},
        {"weights": [0.5, 0.5], "means": [[0, 0], [1, 1]], "variances": [1, -1]},
        {"weights": [0.5, 0.5], "means": [[0, 0], [1, 1]], "diag": [[1, 1], [1, 0]]},
        {"weights": [1.0], "means": [[0, 0]], "full": [[[1, 2], [2, 1]]]},
        {"weights": [1.0], "means": [[0, 0]], "full": [[[1, 0.5], [0.4, 1]]]},
        {"weights": [0.5, 0.5], "means": [[0, 0]], "variances": [1, 1]},
    ],
)
def test_bad_targets_raise_the_cli_message(tmp, target):
    message, path = cli_message(tmp, target)
    with pytest.raises(ValueError) as e:
        scoresde.GaussianMixture.from_json(path)
    assert str(e.value) == message
    with pytest.raises(ValueError) as e:
        scoresde.sample(target=target, steps=2, n=2)
    assert str(e.value) == message
    cov = {k: target[k] for k in ("variances", "diag", "full") if k in target}
    with pytest.raises(ValueError) as e:
        scoresde.GaussianMixture(target["weights"], target["means"], **cov)
    # The constructor validates as the JSON reader does; shape messages name the same fields.
    assert str(e.value).split(":")[0].split(" ")[0] in message


def test_bad_method_input(ring):
    mix, _ = ring
    with pytest.raises(ValueError, match=r"^sigma = -1: must be finite and >= 0$"):
        mix.eps(points(), 1.0, -1.0)
    with pytest.raises(ValueError, match=r"^alpha = inf"):
        mix.score(points(), float("inf"), 1.0)
    with pytest.raises(ValueError, match=r"^sigma = 1e200: its square overflows f64$"):
        mix.eps(points(), 1.0, 1e200)
    with pytest.raises(ValueError, match=r"sigma = 0: alpha\^2 S_k"):
        mix.log_prob(points(), 0.0, 0.0)
    with pytest.raises(ValueError, match=r"^x: shape \(200, 3\) but the target has dimension 2$"):
        mix.eps(points(d=3), 1.0, 1.0)
    bad = points()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"^x\[7\] = NaN: must be finite$"):
        mix.eps(bad, 1.0, 1.0)
    with pytest.raises(ValueError, match=r"^x: shape \[200\] has 1 dimension"):
        mix.eps(points()[:, 0], 1.0, 1.0)
    with pytest.raises(ValueError, match="x: cannot be read as a float64 array"):
        mix.eps("abc", 1.0, 1.0)
    with pytest.raises(ValueError, match="^n = 0"):
        mix.sample(0)
    with pytest.raises(ValueError, match="missing covariance"):
        scoresde.GaussianMixture([1.0], [[0.0]])
    with pytest.raises(ValueError, match="more than one covariance"):
        scoresde.GaussianMixture([1.0], [[0.0]], variances=[1.0], diag=[[1.0]])
