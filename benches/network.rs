//! The learned score's costs (criterion): one forward pass (one NFE) of the committed ring model
//! at N = 10^4 through the fused CPU path and through candle, and one training step (batch
//! draw, forward, backward, AdamW, EMA) at batch 256 and 4096, fused and through candle.
//!
//! Run with `cargo bench -p scoresde --bench network` (threads: `RAYON_NUM_THREADS`).
//! `benches/peers/jax_mlp.py` times the same beside a JAX twin.

use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ndarray::Array2;
use scoresde::model::{NoiseLevel, ScoreModel};
use scoresde::nn::{NetScore, TrainBackend, Trainer};
use scoresde::process::Vp;
use scoresde::sampler::prior_noise;
use scoresde::targets;

fn model() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("plots/ring8_vp_model.safetensors")
}

fn forward(c: &mut Criterion) {
    let dev = candle_core::Device::Cpu;
    let vp = Vp::new(0.1, 20.0).unwrap();
    let level = NoiseLevel::at_time(&vp, 0.5);
    let n = 10_000;
    let x = prior_noise(3, n, 2);
    let mut out = Array2::zeros(x.dim());
    let mut group = c.benchmark_group("network_forward_n1e4");
    group.throughput(Throughput::Elements(n as u64));
    for (name, net) in [
        ("fused", NetScore::load(&model(), &dev).unwrap()),
        ("candle", NetScore::load(&model(), &dev).unwrap().through_candle()),
    ] {
        group.bench_function(name, |b| b.iter(|| net.predict(level, x.view(), out.view_mut()).unwrap()));
    }
    group.finish();
}

fn train_step(c: &mut Criterion) {
    let dev = candle_core::Device::Cpu;
    let vp = Vp::new(0.1, 20.0).unwrap();
    let target = targets::ring8();
    let mut group = c.benchmark_group("train_step");
    group.sample_size(20);
    for batch in [256, 4096] {
        for backend in [TrainBackend::Fused, TrainBackend::Candle] {
            let (mut t, _) = Trainer::from_checkpoint(&model(), &dev).unwrap();
            t.config.batch = batch;
            t.backend = backend;
            group.throughput(Throughput::Elements(batch as u64));
            let name = format!("{}_batch{batch}", if backend == TrainBackend::Fused { "fused" } else { "candle" });
            group.bench_function(name, |b| b.iter(|| t.step(&vp, &target).unwrap()));
        }
    }
    group.finish();
}

criterion_group!(benches, forward, train_step);
criterion_main!(benches);
