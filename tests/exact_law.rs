//! Exact output laws of samplers on a Gaussian target (src/gaussian.rs) and exact Gaussian W2.

mod common;
use common::order_slope;
use ndarray::{array, Axis};
use scoresde::gaussian::{exact_flow_law, exact_output_law, target_law, w2_gaussian, GaussianLaw};
use scoresde::grids::{build_grid, Schedule, Space};
use scoresde::model::ExactScore;
use scoresde::process::{ForwardProcess, Ve, Vp};
use scoresde::sampler::{prior_noise, sample, DdpmVariance, SamplerConfig, Solver, Steps};
use scoresde::targets;
use scoresde_solvers::{no_observer, KeyedNoise};

fn config(p: &dyn ForwardProcess, solver: Solver, space: Space, steps: usize) -> SamplerConfig {
    let grid = build_grid(p, Schedule::LogSnr, steps, p.t_max(), p.t_end_default(), space).unwrap();
    SamplerConfig::new(p, solver.clone(), space, Steps::Grid(grid)).unwrap()
}

#[test]
fn gaussian_w2_closed_forms() {
    let law = |m: [f64; 2], c: [[f64; 2]; 2]| GaussianLaw { mean: array![m[0], m[1]], cov: array![c[0], c[1]] };
    let a = law([1.0, 2.0], [[2.0, 0.5], [0.5, 1.0]]);
    assert!(w2_gaussian(&a, &a) < 1e-7);
    let shifted = law([4.0, -2.0], [[2.0, 0.5], [0.5, 1.0]]);
    assert!((w2_gaussian(&a, &shifted) - 5.0).abs() < 1e-7);
    // Commuting (diagonal) covariances: W2^2 = sum (sqrt l1 - sqrt l2)^2.
    let p = law([0.0, 0.0], [[4.0, 0.0], [0.0, 1.0]]);
    let q = law([0.0, 0.0], [[1.0, 0.0], [0.0, 9.0]]);
    assert!((w2_gaussian(&p, &q) - (1.0f64 + 4.0).sqrt()).abs() < 1e-12);
}

#[test]
fn exact_w2_of_ode_samplers_falls_at_their_order() {
    // The deterministic samplers transport the prior along an approximate flow; the exact W2
    // between their output law and the exact flow's law (the prior pushed by the exact flow map) is
    // their distributional discretisation error, with no Monte Carlo noise at all.
    let vp = Vp::new(0.1, 20.0).unwrap();
    let ve = Ve::new(0.01, 50.0).unwrap();
    let target = targets::gauss2();
    for (p, solver, space, order, ns) in [
        (&vp as &dyn ForwardProcess, Solver::Euler, Space::Time, 1.0, [100usize, 200, 400, 800]),
        (&vp, Solver::Heun, Space::Time, 2.0, [50, 100, 200, 400]),
        (&vp, Solver::Heun, Space::SigmaTilde, 2.0, [50, 100, 200, 400]),
        (&ve, Solver::Rk4, Space::Time, 4.0, [25, 50, 100, 200]),
    ] {
        assert_eq!(order, solver.order() as f64, "{}: the registry's order", solver.name());
        let t_end = p.t_end_default();
        let truth = exact_flow_law(p, &target, p.t_max(), t_end).unwrap();
        let errs: Vec<f64> = ns
            .iter()
            .map(|&n| w2_gaussian(&exact_output_law(p, &target, &config(p, solver.clone(), space, n)).unwrap(), &truth))
            .collect();
        let s = order_slope(&ns, &errs);
        println!("{} {} {space:?}: exact W2 {errs:?}, order {s:.3} (theory {order})", p.name(), solver.name());
        assert!((s - order).abs() < 0.15, "{} {}: fitted {s}", p.name(), solver.name());
    }
}

#[test]
fn exact_law_of_a_stochastic_sampler_matches_monte_carlo() {
    // 20k samples: the sample mean is within 5 standard errors of the exact law's mean, and each
    // variance within 5 standard errors (sqrt(2/(n-1)) C_jj): false-positive rate 5.7e-7 per check.
    let vp = Vp::new(0.1, 20.0).unwrap();
    let target = targets::gauss2();
    for solver in [Solver::EulerMaruyama, Solver::Ancestral, Solver::ReverseDiffusion] {
        let cfg = config(&vp, solver.clone(), Space::Time, 30);
        let law = exact_output_law(&vp, &target, &cfg).unwrap();
        let n = 20_000;
        let z = prior_noise(8, n, 2);
        let model = ExactScore::new(target.clone());
        let (x, _) = sample(&vp, &model, &cfg, z.view(), Some(&mut KeyedNoise::new(3)), &mut no_observer).unwrap();
        let m = x.mean_axis(Axis(0)).unwrap();
        for j in 0..2 {
            let c = law.cov[[j, j]];
            let v = x.column(j).iter().map(|v| (v - m[j]).powi(2)).sum::<f64>() / (n - 1) as f64;
            let (zm, zv) =
                ((m[j] - law.mean[j]) / (c / n as f64).sqrt(), (v - c) / (c * (2.0 / (n - 1) as f64).sqrt()));
            println!("{} coord {j}: mean {zm:+.2} SE, variance {zv:+.2} SE", solver.name());
            assert!(zm.abs() < 5.0 && zv.abs() < 5.0, "{} coord {j}: {zm}, {zv}", solver.name());
        }
        // 30 coarse steps: the sampler's own law is measurably off the target (so the comparison
        // above is with the sampler's law, not the target's).
        let t_end = vp.t_end_default();
        let w = w2_gaussian(&law, &target_law(&target, vp.alpha(t_end), vp.sigma(t_end)));
        println!("{}: exact W2 to the target at 30 steps {w:.3e}", solver.name());
    }
}

#[test]
fn exact_w2_of_sde_samplers_falls_at_weak_order_one() {
    // The reverse SDE contracts the prior mismatch (by ~alpha(T), far below these errors), so the
    // exact W2 to the target's law at the grid end is the weak discretisation error: order 1.
    let vp = Vp::new(0.1, 20.0).unwrap();
    let target = targets::gauss2();
    let t_end = vp.t_end_default();
    let truth = target_law(&target, vp.alpha(t_end), vp.sigma(t_end));
    let ns = [100usize, 200, 400, 800];
    for (solver, space) in [
        (Solver::EulerMaruyama, Space::Time),
        (Solver::Ancestral, Space::Time),
        (Solver::ReverseDiffusion, Space::Time),
        (Solver::Ddpm(DdpmVariance::FixedLarge), Space::Time),
        (Solver::Ddim { eta: 0.5 }, Space::SigmaTilde),
    ] {
        let errs: Vec<f64> = ns
            .iter()
            .map(|&n| {
                w2_gaussian(&exact_output_law(&vp, &target, &config(&vp, solver.clone(), space, n)).unwrap(), &truth)
            })
            .collect();
        let s = order_slope(&ns, &errs);
        println!("vp {}: exact W2 {errs:?}, weak order {s:.3} (theory 1)", solver.name());
        assert!((s - 1.0).abs() < 0.15, "{}: fitted {s}", solver.name());
    }
}

#[test]
fn exact_flow_map_matches_the_diagonal_formula_and_inverts() {
    use scoresde::gaussian::exact_flow_map;
    let vp = Vp::new(0.1, 20.0).unwrap();
    // Diagonal target: per coordinate x_i(t) = a_t mu_i + sqrt(c_i(t)/c_i(u)) (x_i(u) - a_u mu_i).
    let diag = scoresde::gmm::GaussianMixture::new(
        vec![1.0],
        array![[1.0, -0.5]],
        scoresde::gmm::Covariance::Diagonal(array![[0.5, 2.0]]),
    )
    .unwrap();
    let x = prior_noise(4, 5, 2);
    let (u, t) = (0.9, 0.05);
    let got = exact_flow_map(&vp, &diag, x.view(), u, t).unwrap();
    let (mu, l) = ([1.0, -0.5], [0.5, 2.0]);
    for (r, g) in x.outer_iter().zip(got.outer_iter()) {
        for i in 0..2 {
            let c = |s: f64| vp.alpha(s).powi(2) * l[i] + vp.sigma(s).powi(2);
            let want = vp.alpha(t) * mu[i] + (c(t) / c(u)).sqrt() * (r[i] - vp.alpha(u) * mu[i]);
            assert!((g[i] - want).abs() < 1e-12, "{} vs {want}", g[i]);
        }
    }
    // Full covariance: mapping there and back is the identity.
    let full = targets::gauss2();
    let there = exact_flow_map(&vp, &full, x.view(), u, t).unwrap();
    let back = exact_flow_map(&vp, &full, there.view(), t, u).unwrap();
    assert!((&back - &x).iter().all(|v| v.abs() < 1e-12));
}

#[test]
fn exact_flow_law_in_sigma_space_is_the_ve_flow_law() {
    // VE has alpha = 1, so its flow from t = 1 (sigma_max, the prior std) is the sigma-space
    // flow from sigma_max: the two laws agree to round-off, at interior and end levels alike.
    let ve = Ve::new(0.01, 50.0).unwrap();
    for target in [
        targets::gauss2(),
        scoresde::gmm::GaussianMixture::new(
            vec![1.0],
            array![[0.5, -1.0, 2.0]],
            scoresde::gmm::Covariance::Diagonal(array![[0.2, 1.5, 3.0]]),
        )
        .unwrap(),
    ] {
        for t_end in [0.9, 0.3, 0.0] {
            let by_time = exact_flow_law(&ve, &target, 1.0, t_end).unwrap();
            let by_sigma = scoresde::gaussian::exact_flow_law_sigma(&target, 50.0, ve.sigma(t_end)).unwrap();
            // W2 of equal laws is round-off of the traces: up to sqrt(eps tr S) (S ~ 10^3 at t = 0.9).
            let tr: f64 = by_time.cov.diag().sum();
            assert!(w2_gaussian(&by_time, &by_sigma) < 1e-7 * tr.sqrt(), "t_end = {t_end}");
            let mean_gap = (&by_time.mean - &by_sigma.mean).iter().fold(0.0f64, |m, v| m.max(v.abs()));
            assert!(mean_gap < 1e-12, "{mean_gap}");
            let worst = (&by_time.cov - &by_sigma.cov).iter().fold(0.0f64, |m, v| m.max(v.abs()));
            assert!(worst < 1e-10 * by_time.cov.iter().fold(1.0f64, |m, v| m.max(v.abs())), "{worst}");
        }
    }
    assert!(scoresde::gaussian::exact_flow_law_sigma(&targets::gauss2(), -1.0, 0.0).is_err());
    assert!(scoresde::gaussian::exact_flow_law_sigma(&targets::ring8(), 80.0, 0.0).is_err());
}

#[test]
fn annealed_langevin_reaches_the_stationary_law_of_unadjusted_langevin() {
    // ULA with step a on N(m, C) is x <- x - (a/2) C^{-1} (x - m) + sqrt(a) z: affine, so its law
    // is exact here, and its stationary law is N(m, V diag(c / (1 - a / (4 c))) V^T) (the
    // Lyapunov equation in C's eigenbasis). After enough moves at the last level (contraction
    // (1 - a / (2 c))^moves < 1e-20) the sampler's exact law is that law to round-off, whatever
    // the levels before it; its distance to the level's true law is the bias of unadjusted Langevin.
    let vp = Vp::new(0.1, 20.0).unwrap();
    let target = targets::gauss2();
    let t_end = 0.3;
    let level = target_law(&target, vp.alpha(t_end), vp.sigma(t_end));
    let a = 0.05;
    let c = nalgebra::DMatrix::from_fn(2, 2, |i, j| level.cov[[i, j]]);
    let e = nalgebra::SymmetricEigen::new(c);
    let inflated = e.eigenvalues.map(|c| c / (1.0 - a / (4.0 * c)));
    let ula_cov = &e.eigenvectors * nalgebra::DMatrix::from_diagonal(&inflated) * e.eigenvectors.transpose();
    let ula =
        GaussianLaw { mean: level.mean.clone(), cov: ndarray::Array2::from_shape_fn((2, 2), |(i, j)| ula_cov[(i, j)]) };
    let bias = w2_gaussian(&ula, &level);
    for steps in [1usize, 4] {
        let grid = build_grid(&vp, Schedule::LogSnr, steps, vp.t_max(), t_end, Space::Time).unwrap();
        let solver = Solver::Ald { step_size: a, langevin_steps: 1500 };
        let cfg = SamplerConfig::new(&vp, solver, Space::Time, Steps::Grid(grid)).unwrap();
        let law = exact_output_law(&vp, &target, &cfg).unwrap();
        // Moments compared directly (W2 of nearly equal laws has a sqrt(round-off) floor).
        let off =
            (&law.cov - &ula.cov).iter().chain((&law.mean - &ula.mean).iter()).fold(0.0f64, |m, v| m.max(v.abs()));
        println!("ald, {steps} level(s): moments off ULA's stationary law by {off:.2e}, ULA's bias W2 {bias:.3e}");
        assert!(off < 1e-12, "{steps} levels: {off}");
    }
    // The bias is first order in a: sqrt(c / (1 - a/(4c))) - sqrt(c) = a / (8 sqrt c) (1 + O(a/c)),
    // so W2 = (a/8) sqrt(sum 1/c_i) (1 + O(a / c_min)); a / c_min < 0.1 here.
    let first_order = a / 8.0 * e.eigenvalues.iter().map(|c| 1.0 / c).sum::<f64>().sqrt();
    let c_min = e.eigenvalues.min();
    println!("ULA bias {bias:.4e}, first order {first_order:.4e}, a / c_min = {:.3}", a / c_min);
    assert!(a / c_min < 0.1 && (bias / first_order - 1.0).abs() < a / c_min, "{bias} vs {first_order}");
}

#[test]
fn zero_snr_removes_the_prior_mismatch_of_the_sd_chain() {
    // Stable Diffusion 1.5's chain ends at alpha_T = sqrt(ab_999) = 0.068, so starting from
    // N(0, I) is a prior mismatch that no step count removes: the exact flow of that prior misses
    // the data law by a fixed W2. Rescaled to zero terminal SNR (alpha_T = 2^-12) the mismatch is
    // ~2^-12 |mu|. DDIM converges (order 1) to the exact flow of its prior, not to the data law.
    use scoresde::process::{BetaSchedule, Ddpm, DdpmTable};
    let target = targets::gauss2();
    let data = target_law(&target, 1.0, 0.0);
    let mut limits = vec![];
    for zero_snr in [false, true] {
        let chain = Ddpm::new(DdpmTable::Betas {
            train_steps: 1000,
            schedule: BetaSchedule::ScaledLinear,
            beta_start: 0.00085,
            beta_end: 0.012,
            rescale_zero_snr: zero_snr,
        })
        .unwrap();
        let limit = exact_flow_law(&chain, &target, 999.0, -1.0).unwrap();
        let bias = w2_gaussian(&limit, &data);
        let ns = [100usize, 200, 400];
        let errs: Vec<f64> = ns
            .iter()
            .map(|&n| {
                let grid =
                    build_grid(&chain, Schedule::Karras { rho: 7.0 }, n, 999.0, -1.0, Space::SigmaTilde).unwrap();
                let cfg = SamplerConfig::new(&chain, Solver::Ddim { eta: 0.0 }, Space::SigmaTilde, Steps::Grid(grid))
                    .unwrap();
                w2_gaussian(&exact_output_law(&chain, &target, &cfg).unwrap(), &limit)
            })
            .collect();
        let order = order_slope(&ns, &errs);
        println!("zero-SNR {zero_snr}: W2(exact flow of the prior, data) = {bias:.3e}; DDIM to that flow {errs:?}, order {order:.3}");
        assert!((order - 1.0).abs() < 0.15, "{order}");
        limits.push(bias);
    }
    assert!(limits[0] > 0.02 && limits[1] < 1e-3, "{limits:?}");
}
