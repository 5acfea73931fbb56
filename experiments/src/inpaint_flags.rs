//! The inpainting flags of `scoresde sample`: observed values, their mask and the method.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use ndarray::Array2;
use scoresde::inpaint::{InpaintMethod, Observation};
use scoresde::io::{read_npy_2d, read_npy_2d_unchecked};

/// How observed coordinates enter the sampler (--inpaint).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InpaintKind {
    /// score_sde's replacement: the observed coordinates replaced by the noised observation
    /// after every step.
    Replacement,
    /// RePaint: replacement with --resample repeats of every step.
    Repaint,
    /// Diffusion posterior sampling (reconstruction guidance) with step --dps-scale.
    Dps,
    /// Exact draws from the target's conditional mixture (the reference; no solver).
    Exact,
}

/// Inpainting flags.
#[derive(Debug, Args, Clone)]
pub struct InpaintArgs {
    /// Observed values, (N, d) float64 .npy: row i conditions sample i (entries outside
    /// --mask are not read and may be NaN).
    #[arg(long, requires = "mask")]
    pub observe: Option<PathBuf>,
    /// Which coordinates are observed, (N, d) .npy of 0 and 1 (float64).
    #[arg(long, requires = "observe")]
    pub mask: Option<PathBuf>,
    /// The inpainting method.
    #[arg(long, value_enum, default_value_t = InpaintKind::Replacement, requires = "observe")]
    pub inpaint: InpaintKind,
    /// RePaint: repeats of every step (RePaint's U; its paper uses 10).
    #[arg(long, default_value_t = 10)]
    pub resample: usize,
    /// DPS: the step size zeta' (each row moves by zeta' / ||y - A x0_hat|| times the gradient).
    #[arg(long, default_value_t = 1.0)]
    pub dps_scale: f64,
}

impl InpaintArgs {
    /// The observation of the flags, if any, checked against `d` columns.
    pub fn observation(&self, given: &[String]) -> Result<Option<(Observation, InpaintKind, InpaintMethod)>, String> {
        if given.iter().any(|g| g == "resample") && self.inpaint != InpaintKind::Repaint {
            return Err("--resample: an option of --inpaint repaint".into());
        }
        if given.iter().any(|g| g == "dps_scale") && self.inpaint != InpaintKind::Dps {
            return Err("--dps-scale: an option of --inpaint dps".into());
        }
        let (Some(x), Some(m)) = (&self.observe, &self.mask) else { return Ok(None) };
        let values = read_npy_2d_unchecked(x, "observe").map_err(|e| e.to_string())?;
        let mask: Array2<f64> = read_npy_2d(m, "mask").map_err(|e| e.to_string())?;
        let mask = Observation::mask_from_f64(mask.view()).map_err(|e| format!("--mask {}: {e}", m.display()))?;
        let obs = Observation::new(values, mask).map_err(|e| e.to_string())?;
        if self.inpaint == InpaintKind::Repaint && self.resample == 0 {
            return Err("--resample = 0: must be at least 1".into());
        }
        let method = match self.inpaint {
            InpaintKind::Repaint => InpaintMethod::RePaint { resample: self.resample },
            InpaintKind::Dps => InpaintMethod::Dps { scale: self.dps_scale },
            _ => InpaintMethod::Replacement,
        };
        Ok(Some((obs, self.inpaint, method)))
    }
}
