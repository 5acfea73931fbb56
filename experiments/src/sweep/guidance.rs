//! The `guidance` experiment: classifier-free guidance with exact scores on a class-conditional
//! mixture (class = the config's `class` components). For each guidance weight w it samples with
//! eps_w = (1 + w) eps(x | c) - w eps(x) and measures precision (the fraction of samples whose
//! most responsible component is in the class), diversity (trace of the sample covariance) and
//! the mean exact log p(x | c); the same quantities of the tilted density
//! q_w ∝ p(x | c)^{1 + w} p(x)^{-w} come from 2-d quadrature (rows `exact-tilted@w=..`), which
//! shows how far guided sampling is from the density it is often described as sampling.
//! When `model` names a class-conditional checkpoint trained on the same target with the
//! config's class among its classes (`scoresde train --classes`), the same weights are also run
//! with the network (rows `{solver}+net@w=..`): learned guidance against exact guidance.
//! `guidance_rules` adds rows for other guidance rules at the same weights (rows
//! `{solver}+{rule}@w=..`: guidance rescale, APG (`apg-momentum`: beta = -0.5), CFG-Zero*
//! (`cfg-zero-star-init`: the first evaluation zeroed), and classifier guidance with the
//! exact classifier at scale 1 + w, which is CFG at w up to round-off; `classifier-net` the same
//! with the trained `classifier_model`, at the last `steps` only; `cfg-pp`, CFG++ at
//! lambda = 1 + w, runs the solver's CFG++ twin: `dpmpp-2m-cfg-pp` for `dpmpp-2m`,
//! `euler-cfg-pp` for `ddim` or sigma-space `euler`).
//! Every sampler cell also gets its sliced W2 to the exact class law p(x | c) (`w2_class`,
//! against exact samples, any d) and, for d = 2, to the tilted density (`w2_tilted`, against
//! draws from its quadrature grid), at every `steps` of the config: each rule's exact distance
//! to its target against w and NFE. The tilted rows carry the floor of `w2_tilted` (a fresh
//! exact draw of the same size) and the tilted law's own distance to the class law; the floor
//! rows (`exact-floor`) that of `w2_class`.
//! Each (target, process, rule, weight, steps) gives up to three cells (exact score, network, tilted
//! density, the last once per weight), so the experiment shards like the others. Writes `{experiment}.csv` (long format),
//! `{experiment}.md` and a diversity-against-(1 + w) figure.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use ndarray::{Array1, Array2};
use rand::SeedableRng;
use scoresde::gmm::GaussianMixture;
use scoresde::guidance::{
    sub_mixture, tilted_moments_2d, ClassifierGuided, Guidance as Rule, GuidanceRule, Guided, GuidedExact, TiltedGrid,
};
use scoresde::metrics::{random_directions, sample_covariance, sliced_w2_with_directions};
use scoresde::model::ExactScore;
use scoresde::model::ScoreModel;
use scoresde::nn::NetScore;
use scoresde::sampler::{prior_noise, sample, Solver, SolverId};
use scoresde_solvers::{no_observer, KeyedNoise};

use super::cells::{cell_config, exact_set, process_of, Cell, Ctx, Role};
use super::driver::{Finished, SweepKind};
use super::output::{cell_key, Row};
use super::plot::{draw_both, label, prepare, Lines};
use crate::choices::space_name;

/// The metrics of every cell, in CSV order (`w2_tilted` for d = 2 only).
const METRICS: [&str; 4] = ["precision", "diversity", "mean_log_p_cond", "w2_class"];
/// Sliced W2 to the tilted density's quadrature draws (d = 2).
const W2_TILTED: &str = "w2_tilted";
/// The grid size of the tilted density's quadrature.
const GRID: usize = 600;
/// Seeds of the reference draws and of the floor's fresh draws.
const REFERENCE_SEED: u64 = 1_000_003;
const FRESH_SEED: u64 = 2_000_003;

/// (value, NFE) by (target, process, solver column, steps, metric).
type ByCell<'a> = BTreeMap<(&'a str, &'a str, &'a str, usize, &'a str), (f64, usize)>;

/// (weight, [precision, diversity, mean log p(x | c)]) per weight.
type Curve = Vec<(f64, [f64; 3])>;

/// The exact reference draws of one (target, process): the class law's, the projection
/// directions, and for d = 2 the tilted density's at each weight.
struct Refs {
    target: usize,
    process: crate::choices::ProcessKind,
    class: Array2<f64>,
    dirs: Array2<f64>,
    tilted: Vec<Array2<f64>>,
}

/// The experiment's state: the network and the index of the config's class among its classes,
/// and the reference draws.
#[derive(Default)]
pub struct Guidance {
    net: Option<(NetScore, usize)>,
    /// The trained classifier's file, the config's class among its classes, and the SHA-256 of
    /// the file as it was loaded (the fingerprint's).
    classifier: Option<(std::path::PathBuf, usize, String)>,
    refs: Vec<Refs>,
}

/// A radius holding every component of the target (8 standard deviations past the farthest
/// mean, plus one): the tilted density's quadrature box is `[-r, r]^2`.
fn quadrature_radius(target: &GaussianMixture) -> f64 {
    (0..target.n_components())
        .map(|k| {
            let c = target.component_covariance(k);
            let m = target.means().row(k).iter().map(|v| v * v).sum::<f64>().sqrt();
            m + 8.0 * c.diag().iter().cloned().fold(0.0, f64::max).sqrt()
        })
        .fold(0.0, f64::max)
        + 1.0
}

/// The tilted density of `target`'s class at weight `w` at the end of sampling, by quadrature.
fn tilted_grid(target: &GaussianMixture, class: &[usize], w: f64, level: (f64, f64)) -> Result<TiltedGrid, String> {
    TiltedGrid::new(target, class, w, level, quadrature_radius(target), GRID).map_err(|e| e.to_string())
}

impl Guidance {
    fn refs(&self, cell: &Cell) -> Result<&Refs, String> {
        self.refs
            .iter()
            .find(|r| r.target == cell.target && r.process == cell.process)
            .ok_or_else(|| "guidance: no reference draws (prepare did not run)".to_string())
    }
}

/// A rule of the sweep's `guidance_rules`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SweepRule {
    /// A rule combining conditional and unconditional predictions.
    Rule(GuidanceRule),
    /// Classifier guidance with the exact classifier at scale 1 + w.
    Classifier,
    /// Classifier guidance with the trained `classifier_model` at scale 1 + w.
    ClassifierNet,
    /// CFG++ at lambda = 1 + w: the sweep's solver replaced by its CFG++ twin.
    CfgPp,
}

impl SweepRule {
    /// The rule called `name` (with the parameters the module docs give).
    pub fn from_name(name: &str) -> Result<Self, String> {
        Ok(match name {
            "cfg" => Self::Rule(GuidanceRule::Cfg),
            "rescale" => Self::Rule(GuidanceRule::Rescale { phi: 0.7 }),
            "apg" => Self::Rule(GuidanceRule::apg(0.0, 0.0)),
            "cfg-zero-star" => Self::Rule(GuidanceRule::CfgZeroStar { zero_init: 0 }),
            "apg-momentum" => Self::Rule(GuidanceRule::Apg { eta: 0.0, norm_threshold: 0.0, momentum: -0.5 }),
            "cfg-zero-star-init" => Self::Rule(GuidanceRule::CfgZeroStar { zero_init: 1 }),
            "classifier" => Self::Classifier,
            "classifier-net" => Self::ClassifierNet,
            "cfg-pp" => Self::CfgPp,
            other => {
                return Err(format!(
                    "{other:?}: unknown (expected cfg, rescale, apg, apg-momentum, cfg-zero-star, cfg-zero-star-init, \
                     classifier, classifier-net or cfg-pp)"
                ))
            }
        })
    }
}

/// The CFG++ twin of a solver (`ddim` is Euler in sigma space).
fn cfg_pp_twin(solver: SolverId) -> Option<SolverId> {
    match solver {
        SolverId::DpmPp2M => Some(SolverId::DpmPp2MCfgPp),
        SolverId::Ddim | SolverId::Euler => Some(SolverId::EulerCfgPp),
        _ => None,
    }
}

/// (rule name, weight) of a cell: variant = rule index * weights + weight index.
fn rule_and_weight<'a>(ctx: &'a Ctx, cell: &Cell) -> (&'a str, f64) {
    let c = &ctx.sweep.config;
    let k = c.guidance_weights.len();
    (&c.guidance_rules[cell.variant / k], c.guidance_weights[cell.variant % k])
}

/// The solver column of rule `rule` at weight `w` (`cfg` keeps the plain `{solver}@w=`).
fn rule_column(solver: &str, rule: &str, net: bool, w: f64) -> String {
    let rule = if rule == "cfg" { String::new() } else { format!("+{rule}") };
    let net = if net { "+net" } else { "" };
    format!("{solver}{rule}{net}@w={w}")
}

/// One table row per weight of `curve`: its metrics beside the tilted density's.
fn rows_beside_tilted(md: &mut String, curve: &Curve, tilted: &Curve) {
    for (w, v) in curve {
        let t = tilted.iter().find(|(tw, _)| tw == w).map(|(_, t)| *t);
        let f = |j: usize| t.map(|t| format!("{:.4}", t[j])).unwrap_or("-".into());
        md.push_str(&format!("| {w} | {:.4} | {} | {:.4} | {} | {:.3} | {} |\n", v[0], f(0), v[1], f(1), v[2], f(2)));
    }
}

/// The solver column of a cell's rows.
fn solver_column(ctx: &Ctx, cell: &Cell) -> String {
    let (rule, w) = rule_and_weight(ctx, cell);
    let solver = Solver::from(cell.solver.solver).name();
    match cell.role {
        Role::Reference => format!("exact-tilted@w={w}"),
        Role::Exact => rule_column(solver, rule, false, w),
        Role::Network => rule_column(solver, rule, true, w),
    }
}

/// The space column of a cell's rows.
fn space_column(cell: &Cell) -> &'static str {
    if cell.role == Role::Reference {
        "-"
    } else {
        space_name(cell.solver.space)
    }
}

impl SweepKind for Guidance {
    fn uses_references(&self) -> bool {
        false
    }
    fn prepare(&mut self, ctx: &Ctx) -> Result<(), String> {
        let class = &ctx.sweep.config.class;
        let solver = ctx.sweep.solvers[0];
        if ctx.sweep.config.guidance_rules.iter().any(|r| r == "cfg-pp")
            && (cfg_pp_twin(solver.solver).is_none() || solver.space != crate::choices::SpaceKind::Sigma)
        {
            return Err(format!(
                "guidance_rules: cfg-pp replaces the solver by its CFG++ twin, and {} ({}) has none \
                 (dpmpp-2m, ddim or euler in sigma space)",
                Solver::from(solver.solver).name(),
                space_name(solver.space)
            ));
        }
        let (n, weights) = (ctx.sweep.config.n, &ctx.sweep.config.guidance_weights);
        for (ti, target) in ctx.targets.iter().enumerate() {
            let cond = sub_mixture(target, class).map_err(|e| format!("class: {e}"))?;
            for &process in &ctx.sweep.processes {
                let p = process_of(process)?;
                let t_end = p.t_end_default();
                let level = (p.alpha(t_end), p.sigma(t_end));
                let mut rng = rand_pcg::Pcg64::seed_from_u64(7);
                let dirs = random_directions(ctx.sweep.config.projections, target.dim(), &mut rng);
                let tilted = if target.dim() == 2 {
                    weights
                        .iter()
                        .map(|&w| Ok(tilted_grid(target, class, w, level)?.sample(n, REFERENCE_SEED)))
                        .collect::<Result<_, String>>()?
                } else {
                    vec![]
                };
                let class = exact_set(&cond, &*p, n, REFERENCE_SEED);
                self.refs.push(Refs { target: ti, process, class, dirs, tilted });
            }
        }
        let c = &ctx.sweep.config;
        if c.guidance_rules.iter().any(|r| r == "classifier-net") {
            let path = std::path::PathBuf::from(&c.classifier_model);
            let bytes = std::fs::read(&path).map_err(|e| format!("classifier_model: {}: {e}", path.display()))?;
            let clf = scoresde::nn::NetClassifier::load(&path, &scoresde::nn::device())
                .map_err(|e| format!("classifier_model: {e}"))?;
            let groups = &clf.checkpoint().training.classes;
            let k = groups.iter().position(|g| g == class).ok_or_else(|| {
                format!("classifier_model: its classes are {groups:?}, none is the config's class {class:?}")
            })?;
            self.classifier = Some((path, k, super::resume::sha256(&bytes)));
        }
        if ctx.sweep.config.model.is_empty() {
            return Ok(());
        }
        let path = Path::new(&ctx.sweep.config.model);
        let net = NetScore::load(path, &scoresde::nn::device()).map_err(|e| {
            format!("model: {e} (train one with `scoresde train --classes ...`, or set \"model\": \"\")")
        })?;
        let groups = &net.checkpoint().train.classes;
        let c = groups
            .iter()
            .position(|g| g == class)
            .ok_or_else(|| format!("model: its classes are {groups:?}, none is the config's class {class:?}"))?;
        self.net = Some((net, c));
        Ok(())
    }
    fn cells(&self, ctx: &Ctx) -> Vec<Cell> {
        let (sweep, mut cells) = (ctx.sweep, vec![]);
        let (solver, seed) = (sweep.solvers[0], sweep.config.seeds[0]);
        for (target, t) in ctx.targets.iter().enumerate() {
            for &process in &sweep.processes {
                let k = sweep.config.guidance_weights.len();
                for (r, rule) in sweep.config.guidance_rules.iter().enumerate() {
                    for wi in 0..k {
                        let variant = r * k + wi;
                        for (si, &steps) in sweep.config.steps.iter().enumerate() {
                            let cell = Cell { variant, ..Cell::exact(target, process, solver, steps, seed) };
                            let last = si + 1 == sweep.config.steps.len();
                            if rule != "classifier-net" || last {
                                cells.push(cell.clone());
                            }
                            if self.net.is_some() && !rule.starts_with("classifier") {
                                cells.push(Cell { role: Role::Network, ..cell.clone() });
                            }
                            if t.dim() == 2 && r == 0 && si == 0 {
                                cells.push(Cell { role: Role::Reference, steps: 0, seed: 0, ..cell });
                            }
                        }
                    }
                }
            }
        }
        cells
    }
    fn key(&self, ctx: &Ctx, cell: &Cell) -> String {
        let p = process_of(cell.process).map(|p| p.name()).unwrap_or("?");
        cell_key(&ctx.names[cell.target], p, &solver_column(ctx, cell), space_column(cell), cell.steps, cell.seed)
    }
    fn fingerprint(&self, ctx: &Ctx) -> serde_json::Value {
        let c = &ctx.sweep.config;
        let classifier = match &self.classifier {
            Some((_, _, sha)) => serde_json::json!(sha),
            None => serde_json::Value::Null,
        };
        serde_json::json!({ "class": c.class, "classifier": classifier })
    }
    /// The floor of `w2_class`: fresh exact class draws of the same size against the reference.
    fn floor(&self, ctx: &Ctx) -> Result<Vec<Row>, String> {
        let mut rows = vec![];
        for refs in &self.refs {
            let target = &ctx.targets[refs.target];
            let p = process_of(refs.process)?;
            let cond = sub_mixture(target, &ctx.sweep.config.class).map_err(|e| e.to_string())?;
            for rep in 0..ctx.sweep.config.floor_reps as u64 {
                let x = exact_set(&cond, &*p, ctx.sweep.config.n, FRESH_SEED + rep);
                rows.push(Row {
                    target: ctx.names[refs.target].clone(),
                    process: p.name().into(),
                    solver: "exact-floor".into(),
                    space: "-".into(),
                    steps: 0,
                    nfe: 0,
                    seed: rep,
                    metric: "w2_class".into(),
                    value: sliced_w2_with_directions(x.view(), refs.class.view(), refs.dirs.view()),
                });
            }
        }
        Ok(rows)
    }
    fn complete(&self, metrics: &BTreeSet<&str>) -> bool {
        METRICS.iter().all(|m| metrics.contains(m))
    }
    fn run_cell(&self, ctx: &Ctx, cell: &Cell) -> Result<Vec<Row>, String> {
        let (target, class) = (&ctx.targets[cell.target], &ctx.sweep.config.class);
        let (rule, w) = rule_and_weight(ctx, cell);
        let rule = SweepRule::from_name(rule)?;
        let p = process_of(cell.process)?;
        let t_end = p.t_end_default();
        let (a, s) = (p.alpha(t_end), p.sigma(t_end));
        let refs = self.refs(cell)?;
        let wi = cell.variant % ctx.sweep.config.guidance_weights.len();
        let (mut values, x, nfe) = if cell.role == Role::Reference {
            let r = quadrature_radius(target);
            let (_, cov, in_class, ll) =
                tilted_moments_2d(target, class, w, (a, s), r, GRID).map_err(|e| e.to_string())?;
            let x = tilted_grid(target, class, w, (a, s))?.sample(ctx.sweep.config.n, FRESH_SEED);
            (vec![in_class, cov.diag().sum(), ll], x, 0)
        } else {
            let mut choice = cell.solver;
            if rule == SweepRule::CfgPp {
                choice.solver = cfg_pp_twin(choice.solver).ok_or("cfg-pp: the solver has no CFG++ twin")?;
            }
            let config = cell_config(ctx.sweep, &*p, choice, cell.steps)?;
            let err = |e: scoresde::ScoreError| e.to_string();
            let model: Box<dyn ScoreModel> = match (cell.role, &self.net, rule) {
                (Role::Network, Some((net, c)), SweepRule::Rule(GuidanceRule::Cfg) | SweepRule::CfgPp) => {
                    Box::new(net.guided(*c, w).map_err(err)?)
                }
                (Role::Network, Some((net, c)), SweepRule::Rule(r)) => {
                    let cond = net.guided(*c, 0.0).map_err(err)?;
                    let uncond = net.guided(*c, -1.0).map_err(err)?;
                    Box::new(Guided::new(Box::new(cond), Box::new(uncond), Rule::new(r, w)).map_err(err)?)
                }
                (Role::Network, _, _) => {
                    return Err("guidance: no model loaded, or classifier guidance with a network".into())
                }
                (_, _, SweepRule::ClassifierNet) => {
                    let (path, k, _) = self.classifier.as_ref().ok_or("classifier-net: no classifier_model loaded")?;
                    let clf = scoresde::nn::NetClassifier::load(path, &scoresde::nn::device()).map_err(err)?;
                    let uncond = Box::new(ExactScore::new(target.clone()));
                    Box::new(
                        ClassifierGuided::with(uncond, Box::new(clf.of_class(*k).map_err(err)?), 1.0 + w)
                            .map_err(err)?,
                    )
                }
                (_, _, SweepRule::Rule(GuidanceRule::Cfg) | SweepRule::CfgPp) => {
                    Box::new(GuidedExact::new(target, class, w).map_err(err)?)
                }
                (_, _, SweepRule::Rule(r)) => {
                    let cond = ExactScore::new(sub_mixture(target, class).map_err(err)?);
                    Box::new(
                        Guided::new(Box::new(cond), Box::new(ExactScore::new(target.clone())), Rule::new(r, w))
                            .map_err(err)?,
                    )
                }
                (_, _, SweepRule::Classifier) => Box::new(ClassifierGuided::new(target, class, 1.0 + w).map_err(err)?),
            };
            let model = &*model;
            let z = prior_noise(cell.seed, ctx.sweep.config.n, target.dim());
            let mut noise = KeyedNoise::new(cell.seed);
            let noise: Option<&mut dyn scoresde_solvers::NoiseSource> =
                if config.solver().is_stochastic() { Some(&mut noise) } else { None };
            let (x, report) =
                sample(&*p, model, &config, z.view(), noise, &mut no_observer).map_err(|e| format!("w = {w}: {e}"))?;
            let owner = target.most_responsible(a, s, x.view());
            let precision = owner.iter().filter(|k| class.contains(k)).count() as f64 / x.nrows() as f64;
            let diversity = sample_covariance(x.view()).diag().sum();
            let cond = sub_mixture(target, class).map_err(|e| format!("class: {e}"))?;
            let mut lc = Array1::zeros(x.nrows());
            cond.log_prob(a, s, x.view(), lc.view_mut());
            (vec![precision, diversity, lc.mean().unwrap_or(f64::NAN)], x, report.nfe)
        };
        values.push(sliced_w2_with_directions(x.view(), refs.class.view(), refs.dirs.view()));
        let mut names = METRICS.to_vec();
        if let Some(tilted) = refs.tilted.get(wi) {
            values.push(sliced_w2_with_directions(x.view(), tilted.view(), refs.dirs.view()));
            names.push(W2_TILTED);
        }
        let row = |(metric, value): (&str, f64)| Row {
            target: ctx.names[cell.target].clone(),
            process: p.name().into(),
            solver: solver_column(ctx, cell),
            space: space_column(cell).into(),
            steps: cell.steps,
            nfe,
            seed: cell.seed,
            metric: metric.into(),
            value,
        };
        Ok(names.into_iter().zip(values).map(row).collect())
    }
    fn finish(&self, ctx: &Ctx, rows: &[Row], out_dir: &Path, quiet: bool) -> Result<Finished, String> {
        let sweep = ctx.sweep;
        let name = &sweep.config.experiment;
        let class = &sweep.config.class;
        let choice = sweep.solvers[0];
        let solver = Solver::from(choice.solver);
        let all_steps = &sweep.config.steps;
        let steps = *all_steps.last().ok_or("guidance: no steps")?;
        let at: ByCell<'_> = rows
            .iter()
            .map(|r| ((&*r.target, &*r.process, &*r.solver, r.steps, &*r.metric), (r.value, r.nfe)))
            .collect();
        let value: BTreeMap<(&str, &str, &str, &str), f64> = at
            .iter()
            .filter(|((.., st, _), _)| *st == steps || *st == 0)
            .map(|(&(t, p, s, _, m), &(v, _))| ((t, p, s, m), v))
            .collect();
        let mut md = format!(
            "# {name}: classifier-free guidance with exact scores, class = components {class:?}\n\n\
             Sampler rows: {} ({}) with {steps} steps, N = {}. Tilted rows: the density \
             p(x|c)^(1+w) p(x)^(-w) by quadrature. Sliced W2 tables: at every steps, against draws \
             of the exact law of the same size.\n",
            solver.name(),
            space_name(choice.space),
            sweep.config.n
        );
        let mut figures = vec![];
        for tname in &ctx.names {
            for &pk in &sweep.processes {
                let p = process_of(pk)?;
                let curve = |column: &dyn Fn(f64) -> String| -> Curve {
                    sweep
                        .config
                        .guidance_weights
                        .iter()
                        .filter_map(|&w| {
                            let c = column(w);
                            let v = [METRICS[0], METRICS[1], METRICS[2]]
                                .map(|m| value.get(&(&**tname, p.name(), &*c, m)).copied());
                            v.iter().all(Option::is_some).then(|| (w, v.map(|x| x.unwrap_or(f64::NAN))))
                        })
                        .collect()
                };
                let sampled = curve(&|w| format!("{}@w={w}", solver.name()));
                let netted = curve(&|w| format!("{}+net@w={w}", solver.name()));
                let tilted = curve(&|w| format!("exact-tilted@w={w}"));
                let others: Vec<(&String, Curve)> = sweep
                    .config
                    .guidance_rules
                    .iter()
                    .filter(|r| *r != "cfg")
                    .map(|r| (r, curve(&|w| rule_column(solver.name(), r, false, w))))
                    .collect();
                md.push_str(&format!(
                    "\n## {tname}, {}\n\n| w | precision | tilted precision | diversity | tilted diversity | \
                     mean log p(x|c) | tilted |\n|---:|---:|---:|---:|---:|---:|---:|\n",
                    p.name()
                ));
                rows_beside_tilted(&mut md, &sampled, &tilted);
                for (rule, c) in others.iter().filter(|(_, c)| !c.is_empty()) {
                    let what = match rule.as_str() {
                        "classifier" => "classifier guidance, exact classifier, scale 1 + w",
                        "classifier-net" => "classifier guidance, trained classifier, scale 1 + w",
                        "cfg-pp" => "CFG++: the solver's CFG++ twin, lambda = 1 + w",
                        other => other,
                    };
                    md.push_str(&format!(
                        "\nRule `{rule}` ({what}), exact scores:\n\n| w | precision | tilted precision | diversity | \
                         tilted diversity | mean log p(x|c) | tilted |\n|---:|---:|---:|---:|---:|---:|---:|\n"
                    ));
                    rows_beside_tilted(&mut md, c, &tilted);
                }
                if !netted.is_empty() {
                    md.push_str(&format!(
                        "\nThe same with the network `{}` (learned conditional and unconditional eps):\n\n\
                         | w | precision | exact-score precision | diversity | exact-score diversity |\n\
                         |---:|---:|---:|---:|---:|\n",
                        sweep.config.model
                    ));
                    for ((w, v), (_, e)) in netted.iter().zip(&sampled) {
                        md.push_str(&format!("| {w} | {:.4} | {:.4} | {:.4} | {:.4} |\n", v[0], e[0], v[1], e[1]));
                    }
                }
                w2_tables(
                    &mut md,
                    (rows, &at),
                    (tname, p.name()),
                    (solver.name(), all_steps),
                    &sweep.config,
                    !netted.is_empty(),
                );
                if prepare(out_dir)? {
                    let to_line = |c: &Curve| c.iter().map(|(w, v)| (1.0 + w, v[1])).filter(|p| p.1 > 0.0).collect();
                    let mut lines: Lines = Default::default();
                    let solver_label = label(solver.name(), space_name(choice.space));
                    lines.insert(solver_label.clone(), to_line(&sampled));
                    if !tilted.is_empty() {
                        lines.insert("tilted density (quadrature)".into(), to_line(&tilted));
                    }
                    if !netted.is_empty() {
                        lines.insert(format!("{solver_label} + network"), to_line(&netted));
                    }
                    for (rule, c) in others.iter().filter(|(_, c)| !c.is_empty()) {
                        lines.insert(format!("{solver_label}, {rule}"), to_line(c));
                    }
                    let stem = out_dir.join(format!("{name}_{tname}_{}", p.name()));
                    let title = format!("{name}: {tname}, {} (diversity against 1 + w)", p.name());
                    figures.extend(draw_both(&stem, &title, ("1 + w", "trace of the covariance"), &lines, None)?);
                }
            }
        }
        let tables = vec![super::output::write_table(out_dir, &format!("{name}.md"), &md)?];
        if !quiet {
            println!("{md}");
        }
        Ok(Finished { figures, tables, ..Default::default() })
    }
}

/// Sliced W2 to the tilted density (d = 2) and to the class law, rule x weight against steps,
/// each beside its floor (the mean over fresh exact draws of the same size).
fn w2_tables(
    md: &mut String,
    (rows, at): (&[Row], &ByCell<'_>),
    (tname, pname): (&str, &str),
    (solver, all_steps): (&str, &[usize]),
    config: &super::config::SweepConfig,
    with_net: bool,
) {
    let get = |col: &str, st: usize, metric: &str| at.get(&(tname, pname, col, st, metric)).copied();
    let nfe = |st: usize| get(&rule_column(solver, "cfg", false, config.guidance_weights[0]), st, "w2_class");
    let header: String = all_steps
        .iter()
        .map(|&st| nfe(st).map(|(_, n)| format!(" NFE {n} |")).unwrap_or(format!(" {st} steps |")))
        .collect();
    let rules: Vec<(&str, bool)> = config
        .guidance_rules
        .iter()
        .map(|r| (r.as_str(), false))
        .chain(
            config
                .guidance_rules
                .iter()
                .filter(|r| with_net && !r.starts_with("classifier"))
                .map(|r| (r.as_str(), true)),
        )
        .collect();
    let floors: Vec<f64> = rows
        .iter()
        .filter(|r| r.target == tname && r.process == pname && r.solver == "exact-floor" && r.metric == "w2_class")
        .map(|r| r.value)
        .collect();
    let class_floor = floors.iter().sum::<f64>() / floors.len().max(1) as f64;
    for (metric, what) in
        [(W2_TILTED, "the tilted density q_w (quadrature draws)"), ("w2_class", "the class law p(x|c)")]
    {
        let tilted_at = |w: f64, m: &str| get(&format!("exact-tilted@w={w}"), 0, m).map(|(v, _)| v);
        if metric == W2_TILTED && tilted_at(config.guidance_weights[0], W2_TILTED).is_none() {
            continue;
        }
        let last = if metric == W2_TILTED { "floor" } else { "q_w itself" };
        md.push_str(&format!(
            "\nSliced W2 to {what}{}:\n\n| rule | w |{header} {last} |\n|---|---:|{}---:|\n",
            if metric == "w2_class" { format!(" (floor {class_floor:.4})") } else { String::new() },
            "---:|".repeat(all_steps.len())
        ));
        for &(rule, net) in &rules {
            for &w in &config.guidance_weights {
                let col = rule_column(solver, rule, net, w);
                let cells: String = all_steps
                    .iter()
                    .map(|&st| get(&col, st, metric).map(|(v, _)| format!(" {v:.4} |")).unwrap_or(" - |".into()))
                    .collect();
                let end = tilted_at(w, metric).map(|v| format!("{v:.4}")).unwrap_or("-".into());
                let name = if net { format!("{rule} + net") } else { rule.to_string() };
                md.push_str(&format!("| {name} | {w} |{cells} {end} |\n"));
            }
        }
    }
}
