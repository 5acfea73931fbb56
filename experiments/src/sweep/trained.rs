//! The `trained_vs_exact` experiment's score probe: runs a trained network as the sampler's
//! model and, at every evaluation, also the exact score at the same states, accumulating the
//! mean squared eps error along the sampler's own path. With the same solvers and grids run on
//! the exact score, the sweep separates discretisation error (exact-score rows) from score error
//! (the gap to the `+net` rows, and `score_mse_eps`).

use std::sync::Mutex;

use ndarray::{Array2, ArrayView2, ArrayViewMut2};
use scoresde::model::{ExactScore, NoiseLevel, Parameterisation, ScoreModel};

/// Suffix of the solver column for rows sampled with the trained network.
pub const NET_SUFFIX: &str = "+net";

/// The network, watched: predicts the network's eps and records its error to the exact eps.
pub struct EpsErrorProbe<'a> {
    net: &'a dyn ScoreModel,
    exact: ExactScore,
    /// Sum over evaluations of the mean (over rows) squared eps error, and the evaluations.
    acc: Mutex<(f64, usize)>,
}

impl<'a> EpsErrorProbe<'a> {
    /// Watches `net` against the exact score `exact`.
    pub fn new(net: &'a dyn ScoreModel, exact: ExactScore) -> Self {
        Self { net, exact, acc: Mutex::new((0.0, 0)) }
    }

    /// Mean over evaluations of the mean squared eps error per row (0 if none).
    pub fn mean_squared_error(&self) -> f64 {
        let (s, n) = *self.acc.lock().expect("not poisoned");
        if n == 0 {
            0.0
        } else {
            s / n as f64
        }
    }
}

impl ScoreModel for EpsErrorProbe<'_> {
    fn dim(&self) -> usize {
        self.net.dim()
    }
    fn parameterisation(&self) -> Parameterisation {
        Parameterisation::Eps
    }
    fn predict(&self, level: NoiseLevel, x: ArrayView2<f64>, mut out: ArrayViewMut2<f64>) -> scoresde::Result<()> {
        self.net.predict_eps(level, x, out.view_mut())?;
        let mut exact = Array2::zeros(x.dim());
        self.exact.predict_eps(level, x, exact.view_mut())?;
        let se: f64 = out.iter().zip(exact.iter()).map(|(a, b)| (a - b) * (a - b)).sum();
        let mut acc = self.acc.lock().expect("not poisoned");
        acc.0 += se / x.nrows().max(1) as f64;
        acc.1 += 1;
        Ok(())
    }
}
