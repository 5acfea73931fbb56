//! Throughput benchmarks (criterion), in particle-NFE: one element is one particle through one
//! model evaluation, so criterion's "elements/s" is particle-NFE per second.
//!
//! - `kernel`: the mixture's `eps` alone, on the 2-d ring (N = 1e5, d = 2, K = 8; the ring's
//!   diagonal components have equal variances per component) and on a 64-d diagonal mixture of
//!   16 components (N = 1e4).
//! - `sample`: one full run per solver family on the ring (N = 1e4 to keep criterion's repeats
//!   short; `scoresde bench` times N = 1e5): Euler in t (Runge-Kutta), Heun in sigma space on a
//!   Karras grid, DPM-Solver++(2M) (exponential integrators), Euler-Maruyama (SDE).
//!
//! Run with `cargo bench -p scoresde --bench throughput` (threads: `RAYON_NUM_THREADS`).

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ndarray::Array2;
use scoresde::gmm::{Covariance, GaussianMixture};
use scoresde::grids::{build_grid, Schedule, Space};
use scoresde::model::ExactScore;
use scoresde::process::{ForwardProcess, Vp};
use scoresde::sampler::{prior_noise, sample_owned, SamplerConfig, Solver, Steps};
use scoresde::targets;
use scoresde_solvers::{KeyedNoise, NoiseSource};

/// 64-d mixture of 16 diagonal components with variances between 0.05 and 1.
fn diag64() -> GaussianMixture {
    let (k, d) = (16, 64);
    let means = Array2::from_shape_fn((k, d), |(c, j)| 2.0 * ((c * 7 + j * 3) as f64 * 0.37).sin());
    let diag = Array2::from_shape_fn((k, d), |(c, j)| 0.05 + 0.95 * (((c + j) % 10) as f64 / 9.0));
    GaussianMixture::new(vec![1.0 / k as f64; k], means, Covariance::Diagonal(diag)).unwrap()
}

fn kernel(c: &mut Criterion) {
    let vp = Vp::new(0.1, 20.0).unwrap();
    let (alpha, sigma) = (vp.alpha(0.5), vp.sigma(0.5));
    let mut group = c.benchmark_group("kernel");
    for (name, gm, n) in [("ring8_n1e5_d2_k8", targets::ring8(), 100_000), ("diag64_n1e4_d64_k16", diag64(), 10_000)] {
        let x = prior_noise(1, n, gm.dim());
        let mut out = Array2::zeros(x.dim());
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(name, |b| b.iter(|| gm.eps(alpha, sigma, x.view(), out.view_mut())));
    }
    group.finish();
}

fn sample(c: &mut Criterion) {
    let vp = Vp::new(0.1, 20.0).unwrap();
    let model = ExactScore::new(targets::ring8());
    let n = 10_000;
    let karras = Schedule::Karras { rho: 7.0 };
    let mut group = c.benchmark_group("sample_ring8_n1e4");
    group.sample_size(10);
    for (name, solver, space, schedule, steps) in [
        ("euler_t_100", Solver::Euler, Space::Time, Schedule::UniformT, 100),
        ("heun_sigma_karras_50", Solver::Heun, Space::SigmaTilde, karras, 50),
        ("dpmpp_2m_karras_100", Solver::DpmPp2M, Space::SigmaTilde, karras, 100),
        ("euler_maruyama_t_100", Solver::EulerMaruyama, Space::Time, Schedule::UniformT, 100),
    ] {
        let grid = build_grid(&vp, schedule, steps, vp.t_max(), vp.t_end_default(), space).unwrap();
        let config = SamplerConfig::new(&vp, solver.clone(), space, Steps::Grid(grid)).unwrap();
        // NFE counted by a first run (Heun takes an Euler step to sigma = 0).
        let mut k = keyed(&solver);
        let nfe = sample_owned(&vp, &model, &config, prior_noise(0, 1, 2), noise(&mut k), &mut |_| {}).unwrap().1.nfe;
        group.throughput(Throughput::Elements((n * nfe) as u64));
        group.bench_function(name, |b| {
            b.iter_batched(
                || prior_noise(0, n, 2),
                |z| {
                    let mut k = keyed(&solver);
                    sample_owned(&vp, &model, &config, z, noise(&mut k), &mut |_| {}).unwrap()
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

/// Keyed noise for stochastic solvers.
fn keyed(solver: &Solver) -> Option<KeyedNoise> {
    solver.is_stochastic().then(|| KeyedNoise::new(0))
}

/// The sampler's noise argument.
fn noise(k: &mut Option<KeyedNoise>) -> Option<&mut dyn NoiseSource> {
    k.as_mut().map(|k| k as &mut dyn NoiseSource)
}

criterion_group!(benches, kernel, sample);
criterion_main!(benches);
