"""certify on samplers written in the tests (kdiffusion_style.py) in k-diffusion's convention:
their orders are known from theory, so each fitted order must land within the certifier's
0.15 of it, and a broken sampler must be flagged."""

import numpy as np
import pytest

import scoresde
import kdiffusion_style as k


@pytest.mark.parametrize(
    "sampler, order, nfe_per_step",
    [(k.euler, 1, 1), (k.heun, 2, 2), (k.dpmpp_2m, 2, 1)],
    ids=["euler", "heun", "dpmpp_2m"],
)
def test_known_orders_certify(sampler, order, nfe_per_step):
    r = scoresde.certify(sampler, order=order)
    assert r["passed"] is True, r
    assert abs(r["fitted_order"] - order) <= 0.15
    # The mixture's path error falls at the same order (less cleanly: the score is not affine).
    assert abs(r["path_order"] - order) <= 0.3, r["path_order"]
    assert r["affine"]
    rows = r["table"]
    assert [row["steps"] for row in rows] == [64, 96, 128, 192, 256]
    assert [row["nfe"] for row in rows] == [nfe_per_step * row["steps"] for row in rows]
    assert all(rows[i + 1]["w2"] < rows[i]["w2"] for i in range(len(rows) - 1))


def test_a_broken_sampler_is_flagged():
    r = scoresde.certify(k.broken_heun, order=2)
    assert r["passed"] is False
    assert abs(r["fitted_order"] - 1) <= 0.15


def test_diffusers_3m_weighting_measures_order_two():
    r = scoresde.certify(k.dpmpp_3m_d2_weight_half, order=3)
    assert r["passed"] is False
    assert abs(r["fitted_order"] - 2) <= 0.15, r["fitted_order"]


def test_a_stochastic_sampler_is_not_affine():
    rng = np.random.default_rng(0)

    def noisy_euler(denoiser, x, sigmas):
        x = k.euler(denoiser, x, sigmas)
        return x + 1e-3 * rng.standard_normal(x.shape)

    r = scoresde.certify(noisy_euler, order=1, mixture=None)
    assert r["affine"] is False and r["passed"] is False and r["path_order"] is None


def test_certify_checks_its_input():
    with pytest.raises(ValueError, match="single Gaussian"):
        scoresde.certify(k.euler, gaussian="ring8")
    with pytest.raises(ValueError, match="at least three step counts"):
        scoresde.certify(k.euler, steps=(4, 8))
    with pytest.raises(ValueError, match="returned shape"):
        scoresde.certify(lambda d, x, s: x[:1], mixture=None)


def test_the_exact_flow_law_is_the_limit():
    """Heun at 4096 steps is within its own O(h^2) of the exact law certify compares against."""
    g = scoresde.target("gauss2")
    sigmas = np.exp(np.linspace(np.log(80.0), np.log(0.002), 4097))
    mean, cov = scoresde.flow_law("gauss2", 80.0, 0.002)
    x = np.vstack([np.zeros((1, 2)), 80.0 * np.eye(2)])
    out = k.heun(lambda y, s: g.denoiser(y, s), x, sigmas)
    a = (out[1:] - out[0]).T
    w2 = scoresde.gaussian_w2(out[0], a @ a.T, mean, cov)
    # 256 steps give ~3e-4 (test_known_orders_certify); order 2 makes 4096 steps 256x smaller.
    assert w2 < 3e-4 / 256 * 4


def test_gaussian_w2_matches_the_closed_form_in_one_dimension():
    assert scoresde.gaussian_w2([1.0], [[4.0]], [0.0], [[1.0]]) == pytest.approx(np.sqrt(1 + (2 - 1) ** 2), rel=1e-14)
