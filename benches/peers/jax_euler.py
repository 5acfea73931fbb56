"""Peer timing for issue 8: the VP probability-flow ODE in t with the exact mixture score in its
matrix-product form, Euler, f64, N particles, 100 NFE, in JAX/diffrax (XLA-compiled) and numpy.

Prints one Markdown row per case with particle-NFE/s, the same unit as `scoresde bench`.
Usage: python benches/peers/jax_euler.py [--n 100000] [--steps 100] [--repeats 3]
(needs jax, diffrax and numpy; see the README's performance section).

With `--scoresde target/release/scoresde --rounds R` it times diffrax and `scoresde bench`
alternately, R rounds (each the best of --repeats), and prints each round's speed ratio and their
median: on a machine whose speed drifts between runs, the ratio of interleaved runs is the
measurement to trust.
"""
import argparse
import math
import statistics
import subprocess
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


def start(n, d):
    """The N x d starting points every program here integrates from."""
    return np.random.default_rng(0).standard_normal((n, d))


def diffrax_solver(jax, jnp, diffrax, tgt, z, a):
    """A function running the jit-compiled diffrax Euler solve of `tgt` from `z` (compiled on
    first call)."""
    w, mu, var = tgt
    z = jnp.asarray(z)
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

    return lambda: solve(z).block_until_ready()


def scoresde_rates(a):
    """particle-NFE/s of `scoresde bench`'s Euler sample rows, by target."""
    out = subprocess.run(
        [a.scoresde, "bench", "--n", str(a.n), "--repeats", str(a.repeats)],
        check=True, capture_output=True, text=True).stdout
    rates = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 8 and cells[0] == "sample: euler, t":
            if int(cells[5]) != a.steps:
                raise SystemExit(f"scoresde bench ran {cells[5]} NFE, not --steps {a.steps}")
            rates[cells[1]] = float(cells[7])
    return rates


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--scoresde", help="path of the scoresde binary: time it and diffrax alternately")
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds with --scoresde")
    a = ap.parse_args()
    import jax

    jax.config.update("jax_enable_x64", True)
    import diffrax
    import jax.numpy as jnp

    if a.scoresde:
        solvers = {}
        for name, tgt in [("ring8", ring8()), ("diag16", diag16())]:
            solvers[name] = diffrax_solver(jax, jnp, diffrax, tgt, start(a.n, tgt[1].shape[1]), a)
        ratios = {name: [] for name in solvers}
        print("| round | target | diffrax particle-NFE/s | scoresde particle-NFE/s | ratio |")
        print("|---|---|---|---|---|")
        for r in range(a.rounds):
            peer = {name: a.n * a.steps / bench(fn, a.repeats) for name, fn in solvers.items()}
            ours = scoresde_rates(a)
            for name in solvers:
                ratio = ours[name] / peer[name]
                ratios[name].append(ratio)
                print(f"| {r + 1} | {name} | {peer[name]:.3e} | {ours[name]:.3e} | {ratio:.2f} |")
        for name, rs in ratios.items():
            print(f"{name}: median ratio scoresde / diffrax over {len(rs)} rounds = {statistics.median(rs):.2f} "
                  f"(min {min(rs):.2f}, max {max(rs):.2f})")
        return
    print("| peer | target | N | d | K | NFE | seconds | particle-NFE/s |")
    print("|---|---|---|---|---|---|---|---|")
    for name, tgt in [("ring8", ring8()), ("diag16", diag16())]:
        w, mu, var = tgt
        k, d = mu.shape
        z = start(a.n, d)
        s = bench(diffrax_solver(jax, jnp, diffrax, tgt, z, a), a.repeats)
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
