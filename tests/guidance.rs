//! Classifier guidance with the exact classifier and the guidance rules, run through samplers
//! against exact references.

use ndarray::{Array2, Axis};
use scoresde::gmm::GaussianMixture;
use scoresde::grids::{build_grid, Schedule, Space};
use scoresde::guidance::{sub_mixture, ClassifierGuided, Guidance, GuidanceRule, Guided, GuidedExact};
use scoresde::model::{ExactScore, ScoreModel};
use scoresde::process::{ForwardProcess, Vp};
use scoresde::sampler::{prior_noise, sample, SamplerConfig, Solver, Steps};
use scoresde::targets;
use scoresde_solvers::no_observer;

fn heun(p: &dyn ForwardProcess, steps: usize) -> SamplerConfig {
    let grid = build_grid(p, Schedule::LogSnr, steps, p.t_max(), p.t_end_default(), Space::Time).unwrap();
    SamplerConfig::new(p, Solver::Heun, Space::Time, Steps::Grid(grid)).unwrap()
}

fn run(p: &dyn ForwardProcess, model: &dyn ScoreModel, z: &Array2<f64>, steps: usize) -> Array2<f64> {
    sample(p, model, &heun(p, steps), z.view(), None, &mut no_observer).unwrap().0
}

/// At classifier scale 1 the exact classifier's guidance is the class's exact score: the
/// probability flow gives the conditional model's samples (to round-off along 100 Heun
/// steps), and 20k samples have the class law's mean and variances within 5 standard errors
/// (false-positive rate 5.7e-7 per check; Heun's bias at 100 steps is under 1e-4, far below
/// the standard errors of ~4e-3).
#[test]
fn classifier_guidance_at_scale_one_samples_the_class_law() {
    let vp = Vp::new(0.1, 20.0).unwrap();
    let target = targets::quad4();
    let class = [0, 1];
    let n = 20_000;
    let z = prior_noise(11, n, 2);
    let guided = run(&vp, &ClassifierGuided::new(&target, &class, 1.0).unwrap(), &z, 100);
    let cond: GaussianMixture = sub_mixture(&target, &class).unwrap();
    let conditional = run(&vp, &ExactScore::new(cond.clone()), &z, 100);
    let gap = (&guided - &conditional).iter().fold(0.0f64, |m, v| m.max(v.abs()));
    assert!(gap < 1e-9, "classifier-guided vs conditional samples: {gap}");
    let t_end = vp.t_end_default();
    let (mean, cov) = cond.moments(vp.alpha(t_end), vp.sigma(t_end));
    let m = guided.mean_axis(Axis(0)).unwrap();
    for j in 0..2 {
        let c = guided.column(j);
        let v = c.iter().map(|x| (x - m[j]).powi(2)).sum::<f64>() / (n - 1) as f64;
        // The variance's standard error from the sample's fourth central moment.
        let m4 = c.iter().map(|x| (x - m[j]).powi(4)).sum::<f64>() / n as f64;
        let (zm, zv) =
            ((m[j] - mean[j]) / (cov[[j, j]] / n as f64).sqrt(), (v - cov[[j, j]]) / ((m4 - v * v) / n as f64).sqrt());
        println!("coordinate {j}: mean {zm:+.2} SE, variance {zv:+.2} SE");
        assert!(zm.abs() < 5.0 && zv.abs() < 5.0, "coordinate {j}: mean {zm} SE, variance {zv} SE");
    }
    // The class is not the whole mixture: its mean is (-0.5, 0.5), the mixture's 0; the test
    // above would see the unguided sampler at 70 standard errors.
    assert!((mean[0] + 0.5).abs() < 1e-2 && (mean[1] - 0.5).abs() < 1e-2, "{mean}");
}

/// A guided model of two exact models under the CFG rule is GuidedExact; every rule at w = 0
/// samples as the conditional model; a rule whose interval excludes the whole path too.
#[test]
fn guided_models_reduce_to_cfg_and_to_the_conditional() {
    let vp = Vp::new(0.1, 20.0).unwrap();
    let target = targets::quad4();
    let class = [2, 3];
    let z = prior_noise(5, 200, 2);
    let cond = || Box::new(ExactScore::new(sub_mixture(&target, &class).unwrap())) as Box<dyn ScoreModel>;
    let uncond = || Box::new(ExactScore::new(target.clone())) as Box<dyn ScoreModel>;
    let max_gap = |a: &Array2<f64>, b: &Array2<f64>| (a - b).iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let w = 2.0;
    let cfg = run(&vp, &Guided::new(cond(), uncond(), Guidance::cfg(w)).unwrap(), &z, 30);
    let exact = run(&vp, &GuidedExact::new(&target, &class, w).unwrap(), &z, 30);
    assert!(max_gap(&cfg, &exact) < 1e-10, "{}", max_gap(&cfg, &exact));
    let conditional = run(&vp, &*cond(), &z, 30);
    for rule in [GuidanceRule::Cfg, GuidanceRule::Rescale { phi: 0.7 }, GuidanceRule::apg(0.0, 1.0)] {
        let x = run(&vp, &Guided::new(cond(), uncond(), Guidance::new(rule, 0.0)).unwrap(), &z, 30);
        // The same eps up to the round trip through the rule's space.
        assert!(max_gap(&x, &conditional) < 1e-9, "{} at w = 0: {}", rule.name(), max_gap(&x, &conditional));
        let mut off = Guidance::new(rule, 4.0);
        off.interval = Some((1e3, f64::INFINITY));
        let x = run(&vp, &Guided::new(cond(), uncond(), off).unwrap(), &z, 30);
        assert!(max_gap(&x, &conditional) < 1e-9, "{} outside its interval", rule.name());
        let on = run(&vp, &Guided::new(cond(), uncond(), Guidance::new(rule, 4.0)).unwrap(), &z, 30);
        assert!(max_gap(&on, &conditional) > 1e-3, "{} at w = 4 guides", rule.name());
    }
}
