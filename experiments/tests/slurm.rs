//! The SLURM path against a real single-node cluster: tests/slurm/test.sh installs slurm-wlm and
//! munge from Debian if they are missing, starts them as root, submits `sweep --slurm N --submit`
//! for two kinds and compares the merged CSVs with single-machine runs byte for byte, then checks
//! that a cancelled task cancels the merge job and that `sweep merge` names the missing shard. It
//! stops the daemons it started. Without root or the packages it fails with the reason: it never
//! passes without a cluster.

use std::process::Command;

#[test]
fn sweeps_run_as_slurm_job_arrays_merge_to_the_single_machine_csv() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/slurm/test.sh");
    let out = Command::new("bash").args([script, env!("CARGO_BIN_EXE_scoresde")]).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    for kind in ["convergence", "solver_table"] {
        assert!(text.contains(&format!("slurm test: {kind}: ")) && text.contains("byte-identical"), "{text}");
    }
    assert!(text.contains("shard 2 is missing"), "{text}");
    eprintln!("{text}");
}
