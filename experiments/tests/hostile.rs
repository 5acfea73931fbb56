//! A careless or hostile user's inputs (issue #19's probe): every one is a one-line error with
//! exit status 1, or works without harm; none panics (exit 101), aborts (134) or replaces a
//! file it should not. Each case failed on the main branch before these fixes.

mod common;

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{bin, s, Dir};

fn run(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

/// Exit 1 with one line on stderr that contains every one of `wanted`.
fn refused(args: &[&str], wanted: &[&str]) {
    let out = run(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    for w in wanted {
        assert!(err.contains(w), "{args:?}: {err:?} lacks {w:?}");
    }
}

fn samples(dir: &Dir) -> PathBuf {
    let p = dir.p("x.npy");
    let out = run(&["sample", "--steps", "4", "--n", "50", "--quiet", "--out", s(&p)]);
    assert!(out.status.success());
    p
}

#[test]
fn derived_quantities_that_overflow_are_errors_not_panics() {
    let d = Dir::new("hostile", "overflow");
    let x = samples(&d);
    let o = d.p("o.npy");
    refused(&["sample", "--process", "ve", "--sigma-max", "1e300", "--out", s(&o)], &["sigma_max = 1e300"]);
    refused(&["sample", "--process", "edm", "--sigma-max", "1e200", "--out", s(&o)], &["sigma_max = 1e200"]);
    refused(&["eval", "--samples", s(&x), "--sigma", "1e200"], &["--sigma = 1e200", "overflows"]);
    refused(&["eval", "--samples", s(&x), "--alpha", "1e200"], &["--alpha = 1e200", "overflows"]);
    for p in ["0", "1"] {
        refused(&["eval", "--samples", s(&x), "--pairwise-max", p], &["--pairwise-max", "at least 2"]);
    }
    assert!(!o.exists());
}

#[test]
fn sizes_that_cannot_be_allocated_are_refused_before_allocating() {
    let d = Dir::new("hostile", "sizes");
    let x = samples(&d);
    let o = d.p("o.npy");
    let m = d.p("m.safetensors");
    let huge = "1000000000000";
    refused(&["sample", "--n", huge, "--out", s(&o)], &["--n = 1000000000000", "TB", "memory"]);
    refused(&["eval", "--samples", s(&x), "--reference-n", huge], &["--reference-n = 1000000000000", "TB"]);
    refused(&["train", "--width", "1000000000", "--out", s(&m)], &["--width = 1000000000", "TB"]);
    refused(&["train", "--batch", huge, "--out", s(&m)], &["--batch = 1000000000000", "TB"]);
    refused(&["bench", "--n", huge], &["--n = 1000000000000", "TB"]);
    refused(&["sample", "--steps", "1000000000", "--out", s(&o)], &["--steps = 1000000000", "at most 10^7"]);
    let cfg = d.p("sweep.json");
    std::fs::write(&cfg, r#"{"kind": "convergence", "n": 1000000000000}"#).unwrap();
    refused(&["sweep", s(&cfg), "--out-dir", s(&d.p("out")), "--quiet"], &["n = 1000000000000", "TB"]);
    assert!(!o.exists() && !m.exists());
}

#[test]
fn outputs_never_replace_devices_fifos_or_links() {
    let d = Dir::new("hostile", "special");
    // /dev/null stays a character device (as root the rename used to replace it with a file).
    let out = run(&["sample", "--steps", "3", "--n", "5", "--quiet", "--out", "/dev/null"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(std::fs::metadata("/dev/null").unwrap().file_type().is_char_device());
    // A link given as --out stays a link; its target gets the samples.
    let real = d.p("real.npy");
    std::fs::write(&real, b"old").unwrap();
    let link = d.p("link.npy");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let out = run(&["sample", "--steps", "3", "--n", "5", "--quiet", "--out", s(&link)]);
    assert!(out.status.success());
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    assert!(std::fs::read(&real).unwrap().starts_with(b"\x93NUMPY"));
    // eval --json to /dev/null as well.
    let out = run(&["eval", "--samples", s(&real), "--json", "/dev/null", "--projections", "4"]);
    assert!(out.status.success());
    assert!(std::fs::metadata("/dev/null").unwrap().file_type().is_char_device());
    // A directory is refused.
    refused(&["sample", "--steps", "3", "--n", "5", "--out", s(&d.0)], &["is a directory"]);
}

#[test]
fn temp_files_left_by_killed_runs_are_removed_by_the_next_run() {
    let d = Dir::new("hostile", "stale");
    let leftover = d.p(".x.npy.4999999.tmp"); // pid_max is at most 2^22: no such process
    std::fs::write(&leftover, vec![0u8; 4096]).unwrap();
    samples(&d);
    assert!(!leftover.exists());
    let names: Vec<_> = std::fs::read_dir(&d.0).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["x.npy"]);
}

#[test]
fn options_a_solver_does_not_take_are_refused() {
    let d = Dir::new("hostile", "options");
    let o = d.p("o.npy");
    for (solver, flag, value) in
        [("heun", "--eta", "0.5"), ("heun", "--orders", "3,3"), ("euler", "--snr", "0.1"), ("euler", "--s-churn", "1")]
    {
        refused(
            &["sample", "--solver", solver, flag, value, "--out", s(&o)],
            &[&format!("solver {solver}: option"), "not an option of this solver"],
        );
    }
    refused(
        &["sample", "--process", "ve", "--beta-max", "10", "--out", s(&o)],
        &["--beta-max: does not apply to --process ve"],
    );
    refused(&["sample", "--sigma-max", "10", "--out", s(&o)], &["--sigma-max: does not apply to --process vp"]);
    refused(&["sample", "--cosine-s", "0.01", "--out", s(&o)], &["--cosine-s: does not apply"]);
    refused(&["sample", "--rho", "5", "--out", s(&o)], &["--rho: applies to --schedule karras and polyexponential"]);
    // The same flags with solvers that take them run.
    let out =
        run(&["sample", "--solver", "euler-ancestral", "--eta", "0.5", "--steps", "3", "--n", "4", "--out", s(&o)]);
    assert!(out.status.success());
}

const SMALL_SWEEP: &str = r#"{"kind": "steps_vs_quality", "experiment": "small",
  "processes": ["vp", "ve"], "steps": [4, 8, 16, 32, 64], "n": 2000, "seeds": [0, 1],
  "solvers": [{"solver": "euler", "space": "t"}, {"solver": "heun", "space": "t"},
              {"solver": "dpmpp-2m", "space": "sigma"}]}"#;

fn sweep(cfg: &Path, out: &Path, extra: &[&str]) -> Output {
    run(&[&["sweep", s(cfg), "--out-dir", s(out), "--quiet"][..], extra].concat())
}

fn sidecar(out: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("small.json")).unwrap()).unwrap()
}

#[test]
fn a_killed_sweep_keeps_its_finished_cells_and_resumes_to_the_same_csv() {
    let d = Dir::new("hostile", "kill");
    let cfg = d.p("small.json");
    std::fs::write(&cfg, SMALL_SWEEP).unwrap();
    let whole = d.p("whole");
    assert!(sweep(&cfg, &whole, &[]).status.success());
    let total = sidecar(&whole)["cells_run"].as_u64().unwrap();
    assert_eq!(total, 60);

    let part = d.p("part");
    let journal = part.join("small.csv.journal");
    let mut child = bin().args(["sweep", s(&cfg), "--out-dir", s(&part), "--quiet"]).spawn().unwrap();
    // Kill -9 once a few cells are in the journal (its first line is the header).
    let started = std::time::Instant::now();
    loop {
        let lines = std::fs::read_to_string(&journal).map(|t| t.lines().count()).unwrap_or(0);
        if lines >= 4 {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "the sweep finished before it could be killed");
        assert!(started.elapsed().as_secs() < 120, "no cell finished in 2 minutes");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!part.join("small.csv").exists());
    let kept = std::fs::read_to_string(&journal).unwrap().lines().count() - 1;
    assert!(kept >= 3);
    // A kill mid-write leaves a torn last line: it is dropped and its cell runs again.
    let mut f = std::fs::OpenOptions::new().append(true).open(&journal).unwrap();
    std::io::Write::write_all(&mut f, br#"{"key": "ring8|vp|eul"#).unwrap();
    drop(f);
    let out = sweep(&cfg, &part, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(part.join("small.csv")).unwrap(), std::fs::read(whole.join("small.csv")).unwrap());
    let rerun = sidecar(&part)["cells_run"].as_u64().unwrap();
    assert_eq!(rerun, total - kept as u64, "only the cells not in the journal ran again");
    assert!(!journal.exists(), "the journal is removed once the CSV is written");
}

#[test]
fn a_sweep_never_reuses_rows_of_another_configuration_or_a_damaged_csv() {
    let d = Dir::new("hostile", "stale-sweep");
    let cfg = d.p("small.json");
    let tiny = SMALL_SWEEP
        .replace(r#""steps": [4, 8, 16, 32, 64]"#, r#""steps": [4, 8]"#)
        .replace(r#""seeds": [0, 1]"#, r#""seeds": [0]"#);
    std::fs::write(&cfg, &tiny).unwrap();
    let out = d.p("out");
    assert!(sweep(&cfg, &out, &[]).status.success());
    let csv = out.join("small.csv");
    let good = std::fs::read(&csv).unwrap();
    // Another sample size into the same directory.
    std::fs::write(&cfg, tiny.replace(r#""n": 2000"#, r#""n": 500"#)).unwrap();
    refused(
        &["sweep", s(&cfg), "--out-dir", s(&out), "--quiet"],
        &["made by another configuration", "n = 2000 then, 500 now", "--force"],
    );
    assert_eq!(std::fs::read(&csv).unwrap(), good);
    // Another schedule.
    std::fs::write(&cfg, tiny.replace(r#""kind""#, r#""schedule": "karras", "kind""#)).unwrap();
    refused(&["sweep", s(&cfg), "--out-dir", s(&out), "--quiet"], &["schedule"]);
    // The same configuration resumes; more steps extend it.
    std::fs::write(&cfg, &tiny).unwrap();
    assert!(sweep(&cfg, &out, &[]).status.success());
    assert_eq!(sidecar(&out)["cells_run"].as_u64(), Some(0));
    // An edited value, a truncated file, a duplicated row: refused, never trusted or rewritten.
    let text = String::from_utf8(good.clone()).unwrap();
    let edited = text.replacen("e-", "1e-", 1);
    for damaged in [edited, text[..text.len() / 2].to_string(), format!("{text}{}", text.lines().nth(1).unwrap())] {
        std::fs::write(&csv, &damaged).unwrap();
        refused(&["sweep", s(&cfg), "--out-dir", s(&out), "--quiet"], &["changed after it was written"]);
        assert_eq!(std::fs::read_to_string(&csv).unwrap(), damaged);
    }
    // A CSV without the sidecar that vouches for it.
    std::fs::write(&csv, &good).unwrap();
    std::fs::remove_file(out.join("small.json")).unwrap();
    refused(&["sweep", s(&cfg), "--out-dir", s(&out), "--quiet"], &["does not record how it was made"]);
    // --force starts over and gives the same CSV.
    assert!(sweep(&cfg, &out, &["--force"]).status.success());
    assert_eq!(std::fs::read(&csv).unwrap(), good);
    // A target whose contents changed under the same name.
    let mix = d.p("mix.json");
    std::fs::write(&mix, r#"{"weights": [1.0], "means": [[0.0, 0.0]], "variances": [1.0]}"#).unwrap();
    let with_file = tiny.replace(r#""kind""#, &format!(r#""targets": [{:?}], "kind""#, s(&mix)));
    std::fs::write(&cfg, &with_file).unwrap();
    let out2 = d.p("out2");
    assert!(sweep(&cfg, &out2, &[]).status.success());
    std::fs::write(&mix, r#"{"weights": [1.0], "means": [[0.0, 0.5]], "variances": [1.0]}"#).unwrap();
    refused(&["sweep", s(&cfg), "--out-dir", s(&out2), "--quiet"], &["different contents of target mix"]);
}

#[test]
fn sweep_configs_with_colliding_names_or_repeated_axes_are_refused() {
    let d = Dir::new("hostile", "axes");
    for sub in ["ta", "tb"] {
        std::fs::create_dir_all(d.p(sub)).unwrap();
        std::fs::write(d.p(sub).join("mix.json"), r#"{"weights": [1.0], "means": [[0.0, 0.0]], "variances": [1.0]}"#)
            .unwrap();
    }
    let cfg = d.p("c.json");
    let targets = format!(
        r#"{{"kind": "convergence", "targets": [{:?}, {:?}]}}"#,
        s(&d.p("ta/mix.json")),
        s(&d.p("tb/mix.json"))
    );
    std::fs::write(&cfg, targets).unwrap();
    refused(&["sweep", s(&cfg), "--out-dir", s(&d.p("o")), "--quiet"], &["would both be named \"mix\""]);
    for (axis, value) in [("steps", "[4, 8, 4]"), ("seeds", "[0, 0]"), ("processes", r#"["vp", "vp"]"#)] {
        std::fs::write(&cfg, format!(r#"{{"kind": "convergence", "{axis}": {value}}}"#)).unwrap();
        refused(&["sweep", s(&cfg), "--out-dir", s(&d.p("o")), "--quiet"], &[&format!("{axis}["), "repeats"]);
    }
}

fn train_args<'a>(out: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a =
        vec!["train", "--target", "ring8", "--steps", "1500", "--width", "16", "--checkpoint-every", "100", "--quiet"];
    a.extend_from_slice(extra);
    a.extend_from_slice(&["--out", s(out)]);
    a
}

#[test]
fn a_killed_training_resumes_bit_identically() {
    let d = Dir::new("hostile", "train-kill");
    let whole = d.p("whole.safetensors");
    assert!(run(&train_args(&whole, &[])).status.success());
    // Kill -9 at a few points after the first checkpoint, resume each time.
    let part = d.p("part.safetensors");
    for delay_ms in [0u64, 130, 370] {
        let mut child = bin().args(train_args(&part, if part.exists() { &["--resume"] } else { &[] })).spawn().unwrap();
        let started = std::time::Instant::now();
        while !part.exists() && child.try_wait().unwrap().is_none() {
            assert!(started.elapsed().as_secs() < 60);
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        child.wait().unwrap();
    }
    let out = run(&train_args(&part, &["--resume"]));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(&part).unwrap(), std::fs::read(&whole).unwrap(), "weights, moments, EMA and description");
    let json = |p: &Path| std::fs::read(format!("{}.json", p.display())).unwrap();
    assert_eq!(json(&part), json(&whole));
}

#[test]
fn a_checkpoint_and_a_foreign_or_edited_description_are_refused() {
    let d = Dir::new("hostile", "torn");
    let (a, b, x) = (d.p("a.safetensors"), d.p("b.safetensors"), d.p("x.npy"));
    let (a_s, b_s, x_s) = (s(&a), s(&b), s(&x));
    let train = |out: &str, steps: &str| -> Vec<String> {
        ["train", "--target", "ring8", "--width", "16", "--quiet", "--steps", steps, "--out", out]
            .map(String::from)
            .to_vec()
    };
    let call = |v: &[String]| run(&v.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(call(&train(a_s, "100")).status.success());
    assert!(call(&train(b_s, "101")).status.success());
    // Step-101 weights with the step-100 description beside them.
    std::fs::copy(d.p("a.safetensors.json"), d.p("b.safetensors.json")).unwrap();
    refused(
        &["sample", "--model", b_s, "--steps", "3", "--out", x_s],
        &["b.safetensors.json", "differs from the description inside"],
    );
    let mut resume = train(b_s, "200");
    resume.push("--resume".into());
    refused(&resume.iter().map(String::as_str).collect::<Vec<_>>(), &["differs from the description inside"]);
    // An edited depth.
    let text = std::fs::read_to_string(d.p("a.safetensors.json")).unwrap().replace("\"depth\": 3", "\"depth\": 2");
    std::fs::write(d.p("a.safetensors.json"), text).unwrap();
    refused(&["sample", "--model", a_s, "--steps", "3", "--out", x_s], &["differs from the description inside"]);
    // Without the readable copy the checkpoint is whole on its own.
    std::fs::remove_file(d.p("a.safetensors.json")).unwrap();
    assert!(run(&["sample", "--model", a_s, "--steps", "3", "--n", "4", "--quiet", "--out", x_s]).status.success());
}

#[test]
fn every_error_is_one_line_with_status_one() {
    let d = Dir::new("hostile", "wording");
    let o = d.p("o.npy");
    refused(
        &["sample", "--target", "ring9", "--out", s(&o)],
        &["target = \"ring9\"", "ring8, aniso16, gauss2, quad4, diag16"],
    );
    // Usage errors from the flag parser: one line and status 1 too.
    refused(&["sample", "--stepz", "3"], &["unexpected argument '--stepz'", "--help"]);
    refused(&["sample", "--steps", "x"], &["invalid value 'x' for '--steps <STEPS>'"]);
    refused(&["frobnicate"], &["unrecognized subcommand"]);
    refused(
        &[
            "sample",
            "--solver",
            "dopri5",
            "--rtol",
            "1e-3",
            "--atol",
            "1e-3",
            "--sigma-start",
            "NaN",
            "--sigma-end",
            "0.1",
            "--out",
            s(&o),
        ],
        &["--sigma-start = NaN: must be finite and positive"],
    );
    // A malformed npy header: the parser's six-line message as one line.
    let bad = d.p("bad.npy");
    std::fs::write(&bad, b"\x93NUMPY\x01\x00\x10\x00{garbage}      \n").unwrap();
    refused(&["sample", "--z-init", s(&bad), "--out", s(&o)], &["bad.npy", "error parsing header"]);
    let model = concat!(env!("CARGO_MANIFEST_DIR"), "/../plots/ring8_vp_model.safetensors");
    refused(&["sample", "--model", model, "--target", "aniso16", "--out", s(&o)], &["--target: not read with --model"]);
    let help = run(&["sample", "--help"]);
    assert!(help.status.success() && String::from_utf8_lossy(&help.stdout).contains("--steps"));
}

#[test]
fn silent_inconsistencies_are_errors() {
    let d = Dir::new("hostile", "inconsistent");
    let o = d.p("o.npy");
    // A repeated JSON key (serde_json alone would keep the last).
    let dup = d.p("dup.json");
    std::fs::write(&dup, r#"{"weights": [1.0], "means": [[0.0, 0.0]], "variances": [1.0], "variances": [2.0]}"#)
        .unwrap();
    refused(&["sample", "--target", s(&dup), "--out", s(&o)], &["duplicate key \"variances\""]);
    // Overlapping classes.
    refused(
        &["sample", "--target", "quad4", "--classes", "0,1;1,2", "--class", "0", "--out", s(&o)],
        &["component 1 is in class 0 and in class 1"],
    );
    // eval in a dimension where its O(d^3) metrics would take long: refused with the cost.
    let wide = d.p("wide.json");
    let means = format!("[[{}]]", vec!["0.0"; 600].join(","));
    std::fs::write(&wide, format!(r#"{{"weights": [1.0], "means": {means}, "variances": [1.0]}}"#)).unwrap();
    let x = d.p("x.npy");
    let out = run(&[
        "sample",
        "--target",
        s(&wide),
        "--solver",
        "euler",
        "--steps",
        "2",
        "--n",
        "20",
        "--quiet",
        "--out",
        s(&x),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    refused(
        &["eval", "--target", s(&wide), "--samples", s(&x)],
        &["dimension 600 is above --max-dim 512", "O(d^3)", "--max-dim 600"],
    );
    assert!(!o.exists());
}

#[test]
fn sigterm_exits_130_and_leaves_no_temporary_files() {
    let d = Dir::new("hostile", "sigterm");
    let cfg = d.p("small.json");
    std::fs::write(&cfg, SMALL_SWEEP).unwrap();
    let out = d.p("out");
    let journal = out.join("small.csv.journal");
    let mut child = bin().args(["sweep", s(&cfg), "--out-dir", s(&out), "--quiet"]).spawn().unwrap();
    let started = std::time::Instant::now();
    while std::fs::read_to_string(&journal).map(|t| t.lines().count()).unwrap_or(0) < 3 {
        assert!(child.try_wait().unwrap().is_none() && started.elapsed().as_secs() < 120);
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    assert_eq!(child.wait().unwrap().code(), Some(130));
    let names: Vec<String> =
        std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
    assert!(names.contains(&"small.csv.journal".to_string()));
}

#[test]
fn nll_names_a_time_outside_the_process() {
    let d = Dir::new("hostile", "nll");
    let x = samples(&d);
    refused(&["nll", "--points", s(&x), "--t-start", "1", "--out", s(&d.p("l.npy"))], &["--t-start = 1", "[0, T)"]);
}

#[test]
fn flow_and_chain_inputs_that_cannot_work_are_refused_naming_why() {
    let dir = Dir::new("hostile", "flow-chain");
    let o = dir.p("o.npy");
    let bad_ts = dir.p("ts.npy");
    ndarray_npy::write_npy(&bad_ts, &ndarray::array![900i64, 950]).unwrap();
    refused(
        &["sample", "--process", "ddpm", "--timesteps", s(&bad_ts), "--out", s(&o)],
        &["timesteps[1] = 950 after timesteps[0] = 900: must be descending"],
    );
    refused(
        &["sample", "--process", "flow", "--solver", "euler-maruyama", "--steps", "5", "--out", s(&o)],
        &["euler-maruyama", "reverse SDE's f and g^2 are infinite"],
    );
    refused(
        &["sample", "--process", "trig", "--solver", "dpmpp-2m", "--steps", "5", "--out", s(&o)],
        &["dpmpp-2m", "sigma~ is infinite"],
    );
    refused(
        &["sample", "--process", "ddpm", "--schedule", "karras", "--out", s(&o)],
        &["--schedule: does not apply to --process ddpm"],
    );
    refused(
        &["sample", "--sigma-schedule", "karras", "--out", s(&o)],
        &["--sigma-schedule: applies to --process ddpm only"],
    );
    refused(&["grid", "--process", "ddpm", "--steps", "2000", "--out", s(&dir.p("g"))], &["steps = 2000"]);
    assert!(!o.exists());
}

/// Guidance, inpainting and likelihood inputs that do not fit: one line naming the field,
/// exit 1, nothing written.
#[test]
fn bad_guidance_inpainting_and_bound_inputs_are_named() {
    let d = Dir::new("hostile", "guidance-inpaint");
    let out = d.p("o.npy");
    let o = s(&out);
    let exact = ["sample", "--target", "quad4", "--classes", "0,1;2,3", "--class", "0", "--steps", "3", "--out", o];
    let with = |extra: &[&'static str]| -> Vec<&str> { exact.iter().copied().chain(extra.iter().copied()).collect() };
    refused(&with(&["--classifier-scale", "inf"]), &["--classifier-scale", "finite"]);
    refused(&with(&["--guidance-rule", "rescale", "--guidance-rescale", "1.5"]), &["guidance rescale = 1.5"]);
    refused(&with(&["--guidance-interval", "3,1"]), &["guidance interval", "lo < hi"]);
    refused(&with(&["--apg-eta", "1"]), &["--apg-eta", "--guidance-rule apg"]);
    refused(&with(&["--apg-momentum", "-0.5"]), &["--apg-momentum", "--guidance-rule apg"]);
    refused(&with(&["--zero-init-steps", "1"]), &["--zero-init-steps", "--guidance-rule cfg-zero-star"]);
    // A trained classifier: a score network's checkpoint is not one, and its class must exist.
    let clf = concat!(env!("CARGO_MANIFEST_DIR"), "/../plots/quad4_vp_classifier.safetensors");
    let score_net = concat!(env!("CARGO_MANIFEST_DIR"), "/../plots/quad4_vp_cfg_model.safetensors");
    let trained = |file: &'static str, class: &'static str| -> Vec<&str> {
        vec![
            "sample",
            "--target",
            "quad4",
            "--class",
            class,
            "--classifier",
            file,
            "--classifier-scale",
            "1",
            "--out",
            o,
        ]
    };
    refused(&trained(score_net, "0"), &["not a classifier"]);
    refused(&trained(clf, "2"), &["--class", "class = 2", "2 classes"]);
    // CFG++ needs the guided model's pair: refused without guidance, before anything is written.
    refused(
        &["sample", "--target", "quad4", "--solver", "dpmpp-2m-cfg-pp", "--steps", "3", "--out", o],
        &["dpmpp-2m-cfg-pp", "needs a guided model"],
    );
    refused(
        &["sample", "--target", "quad4", "--classes", "0,1;2,3", "--class", "5", "--classifier-scale", "1", "--out", o],
        &["--class = 5"],
    );
    // Observations: a mask of the wrong shape, a mask entry that is not 0 or 1, too few columns.
    let values = d.p("y.npy");
    let mask = d.p("m.npy");
    let bad_mask = d.p("bad.npy");
    let half = d.p("half.npy");
    let write = |p: &Path, rows: usize, cols: usize, v: f64| {
        scoresde::io::write_npy(p, &ndarray::Array2::from_elem((rows, cols), v)).unwrap();
    };
    write(&values, 4, 2, 0.5);
    write(&mask, 4, 2, 1.0);
    write(&bad_mask, 4, 1, 1.0);
    write(&half, 4, 2, 0.5);
    let inpaint = |m: &Path, target: &'static str| -> Vec<String> {
        ["sample", "--target", target, "--observe", s(&values), "--mask", s(m), "--steps", "3", "--out", o]
            .map(String::from)
            .to_vec()
    };
    let refused_owned =
        |v: Vec<String>, wanted: &[&str]| refused(&v.iter().map(String::as_str).collect::<Vec<_>>(), wanted);
    refused_owned(inpaint(&bad_mask, "gauss2"), &["--mask", "shape"]);
    refused_owned(inpaint(&half, "gauss2"), &["mask[0] = 0.5", "0 or 1"]);
    refused_owned(inpaint(&mask, "diag16"), &["--observe columns", "16"]);
    let mut multistep = inpaint(&mask, "gauss2");
    multistep.extend(["--solver", "dpmpp-2m"].map(String::from));
    refused_owned(multistep, &["dpmpp-2m", "one-step solver"]);
    let mut dps = inpaint(&mask, "gauss2");
    dps.extend(["--inpaint", "dps", "--dps-scale", "nan"].map(String::from));
    refused_owned(dps, &["dps-scale = NaN"]);
    let mut stray = inpaint(&mask, "gauss2");
    stray.extend(["--dps-scale", "2"].map(String::from));
    refused_owned(stray, &["--dps-scale", "--inpaint dps"]);
    // Bounds.
    refused(&["elbo", "--target", "quad4", "--points", s(&values), "--draws", "1", "--out", o], &["draws = 1"]);
    refused(
        &["elbo", "--target", "quad4", "--points", s(&values), "--bound", "ddpm", "--out", o],
        &["--bound ddpm", "--process ddpm"],
    );
    refused(&["elbo", "--target", "diag16", "--points", s(&values), "--out", o], &["--points", "dimension 16"]);
    assert!(!out.exists(), "a refused run wrote its output");
}
