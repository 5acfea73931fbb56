//! `scoresde sweep`: long-format CSV, determinism across thread counts, resume, shards, config errors.

use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_scoresde"))
}

#[test]
fn small_sweep_is_deterministic_resumable_and_shardable() {
    let dir = std::env::temp_dir().join(format!("scoresde-sweep-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("c.json");
    std::fs::write(
        &config,
        r#"{"experiment": "tiny", "processes": ["vp"], "solvers": [{"solver": "heun", "space": "t"}, {"solver": "ancestral", "space": "t"}],
            "steps": [4, 8, 16], "n": 300, "projections": 16, "floor_reps": 2}"#,
    )
    .unwrap();
    let run = |out: &str, threads: &str, extra: &[&str]| {
        let o = bin()
            .args(["sweep", config.to_str().unwrap(), "--out-dir", dir.join(out).to_str().unwrap(), "--quiet"])
            .args(extra)
            .env("RAYON_NUM_THREADS", threads)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    run("a", "1", &[]);
    run("b", "2", &[]);
    let csv = std::fs::read_to_string(dir.join("a/tiny.csv")).unwrap();
    assert_eq!(csv, std::fs::read_to_string(dir.join("b/tiny.csv")).unwrap(), "thread count changed the CSV");
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("experiment,target,process,solver,space,schedule,steps,nfe,seed,metric,value"));
    // 2 solvers x 3 step counts x 6 metrics + path_error for the ODE solver (3) + 2 floor reps x 6.
    assert_eq!(lines.count(), 2 * 3 * 6 + 3 + 2 * 6);
    assert!(csv.contains("tiny,ring8,vp,heun,t,logsnr,16,32,0,path_error,"));
    assert!(dir.join("a/tiny.json").exists() && dir.join("a/tiny_ring8_vp_sliced_w2.png").exists());
    // A rerun skips every finished cell and leaves the values unchanged.
    run("a", "2", &[]);
    assert_eq!(csv, std::fs::read_to_string(dir.join("a/tiny.csv")).unwrap());
    let sidecar: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("a/tiny.json")).unwrap()).unwrap();
    assert_eq!(sidecar["cells_run"], 0);
    // Two shards together hold the same data rows as the whole sweep.
    run("s", "1", &["--shard", "0/2"]);
    run("s", "1", &["--shard", "1/2"]);
    let rows = |p: &str| -> Vec<String> {
        std::fs::read_to_string(dir.join(p))
            .unwrap()
            .lines()
            .skip(1)
            .filter(|l| !l.contains("exact-floor"))
            .map(String::from)
            .collect()
    };
    let mut sharded = [rows("s/tiny.shard0of2.csv"), rows("s/tiny.shard1of2.csv")].concat();
    let mut whole = rows("a/tiny.csv");
    sharded.sort();
    whole.sort();
    assert_eq!(sharded, whole);
    // Bad configs name the field.
    std::fs::write(&config, r#"{"solvers": [{"solver": "rk5", "space": "t"}]}"#).unwrap();
    let o =
        bin().args(["sweep", config.to_str().unwrap(), "--out-dir", dir.join("c").to_str().unwrap()]).output().unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("solvers[0].solver = \"rk5\""));
    std::fs::write(&config, r#"{"stepz": [1]}"#).unwrap();
    let o =
        bin().args(["sweep", config.to_str().unwrap(), "--out-dir", dir.join("c").to_str().unwrap()]).output().unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("stepz"));
    std::fs::remove_dir_all(&dir).ok();
}

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("scoresde-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run_sweep(config: &std::path::Path, out: &std::path::Path) -> serde_json::Value {
    let o = bin()
        .args(["sweep", config.to_str().unwrap(), "--out-dir", out.to_str().unwrap(), "--quiet"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let name = config.file_stem().unwrap().to_str().unwrap();
    serde_json::from_str(&std::fs::read_to_string(out.join(format!("{name}.json"))).unwrap()).unwrap()
}

/// The convergence experiment's fitted orders come from the exact output law (no Monte Carlo
/// error), so on the Gaussian target they must match theory asymptotically: the tolerance 0.15
/// is the pre-asymptotic slack the order tests use over the same step counts.
#[test]
fn convergence_fits_the_theoretical_orders_on_a_gaussian() {
    let dir = temp_dir("conv");
    let config = dir.join("conv.json");
    std::fs::write(
        &config,
        r#"{"kind": "convergence", "experiment": "conv", "targets": ["gauss2"], "processes": ["vp"],
            "solvers": [{"solver": "euler", "space": "t"}, {"solver": "heun", "space": "t"},
                        {"solver": "dpmpp-2m", "space": "sigma"}, {"solver": "euler-maruyama", "space": "t"}],
            "steps": [32, 64, 128, 256]}"#,
    )
    .unwrap();
    let sidecar = run_sweep(&config, &dir);
    let orders = &sidecar["fitted_orders_vs_steps"];
    for (solver, theory) in
        [("euler (t)", 1.0), ("heun (t)", 2.0), ("dpmpp-2m (sigma)", 2.0), ("euler-maruyama (t)", 1.0)]
    {
        let fitted = orders[format!("gauss2/vp/{solver}")].as_f64().unwrap_or_else(|| panic!("{solver}: {orders}"));
        assert!((fitted - theory).abs() < 0.15, "{solver}: fitted order {fitted}, theory {theory}");
    }
    let table = std::fs::read_to_string(dir.join("conv_orders.md")).unwrap();
    assert!(table.contains("| heun (t) | 2 |"), "{table}");
    assert!(dir.join("conv_gauss2_vp_w2_exact.svg").exists());
    std::fs::remove_dir_all(&dir).ok();
}

/// Each solver gets the most steps whose NFE fits the budget; each column has one bold best.
#[test]
fn solver_table_fills_budgets_and_marks_the_best() {
    let dir = temp_dir("table");
    let config = dir.join("tab.json");
    std::fs::write(
        &config,
        r#"{"kind": "solver_table", "experiment": "tab", "processes": ["vp"], "budgets": [10, 20], "n": 500,
            "projections": 8, "floor_reps": 2,
            "solvers": [{"solver": "euler", "space": "t"}, {"solver": "rk4", "space": "t"},
                        {"solver": "dpmpp-2m", "space": "sigma"}, {"solver": "ancestral", "space": "t"}]}"#,
    )
    .unwrap();
    let sidecar = run_sweep(&config, &dir);
    let plan = sidecar["budget_steps"].as_array().unwrap();
    let steps_of = |solver: &str| -> Vec<(u64, u64)> {
        let entry = plan.iter().find(|e| e["solver"] == solver).unwrap();
        entry["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["steps"].as_u64().unwrap(), c["nfe"].as_u64().unwrap()))
            .collect()
    };
    // RK4 costs 4 NFE per step: 2 steps (8 NFE) for 10, 5 steps (20 NFE) for 20.
    assert_eq!(steps_of("rk4"), vec![(2, 8), (5, 20)]);
    assert_eq!(steps_of("euler"), vec![(10, 10), (20, 20)]);
    assert_eq!(steps_of("dpmpp-2m"), vec![(10, 10), (20, 20)]);
    let md = std::fs::read_to_string(dir.join("tab.md")).unwrap();
    let tex = std::fs::read_to_string(dir.join("tab.tex")).unwrap();
    // Two metrics (path_error, sliced_w2) x one (target, process), two columns each.
    assert_eq!(md.matches("**").count(), 2 * 2 * 2, "{md}");
    assert_eq!(tex.matches("\\textbf{").count(), 2 * 2, "{tex}");
    assert!(md.contains("rk4 (t) |") && md.contains("<sup>8</sup>") && tex.contains("$^{8}$"));
    // Stochastic solvers have no path error: they are absent from that table only.
    let path_table = md.split("# tab: sliced_w2").next().unwrap();
    assert!(!path_table.contains("ancestral") && md.contains("| ancestral (t) |"));
    assert!(md.contains("Monte Carlo floor") && tex.contains("\\toprule"));
    std::fs::remove_dir_all(&dir).ok();
}

/// Each path ends where `scoresde sample` ends with the same seed, flags and step count.
#[test]
fn trajectories_end_at_the_samplers_output() {
    let dir = temp_dir("traj");
    let config = dir.join("traj.config.json");
    std::fs::write(
        &config,
        r#"{"kind": "trajectories", "experiment": "traj", "particles": 5, "steps": [12],
            "solvers": [{"solver": "heun", "space": "t"}, {"solver": "euler-maruyama", "space": "t"},
                        {"solver": "dpmpp-2m", "space": "sigma"}]}"#,
    )
    .unwrap();
    let o = bin()
        .args(["sweep", config.to_str().unwrap(), "--out-dir", dir.to_str().unwrap(), "--quiet"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let csv = std::fs::read_to_string(dir.join("traj.csv")).unwrap();
    // 3 solvers x 13 points, each a cell with t and 5 particles x 2 coordinates.
    assert_eq!(csv.lines().count(), 1 + 3 * 13 * (1 + 5 * 2));
    for (solver, space) in [("heun", "t"), ("euler-maruyama", "t"), ("dpmpp-2m", "sigma")] {
        let npy = dir.join(format!("{solver}.npy"));
        let o = bin()
            .args(["sample", "--target", "ring8", "--n", "5", "--seed", "0", "--solver", solver, "--space", space])
            .args(["--schedule", "logsnr", "--steps", "12", "--out", npy.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let x: ndarray::Array2<f64> = ndarray_npy::read_npy(&npy).unwrap();
        let end: Vec<Vec<&str>> = csv
            .lines()
            .map(|l| l.split(',').collect::<Vec<_>>())
            .filter(|f| f[3] == solver && f[4] == space && f[6] == "12" && f[9].starts_with('x'))
            .collect();
        assert_eq!(end.len(), 10, "{solver}");
        for f in end {
            let (j, i) = f[9][1..].split_once('[').unwrap();
            let (i, j): (usize, usize) = (i.trim_end_matches(']').parse().unwrap(), j.parse().unwrap());
            assert_eq!(f[10].parse::<f64>().unwrap(), x[[i, j]], "{solver} particle {i} coordinate {j}");
        }
    }
    assert!(dir.join("traj_ring8_vp.png").exists() && dir.join("traj_ring8_vp.svg").exists());
    let sidecar: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("traj.json")).unwrap()).unwrap();
    assert_eq!(sidecar["config"]["particles"], 5);
    // Paths are drawn in 2-d only.
    std::fs::write(&config, r#"{"kind": "trajectories", "targets": ["aniso16"]}"#).unwrap();
    let o = bin().args(["sweep", config.to_str().unwrap(), "--out-dir", dir.to_str().unwrap()]).output().unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("\"aniso16\" has d = 16"));
    let o = bin().args(["sweep", "no_such_experiment"]).output().unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("not a built-in experiment"));
    std::fs::remove_dir_all(&dir).ok();
}

/// trained_vs_exact runs every cell with the exact score and with the network; only the network
/// rows carry its eps error, which is positive (an untrained net is far from the exact score).
#[test]
fn trained_vs_exact_pairs_exact_and_network_rows() {
    let dir = temp_dir("tve");
    let model = dir.join("m.safetensors");
    let o = bin()
        .args(["train", "--steps", "20", "--width", "8", "--depth", "1", "--batch", "16", "--quiet"])
        .args(["--out", model.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let config = dir.join("tve.json");
    let write = |processes: &str| {
        std::fs::write(
            &config,
            format!(
                r#"{{"kind": "trained_vs_exact", "experiment": "tve", "model": {:?}, "processes": {processes},
                    "solvers": [{{"solver": "euler", "space": "t"}}], "steps": [4, 8], "n": 200,
                    "projections": 8, "floor_reps": 2}}"#,
                model.to_str().unwrap()
            ),
        )
        .unwrap()
    };
    write(r#"["vp"]"#);
    run_sweep(&config, &dir);
    let csv = std::fs::read_to_string(dir.join("tve.csv")).unwrap();
    let rows = |solver: &str, metric: &str| -> Vec<f64> {
        csv.lines()
            .filter(|l| l.split(',').nth(3) == Some(solver) && l.split(',').nth(9) == Some(metric))
            .map(|l| l.rsplit(',').next().unwrap().parse().unwrap())
            .collect()
    };
    assert_eq!(rows("euler", "sliced_w2").len(), 2);
    assert_eq!(rows("euler+net", "sliced_w2").len(), 2);
    assert!(rows("euler", "score_mse_eps").is_empty());
    let mse = rows("euler+net", "score_mse_eps");
    assert!(mse.len() == 2 && mse.iter().all(|&v| v > 0.0 && v.is_finite()), "{mse:?}");
    write(r#"["ve"]"#);
    let o = bin().args(["sweep", config.to_str().unwrap(), "--out-dir", dir.to_str().unwrap()]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("trained on process"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

/// Guidance at w = 0 samples p(x | c): its precision matches the exact in-class probability
/// within 5 binomial standard errors (false-positive rate below 1e-6; the 50-step DPM-Solver++
/// bias is orders of magnitude smaller), and guidance raises precision. The sliced W2 tables:
/// at w = 0 the tilted density is the class law, so its draws sit at the class floor; CFG at
/// w = 4 is far from the tilted density (its diversity is 0.82 against the quadrature's 0.91 at
/// N = 10^4, a gap of ~40 standard errors), which the distance must show well above its floor.
#[test]
fn guidance_at_zero_weight_samples_the_class_and_guidance_sharpens_it() {
    let dir = temp_dir("guid");
    let config = dir.join("guid.config.json");
    std::fs::write(
        &config,
        r#"{"kind": "guidance", "experiment": "guid", "n": 4000, "guidance_weights": [0, 4], "model": "",
            "steps": [10, 50], "guidance_rules": ["cfg", "classifier", "apg"]}"#,
    )
    .unwrap();
    let o = bin()
        .args(["sweep", config.to_str().unwrap(), "--out-dir", dir.to_str().unwrap(), "--quiet"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let csv = std::fs::read_to_string(dir.join("guid.csv")).unwrap();
    let values = |solver: &str, steps: &str, metric: &str| -> Vec<f64> {
        csv.lines()
            .filter(|l| {
                let f: Vec<&str> = l.split(',').collect();
                f.len() > 9 && f[3] == solver && f[6] == steps && f[9] == metric
            })
            .map(|l| l.rsplit(',').next().unwrap().parse().unwrap())
            .collect()
    };
    let value = |solver: &str, metric: &str| -> f64 {
        let steps = if solver.starts_with("exact") { "0" } else { "50" };
        *values(solver, steps, metric).first().unwrap_or_else(|| panic!("{solver} {metric}"))
    };
    let (p, q) = (value("dpmpp-2m@w=0", "precision"), value("exact-tilted@w=0", "precision"));
    let se = (q * (1.0 - q) / 4000.0).sqrt();
    assert!((p - q).abs() < 5.0 * se, "precision {p} vs exact {q} (se {se})");
    assert!(value("dpmpp-2m@w=4", "precision") > p);
    // Classifier guidance at scale 1 + w is CFG at w: the same samples up to round-off.
    for metric in ["precision", "diversity", "mean_log_p_cond", "w2_class", "w2_tilted"] {
        let (c, g) = (value("dpmpp-2m+classifier@w=4", metric), value("dpmpp-2m@w=4", metric));
        assert!((c - g).abs() < 1e-9 * (1.0 + g.abs()), "{metric}: classifier {c} vs cfg {g}");
    }
    // Every rule is the conditional model at w = 0, and APG guides at w = 4.
    assert!((value("dpmpp-2m+apg@w=0", "diversity") - value("dpmpp-2m@w=0", "diversity")).abs() < 1e-9);
    assert!(value("dpmpp-2m+apg@w=4", "precision") > p);
    // W2: every cell at both steps has both distances; the floor has its four repetitions.
    assert_eq!(values("dpmpp-2m@w=4", "10", "w2_tilted").len(), 1);
    let floor = values("exact-floor", "0", "w2_class");
    assert_eq!(floor.len(), 4);
    let top = floor.iter().cloned().fold(0.0, f64::max);
    // Same law (q_0 = p(x|c)): within twice the largest of four floor draws.
    assert!(value("exact-tilted@w=0", "w2_class") < 2.0 * top, "q_0 vs class {floor:?}");
    assert!(value("dpmpp-2m@w=4", "w2_tilted") > 3.0 * value("exact-tilted@w=4", "w2_tilted"));
    let md = std::fs::read_to_string(dir.join("guid.md")).unwrap();
    assert!(md.contains("| 4 |") && md.contains("Rule `classifier`"));
    assert!(md.contains("Sliced W2 to the tilted density") && md.contains("| apg | 4 |"), "{md}");
    let sidecar: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("guid.json")).unwrap()).unwrap();
    assert_eq!(sidecar["config"]["n"], 4000);
    // classifier-net needs a trained classifier, which must exist.
    let bad = dir.join("bad.config.json");
    for (extra, want) in [
        (r#""classifier_model": """#, "classifier-net needs classifier_model"),
        (r#""classifier_model": "no/such.safetensors""#, "classifier_model: no/such.safetensors"),
    ] {
        let text = format!(r#"{{"kind": "guidance", "model": "", "guidance_rules": ["classifier-net"], {extra}}}"#);
        std::fs::write(&bad, text).unwrap();
        let o = bin().args(["sweep", bad.to_str().unwrap(), "--out-dir", dir.to_str().unwrap()]).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.code() == Some(1) && err.contains(want), "{err}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// The inpainting sweep against the exact conditional: the exact-conditional sampler's mean
/// error stays within 5 standard errors on every unobserved coordinate (false-positive rate
/// below 1e-6 per coordinate), while score_sde's replacement on gauss2 (correlation 0.8, one
/// coordinate observed) is biased far beyond that at 50 steps (its bias is ~0.2 sd, ~9 standard
/// errors at N = 2000: replacement ignores the observation's pull on the noised free
/// coordinate), and RePaint's resampling reduces the bias.
#[test]
fn inpainting_sweep_measures_each_method_against_the_exact_conditional() {
    let dir = temp_dir("inpaint");
    let config = dir.join("ip.config.json");
    std::fs::write(
        &config,
        r#"{"kind": "inpainting", "experiment": "ip", "n": 2000, "targets": ["gauss2", "diag16"],
            "observed": [1, 8], "steps": [50], "inpaint_methods": ["replacement", "repaint", "exact"]}"#,
    )
    .unwrap();
    let o = bin()
        .args(["sweep", config.to_str().unwrap(), "--out-dir", dir.to_str().unwrap(), "--quiet"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let csv = std::fs::read_to_string(dir.join("ip.csv")).unwrap();
    let value = |target: &str, solver: &str, metric: &str| -> f64 {
        let line = csv
            .lines()
            .find(|l| {
                let f: Vec<&str> = l.split(',').collect();
                f.len() > 9 && f[1] == target && f[3] == solver && f[9] == metric
            })
            .unwrap_or_else(|| panic!("{target} {solver} {metric}"));
        line.rsplit(',').next().unwrap().parse().unwrap()
    };
    for (target, k) in [("gauss2", 1), ("diag16", 1), ("diag16", 8)] {
        let z = value(target, &format!("exact-conditional@k={k}"), "mean_bias_z");
        assert!(z < 5.0, "{target} k = {k}: exact draws {z} standard errors off");
    }
    // gauss2 has one free coordinate, so k = 8 does not run there.
    assert!(!csv.contains("gauss2,vp,euler-maruyama+replacement@k=8"));
    let replacement = value("gauss2", "euler-maruyama+replacement@k=1", "mean_bias_z");
    let repaint = value("gauss2", "euler-maruyama+repaint@k=1", "mean_bias_z");
    assert!(replacement > 5.0 && repaint < replacement, "replacement {replacement}, repaint {repaint}");
    let md = std::fs::read_to_string(dir.join("ip.md")).unwrap();
    assert!(md.contains("## diag16, vp: sliced W2") && md.contains("| repaint | 8 |"), "{md}");
    std::fs::remove_dir_all(&dir).ok();
}
