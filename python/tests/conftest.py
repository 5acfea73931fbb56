"""Shared paths and helpers of the package's tests."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
CASES = os.path.join(ROOT, "tests", "reference", "cases")
CLI = os.environ.get("SCORESDE_BIN", os.path.join(ROOT, "target", "release", "scoresde"))


def run_cli(*args):
    """Runs the command line; returns (exit code, stderr). Fails the test if it is not built."""
    if not os.path.exists(CLI):
        pytest.fail(f"{CLI} is missing: build it with `cargo build --release` (the README's test command does)")
    r = subprocess.run([CLI, *args], capture_output=True, text=True, timeout=300)
    return r.returncode, r.stderr.strip()


def manifests():
    for name in sorted(os.listdir(CASES)):
        path = os.path.join(CASES, name, "manifest.json")
        if os.path.exists(path):
            with open(path) as f:
                yield json.load(f)


@pytest.fixture
def tmp(tmp_path):
    return tmp_path


def ring8_mixture_arrays():
    """weights (K,), means (K, d), diagonal variances (K, d) of the reference problem."""
    pdir = os.path.join(CASES, "problems", "ring8_d2")
    with open(os.path.join(pdir, "problem.json")) as f:
        prob = json.load(f)
    return np.array(prob["weights"]), np.array(prob["means"]), np.load(os.path.join(pdir, "variances.npy"))
