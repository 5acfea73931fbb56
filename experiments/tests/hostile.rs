//! A careless or hostile user's inputs (issue #19's probe): every one is a one-line error with
//! exit status 1, or works without harm; none panics (exit 101), aborts (134) or replaces a
//! file it should not. Each case failed on the main branch before these fixes.

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_scoresde"))
}

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let d = std::env::temp_dir().join(format!("scoresde-hostile-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Self(d)
    }
    fn p(&self, f: &str) -> PathBuf {
        self.0.join(f)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
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
    let d = Dir::new("overflow");
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
    let d = Dir::new("sizes");
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
    let d = Dir::new("special");
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
    let d = Dir::new("stale");
    let leftover = d.p(".x.npy.4999999.tmp"); // pid_max is at most 2^22: no such process
    std::fs::write(&leftover, vec![0u8; 4096]).unwrap();
    samples(&d);
    assert!(!leftover.exists());
    let names: Vec<_> = std::fs::read_dir(&d.0).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["x.npy"]);
}

#[test]
fn options_a_solver_does_not_take_are_refused() {
    let d = Dir::new("options");
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
    refused(&["sample", "--rho", "5", "--out", s(&o)], &["--rho: applies to --schedule karras only"]);
    // The same flags with solvers that take them run.
    let out =
        run(&["sample", "--solver", "euler-ancestral", "--eta", "0.5", "--steps", "3", "--n", "4", "--out", s(&o)]);
    assert!(out.status.success());
}
