//! Property tests (proptest; failures shrink to a minimal process, target, grid and seed).

use ndarray::{s, Array2};
use proptest::prelude::*;
use scoresde::gmm::{Covariance, GaussianMixture};
use scoresde::grids::Space;
use scoresde::model::ExactScore;
use scoresde::process::*;
use scoresde::sampler::{prior_noise, sample, SamplerConfig, Solver, Steps};
use scoresde_solvers::{no_observer, KeyedNoise, TimeGrid};

fn process(kind: usize, a: f64, b: f64) -> Box<dyn ForwardProcess> {
    match kind {
        0 => Box::new(Vp::new(a, a + 10.0 * b).unwrap()),
        1 => Box::new(SubVp::new(a, a + 10.0 * b).unwrap()),
        2 => Box::new(Ve::new(0.01 * a, 10.0 * b + 0.02).unwrap()),
        3 => Box::new(VpCosine::default()),
        _ => Box::new(Edm::new(0.002 * a, 80.0 * b + 0.01).unwrap()),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// On a point mass the denoiser is the constant mu, and DDIM (Euler in sigma space) moves along
    /// the exact flow x~ -> mu + (s1/s0)(x~ - mu): any grid ending at sigma = 0 lands on mu.
    #[test]
    fn ddim_is_exact_on_a_point_mass(
        kind in 0usize..5, a in 0.05f64..1.0, b in 0.1f64..3.0, d in 1usize..4,
        mu in prop::collection::vec(-5.0f64..5.0, 3), levels in prop::collection::vec(0.01f64..100.0, 1..5), seed in 0u64..1000,
    ) {
        let p = process(kind, a, b);
        let target = GaussianMixture::new(vec![1.0], Array2::from_shape_fn((1, d), |(_, j)| mu[j]), Covariance::Isotropic(vec![1e-14])).unwrap();
        let mut sig = levels.clone();
        sig.sort_by(|x, y| y.total_cmp(x));
        sig.dedup();
        sig.push(0.0);
        let grid = TimeGrid::new(sig).unwrap();
        let cfg = SamplerConfig::new(p.as_ref(), Solver::Euler, Space::SigmaTilde, Steps::Grid(grid)).unwrap();
        let (x, _) = sample(p.as_ref(), &ExactScore::new(target), &cfg, prior_noise(seed, 8, d).view(), None, &mut no_observer).unwrap();
        for r in x.outer_iter() {
            for j in 0..d {
                prop_assert!((r[j] - mu[j]).abs() < 1e-6 * (1.0 + mu[j].abs()), "{} vs {}", r[j], mu[j]);
            }
        }
    }

    /// A stochastic sample depends only on (seed, row): running rows k.. on their own, with the
    /// noise keyed from row offset k, reproduces them bit for bit.
    #[test]
    fn stochastic_rows_do_not_depend_on_the_batch(
        kind in 0usize..3, a in 0.05f64..1.0, b in 0.1f64..3.0, solver in 0usize..3, n in 2usize..20, k_frac in 0.0f64..1.0,
        steps in 1usize..30, seed in 0u64..1000,
    ) {
        let p = process(kind, a, b);
        let solver = [Solver::EulerMaruyama, Solver::Ancestral, Solver::ReverseDiffusion][solver].clone();
        let k = ((n as f64) * k_frac) as usize;
        let model = ExactScore::new(scoresde::targets::ring8());
        let grid = scoresde::grids::build_grid(p.as_ref(), scoresde::grids::Schedule::UniformT, steps, p.t_max(), p.t_end_default(), Space::Time).unwrap();
        let cfg = SamplerConfig::new(p.as_ref(), solver, Space::Time, Steps::Grid(grid)).unwrap();
        let z = prior_noise(seed, n, 2);
        let (all, _) = sample(p.as_ref(), &model, &cfg, z.view(), Some(&mut KeyedNoise::new(seed)), &mut no_observer).unwrap();
        let tail = z.slice(s![k.., ..]);
        let (part, _) = sample(p.as_ref(), &model, &cfg, tail, Some(&mut KeyedNoise::with_row_offset(seed, k as u64)), &mut no_observer).unwrap();
        prop_assert_eq!(all.slice(s![k.., ..]), part);
    }
}
