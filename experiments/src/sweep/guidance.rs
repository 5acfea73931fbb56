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
//! Writes `{experiment}.csv` (long format), `{experiment}.md` and a diversity-against-(1 + w)
//! figure.

use std::path::Path;

use ndarray::Array1;
use scoresde::guidance::{sub_mixture, tilted_moments_2d, GuidedExact};
use scoresde::metrics::sample_covariance;
use scoresde::sampler::{prior_noise, sample, Solver};
use scoresde::targets;
use scoresde_solvers::{no_observer, KeyedNoise};

use super::cells::{cell_config, process_of};
use super::config::Sweep;
use super::output::{write_table_run, HEADER};
use super::plot::{draw_both, label, prepare, Lines};
use crate::choices::space_name;

/// (precision, diversity, mean log p(x | c)) per weight.
type Curve = Vec<(f64, [f64; 3])>;

/// Runs the experiment.
pub fn run(sweep: &Sweep, out_dir: &Path, quiet: bool) -> Result<(), String> {
    let name = &sweep.config.experiment;
    let class = &sweep.config.class;
    let solver_choice = sweep.solvers[0];
    let steps = sweep.config.steps[0];
    let seed = sweep.config.seeds[0];
    let mut csv = format!("{HEADER}\n");
    let mut md = format!(
        "# {name}: classifier-free guidance with exact scores, class = components {class:?}\n\n\
         Sampler rows: {} ({}) with {steps} steps, N = {}. Tilted rows: the density \
         p(x|c)^(1+w) p(x)^(-w) by quadrature.\n",
        Solver::from(solver_choice.solver).name(),
        space_name(solver_choice.space),
        sweep.config.n
    );
    let started = std::time::Instant::now();
    let mut figures = vec![];
    let net = if sweep.config.model.is_empty() {
        None
    } else {
        let path = Path::new(&sweep.config.model);
        Some(scoresde::nn::NetScore::load(path, &scoresde::nn::device()).map_err(|e| {
            format!("model: {e} (train one with `scoresde train --classes ...`, or set \"model\": \"\")")
        })?)
    };
    for tname in &sweep.config.targets {
        let target = targets::load(tname).map_err(|e| e.to_string())?;
        let cond = sub_mixture(&target, class).map_err(|e| format!("class: {e}"))?;
        let tname = Path::new(tname).file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or(tname.clone());
        for &pk in &sweep.processes {
            let p = process_of(pk)?;
            let config = cell_config(sweep, &*p, solver_choice, steps)?;
            let solver = config.solver();
            let t_end = p.t_end_default();
            let (a, s) = (p.alpha(t_end), p.sigma(t_end));
            let mut sampled: Curve = vec![];
            let mut tilted: Curve = vec![];
            let net_class = match &net {
                Some(n) => {
                    let groups = &n.checkpoint().train.classes;
                    let c = groups.iter().position(|g| g == class).ok_or_else(|| {
                        format!("model: its classes are {groups:?}, none is the config's class {class:?}")
                    })?;
                    Some(c)
                }
                None => None,
            };
            let mut netted: Curve = vec![];
            for &w in &sweep.config.guidance_weights {
                let exact_model = GuidedExact::new(&target, class, w).map_err(|e| e.to_string())?;
                let guided_net = match (&net, net_class) {
                    (Some(n), Some(c)) => Some(n.guided(c, w).map_err(|e| e.to_string())?),
                    _ => None,
                };
                let runs: Vec<(&dyn scoresde::model::ScoreModel, bool)> =
                    std::iter::once((&exact_model as &dyn scoresde::model::ScoreModel, false))
                        .chain(guided_net.as_ref().map(|m| (m as &dyn scoresde::model::ScoreModel, true)))
                        .collect();
                for (model, is_net) in runs {
                    let z = prior_noise(seed, sweep.config.n, target.dim());
                    let mut noise = KeyedNoise::new(seed);
                    let noise: Option<&mut dyn scoresde_solvers::NoiseSource> =
                        if solver.is_stochastic() { Some(&mut noise) } else { None };
                    let (x, report) = sample(&*p, model, &config, z.view(), noise, &mut no_observer)
                        .map_err(|e| format!("w = {w}: {e}"))?;
                    let owner = target.most_responsible(a, s, x.view());
                    let precision = owner.iter().filter(|k| class.contains(k)).count() as f64 / x.nrows() as f64;
                    let diversity = sample_covariance(x.view()).diag().sum();
                    let mut lc = Array1::zeros(x.nrows());
                    cond.log_prob(a, s, x.view(), lc.view_mut());
                    let values = [precision, diversity, lc.mean().unwrap_or(f64::NAN)];
                    if is_net {
                        netted.push((w, values))
                    } else {
                        sampled.push((w, values))
                    };
                    let label_s = format!("{}{}@w={w}", solver.name(), if is_net { "+net" } else { "" });
                    for (metric, v) in ["precision", "diversity", "mean_log_p_cond"].iter().zip(values) {
                        csv.push_str(&format!(
                            "{name},{tname},{},{label_s},{},{},{steps},{},{seed},{metric},{v:e}\n",
                            p.name(),
                            space_name(solver_choice.space),
                            sweep.config.schedule,
                            report.nfe
                        ));
                    }
                }
                if target.dim() == 2 {
                    let r = (0..target.n_components())
                        .map(|k| {
                            let c = target.component_covariance(k);
                            let m = target.means().row(k).iter().map(|v| v * v).sum::<f64>().sqrt();
                            m + 8.0 * c.diag().iter().cloned().fold(0.0, f64::max).sqrt()
                        })
                        .fold(0.0, f64::max)
                        + 1.0;
                    let (_, cov, in_class, ll) =
                        tilted_moments_2d(&target, class, w, (a, s), r, 600).map_err(|e| e.to_string())?;
                    let values = [in_class, cov.diag().sum(), ll];
                    tilted.push((w, values));
                    for (metric, v) in ["precision", "diversity", "mean_log_p_cond"].iter().zip(values) {
                        csv.push_str(&format!(
                            "{name},{tname},{},exact-tilted@w={w},-,-,0,0,0,{metric},{v:e}\n",
                            p.name()
                        ));
                    }
                }
            }
            md.push_str(&format!(
                "\n## {tname}, {}\n\n| w | precision | tilted precision | diversity | tilted diversity | \
                 mean log p(x|c) | tilted |\n|---:|---:|---:|---:|---:|---:|---:|\n",
                p.name()
            ));
            for (i, (w, v)) in sampled.iter().enumerate() {
                let t = tilted.get(i).map(|(_, t)| *t);
                let f = |j: usize| t.map(|t| format!("{:.4}", t[j])).unwrap_or("-".into());
                md.push_str(&format!(
                    "| {w} | {:.4} | {} | {:.4} | {} | {:.3} | {} |\n",
                    v[0],
                    f(0),
                    v[1],
                    f(1),
                    v[2],
                    f(2)
                ));
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
                lines.insert(label(solver.name(), space_name(solver_choice.space)), to_line(&sampled));
                if !tilted.is_empty() {
                    lines.insert("tilted density (quadrature)".into(), to_line(&tilted));
                }
                if !netted.is_empty() {
                    lines.insert(
                        format!("{} + network", label(solver.name(), space_name(solver_choice.space))),
                        to_line(&netted),
                    );
                }
                let stem = out_dir.join(format!("{name}_{tname}_{}", p.name()));
                let title = format!("{name}: {tname}, {} (diversity against 1 + w)", p.name());
                figures.extend(draw_both(&stem, &title, ("1 + w", "trace of the covariance"), &lines, None)?);
            }
        }
    }
    write_table_run(sweep, out_dir, &csv, &md, &figures, started, quiet)
}
