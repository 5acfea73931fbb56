//! CFG++ (Chung et al. 2024) as ComfyUI runs it: `euler-cfg-pp` and `dpmpp-2m-cfg-pp` against
//! their base solvers where guidance vanishes, against a step-by-step transcription of their
//! updates, and with every kind of guided model.

use ndarray::{Array2, Zip};
use scoresde::gmm::GaussianMixture;
use scoresde::grids::{build_grid, Schedule, Space};
use scoresde::guidance::{sub_mixture, ClassifierGuided, Guidance, GuidanceRule, Guided, GuidedExact};
use scoresde::model::{ExactScore, NoiseLevel, ScoreModel};
use scoresde::process::{ForwardProcess, Vp};
use scoresde::sampler::{prior_noise, sample, SamplerConfig, Solver, Steps};
use scoresde::targets;
use scoresde_solvers::no_observer;

fn config(p: &dyn ForwardProcess, solver: &str, steps: usize) -> SamplerConfig {
    let grid = build_grid(p, Schedule::LogSnr, steps, p.t_max(), p.t_end_default(), Space::SigmaTilde).unwrap();
    SamplerConfig::new(p, Solver::from_name(solver).unwrap(), Space::SigmaTilde, Steps::Grid(grid)).unwrap()
}

fn run(p: &dyn ForwardProcess, model: &dyn ScoreModel, solver: &str, z: &Array2<f64>, steps: usize) -> Array2<f64> {
    sample(p, model, &config(p, solver, steps), z.view(), None, &mut no_observer).unwrap().0
}

fn max_gap(a: &Array2<f64>, b: &Array2<f64>) -> f64 {
    (a - b).iter().fold(0.0f64, |m, v| m.max(v.abs()))
}

/// With the class made of every component the conditional is the mixture itself (weights
/// renormalised by a sum of one): guided and unconditional predictions agree to round-off, and
/// each CFG++ solver is its base solver, to 1e-12 after 20 steps at w = 2.
#[test]
fn without_a_guidance_direction_cfg_pp_is_its_base_solver() {
    let vp = Vp::new(0.1, 20.0).unwrap();
    let target = targets::ring8();
    let all: Vec<usize> = (0..target.n_components()).collect();
    let guided = GuidedExact::new(&target, &all, 2.0).unwrap();
    let exact = ExactScore::new(target.clone());
    let z = prior_noise(3, 300, 2);
    for (pp, base) in [("euler-cfg-pp", "ddim"), ("dpmpp-2m-cfg-pp", "dpmpp-2m")] {
        let gap = max_gap(&run(&vp, &guided, pp, &z, 20), &run(&vp, &exact, base, &z, 20));
        assert!(gap < 1e-12, "{pp} vs {base}: {gap}");
    }
}

/// The eps of the conditional and unconditional mixtures at sigma~ (x~ scaled to x = alpha x~).
fn eps_pair(p: &Vp, cond: &GaussianMixture, all: &GaussianMixture, s: f64, x: &Array2<f64>) -> [Array2<f64>; 2] {
    let level = NoiseLevel::at_sigma_tilde(p, s);
    let scaled = x * level.alpha;
    let (mut c, mut u) = (Array2::zeros(x.dim()), Array2::zeros(x.dim()));
    cond.eps(level.alpha, level.sigma, scaled.view(), c.view_mut());
    all.eps(level.alpha, level.sigma, scaled.view(), u.view_mut());
    [c, u]
}

/// The solvers' updates written out from the papers' formulas with the mixtures' eps directly
/// (not through the models' pairs): lambda = 1 + w, D = x~ - sigma~ eps,
/// euler: x <- D_g + sigma_1 (x - D_u) / sigma_0;
/// 2M: x <- D_g + e^{-h} (x - D_u) - expm1(-h) / (2 r) (D_g - D_u') after the first step.
/// The solvers agree to 1e-12 over 12 steps (round-off of a few operations per step).
#[test]
fn cfg_pp_steps_follow_their_formulas() {
    let vp = Vp::new(0.1, 20.0).unwrap();
    let target = targets::quad4();
    let class = [0, 1];
    let cond = sub_mixture(&target, &class).unwrap();
    let w = 0.6;
    let model = GuidedExact::new(&target, &class, w).unwrap();
    let z = prior_noise(5, 64, 2);
    let steps = 12;
    let grid = build_grid(&vp, Schedule::LogSnr, steps, vp.t_max(), vp.t_end_default(), Space::SigmaTilde).unwrap();
    let sig: Vec<f64> = grid.points().to_vec();
    for solver in ["euler-cfg-pp", "dpmpp-2m-cfg-pp"] {
        // The sampler starts from x~ = prior_std z / alpha(sigma~_0).
        let scale = vp.prior_std() / NoiseLevel::at_sigma_tilde(&vp, sig[0]).alpha;
        let mut x = z.mapv(|v| scale * v);
        let mut prev_u: Option<(Array2<f64>, f64)> = None;
        for k in 0..steps {
            let (s0, s1) = (sig[k], sig[k + 1]);
            let [c, u] = eps_pair(&vp, &cond, &target, s0, &x);
            let d_u = &x - &(&u * s0);
            let d_g = &x - &((&c * (1.0 + w) - &u * w) * s0);
            let h = s0.ln() - s1.ln();
            let mut next = &d_g + &((&x - &d_u) * (s1 / s0));
            if let (Some((p, h_prev)), true) = (&prev_u, solver == "dpmpp-2m-cfg-pp" && s1 > 0.0) {
                let r = h_prev / h;
                Zip::from(&mut next).and(&d_g).and(p).for_each(|n, &g, &p| *n -= (-h).exp_m1() / (2.0 * r) * (g - p));
            }
            prev_u = Some((d_u, h));
            x = next;
        }
        // The sampler returns x = alpha x~ at the end.
        let alpha = NoiseLevel::at_sigma_tilde(&vp, *sig.last().unwrap()).alpha;
        let ours = run(&vp, &model, solver, &z, steps);
        let gap = max_gap(&ours, &(x * alpha));
        assert!(gap < 1e-12, "{solver}: {gap}");
    }
}

/// Every guided model gives the pair, and its guided half is what it predicts; a model that
/// is not guided refuses the solver before any step.
#[test]
fn every_guided_model_gives_its_pair_and_unguided_ones_are_refused() {
    let target = targets::quad4();
    let class = [0, 1];
    let level = NoiseLevel { t: 0.4, alpha: 0.8, sigma: 0.6 };
    let x = prior_noise(2, 7, 2);
    let cond = Box::new(ExactScore::new(sub_mixture(&target, &class).unwrap()));
    let rule = Guidance::new(GuidanceRule::apg(0.0, 0.0), 1.5);
    let models: Vec<Box<dyn ScoreModel>> = vec![
        Box::new(GuidedExact::new(&target, &class, 1.5).unwrap()),
        Box::new(Guided::new(cond, Box::new(ExactScore::new(target.clone())), rule).unwrap()),
        Box::new(ClassifierGuided::new(&target, &class, 2.5).unwrap()),
    ];
    let mut u_exact = Array2::zeros(x.dim());
    target.eps(level.alpha, level.sigma, x.view(), u_exact.view_mut());
    for m in &models {
        assert!(m.has_pair());
        let (mut g, mut u, mut p) = (Array2::zeros(x.dim()), Array2::zeros(x.dim()), Array2::zeros(x.dim()));
        m.predict_eps_pair(level, x.view(), g.view_mut(), u.view_mut()).unwrap();
        m.predict_eps(level, x.view(), p.view_mut()).unwrap();
        assert!(max_gap(&g, &p) < 1e-12 && max_gap(&u, &u_exact) < 1e-12);
    }
    let vp = Vp::new(0.1, 20.0).unwrap();
    let plain = ExactScore::new(target);
    let err = sample(&vp, &plain, &config(&vp, "dpmpp-2m-cfg-pp", 5), x.view(), None, &mut no_observer).unwrap_err();
    assert!(err.to_string().contains("needs a guided model"), "{err}");
}

/// A class-conditional network's pair: two passes whose combination is its guided prediction
/// (the fused path's own combination) to 1e-12, and whose unconditional half is the null label's.
#[test]
fn a_guided_network_gives_its_pair() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("plots/quad4_vp_cfg_model.safetensors");
    let net = scoresde::nn::NetScore::load(&path, &scoresde::nn::device()).unwrap();
    let (guided, uncond) = (net.guided(0, 2.0).unwrap(), net.guided(0, -1.0).unwrap());
    let level = NoiseLevel { t: 0.4, alpha: 0.8, sigma: 0.6 };
    let x = prior_noise(4, 33, 2);
    let (mut g, mut u, mut p, mut q) =
        (Array2::zeros(x.dim()), Array2::zeros(x.dim()), Array2::zeros(x.dim()), Array2::zeros(x.dim()));
    guided.predict_pair(level, x.view(), g.view_mut(), u.view_mut()).unwrap();
    guided.predict(level, x.view(), p.view_mut()).unwrap();
    uncond.predict(level, x.view(), q.view_mut()).unwrap();
    assert!(max_gap(&g, &p) < 1e-12, "{}", max_gap(&g, &p));
    assert!(max_gap(&u, &q) < 1e-12, "{}", max_gap(&u, &q));
    assert!(!net.has_pair());
}

/// Why CFG++'s law depends on the grid: one `euler-cfg-pp` step from sigma_0 to sigma_1 at
/// lambda is exactly one CFG `ddim` step at scale lambda / (1 - sigma_1 / sigma_0), since CFG's
/// step moves (1 - sigma_1 / sigma_0) s (D_c - D_u) beyond the unconditional step and CFG++'s
/// lambda (D_c - D_u). An algebraic identity, checked to 1e-12 on two step sizes.
#[test]
fn a_cfg_pp_step_is_a_cfg_step_at_a_step_dependent_scale() {
    let vp = Vp::new(0.1, 20.0).unwrap();
    let target = targets::quad4();
    let class = [0, 1];
    let lambda = 0.6;
    let z = prior_noise(9, 50, 2);
    for (s0, s1) in [(2.0, 1.6), (0.5, 0.1)] {
        let one = |solver: &str, w: f64| {
            let grid = scoresde_solvers::TimeGrid::new(vec![s0, s1]).unwrap();
            let config =
                SamplerConfig::new(&vp, Solver::from_name(solver).unwrap(), Space::SigmaTilde, Steps::Grid(grid))
                    .unwrap();
            let model = GuidedExact::new(&target, &class, w).unwrap();
            sample(&vp, &model, &config, z.view(), None, &mut no_observer).unwrap().0
        };
        let scale = lambda / (1.0 - s1 / s0);
        let gap = max_gap(&one("euler-cfg-pp", lambda - 1.0), &one("ddim", scale - 1.0));
        assert!(gap < 1e-12, "sigma {s0} -> {s1}: {gap}");
    }
}
