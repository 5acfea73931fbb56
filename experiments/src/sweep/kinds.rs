//! The cell-based experiment kinds, each a [`SweepKind`]: `steps_vs_quality` (the headline
//! figure), `convergence` (MC-free discretisation error against steps, fitted orders as a
//! Markdown table), `solver_table` (a metric at NFE budgets as Markdown and LaTeX) and
//! `trained_vs_exact` (the same cells with the exact score and with a trained network).
//!
//! Deterministic solvers also get `path_error`, the mean distance to a tight Dormand-Prince
//! solution from the same prior draws: discretisation error alone, whose slope against NFE is
//! the solver's order.

use std::collections::BTreeSet;
use std::path::Path;

use scoresde::gaussian::{exact_flow_law, exact_output_law, target_law, w2_gaussian};
use scoresde::gmm::GaussianMixture;
use scoresde::nn::NetScore;
use scoresde::process::ProcessSpec;
use scoresde::sampler::Solver;

use super::cells::{cell_config, nfe_of, process_of, product, sample_cell, Cell, Ctx, Role};
use super::config::Sweep;
use super::driver::{Finished, SweepKind};
use super::output::{write_table, Row};
use super::plot;
use super::table::{self, BudgetPlan};
use crate::choices::{space_name, ProcessArgs};

/// Sample metrics against NFE per solver, with the Monte Carlo floor.
pub struct StepsVsQuality;

impl SweepKind for StepsVsQuality {
    fn cells(&self, ctx: &Ctx) -> Vec<Cell> {
        product(ctx, false, |_, _| ctx.sweep.config.steps.clone())
    }
    fn run_cell(&self, ctx: &Ctx, cell: &Cell) -> Result<Vec<Row>, String> {
        sample_cell(ctx, cell, true, None)
    }
    fn finish(&self, ctx: &Ctx, rows: &[Row], out_dir: &Path, _quiet: bool) -> Result<Finished, String> {
        let figures = plot::draw_all(rows, &ctx.sweep.config.experiment, out_dir)?;
        Ok(Finished { figures, ..Default::default() })
    }
    fn shows_slopes(&self) -> bool {
        true
    }
}

/// Discretisation error against steps: exact W2 of the output law on single Gaussians, the
/// distance to the tight ODE solution on mixtures (ODE solvers only). No Monte Carlo floor.
pub struct Convergence;

impl SweepKind for Convergence {
    fn cells(&self, ctx: &Ctx) -> Vec<Cell> {
        product(ctx, false, |_, _| ctx.sweep.config.steps.clone())
    }
    fn floor(&self, _ctx: &Ctx) -> Result<Vec<Row>, String> {
        Ok(vec![])
    }
    fn complete(&self, _metrics: &BTreeSet<&str>) -> bool {
        true
    }
    fn run_cell(&self, ctx: &Ctx, cell: &Cell) -> Result<Vec<Row>, String> {
        let target = &ctx.targets[cell.target];
        if target.n_components() != 1 {
            // On a mixture only the ODE solvers have an MC-free error (the distance to the exact path).
            let stochastic = Solver::from(cell.solver.solver).is_stochastic();
            return if stochastic { Ok(vec![]) } else { sample_cell(ctx, cell, false, None) };
        }
        let p = process_of(cell.process)?;
        let config = cell_config(ctx.sweep, &*p, cell.solver, cell.steps)?;
        let solver = config.solver();
        let context = |e: &dyn std::fmt::Display| {
            format!("{} {} {} {} steps: {e}", ctx.names[cell.target], p.name(), solver.name(), cell.steps)
        };
        // Exact law of the sampler's output: no Monte Carlo error at all.
        let law = exact_output_law(&*p, target, &config).map_err(|e| context(&e))?;
        let (t0, t1) = (p.t_max(), p.t_end_default());
        let exact = if solver.is_stochastic() {
            target_law(target, p.alpha(t1), p.sigma(t1))
        } else {
            exact_flow_law(&*p, target, t0, t1).map_err(|e| context(&e))?
        };
        let nfe = nfe_of(&*p, target, &config)?;
        Ok(ctx.rows(cell, p.name(), solver, nfe, vec![("w2_exact", w2_gaussian(&law, &exact))]))
    }
    fn finish(&self, ctx: &Ctx, rows: &[Row], out_dir: &Path, quiet: bool) -> Result<Finished, String> {
        let name = &ctx.sweep.config.experiment;
        let figures = plot::draw_convergence(rows, name, out_dir)?;
        let (md, fitted) = table::convergence_orders(rows, ctx.sweep, &ctx.names);
        let tables = vec![write_table(out_dir, &format!("{name}_orders.md"), &md)?];
        if !quiet {
            println!("{md}");
        }
        let mut sidecar = serde_json::Map::new();
        sidecar.insert("fitted_orders_vs_steps".into(), fitted);
        Ok(Finished { figures, tables, sidecar })
    }
}

/// A metric at fixed NFE budgets: each solver gets the most steps whose NFE fits each budget.
#[derive(Default)]
pub struct SolverTable {
    plan: BudgetPlan,
}

/// For each process and solver of the sweep, the step count of each budget (on `target`).
fn plan_budgets(sweep: &Sweep, target: &GaussianMixture) -> Result<BudgetPlan, String> {
    let mut plan = vec![];
    for &pk in &sweep.processes {
        let p = process_of(pk)?;
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

impl SweepKind for SolverTable {
    fn prepare(&mut self, ctx: &Ctx) -> Result<(), String> {
        let target = ctx.targets.first().ok_or("targets: must not be empty")?;
        self.plan = plan_budgets(ctx.sweep, target)?;
        Ok(())
    }
    fn cells(&self, ctx: &Ctx) -> Vec<Cell> {
        product(ctx, false, |process, solver| {
            let cols = self.plan.iter().find(|(p, s, _)| *p == process && *s == solver).map(|(_, _, c)| c);
            let mut steps: Vec<usize> = cols.into_iter().flatten().filter_map(|(_, f)| f.map(|(s, _)| s)).collect();
            steps.sort_unstable();
            steps.dedup();
            steps
        })
    }
    fn run_cell(&self, ctx: &Ctx, cell: &Cell) -> Result<Vec<Row>, String> {
        sample_cell(ctx, cell, true, None)
    }
    fn sidecar(&self) -> serde_json::Map<String, serde_json::Value> {
        let budget_steps: Vec<serde_json::Value> = self
            .plan
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
        let mut fields = serde_json::Map::new();
        fields.insert("budget_steps".into(), budget_steps.into());
        fields
    }
    fn finish(&self, ctx: &Ctx, rows: &[Row], out_dir: &Path, quiet: bool) -> Result<Finished, String> {
        let name = &ctx.sweep.config.experiment;
        let figures = plot::draw_all(rows, name, out_dir)?;
        let (md, tex) = table::solver_tables(rows, ctx.sweep, &ctx.names, &self.plan);
        let tables = vec![
            write_table(out_dir, &format!("{name}.md"), &md)?,
            write_table(out_dir, &format!("{name}.tex"), &tex)?,
        ];
        if !quiet {
            println!("{md}");
        }
        Ok(Finished { figures, tables, ..Default::default() })
    }
}

/// The same solvers and grids with the exact score and with the trained network of `model`.
#[derive(Default)]
pub struct TrainedVsExact {
    net: Option<NetScore>,
    model: String,
}

/// The config's trained model, checked against the config's processes.
fn trained_model(sweep: &Sweep) -> Result<NetScore, String> {
    let path = Path::new(&sweep.config.model);
    let net = NetScore::load(path, &scoresde::nn::device())
        .map_err(|e| format!("model: {e} (train one with `scoresde train --out {}`)", path.display()))?;
    let trained = ProcessSpec::from_json(&net.checkpoint().meta["process"])
        .map_err(|e| format!("model {}: {e}", path.display()))?;
    for &pk in &sweep.processes {
        let given = ProcessArgs::defaults(pk).spec().map_err(|e| e.to_string())?;
        if trained != given {
            return Err(format!(
                "model {}: process mismatch: trained on process {trained}, the config asks for {given}",
                path.display()
            ));
        }
    }
    Ok(net)
}

impl SweepKind for TrainedVsExact {
    fn prepare(&mut self, ctx: &Ctx) -> Result<(), String> {
        self.net = Some(trained_model(ctx.sweep)?);
        self.model = ctx.sweep.config.model.clone();
        Ok(())
    }
    fn cells(&self, ctx: &Ctx) -> Vec<Cell> {
        product(ctx, true, |_, _| ctx.sweep.config.steps.clone())
    }
    fn run_cell(&self, ctx: &Ctx, cell: &Cell) -> Result<Vec<Row>, String> {
        let net = match (cell.role == Role::Network, &self.net) {
            (true, Some(n)) => Some(n as &dyn scoresde::model::ScoreModel),
            (true, None) => return Err("trained_vs_exact: no model loaded".into()),
            (false, _) => None,
        };
        sample_cell(ctx, cell, true, net)
    }
    fn sidecar(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut fields = serde_json::Map::new();
        fields.insert("model".into(), self.model.clone().into());
        fields
    }
    fn finish(&self, ctx: &Ctx, rows: &[Row], out_dir: &Path, _quiet: bool) -> Result<Finished, String> {
        let figures = plot::draw_all(rows, &ctx.sweep.config.experiment, out_dir)?;
        Ok(Finished { figures, ..Default::default() })
    }
}
