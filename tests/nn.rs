//! The learned score model: bit-identical resume, checkpoint validation, inference consistency.

use std::path::PathBuf;

use ndarray::Array2;
use scoresde::model::{NoiseLevel, ScoreModel};
use scoresde::nn::{save_checkpoint, Conditioning, MlpConfig, NetOutput, NetScore, TrainConfig, Trainer};
use scoresde::process::{ForwardProcess, Vp};
use scoresde::targets;

fn small_net(output: NetOutput) -> MlpConfig {
    MlpConfig {
        dim: 2,
        width: 16,
        depth: 1,
        frequencies: 4,
        output,
        sigma_data: 0.5,
        conditioning: Conditioning::LogSnr,
        classes: 0,
        dtype: scoresde::nn::NetDtype::F64,
        logits: 0,
    }
}

fn small_train() -> TrainConfig {
    TrainConfig { batch: 32, ..TrainConfig::default() }
}

fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("scoresde-nn-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// One small network of every output kind after 300 training steps on ring8 (so that no layer
/// is near zero), loaded back from its checkpoint in `dir(tag)`.
fn trained_nets(tag: &str, process: &Vp) -> (PathBuf, Vec<(NetOutput, NetScore)>) {
    let (target, dev, d) = (targets::ring8(), candle_core::Device::Cpu, dir(tag));
    let nets = [NetOutput::Eps, NetOutput::X0, NetOutput::V, NetOutput::Velocity, NetOutput::Edm]
        .into_iter()
        .map(|output| {
            let mut t = Trainer::new(small_net(output), small_train(), &dev).unwrap();
            for _ in 0..300 {
                t.step(process, &target).unwrap();
            }
            let path = d.join(format!("{output:?}.safetensors"));
            save_checkpoint(&path, &t, serde_json::json!(null)).unwrap();
            (output, NetScore::load(&path, &dev).unwrap())
        })
        .collect();
    (d, nets)
}

fn weights(t: &Trainer) -> Vec<(String, Vec<f64>)> {
    t.net.params().iter().map(|(k, v)| (k.clone(), v.as_tensor().flatten_all().unwrap().to_vec1().unwrap())).collect()
}

/// 2000 steps at once and 1000 + checkpoint + resume + 1000 give the same bits: weights, EMA,
/// Adam moments and the loss curve (every draw is keyed by (seed, step), the optimizer state is
/// in the checkpoint).
#[test]
fn resume_is_bit_identical() {
    let process = Vp::new(0.1, 20.0).unwrap();
    let target = targets::ring8();
    let dev = candle_core::Device::Cpu;
    let mut whole = Trainer::new(small_net(NetOutput::Eps), small_train(), &dev).unwrap();
    for _ in 0..2000 {
        whole.step(&process, &target).unwrap();
    }
    let d = dir("resume");
    let path = d.join("half.safetensors");
    let mut first = Trainer::new(small_net(NetOutput::Eps), small_train(), &dev).unwrap();
    for _ in 0..1000 {
        first.step(&process, &target).unwrap();
    }
    save_checkpoint(&path, &first, serde_json::json!({"test": 1})).unwrap();
    drop(first);
    let (mut resumed, meta) = Trainer::from_checkpoint(&path, &dev).unwrap();
    assert_eq!(meta, serde_json::json!({"test": 1}));
    assert_eq!(resumed.steps_done(), 1000);
    for _ in 0..1000 {
        resumed.step(&process, &target).unwrap();
    }
    assert!(weights(&whole) == weights(&resumed), "weights differ");
    assert!(whole.ema == resumed.ema, "EMA weights differ");
    assert!(whole.adam.m == resumed.adam.m && whole.adam.v == resumed.adam.v, "Adam moments differ");
    let first = whole.losses.iter().zip(&resumed.losses).position(|(a, b)| a != b);
    assert!(first.is_none(), "losses differ from step {first:?}");
    // Training did something: the loss of the last 200 steps is below that of the first 200.
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
    assert!(mean(&whole.losses[1800..]) < mean(&whole.losses[..200]));
    std::fs::remove_dir_all(&d).ok();
}

/// The loaded model predicts with the EMA weights, row by row independently of the batch.
#[test]
fn net_score_rows_do_not_depend_on_the_batch() {
    let process = Vp::new(0.1, 20.0).unwrap();
    let target = targets::ring8();
    let dev = candle_core::Device::Cpu;
    for output in [NetOutput::Eps, NetOutput::X0, NetOutput::V, NetOutput::Edm] {
        let mut t = Trainer::new(small_net(output), small_train(), &dev).unwrap();
        for _ in 0..20 {
            t.step(&process, &target).unwrap();
        }
        let d = dir(&format!("{output:?}"));
        let path = d.join("m.safetensors");
        save_checkpoint(&path, &t, serde_json::json!(null)).unwrap();
        let model = NetScore::load(&path, &dev).unwrap();
        let level = NoiseLevel::at_time(&process, 0.3);
        let x = Array2::from_shape_fn((7, 2), |(i, j)| (i as f64 - 3.0) * 0.7 + j as f64 * 0.1);
        let mut all = Array2::zeros((7, 2));
        model.predict_eps(level, x.view(), all.view_mut()).unwrap();
        for i in 0..7 {
            let mut one = Array2::zeros((1, 2));
            model.predict_eps(level, x.slice(ndarray::s![i..i + 1, ..]), one.view_mut()).unwrap();
            // A matrix product's summation order may depend on the batch shape: 1e-12 relative.
            for j in 0..2 {
                assert!((one[[0, j]] - all[[i, j]]).abs() <= 1e-12 * (1.0 + all[[i, j]].abs()), "{output:?} row {i}");
            }
        }
        assert!(all.iter().all(|v| v.is_finite()));
        assert_eq!(model.dim(), 2);
        std::fs::remove_dir_all(&d).ok();
    }
    let _ = process.t_max();
}

fn message(r: scoresde::Result<NetScore>) -> String {
    match r {
        Ok(_) => panic!("a bad checkpoint was accepted"),
        Err(e) => e.to_string(),
    }
}

/// Missing files, a missing tensor, wrong shapes and a mangled config are clear errors.
#[test]
fn bad_checkpoints_are_clear_errors() {
    let dev = candle_core::Device::Cpu;
    let d = dir("bad");
    let path = d.join("m.safetensors");
    let e = message(NetScore::load(&path, &dev));
    assert!(e.contains("m.safetensors") && e.contains("no such checkpoint"), "{e}");
    let t = Trainer::new(small_net(NetOutput::Eps), small_train(), &dev).unwrap();
    save_checkpoint(&path, &t, serde_json::json!(null)).unwrap();
    let json = d.join("m.safetensors.json");
    let good = std::fs::read_to_string(&json).unwrap();
    // The description inside the checkpoint is the truth: an edited copy beside it is refused.
    std::fs::write(&json, good.replace("\"width\": 16", "\"width\": 32")).unwrap();
    let e = message(NetScore::load(&path, &dev));
    assert!(e.contains("m.safetensors.json") && e.contains("differs from the description inside"), "{e}");
    std::fs::write(&json, &good).unwrap();
    assert!(NetScore::load(&path, &dev).is_ok());
    // A checkpoint of the older layout (description in the JSON file only): its config is
    // checked against the tensors.
    let mut tensors = candle_core::safetensors::load(&path, &dev).unwrap();
    assert!(tensors.remove("checkpoint.json").is_some());
    candle_core::safetensors::save(&tensors, &path).unwrap();
    assert!(NetScore::load(&path, &dev).is_ok());
    // Config says width 32, the tensors are 16 wide.
    std::fs::write(&json, good.replace("\"width\": 16", "\"width\": 32")).unwrap();
    let e = message(NetScore::load(&path, &dev));
    assert!(e.contains("has shape") && e.contains("the config needs"), "{e}");
    // One more block than stored: a missing tensor.
    std::fs::write(&json, good.replace("\"depth\": 1", "\"depth\": 2")).unwrap();
    let e = message(NetScore::load(&path, &dev));
    assert!(e.contains("tensor \"block1.0.w\" is missing"), "{e}");
    // One block fewer than stored: a tensor the network does not have (depth 0 is a valid MLP).
    std::fs::write(&json, good.replace("\"depth\": 1", "\"depth\": 0")).unwrap();
    let e = message(NetScore::load(&path, &dev));
    assert!(e.contains("tensor \"block0.0.b\" is not part of the configured network"), "{e}");
    std::fs::write(&json, good.replace("\"output\": \"eps\"", "\"output\": \"score2\"")).unwrap();
    let e = message(NetScore::load(&path, &dev));
    assert!(e.contains("m.safetensors.json") && e.contains("unknown variant `score2`"), "{e}");
    std::fs::write(&json, "{").unwrap();
    assert!(message(NetScore::load(&path, &dev)).contains("m.safetensors.json"));
    std::fs::remove_file(&json).unwrap();
    assert!(message(NetScore::load(&path, &dev)).contains("cannot read the checkpoint's config"));
    std::fs::write(&json, &good).unwrap();
    std::fs::write(&path, b"not a safetensors file").unwrap();
    assert!(message(NetScore::load(&path, &dev)).contains("m.safetensors"));
    std::fs::remove_dir_all(&d).ok();
}

/// EDM preconditioning: with the last layer zeroed (F = 0) the model is the denoiser
/// c_skip x / alpha, and its eps is (x / alpha - D) / sigma~; training it lowers the loss.
#[test]
fn edm_preconditioning_is_karras_table_1() {
    let process = Vp::new(0.1, 20.0).unwrap();
    let dev = candle_core::Device::Cpu;
    let mut t = Trainer::new(small_net(NetOutput::Edm), small_train(), &dev).unwrap();
    for name in ["out.w", "out.b"] {
        let v = &t.net.params()[name];
        v.set(&v.as_tensor().zeros_like().unwrap()).unwrap();
    }
    let d = dir("edm");
    let path = d.join("m.safetensors");
    t.ema = t
        .net
        .params()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().flatten_all().unwrap().to_vec1().unwrap()))
        .collect();
    save_checkpoint(&path, &t, serde_json::json!(null)).unwrap();
    let model = NetScore::load(&path, &dev).unwrap();
    let level = NoiseLevel::at_time(&process, 0.4);
    let st = level.sigma / level.alpha;
    let c_skip = 0.25 / (st * st + 0.25);
    let x = Array2::from_shape_fn((5, 2), |(i, j)| i as f64 * 0.9 - 2.0 + j as f64 * 0.3);
    let mut eps = Array2::zeros((5, 2));
    model.predict_eps(level, x.view(), eps.view_mut()).unwrap();
    for ((i, j), &e) in eps.indexed_iter() {
        let xt = x[[i, j]] / level.alpha;
        let want = (x[[i, j]] - level.alpha * c_skip * xt) / level.sigma;
        assert!((e - want).abs() <= 1e-12 * (1.0 + want.abs()), "row {i}: eps {e}, want {want}");
    }
    let target = targets::ring8();
    let mut t = Trainer::new(small_net(NetOutput::Edm), small_train(), &dev).unwrap();
    for _ in 0..600 {
        t.step(&process, &target).unwrap();
    }
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
    assert!(mean(&t.losses[500..]) < 0.8 * mean(&t.losses[..100]), "EDM-preconditioned training does not learn");
    std::fs::remove_dir_all(&d).ok();
}

/// The fused CPU inference (`NetScore`'s default) equals candle's forward to 1e-12 relative to
/// 1 + |value| (the two differ only in the summation order of the matrix products): every
/// output, both conditionings, a class-conditional network alone and with guidance, at three
/// noise levels, on a batch of 3 chunks and a remainder. On 1 and 3 threads it gives the same bits.
#[test]
fn fused_inference_matches_candle_and_not_the_thread_count() {
    let process = Vp::new(0.1, 20.0).unwrap();
    let target = targets::ring8();
    let dev = candle_core::Device::Cpu;
    let cases = [
        (NetOutput::Eps, Conditioning::LogSnr, 0),
        (NetOutput::X0, Conditioning::Time, 0),
        (NetOutput::V, Conditioning::LogSnr, 0),
        (NetOutput::Velocity, Conditioning::Time, 0),
        (NetOutput::Edm, Conditioning::LogSnr, 0),
        (NetOutput::Eps, Conditioning::LogSnr, 2),
        (NetOutput::Edm, Conditioning::Time, 2),
    ];
    let x = Array2::from_shape_fn((700, 2), |(i, j)| 3.0 * ((i * 7 + j * 3) as f64 * 0.37).sin());
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let three = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
    for (output, conditioning, classes) in cases {
        let net = MlpConfig { width: 32, depth: 2, conditioning, classes, ..small_net(output) };
        let train = TrainConfig {
            classes: if classes > 0 { vec![vec![0, 1, 2, 3], vec![4, 5, 6, 7]] } else { vec![] },
            ema: 0.5,
            ..small_train()
        };
        let mut t = Trainer::new(net, train, &dev).unwrap();
        for _ in 0..20 {
            t.step(&process, &target).unwrap();
        }
        let d = dir(&format!("fused-{output:?}-{classes}"));
        let path = d.join("m.safetensors");
        save_checkpoint(&path, &t, serde_json::json!(null)).unwrap();
        let mut models =
            vec![(NetScore::load(&path, &dev).unwrap(), NetScore::load(&path, &dev).unwrap().through_candle())];
        if classes > 0 {
            let (f, c) = &models[0];
            models.push((f.guided(1, 2.5).unwrap(), c.guided(1, 2.5).unwrap()));
        }
        for (fused, candle) in &models {
            for t in [0.05, 0.5, 0.95] {
                let level = NoiseLevel::at_time(&process, t);
                let mut a = Array2::zeros(x.dim());
                let mut b = Array2::zeros(x.dim());
                one.install(|| fused.predict(level, x.view(), a.view_mut())).unwrap();
                candle.predict(level, x.view(), b.view_mut()).unwrap();
                for ((i, j), v) in a.indexed_iter() {
                    let want = b[[i, j]];
                    assert!(
                        (v - want).abs() <= 1e-12 * (1.0 + want.abs()),
                        "{output:?} {classes}: t {t} row {i}: {v} vs {want}"
                    );
                }
                let mut c = Array2::zeros(x.dim());
                three.install(|| fused.predict(level, x.view(), c.view_mut())).unwrap();
                assert!(a.iter().zip(&c).all(|(p, q)| p.to_bits() == q.to_bits()), "{output:?}: threads change bits");
            }
        }
        std::fs::remove_dir_all(&d).ok();
    }
}

/// The fused training step's loss and gradient equal candle's autograd on the same batch: the
/// loss to 1e-12 relative, every gradient entry to 1e-10 of its tensor's largest entry, for
/// every output, both conditionings, the three weightings and a class-conditional network with
/// label dropout, on a batch of 2 chunks and a remainder.
#[test]
fn fused_gradient_matches_candle_autograd() {
    use scoresde::nn::{DsmBatch, DsmLoss, HostNet, Weighting};
    let process = Vp::new(0.1, 20.0).unwrap();
    let target = targets::ring8();
    let dev = candle_core::Device::Cpu;
    let cases = [
        (NetOutput::Eps, Conditioning::LogSnr, 0, Weighting::Sigma2),
        (NetOutput::X0, Conditioning::Time, 0, Weighting::Likelihood),
        (NetOutput::V, Conditioning::LogSnr, 0, Weighting::Sigma2),
        (NetOutput::Velocity, Conditioning::Time, 0, Weighting::Sigma2),
        (NetOutput::Edm, Conditioning::LogSnr, 0, Weighting::Edm),
        (NetOutput::Eps, Conditioning::LogSnr, 2, Weighting::Sigma2),
        (NetOutput::Edm, Conditioning::Time, 2, Weighting::Edm),
    ];
    for (output, conditioning, classes, weighting) in cases {
        let net = MlpConfig { width: 32, depth: 2, conditioning, classes, ..small_net(output) };
        let train = TrainConfig {
            batch: 300,
            weighting,
            classes: if classes > 0 { vec![vec![0, 1, 2, 3], vec![4, 5, 6, 7]] } else { vec![] },
            label_dropout: if classes > 0 { 0.3 } else { 0.0 },
            ..small_train()
        };
        let t = Trainer::new(net, train, &dev).unwrap();
        let mut rng = scoresde::nn::train_step_rng(5, 7);
        let batch = DsmBatch::draw(t.net.config(), &process, &target, &t.config, &mut rng).unwrap();
        let loss = DsmLoss::on(&t.net, &batch).unwrap();
        let want = loss.to_scalar::<f64>().unwrap();
        let grads = loss.backward().unwrap();
        let mut host = HostNet::<f64>::new(&t.net).unwrap();
        let got = host.loss_and_grad(&batch);
        assert!((got - want).abs() <= 1e-12 * want.abs(), "{output:?}: loss {got} vs {want}");
        let g = host.grad();
        for (name, range) in host.names() {
            let p = &t.net.params()[name];
            let reference: Vec<f64> = grads.get(p.as_tensor()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
            let scale = reference.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            assert!(scale > 0.0, "{output:?} {name}: zero gradient");
            for (i, (a, b)) in g[range.clone()].iter().zip(&reference).enumerate() {
                assert!((a - b).abs() <= 1e-10 * scale, "{output:?} {classes} {name}[{i}]: {a} vs {b} (scale {scale})");
            }
        }
    }
}

/// Fused training, in f64 and in f32, gives the same weights, EMA and losses on 1 and 3 threads
/// (a batch of 3 chunks).
#[test]
fn fused_training_is_bit_identical_across_threads() {
    let process = Vp::new(0.1, 20.0).unwrap();
    let target = targets::ring8();
    let dev = candle_core::Device::Cpu;
    let run = |threads: usize, dtype: scoresde::nn::NetDtype| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let net = MlpConfig { dtype, ..small_net(NetOutput::Eps) };
            let mut t = Trainer::new(net, TrainConfig { batch: 300, ..small_train() }, &dev).unwrap();
            for _ in 0..50 {
                t.step(&process, &target).unwrap();
            }
            (weights(&t), t.ema.clone(), t.losses.clone())
        })
    };
    for dtype in [scoresde::nn::NetDtype::F64, scoresde::nn::NetDtype::F32] {
        let (one, three) = (run(1, dtype), run(3, dtype));
        assert!(
            one.0 == three.0 && one.1 == three.1 && one.2 == three.2,
            "{dtype:?}: thread count changes the training"
        );
    }
}

/// `--dtype f32`: the f32 passes agree with the f64 ones to f32 accuracy, and are f32.
///
/// Tolerances: a product of k terms in f32 is within gamma_k = k u / (1 - k u) of the exact one
/// relative to the sum of the terms' magnitudes (Higham, Thm. 3.5; u = 2^-24), 3.8e-6 for the
/// width-64 products and 7.6e-6 for the 128-row gradient sums. Through the 7 products of the
/// forward pass (and twice as many backward) with layer gains near 1 at these weights, that is
/// about 3e-5 (forward) and 1e-4 (gradient) of the magnitudes, which the test allows ten times:
/// 3e-4 of 1 + |value| for the prediction, 1e-3 of each tensor's largest entry for the gradient.
/// Both must also differ from f64 somewhere (by more than 1e-9), or the f32 path did not run.
#[test]
fn f32_passes_agree_with_f64_to_f32_accuracy() {
    use scoresde::nn::{DsmBatch, HostNet, NetDtype};
    let process = Vp::new(0.1, 20.0).unwrap();
    let target = targets::ring8();
    let dev = candle_core::Device::Cpu;
    let net = MlpConfig { width: 64, depth: 3, ..small_net(NetOutput::Eps) };
    let mut t = Trainer::new(net, TrainConfig { batch: 300, ..small_train() }, &dev).unwrap();
    for _ in 0..50 {
        t.step(&process, &target).unwrap();
    }
    let d = dir("f32");
    let path = d.join("m.safetensors");
    save_checkpoint(&path, &t, serde_json::json!(null)).unwrap();
    let f64_model = NetScore::load(&path, &dev).unwrap();
    let f32_model = NetScore::load(&path, &dev).unwrap().with_dtype(NetDtype::F32).unwrap();
    assert_eq!(f32_model.dtype(), NetDtype::F32);
    let x = Array2::from_shape_fn((600, 2), |(i, j)| 3.0 * ((i * 5 + j * 11) as f64 * 0.23).sin());
    let mut largest = 0.0f64;
    for tt in [0.05, 0.5, 0.95] {
        let level = NoiseLevel::at_time(&process, tt);
        let (mut a, mut b) = (Array2::zeros(x.dim()), Array2::zeros(x.dim()));
        f64_model.predict(level, x.view(), a.view_mut()).unwrap();
        f32_model.predict(level, x.view(), b.view_mut()).unwrap();
        for (p, q) in a.iter().zip(&b) {
            assert!((p - q).abs() <= 3e-4 * (1.0 + p.abs()), "t {tt}: f64 {p} vs f32 {q}");
            largest = largest.max((p - q).abs());
        }
    }
    assert!(largest > 1e-9, "the f32 prediction equals the f64 one: f32 did not run");
    let mut rng = scoresde::nn::train_step_rng(3, 1);
    let batch = DsmBatch::draw(t.net.config(), &process, &target, &t.config, &mut rng).unwrap();
    let mut h64 = HostNet::<f64>::new(&t.net).unwrap();
    let mut h32 = HostNet::<f32>::new(&t.net).unwrap();
    let (l64, l32) = (h64.loss_and_grad(&batch), h32.loss_and_grad(&batch));
    assert!((l64 - l32).abs() <= 1e-3 * l64 && l64 != l32, "loss {l64} vs {l32}");
    for (name, range) in h64.names() {
        let (g64, g32) = (&h64.grad()[range.clone()], &h32.grad()[range.clone()]);
        let scale = g64.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for (a, b) in g64.iter().zip(g32) {
            assert!((a - b).abs() <= 1e-3 * scale, "{name}: {a} vs {b}");
        }
    }
    std::fs::remove_dir_all(&d).ok();
}

/// The network's score divergence by forward-mode differentiation equals the central
/// difference of its score for every output kind (EDM included), after 300 training steps
/// (so that no layer is near zero): truncation O(h^2) ~ 1e-8 and rounding ~1e-16 / h, so 1e-6.
#[test]
fn network_divergence_is_the_trace_of_the_score_jacobian() {
    use scoresde::likelihood::ScoreDivergence;
    let process = Vp::new(0.1, 20.0).unwrap();
    let (d, nets) = trained_nets("div", &process);
    for (output, net) in nets {
        let x = ndarray::array![[0.3, -1.2], [2.1, 0.4], [-0.7, 0.05]];
        for tt in [0.05, 0.4, 0.9] {
            let level = NoiseLevel::at_time(&process, tt);
            let (mut s, mut div) = (Array2::zeros((3, 2)), ndarray::Array1::zeros(3));
            net.score_divergence(level, x.view(), s.view_mut(), div.view_mut()).unwrap();
            let h = 1e-5;
            let mut fd = ndarray::Array1::<f64>::zeros(3);
            for j in 0..2 {
                let (mut xp, mut xm) = (x.clone(), x.clone());
                xp.column_mut(j).mapv_inplace(|v| v + h);
                xm.column_mut(j).mapv_inplace(|v| v - h);
                let (mut sp, mut sm) = (Array2::zeros((3, 2)), Array2::zeros((3, 2)));
                let mut scratch = ndarray::Array1::zeros(3);
                net.score_divergence(level, xp.view(), sp.view_mut(), scratch.view_mut()).unwrap();
                net.score_divergence(level, xm.view(), sm.view_mut(), scratch.view_mut()).unwrap();
                for i in 0..3 {
                    fd[i] += (sp[[i, j]] - sm[[i, j]]) / (2.0 * h);
                }
            }
            // The score is the model's eps / -sigma.
            let mut eps = Array2::zeros((3, 2));
            net.predict_eps(level, x.view(), eps.view_mut()).unwrap();
            for i in 0..3 {
                let scale = 1.0 + fd[i].abs();
                assert!((div[i] - fd[i]).abs() < 1e-6 * scale, "{output:?} t = {tt} row {i}: {} vs {}", div[i], fd[i]);
                for j in 0..2 {
                    assert!((s[[i, j]] + eps[[i, j]] / level.sigma).abs() < 1e-12 * (1.0 + s[[i, j]].abs()));
                }
            }
        }
    }
    std::fs::remove_dir_all(&d).ok();
}

/// The network's exact vector-Jacobian product of its data prediction (what DPS pulls on)
/// equals J^T r with J from central differences of `predict_x0`, for every output kind, after
/// 300 training steps: truncation O(h^2) ~ 1e-8 and rounding ~1e-16 / h, so 1e-6.
#[test]
fn network_x0_vjp_is_the_transposed_jacobian_times_r() {
    let process = Vp::new(0.1, 20.0).unwrap();
    let (d, nets) = trained_nets("vjp", &process);
    for (output, net) in nets {
        let x = ndarray::array![[0.3, -1.2], [2.1, 0.4], [-0.7, 0.05]];
        let r = ndarray::array![[1.0, -0.5], [0.2, 0.7], [-1.3, 0.0]];
        for tt in [0.05, 0.4, 0.9] {
            let level = NoiseLevel::at_time(&process, tt);
            let (mut x0, mut vjp) = (Array2::zeros((3, 2)), Array2::zeros((3, 2)));
            assert!(net.predict_x0_vjp(level, x.view(), r.view(), x0.view_mut(), vjp.view_mut()).unwrap());
            let mut plain = Array2::zeros((3, 2));
            net.predict_x0(level, x.view(), plain.view_mut()).unwrap();
            let h = 1e-5;
            for j in 0..2 {
                let (mut xp, mut xm) = (x.clone(), x.clone());
                xp.column_mut(j).mapv_inplace(|v| v + h);
                xm.column_mut(j).mapv_inplace(|v| v - h);
                let (mut p, mut m) = (Array2::zeros((3, 2)), Array2::zeros((3, 2)));
                net.predict_x0(level, xp.view(), p.view_mut()).unwrap();
                net.predict_x0(level, xm.view(), m.view_mut()).unwrap();
                for i in 0..3 {
                    assert!((x0[[i, j]] - plain[[i, j]]).abs() < 1e-12 * (1.0 + plain[[i, j]].abs()));
                    let fd: f64 = (0..2).map(|k| r[[i, k]] * (p[[i, k]] - m[[i, k]]) / (2.0 * h)).sum();
                    let scale = 1.0 + fd.abs();
                    assert!(
                        (vjp[[i, j]] - fd).abs() < 1e-6 * scale,
                        "{output:?} t = {tt} row {i} col {j}: {} vs {fd}",
                        vjp[[i, j]]
                    );
                }
            }
        }
    }
    std::fs::remove_dir_all(&d).ok();
}
