//! Replays every case of tests/reference/cases_v2 (a verbatim copy of shared/reference/cases_v2:
//! diffusers' flow-match, DDPM and DDIM-eta schedulers and their schedule tables) with the
//! command recorded in its manifest (`replay.argv`, run in the case directory), and asserts
//! check_v2.py's criteria: sample cases, max |out - ref| <= the peer's atol for every peer;
//! grid cases, |out - ref| <= atol + rtol |ref| element-wise for every peer and both arrays,
//! shapes equal.

use std::path::{Path, PathBuf};
use std::process::Command;

use ndarray::{Array1, Array2};
use ndarray_npy::read_npy;
use serde_json::Value;

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/reference/cases_v2")
}

fn manifests() -> Vec<(PathBuf, Value)> {
    let mut out = vec![];
    for entry in std::fs::read_dir(cases_dir()).unwrap() {
        let dir = entry.unwrap().path();
        let mf = dir.join("manifest.json");
        if mf.exists() {
            out.push((dir, serde_json::from_str(&std::fs::read_to_string(mf).unwrap()).unwrap()));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Runs the recorded command with `{OUT}` replaced; returns the output path.
fn replay(dir: &Path, m: &Value, tmp: &Path) -> PathBuf {
    let id = m["case_id"].as_str().unwrap();
    let rp = &m["replay"];
    let command = rp["command"].as_str().unwrap();
    let out = if command == "grid" { tmp.join(id) } else { tmp.join(format!("{id}.npy")) };
    let argv: Vec<String> = rp["argv"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().replace("{OUT}", &out.display().to_string()))
        .collect();
    let run = Command::new(env!("CARGO_BIN_EXE_scoresde")).arg(command).args(&argv).current_dir(dir).output().unwrap();
    assert!(run.status.success(), "{id}: {}\n{command} {argv:?}", String::from_utf8_lossy(&run.stderr));
    out
}

fn max_abs(a: &Array2<f64>, b: &Array2<f64>) -> f64 {
    assert_eq!(a.dim(), b.dim());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

#[test]
fn every_v2_case_replays_as_recorded_and_matches_its_peers() {
    let tmp = std::env::temp_dir().join(format!("scoresde-ref-v2-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let cases = manifests();
    assert_eq!(cases.len(), 31, "cases_v2 holds 31 cases");
    let mut failures = vec![];
    for (dir, m) in &cases {
        let id = m["case_id"].as_str().unwrap();
        let out = replay(dir, m, &tmp);
        if m["kind"] == "grid" {
            for (array, spec) in m["outputs"].as_object().unwrap() {
                let got: Array1<f64> = read_npy(out.join(spec["file"].as_str().unwrap())).unwrap();
                let shape: Vec<usize> =
                    spec["shape"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
                assert_eq!(vec![got.len()], shape, "{id} {array}: shape");
                for (peer, pm) in m["peers"].as_object().unwrap() {
                    let reference: Array1<f64> = read_npy(dir.join(pm["files"][array].as_str().unwrap())).unwrap();
                    let tol = &pm["tol"][array];
                    let (atol, rtol) = (tol["atol"].as_f64().unwrap(), tol["rtol"].as_f64().unwrap());
                    let worst = got
                        .iter()
                        .zip(&reference)
                        .map(|(o, r)| (o - r).abs() / (atol + rtol * r.abs()))
                        .fold(0.0, f64::max);
                    let ok = worst <= 1.0 && got.iter().all(|v| v.is_finite());
                    println!(
                        "{} {id} {array} vs {peer}: worst |err|/tol {worst:.3e}",
                        if ok { "PASS" } else { "FAIL" }
                    );
                    if !ok {
                        failures.push(format!("{id} {array} vs {peer}"));
                    }
                }
            }
        } else {
            let x: Array2<f64> = read_npy(&out).unwrap();
            for (peer, pm) in m["peers"].as_object().unwrap() {
                let reference: Array2<f64> = read_npy(dir.join(pm["file"].as_str().unwrap())).unwrap();
                let (err, atol) = (max_abs(&x, &reference), pm["atol"].as_f64().unwrap());
                let ok = err <= atol;
                println!("{} {id} vs {peer}: max_abs {err:.3e} (<= {atol:.1e})", if ok { "PASS" } else { "FAIL" });
                if !ok {
                    failures.push(format!("{id} vs {peer}"));
                }
            }
        }
    }
    std::fs::remove_dir_all(&tmp).ok();
    assert!(failures.is_empty(), "failed: {failures:?}");
}
