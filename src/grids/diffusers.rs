//! diffusers' schedule tables, reproduced: timestep spacings of the discrete schedulers, the
//! sigma tables of `EulerDiscreteScheduler` (default, Karras, exponential and beta sigmas) and
//! the shifted tables of `FlowMatchEulerDiscreteScheduler`. Every function computes in float64
//! what diffusers computes (in float32 as shipped); the tables agree with diffusers run in
//! float64 to round-off (reference cases `grid_*` of cases_v2).

use crate::error::{Result, ScoreError};
use crate::process::ForwardProcess;

/// diffusers' `timestep_spacing`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestepSpacing {
    /// linspace(0, T - 1, n), reversed (Euler keeps the fractions; DDPM/DDIM round them).
    Linspace,
    /// arange(n) * (T // n), reversed, + steps_offset (DDPM's and DDIM's default).
    Leading,
    /// round(arange(T, 0, -T / n)) - 1 (ends at T - 1: Lin et al. 2024's recommendation).
    Trailing,
}

/// The sigma table an Euler scheduler derives from its timesteps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigmaSchedule {
    /// The chain's sigma~ at the timesteps (interpolated linearly in t).
    Default,
    /// Karras et al. (2022) rho = 7 between that table's ends (`use_karras_sigmas`).
    Karras,
    /// Log-linear between its ends (`use_exponential_sigmas`).
    Exponential,
    /// Quantiles of Beta(0.6, 0.6) between its ends (`use_beta_sigmas`; Lee et al. 2024).
    Beta,
}

fn bad(name: &str, value: f64, expected: &'static str) -> ScoreError {
    ScoreError::InvalidParameter { name: name.into(), value, expected }
}

/// numpy's linspace(a, b, n) (n >= 1): a + i (b - a) / (n - 1), the last point exactly b.
pub fn linspace(a: f64, b: f64, n: usize) -> Vec<f64> {
    if n == 1 {
        return vec![a];
    }
    let step = (b - a) / (n - 1) as f64;
    let mut v: Vec<f64> = (0..n).map(|i| a + i as f64 * step).collect();
    v[n - 1] = b;
    v
}

/// The timesteps (descending) of `n` inference steps of a `train_steps`-step chain. `round`:
/// DDPM's and DDIM's integer timesteps (linspace rounded); Euler keeps linspace's fractions.
pub fn timesteps(
    spacing: TimestepSpacing,
    train_steps: usize,
    n: usize,
    steps_offset: usize,
    round: bool,
) -> Result<Vec<f64>> {
    if n == 0 || n > train_steps {
        return Err(bad("steps", n as f64, "must be in 1..=T (the chain's train steps)"));
    }
    let t = train_steps as f64;
    let mut ts: Vec<f64> = match spacing {
        TimestepSpacing::Linspace => {
            let v = linspace(0.0, t - 1.0, n);
            v.into_iter().rev().map(|x| if round { x.round_ties_even() } else { x }).collect()
        }
        TimestepSpacing::Leading => {
            let ratio = train_steps / n;
            (0..n).rev().map(|i| (i * ratio + steps_offset) as f64).collect()
        }
        TimestepSpacing::Trailing => {
            // np.arange(T, 0, -T/n): T - i T/n while > 0.
            let ratio = t / n as f64;
            let mut v = vec![];
            let mut i = 0usize;
            loop {
                let x = t - i as f64 * ratio;
                if x <= 0.0 {
                    break;
                }
                v.push(x.round_ties_even() - 1.0);
                i += 1;
            }
            v
        }
    };
    if let Some(&top) = ts.first() {
        if top > t - 1.0 {
            return Err(bad("steps_offset", steps_offset as f64, "puts the first timestep beyond T - 1"));
        }
    }
    ts.dedup();
    Ok(ts)
}

/// diffusers' `_sigma_to_t`: the fractional timestep of `sigma`, piecewise linear in log sigma
/// over the chain's table (clipped to its ends).
pub fn sigma_to_t(sigma: f64, log_sigmas: &[f64]) -> f64 {
    let ls = sigma.max(1e-10).ln();
    let n = log_sigmas.len();
    // The last index whose log sigma is <= ls (0 if none), at most n - 2: diffusers' argmax of
    // the cumulative count, which is the last such index even where the table is not monotone
    // (the zero-SNR table's last entry).
    let low = log_sigmas.iter().rposition(|&l| ls - l >= 0.0).unwrap_or(0).min(n - 2);
    let (lo, hi) = (log_sigmas[low], log_sigmas[low + 1]);
    let w = ((lo - ls) / (lo - hi)).clamp(0.0, 1.0);
    (1.0 - w) * low as f64 + w * (low + 1) as f64
}

/// Karras et al.'s rho-schedule from `sigma_max` down to `sigma_min`, `n` points (k-diffusion's
/// and diffusers' formula).
pub fn karras(sigma_min: f64, sigma_max: f64, n: usize, rho: f64) -> Vec<f64> {
    let (lo, hi) = (sigma_min.powf(1.0 / rho), sigma_max.powf(1.0 / rho));
    linspace(0.0, 1.0, n).into_iter().map(|r| (hi + r * (lo - hi)).powf(rho)).collect()
}

/// exp(linspace(ln sigma_max, ln sigma_min, n)).
pub fn exponential(sigma_min: f64, sigma_max: f64, n: usize) -> Vec<f64> {
    linspace(sigma_max.ln(), sigma_min.ln(), n).into_iter().map(f64::exp).collect()
}

/// The q-quantile of Beta(a, b), by bisection on the regularised incomplete beta function (to
/// the spacing of f64).
pub fn beta_ppf(q: f64, a: f64, b: f64) -> f64 {
    if q <= 0.0 {
        return 0.0;
    }
    if q >= 1.0 {
        return 1.0;
    }
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            break;
        }
        if statrs::function::beta::beta_reg(a, b, mid) < q {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// diffusers' beta sigmas: sigma_min + ppf(1 - linspace(0, 1, n)) (sigma_max - sigma_min) with
/// the quantiles of Beta(0.6, 0.6).
pub fn beta_sigmas(sigma_min: f64, sigma_max: f64, n: usize) -> Vec<f64> {
    linspace(0.0, 1.0, n)
        .into_iter()
        .map(|u| sigma_min + beta_ppf(1.0 - u, 0.6, 0.6) * (sigma_max - sigma_min))
        .collect()
}

/// numpy's interp(x, arange(len(table)), table).
fn interp(x: f64, table: &[f64]) -> f64 {
    let last = table.len() - 1;
    if x <= 0.0 {
        return table[0];
    }
    if x >= last as f64 {
        return table[last];
    }
    let j = x.floor() as usize;
    let w = x - j as f64;
    table[j] + w * (table[j + 1] - table[j])
}

/// `EulerDiscreteScheduler.set_timesteps(n)` on a discrete chain (a process with
/// [`ForwardProcess::discrete_steps`], whose sigma~ at the integer timesteps is its table): the
/// sigmas (n + 1, ending with 0) and the timesteps (n), as floats.
pub fn euler_table(
    chain: &dyn ForwardProcess,
    spacing: TimestepSpacing,
    n: usize,
    steps_offset: usize,
    schedule: SigmaSchedule,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let train_steps = chain.discrete_steps().ok_or_else(|| ScoreError::InvalidParameter {
        name: format!("process {}: discrete steps", chain.name()),
        value: 0.0,
        expected: "diffusers' Euler tables need the discrete chain (--process ddpm)",
    })?;
    let table: Vec<f64> = (0..train_steps).map(|k| chain.sigma_tilde(k as f64)).collect();
    let mut ts = timesteps(spacing, train_steps, n, steps_offset, false)?;
    let mut sigmas: Vec<f64> = ts.iter().map(|&t| interp(t, &table)).collect();
    let (lo, hi) = (sigmas[sigmas.len() - 1], sigmas[0]);
    let m = sigmas.len();
    let converted = match schedule {
        SigmaSchedule::Default => None,
        SigmaSchedule::Karras => Some(karras(lo, hi, m, 7.0)),
        SigmaSchedule::Exponential => Some(exponential(lo, hi, m)),
        SigmaSchedule::Beta => Some(beta_sigmas(lo, hi, m)),
    };
    if let Some(c) = converted {
        let log_sigmas: Vec<f64> = table.iter().map(|s| s.ln()).collect();
        ts = c.iter().map(|&s| sigma_to_t(s, &log_sigmas)).collect();
        sigmas = c;
    }
    sigmas.push(0.0);
    Ok((sigmas, ts))
}

/// How a flow-match table is shifted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FlowShift {
    /// t -> s t / (1 + (s - 1) t) (SD3's `shift`; 1 = none).
    Static(f64),
    /// Dynamic shifting (Flux): t -> e^mu / (e^mu + 1/t - 1).
    Dynamic(f64),
}

impl FlowShift {
    /// The shifted time.
    pub fn apply(self, t: f64) -> f64 {
        match self {
            Self::Static(s) => s * t / (1.0 + (s - 1.0) * t),
            Self::Dynamic(mu) => mu.exp() / (mu.exp() + (1.0 / t - 1.0)),
        }
    }

    fn check(self) -> Result<()> {
        match self {
            Self::Static(s) if !(s.is_finite() && s > 0.0) => Err(bad("shift", s, "must be positive and finite")),
            Self::Dynamic(mu) if !mu.is_finite() => Err(bad("mu", mu, "must be finite")),
            _ => Ok(()),
        }
    }
}

/// `FlowMatchEulerDiscreteScheduler(shift | use_dynamic_shifting).set_timesteps(n[, mu])`: the
/// times t (n + 1, ending with 0; diffusers calls them sigmas) and the timesteps 1000 t (n).
///
/// diffusers' quirk, reproduced: the static shift is applied once when the scheduler is built
/// (its smallest sigma becomes shift(1/T)) and again in `set_timesteps`, so the last nonzero t
/// is shift(shift(1/T)); the points in between are shift(linspace(1, shift(1/T), n)).
/// [`flow_times`] gives the grid without the quirk.
pub fn flow_table(n: usize, shift: FlowShift, train_steps: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    shift.check()?;
    if n == 0 {
        return Err(bad("steps", 0.0, "must be at least 1"));
    }
    let t = train_steps as f64;
    let sigma_min = match shift {
        FlowShift::Static(_) => shift.apply(1.0 / t),
        FlowShift::Dynamic(_) => 1.0 / t,
    };
    let sigma_max = shift.apply(1.0);
    let mut sigmas: Vec<f64> =
        linspace(sigma_max * t, sigma_min * t, n).into_iter().map(|x| shift.apply(x / t)).collect();
    let ts: Vec<f64> = sigmas.iter().map(|s| s * t).collect();
    sigmas.push(0.0);
    Ok((sigmas, ts))
}

/// The shifted flow grid without diffusers' double shift: shift(linspace(1, t_end, n)) then 0,
/// `n + 1` points.
pub fn flow_times(n: usize, shift: FlowShift, t_end: f64) -> Result<Vec<f64>> {
    shift.check()?;
    let mut v: Vec<f64> = linspace(1.0, t_end, n).into_iter().map(|x| shift.apply(x)).collect();
    v.push(0.0);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spacings_match_diffusers_by_hand() {
        let lead = timesteps(TimestepSpacing::Leading, 1000, 10, 1, true).unwrap();
        assert_eq!(lead, (0..10).rev().map(|i| (i * 100 + 1) as f64).collect::<Vec<_>>());
        let trail = timesteps(TimestepSpacing::Trailing, 1000, 10, 0, true).unwrap();
        assert_eq!(trail, (1..=10).rev().map(|i| (i * 100 - 1) as f64).collect::<Vec<_>>());
        let lin = timesteps(TimestepSpacing::Linspace, 1000, 4, 0, false).unwrap();
        assert_eq!(lin, vec![999.0, 666.0, 333.0, 0.0]);
        assert!(timesteps(TimestepSpacing::Leading, 1000, 10, 200, true).is_err());
    }

    #[test]
    fn beta_quantiles_invert_the_cdf_and_are_symmetric() {
        for q in [0.01, 0.2, 0.5, 0.77, 0.999] {
            let x = beta_ppf(q, 0.6, 0.6);
            assert!((statrs::function::beta::beta_reg(0.6, 0.6, x) - q).abs() < 1e-13);
            assert!((beta_ppf(1.0 - q, 0.6, 0.6) - (1.0 - x)).abs() < 1e-12);
        }
    }

    #[test]
    fn sigma_to_t_inverts_log_linear_interpolation() {
        let table: Vec<f64> = (0..10).map(|i| 0.1 * 1.5f64.powi(i)).collect();
        let logs: Vec<f64> = table.iter().map(|s| s.ln()).collect();
        for t in [0.0, 0.3, 4.5, 8.99, 9.0] {
            let j = (t as usize).min(8);
            let s = (logs[j] + (t - j as f64) * (logs[j + 1] - logs[j])).exp();
            assert!((sigma_to_t(s, &logs) - t).abs() < 1e-12, "t = {t}");
        }
    }
}
