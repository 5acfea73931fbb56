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
//! `{solver}+{rule}@w=..`: guidance rescale, APG, CFG-Zero*, and classifier guidance with the
//! exact classifier at scale 1 + w, which is CFG at w up to round-off).
//! Each (target, process, rule, weight) gives up to three cells (exact score, network, tilted
//! density, the last once per weight), so the experiment shards like the others. Writes `{experiment}.csv` (long format),
//! `{experiment}.md` and a diversity-against-(1 + w) figure.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use ndarray::Array1;
use scoresde::guidance::{
    sub_mixture, tilted_moments_2d, ClassifierGuided, Guidance as Rule, GuidanceRule, Guided, GuidedExact,
};
use scoresde::metrics::sample_covariance;
use scoresde::model::ExactScore;
use scoresde::model::ScoreModel;
use scoresde::nn::NetScore;
use scoresde::sampler::{prior_noise, sample, Solver};
use scoresde_solvers::{no_observer, KeyedNoise};

use super::cells::{cell_config, process_of, Cell, Ctx, Role};
use super::driver::{Finished, SweepKind};
use super::output::{cell_key, Row};
use super::plot::{draw_both, label, prepare, Lines};
use crate::choices::space_name;

/// The metrics of every cell, in CSV order.
const METRICS: [&str; 3] = ["precision", "diversity", "mean_log_p_cond"];

/// (weight, [precision, diversity, mean log p(x | c)]) per weight.
type Curve = Vec<(f64, [f64; 3])>;

/// The experiment's state: the network and the index of the config's class among its classes.
#[derive(Default)]
pub struct Guidance {
    net: Option<(NetScore, usize)>,
}

/// A rule of the sweep's `guidance_rules`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SweepRule {
    /// A rule combining conditional and unconditional predictions.
    Rule(GuidanceRule),
    /// Classifier guidance with the exact classifier at scale 1 + w.
    Classifier,
}

impl SweepRule {
    /// The rule called `name` (with the parameters the module docs give).
    pub fn from_name(name: &str) -> Result<Self, String> {
        Ok(match name {
            "cfg" => Self::Rule(GuidanceRule::Cfg),
            "rescale" => Self::Rule(GuidanceRule::Rescale { phi: 0.7 }),
            "apg" => Self::Rule(GuidanceRule::Apg { eta: 0.0, norm_threshold: 0.0 }),
            "cfg-zero-star" => Self::Rule(GuidanceRule::CfgZeroStar),
            "classifier" => Self::Classifier,
            other => {
                return Err(format!("{other:?}: unknown (expected cfg, rescale, apg, cfg-zero-star or classifier)"))
            }
        })
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
        for target in &ctx.targets {
            sub_mixture(target, class).map_err(|e| format!("class: {e}"))?;
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
        let (solver, steps, seed) = (sweep.solvers[0], sweep.config.steps[0], sweep.config.seeds[0]);
        for (target, t) in ctx.targets.iter().enumerate() {
            for &process in &sweep.processes {
                let k = sweep.config.guidance_weights.len();
                for (r, rule) in sweep.config.guidance_rules.iter().enumerate() {
                    for wi in 0..k {
                        let variant = r * k + wi;
                        let cell = Cell { variant, ..Cell::exact(target, process, solver, steps, seed) };
                        cells.push(cell.clone());
                        if self.net.is_some() && rule != "classifier" {
                            cells.push(Cell { role: Role::Network, ..cell.clone() });
                        }
                        if t.dim() == 2 && r == 0 {
                            cells.push(Cell { role: Role::Reference, steps: 0, seed: 0, ..cell });
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
        serde_json::json!({ "class": ctx.sweep.config.class })
    }
    fn floor(&self, _ctx: &Ctx) -> Result<Vec<Row>, String> {
        Ok(vec![])
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
        let (values, nfe) = if cell.role == Role::Reference {
            let r = (0..target.n_components())
                .map(|k| {
                    let c = target.component_covariance(k);
                    let m = target.means().row(k).iter().map(|v| v * v).sum::<f64>().sqrt();
                    m + 8.0 * c.diag().iter().cloned().fold(0.0, f64::max).sqrt()
                })
                .fold(0.0, f64::max)
                + 1.0;
            let (_, cov, in_class, ll) =
                tilted_moments_2d(target, class, w, (a, s), r, 600).map_err(|e| e.to_string())?;
            ([in_class, cov.diag().sum(), ll], 0)
        } else {
            let config = cell_config(ctx.sweep, &*p, cell.solver, cell.steps)?;
            let err = |e: scoresde::ScoreError| e.to_string();
            let model: Box<dyn ScoreModel> = match (cell.role, &self.net, rule) {
                (Role::Network, Some((net, c)), SweepRule::Rule(GuidanceRule::Cfg)) => {
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
                (_, _, SweepRule::Rule(GuidanceRule::Cfg)) => {
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
            ([precision, diversity, lc.mean().unwrap_or(f64::NAN)], report.nfe)
        };
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
        Ok(METRICS.into_iter().zip(values).map(row).collect())
    }
    fn finish(&self, ctx: &Ctx, rows: &[Row], out_dir: &Path, quiet: bool) -> Result<Finished, String> {
        let sweep = ctx.sweep;
        let name = &sweep.config.experiment;
        let class = &sweep.config.class;
        let choice = sweep.solvers[0];
        let solver = Solver::from(choice.solver);
        let steps = sweep.config.steps[0];
        let value: BTreeMap<(&str, &str, &str, &str), f64> =
            rows.iter().map(|r| ((&*r.target, &*r.process, &*r.solver, &*r.metric), r.value)).collect();
        let mut md = format!(
            "# {name}: classifier-free guidance with exact scores, class = components {class:?}\n\n\
             Sampler rows: {} ({}) with {steps} steps, N = {}. Tilted rows: the density \
             p(x|c)^(1+w) p(x)^(-w) by quadrature.\n",
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
                            let v = METRICS.map(|m| value.get(&(&**tname, p.name(), &*c, m)).copied());
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
                    let what = if *rule == "classifier" {
                        "classifier guidance, exact classifier, scale 1 + w"
                    } else {
                        rule.as_str()
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
