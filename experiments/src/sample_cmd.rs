//! `scoresde sample`: flags -> validated sampler -> samples on disk.

use std::io::IsTerminal;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use scoresde::grids::Space;
use scoresde::io::{read_npy_1d, read_npy_2d, read_npy_3d, write_npy};
use scoresde::model::{ExactScore, ScoreModel};
use scoresde::process::ForwardProcess;
use scoresde::sampler::{prior_noise, sample_owned, SamplerConfig, SolverId, Steps};
use scoresde::targets;
use scoresde_solvers::{AdaptiveOptions, BrownianNoise, Draw, FixedNoise, KeyedNoise, NoiseSource, TimeGrid};

use crate::cli::{CmdResult, SampleArgs};

/// Reads a grid file and names the flag in any error.
fn grid_file(path: &std::path::Path, flag: &str) -> Result<TimeGrid, String> {
    let points = read_npy_1d(path, flag).map_err(|e| e.to_string())?;
    TimeGrid::new(points.to_vec()).map_err(|e| format!("{flag} {}: {e}", path.display()))
}

/// The space and steps the flags ask for.
fn steps_from_args(a: &SampleArgs, process: &dyn ForwardProcess) -> Result<(Space, Steps), CmdError> {
    if let Some(p) = &a.grid {
        return Ok((Space::Time, Steps::Grid(grid_file(p, "--grid")?)));
    }
    if let Some(p) = &a.sigmas {
        return Ok((Space::SigmaTilde, Steps::Grid(grid_file(p, "--sigmas")?)));
    }
    let (t_start, t_end) = time_range(a, process);
    if a.rtol.is_some() || a.atol.is_some() {
        let options = AdaptiveOptions::new(a.rtol.unwrap_or(1e-5), a.atol.unwrap_or(1e-5))?;
        let (space, start, end) = match (a.sigma_start, a.sigma_end) {
            (Some(s0), Some(s1)) => (Space::SigmaTilde, s0, s1),
            _ => match a.space.into() {
                Space::Time => (Space::Time, t_start, t_end),
                Space::SigmaTilde => (Space::SigmaTilde, process.sigma_tilde(t_start), process.sigma_tilde(t_end)),
            },
        };
        return Ok((space, Steps::Adaptive { start, end, options }));
    }
    if a.sigma_start.is_some() {
        return Err("--sigma-start/--sigma-end set the range of an adaptive solve: give --rtol and --atol too".into());
    }
    let steps = a.steps.unwrap_or(50);
    Ok((a.space.into(), Steps::Schedule { schedule: a.schedule.schedule(a.rho), steps, t_start, t_end }))
}

/// The time range of a generated grid or adaptive solve.
fn time_range(a: &SampleArgs, process: &dyn ForwardProcess) -> (f64, f64) {
    (a.t_start.unwrap_or(process.t_max()), a.t_end.unwrap_or(process.t_end_default()))
}

/// The validated sampler the flags ask for (`--nfe`: DPM-Solver-fast, its budget decoded by the
/// library).
fn sampler_from_args(a: &SampleArgs, process: &dyn ForwardProcess) -> Result<SamplerConfig, CmdError> {
    let config = match a.nfe {
        Some(nfe) => {
            if a.solver != SolverId::DpmSolver {
                return Err(format!("--nfe = {nfe}: sets DPM-Solver-fast's budget: needs --solver dpm-solver").into());
            }
            let (t_start, t_end) = time_range(a, process);
            SamplerConfig::dpm_solver_fast(process, nfe, t_start, t_end)?
        }
        None => {
            let (space, steps) = steps_from_args(a, process)?;
            SamplerConfig::new(process, a.solver()?, space, steps)?
        }
    };
    Ok(config.with_denoise_final(a.denoise_final))
}

type CmdError = Box<dyn std::error::Error + Send + Sync>;

fn noise_source(
    a: &SampleArgs,
    n: usize,
    d: usize,
    config: &SamplerConfig,
) -> Result<Option<Box<dyn NoiseSource>>, CmdError> {
    let solver = config.solver();
    let steps = config.steps().count();
    let draws = Draw::total(steps, solver.extra_draws());
    if a.brownian && (a.noise.is_some() || !solver.is_stochastic()) {
        return Err(format!(
            "--brownian: solver {} with {} draws no fresh noise",
            solver.name(),
            if a.noise.is_some() { "--noise" } else { "no noise" }
        )
        .into());
    }
    match (&a.noise, solver.is_stochastic()) {
        (Some(_), false) => Err(format!("--noise: solver {} is deterministic and uses no noise", solver.name()).into()),
        (None, false) => Ok(None),
        (None, true) if a.brownian => match config.steps() {
            Steps::Grid(g) => Ok(Some(Box::new(BrownianNoise::new(a.seed, g, 0)?))),
            _ => Err("--brownian needs a grid".into()),
        },
        (None, true) => Ok(Some(Box::new(KeyedNoise::new(a.seed)))),
        (Some(p), true) => {
            let z = read_npy_3d(p, "noise")?;
            let (k, rows, cols) = z.dim();
            if rows != n || cols != d {
                return Err(format!(
                    "--noise {}: shape ({k}, {rows}, {cols}) but the samples are ({n}, {d})",
                    p.display()
                )
                .into());
            }
            if k < draws {
                return Err(format!(
                    "--noise {}: {k} draws of noise but {} needs {draws} ({steps} steps x {} draws per step)",
                    p.display(),
                    solver.name(),
                    1 + solver.extra_draws()
                )
                .into());
            }
            Ok(Some(Box::new(FixedNoise::new(z))))
        }
    }
}

fn progress(total: u64, quiet: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    let style =
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} steps  t={msg} (eta {eta})")
            .expect("valid template");
    bar.set_style(style);
    bar
}

/// Runs `scoresde sample`.
pub fn run(a: SampleArgs) -> CmdResult {
    let process = a.process.build()?;
    let model: Box<dyn ScoreModel> = match &a.model {
        None if a.class.is_some() => {
            let target = targets::load(&a.target)?;
            let spec = a.classes.as_deref().ok_or("--class with the exact score needs --classes (e.g. 0,1;2,3)")?;
            let classes = crate::train_cmd::parse_classes(spec, target.n_components())?;
            let c = a.class.expect("checked");
            let group = classes.get(c).ok_or_else(|| format!("--class = {c}: --classes defines {}", classes.len()))?;
            Box::new(scoresde::guidance::GuidedExact::new(&target, group, a.guidance)?)
        }
        None => Box::new(ExactScore::new(targets::load(&a.target)?)),
        Some(path) => {
            let net = scoresde::nn::NetScore::load(path, &scoresde::nn::device())?;
            let trained = &net.checkpoint().meta["process"];
            let given = crate::train_cmd::process_meta(&a.process);
            if *trained != given {
                return Err(format!(
                    "--model {}: trained on process {trained}, the flags give {given}",
                    path.display()
                )
                .into());
            }
            if a.classes.is_some() {
                return Err("--classes: a trained model's classes are fixed at training".into());
            }
            match a.class {
                Some(c) => Box::new(net.with_guidance(c, a.guidance)?),
                None => Box::new(net),
            }
        }
    };
    let d = model.dim();
    let z = match &a.z_init {
        Some(p) => {
            let z = read_npy_2d(p, "z-init")?;
            if z.ncols() != d || z.nrows() == 0 {
                return Err(format!(
                    "--z-init {}: shape ({}, {}) but the target has dimension {d} (need N >= 1 rows)",
                    p.display(),
                    z.nrows(),
                    z.ncols()
                )
                .into());
            }
            z
        }
        None if a.n == 0 => return Err("--n = 0: must be at least 1".into()),
        None => prior_noise(a.seed, a.n, d),
    };
    let config = sampler_from_args(&a, &*process)?;
    let solver = config.solver();
    let n_steps = config.steps().count();
    let mut noise = noise_source(&a, z.nrows(), d, &config)?;
    let bar = progress(n_steps as u64, a.quiet);
    let started = Instant::now();
    let (x, report) = sample_owned(&*process, &*model, &config, z, noise.as_deref_mut(), &mut |info| {
        bar.inc(1);
        bar.set_message(format!("{:.4}", info.t1));
    })?;
    bar.finish_and_clear();
    write_npy(&a.out, &x)?;
    if !a.quiet {
        eprintln!(
            "wrote {} ({} x {d}): {} on {} in {:?} space, {} steps ({} rejected), NFE {}, {:.3} s",
            a.out.display(),
            x.nrows(),
            solver.name(),
            process.name(),
            config.space(),
            report.steps,
            report.rejected,
            report.nfe,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
