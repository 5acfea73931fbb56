"""scoresde.sample equals `scoresde sample` bit for bit on the same flags: the keywords are the
flags, and both run the same code on the same seeded draws."""

import json
import os

import numpy as np
import pytest

import scoresde
from conftest import run_cli

CONFIGS = [
    dict(solver="dpmpp-2m", steps=12, schedule="karras", space="sigma", n=300, seed=3),
    dict(solver="heun", process="ve", steps=9, n=200, seed=1, t_end=1e-4),
    dict(solver="euler-ancestral", steps=15, schedule="logsnr", space="sigma", n=256, seed=7, eta=0.5, s_noise=0.9),
    dict(solver="euler-maruyama", steps=20, n=128, seed=2, brownian=True),
    dict(solver="pc", steps=10, n=100, seed=5, snr=0.1, corrector_steps=2, predictor="ancestral"),
    dict(solver="dpm-solver", nfe=10, n=64, process="cosine"),
    dict(solver="dopri5", rtol=1e-6, atol=1e-6, n=50, target="quad4", process="subvp"),
    dict(solver="edm-sde", steps=8, space="sigma", schedule="karras", process="edm", s_churn=10.0, n=64, seed=4),
    dict(solver="dpmpp-3m", steps=10, space="sigma", lower_order_final=False, n=64, target="aniso16"),
    dict(solver="heun", steps=6, n=80, target="quad4", class_=1, guidance=2.0, classes="0,1;2,3"),
    dict(solver="heun", steps=6, n=80, target="quad4", class_=1, classifier_scale=2.0, classes="0,1;2,3"),
    dict(solver="dpmpp-2m", steps=8, n=80, target="quad4", class_=0, guidance=3.0, guidance_rule="apg", classes="0,1;2,3"),
    dict(solver="dpmpp-2m-cfg-pp", steps=8, n=80, target="quad4", class_=0, guidance=-0.4, classes="0,1;2,3"),
]


def cli_words(kw):
    words = []
    for key, value in kw.items():
        flag = "--" + key.rstrip("_").replace("_", "-")
        if value is True:
            words.append(flag)
        else:
            words += [flag, str(value).lower() if isinstance(value, bool) else str(value)]
    return words


@pytest.mark.parametrize("kw", CONFIGS, ids=[c["solver"] for c in CONFIGS])
def test_equals_cli(kw, tmp):
    out = tmp / "cli.npy"
    code, err = run_cli("sample", *cli_words(kw), "--out", str(out), "--quiet")
    assert code == 0, err
    x = scoresde.sample(**kw)
    assert np.array_equal(np.load(out), x)


def test_array_inputs_equal_file_inputs(tmp):
    rng = np.random.default_rng(0)
    z = rng.standard_normal((40, 2))
    sigmas = np.array([80.0, 20.0, 5.0, 1.0, 0.3, 0.05])
    noise = rng.standard_normal((5, 40, 2))
    np.save(tmp / "z.npy", z)
    np.save(tmp / "s.npy", sigmas)
    np.save(tmp / "n.npy", noise)
    flags = ["--solver", "euler-ancestral", "--process", "ve", "--sigma-max", "80"]
    code, err = run_cli("sample", *flags, "--z-init", str(tmp / "z.npy"), "--sigmas", str(tmp / "s.npy"),
                        "--noise", str(tmp / "n.npy"), "--out", str(tmp / "o.npy"), "--quiet")
    assert code == 0, err
    kw = dict(solver="euler-ancestral", process="ve", sigma_max=80.0)
    from_arrays = scoresde.sample(z_init=z, sigmas=sigmas, noise=noise, **kw)
    from_paths = scoresde.sample(z_init=tmp / "z.npy", sigmas=str(tmp / "s.npy"), noise=tmp / "n.npy", **kw)
    assert np.array_equal(np.load(tmp / "o.npy"), from_arrays)
    assert np.array_equal(from_arrays, from_paths)


def test_target_forms_agree(tmp):
    ring = scoresde.target("ring8")
    as_dict = json.loads(ring.to_json())
    path = tmp / "ring.json"
    path.write_text(ring.to_json())
    runs = [scoresde.sample(target=t, steps=5, n=20) for t in ("ring8", ring, as_dict, path, str(path))]
    for x in runs[1:]:
        assert np.array_equal(runs[0], x)


def test_out_writes_the_samples(tmp):
    x = scoresde.sample(steps=4, n=10, out=tmp / "s.npy")
    assert np.array_equal(np.load(tmp / "s.npy"), x)


def test_eval_and_nll_equal_cli(tmp):
    x = scoresde.sample(solver="dpmpp-2m", space="sigma", steps=20, n=500, seed=1)
    np.save(tmp / "x.npy", x)
    code, err = run_cli("eval", "--samples", str(tmp / "x.npy"), "--json", str(tmp / "m.json"), "--projections", "64")
    assert code == 0, err
    cli = json.loads((tmp / "m.json").read_text())
    py = scoresde.eval("ring8", x, projections=64)
    for key in cli:
        if key != "samples":
            assert py[key] == cli[key], key
    points = x[:20]
    np.save(tmp / "p.npy", points)
    code, err = run_cli("nll", "--points", str(tmp / "p.npy"), "--out", str(tmp / "l.npy"), "--prior", "exact")
    assert code == 0, err
    r = scoresde.nll("ring8", points, prior="exact")
    assert np.array_equal(r["log_likelihood"], np.load(tmp / "l.npy"))
    assert r["n"] == 20 and r["max_abs_error_vs_exact"] < 1e-4


def test_elbo_equals_cli(tmp):
    points = np.array([[-1.0, 0.1], [0.5, 0.5], [2.0, -1.5]])
    np.save(tmp / "p.npy", points)
    code, err = run_cli("elbo", "--target", "quad4", "--points", str(tmp / "p.npy"), "--draws", "32", "--out", str(tmp / "e.npy"))
    assert code == 0, err
    r = scoresde.elbo("quad4", points, draws=32)
    assert np.array_equal(r["elbo"], np.load(tmp / "e.npy"))
    assert r["n"] == 3 and np.all(r["se"] > 0) and np.isfinite(r["bits_per_dim"])
    with pytest.raises(ValueError, match="draws = 1"):
        scoresde.elbo("quad4", points, draws=1)
