//! The `trajectories` experiment: sample paths in 2-d, one panel per solver, drawn over the
//! density the samples should follow, so that the deterministic transport of the probability-flow
//! ODE and the noisy paths of the reverse SDE can be seen side by side.
//!
//! Point k of a path is the output of the same sampler run on the first k steps of the grid
//! (`steps[0]` steps) with the same prior draws and the same keyed noise (the noise of step j of
//! row i depends only on (seed, i, j)): each point is a cell, so the experiment shards like the
//! others. For one-step solvers (Runge-Kutta, Euler-Maruyama, ancestral) this is exactly the state
//! after k steps of the full run; for multistep solvers it is the k-step solve (whose last steps
//! may use lower orders). The CSV is the sweeps' long format: the cell of point k has steps = k,
//! the NFE of its solve, and the metrics `t` (the point's process time) and `x0[i]`, `x1[i]` (the
//! coordinates of particle i). Figures: `{experiment}_{target}_{process}.png` / `.svg`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use ndarray::{Array1, Array3};
use plotters::prelude::*;
use scoresde::gmm::GaussianMixture;
use scoresde::grids::Space;
use scoresde::model::ExactScore;
use scoresde::sampler::{prior_noise, sample, SamplerConfig, Solver, Steps};
use scoresde_solvers::{no_observer, KeyedNoise, TimeGrid};

use super::cells::{cell_config, process_of, Cell, Ctx};
use super::driver::{Finished, SweepKind};
use super::output::Row;
use super::plot::{label, prepare};
use crate::choices::space_name;

/// Paths of one solver: (steps + 1) x particles x 2, and the process time of each grid point.
struct Paths {
    name: String,
    x: Array3<f64>,
}

/// The metric of coordinate `j` of particle `i`.
fn coordinate(i: usize, j: usize) -> String {
    format!("x{j}[{i}]")
}

/// The experiment's state: the grid's step count and the particles per path set.
#[derive(Default)]
pub struct Trajectories {
    grid_steps: usize,
    particles: usize,
}

impl SweepKind for Trajectories {
    fn uses_references(&self) -> bool {
        false
    }
    fn prepare(&mut self, ctx: &Ctx) -> Result<(), String> {
        for (target, name) in ctx.targets.iter().zip(&ctx.sweep.config.targets) {
            if target.dim() != 2 {
                return Err(format!("targets: {name:?} has d = {}; trajectories are drawn in 2-d", target.dim()));
            }
        }
        self.grid_steps = *ctx.sweep.config.steps.first().ok_or("steps: must not be empty")?;
        self.particles = ctx.sweep.config.particles;
        Ok(())
    }
    fn cells(&self, ctx: &Ctx) -> Vec<Cell> {
        let seed = ctx.sweep.config.seeds[0];
        let mut cells = vec![];
        for target in 0..ctx.targets.len() {
            for &process in &ctx.sweep.processes {
                for &solver in &ctx.sweep.solvers {
                    cells.extend((0..=self.grid_steps).map(|k| Cell::exact(target, process, solver, k, seed)));
                }
            }
        }
        cells
    }
    fn fingerprint(&self, _ctx: &Ctx) -> serde_json::Value {
        serde_json::json!({ "grid_steps": self.grid_steps, "particles": self.particles })
    }
    fn floor(&self, _ctx: &Ctx) -> Result<Vec<Row>, String> {
        Ok(vec![])
    }
    fn complete(&self, metrics: &BTreeSet<&str>) -> bool {
        metrics.contains("t") && metrics.len() == 1 + 2 * self.particles
    }
    fn run_cell(&self, ctx: &Ctx, cell: &Cell) -> Result<Vec<Row>, String> {
        let p = process_of(cell.process)?;
        let full = cell_config(ctx.sweep, &*p, cell.solver, self.grid_steps)?;
        let Steps::Grid(grid) = full.steps() else {
            return Err(format!("trajectories: {} needs a fixed grid", full.solver().name()));
        };
        let points = grid.points();
        let space: Space = cell.solver.space.into();
        let k = cell.steps;
        let t = if space == Space::SigmaTilde { p.t_from_sigma_tilde(points[k]) } else { points[k] };
        let z = prior_noise(cell.seed, self.particles, 2);
        let (x, nfe) = if k == 0 {
            (z.mapv(|v| v * p.prior_std()), 0)
        } else {
            let prefix = TimeGrid::new(points[..=k].to_vec()).map_err(|e| e.to_string())?;
            let config = SamplerConfig::new(&*p, full.solver().clone(), space, Steps::Grid(prefix))
                .map_err(|e| e.to_string())?
                .with_denoise_final(full.denoise_final());
            let mut noise = KeyedNoise::new(cell.seed);
            let noise: Option<&mut dyn scoresde_solvers::NoiseSource> =
                if full.solver().is_stochastic() { Some(&mut noise) } else { None };
            let model = ExactScore::new(ctx.targets[cell.target].clone());
            let (x, report) = sample(&*p, &model, &config, z.view(), noise, &mut no_observer)
                .map_err(|e| format!("{} {} step {k}: {e}", p.name(), full.solver().name()))?;
            (x, report.nfe)
        };
        let mut values = vec![("t".to_string(), t)];
        for (i, row) in x.outer_iter().enumerate() {
            values.extend((0..2).map(|j| (coordinate(i, j), row[j])));
        }
        Ok(ctx.rows(cell, p.name(), full.solver(), nfe, values))
    }
    fn finish(&self, ctx: &Ctx, rows: &[Row], out_dir: &Path, _quiet: bool) -> Result<Finished, String> {
        let name = &ctx.sweep.config.experiment;
        let mut figures = vec![];
        if !prepare(out_dir)? {
            return Ok(Finished::default());
        }
        let value: BTreeMap<(&str, &str, &str, &str, usize, &str), f64> = rows
            .iter()
            .map(|r| ((&*r.target, &*r.process, &*r.solver, &*r.space, r.steps, &*r.metric), r.value))
            .collect();
        for (target, tname) in ctx.targets.iter().zip(&ctx.names) {
            for &pk in &ctx.sweep.processes {
                let p = process_of(pk)?;
                let mut all = vec![];
                for s in &ctx.sweep.solvers {
                    let (solver, space) = (Solver::from(s.solver), space_name(s.space));
                    let mut x = Array3::zeros((self.grid_steps + 1, self.particles, 2));
                    for ((k, i, j), v) in x.indexed_iter_mut() {
                        let key = (&**tname, p.name(), solver.name(), space, k, &*coordinate(i, j));
                        *v = *value.get(&key).ok_or_else(|| {
                            format!("trajectories: no {} of {tname} {} {} step {k}", key.5, p.name(), solver.name())
                        })?;
                    }
                    all.push(Paths { name: label(solver.name(), space), x });
                }
                let stem = out_dir.join(format!("{name}_{tname}_{}", p.name()));
                let t_end = p.t_end_default();
                let title = format!("{name}: {tname}, {} (density at t = {t_end:.0e})", p.name());
                let (a, sg) = (p.alpha(t_end), p.sigma(t_end));
                for ext in ["png", "svg"] {
                    let tmp = stem.with_extension(format!("tmp.{ext}"));
                    let size = (520 * all.len() as u32, 560);
                    if ext == "png" {
                        draw(BitMapBackend::new(&tmp, size).into_drawing_area(), &title, target, a, sg, &all)?;
                    } else {
                        draw(SVGBackend::new(&tmp, size).into_drawing_area(), &title, target, a, sg, &all)?;
                    }
                    let path = stem.with_extension(ext);
                    std::fs::rename(&tmp, &path).map_err(|e| format!("{}: {e}", path.display()))?;
                    figures.push(path.display().to_string());
                }
            }
        }
        Ok(Finished { figures, ..Default::default() })
    }
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
