//! `scoresde sweep conventions`: every convention at every budget, with the NFE it really used.

mod common;
use common::{bin, s, Dir};

#[test]
fn conventions_sweep_writes_every_convention_at_its_budget() {
    let dir = Dir::new("conventions", "run");
    let out = bin().args(["sweep", "conventions", "--out-dir", s(&dir.p("")), "--quiet"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let csv = std::fs::read_to_string(dir.p("conventions.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv.lines().skip(1).map(|l| l.split(',').collect()).collect();
    // 13 conventions x 3 budgets x 2 targets, and the Monte Carlo floor of the mixture.
    assert_eq!(rows.len(), 13 * 3 * 2 + 1, "{csv}");
    for r in rows.iter().filter(|r| r[3] != "exact-floor") {
        // steps (column 6) = the budget, and the NFE counted (column 7) equals it: 1 NFE a step,
        // no duplicated final sigma counted as a step.
        assert!(["10", "20", "50"].contains(&r[6]), "{r:?}");
        assert_eq!(r[6], r[7], "{r:?}");
        let v: f64 = r[10].parse().unwrap();
        assert!(v.is_finite() && v > 0.0, "{r:?}");
    }
    let md = std::fs::read_to_string(dir.p("conventions.md")).unwrap();
    assert!(md.contains("| DDIM trailing + zero-SNR |") && md.contains("| flow shift 3 shifted once |"));
}
