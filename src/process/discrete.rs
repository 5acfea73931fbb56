//! The discrete DDPM chain (Ho et al. 2020) with its tables as diffusers builds them.
//!
//! A chain of T steps is its table of alpha-bar (`alphas_cumprod`), ab_0 > ab_1 > ... > ab_{T-1}.
//! As a [`ForwardProcess`] its time is the timestep index: t = tau in {0, .., T-1} has
//! alpha = sqrt(ab_tau), sigma = sqrt(1 - ab_tau), and t = -1 is the data (alpha = 1, sigma = 0:
//! DDIM's `set_alpha_to_one`, DDPM's last step). Between integers sigma~ = sqrt((1 - ab) / ab) is
//! interpolated linearly in t (diffusers' `np.interp` of its sigma table), which makes the chain
//! a continuous process for the t-space and sigma-space solvers; at integer t every coefficient
//! is the table's own.

use serde::{Deserialize, Serialize};

use super::{ForwardProcess, ProcessSpec};
use crate::error::{Result, ScoreError};

/// How a chain's betas are generated (diffusers' `beta_schedule`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BetaSchedule {
    /// beta linear from beta_start to beta_end (DDPM).
    Linear,
    /// sqrt(beta) linear (Stable Diffusion's `scaled_linear`).
    ScaledLinear,
    /// iDDPM's cosine alpha-bar, betas capped at 0.999 (`squaredcos_cap_v2`; beta_start/end unused).
    Squaredcos,
}

/// Where a chain's table comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "table", rename_all = "kebab-case", deny_unknown_fields)]
pub enum DdpmTable {
    /// Generated: T steps of a beta schedule, optionally rescaled to zero terminal SNR.
    Betas {
        /// T (`num_train_timesteps`).
        train_steps: usize,
        /// The schedule.
        schedule: BetaSchedule,
        /// beta_1.
        beta_start: f64,
        /// beta_T.
        beta_end: f64,
        /// Lin et al. 2024, Algorithm 1 (the last alpha-bar then set to 2^-24, as diffusers'
        /// Euler schedulers do, so that sigma stays finite).
        rescale_zero_snr: bool,
    },
    /// A given alpha-bar table.
    AlphasCumprod {
        /// ab_0 > ab_1 > ... > ab_{T-1}.
        alphas_cumprod: Vec<f64>,
    },
}

/// The betas of `schedule` as diffusers computes them (in float64).
pub fn betas(schedule: BetaSchedule, train_steps: usize, beta_start: f64, beta_end: f64) -> Vec<f64> {
    let n = train_steps;
    let linspace = |a: f64, b: f64| -> Vec<f64> {
        if n == 1 {
            return vec![a];
        }
        let step = (b - a) / (n - 1) as f64;
        (0..n).map(|i| a + step * i as f64).collect()
    };
    match schedule {
        BetaSchedule::Linear => linspace(beta_start, beta_end),
        BetaSchedule::ScaledLinear => linspace(beta_start.sqrt(), beta_end.sqrt()).into_iter().map(|b| b * b).collect(),
        BetaSchedule::Squaredcos => {
            let abar = |t: f64| ((t + 0.008) / 1.008 * std::f64::consts::FRAC_PI_2).cos().powi(2);
            (0..n)
                .map(|i| {
                    let (t1, t2) = (i as f64 / n as f64, (i + 1) as f64 / n as f64);
                    (1.0 - abar(t2) / abar(t1)).min(0.999)
                })
                .collect()
        }
    }
}

/// Rescales betas to zero terminal SNR (Lin et al. 2024, Algorithm 1): sqrt(alpha-bar) shifted
/// so that its last value is 0 and scaled so that its first is unchanged.
pub fn rescale_zero_snr(betas: &[f64]) -> Vec<f64> {
    let sqrt_ab: Vec<f64> = cumprod(betas).into_iter().map(f64::sqrt).collect();
    let (first, last) = (sqrt_ab[0], sqrt_ab[sqrt_ab.len() - 1]);
    let ab: Vec<f64> = sqrt_ab.iter().map(|&s| ((s - last) * (first / (first - last))).powi(2)).collect();
    let mut out = Vec::with_capacity(ab.len());
    out.push(1.0 - ab[0]);
    out.extend(ab.windows(2).map(|w| 1.0 - w[1] / w[0]));
    out
}

/// alpha-bar = cumprod(1 - beta).
pub fn cumprod(betas: &[f64]) -> Vec<f64> {
    let mut acc = 1.0;
    betas
        .iter()
        .map(|b| {
            acc *= 1.0 - b;
            acc
        })
        .collect()
}

/// The value diffusers' Euler schedulers give the last alpha-bar after a zero-SNR rescale.
pub const ZERO_SNR_LAST: f64 = 1.0 / 16_777_216.0;

impl DdpmTable {
    /// The alpha-bar table, validated: finite, in (0, 1], strictly decreasing, at least 2 entries.
    pub fn alphas_cumprod(&self) -> Result<Vec<f64>> {
        let ac = match self {
            Self::AlphasCumprod { alphas_cumprod } => alphas_cumprod.clone(),
            &Self::Betas { train_steps, schedule, beta_start, beta_end, rescale_zero_snr: zsnr } => {
                if train_steps < 2 {
                    return Err(ScoreError::InvalidParameter {
                        name: "train_steps".into(),
                        value: train_steps as f64,
                        expected: "must be at least 2",
                    });
                }
                if schedule != BetaSchedule::Squaredcos {
                    for (name, v) in [("beta_start", beta_start), ("beta_end", beta_end)] {
                        if !(v.is_finite() && v > 0.0 && v < 1.0) {
                            return Err(ScoreError::InvalidParameter {
                                name: name.into(),
                                value: v,
                                expected: "must be in (0, 1)",
                            });
                        }
                    }
                }
                let b = betas(schedule, train_steps, beta_start, beta_end);
                if zsnr {
                    // The last entry, 0 after the rescale, becomes 2^-24 as in diffusers' Euler
                    // schedulers; the entries just before it can be smaller, so the table is
                    // checked without it.
                    let mut ac = cumprod(&rescale_zero_snr(&b));
                    check_table(&ac[..ac.len() - 1])?;
                    *ac.last_mut().expect("T >= 2") = ZERO_SNR_LAST;
                    return Ok(ac);
                }
                cumprod(&b)
            }
        };
        check_table(&ac)?;
        Ok(ac)
    }
}

fn check_table(ac: &[f64]) -> Result<()> {
    if ac.len() < 2 {
        return Err(ScoreError::InvalidParameter {
            name: "alphas_cumprod length".into(),
            value: ac.len() as f64,
            expected: "must be at least 2",
        });
    }
    for (i, &a) in ac.iter().enumerate() {
        if !(a.is_finite() && a > 0.0 && a <= 1.0) {
            return Err(ScoreError::InvalidParameter {
                name: format!("alphas_cumprod[{i}]"),
                value: a,
                expected: "must be in (0, 1]",
            });
        }
        if i > 0 && a >= ac[i - 1] {
            return Err(ScoreError::InvalidParameter {
                name: format!("alphas_cumprod[{i}]"),
                value: a,
                expected: "must be smaller than the entry before it (alpha-bar decreases)",
            });
        }
    }
    Ok(())
}

/// The discrete chain as a process (see the module documentation).
#[derive(Debug, Clone, PartialEq)]
pub struct Ddpm {
    table: DdpmTable,
    ac: Vec<f64>,
    /// sigma~ at t = -1, 0, .., T-1 (index t + 1).
    sigma_tilde: Vec<f64>,
}

impl Ddpm {
    /// The chain of `table`, validated.
    ///
    /// ```
    /// use scoresde::process::{BetaSchedule, Ddpm, DdpmTable, ForwardProcess};
    /// let table = DdpmTable::Betas {
    ///     train_steps: 1000, schedule: BetaSchedule::Linear, beta_start: 1e-4, beta_end: 0.02, rescale_zero_snr: false,
    /// };
    /// let ddpm = Ddpm::new(table)?;
    /// assert_eq!((ddpm.t_max(), ddpm.t_min()), (999.0, -1.0));
    /// assert!((ddpm.alpha(0.0).powi(2) - (1.0 - 1e-4)).abs() < 1e-15);
    /// assert_eq!(ddpm.sigma(-1.0), 0.0);
    /// # Ok::<(), scoresde::ScoreError>(())
    /// ```
    pub fn new(table: DdpmTable) -> Result<Self> {
        let ac = table.alphas_cumprod()?;
        let mut sigma_tilde = vec![0.0];
        sigma_tilde.extend(ac.iter().map(|a| ((1.0 - a) / a).sqrt()));
        Ok(Self { table, ac, sigma_tilde })
    }

    /// The alpha-bar table.
    pub fn alphas_cumprod(&self) -> &[f64] {
        &self.ac
    }

    /// The integer timestep t is, if it is one.
    fn index(&self, t: f64) -> Option<usize> {
        (t >= 0.0 && t.fract() == 0.0).then_some(t as usize)
    }

    /// The segment [j, j+1] of the sigma~ table (indices t + 1) holding t and the weight of t in it.
    fn segment(&self, t: f64) -> (usize, f64) {
        let u = (t + 1.0).clamp(0.0, (self.sigma_tilde.len() - 1) as f64);
        let j = (u.ceil() as usize).saturating_sub(1).min(self.sigma_tilde.len() - 2);
        (j, u - j as f64)
    }

    /// d sigma~ / dt on the segment holding t (towards the data at an integer).
    fn slope(&self, t: f64) -> f64 {
        let (j, _) = self.segment(t);
        self.sigma_tilde[j + 1] - self.sigma_tilde[j]
    }
}

impl ForwardProcess for Ddpm {
    fn name(&self) -> &'static str {
        "ddpm"
    }
    fn t_min(&self) -> f64 {
        -1.0
    }
    fn t_max(&self) -> f64 {
        (self.ac.len() - 1) as f64
    }
    fn t_end_default(&self) -> f64 {
        -1.0
    }
    fn f(&self, t: f64) -> f64 {
        let s = self.sigma_tilde(t);
        -s * self.slope(t) / (1.0 + s * s)
    }
    fn g2(&self, t: f64) -> f64 {
        let s = self.sigma_tilde(t);
        2.0 * s * self.slope(t) / (1.0 + s * s)
    }
    fn alpha(&self, t: f64) -> f64 {
        match self.index(t) {
            Some(i) => self.ac[i].sqrt(),
            None if t == -1.0 => 1.0,
            None => self.alpha_from_sigma_tilde(self.sigma_tilde(t)),
        }
    }
    fn sigma(&self, t: f64) -> f64 {
        match self.index(t) {
            Some(i) => (1.0 - self.ac[i]).sqrt(),
            None if t == -1.0 => 0.0,
            None => {
                let s = self.sigma_tilde(t);
                s * self.alpha_from_sigma_tilde(s)
            }
        }
    }
    fn log_snr(&self, t: f64) -> f64 {
        -self.sigma_tilde(t).ln()
    }
    fn t_from_log_snr(&self, lambda: f64) -> f64 {
        self.t_from_sigma_tilde((-lambda).exp())
    }
    fn prior_std(&self) -> f64 {
        1.0
    }
    fn sigma_tilde(&self, t: f64) -> f64 {
        match self.index(t) {
            Some(i) if i < self.ac.len() => self.sigma_tilde[i + 1],
            _ => {
                let (j, w) = self.segment(t);
                self.sigma_tilde[j] + w * (self.sigma_tilde[j + 1] - self.sigma_tilde[j])
            }
        }
    }
    fn alpha_from_sigma_tilde(&self, s: f64) -> f64 {
        1.0 / (1.0 + s * s).sqrt()
    }
    fn t_from_sigma_tilde(&self, s: f64) -> f64 {
        let table = &self.sigma_tilde;
        let last = table.len() - 1;
        if s >= table[last] {
            return self.t_max();
        }
        if s <= 0.0 {
            return -1.0;
        }
        // The first index whose sigma~ is >= s (the table increases strictly).
        let k = table.partition_point(|&v| v < s);
        if table[k] == s {
            return k as f64 - 1.0;
        }
        let (lo, hi) = (table[k - 1], table[k]);
        (k - 1) as f64 + (s - lo) / (hi - lo) - 1.0
    }
    fn discrete_steps(&self) -> Option<usize> {
        Some(self.ac.len())
    }
    fn spec(&self) -> ProcessSpec {
        ProcessSpec::Ddpm(self.table.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn linear() -> Ddpm {
        Ddpm::new(DdpmTable::Betas {
            train_steps: 1000,
            schedule: BetaSchedule::Linear,
            beta_start: 1e-4,
            beta_end: 0.02,
            rescale_zero_snr: false,
        })
        .unwrap()
    }

    #[test]
    fn sigma_tilde_and_its_inverse_agree_on_and_between_the_timesteps() {
        let p = linear();
        for t in [-1.0, -0.5, 0.0, 0.25, 1.0, 17.5, 500.0, 998.9, 999.0] {
            let s = p.sigma_tilde(t);
            assert!((p.t_from_sigma_tilde(s) - t).abs() < 1e-9, "t = {t}");
            let (a, sg) = (p.alpha(t), p.sigma(t));
            assert!((sg / a - s).abs() <= 1e-14 * s.max(1e-300), "t = {t}");
            assert!((a * a + sg * sg - 1.0).abs() < 1e-14, "t = {t}");
        }
    }

    #[test]
    fn zero_snr_rescale_ends_at_zero_and_keeps_the_first_value() {
        let b = betas(BetaSchedule::Linear, 1000, 1e-4, 0.02);
        let r = rescale_zero_snr(&b);
        let (ac, acr) = (cumprod(&b), cumprod(&r));
        assert!((acr[0] - ac[0]).abs() < 1e-15);
        assert!(acr[999].abs() < 1e-15);
    }

    #[test]
    fn bad_tables_name_the_entry() {
        let e = Ddpm::new(DdpmTable::AlphasCumprod { alphas_cumprod: vec![0.9, 0.95] }).unwrap_err().to_string();
        assert!(e.contains("alphas_cumprod[1] = 0.95"), "{e}");
        let e = Ddpm::new(DdpmTable::AlphasCumprod { alphas_cumprod: vec![0.9, f64::NAN] }).unwrap_err().to_string();
        assert!(e.contains("alphas_cumprod[1]"), "{e}");
    }
}
