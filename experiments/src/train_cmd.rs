//! `scoresde train`: denoising score matching of an MLP on a mixture target, with checkpoints
//! that resume bit-identically, a loss-curve CSV and figure.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use scoresde::nn::{save_checkpoint, Conditioning, MlpConfig, NetOutput, TrainConfig, Trainer, Weighting};
use scoresde::process::ProcessSpec;
use scoresde::targets;

use crate::choices::{parse_classes, CmdResult, DtypeKind, ProcessArgs};
use crate::sweep::plot;

/// What the network outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputKind {
    /// The noise.
    Eps,
    /// The clean data.
    X0,
    /// The velocity alpha eps - sigma x0.
    V,
    /// The flow-matching velocity eps - x0, trained with the flow-matching loss (use with
    /// --process flow: Lipman et al. 2023, Liu et al. 2023).
    Velocity,
    /// EDM's preconditioned denoiser (c_in, c_skip, c_out with --sigma-data).
    Edm,
}

/// The DSM weighting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WeightingKind {
    /// lambda = sigma^2 (the plain eps loss).
    Sigma2,
    /// lambda = g^2 (likelihood weighting).
    Likelihood,
    /// EDM's weighting and log-normal noise levels.
    Edm,
}

/// Flags of `scoresde train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Target: a built-in name or a mixture JSON file.
    #[arg(long, default_value = "ring8")]
    pub target: String,
    /// The forward process.
    #[command(flatten)]
    pub process: ProcessArgs,
    /// What the network predicts.
    #[arg(long = "param", value_enum, default_value_t = OutputKind::Eps)]
    pub output: OutputKind,
    /// Loss weighting.
    #[arg(long, value_enum, default_value_t = WeightingKind::Sigma2)]
    pub weighting: WeightingKind,
    /// Precision of the network's forward and backward passes on the CPU (stored in the
    /// checkpoint; sampling uses it unless `sample --dtype` says otherwise).
    #[arg(long, value_enum, default_value_t = DtypeKind::F64)]
    pub dtype: DtypeKind,
    /// Total optimisation steps (with --resume: the total to reach).
    #[arg(long, default_value_t = 12_000)]
    pub steps: u64,
    /// Rows per step.
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    /// AdamW learning rate.
    #[arg(long, default_value_t = 2e-3)]
    pub lr: f64,
    /// Decoupled weight decay.
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// EMA decay of the sampling weights.
    #[arg(long, default_value_t = 0.999)]
    pub ema: f64,
    /// EDM's sigma_data (edm weighting and --param edm).
    #[arg(long, default_value_t = 0.5)]
    pub sigma_data: f64,
    /// Hidden width.
    #[arg(long, default_value_t = 64)]
    pub width: usize,
    /// Residual blocks.
    #[arg(long, default_value_t = 3)]
    pub depth: usize,
    /// Seed of every draw.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Train a class-conditional network: the components of each class, e.g. `0,1;2,3`.
    #[arg(long)]
    pub classes: Option<String>,
    /// Probability of training on the null label (classifier-free guidance).
    #[arg(long, default_value_t = 0.1)]
    pub label_dropout: f64,
    /// With --weighting likelihood: draw t in proportion to g^2 / sigma^2 (importance sampling;
    /// same objective, lower variance).
    #[arg(long)]
    pub importance_sampling: bool,
    /// Checkpoint to write (weights; the config goes to PATH.json, the loss curve to PATH.loss.csv/.png).
    #[arg(long)]
    pub out: PathBuf,
    /// Continue the checkpoint at --out up to --steps (the flags must match its config).
    #[arg(long)]
    pub resume: bool,
    /// Write a checkpoint every N steps (0: only at the end), so that a killed run loses at most
    /// N steps (`--resume` continues it bit-identically).
    #[arg(long, default_value_t = 500)]
    pub checkpoint_every: u64,
    /// No progress bar and no summary.
    #[arg(long)]
    pub quiet: bool,
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Runs `scoresde train`.
pub fn run(a: TrainArgs) -> CmdResult {
    let target = targets::load(&a.target)?;
    let process = a.process.build()?;
    let output = match a.output {
        OutputKind::Eps => NetOutput::Eps,
        OutputKind::X0 => NetOutput::X0,
        OutputKind::V => NetOutput::V,
        OutputKind::Velocity => NetOutput::Velocity,
        OutputKind::Edm => NetOutput::Edm,
    };
    let weighting = match a.weighting {
        WeightingKind::Sigma2 => Weighting::Sigma2,
        WeightingKind::Likelihood => Weighting::Likelihood,
        WeightingKind::Edm => Weighting::Edm,
    };
    let classes = match &a.classes {
        Some(spec) => parse_classes(spec, target.n_components())?,
        None => vec![],
    };
    // Weights with their gradients and two Adam moments and an EMA copy (5 x depth x width^2),
    // and a batch's activations and their gradients (about 8 x depth x batch x width).
    let (w, depth, batch) = (a.width as u128, a.depth.max(1) as u128, a.batch as u128);
    scoresde::limits::check_f64s(
        "--width",
        a.width,
        5 * depth * w * w,
        "the weights, their gradients, Adam moments and EMA",
    )?;
    scoresde::limits::check_f64s(
        "--batch",
        a.batch,
        8 * depth * batch * w.max(1),
        "a batch's activations and their gradients",
    )?;
    let net = MlpConfig {
        dim: target.dim(),
        width: a.width,
        depth: a.depth,
        frequencies: 8,
        output,
        sigma_data: a.sigma_data,
        // Flow and trig reach alpha = 0 and sigma = 0 at their ends, where the log-SNR is infinite:
        // their networks see t itself (as flow models do).
        conditioning: if process.rates(0.5).is_some() { Conditioning::Time } else { Conditioning::LogSnr },
        classes: classes.len(),
        dtype: a.dtype.into(),
        logits: 0,
    };
    let config = TrainConfig {
        batch: a.batch,
        lr: a.lr,
        weight_decay: a.weight_decay,
        ema: a.ema,
        weighting,
        sigma_data: a.sigma_data,
        seed: a.seed,
        label_dropout: if classes.is_empty() { 0.0 } else { a.label_dropout },
        importance: a.importance_sampling,
        classes,
    };
    let spec = a.process.spec()?;
    let meta = serde_json::json!({"target": a.target, "process": spec});
    let device = scoresde::nn::device();
    let mut trainer = if a.resume {
        let (trainer, old_meta) = Trainer::from_checkpoint(&a.out, &device)?;
        let mismatch = |what: &str, have: String, want: String| -> CmdResult {
            Err(format!(
                "--resume {}: config mismatch: the checkpoint has {what} = {have}, the flags give {want}",
                a.out.display()
            )
            .into())
        };
        let old_spec =
            ProcessSpec::from_json(&old_meta["process"]).map_err(|e| format!("--resume {}: {e}", a.out.display()))?;
        if old_spec != spec {
            mismatch("process", old_spec.to_string(), spec.to_string())?;
        }
        if old_meta["target"] != meta["target"] {
            mismatch("target", old_meta["target"].to_string(), meta["target"].to_string())?;
        }
        if *trainer.net.config() != net {
            mismatch("network", format!("{:?}", trainer.net.config()), format!("{net:?}"))?;
        }
        if trainer.config != config {
            mismatch("training", format!("{:?}", trainer.config), format!("{config:?}"))?;
        }
        if trainer.steps_done() > a.steps {
            return Err(format!(
                "--steps = {}: the checkpoint has already done {} steps",
                a.steps,
                trainer.steps_done()
            )
            .into());
        }
        trainer
    } else {
        Trainer::new(net, config, &device)?
    };
    let bar =
        if a.quiet || !std::io::stderr().is_terminal() { ProgressBar::hidden() } else { ProgressBar::new(a.steps) };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} steps  loss {msg} (eta {eta})").expect("valid template"),
    );
    bar.set_position(trainer.steps_done());
    let started = Instant::now();
    let first = trainer.steps_done();
    while trainer.steps_done() < a.steps {
        let loss = trainer.step(&*process, &target)?;
        let k = trainer.steps_done();
        if k % 50 == 0 {
            bar.set_position(k);
            bar.set_message(format!("{loss:.4}"));
        }
        if a.checkpoint_every > 0 && k % a.checkpoint_every == 0 && k < a.steps {
            save_checkpoint(&a.out, &trainer, meta.clone())?;
        }
    }
    bar.finish_and_clear();
    save_checkpoint(&a.out, &trainer, meta)?;
    write_loss_curve(&a.out, &trainer.losses)?;
    if !a.quiet {
        let tail = &trainer.losses[trainer.losses.len().saturating_sub(500)..];
        eprintln!(
            "wrote {} (+ .json, .loss.csv, .loss.png): {} steps ({} this run) in {:.1} s, mean loss of the last {} steps {:.4}",
            a.out.display(),
            trainer.steps_done(),
            trainer.steps_done() - first,
            started.elapsed().as_secs_f64(),
            tail.len(),
            tail.iter().sum::<f64>() / tail.len().max(1) as f64
        );
    }
    Ok(())
}

/// `PATH.loss.csv` (step,loss) and `PATH.loss.png`/`.svg`: the loss averaged over windows.
fn write_loss_curve(out: &Path, losses: &[f64]) -> CmdResult {
    let mut csv = String::from("step,loss\n");
    for (k, l) in losses.iter().enumerate() {
        csv.push_str(&format!("{},{l:e}\n", k + 1));
    }
    scoresde::io::write_atomic(&with_suffix(out, ".loss.csv"), csv.as_bytes())?;
    let window = (losses.len() / 200).max(1);
    let pts: Vec<(f64, f64)> = losses
        .chunks(window)
        .enumerate()
        .map(|(i, c)| (((i + 1) * window) as f64, c.iter().sum::<f64>() / c.len() as f64))
        .filter(|(_, v)| *v > 0.0)
        .collect();
    let dir = out.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !pts.is_empty() && plot::prepare(dir)? {
        let lines = [(format!("DSM loss (mean of {window} steps)"), pts)].into_iter().collect();
        let stem = with_suffix(out, ".loss");
        plot::draw_both(&stem, "training loss", ("step", "loss"), &lines, None)?;
    }
    Ok(())
}
