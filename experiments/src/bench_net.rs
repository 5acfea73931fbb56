//! `scoresde bench --network MODEL`: the learned score's two costs, as a Markdown table.
//!
//! - **forward**: one NFE, the model's prediction for N rows at one noise level (t = 0.5), as a
//!   sampler calls it, through the fused CPU path (f64 and f32) and through candle
//!   (`NetScore::through_candle`);
//! - **train step**: one AdamW step of denoising score matching (batch draw, forward, backward,
//!   update, EMA) at each `--train-batch`, on the checkpoint's network, process and target,
//!   through the fused host backward pass (f64 and f32) and through candle's autograd.
//!
//! Each is the best of `--repeats` timed runs after one untimed warm-up run.
//! `benches/peers/jax_mlp.py` runs this beside the JAX twin of the network.

use std::path::Path;
use std::time::Instant;

use ndarray::Array2;
use scoresde::model::{NoiseLevel, ScoreModel};
use scoresde::nn::{NetDtype, NetScore, TrainBackend, Trainer};
use scoresde::process::ProcessSpec;
use scoresde::sampler::prior_noise;

use crate::choices::CmdResult;

/// Best of `repeats` runs of `f` after one warm-up run, in seconds.
fn best_of(repeats: usize, mut f: impl FnMut() -> CmdResult) -> Result<f64, Box<dyn std::error::Error + Send + Sync>> {
    f()?;
    let mut best = f64::INFINITY;
    for _ in 0..repeats {
        let started = Instant::now();
        f()?;
        best = best.min(started.elapsed().as_secs_f64());
    }
    Ok(best)
}

/// Prints the forward and train-step rows for the checkpoint at `path`.
pub fn run(path: &Path, ns: &[usize], batches: &[usize], repeats: usize, threads: usize) -> CmdResult {
    let dev = scoresde::nn::device();
    let fused = NetScore::load(path, &dev)?.with_dtype(NetDtype::F64)?;
    let fused32 = NetScore::load(path, &dev)?.with_dtype(NetDtype::F32)?;
    let candle = NetScore::load(path, &dev)?.through_candle();
    let (trainer, meta) = Trainer::from_checkpoint(path, &dev)?;
    let process = ProcessSpec::from_json(&meta["process"])?.build()?;
    let target_name = meta["target"].as_str().unwrap_or_default().to_string();
    let target = scoresde::targets::builtin(&target_name).ok_or_else(|| {
        format!("{}: the checkpoint's target {target_name:?} is not a built-in target", path.display())
    })?;
    let net = trainer.net.config().clone();
    println!(
        "network {} (d {}, width {}, depth {}, {} frequencies), f64, {threads} threads, best of {repeats}",
        path.display(),
        net.dim,
        net.width,
        net.depth,
        net.frequencies
    );
    println!();
    println!("| case | path | N or batch | seconds | ms |");
    println!("|---|---|---|---|---|");
    let level = NoiseLevel::at_time(&*process, 0.5);
    for &n in ns {
        let x = prior_noise(3, n, net.dim);
        let mut out = Array2::zeros(x.dim());
        for (name, model) in [("fused", &fused), ("fused f32", &fused32), ("candle", &candle)] {
            let s = best_of(repeats, || Ok(model.predict(level, x.view(), out.view_mut())?))?;
            println!("| forward (one NFE) | {name} | {n} | {s:.5} | {:.3} |", s * 1e3);
        }
    }
    for &b in batches {
        let cases = [
            (TrainBackend::Fused, NetDtype::F64),
            (TrainBackend::Fused, NetDtype::F32),
            (TrainBackend::Candle, NetDtype::F64),
        ];
        for (backend, dtype) in cases {
            if !dev.is_cpu() && dtype == NetDtype::F32 {
                continue; // a GPU network trains through candle, in f64
            }
            let (mut t, _) = Trainer::from_checkpoint(path, &dev)?;
            t.config.batch = b;
            t.set_dtype(dtype);
            if backend == TrainBackend::Candle || !dev.is_cpu() {
                t.backend = TrainBackend::Candle;
            }
            let s = best_of(repeats, || {
                t.step(&*process, &target)?;
                Ok(())
            })?;
            let name = match (t.backend, dtype) {
                (TrainBackend::Fused, NetDtype::F64) => "fused",
                (TrainBackend::Fused, NetDtype::F32) => "fused f32",
                (TrainBackend::Candle, _) => "candle",
            };
            println!("| train step (AdamW) | {name} | {b} | {s:.5} | {:.3} |", s * 1e3);
        }
    }
    Ok(())
}
