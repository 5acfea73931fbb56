//! Exact log-likelihood through the probability-flow ODE (MATH.md section 4).
//!
//! Along the PF-ODE dx/dt = F(x, t) = f(t) x - g(t)^2 s(x, t) / 2, the density obeys
//! d log p_t(x(t)) / dt = -div F, so log p_0(x_0) = log p_T(x_T) + integral_0^T div F dt with
//! div F = d f(t) - g(t)^2 div s / 2. The state is augmented with one column accumulating the
//! integral and integrated with an adaptive embedded pair from the data end to T. Written with the
//! score (not eps), so t = 0 (sigma = 0) is a regular point.

use ndarray::{s, Array1, Array2, ArrayView2, ArrayViewMut1, ArrayViewMut2, Zip};
use scoresde_solvers::rk::tableau;
use scoresde_solvers::{AdaptiveOptions, AdaptiveRk, OdeSystem, SolverError};

use crate::error::{Result, ScoreError};
use crate::gmm::GaussianMixture;
use crate::model::{ExactScore, NoiseLevel};
use crate::process::ForwardProcess;

/// A model that gives its score together with the exact divergence (trace of its Jacobian).
pub trait ScoreDivergence: Send + Sync {
    /// Data dimension.
    fn dim(&self) -> usize;
    /// Writes the score s(x) into `score` and div s(x) into `div`, per row.
    fn score_divergence(
        &self,
        level: NoiseLevel,
        x: ArrayView2<f64>,
        score: ArrayViewMut2<f64>,
        div: ArrayViewMut1<f64>,
    ) -> Result<()>;
}

impl ScoreDivergence for ExactScore {
    fn dim(&self) -> usize {
        self.target().dim()
    }
    fn score_divergence(
        &self,
        level: NoiseLevel,
        x: ArrayView2<f64>,
        score: ArrayViewMut2<f64>,
        div: ArrayViewMut1<f64>,
    ) -> Result<()> {
        self.target().score_divergence(level.alpha, level.sigma, x, score, div);
        Ok(())
    }
}

/// The density at the noise end T used to close the integral.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prior {
    /// The process's prior N(0, prior_std^2 I) (what a trained model must use).
    Gaussian,
    /// The exact p_T of a known target (isolates the ODE error from the prior mismatch).
    ExactTarget,
}

/// The PF-ODE augmented with the running divergence integral: columns 0..d are x, column d the
/// integral.
struct Augmented<'a> {
    process: &'a dyn ForwardProcess,
    model: &'a dyn ScoreDivergence,
    d: usize,
}

impl OdeSystem for Augmented<'_> {
    fn rhs(&self, t: f64, y: ArrayView2<f64>, mut out: ArrayViewMut2<f64>) -> scoresde_solvers::Result<()> {
        let d = self.d;
        let level = NoiseLevel::at_time(self.process, t);
        let x = y.slice(s![.., ..d]);
        let mut div = Array1::zeros(y.nrows());
        self.model
            .score_divergence(level, x, out.slice_mut(s![.., ..d]), div.view_mut())
            .map_err(|e| SolverError::System { t, source: Box::new(e) })?;
        let (f, h) = (self.process.f(t), 0.5 * self.process.g2(t));
        Zip::from(out.slice_mut(s![.., ..d])).and(x).for_each(|o, &x| *o = f * x - h * *o);
        Zip::from(out.column_mut(d)).and(&div).for_each(|o, &dv| *o = d as f64 * f - h * dv);
        Ok(())
    }
}

/// log p_{t_start} of every row of `points` (N x d), i.e. log p_0 for t_start = 0 on processes
/// with sigma(0) = 0 (VP, sub-VP; VE's p at t = 0 is the data blurred by sigma_min): the PF-ODE from `t_start` to
/// the process's T with Dormand-Prince 5(4) at `rtol`/`atol`, closed with `prior` at T.
pub fn log_likelihood(
    process: &dyn ForwardProcess,
    model: &dyn ScoreDivergence,
    points: ArrayView2<f64>,
    t_start: f64,
    options: AdaptiveOptions,
    prior: Prior,
    target: Option<&GaussianMixture>,
) -> Result<Array1<f64>> {
    let (n, d) = points.dim();
    if d != model.dim() {
        return Err(ScoreError::DimensionMismatch {
            what: "points columns vs model dimension".into(),
            expected: model.dim(),
            found: d,
        });
    }
    crate::grids::check_time(process, "t_start", t_start)?;
    let t_end = process.t_max();
    let mut y = Array2::zeros((n, d + 1));
    y.slice_mut(s![.., ..d]).assign(&points);
    let system = Augmented { process, model, d };
    AdaptiveRk::new(tableau::DOPRI5, options)?.integrate(&system, t_start, t_end, y.view_mut(), &mut |_| {})?;
    let x_t = y.slice(s![.., ..d]);
    let mut log_pt = Array1::zeros(n);
    match (prior, target) {
        (Prior::Gaussian, _) => {
            let v = process.prior_std().powi(2);
            let c = -0.5 * d as f64 * (2.0 * std::f64::consts::PI * v).ln();
            Zip::from(&mut log_pt).and(x_t.rows()).for_each(|l, r| *l = c - 0.5 * r.dot(&r) / v);
        }
        (Prior::ExactTarget, Some(t)) => t.log_prob(process.alpha(t_end), process.sigma(t_end), x_t, log_pt.view_mut()),
        (Prior::ExactTarget, None) => {
            return Err(ScoreError::InvalidParameter {
                name: "prior".into(),
                value: f64::NAN,
                expected: "the exact prior needs a known target",
            })
        }
    }
    Ok(log_pt + y.column(d))
}

/// Distribution of Hutchinson's probe vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    /// Entries +-1 with probability 1/2 (lowest variance for a given Jacobian diagonal).
    Rademacher,
    /// Standard normal entries.
    Gaussian,
}

/// Hutchinson's trace estimator of div s = E[v^T (ds/dx) v] with `probes` fixed probe vectors per
/// sample (fixed along the ODE, keyed by (seed, row, probe), as FFJORD does), the Jacobian-vector
/// product taken by a central difference of the score with step `h` (bias O(h^2)). The score
/// itself comes from `inner`, whose divergence is not used. Unbiased up to the O(h^2) difference.
pub struct Hutchinson<'a> {
    inner: &'a dyn ScoreDivergence,
    probes: usize,
    kind: ProbeKind,
    seed: u64,
    h: f64,
}

impl<'a> Hutchinson<'a> {
    /// Validates probes >= 1.
    pub fn new(inner: &'a dyn ScoreDivergence, probes: usize, kind: ProbeKind, seed: u64) -> Result<Self> {
        if probes == 0 {
            return Err(ScoreError::InvalidParameter {
                name: "hutchinson".into(),
                value: 0.0,
                expected: "needs at least 1 probe",
            });
        }
        Ok(Self { inner, probes, kind, seed, h: 1e-4 })
    }

    fn probe(&self, row: usize, k: usize, v: &mut [f64]) {
        use rand::Rng;
        let mut rng = scoresde_solvers::KeyedNoise::new(self.seed).rng(row as u64, k as u64);
        for x in v.iter_mut() {
            *x = match self.kind {
                ProbeKind::Rademacher => {
                    if rng.random::<bool>() {
                        1.0
                    } else {
                        -1.0
                    }
                }
                ProbeKind::Gaussian => rng.sample(rand_distr::StandardNormal),
            };
        }
    }
}

impl ScoreDivergence for Hutchinson<'_> {
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn score_divergence(
        &self,
        level: NoiseLevel,
        x: ArrayView2<f64>,
        mut score: ArrayViewMut2<f64>,
        mut div: ArrayViewMut1<f64>,
    ) -> Result<()> {
        let (n, d) = x.dim();
        let mut scratch = Array1::zeros(n);
        self.inner.score_divergence(level, x, score.view_mut(), scratch.view_mut())?;
        div.fill(0.0);
        let (mut v, mut xp, mut xm) = (Array2::zeros((n, d)), Array2::zeros((n, d)), Array2::zeros((n, d)));
        let (mut sp, mut sm) = (Array2::zeros((n, d)), Array2::zeros((n, d)));
        for k in 0..self.probes {
            for (i, mut row) in v.outer_iter_mut().enumerate() {
                self.probe(i, k, row.as_slice_mut().expect("owned rows are contiguous"));
            }
            Zip::from(&mut xp).and(&mut xm).and(x).and(&v).for_each(|p, m, &x, &v| {
                *p = x + self.h * v;
                *m = x - self.h * v;
            });
            self.inner.score_divergence(level, xp.view(), sp.view_mut(), scratch.view_mut())?;
            self.inner.score_divergence(level, xm.view(), sm.view_mut(), scratch.view_mut())?;
            for i in 0..n {
                let jv: f64 = (0..d).map(|j| v[[i, j]] * (sp[[i, j]] - sm[[i, j]])).sum::<f64>() / (2.0 * self.h);
                div[i] += jv / self.probes as f64;
            }
        }
        Ok(())
    }
}
