//! Tables of a sweep: the solver comparison at fixed NFE budgets (Markdown and LaTeX, the best
//! value of each column in bold) and the fitted convergence orders against theory (Markdown).

use std::collections::BTreeMap;

use scoresde::sampler::Solver;

use super::cells::process_of;
use super::config::{SolverChoice, Sweep};
use super::output::Row;
use super::plot::{collect, label, tail_slope, XAxis};
use crate::choices::{space_name, ProcessKind};

/// For each process and solver: the budgets with the most steps whose NFE fits, as
/// `(budget, steps, nfe)`; `None` where even one step costs more than the budget.
pub type BudgetPlan = Vec<(ProcessKind, SolverChoice, Vec<(usize, Option<(usize, usize)>)>)>;

/// Three significant digits in scientific notation.
fn sci(v: f64) -> String {
    format!("{v:.2e}")
}

/// One table cell: the value, and the NFE it used when that differs from the column's budget.
#[derive(Clone)]
struct Entry {
    value: f64,
    nfe: usize,
}

/// (target, process, solver label, steps).
type Key = (String, String, String, usize);

/// Mean over seeds of `metric` per (target, process, solver label, steps), with the NFE.
fn means(rows: &[Row], metric: &str) -> BTreeMap<Key, (f64, usize)> {
    let mut acc: BTreeMap<Key, (f64, usize, usize)> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.metric == metric && r.solver != "exact-floor") {
        let e = acc.entry((r.target.clone(), r.process.clone(), label(&r.solver, &r.space), r.steps)).or_default();
        e.0 += r.value;
        e.1 += 1;
        e.2 = r.nfe;
    }
    acc.into_iter().map(|(k, (sum, n, nfe))| (k, (sum / n as f64, nfe))).collect()
}

/// The Markdown and LaTeX solver tables: one per metric of `table_metrics` and (target,
/// process), one row per solver, one column per NFE budget (mean over seeds), lower is better.
pub fn solver_tables(rows: &[Row], sweep: &Sweep, targets: &[String], plan: &BudgetPlan) -> (String, String) {
    let mut md = String::new();
    let mut tex = String::from("% scoresde sweep solver tables; needs \\usepackage{booktabs}\n");
    for metric in &sweep.config.table_metrics {
        let (m, t) = solver_table(rows, sweep, targets, plan, metric);
        md.push_str(&m);
        tex.push_str(&t);
    }
    (md, tex)
}

fn solver_table(rows: &[Row], sweep: &Sweep, targets: &[String], plan: &BudgetPlan, metric: &str) -> (String, String) {
    let values = means(rows, metric);
    let floors = collect(rows, metric, XAxis::Nfe);
    let budgets = &sweep.config.budgets;
    let mut md = format!(
        "# {}: {metric} at fixed NFE budgets\n\nLower is better; the best of each column is in bold; a \
         superscript is the NFE used where a solver's steps do not fill the budget exactly; - where the \
         metric does not apply (path_error: deterministic solvers only) or one step exceeds the budget.\n",
        sweep.config.experiment
    );
    let mut tex = String::new();
    for target in targets {
        for &pk in &sweep.processes {
            let Ok(p) = process_of(pk) else { continue };
            let process = p.name().to_string();
            let table: Vec<(String, Vec<Option<Entry>>)> = plan
                .iter()
                .filter(|(k, ..)| *k == pk)
                .map(|(_, s, cols)| {
                    let name = label(Solver::from(s.solver).name(), space_name(s.space));
                    let entries = cols
                        .iter()
                        .map(|(_, found)| {
                            let (steps, _) = (*found)?;
                            let &(value, nfe) = values.get(&(target.clone(), process.clone(), name.clone(), steps))?;
                            Some(Entry { value, nfe })
                        })
                        .collect();
                    (name, entries)
                })
                .filter(|(_, entries): &(String, Vec<Option<Entry>>)| entries.iter().any(Option::is_some))
                .collect();
            let best: Vec<f64> = (0..budgets.len())
                .map(|j| table.iter().filter_map(|(_, e)| e[j].as_ref().map(|e| e.value)).fold(f64::INFINITY, f64::min))
                .collect();
            let floor = floors.get(&(target.clone(), process.clone())).map(|(_, m, sd)| (*m, *sd));
            md.push_str(&format!("\n## {target}, {process}\n\n| solver |"));
            for b in budgets {
                md.push_str(&format!(" NFE {b} |"));
            }
            md.push_str(&format!("\n|---|{}\n", "---:|".repeat(budgets.len())));
            tex.push_str(&format!(
                "\n\\begin{{table}}[t]\n\\centering\n\\caption{{{}: {} at fixed NFE, {}, {} process.}}\n\
                 \\begin{{tabular}}{{l{}}}\n\\toprule\nsolver",
                sweep.config.experiment.replace('_', "\\_"),
                metric.replace('_', "\\_"),
                target,
                process,
                "r".repeat(budgets.len())
            ));
            for b in budgets {
                tex.push_str(&format!(" & NFE {b}"));
            }
            tex.push_str(" \\\\\n\\midrule\n");
            for (name, entries) in &table {
                md.push_str(&format!("| {name} |"));
                tex.push_str(&name.replace('_', "\\_"));
                for ((entry, &b), &best) in entries.iter().zip(budgets).zip(&best) {
                    let Some(e) = entry else {
                        md.push_str(" - |");
                        tex.push_str(" & --");
                        continue;
                    };
                    let bold = e.value == best;
                    let v = sci(e.value);
                    let (md_nfe, tex_nfe) = if e.nfe != b {
                        (format!("<sup>{}</sup>", e.nfe), format!("$^{{{}}}$", e.nfe))
                    } else {
                        Default::default()
                    };
                    if bold {
                        md.push_str(&format!(" **{v}**{md_nfe} |"));
                        tex.push_str(&format!(" & \\textbf{{{v}}}{tex_nfe}"));
                    } else {
                        md.push_str(&format!(" {v}{md_nfe} |"));
                        tex.push_str(&format!(" & {v}{tex_nfe}"));
                    }
                }
                md.push('\n');
                tex.push_str(" \\\\\n");
            }
            if let Some((m, sd)) = floor.filter(|(m, _)| *m > 0.0) {
                let cell = format!("{} +- {}", sci(m), sci(sd));
                md.push_str(&format!("| *Monte Carlo floor* |{}\n", format!(" {cell} |").repeat(budgets.len())));
                let tcell = format!("{} $\\pm$ {}", sci(m), sci(sd));
                tex.push_str(&format!(
                    "\\midrule\nMonte Carlo floor{} \\\\\n",
                    format!(" & {tcell}").repeat(budgets.len())
                ));
            }
            tex.push_str("\\bottomrule\n\\end{tabular}\n\\end{table}\n");
        }
    }
    (md, tex)
}

/// Smallest error used in an order fit, per metric: the exact W2 bottoms out near 1e-7 (it is
/// the square root of a cancelling trace: sqrt(machine epsilon x the covariance scale)), and the
/// tight reference ODE solve of the mixtures (rtol = atol = 1e-10) is good to about 1e-9.
const FIT_FLOORS: [(&str, f64); 2] = [("w2_exact", 1e-6), ("path_error", 1e-8)];

/// The fitted convergence orders (minus the slope of log error against log steps over the four
/// largest step counts above [`FIT_FLOORS`]) next to each solver's theoretical order, as Markdown
/// and as JSON `{target/process/solver (space): order}`.
pub fn convergence_orders(rows: &[Row], sweep: &Sweep, targets: &[String]) -> (String, serde_json::Value) {
    let mut columns = vec![];
    for target in targets {
        for &pk in &sweep.processes {
            if let Ok(p) = process_of(pk) {
                columns.push((target.clone(), p.name().to_string()));
            }
        }
    }
    let mut fitted: BTreeMap<(String, String, String), f64> = BTreeMap::new();
    for (metric, fit_floor) in FIT_FLOORS {
        for ((target, process), (lines, ..)) in collect(rows, metric, XAxis::Steps) {
            for (solver, pts) in lines {
                if let Some(s) = tail_slope(&pts, fit_floor) {
                    fitted.insert((target.clone(), process.clone(), solver), -s);
                }
            }
        }
    }
    let mut md = format!(
        "# {}: fitted order (slope of log error against log steps) against theory\n\n\
         Error: exact W2 of the sampler's output law on single-Gaussian targets (ODE solvers: to the \
         exact flow law; SDE solvers: to the target law, i.e. weak error), mean distance to a tight \
         Dormand-Prince solution from the same prior draws on mixtures (ODE solvers only).\n\n| solver | theory |",
        sweep.config.experiment
    );
    for (t, p) in &columns {
        md.push_str(&format!(" {t}, {p} |"));
    }
    md.push_str(&format!("\n|---|---:|{}\n", "---:|".repeat(columns.len())));
    let mut json = serde_json::Map::new();
    for s in &sweep.solvers {
        let solver = Solver::from(s.solver);
        let name = label(solver.name(), space_name(s.space));
        md.push_str(&format!("| {name} | {} |", solver.order()));
        for (t, p) in &columns {
            match fitted.get(&(t.clone(), p.clone(), name.clone())) {
                Some(o) => {
                    md.push_str(&format!(" {o:.2} |"));
                    json.insert(format!("{t}/{p}/{name}"), serde_json::json!((o * 100.0).round() / 100.0));
                }
                None => md.push_str(" - |"),
            }
        }
        md.push('\n');
    }
    (md, serde_json::Value::Object(json))
}
