//! The `conventions` experiment: what each schedule convention of the peers costs at a few NFE
//! budgets, on the exact targets. Every row is the same sampler (DDIM = Euler in sigma~ on
//! Stable Diffusion 1.5's discrete chain, scaled-linear betas 0.00085..0.012 over 1000 steps;
//! FlowMatchEuler on rectified flow), only the convention differs: the timestep spacing
//! (leading with SD's steps_offset 1, leading, trailing, linspace), the zero-SNR rescale, the
//! Euler schedulers' Karras / exponential / beta sigmas (exponential = log-SNR uniform), the
//! Align-Your-Steps table, the KL-optimal schedule, and the flow shift (1, 3, 3 without diffusers' double shift of the last t).
//! Single Gaussians get the exact W2 of the output law to the data (no Monte Carlo error);
//! mixtures the sliced W2 of `n` samples against exact samples, with its Monte Carlo floor.
//! No peer publishes this comparison. Each (target, convention, budget) is a cell, so the
//! experiment shards like the others. Writes `{experiment}.csv`, `{experiment}.md` and one
//! figure per target; `processes` and `solvers` of the config are not read (the conventions
//! fix both).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use ndarray::Array2;
use rand::SeedableRng;
use scoresde::gaussian::{exact_output_law, target_law, w2_gaussian};
use scoresde::grids::diffusers::{
    euler_table, flow_table, flow_times, timesteps, FlowShift, SigmaSchedule, TimestepSpacing,
};
use scoresde::grids::{build_grid, AysModel, Schedule, Space};
use scoresde::metrics::{random_directions, sliced_w2_with_directions};
use scoresde::model::ExactScore;
use scoresde::process::{BetaSchedule, Ddpm, DdpmTable, Flow, ForwardProcess};
use scoresde::sampler::{prior_noise, sample, SamplerConfig, Solver, Steps};
use scoresde_solvers::{no_observer, TimeGrid};

use super::cells::{Cell, Ctx};
use super::driver::{Finished, SweepKind};
use super::output::{cell_key, write_table, Row};
use super::plot::{draw_both, prepare, Lines};

/// Stable Diffusion 1.5's chain length.
const SD15_STEPS: usize = 1000;

/// Stable Diffusion 1.5's chain, optionally rescaled to zero terminal SNR.
fn sd15(zero_snr: bool) -> Result<Ddpm, String> {
    Ddpm::new(DdpmTable::Betas {
        train_steps: SD15_STEPS,
        schedule: BetaSchedule::ScaledLinear,
        beta_start: 0.00085,
        beta_end: 0.012,
        rescale_zero_snr: zero_snr,
    })
    .map_err(|e| e.to_string())
}

/// How a convention builds its grid.
#[derive(Debug, Clone, Copy)]
enum Rule {
    /// DDIM on the chain's timesteps (then t = -1).
    Spacing { spacing: TimestepSpacing, offset: usize, zero_snr: bool },
    /// Euler (= DDIM) on diffusers' Euler sigma table of linspace timesteps.
    EulerSigmas(SigmaSchedule),
    /// Euler (= DDIM) on the chain with a schedule built in sigma~, then 0.
    Sigma(Schedule),
    /// FlowMatchEuler on rectified flow.
    Flow { shift: f64, diffusers: bool },
}

/// Every convention: its label and rule.
fn conventions() -> Vec<(&'static str, Rule)> {
    use TimestepSpacing::*;
    let spacing = |spacing, offset, zero_snr| Rule::Spacing { spacing, offset, zero_snr };
    vec![
        ("DDIM leading + offset 1 (SD 1.5)", spacing(Leading, 1, false)),
        ("DDIM leading", spacing(Leading, 0, false)),
        ("DDIM trailing", spacing(Trailing, 0, false)),
        ("DDIM linspace", spacing(Linspace, 0, false)),
        ("DDIM trailing + zero-SNR", spacing(Trailing, 0, true)),
        ("Euler Karras sigmas", Rule::EulerSigmas(SigmaSchedule::Karras)),
        ("Euler exponential sigmas", Rule::EulerSigmas(SigmaSchedule::Exponential)),
        ("Euler beta sigmas", Rule::EulerSigmas(SigmaSchedule::Beta)),
        ("AYS SD 1.5 table", Rule::Sigma(Schedule::Ays(AysModel::Sd1))),
        ("KL-optimal (arctan sigma)", Rule::Sigma(Schedule::KlOptimal)),
        ("flow shift 1", Rule::Flow { shift: 1.0, diffusers: true }),
        ("flow shift 3", Rule::Flow { shift: 3.0, diffusers: true }),
        ("flow shift 3 shifted once", Rule::Flow { shift: 3.0, diffusers: false }),
    ]
}

/// The process and the sampler of a convention at `nfe` steps (every sampler here costs 1 NFE a
/// step).
fn build(rule: Rule, nfe: usize) -> Result<(Box<dyn ForwardProcess>, SamplerConfig), String> {
    let e = |e: scoresde::ScoreError| e.to_string();
    let ddim = Solver::Ddim { eta: 0.0 };
    let (process, solver, space, points): (Box<dyn ForwardProcess>, Solver, Space, Vec<f64>) = match rule {
        Rule::Spacing { spacing, offset, zero_snr } => {
            let chain = sd15(zero_snr)?;
            let mut ts = timesteps(spacing, SD15_STEPS, nfe, offset, false).map_err(e)?;
            ts.push(-1.0);
            (Box::new(chain), ddim, Space::Time, ts)
        }
        Rule::EulerSigmas(schedule) => {
            let chain = sd15(false)?;
            let (sigmas, _) = euler_table(&chain, TimestepSpacing::Linspace, nfe, 0, schedule).map_err(e)?;
            (Box::new(chain), ddim, Space::SigmaTilde, sigmas)
        }
        Rule::Sigma(schedule) => {
            let chain = sd15(false)?;
            let mut points = match schedule {
                Schedule::Ays(_) => {
                    build_grid(&chain, schedule, nfe, 999.0, -1.0, Space::SigmaTilde).map_err(e)?.points().to_vec()
                }
                _ => {
                    // In sigma~ from t = 999 to t = 0 over nfe - 1 steps, then to sigma~ = 0.
                    let g = build_grid(&chain, schedule, nfe.saturating_sub(1).max(1), 999.0, 0.0, Space::SigmaTilde)
                        .map_err(e)?;
                    g.points().to_vec()
                }
            };
            if *points.last().unwrap_or(&0.0) != 0.0 {
                points.push(0.0);
            }
            (Box::new(chain), ddim, Space::SigmaTilde, points)
        }
        Rule::Flow { shift, diffusers } => {
            let points = if diffusers {
                flow_table(nfe, FlowShift::Static(shift), 1000).map_err(e)?.0
            } else {
                flow_times(nfe, FlowShift::Static(shift), 1e-3).map_err(e)?
            };
            (Box::new(Flow), Solver::Euler, Space::Time, points)
        }
    };
    let grid = TimeGrid::new(points).map_err(|e| e.to_string())?;
    let config = SamplerConfig::new(&*process, solver, space, Steps::Grid(grid)).map_err(e)?;
    Ok((process, config))
}

/// The CSV columns of a (convention, budget) besides the target: process, space, grid steps.
type Columns = (&'static str, &'static str, usize);

/// The experiment's state: each (convention, budget)'s columns, and per target the exact
/// reference set and projection directions of a mixture (`None` for a single Gaussian, whose
/// output law is compared exactly).
#[derive(Default)]
pub struct Conventions {
    columns: BTreeMap<(usize, usize), Columns>,
    references: Vec<Option<(Array2<f64>, Array2<f64>)>>,
}

/// The metric of a target: the exact W2 of the output law for a single Gaussian, the sliced W2
/// of samples otherwise.
fn metric_of(ctx: &Ctx, target: usize) -> &'static str {
    if ctx.targets[target].n_components() == 1 {
        "w2_exact"
    } else {
        "sliced_w2"
    }
}

/// `n` exact samples of a target from `seed`.
fn exact(ctx: &Ctx, target: usize, seed: u64) -> Array2<f64> {
    let mut r = rand_pcg::Pcg64::seed_from_u64(seed);
    ctx.targets[target].sample(ctx.sweep.config.n, &mut r)
}

impl SweepKind for Conventions {
    fn uses_references(&self) -> bool {
        false
    }
    fn prepare(&mut self, ctx: &Ctx) -> Result<(), String> {
        for (v, (label, rule)) in conventions().into_iter().enumerate() {
            for &nfe in &ctx.sweep.config.budgets {
                let (p, config) = build(rule, nfe).map_err(|e| format!("{label}, NFE {nfe}: {e}"))?;
                let space = if config.space() == Space::Time { "t" } else { "sigma" };
                let process = if matches!(rule, Rule::Flow { .. }) { "flow" } else { "ddpm" };
                debug_assert_eq!(process, p.name());
                self.columns.insert((v, nfe), (process, space, config.steps().count()));
            }
        }
        let seed = ctx.sweep.config.seeds[0];
        self.references = (0..ctx.targets.len())
            .map(|t| {
                (ctx.targets[t].n_components() != 1).then(|| {
                    let mut rng = rand_pcg::Pcg64::seed_from_u64(seed ^ 0xd1ec);
                    let dirs = random_directions(ctx.sweep.config.projections, ctx.targets[t].dim(), &mut rng);
                    (exact(ctx, t, seed ^ 0x5eed), dirs)
                })
            })
            .collect();
        Ok(())
    }
    fn cells(&self, ctx: &Ctx) -> Vec<Cell> {
        let sweep = ctx.sweep;
        let (process, solver, seed) = (sweep.processes[0], sweep.solvers[0], sweep.config.seeds[0]);
        let mut cells = vec![];
        for target in 0..ctx.targets.len() {
            for variant in 0..conventions().len() {
                for &nfe in &sweep.config.budgets {
                    cells.push(Cell { variant, ..Cell::exact(target, process, solver, nfe, seed) });
                }
            }
        }
        cells
    }
    fn key(&self, ctx: &Ctx, cell: &Cell) -> String {
        let (process, space, steps) = self.columns.get(&(cell.variant, cell.steps)).copied().unwrap_or(("?", "?", 0));
        let label = conventions()[cell.variant].0;
        cell_key(&ctx.names[cell.target], process, label, space, steps, cell.seed)
    }
    fn schedule(&self, _ctx: &Ctx) -> String {
        "-".into()
    }
    fn floor(&self, ctx: &Ctx) -> Result<Vec<Row>, String> {
        let seed = ctx.sweep.config.seeds[0];
        let mut rows = vec![];
        for (t, refs) in self.references.iter().enumerate() {
            if let Some((reference, dirs)) = refs {
                let value =
                    sliced_w2_with_directions(exact(ctx, t, seed ^ 0xf1002).view(), reference.view(), dirs.view());
                rows.push(Row {
                    target: ctx.names[t].clone(),
                    process: "-".into(),
                    solver: "exact-floor".into(),
                    space: "-".into(),
                    steps: 0,
                    nfe: 0,
                    seed,
                    metric: metric_of(ctx, t).into(),
                    value,
                });
            }
        }
        Ok(rows)
    }
    fn complete(&self, metrics: &BTreeSet<&str>) -> bool {
        !metrics.is_empty()
    }
    fn run_cell(&self, ctx: &Ctx, cell: &Cell) -> Result<Vec<Row>, String> {
        let (label, rule) = conventions()[cell.variant];
        let nfe = cell.steps;
        let target = &ctx.targets[cell.target];
        let (p, config) = build(rule, nfe).map_err(|e| format!("{label}, NFE {nfe}: {e}"))?;
        let (value, used) = match &self.references[cell.target] {
            None => {
                let law = exact_output_law(&*p, target, &config).map_err(|e| format!("{label}: {e}"))?;
                (w2_gaussian(&law, &target_law(target, 1.0, 0.0)), config.steps().count())
            }
            Some((reference, dirs)) => {
                let model = ExactScore::new(target.clone());
                let z = prior_noise(cell.seed, ctx.sweep.config.n, target.dim());
                let (x, report) = sample(&*p, &model, &config, z.view(), None, &mut no_observer)
                    .map_err(|e| format!("{label}: {e}"))?;
                (sliced_w2_with_directions(x.view(), reference.view(), dirs.view()), report.nfe)
            }
        };
        let (process, space, steps) = self.columns[&(cell.variant, nfe)];
        Ok(vec![Row {
            target: ctx.names[cell.target].clone(),
            process: process.into(),
            solver: label.into(),
            space: space.into(),
            steps,
            nfe: used,
            seed: cell.seed,
            metric: metric_of(ctx, cell.target).into(),
            value,
        }])
    }
    fn finish(&self, ctx: &Ctx, rows: &[Row], out_dir: &Path, quiet: bool) -> Result<Finished, String> {
        let sweep = ctx.sweep;
        let (name, budgets, n) = (&sweep.config.experiment, &sweep.config.budgets, sweep.config.n);
        let value: BTreeMap<(&str, &str, usize), f64> =
            rows.iter().map(|r| ((&*r.target, &*r.solver, r.steps), r.value)).collect();
        let mut md = format!(
            "# {name}: what each schedule convention costs\n\n\
             DDIM (= Euler in sigma~) on Stable Diffusion 1.5's chain (scaled-linear betas 0.00085..0.012, \
             T = 1000) and FlowMatchEuler on rectified flow, at NFE {budgets:?}. Single Gaussians: exact W2 of \
             the output law to the data law; mixtures: sliced W2 of N = {n} samples against exact samples \
             (the floor row: two exact sets).\n"
        );
        let mut figures = vec![];
        for (t, short) in ctx.names.iter().enumerate() {
            let metric = metric_of(ctx, t);
            md.push_str(&format!("\n## {short} ({metric})\n\n| convention |"));
            for b in budgets {
                md.push_str(&format!(" NFE {b} |"));
            }
            md.push_str(&format!("\n|---|{}\n", "---:|".repeat(budgets.len())));
            let mut lines: Lines = Default::default();
            for (v, (label, _)) in conventions().into_iter().enumerate() {
                md.push_str(&format!("| {label} |"));
                let mut pts = vec![];
                for &nfe in budgets {
                    let steps = self.columns.get(&(v, nfe)).map_or(0, |c| c.2);
                    match value.get(&(&**short, label, steps)) {
                        Some(&y) => {
                            md.push_str(&format!(" {y:.4} |"));
                            pts.push((nfe as f64, y));
                        }
                        None => md.push_str(" - |"),
                    }
                }
                md.push('\n');
                lines.insert(label.to_string(), pts);
            }
            let floor = rows.iter().find(|r| r.target == *short && r.solver == "exact-floor").map(|r| r.value);
            if let Some(f) = floor {
                md.push_str(&format!("| exact-floor (Monte Carlo) |{}\n", format!(" {f:.4} |").repeat(budgets.len())));
            }
            if prepare(out_dir)? {
                let stem = out_dir.join(format!("{name}_{short}"));
                let title = format!("{name}: {short}, {metric} against NFE");
                figures.extend(draw_both(&stem, &title, ("NFE", metric), &lines, floor.map(|f| (f, 0.0)))?);
            }
        }
        let tables = vec![write_table(out_dir, &format!("{name}.md"), &md)?];
        if !quiet {
            println!("{md}");
        }
        Ok(Finished { figures, tables, ..Default::default() })
    }
}
