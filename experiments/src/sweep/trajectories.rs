//! The `trajectories` experiment: sample paths in 2-d, one panel per solver, drawn over the
//! density the samples should follow, so that the deterministic transport of the probability-flow
//! ODE and the noisy paths of the reverse SDE can be seen side by side.
//!
//! Point k of a path is the output of the same sampler run on the first k steps of the grid with
//! the same prior draws and the same keyed noise (the noise of step j of row i depends only on
//! (seed, i, j)). For one-step solvers (Runge-Kutta, Euler-Maruyama, ancestral) this is exactly
//! the state after k steps of the full run; for multistep solvers it is the k-step solve (whose
//! last steps may use lower orders). Writes `{experiment}.csv`
//! (`experiment,target,process,solver,space,particle,step,t,x0,x1`, t in the process's time) and
//! `{experiment}_{target}_{process}.png` / `.svg`.

use std::path::Path;

use ndarray::{Array1, Array3};
use plotters::prelude::*;
use scoresde::gmm::GaussianMixture;
use scoresde::grids::Space;
use scoresde::io::write_atomic;
use scoresde::model::ExactScore;
use scoresde::process::ForwardProcess;
use scoresde::sampler::{prior_noise, sample, SamplerConfig, Steps};
use scoresde::targets;
use scoresde_solvers::{no_observer, KeyedNoise, TimeGrid};

use super::cells::{cell_config, process_of};
use super::config::{SolverChoice, Sweep};
use super::output::write_sidecar;
use super::plot::{label, prepare};
use crate::choices::space_name;

/// Paths of one solver: (steps + 1) x particles x 2, and the process time of each grid point.
struct Paths {
    name: String,
    x: Array3<f64>,
    t: Vec<f64>,
}

fn paths(
    sweep: &Sweep,
    p: &dyn ForwardProcess,
    target: &GaussianMixture,
    solver: SolverChoice,
    seed: u64,
) -> Result<Paths, String> {
    let full = cell_config(sweep, p, solver, sweep.config.steps[0])?;
    let Steps::Grid(grid) = full.steps() else {
        return Err(format!("trajectories: {} needs a fixed grid", full.solver().name()));
    };
    let points = grid.points().to_vec();
    let space: Space = solver.space.into();
    let t: Vec<f64> =
        points.iter().map(|&u| if space == Space::SigmaTilde { p.t_from_sigma_tilde(u) } else { u }).collect();
    let n = sweep.config.particles;
    let z = prior_noise(seed, n, 2);
    let mut x = Array3::zeros((points.len(), n, 2));
    x.index_axis_mut(ndarray::Axis(0), 0).assign(&z.mapv(|v| v * p.prior_std()));
    let model = ExactScore::new(target.clone());
    for k in 1..points.len() {
        let prefix = TimeGrid::new(points[..=k].to_vec()).map_err(|e| e.to_string())?;
        let config = SamplerConfig::new(p, full.solver().clone(), space, Steps::Grid(prefix))
            .map_err(|e| e.to_string())?
            .with_denoise_final(full.denoise_final());
        let mut noise = KeyedNoise::new(seed);
        let noise: Option<&mut dyn scoresde_solvers::NoiseSource> =
            if full.solver().is_stochastic() { Some(&mut noise) } else { None };
        let (xk, _) = sample(p, &model, &config, z.view(), noise, &mut no_observer)
            .map_err(|e| format!("{} {} step {k}: {e}", p.name(), full.solver().name()))?;
        x.index_axis_mut(ndarray::Axis(0), k).assign(&xk);
    }
    Ok(Paths { name: label(full.solver().name(), space_name(solver.space)), x, t })
}

/// Runs the experiment for every 2-d target and process of the config.
pub fn run(sweep: &Sweep, out_dir: &Path, quiet: bool) -> Result<(), String> {
    let started = std::time::Instant::now();
    let name = &sweep.config.experiment;
    let seed = sweep.config.seeds[0];
    let mut csv = String::from("experiment,target,process,solver,space,particle,step,t,x0,x1\n");
    let mut figures = vec![];
    let can_draw = prepare(out_dir)?;
    for tname in &sweep.config.targets {
        let target = targets::load(tname).map_err(|e| e.to_string())?;
        if target.dim() != 2 {
            return Err(format!("targets: {tname:?} has d = {}; trajectories are drawn in 2-d", target.dim()));
        }
        let tname = Path::new(tname).file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or(tname.clone());
        for &pk in &sweep.processes {
            let p = process_of(pk)?;
            let all: Vec<Paths> =
                sweep.solvers.iter().map(|&s| paths(sweep, &*p, &target, s, seed)).collect::<Result<_, _>>()?;
            for (s, path) in sweep.solvers.iter().zip(&all) {
                let solver = scoresde::sampler::Solver::from(s.solver).name();
                for (k, layer) in path.x.outer_iter().enumerate() {
                    for (i, row) in layer.outer_iter().enumerate() {
                        csv.push_str(&format!(
                            "{name},{tname},{},{solver},{},{i},{k},{:e},{:e},{:e}\n",
                            p.name(),
                            space_name(s.space),
                            path.t[k],
                            row[0],
                            row[1]
                        ));
                    }
                }
            }
            if can_draw {
                let stem = out_dir.join(format!("{name}_{tname}_{}", p.name()));
                let t_end = p.t_end_default();
                let title = format!("{name}: {tname}, {} (density at t = {t_end:.0e})", p.name());
                let (a, sg) = (p.alpha(t_end), p.sigma(t_end));
                for ext in ["png", "svg"] {
                    let tmp = stem.with_extension(format!("tmp.{ext}"));
                    let size = (520 * all.len() as u32, 560);
                    if ext == "png" {
                        draw(BitMapBackend::new(&tmp, size).into_drawing_area(), &title, &target, a, sg, &all)?;
                    } else {
                        draw(SVGBackend::new(&tmp, size).into_drawing_area(), &title, &target, a, sg, &all)?;
                    }
                    let path = stem.with_extension(ext);
                    std::fs::rename(&tmp, &path).map_err(|e| format!("{}: {e}", path.display()))?;
                    figures.push(path.display().to_string());
                }
            }
        }
    }
    let csv_path = out_dir.join(format!("{name}.csv"));
    write_atomic(&csv_path, csv.as_bytes()).map_err(|e| e.to_string())?;
    write_sidecar(sweep, &csv_path, started, &figures, &[], serde_json::Value::Null)?;
    if !quiet {
        eprintln!("wrote {} and {} figure(s)", csv_path.display(), figures.len());
    }
    Ok(())
}

/// Cells per side of the density background.
const GRID: usize = 90;

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    target: &GaussianMixture,
    alpha: f64,
    sigma: f64,
    all: &[Paths],
) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let err = |e: &dyn std::fmt::Display| e.to_string();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let root = root.titled(title, ("sans-serif", 20)).map_err(|e| err(&e))?;
    // A square window holding every path point.
    let r = all.iter().flat_map(|p| p.x.iter()).fold(0.0f64, |m, v| m.max(v.abs())) * 1.05;
    let cell = 2.0 * r / GRID as f64;
    let centres: Vec<f64> = (0..GRID).map(|i| -r + (i as f64 + 0.5) * cell).collect();
    let pts =
        ndarray::Array2::from_shape_fn((GRID * GRID, 2), |(k, j)| centres[if j == 0 { k % GRID } else { k / GRID }]);
    let mut logp = Array1::zeros(GRID * GRID);
    target.log_prob(alpha, sigma, pts.view(), logp.view_mut());
    let max = logp.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let panels = root.split_evenly((1, all.len()));
    for (area, path) in panels.iter().zip(all) {
        let mut chart = ChartBuilder::on(area)
            .caption(&path.name, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(40)
            .build_cartesian_2d(-r..r, -r..r)
            .map_err(|e| err(&e))?;
        chart.configure_mesh().disable_mesh().draw().map_err(|e| err(&e))?;
        // Density cells (skipping the ones that would be white anyway).
        let cells = (0..GRID * GRID).filter_map(|k| {
            let w = (logp[k] - max).exp();
            (w > 1e-3).then(|| {
                let (x, y) = (pts[[k, 0]], pts[[k, 1]]);
                let shade = RGBColor(255 - (120.0 * w.sqrt()) as u8, 255 - (90.0 * w.sqrt()) as u8, 255);
                Rectangle::new([(x - cell / 2.0, y - cell / 2.0), (x + cell / 2.0, y + cell / 2.0)], shade.filled())
            })
        });
        chart.draw_series(cells).map_err(|e| err(&e))?;
        let (steps, n) = (path.x.shape()[0], path.x.shape()[1]);
        for i in 0..n {
            let color = Palette99::pick(i).mix(0.55);
            let line = (0..steps).map(|k| (path.x[[k, i, 0]], path.x[[k, i, 1]]));
            chart.draw_series(LineSeries::new(line, color.stroke_width(1))).map_err(|e| err(&e))?;
        }
        let starts = (0..n).map(|i| Circle::new((path.x[[0, i, 0]], path.x[[0, i, 1]]), 2, BLACK.mix(0.35).filled()));
        chart.draw_series(starts).map_err(|e| err(&e))?;
        let ends =
            (0..n).map(|i| Circle::new((path.x[[steps - 1, i, 0]], path.x[[steps - 1, i, 1]]), 3, BLACK.filled()));
        chart.draw_series(ends).map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))
}
