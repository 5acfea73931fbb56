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
mod driver;
mod guidance;
mod kinds;
mod output;
pub mod plot;
mod resume;
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
    /// schedule, n, seeds, projections, floor_reps; all optional) [default: the headline sweep].
    pub config: Option<PathBuf>,
    /// Output directory [default: plots].
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
    /// Run only the cells with index i mod n (for splitting across machines), as `i/n`.
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

/// Runs `scoresde sweep`.
pub fn run(a: SweepArgs) -> CmdResult {
    let started = Instant::now();
    let sweep = SweepConfig::load(a.config.as_deref())?.validate()?;
    let shard = a.shard.as_deref().map(parse_shard).transpose()?.unwrap_or((0, 1));
    let out_dir: PathBuf = a.out_dir.clone().unwrap_or_else(|| PathBuf::from("plots"));
    let mut kind: Box<dyn SweepKind> = match sweep.config.kind {
        ExperimentKind::Trajectories => return Ok(trajectories::run(&sweep, &out_dir, a.quiet)?),
        ExperimentKind::Guidance => return Ok(guidance::run(&sweep, &out_dir, a.quiet)?),
        ExperimentKind::StepsVsQuality => Box::new(kinds::StepsVsQuality),
        ExperimentKind::Convergence => Box::new(kinds::Convergence),
        ExperimentKind::SolverTable => Box::<kinds::SolverTable>::default(),
        ExperimentKind::TrainedVsExact => Box::<kinds::TrainedVsExact>::default(),
    };
    let ctx = cells::Ctx::new(&sweep)?;
    Ok(driver::run(
        &mut *kind,
        &ctx,
        &RunOptions { out_dir: &out_dir, shard, quiet: a.quiet, started, force: a.force },
    )?)
}
