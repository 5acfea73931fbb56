//! Resuming a sweep without ever reusing stale or damaged results.
//!
//! A row's coordinates (target, process, solver, space, steps, seed) do not determine its value:
//! the sample size, the schedule, the projections, the kind, the target's contents and a trained
//! model's weights do too. These make up the sweep's *fingerprint*, recorded in the sidecar with
//! each target's content hash and the CSV's own SHA-256. A rerun into the same directory reuses
//! the CSV only when all three agree; otherwise it stops with one line naming what differs (and
//! `--force` starts over), so an edited, truncated or foreign CSV is never trusted.
//!
//! Finished cells are also appended, one JSON line each and synced, to a journal beside the CSV
//! (`NAME.csv.journal`, its first line the fingerprint): a killed sweep keeps every cell that
//! finished, a rerun runs exactly the missing ones, and the journal is removed once the CSV and
//! sidecar are written. A torn last line (the kill came mid-write) is dropped and its cell reruns.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::cells::Ctx;
use super::output::{read_csv, Row};

/// Hex SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// What determines a cell's values besides its coordinates (see the module docs).
pub fn fingerprint(ctx: &Ctx) -> Result<Value, String> {
    let c = &ctx.sweep.config;
    // Only the kinds that run the network read the model.
    use super::config::ExperimentKind::{Guidance, TrainedVsExact};
    let model = if c.model.is_empty() || !matches!(c.kind, TrainedVsExact | Guidance) {
        Value::Null
    } else {
        let bytes = fs::read(&c.model).map_err(|e| format!("model {}: {e}", c.model))?;
        // The weights decide the values, not the path they were read from.
        json!({ "sha256": sha256(&bytes) })
    };
    Ok(json!({
        "kind": c.kind,
        "schedule": c.schedule,
        "n": c.n,
        "projections": c.projections,
        "model": model,
    }))
}

/// Each target's name and the hash of its contents (its canonical JSON).
pub fn target_hashes(ctx: &Ctx) -> BTreeMap<String, String> {
    ctx.names.iter().zip(&ctx.targets).map(|(n, t)| (n.clone(), sha256(t.to_json_string().as_bytes()))).collect()
}

/// The journal of a CSV.
pub fn journal_path(csv: &Path) -> PathBuf {
    let mut name = csv.as_os_str().to_owned();
    name.push(".journal");
    PathBuf::from(name)
}

/// The first field of `a` whose value differs in `b`, as `field = A here, B there`.
fn first_difference(now: &Value, before: &Value) -> Option<String> {
    let (Some(a), Some(b)) = (now.as_object(), before.as_object()) else {
        return (now != before).then(|| format!("{before} -> {now}"));
    };
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter().find(|k| a.get(*k) != b.get(*k)).map(|k| {
        let show = |v: Option<&Value>| v.map_or("(absent)".to_string(), |v| v.to_string());
        format!("{k} = {} then, {} now", show(b.get(k)), show(a.get(k)))
    })
}

fn refuse(csv: &Path, why: String) -> String {
    format!("{}: {why}; rerun with --force to start over, or use another --out-dir", csv.display())
}

/// Checks a recorded fingerprint and target hashes against the current ones.
fn check_recorded(
    csv: &Path,
    what: &str,
    recorded: &Value,
    fp: &Value,
    targets: &BTreeMap<String, String>,
) -> Result<(), String> {
    if let Some(diff) = first_difference(fp, &recorded["fingerprint"]) {
        return Err(refuse(csv, format!("{what} was made by another configuration ({diff})")));
    }
    for (name, hash) in targets {
        if let Some(before) = recorded["targets"].get(name).and_then(Value::as_str) {
            if before != hash {
                return Err(refuse(csv, format!("{what} was made with different contents of target {name}")));
            }
        }
    }
    Ok(())
}

/// A finished CSV's rows (floor rows left out), the cells its sidecar records as done without
/// rows, and the sidecar.
pub struct Verified {
    /// The rows.
    pub rows: Vec<Row>,
    /// Keys of the cells done without rows.
    pub empty: BTreeSet<String>,
    /// The sidecar (timing, host, commit, the resume record).
    pub sidecar: Value,
}

/// Reads a finished CSV after checking its sidecar's record against the fingerprint, the target
/// hashes and the CSV's bytes.
pub fn verified(csv: &Path, fp: &Value, targets: &BTreeMap<String, String>) -> Result<Verified, String> {
    let text = fs::read(csv).map_err(|e| format!("{}: {e}", csv.display()))?;
    let sidecar = read_sidecar(csv)?;
    let recorded = &sidecar["resume"];
    check_recorded(csv, "it", recorded, fp, targets)?;
    if recorded["csv_sha256"].as_str() != Some(sha256(&text).as_str()) {
        return Err(refuse(csv, "it changed after it was written (its SHA-256 is not the sidecar's)".into()));
    }
    let mut rows = read_csv(csv)?;
    rows.retain(|r| r.solver != "exact-floor");
    let empty = recorded["empty_cells"].as_array().into_iter().flatten().filter_map(|k| k.as_str()).map(String::from);
    let empty = empty.collect();
    Ok(Verified { rows, empty, sidecar })
}

/// The sidecar of a CSV, which must record how the CSV was made.
fn read_sidecar(csv: &Path) -> Result<Value, String> {
    let sidecar = csv.with_extension("json");
    fs::read_to_string(&sidecar)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .filter(|v: &Value| v.get("resume").is_some())
        .ok_or_else(|| refuse(csv, format!("{} does not record how it was made", sidecar.display())))
}

/// The rows a sweep may reuse, and the journal it appends to.
pub struct Resume {
    /// Rows of the CSV and of the journal's finished cells.
    pub rows: Vec<Row>,
    /// Keys of the cells the journal holds, and of the cells the sidecar records as having
    /// produced no row (stochastic solvers where only path errors are measured): done.
    pub journaled: BTreeSet<String>,
    journal: Mutex<File>,
    path: PathBuf,
}

impl Resume {
    /// Opens the CSV at `csv` and its journal for a run with fingerprint `fp`: `force` removes
    /// them first; otherwise anything that does not match is refused (module docs).
    pub fn open(csv: &Path, fp: &Value, targets: &BTreeMap<String, String>, force: bool) -> Result<Self, String> {
        let sidecar = csv.with_extension("json");
        let journal = journal_path(csv);
        if force {
            for p in [csv, &sidecar, &journal] {
                match fs::remove_file(p) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(format!("{}: {e}", p.display())),
                    _ => {}
                }
            }
        }
        let (mut rows, empty) = match csv.exists() {
            true => {
                let v = verified(csv, fp, targets)?;
                (v.rows, v.empty)
            }
            false => (vec![], BTreeSet::new()),
        };
        let header = json!({ "fingerprint": fp, "targets": targets });
        let mut kept = vec![serde_json::to_string(&header).map_err(|e| e.to_string())?];
        let mut journaled = empty;
        if let Ok(text) = fs::read_to_string(&journal) {
            let mut lines = text.split_inclusive('\n');
            let first: Value = lines
                .next()
                .and_then(|l| serde_json::from_str(l).ok())
                .ok_or_else(|| refuse(&journal, "its first line is not a sweep journal's header".into()))?;
            check_recorded(&journal, "the journal", &first, fp, targets)?;
            for line in lines {
                // A line without its newline was cut by a kill: its cell runs again.
                let Some(body) = line.strip_suffix('\n') else { break };
                let Ok(cell) = serde_json::from_str::<Value>(body) else { break };
                let (Some(key), Ok(cell_rows)) =
                    (cell["key"].as_str(), serde_json::from_value::<Vec<Row>>(cell["rows"].clone()))
                else {
                    break;
                };
                journaled.insert(key.to_string());
                rows.extend(cell_rows);
                kept.push(body.to_string());
            }
        }
        // Rewritten without a torn tail, then appended to.
        let text: String = kept.iter().map(|l| format!("{l}\n")).collect();
        scoresde::io::write_atomic(&journal, text.as_bytes()).map_err(|e| e.to_string())?;
        let file = OpenOptions::new().append(true).open(&journal).map_err(|e| format!("{}: {e}", journal.display()))?;
        Ok(Self { rows, journaled, journal: Mutex::new(file), path: journal })
    }

    /// Appends a finished cell (synced before returning).
    pub fn record(&self, key: &str, rows: &[Row]) -> Result<(), String> {
        let line = serde_json::to_string(&json!({ "key": key, "rows": rows })).map_err(|e| e.to_string())?;
        let mut f = self.journal.lock().map_err(|_| "journal lock poisoned".to_string())?;
        f.write_all(format!("{line}\n").as_bytes())
            .and_then(|()| f.sync_data())
            .map_err(|e| format!("{}: {e}", self.path.display()))
    }

    /// Removes the journal once the CSV holds everything.
    pub fn finish(self) -> Result<(), String> {
        drop(self.journal);
        fs::remove_file(&self.path).map_err(|e| format!("{}: {e}", self.path.display()))
    }
}

/// The sidecar's `resume` record for a CSV with `bytes`, and the cells done without rows.
pub fn record(fp: &Value, targets: &BTreeMap<String, String>, bytes: &[u8], empty_cells: &BTreeSet<String>) -> Value {
    json!({ "fingerprint": fp, "targets": targets, "csv_sha256": sha256(bytes), "empty_cells": empty_cells })
}
