//! `scoresde bench`: throughput of the exact-score sampler end to end, as a Markdown table.
//!
//! Why this command exists: sweeps are thousands of sampler runs, and speed claims should be
//! reproducible by anyone with one command. Each case is timed `--repeats` times on a rayon pool
//! of `--threads` threads and the best time is reported (the machine may be shared), in
//! particle-NFE per second: N samples times the model evaluations of the run, divided by the
//! seconds. A `sample` case is the whole of `scoresde sample` but the file: prior draws, then
//! the solver; a `kernel` case is the mixture's `eps` alone, 100 times on a fixed batch.

use std::time::Instant;

use clap::Args;
use ndarray::Array2;
use scoresde::gmm::GaussianMixture;
use scoresde::grids::{build_grid, Schedule, Space};
use scoresde::model::ExactScore;
use scoresde::process::{ForwardProcess, Vp};
use scoresde::sampler::{prior_noise, sample_owned, SamplerConfig, Solver, Steps};
use scoresde::targets;
use scoresde_solvers::{KeyedNoise, NoiseSource};

use crate::choices::CmdResult;

/// Flags of `scoresde bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Samples per case (N).
    #[arg(long, default_value_t = 100_000)]
    pub n: usize,
    /// Timed runs per case; the best is reported.
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// Threads of the rayon pool [default: rayon's default, RAYON_NUM_THREADS or one per core].
    #[arg(long)]
    pub threads: Option<usize>,
    /// Also time one sampler of each other family (Heun in sigma space on a Karras grid,
    /// DPM-Solver++(2M), Euler-Maruyama) on the ring.
    #[arg(long)]
    pub solvers: bool,
    /// Time a trained network instead (a checkpoint): one forward pass of N rows through the
    /// fused CPU path and through candle, and one training step per --train-batch.
    #[arg(long, value_name = "MODEL")]
    pub network: Option<std::path::PathBuf>,
    /// Batch sizes of the timed training steps with --network (repeatable) [default: 256].
    #[arg(long, value_name = "B", requires = "network")]
    pub train_batch: Vec<usize>,
}

/// One row of the table.
struct Case {
    name: String,
    target: &'static str,
    gm: GaussianMixture,
    /// `None`: the kernel alone.
    run: Option<(Solver, Space, Schedule, usize)>,
}

/// Runs `scoresde bench`.
pub fn run(a: BenchArgs) -> CmdResult {
    if a.n == 0 || a.repeats == 0 {
        return Err(format!("--n = {}, --repeats = {}: both must be at least 1", a.n, a.repeats).into());
    }
    // The widest benchmarked target is 16-d; a run holds about ten N x d arrays.
    scoresde::limits::check_f64s(
        "--n",
        a.n,
        10 * 16 * a.n as u128,
        "the benchmark's batches (about 10 x N x 16 float64)",
    )?;
    let mut pool = rayon::ThreadPoolBuilder::new();
    if let Some(t) = a.threads {
        if t == 0 {
            return Err("--threads = 0: must be at least 1".into());
        }
        pool = pool.num_threads(t);
    }
    let pool = pool.build()?;
    if let Some(path) = &a.network {
        if a.train_batch.contains(&0) {
            return Err("--train-batch = 0: must be at least 1".into());
        }
        let batches = if a.train_batch.is_empty() { vec![256] } else { a.train_batch.clone() };
        let threads = pool.current_num_threads();
        return pool.install(|| crate::bench_net::run(path, &[a.n], &batches, a.repeats, threads));
    }
    let euler = (Solver::Euler, Space::Time, Schedule::UniformT, 100);
    let mut cases = vec![
        case("sample: euler, t", "ring8", Some(euler.clone())),
        case("sample: euler, t", "diag16", Some(euler.clone())),
        case("sample: euler, t", "aniso16", Some(euler)),
        case("kernel: eps", "ring8", None),
        case("kernel: eps", "diag16", None),
        case("kernel: eps", "aniso16", None),
    ];
    if a.solvers {
        cases.insert(
            1,
            case(
                "sample: heun, sigma, karras",
                "ring8",
                Some((Solver::Heun, Space::SigmaTilde, Schedule::Karras { rho: 7.0 }, 50)),
            ),
        );
        cases.insert(
            2,
            case(
                "sample: dpmpp-2m, sigma, karras",
                "ring8",
                Some((Solver::DpmPp2M, Space::SigmaTilde, Schedule::Karras { rho: 7.0 }, 100)),
            ),
        );
        cases.insert(
            3,
            case(
                "sample: euler-maruyama, t",
                "ring8",
                Some((Solver::EulerMaruyama, Space::Time, Schedule::UniformT, 100)),
            ),
        );
    }
    let process = Vp::new(0.1, 20.0)?;
    println!(
        "scoresde bench: VP (beta 0.1..20), N = {}, best of {}, kernel {}, {} threads",
        a.n,
        a.repeats,
        GaussianMixture::kernel_path(),
        pool.current_num_threads()
    );
    println!();
    println!("| case | target | N | d | K | NFE | seconds | particle-NFE/s | threads |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for c in &cases {
        let (secs, nfe) = pool.install(|| time_case(c, &process, a.n, a.repeats))?;
        println!(
            "| {} | {} | {} | {} | {} | {} | {:.3} | {:.2e} | {} |",
            c.name,
            c.target,
            a.n,
            c.gm.dim(),
            c.gm.n_components(),
            nfe,
            secs,
            (a.n * nfe) as f64 / secs,
            pool.current_num_threads()
        );
    }
    let limits = pool.install(limits);
    println!();
    println!(
        "limits: fastexp {:.2} ns per exp on one thread ({}; libm exp {:.2} ns), memory copy {:.1} GB/s on {} threads",
        limits.fastexp_ns,
        scoresde::fastexp::vector_path(),
        limits.libm_ns,
        limits.copy_gbs,
        pool.current_num_threads()
    );
    if let Some(kb) = peak_rss_kib() {
        println!();
        println!("peak RSS (VmHWM): {:.1} MiB", kb as f64 / 1024.0);
    }
    Ok(())
}

fn case(name: &str, target: &'static str, run: Option<(Solver, Space, Schedule, usize)>) -> Case {
    let gm = targets::builtin(target).expect("the bench uses built-in targets");
    Case { name: name.to_string(), target, gm, run }
}

/// Best wall time over `repeats` runs, and the NFE of one run.
fn time_case(
    c: &Case,
    process: &dyn ForwardProcess,
    n: usize,
    repeats: usize,
) -> Result<(f64, usize), Box<dyn std::error::Error + Send + Sync>> {
    let d = c.gm.dim();
    let mut best = f64::INFINITY;
    let mut nfe = 0;
    match c.run.clone() {
        None => {
            // The kernel on a fixed batch, at 100 noise levels along the VP path.
            let x = prior_noise(1, n, d);
            let mut out = Array2::zeros((n, d));
            nfe = 100;
            for _ in 0..repeats {
                let started = Instant::now();
                for i in 0..nfe {
                    let t = 1.0 - 0.99 * i as f64 / nfe as f64;
                    c.gm.eps(process.alpha(t), process.sigma(t), x.view(), out.view_mut());
                }
                best = best.min(started.elapsed().as_secs_f64());
            }
            std::hint::black_box(&out);
        }
        Some((solver, space, schedule, steps)) => {
            let model = ExactScore::new(c.gm.clone());
            let grid = build_grid(process, schedule, steps, process.t_max(), process.t_end_default(), space)?;
            let config = SamplerConfig::new(process, solver.clone(), space, Steps::Grid(grid))?;
            for _ in 0..repeats {
                let mut keyed = KeyedNoise::new(0);
                let noise: Option<&mut dyn NoiseSource> = if solver.is_stochastic() { Some(&mut keyed) } else { None };
                let started = Instant::now();
                let z = prior_noise(0, n, d);
                let (x, report) = sample_owned(process, &model, &config, z, noise, &mut |_| {})?;
                best = best.min(started.elapsed().as_secs_f64());
                nfe = report.nfe;
                std::hint::black_box(&x);
            }
        }
    }
    Ok((best, nfe))
}

/// What bounds the kernel: exp throughput and memory bandwidth.
struct Limits {
    /// Seconds per `exp` of `fastexp::exp_in_place` on one thread, in ns.
    fastexp_ns: f64,
    /// The same for libm's `f64::exp`.
    libm_ns: f64,
    /// Copy bandwidth (bytes read + written per second) of a 64 MiB array, on the pool.
    copy_gbs: f64,
}

fn limits() -> Limits {
    // exp on an L1-resident buffer of arguments in [-30, 0], best of 5 runs of 1000 passes.
    let args: Vec<f64> = (0..4096).map(|i| -30.0 * i as f64 / 4096.0).collect();
    let mut buf = args.clone();
    let mut time = |f: &mut dyn FnMut(&mut [f64])| {
        let mut best = f64::INFINITY;
        for _ in 0..5 {
            let started = Instant::now();
            for _ in 0..1000 {
                buf.copy_from_slice(&args);
                f(&mut buf);
                std::hint::black_box(&buf);
            }
            best = best.min(started.elapsed().as_secs_f64());
        }
        best / (1000.0 * args.len() as f64) * 1e9
    };
    let fastexp_ns = time(&mut |b: &mut [f64]| scoresde::fastexp::exp_in_place(b));
    let libm_ns = time(&mut |b: &mut [f64]| b.iter_mut().for_each(|v| *v = v.exp()));
    // Parallel copy of 64 MiB (far larger than the caches), best of 5.
    use rayon::prelude::*;
    let n = 8 << 20;
    let src = vec![1.0f64; n];
    let mut dst = vec![0.0f64; n];
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let started = Instant::now();
        dst.par_chunks_mut(1 << 16).zip(src.par_chunks(1 << 16)).for_each(|(d, s)| d.copy_from_slice(s));
        best = best.min(started.elapsed().as_secs_f64());
        std::hint::black_box(&dst);
    }
    Limits { fastexp_ns, libm_ns, copy_gbs: 2.0 * 8.0 * n as f64 / best / 1e9 }
}

/// Peak resident set size of this process in KiB (Linux: `VmHWM` in /proc/self/status).
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
