"""Peer timing for issue 16: the score network's forward pass and training step against a
jit-compiled JAX twin, f64, on one machine in one run.

The twin is the architecture of `scoresde train`'s default network (src/nn/mlp.rs): the input
is x, the conditioning value c and sin / cos of c * pi 2^k / 4 for k < 8; a linear layer to
width 64; 3 residual blocks h + W1 silu(W0 silu(h) + b0) + b1; the output W silu(h) + b, d = 2.
Weights are drawn as ours are (uniform in +-1/sqrt(fan_in), the last layer scaled by 0.1, zero
biases). The training step is ours too: a batch of the ring8 mixture (x0 from a component drawn
by weight), t ~ U(1e-3, 1), x_t = alpha x0 + sigma eps on the VP process (beta 0.1..20), the
eps loss mean_rows |eps_hat - eps|^2 / d, its gradient, AdamW (lr 2e-3, betas 0.9 / 0.999,
eps 1e-8) and the EMA of the weights (0.999), all in one jit-compiled function.

Usage: python benches/peers/jax_mlp.py --scoresde target/release/scoresde
       [--model plots/ring8_vp_model.safetensors] [--n 10000 100000] [--batch 256 4096]
       [--rounds 3] [--repeats 10]
Each round times the twin (best of --repeats after a warm-up) and then `scoresde bench
--network MODEL` (the same), and prints each ratio JAX time / scoresde time (above 1: scoresde
is faster); the medians over the rounds close the output. Needs jax, optax and numpy.
"""
import argparse
import math
import statistics
import subprocess

import numpy as np

# The ring8 target, the VP constants and best-of-repeats timing are jax_euler.py's (same folder).
from jax_euler import BETA_MAX, BETA_MIN, T_END, ring8
from jax_euler import bench as best

D, WIDTH, DEPTH, FREQS = 2, 64, 3, 8


def init(rng):
    def layer(fan_in, fan_out, scale=1.0):
        bound = scale / math.sqrt(fan_in)
        return rng.uniform(-bound, bound, (fan_in, fan_out)), np.zeros(fan_out)

    return {
        "in": layer(D + 1 + 2 * FREQS, WIDTH),
        "blocks": [(layer(WIDTH, WIDTH), layer(WIDTH, WIDTH)) for _ in range(DEPTH)],
        "out": layer(WIDTH, D, 0.1),
    }


def make(jax, jnp, optax):
    freqs = jnp.asarray(np.pi * 2.0 ** np.arange(FREQS) / 4)
    silu = jax.nn.silu

    def forward(p, x, c):
        a = c * freqs
        h = jnp.concatenate([x, c, jnp.sin(a), jnp.cos(a)], 1) @ p["in"][0] + p["in"][1]
        for l0, l1 in p["blocks"]:
            z = silu(h) @ l0[0] + l0[1]
            h = h + silu(z) @ l1[0] + l1[1]
        return silu(h) @ p["out"][0] + p["out"][1]

    w, mu, var = (jnp.asarray(v) for v in ring8())
    opt = optax.adamw(2e-3, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0)

    def loss(p, key, batch):
        kc, kz, kt, ke = jax.random.split(key, 4)
        comp = jax.random.choice(kc, w.shape[0], (batch,), p=w)
        x0 = mu[comp] + jnp.sqrt(var[comp]) * jax.random.normal(kz, (batch, D))
        t = jax.random.uniform(kt, (batch, 1), minval=T_END, maxval=1.0)
        log_alpha = -0.25 * t**2 * (BETA_MAX - BETA_MIN) - 0.5 * t * BETA_MIN
        alpha = jnp.exp(log_alpha)
        sigma = jnp.sqrt(-jnp.expm1(2 * log_alpha))
        eps = jax.random.normal(ke, (batch, D))
        eps_hat = forward(p, alpha * x0 + sigma * eps, t)
        return jnp.mean(jnp.sum((eps_hat - eps) ** 2, 1)) / D

    def step(p, ema, state, key, batch):
        value, g = jax.value_and_grad(loss)(p, key, batch)
        updates, state = opt.update(g, state, p)
        p = optax.apply_updates(p, updates)
        ema = jax.tree_util.tree_map(lambda e, q: 0.999 * e + 0.001 * q, ema, p)
        return p, ema, state, value

    return jax.jit(forward), jax.jit(step, static_argnums=4), opt


def ours(a, n):
    """Seconds of scoresde's fused forward at N = n and of its train steps, by batch."""
    cmd = [a.scoresde, "bench", "--network", a.model, "--n", str(n), "--repeats", str(a.repeats)]
    for b in a.batch:
        cmd += ["--train-batch", str(b)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    forward, train = None, {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0] == "forward (one NFE)" and cells[1] == "fused":
            forward = float(cells[3])
        elif len(cells) == 5 and cells[0] == "train step (AdamW)" and cells[1] == "fused":
            train[int(cells[2])] = float(cells[3])
    return forward, train


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scoresde", required=True, help="path of the scoresde binary")
    ap.add_argument("--model", default="plots/ring8_vp_model.safetensors")
    ap.add_argument("--n", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--batch", type=int, nargs="+", default=[256, 4096])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=10)
    a = ap.parse_args()
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import optax

    forward, step, opt = make(jax, jnp, optax)
    rng = np.random.default_rng(0)
    params = jax.tree_util.tree_map(jnp.asarray, init(rng))
    inputs = {n: (jnp.asarray(rng.standard_normal((n, D))), jnp.full((n, 1), 0.5)) for n in a.n}
    state = {"p": params, "ema": params, "opt": opt.init(params), "key": jax.random.PRNGKey(0)}

    def train(batch):
        state["key"], k = jax.random.split(state["key"])
        p, ema, s, value = step(state["p"], state["ema"], state["opt"], k, batch)
        value.block_until_ready()
        state.update(p=p, ema=ema, opt=s)

    ratios = {}
    print(f"JAX {jax.__version__} on {jax.devices()[0].platform}, f64, best of {a.repeats}")
    print()
    print("| round | case | N or batch | JAX ms | scoresde ms | JAX / scoresde |")
    print("|---|---|---|---|---|---|")
    for r in range(a.rounds):
        for i, n in enumerate(a.n):
            x, c = inputs[n]
            peer = best(lambda: forward(params, x, c).block_until_ready(), a.repeats)
            fwd, trains = ours(a, n)
            rows = [("forward", n, peer, fwd)]
            if i == 0:
                rows += [("train step", b, best(lambda: train(b), a.repeats), trains[b]) for b in a.batch]
            for case, size, p, o in rows:
                ratios.setdefault((case, size), []).append(p / o)
                print(f"| {r + 1} | {case} | {size} | {p * 1e3:.3f} | {o * 1e3:.3f} | {p / o:.2f} |")
    print()
    for (case, size), rs in ratios.items():
        print(f"{case} at {size}: median JAX / scoresde over {len(rs)} rounds = {statistics.median(rs):.2f} "
              f"(min {min(rs):.2f}, max {max(rs):.2f})")


if __name__ == "__main__":
    main()
