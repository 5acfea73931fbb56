//! Replays the peer reference cases through the `scoresde sample` binary, with exactly the flags
//! shared/reference/replay.py uses, and asserts check.py's criteria: max |out - ref| <= the
//! peer's stated atol for every peer of the case, and for adaptive ("loose") cases
//! max |out - gt| <= 10 x the peer's own error against the ground truth.

use std::path::{Path, PathBuf};
use std::process::Command;

use ndarray::{Array1, Array2, Array3, Axis};
use ndarray_npy::{read_npy, write_npy};
use serde_json::Value;

/// The cases this build must reproduce (solvers of the foundation: Runge-Kutta in t and in sigma
/// space, adaptive Dormand-Prince, Euler-Maruyama with recorded noise, and diffusers' Euler/Heun
/// on their own sigma tables) and the diffusers DDIM / DPM-Solver family on theirs.
const CASES: &[&str] = &[
    "d2_vp-t_euler-t_n10",
    "d2_vp-t_midpoint-t_n10",
    "d2_vp-t_heun-t_n10",
    "d2_vp-t_rk4-classic-t_n10",
    "d2_vp-t_rk4-38-t_n10",
    "d2_vp-t_tsit5-t_n10",
    "d2_ve-t_heun-t_n10",
    "d2_ve-t_rk4-38-t_n10",
    "d2_vp-t_euler-sigma_n10",
    "d2_vp-t_heun-sigma_n10",
    "d2_vp-karras_euler-sigma_n10",
    "d2_vp-karras_heun-sigma_n10",
    "d2_ve-t_euler-sigma_n10",
    "d2_ve-t_heun-sigma_n10",
    "d2_vp-adaptive_dopri5-t_tol1e-05",
    "d2_vp-t_em-torchsde-fixednoise_n10",
    "d2_disc_euler_n10",
    "d2_vp-t_dpm2-sigma_n10",
    "d2_vp-karras_dpm2-sigma_n10",
    "d2_vp-t_lms4-sigma_n10",
    "d2_vp-karras_lms4-sigma_n10",
    "d2_vp-t_dpmpp2m-sigma_n10",
    "d2_vp-karras_dpmpp2m-sigma_n10",
    "d2_ve-t_dpmpp2m-sigma_n10",
    "d2_disc_dpmpp2m_n10",
    "d2_vp-t_euler-ancestral-sigma-fixednoise_n10",
    "d2_vp-t_dpmpp2m-sde-sigma-fixednoise_n10",
    "d2_vp-logsnr_dpm-solver-fast_nfe10",
    "d2_disc_unipc2_n10",
    "d2_disc_unipc3_n10",
    "d2_disc_deis2_n10",
    "d2_disc_deis3_n10",
    "d2_disc_heun_n10",
    "d2_disc_ddim_n10",
    "d2_disc_dpm2m_n10",
    "d2_disc_dpm3m_n10",
    "d2_disc_dpmpp3m_n10",
    "d2_disc_dpmpp2s_n10",
    "d2_disc_dpmpp3s_n10",
];

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/reference/cases")
}

fn tmp_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("scoresde-ref-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn manifest(case: &str) -> Value {
    let text = std::fs::read_to_string(cases_dir().join(case).join("manifest.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// `--target`, `--z-init` and the process flags, as replay.py's build_base.
fn base_args(m: &Value, tmp: &Path) -> Vec<String> {
    let root = cases_dir();
    let pdir = root.join(m["problem_dir"].as_str().unwrap());
    let prob: Value = serde_json::from_str(&std::fs::read_to_string(pdir.join("problem.json")).unwrap()).unwrap();
    let var: Array2<f64> = read_npy(pdir.join("variances.npy")).unwrap();
    let diag: Vec<Vec<f64>> = var.outer_iter().map(|r| r.to_vec()).collect();
    let target = tmp.join(format!("{}.json", m["problem"].as_str().unwrap()));
    let json = serde_json::json!({"weights": prob["weights"], "means": prob["means"], "diag": diag});
    std::fs::write(&target, json.to_string()).unwrap();
    let sde = &m["sde"];
    let mut args = vec![
        "--target".into(),
        target.display().to_string(),
        "--z-init".into(),
        root.join(m["x_T"].as_str().unwrap()).display().to_string(),
    ];
    match sde["kind"].as_str().unwrap() {
        "vp" | "vp_discrete" => args.extend([
            "--process".into(),
            "vp".into(),
            "--beta-min".into(),
            sde["beta_min"].as_f64().unwrap_or(0.1).to_string(),
            "--beta-max".into(),
            sde["beta_max"].as_f64().unwrap_or(20.0).to_string(),
        ]),
        "ve" => args.extend([
            "--process".into(),
            "ve".into(),
            "--sigma-min".into(),
            sde["sigma_min"].as_f64().unwrap().to_string(),
            "--sigma-max".into(),
            sde["sigma_max"].as_f64().unwrap().to_string(),
        ]),
        k => panic!("unknown process {k}"),
    }
    args
}

fn solver_for(tag: &str) -> (&'static str, &'static str) {
    match tag {
        "euler-t" => ("euler", "t"),
        "midpoint-t" => ("midpoint", "t"),
        "heun-t" => ("heun", "t"),
        "rk4-classic-t" => ("rk4", "t"),
        "rk4-38-t" => ("rk4-38", "t"),
        "tsit5-t" => ("tsit5", "t"),
        "euler-sigma" => ("euler", "sigma"),
        "heun-sigma" => ("heun", "sigma"),
        "dpm2-sigma" => ("dpm2", "sigma"),
        "lms4-sigma" => ("lms4", "sigma"),
        "dpmpp2m-sigma" => ("dpmpp-2m", "sigma"),
        "euler-ancestral-sigma-fixednoise" => ("euler-ancestral", "sigma"),
        "dpmpp2m-sde-sigma-fixednoise" => ("dpmpp-2m-sde", "sigma"),
        t => panic!("no mapping for {t}"),
    }
}

/// The solver of a diffusers (`disc`) case tag, as replay.py's DISCRETE table.
fn disc_solver(tag: &str) -> &'static str {
    match tag {
        "ddim" => "ddim",
        "euler" => "euler",
        "heun" => "heun",
        "dpmpp2m" => "dpmpp-2m",
        "dpmpp3m" => "dpmpp-3m",
        "dpm2m" => "dpm-solver-2m",
        "dpm3m" => "dpm-solver-3m",
        "dpmpp2s" => "dpmpp-2s",
        "dpmpp3s" => "dpmpp-3s",
        "unipc2" => "unipc-2",
        "unipc3" => "unipc-3",
        "deis2" => "deis-2",
        "deis3" => "deis-3",
        t => panic!("no mapping for disc tag {t}"),
    }
}

/// The full argument list after `scoresde sample`, as replay.py builds it.
fn build(case: &str, m: &Value, tmp: &Path) -> Vec<String> {
    let dir = cases_dir().join(case);
    let f = |name: &str| dir.join(name).display().to_string();
    let mut args = base_args(m, tmp);
    let mut parts = case.splitn(3, '_');
    let (_, fam, rest) = (parts.next(), parts.next().unwrap(), parts.next().unwrap());
    let tag = match rest.rsplit_once('_') {
        Some((head, last)) if last.starts_with('n') || last.starts_with("tol") => head,
        _ => rest,
    };
    if tag.starts_with("em-torchsde") {
        let st: Array2<f64> = read_npy(dir.join("step_times.npy")).unwrap();
        let dw: Array3<f64> = read_npy(dir.join("noise.npy")).unwrap();
        let t_max = m["sde"]["T"].as_f64().unwrap();
        let mut z = dw.clone();
        for (k, mut slab) in z.axis_iter_mut(Axis(0)).enumerate() {
            slab /= (st[[k, 1]] - st[[k, 0]]).sqrt();
        }
        let mut grid = vec![t_max - st[[0, 0]]];
        grid.extend(st.column(1).iter().map(|s| t_max - s));
        let (gp, np) = (tmp.join(format!("{case}_grid.npy")), tmp.join(format!("{case}_noise.npy")));
        write_npy(&gp, &Array1::from(grid)).unwrap();
        write_npy(&np, &z).unwrap();
        args.extend(["--solver", "euler-maruyama", "--grid"].map(String::from));
        args.push(gp.display().to_string());
        args.push("--noise".into());
        args.push(np.display().to_string());
        return args;
    }
    match fam {
        "vp-t" | "ve-t" | "vp-karras" => {
            let (solver, space) = solver_for(tag);
            args.extend(["--solver".into(), solver.into()]);
            if space == "t" {
                args.extend(["--grid".into(), f("grid_t.npy")]);
            } else {
                args.extend(["--sigmas".into(), f("grid_sigma_tilde.npy")]);
            }
            if tag.contains("fixednoise") {
                args.extend(["--noise".into(), f("noise.npy")]);
            }
        }
        "vp-logsnr" if tag.starts_with("dpm-solver-fast") => {
            let orders: Vec<String> = m["grid"]["orders"].as_array().unwrap().iter().map(|o| o.to_string()).collect();
            args.extend(["--solver".into(), "dpm-solver".into(), "--orders".into(), orders.join(",")]);
            args.extend(["--sigmas".into(), f("grid_sigma_tilde.npy")]);
        }
        "vp-adaptive" => {
            let g = &m["grid"];
            let num = |k: &str| g[k].as_f64().unwrap().to_string();
            args.extend(["--solver".into(), tag.split('-').next().unwrap().into()]);
            args.extend(["--rtol".into(), num("rtol"), "--atol".into(), num("atol")]);
            args.extend(["--t-start".into(), num("t0"), "--t-end".into(), num("t1")]);
        }
        "disc" => {
            let sig: Array1<f64> = read_npy(dir.join("sigmas.npy")).unwrap();
            let mut kept = vec![sig[0]];
            for i in 1..sig.len() {
                if sig[i] != sig[i - 1] {
                    kept.push(sig[i]);
                }
            }
            let sp = tmp.join(format!("{case}_sigmas.npy"));
            write_npy(&sp, &Array1::from(kept.clone())).unwrap();
            if tag == "euler" || tag == "heun" {
                // diffusers' Euler and Heun start at x~ = sigma_max z, not sqrt(1 + sigma_max^2) z.
                let z: Array2<f64> = read_npy(cases_dir().join(m["x_T"].as_str().unwrap())).unwrap();
                let z = z * (kept[0] / (1.0 + kept[0] * kept[0]).sqrt());
                let zp = tmp.join(format!("{case}_z.npy"));
                write_npy(&zp, &z).unwrap();
                let i = args.iter().position(|a| a == "--z-init").unwrap();
                args[i + 1] = zp.display().to_string();
            }
            args.extend(["--solver".into(), disc_solver(tag).into(), "--sigmas".into(), sp.display().to_string()]);
        }
        _ => panic!("no mapping for {case}"),
    }
    args
}

fn max_abs(a: &Array2<f64>, b: &Array2<f64>) -> f64 {
    assert_eq!(a.dim(), b.dim());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

#[test]
fn peer_reference_cases_are_reproduced() {
    let tmp = tmp_dir();
    let mut failures = vec![];
    for &case in CASES {
        let m = manifest(case);
        let out = tmp.join(format!("{case}.npy"));
        let mut args = vec!["sample".to_string()];
        args.extend(build(case, &m, &tmp));
        args.extend(["--out".into(), out.display().to_string(), "--quiet".into()]);
        let run = Command::new(env!("CARGO_BIN_EXE_scoresde")).args(&args).output().unwrap();
        assert!(run.status.success(), "{case}: {}\n{args:?}", String::from_utf8_lossy(&run.stderr));
        let x: Array2<f64> = read_npy(&out).unwrap();
        let dir = cases_dir().join(case);
        let loose = m["match"].as_str() == Some("loose");
        for (peer, pm) in m["peers"].as_object().unwrap() {
            let reference: Array2<f64> = read_npy(dir.join(pm["file"].as_str().unwrap())).unwrap();
            let err = max_abs(&x, &reference);
            let (ok, criterion) = if loose {
                let gt: Array2<f64> = read_npy(dir.join("gt.npy")).unwrap();
                let peer_gt = pm["error_vs_gt"]["max_abs"].as_f64().unwrap();
                let e = max_abs(&x, &gt);
                (e <= 10.0 * peer_gt + 1e-12, format!("|out-gt| {e:.3e} <= 10 x {peer_gt:.3e}"))
            } else {
                let atol = pm["atol"].as_f64().unwrap();
                (err <= atol, format!("<= {atol:.1e}"))
            };
            println!("{} {case} vs {peer}: max_abs {err:.3e} ({criterion})", if ok { "PASS" } else { "FAIL" });
            if !ok {
                failures.push(format!("{case} vs {peer}"));
            }
        }
    }
    std::fs::remove_dir_all(&tmp).ok();
    assert!(failures.is_empty(), "failed: {failures:?}");
}
