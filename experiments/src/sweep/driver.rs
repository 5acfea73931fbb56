//! The one driver of the cell-based sweeps: cells -> shard filter -> resume -> parallel run ->
//! CSV -> sidecar -> the kind's tables and figures. What differs between kinds is the
//! [`SweepKind`] trait.
//!
//! Cells run in parallel and are written in cell order, so the CSV is identical for any thread
//! count; `--shard i/n` runs the cells whose index is i mod n; a rerun skips the cells already in
//! the CSV or the journal, after checking that they were made by the same configuration
//! ([`resume`]). The Monte Carlo floor of each metric (its value between independent exact sample sets
//! of the same size) is written as solver `exact-floor`, one row per repetition.

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use scoresde::io::write_atomic;

use super::cells::{exact_set, metrics, process_of, Cell, Ctx, SAMPLE_METRICS};
use super::output::{csv_bytes, write_sidecar, Row};
use super::plot;
use super::resume::{self, Resume};

/// The tables and figures a kind writes after the CSV, and its fields of the sidecar.
#[derive(Debug, Default)]
pub struct Finished {
    /// Figure files.
    pub figures: Vec<String>,
    /// Table files.
    pub tables: Vec<String>,
    /// Sidecar fields (merged over the driver's).
    pub sidecar: serde_json::Map<String, serde_json::Value>,
}

/// One cell-based experiment kind.
pub trait SweepKind: Sync {
    /// The kind's own state from the sweep's targets (a step plan, a trained model).
    fn prepare(&mut self, _ctx: &Ctx) -> Result<(), String> {
        Ok(())
    }
    /// Whether its cells read the per-(target, process) reference sets of [`Ctx`] (exact samples,
    /// projections, the tight ODE solutions).
    fn uses_references(&self) -> bool {
        true
    }
    /// Every cell, in CSV order.
    fn cells(&self, ctx: &Ctx) -> Vec<Cell>;
    /// The CSV key of a cell: the [`Row::cell_key`] of its rows.
    fn key(&self, ctx: &Ctx, cell: &Cell) -> String {
        ctx.key(cell)
    }
    /// What determines the kind's values besides the shared fingerprint and the cell keys (part
    /// of the resume fingerprint when not null).
    fn fingerprint(&self, _ctx: &Ctx) -> serde_json::Value {
        serde_json::Value::Null
    }
    /// The CSV's schedule column.
    fn schedule(&self, ctx: &Ctx) -> String {
        ctx.sweep.config.schedule.clone()
    }
    /// The rows written after the cells: the Monte Carlo floor, `floor_reps` repetitions per
    /// (target, process).
    fn floor(&self, ctx: &Ctx) -> Result<Vec<Row>, String> {
        floor_rows(ctx, ctx.sweep.config.floor_reps)
    }
    /// Whether a cell already in the CSV with these metrics is complete (otherwise it runs
    /// again: a CSV written before a metric was added is completed rather than trusted).
    fn complete(&self, metrics: &BTreeSet<&str>) -> bool {
        SAMPLE_METRICS.iter().all(|m| metrics.contains(m))
    }
    /// The rows of one cell.
    fn run_cell(&self, ctx: &Ctx, cell: &Cell) -> Result<Vec<Row>, String>;
    /// Sidecar fields written with every shard.
    fn sidecar(&self) -> serde_json::Map<String, serde_json::Value> {
        Default::default()
    }
    /// Tables and figures from all rows (unsharded runs only).
    fn finish(&self, ctx: &Ctx, rows: &[Row], out_dir: &Path, quiet: bool) -> Result<Finished, String>;
    /// Print the fitted path-error slopes after the summary line.
    fn shows_slopes(&self) -> bool {
        false
    }
}

/// Where a sweep writes and which part of it runs.
pub struct RunOptions<'a> {
    /// Output directory.
    pub out_dir: &'a Path,
    /// `(i, n)`: run the cells with index i mod n.
    pub shard: (usize, usize),
    /// No progress bar and no summary.
    pub quiet: bool,
    /// When the command started (the sidecar's `seconds`).
    pub started: Instant,
    /// Start over: remove this shard's CSV, sidecar and journal first.
    pub force: bool,
}

/// The floor rows of every (target, process).
pub(super) fn floor_rows(ctx: &Ctx, reps: usize) -> Result<Vec<Row>, String> {
    let mut rows = vec![];
    for (ti, target) in ctx.targets.iter().enumerate() {
        for &pk in &ctx.sweep.processes {
            let p = process_of(pk)?;
            let refs = ctx.refs(ti, pk)?;
            for rep in 0..reps as u64 {
                let x = exact_set(target, &*p, ctx.sweep.config.n, 2_000_003 + rep);
                for (metric, value) in metrics(target, &*p, &x, &refs.reference, &refs.dirs) {
                    rows.push(Row {
                        target: ctx.names[ti].clone(),
                        process: p.name().into(),
                        solver: "exact-floor".into(),
                        space: "-".into(),
                        steps: 0,
                        nfe: 0,
                        seed: rep,
                        metric: metric.into(),
                        value,
                    });
                }
            }
        }
    }
    Ok(rows)
}

pub(super) fn progress(len: usize, quiet: bool) -> Result<ProgressBar, String> {
    let bar =
        if std::io::stderr().is_terminal() && !quiet { ProgressBar::new(len as u64) } else { ProgressBar::hidden() };
    bar.set_style(ProgressStyle::with_template("{bar:40} {pos}/{len} cells (eta {eta})").map_err(|e| e.to_string())?);
    Ok(bar)
}

/// The CSV of shard `shard` of `shards` of experiment `name` (a whole run's when `shards` is 1).
pub(super) fn csv_path(out_dir: &Path, name: &str, shard: usize, shards: usize) -> PathBuf {
    if shards > 1 {
        out_dir.join(format!("{name}.shard{shard}of{shards}.csv"))
    } else {
        out_dir.join(format!("{name}.csv"))
    }
}

/// What a run and a merge compute before they look at any file: the Monte Carlo floor rows, the
/// kind's cells (after `prepare`), the fingerprint and the targets' content hashes.
pub(super) struct Setup {
    /// The floor rows, written once after the cells.
    pub floor: Vec<Row>,
    /// Every cell, in CSV order.
    pub cells: Vec<Cell>,
    /// What determines the cells' values besides their coordinates.
    pub fp: serde_json::Value,
    /// Each target's content hash.
    pub hashes: BTreeMap<String, String>,
}

pub(super) fn setup(kind: &mut dyn SweepKind, ctx: &Ctx) -> Result<Setup, String> {
    kind.prepare(ctx)?;
    let floor = kind.floor(ctx)?;
    let mut fp = resume::fingerprint(ctx)?;
    let own = kind.fingerprint(ctx);
    if let (false, Some(fields)) = (own.is_null(), fp.as_object_mut()) {
        fields.insert("kind_fields".into(), own);
    }
    Ok(Setup { floor, cells: kind.cells(ctx), fp, hashes: resume::target_hashes(ctx) })
}

/// What is done with a finished cell's key and rows (the journal's append).
pub(super) type Finish<'a> = dyn Fn(&str, &[Row]) -> Result<(), String> + Sync + 'a;

/// Runs `cells` in parallel behind a progress bar, handing each finished cell to `finished`
/// (the journal) as soon as it is done; returns each cell's key and rows in `cells`' order.
pub(super) fn run_cells(
    kind: &dyn SweepKind,
    ctx: &Ctx,
    cells: &[&Cell],
    quiet: bool,
    finished: &Finish,
) -> Result<Vec<(String, Vec<Row>)>, String> {
    let bar = progress(cells.len(), quiet)?;
    let results: Vec<Result<(String, Vec<Row>), String>> = cells
        .par_iter()
        .map(|c| {
            let rows = kind.run_cell(ctx, c)?;
            let key = kind.key(ctx, c);
            finished(&key, &rows)?;
            bar.inc(1);
            Ok((key, rows))
        })
        .collect();
    bar.finish_and_clear();
    results.into_iter().collect()
}

/// Runs a cell-based sweep of `kind`.
pub fn run(kind: &mut dyn SweepKind, ctx: &Ctx, opts: &RunOptions) -> Result<(), String> {
    let (shard, shards) = opts.shard;
    let csv_path = csv_path(opts.out_dir, &ctx.sweep.config.experiment, shard, shards);
    let Setup { floor, cells, fp, hashes } = setup(kind, ctx)?;
    let kind: &dyn SweepKind = kind;
    let resume = Resume::open(&csv_path, &fp, &hashes, opts.force)?;
    let mut found: BTreeMap<String, BTreeSet<&str>> = Default::default();
    for r in &resume.rows {
        found.entry(r.cell_key()).or_default().insert(&r.metric);
    }
    let done: BTreeSet<String> = found
        .into_iter()
        .filter(|(_, m)| kind.complete(m))
        .map(|(k, _)| k)
        .chain(resume.journaled.iter().cloned())
        .collect();
    let todo: Vec<&Cell> = cells
        .iter()
        .enumerate()
        .filter(|(i, c)| i % shards == shard && !done.contains(&kind.key(ctx, c)))
        .map(|(_, c)| c)
        .collect();
    // Each finished cell goes to the journal at once: a kill loses only the cells in flight.
    let results = run_cells(kind, ctx, &todo, opts.quiet, &|key, rows| resume.record(key, rows))?;
    let mut rows: Vec<Row> = resume.rows.iter().filter(|r| done.contains(&r.cell_key())).cloned().collect();
    let with_rows: BTreeSet<String> = rows.iter().map(Row::cell_key).collect();
    // Cells done without a row: recorded so that a rerun does not redo them.
    let mut empty: BTreeSet<String> = resume.journaled.iter().filter(|k| !with_rows.contains(*k)).cloned().collect();
    for (key, r) in results {
        if r.is_empty() {
            empty.insert(key);
        }
        rows.extend(r);
    }
    let extra = serde_json::json!({ "shard": format!("{shard}/{shards}") });
    let outputs = Outputs { csv_path: &csv_path, shards, cells_run: todo.len(), empty: &empty, extra };
    write_outputs(kind, ctx, &cells, &fp, &hashes, rows, floor, outputs, opts.out_dir, opts.started, opts.quiet)?;
    resume.finish()
}

/// What [`write_outputs`] writes besides the rows.
pub(super) struct Outputs<'a> {
    /// The CSV.
    pub csv_path: &'a Path,
    /// Shards of the run (figures and tables only for a whole run).
    pub shards: usize,
    /// Cells computed by this run.
    pub cells_run: usize,
    /// Cells done without rows.
    pub empty: &'a BTreeSet<String>,
    /// More sidecar fields.
    pub extra: serde_json::Value,
}

/// Sorts the rows into the order of `cells` (rows of a cell keep their order; rows of cells not
/// in `cells`, kept from an earlier run of a larger sweep, come last), appends the floor, writes
/// the CSV, the kind's tables and figures (whole runs only) and the sidecar with its resume
/// record.
#[allow(clippy::too_many_arguments)]
pub(super) fn write_outputs(
    kind: &dyn SweepKind,
    ctx: &Ctx,
    cells: &[Cell],
    fp: &serde_json::Value,
    hashes: &BTreeMap<String, String>,
    mut rows: Vec<Row>,
    floor: Vec<Row>,
    out: Outputs,
    out_dir: &Path,
    started: Instant,
    quiet: bool,
) -> Result<(), String> {
    let sweep = ctx.sweep;
    let name = &sweep.config.experiment;
    let index: BTreeMap<String, usize> = cells.iter().enumerate().map(|(i, c)| (kind.key(ctx, c), i)).collect();
    rows.sort_by_key(|r| index.get(&r.cell_key()).copied().unwrap_or(usize::MAX));
    rows.extend(floor);
    let bytes = csv_bytes(&rows, name, &kind.schedule(ctx))?;
    write_atomic(out.csv_path, &bytes).map_err(|e| e.to_string())?;

    let slopes = plot::fitted_slopes(&rows, "path_error");
    let finished = if out.shards == 1 { kind.finish(ctx, &rows, out_dir, quiet)? } else { Finished::default() };
    let mut extra = serde_json::json!({
        "cells_run": out.cells_run,
        "fitted_slopes_path_error_vs_nfe": slopes,
        "fitted_orders_vs_steps": null,
        "budget_steps": [],
        "model": null,
        "resume": resume::record(fp, hashes, &bytes, out.empty),
    });
    if let Some(fields) = extra.as_object_mut() {
        if let serde_json::Value::Object(more) = out.extra {
            fields.extend(more);
        }
        fields.extend(kind.sidecar());
        fields.extend(finished.sidecar);
    }
    let json_path = write_sidecar(sweep, out.csv_path, started, &finished.figures, &finished.tables, extra)?;
    if !quiet {
        eprintln!(
            "wrote {} ({} rows), {} and {} figure(s) in {:.1} s",
            out.csv_path.display(),
            rows.len(),
            json_path.display(),
            finished.figures.len(),
            started.elapsed().as_secs_f64()
        );
        let shown = if kind.shows_slopes() { slopes.as_object() } else { None };
        for (k, v) in shown.into_iter().flatten() {
            eprintln!("  {k}: slope {v}");
        }
    }
    Ok(())
}
