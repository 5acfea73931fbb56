//! The `inpainting` experiment: each inpainting method against the exact conditional mixture.
//!
//! Per target, one point x* drawn from it (seed 17) is observed in its first k coordinates, for
//! every k of `observed` below the dimension; every row of a cell observes the same values, so
//! its unobserved coordinates should follow p(x_u | x_o = x*_o) exactly. Each method
//! (`replacement`, `repaint` with `resample` repeats, `dps` with `dps_scale`, and `exact`, the
//! exact-conditional sampler) runs the sweep's first solver at every `steps` with the exact
//! score, and its unobserved coordinates are measured against the closed form:
//!
//! - `mean_bias`: the distance of their sample mean from the exact conditional mean;
//! - `mean_bias_z`: the largest |mean - exact mean| / (exact sd / sqrt(N)) over coordinates,
//!   which is |N(0, 1)|-sized where the method is unbiased;
//! - `w2_cond`: sliced W2 to exact conditional draws of the same size, beside its floor (the
//!   floor rows `exact-floor@k=`: fresh exact draws, `floor_reps` of them).
//!
//! The reference is the data's conditional (t = 0), the samples are at the solver's t_end
//! (sigma ~ 1e-2 for VP): a variance gap of sigma^2 ~ 1e-4, below the Monte Carlo error here.
//! Writes `{experiment}.csv` and `{experiment}.md` (method x k against NFE, per target).

use std::collections::BTreeMap;
use std::path::Path;

use ndarray::Array2;
use rand::SeedableRng;
use scoresde::gmm::GaussianMixture;
use scoresde::inpaint::{conditional, inpaint, sample_conditional, InpaintMethod, Observation};
use scoresde::metrics::{random_directions, sample_mean, sliced_w2_with_directions};
use scoresde::model::ExactScore;
use scoresde::sampler::{prior_noise, Solver};

use super::cells::{cell_config, process_of, Cell, Ctx, Role};
use super::driver::{Finished, SweepKind};
use super::output::{cell_key, Row};
use crate::choices::space_name;

/// The metrics of every cell and floor row, in CSV order.
const METRICS: [&str; 3] = ["w2_cond", "mean_bias", "mean_bias_z"];
/// Seeds of the observed point, the reference draws and the floor's fresh draws.
const POINT_SEED: u64 = 17;
const REFERENCE_SEED: u64 = 1_000_003;
const FRESH_SEED: u64 = 2_000_003;

/// An inpainting method of the sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// score_sde's replacement.
    Replacement,
    /// RePaint with the config's `resample`.
    RePaint,
    /// DPS with the config's `dps_scale`.
    Dps,
    /// Exact conditional draws (no solver).
    Exact,
}

impl Method {
    /// The method called `name`.
    pub fn from_name(name: &str) -> Result<Self, String> {
        Ok(match name {
            "replacement" => Self::Replacement,
            "repaint" => Self::RePaint,
            "dps" => Self::Dps,
            "exact" => Self::Exact,
            other => return Err(format!("{other:?}: unknown (expected replacement, repaint, dps or exact)")),
        })
    }
}

/// The experiment (stateless: everything follows from the config and the targets).
pub struct Inpainting;

/// (method name, observed count) of a cell: variant = method index * |observed| + k index.
fn method_and_k<'a>(ctx: &'a Ctx, cell: &Cell) -> (&'a str, usize) {
    let c = &ctx.sweep.config;
    let k = c.observed.len();
    (&c.inpaint_methods[cell.variant / k], c.observed[cell.variant % k])
}

/// Every row observes the first `k` coordinates of the target's point x*.
fn observation(target: &GaussianMixture, k: usize, n: usize) -> Result<Observation, String> {
    let mut rng = rand_pcg::Pcg64::seed_from_u64(POINT_SEED);
    let point = target.sample(1, &mut rng);
    let d = target.dim();
    let values = Array2::from_shape_fn((n, d), |(_, j)| if j < k { point[[0, j]] } else { f64::NAN });
    let mask = Array2::from_shape_fn((n, d), |(_, j)| j < k);
    Observation::new(values, mask).map_err(|e| e.to_string())
}

/// The unobserved columns (k..d) of `x`.
fn free(x: &Array2<f64>, k: usize) -> Array2<f64> {
    x.slice(ndarray::s![.., k..]).to_owned()
}

/// The metrics of the unobserved coordinates `x` (N x (d - k)) against the exact conditional.
fn measure(target: &GaussianMixture, obs: &Observation, k: usize, x: &Array2<f64>) -> Result<[f64; 3], String> {
    let n = x.nrows();
    let cond = conditional(target, obs.values().row(0), obs.mask().row(0)).map_err(|e| e.to_string())?;
    let (m, c) = cond.moments();
    let mean = sample_mean(x.view());
    let (mut sq, mut z) = (0.0, 0.0f64);
    for j in 0..x.ncols() {
        let gap = mean[j] - m[j];
        sq += gap * gap;
        z = z.max(gap.abs() / (c[(j, j)] / n as f64).sqrt());
    }
    let reference = free(&sample_conditional(target, obs, REFERENCE_SEED).map_err(|e| e.to_string())?, k);
    let mut rng = rand_pcg::Pcg64::seed_from_u64(7);
    let dirs = random_directions(64, target.dim() - k, &mut rng);
    Ok([sliced_w2_with_directions(x.view(), reference.view(), dirs.view()), sq.sqrt(), z])
}

/// The solver column of a cell: `{solver}+{method}@k=` (`exact-conditional@k=` for exact draws).
fn column(ctx: &Ctx, cell: &Cell) -> String {
    let (method, k) = method_and_k(ctx, cell);
    match cell.role {
        Role::Reference => format!("exact-conditional@k={k}"),
        _ => format!("{}+{method}@k={k}", Solver::from(cell.solver.solver).name()),
    }
}

impl SweepKind for Inpainting {
    fn uses_references(&self) -> bool {
        false
    }
    fn prepare(&mut self, ctx: &Ctx) -> Result<(), String> {
        let solver = Solver::from(ctx.sweep.solvers[0].solver);
        let max_k = ctx.sweep.config.observed.iter().min().copied().unwrap_or(1);
        if ctx.targets.iter().all(|t| t.dim() <= max_k) {
            return Err(format!("observed: every target has at most {max_k} coordinates, so none is left free"));
        }
        if scoresde::inpaint::one_step(&solver) {
            return Ok(());
        }
        Err(format!(
            "solvers[0] = {}: inpainting runs a one-step solver (euler-maruyama, ddim, heun, ...)",
            solver.name()
        ))
    }
    fn cells(&self, ctx: &Ctx) -> Vec<Cell> {
        let (sweep, mut cells) = (ctx.sweep, vec![]);
        let (solver, seed) = (sweep.solvers[0], sweep.config.seeds[0]);
        let kn = sweep.config.observed.len();
        for (target, t) in ctx.targets.iter().enumerate() {
            for &process in &sweep.processes {
                for (mi, method) in sweep.config.inpaint_methods.iter().enumerate() {
                    for (ki, _) in sweep.config.observed.iter().enumerate().filter(|(_, &k)| k < t.dim()) {
                        let cell = Cell { variant: mi * kn + ki, ..Cell::exact(target, process, solver, 0, seed) };
                        if method == "exact" {
                            cells.push(Cell { role: Role::Reference, ..cell });
                            continue;
                        }
                        for &steps in &sweep.config.steps {
                            cells.push(Cell { steps, ..cell.clone() });
                        }
                    }
                }
            }
        }
        cells
    }
    fn key(&self, ctx: &Ctx, cell: &Cell) -> String {
        let p = process_of(cell.process).map(|p| p.name()).unwrap_or("?");
        let space = if cell.role == Role::Reference { "-" } else { space_name(cell.solver.space) };
        cell_key(&ctx.names[cell.target], p, &column(ctx, cell), space, cell.steps, cell.seed)
    }
    fn fingerprint(&self, ctx: &Ctx) -> serde_json::Value {
        let c = &ctx.sweep.config;
        serde_json::json!({ "resample": c.resample, "dps_scale": c.dps_scale })
    }
    /// Fresh exact conditional draws per (target, process, k): the floor of every metric.
    fn floor(&self, ctx: &Ctx) -> Result<Vec<Row>, String> {
        let mut rows = vec![];
        for (ti, target) in ctx.targets.iter().enumerate() {
            for &pk in &ctx.sweep.processes {
                let p = process_of(pk)?;
                for &k in ctx.sweep.config.observed.iter().filter(|&&k| k < target.dim()) {
                    let obs = observation(target, k, ctx.sweep.config.n)?;
                    for rep in 0..ctx.sweep.config.floor_reps as u64 {
                        let x =
                            free(&sample_conditional(target, &obs, FRESH_SEED + rep).map_err(|e| e.to_string())?, k);
                        for (metric, value) in METRICS.into_iter().zip(measure(target, &obs, k, &x)?) {
                            rows.push(Row {
                                target: ctx.names[ti].clone(),
                                process: p.name().into(),
                                solver: format!("exact-floor@k={k}"),
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
        }
        Ok(rows)
    }
    fn complete(&self, metrics: &std::collections::BTreeSet<&str>) -> bool {
        METRICS.iter().all(|m| metrics.contains(m))
    }
    fn run_cell(&self, ctx: &Ctx, cell: &Cell) -> Result<Vec<Row>, String> {
        let target = &ctx.targets[cell.target];
        let (method, k) = method_and_k(ctx, cell);
        let c = &ctx.sweep.config;
        let p = process_of(cell.process)?;
        let obs = observation(target, k, c.n)?;
        let (x, nfe) = if cell.role == Role::Reference {
            (sample_conditional(target, &obs, cell.seed).map_err(|e| e.to_string())?, 0)
        } else {
            let method = match Method::from_name(method)? {
                Method::Replacement => InpaintMethod::Replacement,
                Method::RePaint => InpaintMethod::RePaint { resample: c.resample },
                Method::Dps => InpaintMethod::Dps { scale: c.dps_scale },
                Method::Exact => return Err("inpainting: exact draws are reference cells".into()),
            };
            let config = cell_config(ctx.sweep, &*p, cell.solver, cell.steps)?;
            let z = prior_noise(cell.seed, c.n, target.dim());
            let model = ExactScore::new(target.clone());
            let (x, report) = inpaint(&*p, &model, &config, z.view(), &obs, method, cell.seed)
                .map_err(|e| format!("{} k = {k}: {e}", column(ctx, cell)))?;
            (x, report.nfe)
        };
        let values = measure(target, &obs, k, &free(&x, k))?;
        let space = if cell.role == Role::Reference { "-" } else { space_name(cell.solver.space) };
        Ok(METRICS
            .into_iter()
            .zip(values)
            .map(|(metric, value)| Row {
                target: ctx.names[cell.target].clone(),
                process: p.name().into(),
                solver: column(ctx, cell),
                space: space.into(),
                steps: cell.steps,
                nfe,
                seed: cell.seed,
                metric: metric.into(),
                value,
            })
            .collect())
    }
    fn finish(&self, ctx: &Ctx, rows: &[Row], out_dir: &Path, quiet: bool) -> Result<Finished, String> {
        let c = &ctx.sweep.config;
        let solver = Solver::from(ctx.sweep.solvers[0].solver);
        let mut at: BTreeMap<(&str, &str, &str, usize, &str), Vec<f64>> = BTreeMap::new();
        for r in rows {
            at.entry((&r.target, &r.process, &r.solver, r.steps, &r.metric)).or_default().push(r.value);
        }
        let mut md = format!(
            "# {}: inpainting against the exact conditional mixture\n\n\
             {} with the exact score, N = {}; the first k coordinates of one draw of each target are \
             observed in every row. NFE: the steps for replacement, steps x {} for RePaint ({} repeats per \
             step), 3 x steps for DPS (zeta' = {}; its Jacobian product by a central difference). `w2_cond`: sliced W2 of \
             the unobserved coordinates to exact conditional draws; `mean_bias_z`: the largest |mean error| \
             in units of its standard error (|N(0,1)|-sized when unbiased). Floor: the mean over {} fresh \
             exact draws.\n",
            c.experiment,
            solver.name(),
            c.n,
            c.resample,
            c.resample,
            c.dps_scale,
            c.floor_reps
        );
        for (ti, tname) in ctx.names.iter().enumerate() {
            for &pk in &ctx.sweep.processes {
                let p = process_of(pk)?;
                let ks: Vec<usize> = c.observed.iter().copied().filter(|&k| k < ctx.targets[ti].dim()).collect();
                let mean = |col: &str, st: usize, m: &str| {
                    at.get(&(tname.as_str(), p.name(), col, st, m)).map(|v| v.iter().sum::<f64>() / v.len() as f64)
                };
                let header: String = c.steps.iter().map(|&st| format!(" {st} steps |")).collect();
                for (metric, what) in
                    [("w2_cond", "sliced W2 to the exact conditional"), ("mean_bias_z", "mean error / SE")]
                {
                    md.push_str(&format!(
                        "\n## {tname}, {}: {what}\n\n| method | k |{header} exact draws | floor |\n|---|---:|{}---:|---:|\n",
                        p.name(),
                        "---:|".repeat(c.steps.len())
                    ));
                    for m in c.inpaint_methods.iter().filter(|m| *m != "exact") {
                        for &k in &ks {
                            let col = format!("{}+{m}@k={k}", solver.name());
                            let cells: String = c
                                .steps
                                .iter()
                                .map(|&st| {
                                    mean(&col, st, metric).map(|v| format!(" {v:.4} |")).unwrap_or(" - |".into())
                                })
                                .collect();
                            let f =
                                |col: String| mean(&col, 0, metric).map(|v| format!("{v:.4}")).unwrap_or("-".into());
                            md.push_str(&format!(
                                "| {m} | {k} |{cells} {} | {} |\n",
                                f(format!("exact-conditional@k={k}")),
                                f(format!("exact-floor@k={k}"))
                            ));
                        }
                    }
                }
            }
        }
        let tables = vec![super::output::write_table(out_dir, &format!("{}.md", c.experiment), &md)?];
        if !quiet {
            println!("{md}");
        }
        Ok(Finished { tables, ..Default::default() })
    }
}
