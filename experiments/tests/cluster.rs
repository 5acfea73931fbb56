//! Sweeps split across machines: shards by `--shard i/n` or from a SLURM job array's variables,
//! merged into exactly what a single run writes; missing shards named, not silently recomputed.

mod common;

use std::path::Path;
use std::process::Output;

use common::{bin, Dir};

fn sweep(out: &Path, extra: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = bin();
    c.args(["sweep"]).args(extra).args(["--out-dir", out.to_str().unwrap(), "--quiet"]);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn ok(o: Output) {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn err(o: Output) -> String {
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(e.trim_end().lines().count(), 1, "{e}");
    e
}

#[test]
fn merged_shards_equal_a_single_run_byte_for_byte() {
    let d = Dir::new("cluster", "merge");
    let whole = d.0.join("whole");
    ok(sweep(&whole, &["convergence"], &[]));
    let parts = d.0.join("parts");
    for i in 0..3 {
        ok(sweep(&parts, &["convergence", "--shard", &format!("{i}/3")], &[]));
    }
    ok(sweep(&parts, &["merge", "convergence"], &[]));
    let read = |dir: &Path, f: &str| std::fs::read(dir.join(f)).unwrap();
    assert_eq!(read(&parts, "convergence.csv"), read(&whole, "convergence.csv"));
    assert_eq!(read(&parts, "convergence_orders.md"), read(&whole, "convergence_orders.md"));
    let side: serde_json::Value = serde_json::from_slice(&read(&parts, "convergence.json")).unwrap();
    let shards = side["shards"].as_array().unwrap();
    assert_eq!(shards.len(), 3);
    for s in shards {
        assert!(s["seconds"].as_f64().unwrap() >= 0.0 && s["host"].is_string() && s["git_commit"].is_string(), "{s}");
    }
    // The merged CSV resumes like a single run's.
    ok(sweep(&parts, &["convergence"], &[]));
    let side: serde_json::Value = serde_json::from_slice(&read(&parts, "convergence.json")).unwrap();
    assert_eq!(side["cells_run"].as_u64(), Some(0));
}

#[test]
fn a_missing_shard_is_named_and_computed_only_when_asked() {
    let d = Dir::new("cluster", "missing");
    let whole = d.0.join("whole");
    ok(sweep(&whole, &["convergence"], &[]));
    let parts = d.0.join("parts");
    for i in [0, 2] {
        ok(sweep(&parts, &["convergence", "--shard", &format!("{i}/3")], &[]));
    }
    let e = err(sweep(&parts, &["merge", "convergence"], &[]));
    assert!(e.contains("shard 1 is missing") && e.contains("--compute-missing"), "{e}");
    assert!(!parts.join("convergence.csv").exists());
    ok(sweep(&parts, &["merge", "convergence", "--compute-missing"], &[]));
    assert_eq!(
        std::fs::read(parts.join("convergence.csv")).unwrap(),
        std::fs::read(whole.join("convergence.csv")).unwrap()
    );
    // Shards of another configuration are refused as a rerun would refuse them.
    let other = d.0.join("other");
    std::fs::create_dir_all(&other).unwrap();
    let cfg = d.0.join("c.json");
    std::fs::write(&cfg, r#"{"kind": "convergence", "n": 500}"#).unwrap();
    ok(sweep(&other, &[cfg.to_str().unwrap(), "--shard", "0/2"], &[]));
    ok(sweep(&other, &[cfg.to_str().unwrap(), "--shard", "1/2"], &[]));
    let e = err(sweep(&other, &["merge", "convergence"], &[]));
    assert!(e.contains("n = 500 then, 2000 now"), "{e}");
    let e = err(sweep(&d.0.join("empty"), &["merge", "convergence"], &[]));
    assert!(e.contains("no such file") || e.contains("no shard files"), "{e}");
}

#[test]
fn slurm_array_variables_pick_the_shard_for_zero_and_one_based_arrays() {
    let d = Dir::new("cluster", "slurm");
    let whole = d.0.join("whole");
    ok(sweep(&whole, &["convergence"], &[]));
    for (base, dir) in [(0usize, "zero"), (1, "one")] {
        let parts = d.0.join(dir);
        for task in base..base + 3 {
            let (id, min) = (task.to_string(), base.to_string());
            let env = [
                ("SLURM_ARRAY_TASK_ID", id.as_str()),
                ("SLURM_ARRAY_TASK_MIN", min.as_str()),
                ("SLURM_ARRAY_TASK_COUNT", "3"),
                ("SLURM_CPUS_PER_TASK", "1"),
            ];
            ok(sweep(&parts, &["convergence", "--shard", "slurm"], &env));
            let side: serde_json::Value = serde_json::from_slice(
                &std::fs::read(parts.join(format!("convergence.shard{}of3.json", task - base))).unwrap(),
            )
            .unwrap();
            assert_eq!(side["threads"].as_u64(), Some(1), "SLURM_CPUS_PER_TASK sets the threads");
        }
        ok(sweep(&parts, &["merge", "convergence"], &[]));
        assert_eq!(
            std::fs::read(parts.join("convergence.csv")).unwrap(),
            std::fs::read(whole.join("convergence.csv")).unwrap()
        );
    }
    let e = err(sweep(&d.0.join("x"), &["convergence", "--shard", "slurm"], &[("SLURM_ARRAY_TASK_ID", "3")]));
    assert!(e.contains("SLURM_ARRAY_TASK_MIN is not set"), "{e}");
    let env = [("SLURM_ARRAY_TASK_ID", "5"), ("SLURM_ARRAY_TASK_MIN", "1"), ("SLURM_ARRAY_TASK_COUNT", "3")];
    let e = err(sweep(&d.0.join("x"), &["convergence", "--shard", "slurm"], &env));
    assert!(e.contains("SLURM_ARRAY_TASK_ID = 5 is outside"), "{e}");
}

/// The kinds that are not solver x steps products (paths, guidance weights, conventions) split
/// into cells too: shards merged give a single run's CSV and table byte for byte, and nothing is
/// computed twice (the shards' cells add up to the whole run's).
#[test]
fn every_kind_shards_and_merges_into_the_single_run() {
    let d = Dir::new("cluster", "kinds");
    let configs = [
        ("trajectories", r#"{"kind": "trajectories", "particles": 4, "steps": [10]}"#, None),
        (
            "guidance",
            r#"{"kind": "guidance", "n": 500, "guidance_weights": [0, 2], "model": "", "classifier_model": ""}"#,
            Some("guidance.md"),
        ),
        ("conventions", r#"{"kind": "conventions", "n": 2000, "budgets": [10, 20]}"#, Some("conventions.md")),
    ];
    for (kind, config, table) in configs {
        let cfg = d.0.join(format!("{kind}.config.json"));
        std::fs::write(&cfg, config).unwrap();
        let cfg = cfg.to_str().unwrap();
        let whole = d.0.join(format!("{kind}_whole"));
        ok(sweep(&whole, &[cfg], &[]));
        let parts = d.0.join(format!("{kind}_parts"));
        let mut cells_run = 0;
        for i in 0..3 {
            ok(sweep(&parts, &[cfg, "--shard", &format!("{i}/3")], &[]));
            let side: serde_json::Value =
                serde_json::from_slice(&std::fs::read(parts.join(format!("{kind}.shard{i}of3.json"))).unwrap())
                    .unwrap();
            cells_run += side["cells_run"].as_u64().unwrap();
        }
        ok(sweep(&parts, &["merge", cfg], &[]));
        let read = |dir: &Path, f: &str| std::fs::read(dir.join(f)).unwrap();
        let csv = format!("{kind}.csv");
        assert_eq!(read(&parts, &csv), read(&whole, &csv), "{kind}");
        if let Some(t) = table {
            assert_eq!(read(&parts, t), read(&whole, t), "{kind}");
        }
        let side: serde_json::Value = serde_json::from_slice(&read(&whole, &format!("{kind}.json"))).unwrap();
        assert_eq!(side["cells_run"].as_u64(), Some(cells_run), "{kind}: cells computed twice or lost");
        assert!(cells_run > 3, "{kind}: {cells_run} cells");
        // A rerun resumes every cell.
        ok(sweep(&whole, &[cfg], &[]));
        let side: serde_json::Value = serde_json::from_slice(&read(&whole, &format!("{kind}.json"))).unwrap();
        assert_eq!(side["cells_run"].as_u64(), Some(0), "{kind}");
    }
    let e = err(sweep(&d.0, &["convergence", "--compute-missing"], &[]));
    assert!(e.contains("--compute-missing: applies to `sweep merge` only"), "{e}");
}
