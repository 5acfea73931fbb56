"""Peer timing for issue 8: the VP probability-flow ODE in t with the exact mixture score in its
matrix-product form, Euler, f64, N particles, 100 NFE, in JAX/diffrax (XLA-compiled) and numpy.

Prints one Markdown row per case with particle-NFE/s, the same unit as `scoresde bench`.
Usage: python benches/peers/jax_euler.py [--n 100000] [--steps 100] [--repeats 3]
(needs jax, diffrax and numpy; see the README's performance section).
"""
import argparse
import math
import time

import numpy as np

BETA_MIN, BETA_MAX, T_END = 0.1, 20.0, 1e-3


def ring8():
    k = 8
    w = np.array([1 / 12 if i % 2 == 0 else 1 / 6 for i in range(k)])
    a = 2 * np.pi * np.arange(k) / k
    mu = 3.0 * np.stack([np.cos(a), np.sin(a)], 1)
    v = np.array([0.03, 0.05, 0.08])[np.arange(k) % 3]
    return w, mu, np.repeat(v[:, None], 2, 1)


def diag16():
    k, d = 8, 16
    mu = np.zeros((k, d))
    for c in range(k):
        ph = 2 * np.pi * c / k
        mu[c, 0], mu[c, 1] = 4 * np.cos(ph), 4 * np.sin(ph)
        for j in range(2, d):
            mu[c, j] = 0.5 * np.sin((c + 1) * j * 0.7)
    var = np.array([[10 ** (-2 * ((i + c) % d) / (d - 1)) for i in range(d)] for c in range(k)])
    return np.full(k, 1 / k), mu, var


def vp(t):
    log_alpha = -0.25 * t**2 * (BETA_MAX - BETA_MIN) - 0.5 * t * BETA_MIN
    return log_alpha, BETA_MIN + t * (BETA_MAX - BETA_MIN)


def make_drift(xp, w, mu, var):
    lw = xp.log(xp.asarray(w))
    mu, var = xp.asarray(mu), xp.asarray(var)

    def drift(t, x):
        log_alpha, beta = vp(t)
        alpha = xp.exp(log_alpha)
        s2 = -xp.expm1(2 * log_alpha)
        c = alpha**2 * var + s2  # K x d marginal variances
        p = 1.0 / c
        m = alpha * mu
        pm = p * m
        const = lw - 0.5 * xp.sum(xp.log(c) + m * pm, 1)
        lt = -0.5 * (x * x) @ p.T + x @ pm.T + const  # N x K, matrix products
        lt = lt - lt.max(1, keepdims=True)
        e = xp.exp(lt)
        r = e / e.sum(1, keepdims=True)
        score = -(r @ p) * x + r @ pm
        return -0.5 * beta * x - 0.5 * beta * score

    return drift


def bench(fn, repeats):
    fn()
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    import jax

    jax.config.update("jax_enable_x64", True)
    import diffrax
    import jax.numpy as jnp

    print("| peer | target | N | d | K | NFE | seconds | particle-NFE/s |")
    print("|---|---|---|---|---|---|---|---|")
    for name, tgt in [("ring8", ring8()), ("diag16", diag16())]:
        w, mu, var = tgt
        k, d = mu.shape
        z = np.random.default_rng(0).standard_normal((a.n, d))
        drift_j = make_drift(jnp, w, mu, var)
        term = diffrax.ODETerm(lambda t, y, args: drift_j(t, y))
        dt = -(1.0 - T_END) / a.steps

        @jax.jit
        def solve(y0):
            sol = diffrax.diffeqsolve(
                term, diffrax.Euler(), t0=1.0, t1=T_END, dt0=dt, y0=y0,
                saveat=diffrax.SaveAt(t1=True), max_steps=a.steps + 1,
                stepsize_controller=diffrax.ConstantStepSize())
            return sol.ys

        zj = jnp.asarray(z)
        s = bench(lambda: solve(zj).block_until_ready(), a.repeats)
        print(f"| diffrax Euler (jit) | {name} | {a.n} | {d} | {k} | {a.steps} | {s:.3f} | {a.n * a.steps / s:.2e} |")

        drift_n = make_drift(np, w, mu, var)

        def numpy_loop():
            x = z.copy()
            ts = np.linspace(1.0, T_END, a.steps + 1)
            for t0, t1 in zip(ts[:-1], ts[1:]):
                x += (t1 - t0) * drift_n(t0, x)
            return x

        s = bench(numpy_loop, a.repeats)
        print(f"| numpy loop | {name} | {a.n} | {d} | {k} | {a.steps} | {s:.3f} | {a.n * a.steps / s:.2e} |")


if __name__ == "__main__":
    main()
