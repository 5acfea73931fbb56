#!/usr/bin/env python3
"""What the Python package costs, measured side by side in one run.

  python3 benches/python_overhead.py [--bin target/release/scoresde] [--rounds 5]

1. Built-in target: `scoresde.sample(...)` in process against the `scoresde sample` command
   line on the same flags (ring8, Heun, 50 steps, N = 10^5), alternating rounds; the command
   line's wall time includes its start and its .npy write, the package's its array return.
2. Python callable: a numpy eps of the ring8 mixture at N = 10^4, d = 2, driven by Euler and
   by DPM-Solver++(2M) (one call per step); the time per NFE outside the callable (the
   crossing into Python, the copies, the solver's own arithmetic) against the callable's own
   time per call, measured inside the same runs. Once with a fresh output array per call (its
   deallocation, when the package drops it, counts as outside: with glibc it can be an munmap)
   and once with one preallocated output array.
Prints one line per measurement and the ratios. Needs numpy and the installed package.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

import scoresde

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python", "tests"))
from numpy_mixture import NumpyMixtureEps  # noqa: E402


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


class Preallocated:
    """The same eps written into one output array, returned every call: the array the package
    receives is never freed, so no numpy deallocation lands outside the callable."""

    def __init__(self, f, n, d):
        self.f, self.out = f, np.empty((n, d))

    def __call__(self, x, t, a, s):
        self.out[...] = self.f(x, t, a, s)
        return self.out


class Timed:
    """Wraps a model callable, accumulating the time spent inside it."""

    def __init__(self, f):
        self.f, self.inside, self.calls = f, 0.0, 0

    def __call__(self, x, t, a, s):
        start = time.perf_counter()
        out = self.f(x, t, a, s)
        self.inside += time.perf_counter() - start
        self.calls += 1
        return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default="target/release/scoresde")
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    print(f"CPU: {cpu_name()}, {os.cpu_count()} logical cores")

    flags = dict(target="ring8", solver="heun", steps=50, n=100000, seed=0)
    words = [w for k, v in flags.items() for w in ("--" + k.replace("_", "-"), str(v))]
    cli, py = [], []
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "x.npy")
        for _ in range(a.rounds):
            start = time.perf_counter()
            subprocess.run([a.bin, "sample", *words, "--out", out, "--quiet"], check=True)
            cli.append(time.perf_counter() - start)
            start = time.perf_counter()
            x = scoresde.sample(**flags)
            py.append(time.perf_counter() - start)
        assert np.array_equal(np.load(out), x)
    c, p = statistics.median(cli), statistics.median(py)
    print(f"built-in ring8, heun, 50 steps, N=1e5: CLI {c:.3f} s, scoresde.sample {p:.3f} s (medians of {a.rounds}), "
          f"package / CLI = {p / c:.3f}")

    from conftest import ring8_mixture_arrays  # noqa: E402

    w, m, v = ring8_mixture_arrays()
    n = 10000
    cases = [
        (solver, kw, output)
        for solver, kw in [("euler", dict(steps=200)), ("dpmpp-2m", dict(steps=200, space="sigma"))]
        for output in ("fresh", "preallocated")
    ]
    for solver, kw, output in cases:
        overheads, inside = [], []
        for _ in range(a.rounds):
            eps = NumpyMixtureEps(w, m, v)
            model = Timed(eps if output == "fresh" else Preallocated(eps, n, 2))
            start = time.perf_counter()
            scoresde.sample(model=model, dim=2, n=n, solver=solver, seed=1, **kw)
            total = time.perf_counter() - start
            overheads.append((total - model.inside) / model.calls)
            inside.append(model.inside / model.calls)
        o, i = statistics.median(overheads), statistics.median(inside)
        print(f"callable numpy eps ({output} output array), {solver}, N=1e4, d=2: {i * 1e3:.3f} ms per call inside, "
              f"{o * 1e3:.4f} ms per NFE outside it: overhead {100 * o / i:.2f}% of the callable")


if __name__ == "__main__":
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python", "tests"))
    main()
