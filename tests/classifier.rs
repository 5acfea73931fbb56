//! A trained noisy classifier against the exact one: its autodiff gradient against finite
//! differences of its own log-probabilities, its cross-entropy against the exact classifier's
//! (the lowest any classifier can reach), its checkpoint, and guidance with it.

use ndarray::Array2;
use scoresde::guidance::{ClassGradient, ClassifierGuided, ExactClassifier};
use scoresde::model::{ExactScore, NoiseLevel, ScoreModel};
use scoresde::nn::{ClassifierTraining, NetClassifier};
use scoresde::process::Vp;
use scoresde::sampler::prior_noise;
use scoresde::targets;

fn trained() -> (Vp, NetClassifier) {
    let vp = Vp::new(0.1, 20.0).unwrap();
    let training =
        ClassifierTraining { classes: vec![vec![0, 1], vec![2, 3]], steps: 400, batch: 256, lr: 3e-3, seed: 1 };
    let net = NetClassifier::train(&vp, &targets::quad4(), training, serde_json::json!({}), &candle_core::Device::Cpu)
        .unwrap();
    (vp, net)
}

/// One test for the training run it shares (400 steps, a few seconds):
/// - the gradient by autodiff is the central difference of the network's own log p(c | x)
///   (step 1e-5: truncation ~1e-10, rounding ~1e-11 / 1e-5; 1e-6 is safe);
/// - Gibbs' inequality: on 20k paired noised draws at three levels, the trained classifier's
///   cross-entropy is not below the exact classifier's by more than 5 standard errors of the
///   paired difference (false-positive rate < 1e-6 per level), and a trained one comes within
///   0.05 nats of it (the training budget's target; measured ~0.01 at 2000 steps);
/// - save then load gives the same outputs bit for bit, and the file is refused as a score
///   network;
/// - classifier guidance with it at scale 0 is the unguided exact score.
#[test]
fn a_trained_classifier_against_the_exact_one() {
    let (vp, net) = trained();
    let target = targets::quad4();
    let level = NoiseLevel::at_time(&vp, 0.2);
    let x = prior_noise(3, 16, 2);
    let mut g = Array2::zeros(x.dim());
    net.grad_log_prob(level, x.view(), 1, g.view_mut()).unwrap();
    for j in 0..2 {
        let h = 1e-5;
        let (mut xp, mut xm) = (x.clone(), x.clone());
        xp.column_mut(j).mapv_inplace(|v| v + h);
        xm.column_mut(j).mapv_inplace(|v| v - h);
        let (lp, lm) = (net.log_probs(level, xp.view()).unwrap(), net.log_probs(level, xm.view()).unwrap());
        for i in 0..x.nrows() {
            let fd = (lp[[i, 1]] - lm[[i, 1]]) / (2.0 * h);
            assert!((g[[i, j]] - fd).abs() < 1e-6, "row {i} coordinate {j}: {} vs {fd}", g[[i, j]]);
        }
    }
    for t in [0.05, 0.3, 0.7] {
        let (ours, exact, se) = net.cross_entropies(&vp, &target, t, (20_000, 5)).unwrap();
        assert!(ours > exact - 5.0 * se, "t = {t}: {ours} below the exact {exact} (se {se})");
        assert!(ours < exact + 0.05, "t = {t}: {ours} against the exact {exact}");
    }
    let dir = std::env::temp_dir().join(format!("scoresde-classifier-{}", std::process::id()));
    let path = dir.join("c.safetensors");
    net.save(&path).unwrap();
    let back = NetClassifier::load(&path, &candle_core::Device::Cpu).unwrap();
    assert_eq!(back.log_probs(level, x.view()).unwrap(), net.log_probs(level, x.view()).unwrap());
    let err = scoresde::nn::NetScore::load(&path, &candle_core::Device::Cpu).err().unwrap().to_string();
    assert!(err.contains("format") || err.contains("checkpoint"), "{err}");
    let exact_score = ExactScore::new(target.clone());
    let guided =
        ClassifierGuided::with(Box::new(exact_score.clone()), Box::new(back.of_class(0).unwrap()), 0.0).unwrap();
    let (mut a, mut b) = (Array2::zeros(x.dim()), Array2::zeros(x.dim()));
    guided.predict_eps(level, x.view(), a.view_mut()).unwrap();
    exact_score.predict_eps(level, x.view(), b.view_mut()).unwrap();
    assert_eq!(a, b);
    // The exact classifier behind the same trait: its gradient is its own.
    let exact = ExactClassifier::new(&target, &[0, 1]).unwrap();
    let (mut ge, mut gd) = (Array2::zeros(x.dim()), Array2::zeros(x.dim()));
    exact.grad_log_prob_at(level, x.view(), ge.view_mut()).unwrap();
    exact.grad_log_prob(level.alpha, level.sigma, x.view(), gd.view_mut());
    assert_eq!(ge, gd);
    std::fs::remove_dir_all(&dir).ok();
}
