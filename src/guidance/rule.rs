//! Guidance rules: how a conditional and an unconditional prediction at one noise level are
//! combined into the guided one. Each rule works per row (one sample) in a prediction space
//! (eps, x0, v or flow velocity); the guidance scale is diffusers' `guidance_scale`
//! s = 1 + w, so that s = 1 (w = 0) is the conditional model under every rule.
//!
//! - [`GuidanceRule::Cfg`]: u + s (c - u) (Ho & Salimans 2022). Affine in the prediction, so
//!   the same in every space.
//! - [`GuidanceRule::Rescale`]: CFG, then the row rescaled to the conditional row's standard
//!   deviation and mixed with weight phi (Lin et al. 2024, "Common diffusion noise schedules
//!   and sample steps are flawed", section 3.4; diffusers' `guidance_rescale`). Sample standard
//!   deviations over the row's d coordinates with Bessel's correction, as torch's `std`.
//! - [`GuidanceRule::Apg`]: adaptive projected guidance (Sadat et al. 2025, "Eliminating
//!   oversaturation and artifacts of high guidance scales", algorithm 1): the difference c - u,
//!   with momentum beta replaced by the running R <- (c - u) + beta R (R = 0 before the first
//!   guided evaluation; diffusers' `MomentumBuffer`), is clipped to norm r, split into its parts
//!   parallel and orthogonal to c, and c + (s - 1) (orthogonal + eta parallel) is returned.
//!   Stated in x0 space.
//! - [`GuidanceRule::CfgZeroStar`]: CFG-Zero* (Fan et al. 2025): the unconditional row scaled
//!   by the optimal a* = <c, u> / (|u|^2 + 1e-8), then a* u + s (c - a* u); the first
//!   `zero_init` evaluations return zero (diffusers' `zero_init_steps`, counted from 0). Stated
//!   for flow velocities.
//!
//! Momentum and zero-init are state carried from one evaluation to the next
//! ([`GuidanceState`]): every model evaluation counts (a solver with k evaluations per step
//! advances them k times, as diffusers' guiders do per denoiser call), and the state is per row
//! of the whole batch, so a run must evaluate the whole batch each time (the samplers do).
//!
//! A guidance interval (Kynkäänniemi et al. 2024, "Applying guidance in a limited interval
//! improves sample and distribution quality") applies the rule only where the level's
//! sigma~ = sigma / alpha lies in (lo, hi], and returns the conditional prediction elsewhere.

use ndarray::{ArrayView2, ArrayViewMut2, Zip};

use crate::error::{Result, ScoreError};
use crate::model::{NoiseLevel, Parameterisation};

/// A rule combining conditional and unconditional predictions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GuidanceRule {
    /// Classifier-free guidance, u + s (c - u).
    Cfg,
    /// CFG rescaled to the conditional row's standard deviation, mixed with weight `phi`.
    Rescale {
        /// Weight of the rescaled prediction, in [0, 1] (0: CFG).
        phi: f64,
    },
    /// Adaptive projected guidance.
    Apg {
        /// Weight of the difference's part parallel to the conditional prediction (1: CFG).
        eta: f64,
        /// Norm the difference is clipped to (0: no clipping).
        norm_threshold: f64,
        /// Momentum beta of the running difference (0: none; the paper uses negative values).
        momentum: f64,
    },
    /// CFG-Zero*: the unconditional prediction scaled by its optimal factor.
    CfgZeroStar {
        /// Evaluations at the start that return zero (0: none; diffusers' default 1).
        zero_init: usize,
    },
}

impl GuidanceRule {
    /// APG with momentum 0.
    pub fn apg(eta: f64, norm_threshold: f64) -> Self {
        Self::Apg { eta, norm_threshold, momentum: 0.0 }
    }
}

/// What a stateful rule carries from one evaluation to the next.
#[derive(Debug, Clone, Default)]
pub struct GuidanceState {
    /// Evaluations so far (CFG-Zero*'s zero-init counts them).
    pub calls: usize,
    /// APG's running difference R (N x d), from the first guided evaluation on.
    running: Option<ndarray::Array2<f64>>,
}

impl GuidanceRule {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cfg => "cfg",
            Self::Rescale { .. } => "rescale",
            Self::Apg { .. } => "apg",
            Self::CfgZeroStar { .. } => "cfg-zero-star",
        }
    }

    /// The space the rule's paper states it in: x0 for APG, flow velocity for CFG-Zero*, eps
    /// for the others (CFG is the same in every space).
    pub fn default_space(self) -> Parameterisation {
        match self {
            Self::Apg { .. } => Parameterisation::X0,
            Self::CfgZeroStar { .. } => Parameterisation::Velocity,
            Self::Cfg | Self::Rescale { .. } => Parameterisation::Eps,
        }
    }

    /// Checks the rule's parameters, naming the bad one.
    pub fn validate(self) -> Result<()> {
        let bad = |name: &str, value: f64, expected: &'static str| {
            Err(ScoreError::InvalidParameter { name: name.into(), value, expected })
        };
        match self {
            Self::Rescale { phi } if !(0.0..=1.0).contains(&phi) => bad("guidance rescale", phi, "must be in [0, 1]"),
            Self::Apg { eta, .. } if !eta.is_finite() => bad("apg eta", eta, "must be finite"),
            Self::Apg { momentum, .. } if !momentum.is_finite() => bad("apg momentum", momentum, "must be finite"),
            Self::Apg { norm_threshold, .. } if !(norm_threshold >= 0.0 && norm_threshold.is_finite()) => {
                bad("apg norm threshold", norm_threshold, "must be finite and >= 0")
            }
            _ => Ok(()),
        }
    }
}

/// A rule, where along the path it applies, and the space it works in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Guidance {
    /// The guidance weight w (scale s = 1 + w).
    pub w: f64,
    /// The rule.
    pub rule: GuidanceRule,
    /// The rule applies where sigma~ is in (lo, hi]; elsewhere the prediction is conditional.
    pub interval: Option<(f64, f64)>,
    /// The prediction space the rule combines in.
    pub space: Parameterisation,
}

impl Guidance {
    /// Classifier-free guidance with weight `w`, everywhere.
    pub fn cfg(w: f64) -> Self {
        Self { w, rule: GuidanceRule::Cfg, interval: None, space: Parameterisation::Eps }
    }

    /// Rule `rule` with weight `w`, everywhere, in the rule's own space.
    pub fn new(rule: GuidanceRule, w: f64) -> Self {
        Self { w, rule, interval: None, space: rule.default_space() }
    }

    /// Checks every field, naming the bad one.
    pub fn validate(&self) -> Result<()> {
        if !self.w.is_finite() {
            return Err(ScoreError::InvalidParameter {
                name: "guidance".into(),
                value: self.w,
                expected: "must be finite",
            });
        }
        self.rule.validate()?;
        if self.space == Parameterisation::Score {
            return Err(ScoreError::Model {
                context: "guidance space".into(),
                message: "score is not a prediction space (eps, x0, v, velocity)".into(),
            });
        }
        if let Some((lo, hi)) = self.interval {
            if !(lo >= 0.0 && lo < hi) || lo.is_nan() || hi.is_nan() {
                return Err(ScoreError::Model {
                    context: format!("guidance interval = ({lo}, {hi}]"),
                    message: "needs 0 <= lo < hi (sigma~ levels; hi may be inf)".into(),
                });
            }
        }
        Ok(())
    }

    /// Whether the rule applies at `level` (sigma~ in the interval).
    pub fn active(&self, level: NoiseLevel) -> bool {
        match self.interval {
            None => true,
            Some((lo, hi)) => {
                let s = level.sigma / level.alpha;
                s > lo && s <= hi
            }
        }
    }

    /// The guided prediction from conditional `c` and unconditional `u` (N x d, in
    /// [`Guidance::space`]) into `out`, row by row, with the state of the evaluations so far
    /// (advanced by this one). Errors if APG's running difference has another shape than this
    /// batch (a run that evaluates row chunks separately).
    pub fn combine(
        &self,
        level: NoiseLevel,
        c: ArrayView2<f64>,
        u: ArrayView2<f64>,
        mut out: ArrayViewMut2<f64>,
        state: &mut GuidanceState,
    ) -> Result<()> {
        let call = state.calls;
        state.calls += 1;
        if let GuidanceRule::CfgZeroStar { zero_init } = self.rule {
            if call < zero_init {
                out.fill(0.0);
                return Ok(());
            }
        }
        if !self.active(level) {
            out.assign(&c);
            return Ok(());
        }
        let s = 1.0 + self.w;
        match self.rule {
            GuidanceRule::Cfg => Zip::from(&mut out).and(c).and(u).for_each(|o, &c, &u| *o = u + s * (c - u)),
            GuidanceRule::Rescale { phi } => {
                Zip::from(out.rows_mut()).and(c.rows()).and(u.rows()).for_each(|mut o, c, u| {
                    o.zip_mut_with(&c, |o, &c| *o = c);
                    Zip::from(&mut o).and(&u).for_each(|o, &u| *o = u + s * (*o - u));
                    let (sc, sg) = (std_dev(c.iter()), std_dev(o.iter()));
                    let f = phi * sc / sg + (1.0 - phi);
                    o.mapv_inplace(|g| g * f);
                });
            }
            GuidanceRule::Apg { eta, norm_threshold, momentum } => {
                let mut diff = &c - &u;
                if momentum != 0.0 {
                    match &mut state.running {
                        Some(r) if r.dim() == diff.dim() => {
                            Zip::from(&mut *r).and(&diff).for_each(|r, &d| *r = d + momentum * *r);
                            diff.assign(r);
                        }
                        Some(r) => {
                            return Err(ScoreError::Model {
                                context: "apg momentum".into(),
                                message: format!(
                                    "the running difference has shape {:?} but this evaluation {:?}: momentum \
                                     needs the whole batch at every evaluation",
                                    r.dim(),
                                    diff.dim()
                                ),
                            })
                        }
                        None => state.running = Some(diff.clone()),
                    }
                }
                Zip::from(out.rows_mut()).and(c.rows()).and(diff.rows_mut()).for_each(|mut o, c, mut diff| {
                    if norm_threshold > 0.0 {
                        let n = diff.dot(&diff).sqrt();
                        diff *= (norm_threshold / n).min(1.0);
                    }
                    // torch's normalize: c / max(|c|, 1e-12).
                    let cn = c.dot(&c).sqrt().max(1e-12);
                    let along = diff.dot(&c) / (cn * cn);
                    Zip::from(&mut o).and(&c).and(&diff).for_each(|o, &c, &d| {
                        let par = along * c;
                        *o = c + (s - 1.0) * ((d - par) + eta * par);
                    });
                });
            }
            GuidanceRule::CfgZeroStar { .. } => {
                Zip::from(out.rows_mut()).and(c.rows()).and(u.rows()).for_each(|mut o, c, u| {
                    let a = c.dot(&u) / (u.dot(&u) + 1e-8);
                    Zip::from(&mut o).and(&c).and(&u).for_each(|o, &c, &u| *o = a * u + s * (c - a * u));
                });
            }
        }
        Ok(())
    }
}

/// Sample standard deviation (divisor n - 1), as torch's `std`.
fn std_dev<'a>(v: impl Iterator<Item = &'a f64> + Clone) -> f64 {
    let n = v.clone().count() as f64;
    let mean = v.clone().sum::<f64>() / n;
    (v.map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{array, Array2};

    fn level() -> NoiseLevel {
        NoiseLevel { t: 0.5, alpha: 0.8, sigma: 0.6 }
    }

    fn pair() -> (Array2<f64>, Array2<f64>) {
        (array![[1.0, -0.5, 0.25], [0.3, 0.9, -1.2]], array![[0.4, 0.1, -0.7], [-0.2, 1.1, 0.5]])
    }

    fn run(g: Guidance) -> Array2<f64> {
        let (c, u) = pair();
        let mut out = Array2::zeros(c.dim());
        g.combine(level(), c.view(), u.view(), out.view_mut(), &mut GuidanceState::default()).unwrap();
        out
    }

    fn close(a: &Array2<f64>, b: &Array2<f64>) -> bool {
        a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-14 * (1.0 + y.abs()))
    }

    /// Each rule reduces to CFG where its paper says it does, and to the conditional
    /// prediction at w = 0.
    #[test]
    fn rules_reduce_to_cfg_and_to_the_conditional() {
        let w = 2.5;
        let cfg = run(Guidance::cfg(w));
        let (c, u) = pair();
        assert!(close(&cfg, &(&u + &((&c - &u) * (1.0 + w)))));
        assert!(close(&run(Guidance::new(GuidanceRule::Rescale { phi: 0.0 }, w)), &cfg));
        assert!(close(&run(Guidance::new(GuidanceRule::apg(1.0, 0.0), w)), &cfg));
        for rule in [
            GuidanceRule::Cfg,
            GuidanceRule::Rescale { phi: 0.7 },
            GuidanceRule::apg(0.0, 2.5),
            GuidanceRule::CfgZeroStar { zero_init: 0 },
        ] {
            // At w = 0 every rule but CFG-Zero* is the conditional prediction; CFG-Zero*'s scale
            // s = 1 too: a* u + (c - a* u) = c.
            assert!(close(&run(Guidance::new(rule, 0.0)), &c), "{}", rule.name());
        }
    }

    /// Rescale at phi = 1 has the conditional row's standard deviation; APG's update is
    /// orthogonal to c at eta = 0 and within the norm threshold; CFG-Zero* is CFG when u = 0.
    #[test]
    fn rule_properties() {
        let (c, _) = pair();
        let w = 3.0;
        let r = run(Guidance::new(GuidanceRule::Rescale { phi: 1.0 }, w));
        for i in 0..2 {
            assert!((std_dev(r.row(i).iter()) - std_dev(c.row(i).iter())).abs() < 1e-14);
        }
        let thr = 0.3;
        let a = run(Guidance::new(GuidanceRule::apg(0.0, thr), w));
        for i in 0..2 {
            let upd = (&a.row(i) - &c.row(i)) / w;
            assert!(upd.dot(&c.row(i)).abs() < 1e-14, "orthogonal to c");
            assert!(upd.dot(&upd).sqrt() <= thr * (1.0 + 1e-14), "within the threshold");
        }
        let zero = Array2::zeros(c.dim());
        let g = Guidance::new(GuidanceRule::CfgZeroStar { zero_init: 0 }, w);
        let mut out = Array2::zeros(c.dim());
        g.combine(level(), c.view(), zero.view(), out.view_mut(), &mut GuidanceState::default()).unwrap();
        assert!(close(&out, &(&c * (1.0 + w))));
        // a* = 1 where u = c: the conditional.
        g.combine(level(), c.view(), c.view(), out.view_mut(), &mut GuidanceState::default()).unwrap();
        assert!(out.iter().zip(&c).all(|(o, c)| (o - c).abs() < 1e-7));
    }

    /// Outside the interval the prediction is conditional; inside it is the rule's.
    #[test]
    fn interval_gates_on_sigma_tilde() {
        let (c, _) = pair();
        let mut g = Guidance::cfg(2.0);
        // sigma~ = 0.6 / 0.8 = 0.75.
        g.interval = Some((0.75, 2.0));
        assert!(close(&run(g), &c), "lo is excluded");
        g.interval = Some((0.1, 0.75));
        assert!(close(&run(g), &run(Guidance::cfg(2.0))), "hi is included");
        g.interval = Some((1.0, f64::INFINITY));
        assert!(close(&run(g), &c));
        assert!(g.validate().is_ok());
        for bad in [(0.5, 0.5), (-1.0, 1.0), (f64::NAN, 1.0)] {
            g.interval = Some(bad);
            assert!(g.validate().unwrap_err().to_string().contains("guidance interval"));
        }
        assert!(Guidance::new(GuidanceRule::Rescale { phi: 1.5 }, 1.0)
            .validate()
            .unwrap_err()
            .to_string()
            .contains("rescale"));
        assert!(Guidance::cfg(f64::INFINITY).validate().unwrap_err().to_string().contains("guidance"));
    }

    /// APG's momentum: on constant c and u the running difference after k evaluations is
    /// (c - u)(1 + beta + .. + beta^(k-1)); with eta = 1 and no clipping the output is then
    /// c + w R. A batch of another shape mid-run is refused.
    #[test]
    fn apg_momentum_runs_the_difference_and_needs_the_whole_batch() {
        let (w, beta) = (1.5, -0.5);
        let g = Guidance::new(GuidanceRule::Apg { eta: 1.0, norm_threshold: 0.0, momentum: beta }, w);
        let (c, u) = pair();
        let mut state = GuidanceState::default();
        let mut sum = 0.0;
        for k in 0..3 {
            sum += beta.powi(k);
            let mut out = Array2::zeros(c.dim());
            g.combine(level(), c.view(), u.view(), out.view_mut(), &mut state).unwrap();
            assert!(close(&out, &(&c + &((&c - &u) * (w * sum)))), "evaluation {k}");
        }
        let mut one = Array2::zeros((1, 3));
        let err = g.combine(
            level(),
            c.slice(ndarray::s![..1, ..]),
            u.slice(ndarray::s![..1, ..]),
            one.view_mut(),
            &mut state,
        );
        assert!(err.unwrap_err().to_string().contains("whole batch"));
        // Momentum 0 is stateless: the same output at every evaluation.
        let plain = Guidance::new(GuidanceRule::apg(1.0, 0.0), w);
        let mut state = GuidanceState::default();
        for _ in 0..2 {
            let mut out = Array2::zeros(c.dim());
            plain.combine(level(), c.view(), u.view(), out.view_mut(), &mut state).unwrap();
            assert!(close(&out, &run(plain)));
        }
    }

    /// CFG-Zero*'s zero-init: the first K evaluations are zero (outside the interval too, as
    /// diffusers checks it first), the next ones the stateless rule's.
    #[test]
    fn cfg_zero_star_zeroes_its_first_evaluations() {
        let mut g = Guidance::new(GuidanceRule::CfgZeroStar { zero_init: 2 }, 3.0);
        g.interval = Some((1.0, 2.0));
        let (c, u) = pair();
        let mut state = GuidanceState::default();
        let plain = Guidance { rule: GuidanceRule::CfgZeroStar { zero_init: 0 }, ..g };
        for k in 0..4 {
            let mut out = Array2::from_elem(c.dim(), 7.0);
            g.combine(level(), c.view(), u.view(), out.view_mut(), &mut state).unwrap();
            let want = if k < 2 { Array2::zeros(c.dim()) } else { run(plain) };
            assert!(close(&out, &want), "evaluation {k}: {out}");
        }
        assert_eq!(state.calls, 4);
    }
}
