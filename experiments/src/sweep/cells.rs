//! What the cell-based sweep kinds share: a cell's coordinates, its sampler, the exact reference
//! sets per (target, process), the sample metrics and the sampling of one cell.
//!
//! Every cell is a pure function of its coordinates (target, process, solver, space, steps, seed).

use std::path::Path;

use ndarray::Array2;
use rand::SeedableRng;
use scoresde::gmm::GaussianMixture;
use scoresde::grids::{build_grid, Space};
use scoresde::metrics::discrepancy::energy_distance;
use scoresde::metrics::target::{ks_per_coordinate, w2_per_coordinate};
use scoresde::metrics::{covariance_error, mean_error, random_directions, sliced_w2_with_directions};
use scoresde::model::{ExactScore, ScoreModel};
use scoresde::process::ForwardProcess;
use scoresde::sampler::{prior_noise, sample, SamplerConfig, Solver, Steps};
use scoresde::targets;
use scoresde_solvers::{no_observer, KeyedNoise, NoiseSource};

use super::config::{SolverChoice, Sweep};
use super::output::{cell_key, Row};
use super::trained::{EpsErrorProbe, NET_SUFFIX};
use crate::choices::{default_process, space_name, ProcessKind};

/// Rows used by the O(n^2) energy distance and the exact marginal W2.
const PAIRWISE: usize = 2000;
/// The metrics of every sampled cell (and of the floor), in CSV order.
pub const SAMPLE_METRICS: [&str; 6] = ["sliced_w2", "mean_error", "cov_error", "ks_max", "w2_marginal_max", "energy"];

/// A sweep process with its default parameters, errors as text.
pub fn process_of(kind: ProcessKind) -> Result<Box<dyn ForwardProcess>, String> {
    default_process(kind).map_err(|e| e.to_string())
}

/// Cell coordinates.
#[derive(Debug, Clone)]
pub struct Cell {
    /// Index into the sweep's targets.
    pub target: usize,
    /// Process.
    pub process: ProcessKind,
    /// Solver and space.
    pub solver: SolverChoice,
    /// Steps of the grid.
    pub steps: usize,
    /// Seed of the prior draws and the noise.
    pub seed: u64,
    /// What computes the cell.
    pub role: Role,
    /// The kind's own coordinate: the guidance weight's or the convention's index (0 elsewhere).
    pub variant: usize,
}

/// What computes a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A sampler with the exact score.
    Exact,
    /// The same sampler with the trained network.
    Network,
    /// No sampler: the exact quantity the sampled cells are compared with (guidance's tilted
    /// density).
    Reference,
}

impl Cell {
    /// A cell of the exact score with no kind-specific coordinate.
    pub fn exact(target: usize, process: ProcessKind, solver: SolverChoice, steps: usize, seed: u64) -> Self {
        Self { target, process, solver, steps, seed, role: Role::Exact, variant: 0 }
    }
}

/// The solver column of a cell's rows.
pub fn solver_label(solver: &Solver, net: bool) -> String {
    if net {
        format!("{}{NET_SUFFIX}", solver.name())
    } else {
        solver.name().to_string()
    }
}

/// Every (target, process, solver, steps, seed) in config order, the steps per process and
/// solver given by `steps_of`; with `net`, each solver's cells are followed by their
/// trained-network twins.
pub fn product(ctx: &Ctx, net: bool, steps_of: impl Fn(ProcessKind, SolverChoice) -> Vec<usize>) -> Vec<Cell> {
    let sweep = ctx.sweep;
    let roles: &[Role] = if net { &[Role::Exact, Role::Network] } else { &[Role::Exact] };
    let mut cells = vec![];
    for target in 0..ctx.targets.len() {
        for &process in &sweep.processes {
            for &solver in &sweep.solvers {
                for &role in roles {
                    for steps in steps_of(process, solver) {
                        for &seed in &sweep.config.seeds {
                            cells.push(Cell { role, ..Cell::exact(target, process, solver, steps, seed) });
                        }
                    }
                }
            }
        }
    }
    cells
}

/// The sampler of a cell.
pub fn cell_config(
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
pub fn nfe_of(p: &dyn ForwardProcess, target: &GaussianMixture, config: &SamplerConfig) -> Result<usize, String> {
    let z = prior_noise(0, 1, target.dim());
    let mut noise = KeyedNoise::new(0);
    let noise: Option<&mut dyn NoiseSource> = if config.solver().is_stochastic() { Some(&mut noise) } else { None };
    let model = ExactScore::new(target.clone());
    Ok(sample(p, &model, config, z.view(), noise, &mut no_observer).map_err(|e| e.to_string())?.1.nfe)
}

/// Exact samples of the target's law at the end of sampling (alpha, sigma of t_end).
pub fn exact_set(target: &GaussianMixture, p: &dyn ForwardProcess, n: usize, seed: u64) -> Array2<f64> {
    let t = p.t_end_default();
    let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
    let x0 = target.sample(n, &mut rng);
    x0 * p.alpha(t) + prior_noise(seed ^ 0x5eed, n, target.dim()) * p.sigma(t)
}

/// Metrics of `x` against the reference set and the exact law at t_end, named as in [`SAMPLE_METRICS`].
pub fn metrics(
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

/// Mean distance between the rows of `x` and of `y`.
fn mean_distance(x: &Array2<f64>, y: &Array2<f64>) -> f64 {
    (x - y).outer_iter().map(|r| r.dot(&r).sqrt()).sum::<f64>() / x.nrows() as f64
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

/// Per (target, process): exact reference samples, projection directions, and the PF-ODE
/// solution from each seed's prior draws by Dormand-Prince at rtol = atol = 1e-10 (the path
/// error of a cell compares its samples with the solution from its own draws).
pub struct RefSet {
    /// Target index.
    pub target: usize,
    /// Process.
    pub process: ProcessKind,
    /// Exact samples at t_end.
    pub reference: Array2<f64>,
    /// Directions of sliced W2.
    pub dirs: Array2<f64>,
    /// The tight ODE solution from each seed's draws, in the config's seed order.
    pub ode: Vec<(u64, Array2<f64>)>,
}

/// What every cell of a sweep reads: the validated sweep, its targets and their names, the
/// reference sets.
pub struct Ctx<'a> {
    /// The sweep.
    pub sweep: &'a Sweep,
    /// Targets in config order.
    pub targets: Vec<GaussianMixture>,
    /// Their names in the CSV (built-in name or file stem).
    pub names: Vec<String>,
    /// One reference set per (target, process).
    pub refs: Vec<RefSet>,
}

impl<'a> Ctx<'a> {
    /// Loads the targets and, with `references`, builds the reference sets.
    pub fn new(sweep: &'a Sweep, references: bool) -> Result<Self, String> {
        let targets: Vec<GaussianMixture> = sweep
            .config
            .targets
            .iter()
            .map(|t| targets::load(t))
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        let names = sweep
            .config
            .targets
            .iter()
            .map(|t| Path::new(t).file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| t.clone()))
            .collect::<Vec<String>>();
        for (i, name) in names.iter().enumerate() {
            if let Some(j) = names[..i].iter().position(|n| n == name) {
                let t = &sweep.config.targets;
                return Err(format!(
                    "targets {:?} and {:?} would both be named {name:?} in the CSV: rename one file",
                    t[j], t[i]
                ));
            }
        }
        let n = sweep.config.n;
        let mut refs = vec![];
        for (ti, target) in targets.iter().enumerate().filter(|_| references) {
            for &pk in &sweep.processes {
                let p = process_of(pk)?;
                let reference = exact_set(target, &*p, n, 1_000_003);
                let mut rng = rand_pcg::Pcg64::seed_from_u64(7);
                let dirs = random_directions(sweep.config.projections, target.dim(), &mut rng);
                let ode = sweep
                    .config
                    .seeds
                    .iter()
                    .map(|&seed| Ok((seed, tight_ode(target, &*p, n, seed)?)))
                    .collect::<Result<Vec<_>, String>>()?;
                refs.push(RefSet { target: ti, process: pk, reference, dirs, ode });
            }
        }
        Ok(Self { sweep, targets, names, refs })
    }

    /// The reference set of a target and process.
    pub fn refs(&self, target: usize, process: ProcessKind) -> Result<&RefSet, String> {
        self.refs
            .iter()
            .find(|r| r.target == target && r.process == process)
            .ok_or_else(|| format!("no reference set for target {target}, process {process:?}"))
    }

    /// The CSV key of a cell.
    pub fn key(&self, c: &Cell) -> String {
        let p = process_of(c.process).map(|p| p.name()).unwrap_or("?");
        let s: Solver = c.solver.solver.into();
        let net = c.role == Role::Network;
        cell_key(&self.names[c.target], p, &solver_label(&s, net), space_name(c.solver.space), c.steps, c.seed)
    }

    /// Rows of a cell: one per (metric, value).
    pub fn rows<M: Into<String>>(
        &self,
        cell: &Cell,
        process: &str,
        solver: &Solver,
        nfe: usize,
        values: Vec<(M, f64)>,
    ) -> Vec<Row> {
        values
            .into_iter()
            .map(|(metric, value)| Row {
                target: self.names[cell.target].clone(),
                process: process.into(),
                solver: solver_label(solver, cell.role == Role::Network),
                space: space_name(cell.solver.space).into(),
                steps: cell.steps,
                nfe,
                seed: cell.seed,
                metric: metric.into(),
                value,
            })
            .collect()
    }
}

/// A sampled cell: its samples' metrics (with `with_metrics`), `path_error` for deterministic
/// solvers, and with a `probe` (the network watched against the exact score) `score_mse_eps`.
pub fn sample_cell(
    ctx: &Ctx,
    cell: &Cell,
    with_metrics: bool,
    net: Option<&dyn ScoreModel>,
) -> Result<Vec<Row>, String> {
    let p = process_of(cell.process)?;
    let target = &ctx.targets[cell.target];
    let config = cell_config(ctx.sweep, &*p, cell.solver, cell.steps)?;
    let solver = config.solver();
    let context = |e: &dyn std::fmt::Display| {
        format!("{} {} {} {} steps: {e}", ctx.names[cell.target], p.name(), solver.name(), cell.steps)
    };
    let z = prior_noise(cell.seed, ctx.sweep.config.n, target.dim());
    let exact = ExactScore::new(target.clone());
    let probe = net.map(|n| EpsErrorProbe::new(n, exact.clone()));
    let model: &dyn ScoreModel = match &probe {
        Some(p) => p,
        None => &exact,
    };
    let mut noise = KeyedNoise::new(cell.seed);
    let noise: Option<&mut dyn NoiseSource> = if solver.is_stochastic() { Some(&mut noise) } else { None };
    let (x, report) = sample(&*p, model, &config, z.view(), noise, &mut no_observer).map_err(|e| context(&e))?;
    let refs = ctx.refs(cell.target, cell.process)?;
    let mut values = if with_metrics { metrics(target, &*p, &x, &refs.reference, &refs.dirs) } else { vec![] };
    let ode = refs.ode.iter().find(|(seed, _)| *seed == cell.seed).map(|(_, x)| x);
    if let (false, Some(ode)) = (solver.is_stochastic(), ode) {
        // Discretisation error alone: mean distance to the tight PF-ODE solution from the same draws.
        values.push(("path_error", mean_distance(&x, ode)));
    }
    if let Some(probe) = &probe {
        values.push(("score_mse_eps", probe.mean_squared_error()));
    }
    Ok(ctx.rows(cell, p.name(), solver, report.nfe, values))
}
