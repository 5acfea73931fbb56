//! `scoresde train-classifier`: a noisy classifier p_t(y | x_t) of a mixture's classes
//! (component groups), trained by cross-entropy on noised draws, for classifier guidance
//! (`sample --classifier PATH --class C --classifier-scale S`). Prints its cross-entropy against
//! the exact noisy classifier's on fresh draws at three noise levels.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use scoresde::nn::{ClassifierTraining, NetClassifier};
use scoresde::process::ProcessSpec;
use scoresde::targets;

use crate::choices::{parse_classes, CmdError, CmdResult, ProcessArgs};

/// Flags of `scoresde train-classifier`.
#[derive(Debug, Args)]
pub struct ClassifierArgs {
    /// Target: a built-in name or a mixture JSON file.
    #[arg(long, default_value = "quad4")]
    pub target: String,
    /// The forward process.
    #[command(flatten)]
    pub process: ProcessArgs,
    /// The components of each class, e.g. `0,1;2,3`.
    #[arg(long)]
    pub classes: String,
    /// Optimisation steps.
    #[arg(long, default_value_t = 3000)]
    pub steps: u64,
    /// Rows per step.
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    /// AdamW learning rate.
    #[arg(long, default_value_t = 2e-3)]
    pub lr: f64,
    /// Seed of every draw.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Classifier file to write (the description also goes to PATH.json).
    #[arg(long)]
    pub out: PathBuf,
    /// No summary.
    #[arg(long)]
    pub quiet: bool,
}

/// Runs `scoresde train-classifier`.
pub fn run(a: ClassifierArgs) -> CmdResult {
    let target = targets::load(&a.target)?;
    let process = a.process.build()?;
    let classes = parse_classes(&a.classes, target.n_components())?;
    let spec = a.process.spec()?;
    let meta = serde_json::json!({"target": a.target, "process": spec});
    let training =
        ClassifierTraining { classes: classes.clone(), steps: a.steps, batch: a.batch, lr: a.lr, seed: a.seed };
    let started = Instant::now();
    let net = NetClassifier::train(&*process, &target, training, meta, &scoresde::nn::device())?;
    net.save(&a.out)?;
    if !a.quiet {
        eprintln!("wrote {} (+ .json): {} steps in {:.1} s", a.out.display(), a.steps, started.elapsed().as_secs_f64());
        for t in [0.05, 0.3, 0.7] {
            let (ours, exact, se) = net.cross_entropies(&*process, &target, t, (20_000, 99))?;
            eprintln!("t = {t}: cross-entropy {ours:.4} nats (exact classifier {exact:.4}, difference SE {se:.4})");
        }
    }
    Ok(())
}

/// The classifier at `path` (`sample --classifier`), refused unless it was trained on the
/// process the flags give and for the target's dimension.
pub fn load(path: &Path, process: &ProcessArgs, dim: usize) -> Result<NetClassifier, CmdError> {
    let net = NetClassifier::load(path, &scoresde::nn::device())?;
    let trained = ProcessSpec::from_json(&net.checkpoint().meta["process"])
        .map_err(|e| format!("--classifier {}: {e}", path.display()))?;
    let given = process.spec()?;
    if trained != given {
        return Err(format!(
            "--classifier {}: process mismatch: trained on process {trained}, the flags give {given}",
            path.display()
        )
        .into());
    }
    if net.dim() != dim {
        return Err(format!("--classifier {}: dimension {}, the model's is {dim}", path.display(), net.dim()).into());
    }
    Ok(net)
}
