//! `scoresde sweep`: solvers x step counts x processes x targets -> metric against NFE, as a long
//! CSV (`experiment,target,process,solver,space,schedule,steps,nfe,seed,metric,value`), a JSON
//! sidecar (config, git commit, versions, timings, fitted slopes) and PNG + SVG figures.
//! The config's `kind` picks the experiment: `steps_vs_quality` (the headline figure),
//! `convergence` (MC-free discretisation error against steps, fitted orders as a Markdown table),
//! `solver_table` (a metric at NFE budgets as Markdown and LaTeX) or `trajectories` (2-d paths,
//! see [`trajectories`]).
//!
//! Every cell is a pure function of its coordinates (target, process, solver, space, steps, seed):
//! cells run in parallel and are written in cell order, so the CSV is identical for any thread
//! count; `--shard i/n` runs the cells whose index is i mod n; a rerun skips the cells already in
//! the CSV. The Monte Carlo floor of each metric (its value between independent exact sample sets
//! of the same size) is written as solver `exact-floor`, one row per repetition. Deterministic
//! solvers also get `path_error`, the mean distance to a tight Dormand-Prince solution from the
//! same prior draws: discretisation error alone, whose slope against NFE is the solver's order.

pub mod config;
mod guidance;
pub mod plot;
mod table;
mod trained;
mod trajectories;

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use ndarray::Array2;
use rand::SeedableRng;
use rayon::prelude::*;
use scoresde::gaussian::{exact_flow_law, exact_output_law, target_law, w2_gaussian};
use scoresde::gmm::GaussianMixture;
use scoresde::grids::{build_grid, Space};
use scoresde::io::write_atomic;
use scoresde::metrics::discrepancy::energy_distance;
use scoresde::metrics::target::{ks_per_coordinate, w2_per_coordinate};
use scoresde::metrics::{covariance_error, mean_error, random_directions, sliced_w2_with_directions};
use scoresde::model::ExactScore;
use scoresde::process::ForwardProcess;
use scoresde::sampler::{prior_noise, sample, SamplerConfig, Solver, Steps};
use scoresde::targets;
use scoresde_solvers::{no_observer, KeyedNoise};

use crate::cli::{CmdResult, ProcessArgs, ProcessKind, SpaceKind, SweepArgs};
use config::{ExperimentKind, SolverChoice, Sweep, SweepConfig};

/// CSV header.
pub const HEADER: &str = "experiment,target,process,solver,space,schedule,steps,nfe,seed,metric,value";
/// Rows used by the O(n^2) energy distance and the exact marginal W2.
const PAIRWISE: usize = 2000;

/// One CSV row.
#[derive(Debug, Clone, PartialEq)]
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

fn process_of(kind: ProcessKind) -> scoresde::Result<Box<dyn ForwardProcess>> {
    ProcessArgs { process: kind, beta_min: 0.1, beta_max: 20.0, sigma_min: None, sigma_max: None, cosine_s: 0.008 }
        .build()
}

fn space_name(s: SpaceKind) -> &'static str {
    match s {
        SpaceKind::T => "t",
        SpaceKind::Sigma => "sigma",
    }
}

/// Exact samples of the target's law at the end of sampling (alpha, sigma of t_end).
fn exact_set(target: &GaussianMixture, p: &dyn ForwardProcess, n: usize, seed: u64) -> Array2<f64> {
    let t = p.t_end_default();
    let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
    let x0 = target.sample(n, &mut rng);
    x0 * p.alpha(t) + prior_noise(seed ^ 0x5eed, n, target.dim()) * p.sigma(t)
}

/// The metrics of every sampled cell (and of the floor), in CSV order.
const SAMPLE_METRICS: [&str; 6] = ["sliced_w2", "mean_error", "cov_error", "ks_max", "w2_marginal_max", "energy"];

/// Metrics of `x` against the reference set and the exact law at t_end, named as in [`SAMPLE_METRICS`].
fn metrics(
    target: &GaussianMixture,
    p: &dyn ForwardProcess,
    x: &Array2<f64>,
    reference: &Array2<f64>,
    dirs: &Array2<f64>,
) -> Vec<(&'static str, f64)> {
    let t = p.t_end_default();
    let (a, s) = (p.alpha(t), p.sigma(t));
    let (mean, cov) = target.moments(a, s);
    let m = PAIRWISE.min(x.nrows());
    let ks = ks_per_coordinate(target, a, s, x.view()).fold(0.0f64, |u, &v| u.max(v));
    // The exact marginal W2 costs a quantile solve per row: like the energy distance, it uses the
    // first PAIRWISE rows (and so does its floor).
    let w2m = w2_per_coordinate(target, a, s, x.slice(ndarray::s![..m, ..])).fold(0.0f64, |u, &v| u.max(v));
    let values = [
        sliced_w2_with_directions(x.view(), reference.view(), dirs.view()),
        mean_error(x.view(), mean.view()),
        covariance_error(x.view(), cov.view()),
        ks,
        w2m,
        energy_distance(x.slice(ndarray::s![..m, ..]), reference.slice(ndarray::s![..m, ..])),
    ];
    SAMPLE_METRICS.into_iter().zip(values).collect()
}

/// Cell coordinates.
#[derive(Debug, Clone)]
struct Cell {
    target: usize,
    process: ProcessKind,
    solver: SolverChoice,
    steps: usize,
    seed: u64,
    /// Sampled with the trained network (`trained_vs_exact`) instead of the exact score.
    net: bool,
}

/// The solver column of a cell's rows.
fn solver_label(solver: &Solver, net: bool) -> String {
    if net {
        format!("{}{}", solver.name(), trained::NET_SUFFIX)
    } else {
        solver.name().to_string()
    }
}

fn cell_key(target: &str, process: &str, solver: &str, space: &str, steps: usize, seed: u64) -> String {
    format!("{target}|{process}|{solver}|{space}|{steps}|{seed}")
}

/// The sampler of a cell.
fn cell_config(
    sweep: &Sweep,
    p: &dyn ForwardProcess,
    solver: SolverChoice,
    steps: usize,
) -> Result<SamplerConfig, String> {
    let space: Space = solver.space.into();
    let grid = build_grid(p, sweep.schedule.schedule(7.0), steps, p.t_max(), p.t_end_default(), space)
        .map_err(|e| e.to_string())?;
    SamplerConfig::new(p, solver.solver.into(), space, Steps::Grid(grid)).map_err(|e| e.to_string())
}

/// Model evaluations of one run of `config` (counted on a single row).
fn nfe_of(p: &dyn ForwardProcess, target: &GaussianMixture, config: &SamplerConfig) -> Result<usize, String> {
    let z = prior_noise(0, 1, target.dim());
    let mut noise = KeyedNoise::new(0);
    let noise: Option<&mut dyn scoresde_solvers::NoiseSource> =
        if config.solver().is_stochastic() { Some(&mut noise) } else { None };
    let model = ExactScore::new(target.clone());
    Ok(sample(p, &model, config, z.view(), noise, &mut no_observer).map_err(|e| e.to_string())?.1.nfe)
}

/// Mean distance between the rows of `x` and of `y`.
fn mean_distance(x: &Array2<f64>, y: &Array2<f64>) -> f64 {
    (x - y).outer_iter().map(|r| r.dot(&r).sqrt()).sum::<f64>() / x.nrows() as f64
}

fn run_cell(
    sweep: &Sweep,
    names: &[String],
    tgts: &[GaussianMixture],
    refs: &RefSets,
    net: Option<&scoresde::nn::NetScore>,
    cell: &Cell,
) -> Result<Vec<Row>, String> {
    let p = process_of(cell.process).map_err(|e| e.to_string())?;
    let target = &tgts[cell.target];
    let config = cell_config(sweep, &*p, cell.solver, cell.steps)?;
    let solver = config.solver();
    let context = |e: &dyn std::fmt::Display| {
        format!("{} {} {} {} steps: {e}", names[cell.target], p.name(), solver.name(), cell.steps)
    };
    let (values, nfe) = if sweep.config.kind == ExperimentKind::Convergence && target.n_components() == 1 {
        // Exact law of the sampler's output: no Monte Carlo error at all.
        let law = exact_output_law(&*p, target, &config).map_err(|e| context(&e))?;
        let (t0, t1) = (p.t_max(), p.t_end_default());
        let exact = if solver.is_stochastic() {
            target_law(target, p.alpha(t1), p.sigma(t1))
        } else {
            exact_flow_law(&*p, target, t0, t1).map_err(|e| context(&e))?
        };
        (vec![("w2_exact", w2_gaussian(&law, &exact))], nfe_of(&*p, target, &config)?)
    } else if sweep.config.kind == ExperimentKind::Convergence && solver.is_stochastic() {
        // On a mixture only the ODE solvers have an MC-free error (the distance to the exact path).
        return Ok(vec![]);
    } else {
        let z = prior_noise(cell.seed, sweep.config.n, target.dim());
        let exact = ExactScore::new(target.clone());
        let probe = match (cell.net, net) {
            (true, Some(n)) => Some(trained::EpsErrorProbe::new(n, exact.clone())),
            _ => None,
        };
        let model: &dyn scoresde::model::ScoreModel = match &probe {
            Some(p) => p,
            None => &exact,
        };
        let mut noise = KeyedNoise::new(cell.seed);
        let noise: Option<&mut dyn scoresde_solvers::NoiseSource> =
            if solver.is_stochastic() { Some(&mut noise) } else { None };
        let (x, report) = sample(&*p, model, &config, z.view(), noise, &mut no_observer).map_err(|e| context(&e))?;
        let (reference, dirs, ode) = refs.get(cell.target, cell.process);
        let mut values = if sweep.config.kind == ExperimentKind::Convergence {
            vec![]
        } else {
            metrics(target, &*p, &x, reference, dirs)
        };
        if !solver.is_stochastic() && z.nrows() == ode.nrows() {
            // Discretisation error alone: mean distance to the tight PF-ODE solution from the same draws.
            values.push(("path_error", mean_distance(&x, ode)));
        }
        if let Some(probe) = &probe {
            values.push(("score_mse_eps", probe.mean_squared_error()));
        }
        (values, report.nfe)
    };
    Ok(values
        .into_iter()
        .map(|(metric, value)| Row {
            target: names[cell.target].clone(),
            process: p.name().into(),
            solver: solver_label(solver, cell.net),
            space: space_name(cell.solver.space).into(),
            steps: cell.steps,
            nfe,
            seed: cell.seed,
            metric: metric.into(),
            value,
        })
        .collect())
}

/// For each process and solver: the budgets with the most steps whose NFE fits, as
/// `(budget, steps, nfe)`; `None` where even one step costs more than the budget.
type BudgetPlan = Vec<(ProcessKind, SolverChoice, Vec<(usize, Option<(usize, usize)>)>)>;

fn plan_budgets(sweep: &Sweep, target: &GaussianMixture) -> Result<BudgetPlan, String> {
    let mut plan = vec![];
    for &pk in &sweep.processes {
        let p = process_of(pk).map_err(|e| e.to_string())?;
        for &solver in &sweep.solvers {
            let mut cols = vec![];
            for &budget in &sweep.config.budgets {
                // NFE grows with the step count: walk down from the budget.
                let mut found = None;
                for steps in (1..=budget).rev() {
                    let nfe = nfe_of(&*p, target, &cell_config(sweep, &*p, solver, steps)?)?;
                    if nfe <= budget {
                        found = Some((steps, nfe));
                        break;
                    }
                }
                cols.push((budget, found));
            }
            plan.push((pk, solver, cols));
        }
    }
    Ok(plan)
}

/// Per (target, process): exact reference samples, projection directions, and the PF-ODE
/// solution from the sweep's prior draws by Dormand-Prince at rtol = atol = 1e-10 (seed 0's draws).
struct RefSets {
    sets: Vec<RefSet>,
}

/// Target index, process, reference samples, directions, tight ODE solution.
type RefSet = (usize, ProcessKind, Array2<f64>, Array2<f64>, Array2<f64>);

impl RefSets {
    fn get(&self, target: usize, process: ProcessKind) -> (&Array2<f64>, &Array2<f64>, &Array2<f64>) {
        let (_, _, r, d, o) =
            self.sets.iter().find(|(t, p, ..)| *t == target && *p == process).expect("built for every pair");
        (r, d, o)
    }
}

/// The tight PF-ODE solution from the prior draws of `seed`.
fn tight_ode(target: &GaussianMixture, p: &dyn ForwardProcess, n: usize, seed: u64) -> Result<Array2<f64>, String> {
    let options = scoresde_solvers::AdaptiveOptions::new(1e-10, 1e-10).map_err(|e| e.to_string())?;
    let steps = Steps::Adaptive { start: p.t_max(), end: p.t_end_default(), options };
    let config = SamplerConfig::new(p, Solver::Dopri5, Space::Time, steps).map_err(|e| e.to_string())?;
    let z = prior_noise(seed, n, target.dim());
    Ok(sample(p, &ExactScore::new(target.clone()), &config, z.view(), None, &mut no_observer)
        .map_err(|e| e.to_string())?
        .0)
}

fn read_existing(path: &Path) -> Vec<Row> {
    let Ok(text) = std::fs::read_to_string(path) else { return vec![] };
    let mut lines = text.lines();
    if lines.next() != Some(HEADER) {
        return vec![];
    }
    lines
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            if f.len() != 11 {
                return None;
            }
            Some(Row {
                target: f[1].into(),
                process: f[2].into(),
                solver: f[3].into(),
                space: f[4].into(),
                steps: f[6].parse().ok()?,
                nfe: f[7].parse().ok()?,
                seed: f[8].parse().ok()?,
                metric: f[9].into(),
                value: f[10].parse().ok()?,
            })
        })
        .collect()
}

/// Writes the JSON sidecar beside `csv_path` (same stem, `.json`): the full config, git commit,
/// version, threads, time, the files written, and the kind's own `extra` fields. Returns its path.
pub(crate) fn write_sidecar(
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

fn git_commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// The config's trained model, checked against the config's processes.
fn trained_model(sweep: &Sweep) -> Result<scoresde::nn::NetScore, String> {
    let path = Path::new(&sweep.config.model);
    let net = scoresde::nn::NetScore::load(path, &scoresde::nn::device())
        .map_err(|e| format!("model: {e} (train one with `scoresde train --out {}`)", path.display()))?;
    let trained = &net.checkpoint().meta["process"];
    for &pk in &sweep.processes {
        let args = ProcessArgs {
            process: pk,
            beta_min: 0.1,
            beta_max: 20.0,
            sigma_min: None,
            sigma_max: None,
            cosine_s: 0.008,
        };
        let given = crate::train_cmd::process_meta(&args);
        if *trained != given {
            return Err(format!("model {}: trained on process {trained}, the config asks for {given}", path.display()));
        }
    }
    Ok(net)
}

/// Parses `i/n`.
fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    let bad = || format!("--shard {s:?}: expected i/n with 0 <= i < n");
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let (i, n): (usize, usize) = (i.parse().map_err(|_| bad())?, n.parse().map_err(|_| bad())?);
    if n == 0 || i >= n {
        return Err(bad());
    }
    Ok((i, n))
}

/// Runs `scoresde sweep`.
pub fn run(a: SweepArgs) -> CmdResult {
    let sweep = SweepConfig::load(a.config.as_deref())?.validate()?;
    let (shard, shards) = a.shard.as_deref().map(parse_shard).transpose()?.unwrap_or((0, 1));
    let out_dir: PathBuf = a.out_dir.clone().unwrap_or_else(|| PathBuf::from("plots"));
    let kind = sweep.config.kind;
    if kind == ExperimentKind::Trajectories {
        return Ok(trajectories::run(&sweep, &out_dir, a.quiet)?);
    }
    if kind == ExperimentKind::Guidance {
        return Ok(guidance::run(&sweep, &out_dir, a.quiet)?);
    }
    let name = &sweep.config.experiment;
    let csv_path = if shards > 1 {
        out_dir.join(format!("{name}.shard{shard}of{shards}.csv"))
    } else {
        out_dir.join(format!("{name}.csv"))
    };
    let started = Instant::now();

    let tgts: Vec<GaussianMixture> = sweep.config.targets.iter().map(|t| targets::load(t)).collect::<Result<_, _>>()?;
    let names: Vec<String> = sweep
        .config
        .targets
        .iter()
        .map(|t| Path::new(t).file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| t.clone()))
        .collect();
    let n = sweep.config.n;
    let mut sets = vec![];
    let mut floor_rows = vec![];
    for (ti, target) in tgts.iter().enumerate() {
        for &pk in &sweep.processes {
            let p = process_of(pk)?;
            let reference = exact_set(target, &*p, n, 1_000_003);
            let mut rng = rand_pcg::Pcg64::seed_from_u64(7);
            let dirs = random_directions(sweep.config.projections, target.dim(), &mut rng);
            // Convergence measures discretisation error alone: it has no Monte Carlo floor.
            let reps = if kind == ExperimentKind::Convergence { 0 } else { sweep.config.floor_reps as u64 };
            for rep in 0..reps {
                let x = exact_set(target, &*p, n, 2_000_003 + rep);
                for (metric, value) in metrics(target, &*p, &x, &reference, &dirs) {
                    let (process, solver, space) = (p.name().into(), "exact-floor".into(), "-".into());
                    floor_rows.push(Row {
                        target: names[ti].clone(),
                        process,
                        solver,
                        space,
                        steps: 0,
                        nfe: 0,
                        seed: rep,
                        metric: metric.into(),
                        value,
                    });
                }
            }
            let ode = tight_ode(target, &*p, n, sweep.config.seeds[0])?;
            sets.push((ti, pk, reference, dirs, ode));
        }
    }
    let refs = RefSets { sets };

    let net = if kind == ExperimentKind::TrainedVsExact { Some(trained_model(&sweep)?) } else { None };
    let plan = if kind == ExperimentKind::SolverTable { plan_budgets(&sweep, &tgts[0])? } else { vec![] };
    let steps_of = |process: ProcessKind, solver: SolverChoice| -> Vec<usize> {
        if kind != ExperimentKind::SolverTable {
            return sweep.config.steps.clone();
        }
        let (_, _, cols) = plan.iter().find(|(p, s, _)| *p == process && *s == solver).expect("planned");
        let mut steps: Vec<usize> = cols.iter().filter_map(|(_, f)| f.map(|(s, _)| s)).collect();
        steps.sort_unstable();
        steps.dedup();
        steps
    };
    let mut cells = vec![];
    for ti in 0..tgts.len() {
        for &process in &sweep.processes {
            for &solver in &sweep.solvers {
                for steps in steps_of(process, solver) {
                    for &seed in &sweep.config.seeds {
                        cells.push(Cell { target: ti, process, solver, steps, seed, net: false });
                        if kind == ExperimentKind::TrainedVsExact {
                            cells.push(Cell { target: ti, process, solver, steps, seed, net: true });
                        }
                    }
                }
            }
        }
    }
    let existing = read_existing(&csv_path);
    // A cell is done when the CSV holds every sample metric for it (convergence: any row), so a
    // CSV written before a metric was added is completed rather than trusted.
    let mut found: std::collections::BTreeMap<String, BTreeSet<&str>> = Default::default();
    for r in existing.iter().filter(|r| r.solver != "exact-floor") {
        let key = cell_key(&r.target, &r.process, &r.solver, &r.space, r.steps, r.seed);
        found.entry(key).or_default().insert(&r.metric);
    }
    let done: BTreeSet<String> = found
        .into_iter()
        .filter(|(_, m)| kind == ExperimentKind::Convergence || SAMPLE_METRICS.iter().all(|s| m.contains(s)))
        .map(|(k, _)| k)
        .collect();
    let key_of = |c: &Cell| {
        let p = process_of(c.process).map(|p| p.name()).unwrap_or("?");
        let s: Solver = c.solver.solver.into();
        cell_key(&names[c.target], p, &solver_label(&s, c.net), space_name(c.solver.space), c.steps, c.seed)
    };
    let todo: Vec<(usize, Cell)> =
        cells.into_iter().enumerate().filter(|(i, c)| i % shards == shard && !done.contains(&key_of(c))).collect();
    let bar = if std::io::stderr().is_terminal() && !a.quiet {
        ProgressBar::new(todo.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(ProgressStyle::with_template("{bar:40} {pos}/{len} cells (eta {eta})").expect("valid template"));
    let results: Vec<Result<Vec<Row>, String>> = todo
        .par_iter()
        .map(|(_, c)| {
            let r = run_cell(&sweep, &names, &tgts, &refs, net.as_ref(), c);
            bar.inc(1);
            r
        })
        .collect();
    bar.finish_and_clear();
    let mut rows: Vec<Row> = existing
        .into_iter()
        .filter(|r| {
            r.solver != "exact-floor"
                && done.contains(&cell_key(&r.target, &r.process, &r.solver, &r.space, r.steps, r.seed))
        })
        .collect();
    for r in results {
        rows.extend(r?);
    }
    // Cell order: target, process, solver (config order), space, steps, seed; metrics in order.
    let order = |r: &Row| {
        let t = names.iter().position(|n| *n == r.target).unwrap_or(usize::MAX);
        let p = sweep
            .processes
            .iter()
            .position(|&k| process_of(k).map(|p| p.name() == r.process).unwrap_or(false))
            .unwrap_or(usize::MAX);
        let is_net = r.solver.ends_with(trained::NET_SUFFIX);
        let base = r.solver.trim_end_matches(trained::NET_SUFFIX);
        let s = sweep
            .solvers
            .iter()
            .position(|c| Solver::from(c.solver).name() == base && space_name(c.space) == r.space)
            .unwrap_or(usize::MAX);
        (t, p, s, is_net, r.steps, r.seed)
    };
    rows.sort_by_key(order);
    rows.extend(floor_rows);
    let schedule = &sweep.config.schedule;
    let mut csv = String::from(HEADER);
    csv.push('\n');
    for r in &rows {
        csv.push_str(&format!(
            "{name},{},{},{},{},{schedule},{},{},{},{},{:e}\n",
            r.target, r.process, r.solver, r.space, r.steps, r.nfe, r.seed, r.metric, r.value
        ));
    }
    write_atomic(&csv_path, csv.as_bytes())?;
    let slopes = plot::fitted_slopes(&rows, "path_error");
    let mut figures = vec![];
    let mut tables = vec![];
    let mut orders = serde_json::Value::Null;
    if shards == 1 {
        figures = match kind {
            ExperimentKind::Convergence => plot::draw_convergence(&rows, name, &out_dir)?,
            _ => plot::draw_all(&rows, name, &out_dir)?,
        };
        match kind {
            ExperimentKind::SolverTable => {
                let (md, tex) = table::solver_tables(&rows, &sweep, &names, &plan);
                for (ext, text) in [("md", &md), ("tex", &tex)] {
                    let path = out_dir.join(format!("{name}.{ext}"));
                    write_atomic(&path, text.as_bytes())?;
                    tables.push(path.display().to_string());
                }
                if !a.quiet {
                    println!("{md}");
                }
            }
            ExperimentKind::Convergence => {
                let (md, fitted) = table::convergence_orders(&rows, &sweep, &names);
                let path = out_dir.join(format!("{name}_orders.md"));
                write_atomic(&path, md.as_bytes())?;
                tables.push(path.display().to_string());
                orders = fitted;
                if !a.quiet {
                    println!("{md}");
                }
            }
            _ => {}
        }
    }
    let budget_steps: Vec<serde_json::Value> = plan
        .iter()
        .map(|(p, s, cols)| {
            let cols: Vec<_> = cols
                .iter()
                .map(|(b, f)| serde_json::json!({"budget": b, "steps": f.map(|x| x.0), "nfe": f.map(|x| x.1)}))
                .collect();
            serde_json::json!({"process": format!("{p:?}").to_lowercase(), "solver": Solver::from(s.solver).name(),
                "space": space_name(s.space), "columns": cols})
        })
        .collect();
    let extra = serde_json::json!({
        "shard": format!("{shard}/{shards}"),
        "cells_run": todo.len(),
        "fitted_slopes_path_error_vs_nfe": slopes,
        "fitted_orders_vs_steps": orders,
        "budget_steps": budget_steps,
        "model": if kind == ExperimentKind::TrainedVsExact { serde_json::json!(sweep.config.model) } else { serde_json::Value::Null },
    });
    let json_path = write_sidecar(&sweep, &csv_path, started, &figures, &tables, extra)?;
    if !a.quiet {
        eprintln!(
            "wrote {} ({} rows), {} and {} figure(s) in {:.1} s",
            csv_path.display(),
            rows.len(),
            json_path.display(),
            figures.len(),
            started.elapsed().as_secs_f64()
        );
        let shown = if kind == ExperimentKind::StepsVsQuality { slopes.as_object() } else { None };
        for (k, v) in shown.into_iter().flatten() {
            eprintln!("  {k}: slope {v}");
        }
    }
    Ok(())
}
