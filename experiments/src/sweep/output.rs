//! The files every sweep writes: the long CSV (`experiment,target,process,solver,space,schedule,
//! steps,nfe,seed,metric,value`, read back on resume) through the `csv` crate, and the JSON
//! sidecar (config, git commit, version, threads, time, files written, the kind's own fields).

use std::path::{Path, PathBuf};
use std::time::Instant;

use scoresde::io::write_atomic;
use scoresde_solvers::Num;

use super::config::Sweep;

/// CSV header.
pub const HEADER: &str = "experiment,target,process,solver,space,schedule,steps,nfe,seed,metric,value";
/// Columns of [`HEADER`].
const COLUMNS: usize = 11;

/// One CSV row.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Row {
    /// Target name.
    pub target: String,
    /// Process name.
    pub process: String,
    /// Solver name (or `exact-floor`).
    pub solver: String,
    /// `t`, `sigma` or `-`.
    pub space: String,
    /// Steps (0 for floor rows).
    pub steps: usize,
    /// Model evaluations.
    pub nfe: usize,
    /// Seed (floor rows: repetition).
    pub seed: u64,
    /// Metric name.
    pub metric: String,
    /// Value.
    pub value: f64,
}

impl Row {
    /// The key of the cell the row belongs to (target, process, solver, space, steps, seed).
    pub fn cell_key(&self) -> String {
        cell_key(&self.target, &self.process, &self.solver, &self.space, self.steps, self.seed)
    }
}

/// The key of a cell, as [`Row::cell_key`].
pub fn cell_key(target: &str, process: &str, solver: &str, space: &str, steps: usize, seed: u64) -> String {
    format!("{target}|{process}|{solver}|{space}|{steps}|{seed}")
}

/// The rows of the sweep CSV at `path`, checked: the header must be this version's, every record
/// must have its fields with numbers that parse and finite values, and no (cell, metric) may
/// appear twice. Any violation is an error naming the file and the line.
pub fn read_csv(path: &Path) -> Result<Vec<Row>, String> {
    let at = |line: u64, why: String| format!("{} line {line}: {why}", path.display());
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_path(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    match reader.headers() {
        Ok(h) if h.iter().eq(HEADER.split(',')) => {}
        Ok(h) => return Err(at(1, format!("header {:?} is not {HEADER:?}", h.iter().collect::<Vec<_>>().join(",")))),
        Err(e) => return Err(at(1, e.to_string())),
    }
    let mut rows = vec![];
    let mut seen: std::collections::BTreeMap<(String, String), (u64, f64)> = Default::default();
    for record in reader.records() {
        let f = record.map_err(|e| format!("{}: {e}", path.display()))?;
        let line = f.position().map_or(0, |p| p.line());
        if f.len() != COLUMNS {
            return Err(at(line, format!("{} fields, expected {COLUMNS}", f.len())));
        }
        let number = |i: usize, name: &str| f[i].parse::<u64>().map_err(|_| at(line, format!("{name} = {:?}", &f[i])));
        let value: f64 = f[10].parse().map_err(|_| at(line, format!("value = {:?}", &f[10])))?;
        if !value.is_finite() {
            return Err(at(line, format!("value = {value}: must be finite")));
        }
        let row = Row {
            target: f[1].into(),
            process: f[2].into(),
            solver: f[3].into(),
            space: f[4].into(),
            steps: number(6, "steps")? as usize,
            nfe: number(7, "nfe")? as usize,
            seed: number(8, "seed")?,
            metric: f[9].into(),
            value,
        };
        match seen.insert((row.cell_key(), row.metric.clone()), (line, value)) {
            Some((first, v)) if v == value => return Err(at(line, format!("a duplicate of line {first}"))),
            Some((first, v)) => {
                return Err(at(line, format!("value {} conflicts with {} on line {first}", Num(value), Num(v))))
            }
            None => {}
        }
        rows.push(row);
    }
    Ok(rows)
}

/// The CSV text of `rows`: the header, then one record per row with the experiment's name and
/// schedule, values in Rust's shortest round-trip `{:e}` form.
pub fn csv_bytes(rows: &[Row], experiment: &str, schedule: &str) -> Result<Vec<u8>, String> {
    let mut writer = csv::WriterBuilder::new().from_writer(vec![]);
    let err = |e: csv::Error| format!("sweep CSV: {e}");
    writer.write_record(HEADER.split(',')).map_err(err)?;
    for r in rows {
        let (steps, nfe, seed, value) =
            (r.steps.to_string(), r.nfe.to_string(), r.seed.to_string(), format!("{:e}", r.value));
        let record =
            [experiment, &r.target, &r.process, &r.solver, &r.space, schedule, &steps, &nfe, &seed, &r.metric, &value];
        writer.write_record(record).map_err(err)?;
    }
    writer.into_inner().map_err(|e| format!("sweep CSV: {e}"))
}

/// Writes `text` to `out_dir/file` (atomically) and returns the path written.
pub fn write_table(out_dir: &Path, file: &str, text: &str) -> Result<String, String> {
    let path = out_dir.join(file);
    write_atomic(&path, text.as_bytes()).map_err(|e| e.to_string())?;
    Ok(path.display().to_string())
}

/// Writes the JSON sidecar beside `csv_path` (same stem, `.json`): the full config, git commit,
/// version, threads, time, the files written, and the kind's own `extra` fields. Returns its path.
pub fn write_sidecar(
    sweep: &Sweep,
    csv_path: &Path,
    started: Instant,
    figures: &[String],
    tables: &[String],
    extra: serde_json::Value,
) -> Result<PathBuf, String> {
    let mut sidecar = serde_json::json!({
        "config": sweep.config,
        "git_commit": git_commit(),
        "host": host(),
        "scoresde_version": env!("CARGO_PKG_VERSION"),
        "threads": rayon::current_num_threads(),
        "seconds": started.elapsed().as_secs_f64(),
        "csv": csv_path.display().to_string(),
        "figures": figures,
        "tables": tables,
    });
    if let (Some(all), serde_json::Value::Object(more)) = (sidecar.as_object_mut(), extra) {
        all.extend(more);
    }
    let text = serde_json::to_string_pretty(&sidecar).map_err(|e| e.to_string())?;
    let json_path = csv_path.with_extension("json");
    write_atomic(&json_path, format!("{text}\n").as_bytes()).map_err(|e| e.to_string())?;
    Ok(json_path)
}

/// The checkout's commit, or else the commit the binary was built from (a job that runs outside
/// the checkout still names it), or "unknown".
fn git_commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .or_else(|| option_env!("SCORESDE_BUILD_COMMIT").filter(|c| !c.is_empty()).map(String::from))
        .unwrap_or_else(|| "unknown".into())
}

/// This machine's host name.
fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(metric: &str, value: f64) -> Row {
        Row {
            target: "ring8".into(),
            process: "vp".into(),
            solver: "heun".into(),
            space: "t".into(),
            steps: 8,
            nfe: 15,
            seed: 0,
            metric: metric.into(),
            value,
        }
    }

    #[test]
    fn csv_bytes_are_the_plain_comma_joined_lines_and_read_back() {
        let rows = [row("sliced_w2", 0.125), row("mean_error", 1.5e-7)];
        let bytes = csv_bytes(&rows, "exp", "logsnr").unwrap();
        let want = format!(
            "{HEADER}\nexp,ring8,vp,heun,t,logsnr,8,15,0,sliced_w2,1.25e-1\nexp,ring8,vp,heun,t,logsnr,8,15,0,mean_error,1.5e-7\n"
        );
        assert_eq!(String::from_utf8(bytes.clone()).unwrap(), want);
        let dir = std::env::temp_dir().join(format!("scoresde_output_test_{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.csv");
        std::fs::write(&path, &want).unwrap();
        assert_eq!(read_csv(&path).unwrap(), rows);
        // Damage of every kind is an error naming the line.
        let bad = |text: String, wanted: &str| {
            std::fs::write(&path, text).unwrap();
            let e = read_csv(&path).unwrap_err();
            assert!(e.contains(wanted), "{e} lacks {wanted}");
        };
        bad(format!("{want}bad,line\n"), "line 4: 2 fields");
        bad(format!("{want}exp,ring8,vp,heun,t,logsnr,x,15,0,m,1\n"), "line 4: steps = \"x\"");
        bad(format!("{want}exp,ring8,vp,heun,t,logsnr,8,15,0,m,NaN\n"), "line 4: value = NaN: must be finite");
        bad(format!("{want}exp,ring8,vp,heun,t,logsnr,8,15,0,sliced_w2,1.25e-1\n"), "line 4: a duplicate of line 2");
        bad(format!("{want}exp,ring8,vp,heun,t,logsnr,8,15,0,sliced_w2,2e-1\n"), "line 4: value 0.2 conflicts");
        bad("other,header\n1,2\n".into(), "line 1: header");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
