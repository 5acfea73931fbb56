//! `scoresde sweep [CONFIG] --out-dir DIR --slurm N [--submit] [--sbatch-arg ARG ...]`: the two
//! batch scripts that run a sweep as an N-task SLURM job array and merge it afterwards.
//!
//! `DIR/NAME.sbatch` runs every task as `sweep CONFIG --out-dir DIR --shard slurm` (the task's
//! shard from the array variables, its threads from `--cpus-per-task`); a failed task resubmitted
//! resumes its shard from the journal. `DIR/NAME.merge.sbatch` runs `sweep merge`; it is meant to
//! be submitted with `--dependency=afterok:ARRAY_JOB` (`--kill-on-invalid-dep=yes` is in the
//! script, so a failed array cancels it instead of leaving it pending forever). Both write their
//! output to explicit paths in DIR. `--submit` submits both with `sbatch --parsable` and prints
//! the two job ids.

use std::path::{Path, PathBuf};

fn quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-=:,+@%".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

fn absolute(p: &Path) -> Result<PathBuf, String> {
    std::path::absolute(p).map_err(|e| format!("{}: {e}", p.display()))
}

/// The scripts' paths, written into `out_dir`.
pub struct Scripts {
    /// The array job.
    pub array: PathBuf,
    /// The merge job.
    pub merge: PathBuf,
}

/// Writes the two scripts for an `tasks`-task array of experiment `name` (`config`: the CONFIG
/// argument as given, a file or a built-in name).
pub fn write_scripts(
    name: &str,
    config: Option<&Path>,
    out_dir: &Path,
    tasks: usize,
    sbatch_args: &[String],
) -> Result<Scripts, String> {
    if tasks == 0 {
        return Err("--slurm = 0: the array needs at least one task".into());
    }
    for a in sbatch_args {
        if !a.starts_with("--") || a.contains('\n') {
            return Err(format!("--sbatch-arg {a:?}: expected one sbatch option such as --cpus-per-task=2"));
        }
    }
    std::fs::create_dir_all(out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let dir = absolute(out_dir)?;
    let exe = std::env::current_exe().map_err(|e| format!("the scoresde binary's path: {e}"))?;
    let config = match config {
        Some(c) if c.exists() => quote(&absolute(c)?.display().to_string()),
        Some(c) => quote(&c.display().to_string()),
        None => String::new(),
    };
    let extra: String = sbatch_args.iter().map(|a| format!("#SBATCH {a}\n")).collect();
    let d = dir.display().to_string();
    let array = format!(
        "#!/bin/bash\n#SBATCH --job-name=scoresde-{name}\n#SBATCH --array=0-{last}\n#SBATCH --output={out}\n{extra}\
         set -euo pipefail\nexec {exe} sweep {config} --out-dir {dq} --shard slurm --quiet\n",
        last = tasks - 1,
        out = quote(&format!("{d}/{name}.task%a.out")),
        exe = quote(&exe.display().to_string()),
        dq = quote(&d),
    );
    let merge = format!(
        "#!/bin/bash\n#SBATCH --job-name=scoresde-{name}-merge\n#SBATCH --output={out}\n#SBATCH --kill-on-invalid-dep=yes\n\
         {extra}set -euo pipefail\nexec {exe} sweep merge {config} --out-dir {dq} --quiet\n",
        out = quote(&format!("{d}/{name}.merge.out")),
        exe = quote(&exe.display().to_string()),
        dq = quote(&d),
    );
    let scripts =
        Scripts { array: dir.join(format!("{name}.sbatch")), merge: dir.join(format!("{name}.merge.sbatch")) };
    scoresde::io::write_atomic(&scripts.array, array.as_bytes()).map_err(|e| e.to_string())?;
    scoresde::io::write_atomic(&scripts.merge, merge.as_bytes()).map_err(|e| e.to_string())?;
    Ok(scripts)
}

fn sbatch(args: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new("sbatch")
        .arg("--parsable")
        .args(args)
        .output()
        .map_err(|e| format!("sbatch: {e} (is SLURM's client installed and on PATH?)"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!("sbatch {}: {}", args.join(" "), err.trim().replace('\n', " ")));
    }
    // --parsable prints "jobid" or "jobid;cluster".
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.trim().split(';').next().unwrap_or("").to_string())
}

/// Submits the array, then the merge with an afterok dependency on it; returns both job ids.
pub fn submit(scripts: &Scripts) -> Result<(String, String), String> {
    let array = sbatch(&[&scripts.array.display().to_string()])?;
    let dependency = format!("--dependency=afterok:{array}");
    let merge = sbatch(&[&dependency, "--kill-on-invalid-dep=yes", &scripts.merge.display().to_string()])?;
    Ok((array, merge))
}
