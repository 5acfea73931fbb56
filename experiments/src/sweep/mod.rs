//! `scoresde sweep`: solvers x step counts x processes x targets -> metric against NFE, as a long
//! CSV (`experiment,target,process,solver,space,schedule,steps,nfe,seed,metric,value`), a JSON
//! sidecar (config, git commit, versions, timings, fitted slopes) and PNG + SVG figures.
//! The config's `kind` picks the experiment: the cell-based kinds of [`kinds`] run through the one
//! driver of [`driver`]; `trajectories` (2-d paths) and `guidance` (classifier-free guidance
//! against weights) write their own files.
//!
//! Modules: `config` (kinds and defaults), `cells` (a cell, its sampler, reference sets,
//! metrics), `driver` (the [`driver::SweepKind`] trait and the shared run), `kinds` (its four
//! implementations), `output` (CSV and sidecar), `resume` (fingerprint, journal, checks), `plot` (figures, slopes), `table` (solver and
//! order tables), `trained` (network vs exact probe), `trajectories`, `guidance`.

mod cells;
pub mod config;
mod conventions;
mod driver;
mod guidance;
mod inpainting;
mod kinds;
mod merge;
mod output;
pub mod plot;
mod resume;
mod slurm;
mod table;
mod trained;
mod trajectories;

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;

use crate::choices::CmdResult;
use config::{ExperimentKind, SweepConfig};
use driver::{RunOptions, SweepKind};

/// Flags of `scoresde sweep`.
#[derive(Debug, Args)]
pub struct SweepArgs {
    /// JSON config (fields: experiment, targets, processes, solvers [{solver, space}], steps,
    /// schedule, n, seeds, projections, floor_reps; all optional) or a built-in experiment's name
    /// [default: the headline sweep]. `merge [CONFIG]` combines the shard files of --out-dir
    /// into what one run writes.
    #[arg(num_args = 0..=2, value_name = "[merge] CONFIG")]
    pub args: Vec<PathBuf>,
    /// With `merge`: compute the cells of missing or incomplete shards here instead of refusing.
    #[arg(long)]
    pub compute_missing: bool,
    /// Write DIR/NAME.sbatch (an N-task job array running the shards) and DIR/NAME.merge.sbatch
    /// (`sweep merge`, to run after it) instead of running the sweep.
    #[arg(long, value_name = "N")]
    pub slurm: Option<usize>,
    /// With --slurm: submit both (the merge with an afterok dependency on the array) and print
    /// the job ids.
    #[arg(long, requires = "slurm")]
    pub submit: bool,
    /// With --slurm: an sbatch option for both scripts (repeatable), e.g. --cpus-per-task=2.
    #[arg(long, requires = "slurm", allow_hyphen_values = true)]
    pub sbatch_arg: Vec<String>,
    /// Output directory [default: plots].
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
    /// Run only the cells with index i mod n (for splitting across machines), as `i/n`; `slurm`
    /// takes i and n from the job array (SLURM_ARRAY_TASK_ID, _MIN, _COUNT; 0- or 1-based) and
    /// the threads from SLURM_CPUS_PER_TASK.
    #[arg(long)]
    pub shard: Option<String>,
    /// No progress bar and no summary.
    #[arg(long)]
    pub quiet: bool,
    /// Start over: remove the CSV, sidecar and journal a previous run left in --out-dir for
    /// this experiment (and shard) instead of resuming from them.
    #[arg(long)]
    pub force: bool,
}

/// Parses `i/n`.
fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    let bad = || format!("--shard {s:?}: expected i/n with 0 <= i < n");
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let (i, n): (usize, usize) = (i.parse().map_err(|_| bad())?, n.parse().map_err(|_| bad())?);
    if n == 0 || i >= n {
        return Err(bad());
    }
    Ok((i, n))
}

/// The shard of a SLURM job array task, from `vars` (the environment): i = ID - MIN, n = COUNT,
/// so 0- and 1-based arrays alike give shards 0..n.
pub fn slurm_shard(vars: &dyn Fn(&str) -> Option<String>) -> Result<(usize, usize), String> {
    let get = |name: &str| -> Result<usize, String> {
        let v =
            vars(name).ok_or_else(|| format!("--shard slurm: {name} is not set (not inside an sbatch --array job)"))?;
        v.trim().parse().map_err(|_| format!("--shard slurm: {name} = {v:?} is not a number"))
    };
    let (id, min, count) = (get("SLURM_ARRAY_TASK_ID")?, get("SLURM_ARRAY_TASK_MIN")?, get("SLURM_ARRAY_TASK_COUNT")?);
    if id < min || id - min >= count {
        return Err(format!(
            "--shard slurm: SLURM_ARRAY_TASK_ID = {id} is outside MIN = {min} .. MIN + COUNT = {}: \
             use a contiguous array (--array=0-N or 1-N)",
            min + count
        ));
    }
    Ok((id - min, count))
}

/// Runs `scoresde sweep`.
pub fn run(a: SweepArgs) -> CmdResult {
    let started = Instant::now();
    let (merging, config) = match a.args.as_slice() {
        [] => (false, None),
        [first, rest @ ..] if first.as_os_str() == "merge" => (true, rest.first().cloned()),
        [config] => (false, Some(config.clone())),
        [first, second] => {
            return Err(format!("sweep {} {}: one CONFIG (or `merge CONFIG`)", first.display(), second.display()).into())
        }
        _ => return Err("sweep: at most `merge CONFIG`".into()),
    };
    if a.compute_missing && !merging {
        return Err("--compute-missing: applies to `sweep merge` only".into());
    }
    let sweep = SweepConfig::load(config.as_deref())?.validate()?;
    if let Some(tasks) = a.slurm {
        if merging || a.shard.is_some() {
            return Err("--slurm: writes the array and merge scripts; give neither merge nor --shard".into());
        }
        let out_dir = a.out_dir.clone().unwrap_or_else(|| PathBuf::from("plots"));
        let scripts =
            slurm::write_scripts(&sweep.config.experiment, config.as_deref(), &out_dir, tasks, &a.sbatch_arg)?;
        if a.submit {
            let (array, merge) = slurm::submit(&scripts)?;
            println!("array job {array} ({tasks} tasks), merge job {merge} (after the array succeeds)");
        } else if !a.quiet {
            eprintln!(
                "wrote {} and {}: sbatch the first, then the second with --dependency=afterok:ARRAY_JOB_ID",
                scripts.array.display(),
                scripts.merge.display()
            );
        }
        return Ok(());
    }
    let shard = match a.shard.as_deref() {
        Some("slurm") => {
            let env = |k: &str| std::env::var(k).ok();
            if let Some(cpus) = env("SLURM_CPUS_PER_TASK") {
                let threads: usize =
                    cpus.trim().parse().map_err(|_| format!("SLURM_CPUS_PER_TASK = {cpus:?} is not a number"))?;
                // The first pool wins; nothing has used rayon yet in a sweep's process.
                let _ = rayon::ThreadPoolBuilder::new().num_threads(threads.max(1)).build_global();
            }
            slurm_shard(&env)?
        }
        other => other.map(parse_shard).transpose()?.unwrap_or((0, 1)),
    };
    if merging && a.shard.is_some() {
        return Err("--shard: `sweep merge` combines all shards".into());
    }
    let out_dir: PathBuf = a.out_dir.clone().unwrap_or_else(|| PathBuf::from("plots"));
    let mut kind: Box<dyn SweepKind> = match sweep.config.kind {
        ExperimentKind::Trajectories => Box::<trajectories::Trajectories>::default(),
        ExperimentKind::Guidance => Box::<guidance::Guidance>::default(),
        ExperimentKind::Conventions => Box::<conventions::Conventions>::default(),
        ExperimentKind::Inpainting => Box::new(inpainting::Inpainting),
        ExperimentKind::StepsVsQuality => Box::new(kinds::StepsVsQuality),
        ExperimentKind::Convergence => Box::new(kinds::Convergence),
        ExperimentKind::SolverTable => Box::<kinds::SolverTable>::default(),
        ExperimentKind::TrainedVsExact => Box::<kinds::TrainedVsExact>::default(),
    };
    let ctx = cells::Ctx::new(&sweep, kind.uses_references())?;
    if merging {
        return Ok(merge::merge(&mut *kind, &ctx, &out_dir, a.compute_missing, a.quiet, started)?);
    }
    Ok(driver::run(
        &mut *kind,
        &ctx,
        &RunOptions { out_dir: &out_dir, shard, quiet: a.quiet, started, force: a.force },
    )?)
}
