//! The command line as a user meets it: determinism across thread counts, prefix-stable seeds,
//! and one clear line plus a non-zero exit (and no output file) for every kind of bad input.

mod common;

use std::path::Path;
use std::process::Output;

use common::{bin, s, Dir};

use ndarray::{array, Array1, Array2};
use ndarray_npy::{read_npy, write_npy};

fn run(args: &[&str], threads: Option<usize>) -> Output {
    let mut c = bin();
    c.args(args);
    if let Some(t) = threads {
        c.env("RAYON_NUM_THREADS", t.to_string());
    }
    c.output().unwrap()
}

#[test]
fn same_seed_is_bit_identical_for_one_and_two_threads() {
    let tmp = Dir::new("cli", "threads");
    for solver in ["heun", "euler-maruyama", "dopri5"] {
        let (a, b) = (tmp.p("a.npy"), tmp.p("b.npy"));
        let mut args = vec![
            "sample", "--target", "aniso16", "--n", "3000", "--seed", "5", "--solver", solver, "--steps", "8",
            "--quiet",
        ];
        if solver == "dopri5" {
            args.truncate(args.len() - 3);
            args.extend(["--rtol", "1e-4", "--atol", "1e-4", "--quiet"]);
        }
        let out1 = run(&[&args[..], &["--out", s(&a)]].concat(), Some(1));
        let out2 = run(&[&args[..], &["--out", s(&b)]].concat(), Some(2));
        assert!(out1.status.success() && out2.status.success(), "{}", String::from_utf8_lossy(&out1.stderr));
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap(), "{solver}: outputs differ");
    }
}

#[test]
fn a_small_run_is_a_prefix_of_a_large_run() {
    let tmp = Dir::new("cli", "prefix");
    for solver in
        ["euler", "euler-maruyama", "ancestral", "reverse-diffusion", "euler-ancestral", "dpmpp-2m-sde", "edm-sde"]
    {
        let (small, large) = (tmp.p("s.npy"), tmp.p("l.npy"));
        for (n, out) in [("10", &small), ("1000", &large)] {
            let o = run(
                &["sample", "--n", n, "--seed", "7", "--solver", solver, "--steps", "20", "--quiet", "--out", s(out)],
                None,
            );
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        }
        let a: Array2<f64> = read_npy(&small).unwrap();
        let b: Array2<f64> = read_npy(&large).unwrap();
        assert_eq!(a, b.slice(ndarray::s![..10, ..]), "{solver}");
    }
}

#[test]
fn brownian_paths_make_step_counts_comparable() {
    // With --brownian every step count integrates the same Brownian path: Euler-Maruyama at 200
    // and 400 steps differ by its strong error O(h) (~1e-2 here), while with fresh per-step noise
    // the two runs are independent draws (differences of order the target's spread, ~2).
    let tmp = Dir::new("cli", "brownian");
    let load = |name: &str, steps: &str, brownian: bool| -> Array2<f64> {
        let out = tmp.p(name);
        let mut args =
            vec!["sample", "--solver", "euler-maruyama", "--n", "300", "--steps", steps, "--quiet", "--out", s(&out)];
        if brownian {
            args.push("--brownian");
        }
        let o = run(&args, None);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        read_npy(&out).unwrap()
    };
    let diff = |a: &Array2<f64>, b: &Array2<f64>| (a - b).iter().map(|v| v.abs()).sum::<f64>() / a.len() as f64;
    let same_path = diff(&load("b1.npy", "200", true), &load("b2.npy", "400", true));
    let fresh = diff(&load("k1.npy", "200", false), &load("k2.npy", "400", false));
    assert!(same_path < 0.1 && fresh > 0.5, "same path {same_path}, fresh noise {fresh}");
    // Prefix property holds for the tree too.
    let small = tmp.p("s.npy");
    let o = run(
        &[
            "sample",
            "--solver",
            "euler-maruyama",
            "--n",
            "10",
            "--steps",
            "200",
            "--brownian",
            "--quiet",
            "--out",
            s(&small),
        ],
        None,
    );
    assert!(o.status.success());
    let a: Array2<f64> = read_npy(&small).unwrap();
    assert_eq!(a, load("b3.npy", "200", true).slice(ndarray::s![..10, ..]));
}

#[test]
fn predictor_corrector_takes_its_noise_from_any_source() {
    // The corrector's moves are extra draws of the step, so the Brownian tree serves them too
    // (this exited 1 when noise was keyed by step index), bit-identically for any thread count; a
    // recorded file in the documented layout (main draws, then the corrector's) replays.
    let tmp = Dir::new("cli", "pc");
    let go = |extra: &[&str], name: &str, threads: usize| -> Array2<f64> {
        let out = tmp.p(name);
        let args = [&["sample", "--solver", "pc", "--steps", "10", "--quiet", "--out", s(&out)], extra].concat();
        let o = run(&args, Some(threads));
        assert!(o.status.success(), "{extra:?}: {}", String::from_utf8_lossy(&o.stderr));
        read_npy(&out).unwrap()
    };
    let b1 = go(&["--n", "2000", "--brownian"], "b1.npy", 1);
    assert_eq!(b1, go(&["--n", "2000", "--brownian"], "b2.npy", 2));
    assert!(b1.iter().all(|v| v.is_finite()));
    let euler = go(&["--n", "2000", "--brownian", "--predictor", "euler-maruyama"], "em.npy", 2);
    assert_ne!(euler, b1);
    // Recorded noise: zeros everywhere but in the corrector's slices [10, 20) changes the output;
    // zeros in the main slices [0, 10) and in the corrector's give the noise-free run.
    let z = tmp.p("z.npy");
    write_npy(&z, &ndarray::Array2::<f64>::from_elem((2000, 2), 0.3)).unwrap();
    let file = tmp.p("noise.npy");
    let mut noise = ndarray::Array3::<f64>::zeros((20, 2000, 2));
    write_npy(&file, &noise).unwrap();
    let quiet = go(&["--z-init", s(&z), "--noise", s(&file)], "q.npy", 2);
    noise.slice_mut(ndarray::s![10.., .., ..]).fill(1.0);
    write_npy(&file, &noise).unwrap();
    let corrected = go(&["--z-init", s(&z), "--noise", s(&file)], "c.npy", 2);
    assert_ne!(quiet, corrected);
}

#[test]
fn dpm_solver_fast_spends_exactly_its_budget() {
    let tmp = Dir::new("cli", "fast");
    for nfe in ["1", "2", "3", "10", "11", "12"] {
        let o =
            run(&["sample", "--solver", "dpm-solver", "--nfe", nfe, "--n", "20", "--out", s(&tmp.p("f.npy"))], None);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{err}");
        assert!(err.contains(&format!("NFE {nfe},")), "nfe {nfe}: {err}");
    }
}

#[test]
fn nll_matches_the_exact_density() {
    let tmp = Dir::new("cli", "nll");
    let (x, l) = (tmp.p("x.npy"), tmp.p("l.npy"));
    assert!(run(&["sample", "--n", "200", "--quiet", "--out", s(&x)], None).status.success());
    let o = run(&["nll", "--points", s(&x), "--out", s(&l), "--prior", "exact"], None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(m["max_abs_error_vs_exact"].as_f64().unwrap() < 1e-4, "{m}");
    let logp: Array1<f64> = read_npy(&l).unwrap();
    assert_eq!(logp.len(), 200);
    must_fail(
        &["nll", "--target", "aniso16", "--points", s(&x), "--out", s(&tmp.p("bad.npy"))],
        &tmp.p("bad.npy"),
        "dimension 16",
    );
}

/// Runs a command that must fail: non-zero exit, a one-line message containing `needle`, no output.
fn must_fail(args: &[&str], out: &Path, needle: &str) {
    let o = run(args, None);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{args:?} succeeded");
    assert!(err.contains(needle), "{args:?}: stderr {err:?} lacks {needle:?}");
    assert!(!out.exists(), "{args:?} left {}", out.display());
}

#[test]
fn bad_input_fails_cleanly_naming_the_field() {
    let tmp = Dir::new("cli", "bad");
    let out = tmp.p("out.npy");
    let o = s(&out);
    let write_json = |name: &str, text: &str| {
        let p = tmp.p(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let bad_weights =
        write_json("w.json", r#"{"weights": [0.5, 0.6], "means": [[0, 0], [1, 1]], "variances": [1, 1]}"#);
    must_fail(&["sample", "--target", s(&bad_weights), "--out", o], &out, "weights sum to 1.1");
    let neg = write_json("neg.json", r#"{"weights": [1.2, -0.2], "means": [[0, 0], [1, 1]], "variances": [1, 1]}"#);
    must_fail(&["sample", "--target", s(&neg), "--out", o], &out, "weights[1] = -0.2");
    let not_pd = write_json("pd.json", r#"{"weights": [1], "means": [[0, 0]], "full": [[[1, 2], [2, 1]]]}"#);
    must_fail(&["sample", "--target", s(&not_pd), "--out", o], &out, "not positive definite");
    let malformed = write_json("m.json", r#"{"weights": [1], "means": [[0, 0]]"#);
    must_fail(&["sample", "--target", s(&malformed), "--out", o], &out, "m.json");
    must_fail(&["sample", "--target", s(&tmp.p("missing.json")), "--out", o], &out, "missing.json");

    let grid = tmp.p("grid.npy");
    write_npy(&grid, &array![1.0, 0.5, 0.7]).unwrap();
    must_fail(&["sample", "--grid", s(&grid), "--out", o], &out, "grid[2] = 0.7");
    write_npy(&grid, &array![1.5, 0.5]).unwrap();
    must_fail(&["sample", "--grid", s(&grid), "--out", o], &out, "grid[0] = 1.5");
    write_npy(&grid, &array![0.5, 1.0]).unwrap();
    must_fail(&["sample", "--grid", s(&grid), "--out", o], &out, "noise to data");
    let g32 = tmp.p("g32.npy");
    write_npy(&g32, &Array1::<f32>::from(vec![1.0, 0.5])).unwrap();
    must_fail(&["sample", "--grid", s(&g32), "--out", o], &out, "g32.npy");

    must_fail(&["sample", "--steps", "0", "--out", o], &out, "steps = 0");
    must_fail(&["sample", "--solver", "heun", "--nfe", "10", "--out", o], &out, "--nfe = 10");
    must_fail(&["sample", "--solver", "rk5", "--out", o], &out, "rk5");
    must_fail(&["sample", "--beta-max", "nan", "--out", o], &out, "beta_max = NaN");
    must_fail(&["sample", "--solver", "euler", "--rtol", "1e-4", "--out", o], &out, "embedded pair");
    must_fail(&["sample", "--solver", "euler-maruyama", "--rtol", "1e-3", "--out", o], &out, "euler-maruyama");

    let z = tmp.p("z.npy");
    write_npy(&z, &array![[0.0, f64::NAN]]).unwrap();
    must_fail(&["sample", "--z-init", s(&z), "--out", o], &out, "z-init[1] = NaN");
    write_npy(&z, &array![[0.0, 1.0, 2.0]]).unwrap();
    must_fail(&["sample", "--z-init", s(&z), "--out", o], &out, "dimension 2");

    let noise = tmp.p("noise.npy");
    write_npy(&noise, &ndarray::Array3::<f64>::zeros((3, 4, 2))).unwrap();
    must_fail(
        &["sample", "--solver", "euler-maruyama", "--n", "4", "--steps", "5", "--noise", s(&noise), "--out", o],
        &out,
        "3 draws of noise but euler-maruyama needs 5",
    );
    // pc draws 1 + corrector_steps normals per step: 5 steps need 15 slices with 2 corrector moves.
    write_npy(&noise, &ndarray::Array3::<f64>::zeros((10, 4, 2))).unwrap();
    must_fail(
        &[
            "sample",
            "--solver",
            "pc",
            "--corrector-steps",
            "2",
            "--n",
            "4",
            "--steps",
            "5",
            "--noise",
            s(&noise),
            "--out",
            o,
        ],
        &out,
        "10 draws of noise but pc needs 15 (5 steps x 3 draws per step)",
    );

    // A state that overflows stops with the step and time.
    write_npy(&z, &array![[1e307, 0.0]]).unwrap();
    must_fail(
        &["sample", "--process", "ve", "--z-init", s(&z), "--steps", "4", "--out", o],
        &out,
        "non-finite state after step 0 (t 1 -> 0.75",
    );

    must_fail(&["eval", "--samples", s(&tmp.p("none.npy"))], &out, "none.npy");
}

#[test]
fn sample_then_eval_runs_and_reports_metrics() {
    let tmp = Dir::new("cli", "eval");
    let (x, j) = (tmp.p("x.npy"), tmp.p("m.json"));
    let o = run(
        &[
            "sample",
            "--n",
            "2000",
            "--solver",
            "heun",
            "--steps",
            "40",
            "--space",
            "sigma",
            "--schedule",
            "karras",
            "--out",
            s(&x),
        ],
        None,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("NFE 80"), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(&["eval", "--samples", s(&x), "--json", s(&j)], None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&j).unwrap()).unwrap();
    for key in [
        "mean_error",
        "cov_error_rel_fro",
        "sliced_w2",
        "sliced_w2_floor",
        "mean_log_density",
        "exact_mean_log_density",
        "mmd2_rbf",
        "mmd2_rbf_floor",
        "energy_distance",
        "energy_distance_floor",
        "frechet",
        "frechet_floor",
        "ks_max",
        "ks_max_floor",
    ] {
        assert!(m[key].as_f64().unwrap().is_finite(), "{key}");
    }
    // Heun with 40 Karras steps is converged, so the sample mean error is Monte Carlo noise: each
    // coordinate's error is ~N(0, var_j / n), so |err|^2 <= 25 tr(Cov) / n fails with probability
    // below P(chi2_1 > 25) = 6e-7 (the worst, one-dimensional case). ring8: tr(Cov) = 9 + 2 * 0.05.
    let bound = 5.0 * ((9.0 + 0.1) / 2000.0f64).sqrt();
    assert_eq!(m["missed_modes"].as_u64(), Some(0));
    let e = m["mean_error"].as_f64().unwrap();
    assert!(e < bound, "mean error {e} above the 5-sigma Monte Carlo bound {bound}");
}

/// `train` then `sample --model`: the checkpoint, its JSON, the loss curve; resume to a larger
/// step count equals training there at once (bit for bit); mismatched flags and processes are
/// one-line errors.
#[test]
fn train_resume_and_sample_with_a_model() {
    let dir = std::env::temp_dir().join(format!("scoresde-train-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let small = ["--width", "8", "--depth", "1", "--batch", "16", "--quiet"];
    let train = |out: &std::path::Path, steps: &str, extra: &[&str]| {
        bin()
            .args(["train", "--steps", steps, "--out", out.to_str().unwrap()])
            .args(small)
            .args(extra)
            .output()
            .unwrap()
    };
    let (a, b) = (dir.join("a.safetensors"), dir.join("b.safetensors"));
    assert!(train(&a, "60", &[]).status.success());
    let o = train(&b, "30", &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = train(&b, "60", &["--resume"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap(), "resumed weights differ");
    for suffix in [".json", ".loss.csv", ".loss.png"] {
        assert!(dir.join(format!("a.safetensors{suffix}")).exists(), "{suffix}");
    }
    let o = train(&b, "90", &["--resume", "--lr", "1e-2"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("config mismatch") && err.contains("training"), "{err}");
    // Importance sampling of t belongs to the likelihood weighting; EDM preconditioning trains.
    let c = dir.join("c.safetensors");
    let o = train(&c, "10", &["--importance-sampling"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("importance") && err.contains("Sigma2"), "{err}");
    let o = train(&c, "10", &["--importance-sampling", "--weighting", "likelihood"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = train(&c, "10", &["--param", "edm", "--weighting", "edm"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let x = dir.join("x.npy");
    let sample = |extra: &[&str]| {
        bin()
            .args(["sample", "--model", a.to_str().unwrap(), "--solver", "dpmpp-2m", "--steps", "5", "--n", "20"])
            .args(["--out", x.to_str().unwrap(), "--quiet"])
            .args(extra)
            .output()
            .unwrap()
    };
    let o = sample(&[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: ndarray::Array2<f64> = ndarray_npy::read_npy(&x).unwrap();
    assert!(v.dim() == (20, 2) && v.iter().all(|t| t.is_finite()));
    std::fs::remove_file(&x).unwrap();
    let o = sample(&["--process", "ve"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("trained on process") && !x.exists(), "{err}");
    let o =
        bin().args(["sample", "--model", "/nonexistent/m.safetensors", "--out", x.to_str().unwrap()]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("no such checkpoint") && !err.contains("panicked"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

/// Classifier-free guidance from the command line: a class-conditional network trained with
/// label dropout, and the exact guided score; bad classes are one-line errors.
#[test]
fn guided_sampling_with_a_conditional_model_and_the_exact_score() {
    let dir = std::env::temp_dir().join(format!("scoresde-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (m, x) = (dir.join("c.safetensors"), dir.join("x.npy"));
    let o = bin()
        .args(["train", "--target", "quad4", "--classes", "0,1;2,3", "--steps", "20", "--width", "8", "--depth", "1"])
        .args(["--batch", "16", "--quiet", "--out", m.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let sample = |extra: &[&str]| {
        bin()
            .args(["sample", "--steps", "5", "--n", "10", "--quiet", "--out", x.to_str().unwrap()])
            .args(extra)
            .output()
            .unwrap()
    };
    let o = sample(&["--model", m.to_str().unwrap(), "--class", "1", "--guidance", "2"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = sample(&["--model", m.to_str().unwrap(), "--class", "2"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("class = 2: the model has 2 classes"));
    let o = sample(&["--target", "quad4", "--classes", "0,1;2,3", "--class", "0", "--guidance", "1"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = sample(&["--target", "quad4", "--classes", "0,9", "--class", "0"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("component 9: the target has 4"));
    let bad = bin()
        .args(["train", "--target", "quad4", "--classes", "0,x", "--steps", "1", "--out", m.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("\"x\" is not a component index"));
    std::fs::remove_dir_all(&dir).ok();
}

/// The committed checkpoint (written before processes described themselves: its metadata holds
/// every process flag) is compared as the process it describes, not by its flags; a different
/// beta_max is a one-line process mismatch.
#[test]
fn committed_vp_model_is_compared_by_process_not_by_flags() {
    let tmp = Dir::new("cli", "committed-model");
    let model = concat!(env!("CARGO_MANIFEST_DIR"), "/../plots/ring8_vp_model.safetensors");
    let x = tmp.p("x.npy");
    let sample = |extra: &[&str]| {
        run(
            &[&["sample", "--model", model, "--steps", "4", "--n", "16", "--quiet", "--out", s(&x)][..], extra]
                .concat(),
            None,
        )
    };
    // A flag of another process is refused, not ignored (issue #19).
    let o = sample(&["--sigma-min", "0.01"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("--sigma-min: does not apply to --process vp"), "{err}");
    let o = sample(&[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Array2<f64> = read_npy(&x).unwrap();
    assert!(v.dim() == (16, 2) && v.iter().all(|t| t.is_finite()));
    std::fs::remove_file(&x).unwrap();
    let o = sample(&["--beta-max", "10"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && !x.exists(), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("process mismatch") && err.contains("beta_max 20") && err.contains("beta_max 10"), "{err}");
}

/// Inpainting, classifier guidance, RePaint and the ELBO give the same bits for one and two
/// threads (every draw keyed by row), and keep the observed coordinates.
#[test]
fn guidance_inpainting_and_bounds_are_thread_independent() {
    let tmp = Dir::new("cli", "issue18");
    let (y, m) = (tmp.p("y.npy"), tmp.p("m.npy"));
    let n = 700;
    let values = Array2::from_shape_fn((n, 2), |(i, j)| if j == 0 { 0.01 * i as f64 - 3.0 } else { f64::NAN });
    write_npy(&y, &values).unwrap();
    write_npy(&m, &Array2::from_shape_fn((n, 2), |(_, j)| if j == 0 { 1.0 } else { 0.0 })).unwrap();
    let cases: Vec<Vec<&str>> = vec![
        vec![
            "sample",
            "--target",
            "gauss2",
            "--observe",
            s(&y),
            "--mask",
            s(&m),
            "--solver",
            "euler-maruyama",
            "--steps",
            "20",
        ],
        vec![
            "sample",
            "--target",
            "gauss2",
            "--observe",
            s(&y),
            "--mask",
            s(&m),
            "--inpaint",
            "repaint",
            "--resample",
            "3",
            "--steps",
            "10",
        ],
        vec!["sample", "--target", "gauss2", "--observe", s(&y), "--mask", s(&m), "--inpaint", "exact"],
        vec![
            "sample",
            "--target",
            "quad4",
            "--classes",
            "0,1;2,3",
            "--class",
            "1",
            "--classifier-scale",
            "2",
            "--n",
            "900",
            "--steps",
            "10",
        ],
        vec![
            "sample",
            "--target",
            "quad4",
            "--classes",
            "0,1;2,3",
            "--class",
            "1",
            "--guidance",
            "2",
            "--guidance-rule",
            "apg",
            "--n",
            "900",
            "--steps",
            "10",
        ],
    ];
    for args in cases {
        let (a, b) = (tmp.p("a.npy"), tmp.p("b.npy"));
        let out1 = run(&[&args[..], &["--quiet", "--out", s(&a)]].concat(), Some(1));
        let out2 = run(&[&args[..], &["--quiet", "--out", s(&b)]].concat(), Some(2));
        assert!(out1.status.success() && out2.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out1.stderr));
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap(), "{args:?}: outputs differ");
        if args.contains(&"--observe") {
            let x: Array2<f64> = read_npy(&a).unwrap();
            assert!(
                x.column(0).iter().zip(values.column(0)).all(|(x, y)| x == y),
                "{args:?}: observed coordinates changed"
            );
        }
    }
    let pts = tmp.p("p.npy");
    write_npy(&pts, &array![[-1.0, 0.1], [0.5, 0.5]]).unwrap();
    let (a, b) = (tmp.p("ea.npy"), tmp.p("eb.npy"));
    let args = ["elbo", "--target", "quad4", "--points", s(&pts), "--draws", "16", "--nodes", "16"];
    let out1 = run(&[&args[..], &["--out", s(&a)]].concat(), Some(1));
    let out2 = run(&[&args[..], &["--out", s(&b)]].concat(), Some(2));
    assert!(out1.status.success() && out2.status.success(), "{}", String::from_utf8_lossy(&out1.stderr));
    let (ea, eb): (Array1<f64>, Array1<f64>) = (read_npy(&a).unwrap(), read_npy(&b).unwrap());
    assert_eq!(ea, eb);
    let summary: serde_json::Value = serde_json::from_slice(&out1.stdout).unwrap();
    for key in ["mean_elbo_nats", "mean_elbo_se", "bits_per_dim", "exact_mean_log_density"] {
        assert!(summary[key].as_f64().is_some_and(f64::is_finite), "{key}: {summary}");
    }
}
