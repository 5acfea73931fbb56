//! Importance sampling of the diffusion time for likelihood-weighted DSM (Song et al. 2021,
//! "Maximum likelihood training of score-based diffusion models", section 5).
//!
//! Why: with lambda = g^2 the weight on the eps error is w(t) = g(t)^2 / sigma(t)^2, which grows
//! like 1/t near the data end of a VP process, so a uniform t gives a loss estimate dominated by
//! a few small-t rows. Drawing t from q(t) proportional to w(t) makes every row's weight the same
//! constant and the estimate's variance much smaller, with the same expectation.
//!
//! The density is tabulated for any process: `CELLS` cells spaced geometrically in t between
//! t_end and T, each with the mass of w by Simpson's rule; t is drawn from the piecewise-uniform
//! density q~ of that table and weighted by w(t) / (q~(t) (T - t_end)), so the estimate is exactly
//! unbiased for the uniform-t objective whatever the table's error (the table only sets the
//! variance).

use rand::Rng;

use crate::process::ForwardProcess;

/// Cells of the table.
const CELLS: usize = 1024;

/// A tabulated proposal q~(t) proportional to g^2 / sigma^2 on [t_end, T].
#[derive(Debug, Clone)]
pub struct LikelihoodTimes {
    /// Cell edges, CELLS + 1 increasing times.
    edges: Vec<f64>,
    /// Cumulative masses at the cell ends (the last one is the total).
    cumulative: Vec<f64>,
}

/// The likelihood weight on the eps error at `t`.
pub fn likelihood_weight(process: &dyn ForwardProcess, t: f64) -> f64 {
    let s = process.sigma(t);
    process.g2(t) / (s * s)
}

impl LikelihoodTimes {
    /// The table for `process` on `[t0, t1]` (0 < t0 < t1).
    pub fn new(process: &dyn ForwardProcess, t0: f64, t1: f64) -> Self {
        let ratio = (t1 / t0).ln();
        let edges: Vec<f64> = (0..=CELLS).map(|j| t0 * (ratio * j as f64 / CELLS as f64).exp()).collect();
        let mut cumulative = Vec::with_capacity(CELLS);
        let mut total = 0.0;
        for e in edges.windows(2) {
            let (a, b) = (e[0], e[1]);
            let w = |t: f64| likelihood_weight(process, t);
            total += (b - a) / 6.0 * (w(a) + 4.0 * w(0.5 * (a + b)) + w(b));
            cumulative.push(total);
        }
        Self { edges, cumulative }
    }

    /// A time drawn from q~ and its weight w(t) / (q~(t) (T - t_end)) (two uniform draws).
    pub fn draw<R: Rng + ?Sized>(&self, process: &dyn ForwardProcess, rng: &mut R) -> (f64, f64) {
        let total = self.cumulative[CELLS - 1];
        let u = rng.random::<f64>() * total;
        let j = self.cumulative.partition_point(|&c| c <= u).min(CELLS - 1);
        let (a, b) = (self.edges[j], self.edges[j + 1]);
        let t = a + (b - a) * rng.random::<f64>();
        let mass = self.cumulative[j] - if j == 0 { 0.0 } else { self.cumulative[j - 1] };
        let density = mass / (total * (b - a));
        let span = self.edges[CELLS] - self.edges[0];
        (t, likelihood_weight(process, t) / (density * span))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::{SubVp, Vp};
    use rand::SeedableRng;

    /// The weighted draws estimate the uniform-t mean of a test function f(t) w(t) without bias,
    /// with a far smaller variance than uniform draws (VP and sub-VP, where w grows like 1/t;
    /// on VE w is constant and there is nothing to gain).
    #[test]
    fn weighted_draws_are_unbiased_and_reduce_variance() {
        let processes: [Box<dyn ForwardProcess>; 2] =
            [Box::new(Vp::new(0.1, 20.0).unwrap()), Box::new(SubVp::new(0.1, 20.0).unwrap())];
        for p in &processes {
            let (t0, t1) = (p.t_end_default(), p.t_max());
            let table = LikelihoodTimes::new(&**p, t0, t1);
            let f = |t: f64| 1.0 + (3.0 * t).sin();
            // Reference: the uniform-t mean by composite Simpson on a log grid (fine enough).
            let m = 200_000;
            let r = (t1 / t0).ln();
            let mut exact = 0.0;
            for j in 0..m {
                let (a, b) = (t0 * (r * j as f64 / m as f64).exp(), t0 * (r * (j + 1) as f64 / m as f64).exp());
                let g = |t: f64| f(t) * likelihood_weight(&**p, t);
                exact += (b - a) / 6.0 * (g(a) + 4.0 * g(0.5 * (a + b)) + g(b));
            }
            exact /= t1 - t0;
            let mut rng = rand_pcg::Pcg64::seed_from_u64(5);
            let n = 20_000;
            let (mut s, mut s2, mut u, mut u2) = (0.0, 0.0, 0.0, 0.0);
            for _ in 0..n {
                let (t, w) = table.draw(&**p, &mut rng);
                let v = f(t) * w;
                s += v;
                s2 += v * v;
                let t = rng.random_range(t0..t1);
                let v = f(t) * likelihood_weight(&**p, t);
                u += v;
                u2 += v * v;
            }
            let (mean, var) = (s / n as f64, s2 / n as f64 - (s / n as f64).powi(2));
            let se = (var / n as f64).sqrt();
            // 5 standard errors: a false alarm once in ~1.7 million runs.
            assert!((mean - exact).abs() < 5.0 * se, "{}: {mean} vs {exact} (se {se})", p.name());
            let uvar = u2 / n as f64 - (u / n as f64).powi(2);
            assert!(var < 0.1 * uvar, "{}: variance {var} vs uniform {uvar}", p.name());
        }
    }
}
