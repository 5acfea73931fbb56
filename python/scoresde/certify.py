"""certify: the convergence order of anyone's sampler, measured against exact laws.

A sampler here is a function ``sampler(denoiser, x, sigmas) -> x`` in k-diffusion's
convention: x is the (N, d) state x~ = x / alpha at sigmas[0], sigmas are the sigma~ levels from
noise to data, and ``denoiser(x, sigma)`` returns E[x0 | x0 + sigma eps = x] for an (N, d) array
and a float. certify runs it with the exact denoiser on a ladder of step counts:

- on a single Gaussian target, where every deterministic sampler built from the denoiser is an
  affine map of its input, probing it with 0 and sigma_max times the unit vectors gives the
  exact law N(b, A A^T) of its output for x = sigma_max z, z ~ N(0, I), and so its exact W2 to
  the law of the exact probability flow from the same start: discretisation error alone, with
  no Monte Carlo error. A further random probe checks that the map is affine.
- on a mixture target, the mean distance between the sampler's output and a tight adaptive
  Dormand-Prince solution (scoresde's dopri5 in sigma space) from the same draws: the path
  error, where the score is not affine.

The fitted orders are least-squares slopes of log error against log NFE (NFE counted as the
calls the sampler makes), over the rungs whose error is above the floor of the measurement.
"""

from __future__ import annotations

import math

import numpy as np

from . import _scoresde

# W2 by the Bures formula is the square root of a difference of O(1) traces: below about 1e-6
# the distance between two O(1) Gaussians is round-off (1e-7 was seen as a floor), not
# discretisation error, so smaller values are left out of the fit.
W2_FLOOR = 1e-6


def _mixture(value, name):
    from . import _target

    mixture, word = _target(value)
    if mixture is None:
        mixture = _scoresde.target(word) if word in _scoresde.builtin_targets() else _scoresde.GaussianMixture.from_json(word)
    return mixture


def sigma_ladder(schedule, steps, sigma_max, sigma_min, rho=7.0):
    """The steps + 1 sigma~ levels from sigma_max to sigma_min (no appended zero):
    "karras" (Karras et al. 2022, eq. 5, with rho), "loglinear" (uniform in log sigma)."""
    ramp = np.linspace(0.0, 1.0, steps + 1)
    if schedule == "karras":
        lo, hi = sigma_min ** (1.0 / rho), sigma_max ** (1.0 / rho)
        return (hi + ramp * (lo - hi)) ** rho
    if schedule == "loglinear":
        return np.exp(math.log(sigma_max) + ramp * (math.log(sigma_min) - math.log(sigma_max)))
    raise ValueError(f"schedule = {schedule!r}: unknown (expected karras or loglinear)")


def fit_order(nfe, err, floor):
    """-slope of log err against log nfe by least squares over the points with err > floor;
    None with fewer than three such points."""
    pts = [(math.log(n), math.log(e)) for n, e in zip(nfe, err) if e is not None and e > floor and math.isfinite(e)]
    if len(pts) < 3:
        return None
    x = np.array([p[0] for p in pts])
    y = np.array([p[1] for p in pts])
    slope = np.polyfit(x, y, 1)[0]
    return float(-slope)


class _Counted:
    """The exact denoiser, counting calls and checking what the sampler hands it."""

    def __init__(self, mixture):
        self.mixture = mixture
        self.calls = 0

    def __call__(self, x, sigma):
        self.calls += 1
        return self.mixture.denoiser(np.asarray(x, dtype=np.float64), float(sigma))


def _run(sampler, mixture, x, sigmas):
    den = _Counted(mixture)
    out = sampler(den, x.copy(), sigmas.copy())
    out = np.asarray(out, dtype=np.float64)
    if out.shape != x.shape:
        raise ValueError(f"sampler returned shape {out.shape} for an input of shape {x.shape}")
    if not np.all(np.isfinite(out)):
        raise ValueError(f"sampler returned non-finite values on a grid of {len(sigmas) - 1} steps")
    return out, den.calls


def certify(
    sampler,
    order=None,
    *,
    steps=(64, 96, 128, 192, 256),
    schedule="loglinear",
    sigma_max=80.0,
    sigma_min=0.002,
    rho=7.0,
    gaussian="gauss2",
    mixture="ring8",
    n=256,
    seed=0,
    rtol=1e-10,
    atol=1e-10,
    tolerance=0.15,
):
    """Certify a sampler's convergence order against exact laws; returns a dict.

    sampler: sampler(denoiser, x, sigmas) -> x in k-diffusion's convention (module docs).
    order: the declared order; `passed` says whether the fitted order is within `tolerance`.
    steps: the ladder of step counts; schedule ("loglinear": uniform in log sigma, or
        "karras"), sigma_max, sigma_min and rho make each grid (steps + 1 levels, no appended
        zero, so a sampler's special last step to sigma = 0 is not exercised). The default
        ladder is long enough to be asymptotic: with it, numpy Euler, Heun, DPM-Solver++(2M)
        and diffusers' 3M weighting fit 0.99, 2.02, 2.00 and 2.05 (shorter or Karras ladders
        fit 3M's slow approach to order 2 as 1.6-1.9 or as 3). Each call takes well under a second.
    gaussian: a single-Gaussian target (GaussianMixture, built-in name, path or dict) for the
        exact W2; mixture: the target of the path error (None skips it); n, seed: its draws;
        rtol, atol: the tolerances of its Dormand-Prince reference.

    Keys of the result: fitted_order (slope of the exact W2 on the Gaussian), path_order (slope
    of the path error on the mixture), table (one dict per rung: steps, nfe, w2, path_error,
    affine_residual), declared_order, passed, affine (whether every Gaussian probe was affine
    to 1e-9 relative), and the settings used.
    """
    gauss = _mixture(gaussian, "gaussian")
    if gauss.n_components != 1:
        raise ValueError(f"gaussian: {gauss.n_components} components: the exact law needs a single Gaussian")
    steps = [int(k) for k in steps]
    if len(steps) < 3 or any(k < 1 for k in steps):
        raise ValueError(f"steps = {steps}: need at least three step counts, each >= 1")
    if not (0.0 < sigma_min < sigma_max and math.isfinite(sigma_max)):
        raise ValueError(f"sigma_min = {sigma_min}, sigma_max = {sigma_max}: need 0 < sigma_min < sigma_max < inf")
    d = gauss.dim
    rng = np.random.Generator(np.random.PCG64(seed))
    probe = rng.standard_normal(d)
    mix = _mixture(mixture, "mixture") if mixture is not None else None
    z = rng.standard_normal((n, mix.dim)) if mix is not None else None
    reference = None
    if mix is not None:
        from . import sample

        reference = sample(
            target=mix, process="edm", sigma_max=float(sigma_max), sigma_min=float(sigma_min), solver="dopri5",
            sigma_start=float(sigma_max), sigma_end=float(sigma_min), rtol=rtol, atol=atol, z_init=z,
        )
    exact_mean, exact_cov = _scoresde.flow_law_sigma(gauss, float(sigma_max), float(sigma_min))
    table = []
    affine = True
    for k in steps:
        sigmas = sigma_ladder(schedule, k, sigma_max, sigma_min, rho)
        # Rows: z = 0, z = e_1 .. e_d, and one random z to test that the map is affine.
        x = np.vstack([np.zeros((1, d)), np.eye(d), probe[None, :]]) * sigma_max
        out, nfe = _run(sampler, gauss, x, sigmas)
        b = out[0]
        a = (out[1 : d + 1] - b).T
        predicted = b + a @ probe
        scale = max(1.0, float(np.abs(out).max()))
        residual = float(np.abs(out[d + 1] - predicted).max() / scale)
        affine = affine and residual < 1e-9
        w2 = _scoresde.gaussian_w2(b, a @ a.T, exact_mean, exact_cov)
        row = {"steps": k, "nfe": nfe, "w2": w2, "affine_residual": residual, "path_error": None}
        if mix is not None:
            xm, nfe_m = _run(sampler, mix, sigma_max * z, sigmas)
            row["path_error"] = float(np.mean(np.sqrt(np.sum((xm - reference) ** 2, axis=1))))
            row["nfe_mixture"] = nfe_m
        table.append(row)
    nfe = [r["nfe"] for r in table]
    fitted = fit_order(nfe, [r["w2"] for r in table], W2_FLOOR)
    path_floor = 100.0 * max(rtol, atol) * max(1.0, float(np.abs(reference).max())) if mix is not None else 0.0
    path_order = fit_order(nfe, [r["path_error"] for r in table], path_floor) if mix is not None else None
    passed = None
    if order is not None:
        passed = bool(fitted is not None and affine and abs(fitted - order) <= tolerance)
    return {
        "fitted_order": fitted,
        "path_order": path_order,
        "declared_order": order,
        "passed": passed,
        "affine": affine,
        "table": table,
        "tolerance": tolerance,
        "schedule": schedule,
        "sigma_max": sigma_max,
        "sigma_min": sigma_min,
        "rho": rho,
        "w2_floor": W2_FLOOR,
        "path_floor": path_floor,
    }
