//! `scoresde sweep merge [CONFIG] --out-dir DIR`: the shard files of DIR (`NAME.shardIofN.csv`,
//! each with its sidecar) combined into the CSV, sidecar, tables and figures a single run writes.
//!
//! Each shard is verified as a rerun would verify it (same fingerprint, target contents, intact
//! CSV) and must hold every cell of its share (index i mod n, with the cells it recorded as done
//! without rows); a missing or incomplete shard is refused, naming it, unless `--compute-missing`
//! computes the missing cells here. The merged CSV equals a single run's byte for byte: the same
//! rows in cell order, the Monte Carlo floor once. The sidecar keeps each shard's timing, host,
//! threads and commit.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::cells::Ctx;
use super::driver::{csv_path, run_cells, setup, write_outputs, Outputs, Setup, SweepKind};
use super::output::Row;
use super::resume;

/// The shard CSVs of `name` in `dir`: (shard index, count, path).
fn shard_files(dir: &Path, name: &str) -> Result<Vec<(usize, usize, PathBuf)>, String> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}: no shard files {name}.shardIofN.csv to merge", dir.display()))?;
    let prefix = format!("{name}.shard");
    let mut found = vec![];
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = file.strip_prefix(&prefix).and_then(|r| r.strip_suffix(".csv")) else { continue };
        let Some((i, n)) = rest.split_once("of") else { continue };
        if let (Ok(i), Ok(n)) = (i.parse::<usize>(), n.parse::<usize>()) {
            found.push((i, n, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

/// Merges the shards of `kind`'s sweep in `out_dir` (module docs).
pub fn merge(
    kind: &mut dyn SweepKind,
    ctx: &Ctx,
    out_dir: &Path,
    compute_missing: bool,
    quiet: bool,
    started: Instant,
) -> Result<(), String> {
    let name = &ctx.sweep.config.experiment;
    let files = shard_files(out_dir, name)?;
    let counts: BTreeSet<usize> = files.iter().map(|(_, n, _)| *n).collect();
    let shards = match counts.len() {
        0 => return Err(format!("{}: no shard files {name}.shardIofN.csv to merge", out_dir.display())),
        1 => *counts.iter().next().expect("one count"),
        _ => {
            return Err(format!(
                "{}: shard files of {name} for different shard counts ({}): remove the stale ones",
                out_dir.display(),
                counts.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(", ")
            ))
        }
    };
    let Setup { floor, cells, fp, hashes } = setup(kind, ctx)?;
    let kind: &dyn SweepKind = kind;
    let mut rows: Vec<Row> = vec![];
    let mut empty = BTreeSet::new();
    let mut have = BTreeSet::new();
    let mut problems = vec![];
    let mut shard_info = vec![];
    for i in 0..shards {
        let csv = csv_path(out_dir, name, i, shards);
        let share: Vec<String> =
            cells.iter().enumerate().filter(|(k, _)| k % shards == i).map(|(_, c)| kind.key(ctx, c)).collect();
        if !csv.exists() {
            problems.push(format!("shard {i} is missing ({} absent)", csv.display()));
            continue;
        }
        let resume::Verified { rows: shard_rows, empty: shard_empty, sidecar: side } =
            resume::verified(&csv, &fp, &hashes)?;
        let mut keys: BTreeSet<String> = shard_rows.iter().map(Row::cell_key).collect();
        keys.extend(shard_empty.iter().cloned());
        let lacking = share.iter().filter(|k| !keys.contains(*k)).count();
        if lacking > 0 {
            problems.push(format!("shard {i} is incomplete ({lacking} of {} cells missing)", share.len()));
        }
        let field = |k: &str| side.get(k).cloned().unwrap_or(serde_json::Value::Null);
        shard_info.push(serde_json::json!({
            "shard": format!("{i}/{shards}"),
            "seconds": field("seconds"),
            "host": field("host"),
            "threads": field("threads"),
            "git_commit": field("git_commit"),
            "cells_run": field("cells_run"),
        }));
        have.extend(keys);
        rows.extend(shard_rows);
        empty.extend(shard_empty);
    }
    if !problems.is_empty() && !compute_missing {
        return Err(format!(
            "{}: cannot merge {name}: {}; rerun those array tasks (they resume) or pass --compute-missing",
            out_dir.display(),
            problems.join(", ")
        ));
    }
    // Only the cells of this configuration, once each (a shard may hold cells of a larger sweep).
    let wanted: BTreeSet<String> = cells.iter().map(|c| kind.key(ctx, c)).collect();
    rows.retain(|r| wanted.contains(&r.cell_key()));
    empty.retain(|k| wanted.contains(k));
    let todo: Vec<_> = cells.iter().filter(|c| !have.contains(&kind.key(ctx, c))).collect();
    for (key, cell_rows) in run_cells(kind, ctx, &todo, quiet, &|_, _| Ok(()))? {
        if cell_rows.is_empty() {
            empty.insert(key);
        }
        rows.extend(cell_rows);
    }
    let extra = serde_json::json!({
        "shard": format!("merged from {shards}"),
        "shards": shard_info,
        "problems_computed_here": problems,
    });
    let csv_path = out_dir.join(format!("{name}.csv"));
    let outputs = Outputs { csv_path: &csv_path, shards: 1, cells_run: todo.len(), empty: &empty, extra };
    write_outputs(kind, ctx, &cells, &fp, &hashes, rows, floor, outputs, out_dir, started, quiet)
}
