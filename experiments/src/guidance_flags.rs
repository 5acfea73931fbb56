//! The guidance flags of `scoresde sample` beyond `--class` and `--guidance`: the rule, its
//! parameters, its interval and space, and classifier guidance with the exact classifier.

use clap::{Args, ValueEnum};
use scoresde::guidance::{Guidance, GuidanceRule};
use scoresde::model::Parameterisation;

/// The guidance rule (--guidance-rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RuleKind {
    /// Classifier-free guidance, u + (1 + w) (c - u).
    Cfg,
    /// CFG rescaled to the conditional prediction's standard deviation (Lin et al. 2024).
    Rescale,
    /// Adaptive projected guidance (Sadat et al. 2025).
    Apg,
    /// CFG-Zero* (Fan et al. 2025).
    CfgZeroStar,
}

/// A prediction space (--guidance-space).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SpaceKind {
    /// Noise eps.
    Eps,
    /// Clean data x0.
    X0,
    /// v = alpha eps - sigma x0.
    V,
    /// Flow velocity eps - x0.
    Velocity,
}

/// Guidance flags.
#[derive(Debug, Args, Clone)]
pub struct GuidanceArgs {
    /// How the conditional and unconditional predictions are combined (with --class).
    #[arg(long, value_enum, default_value_t = RuleKind::Cfg, requires = "class")]
    pub guidance_rule: RuleKind,
    /// Guidance rescale phi, in [0, 1] (diffusers' guidance_rescale; the paper's 0.7).
    #[arg(long, default_value_t = 0.7)]
    pub guidance_rescale: f64,
    /// APG: weight eta of the difference's part parallel to the conditional prediction.
    #[arg(long, default_value_t = 0.0)]
    pub apg_eta: f64,
    /// APG: the norm r the difference is clipped to (0: no clipping).
    #[arg(long, default_value_t = 0.0)]
    pub apg_norm_threshold: f64,
    /// APG: momentum beta of the running difference R <- (c - u) + beta R (0: none; the paper
    /// uses negative values such as -0.5).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub apg_momentum: f64,
    /// CFG-Zero*: the first K model evaluations return zero (diffusers' zero_init_steps; 0:
    /// none).
    #[arg(long, default_value_t = 0)]
    pub zero_init_steps: usize,
    /// Apply guidance only where sigma~ = sigma / alpha is in (LO, HI] (Kynkäänniemi et al.
    /// 2024): LO,HI; HI may be inf. Elsewhere the prediction is conditional.
    #[arg(long, value_delimiter = ',', requires = "class")]
    pub guidance_interval: Option<Vec<f64>>,
    /// The prediction space the rule combines in [default: the rule's paper's: x0 for apg,
    /// velocity for cfg-zero-star, eps otherwise].
    #[arg(long, value_enum, requires = "class")]
    pub guidance_space: Option<SpaceKind>,
    /// Classifier guidance (Dhariwal & Nichol 2021) with scale S instead of classifier-free
    /// guidance: the exact score plus S times the gradient of the exact noisy classifier of
    /// --class (a group of --classes).
    #[arg(long, requires = "class", conflicts_with_all = ["guidance", "guidance_rule", "guidance_interval", "guidance_space"])]
    pub classifier_scale: Option<f64>,
    /// Classifier guidance with a trained noisy classifier (`scoresde train-classifier`)
    /// instead of the exact one: its --class, scale --classifier-scale, over the exact score of
    /// --target or a --model network's unconditional prediction.
    #[arg(long, requires = "classifier_scale")]
    pub classifier: Option<std::path::PathBuf>,
}

impl GuidanceArgs {
    /// The rule with weight `w`, validated; `None` for plain CFG everywhere in eps (the
    /// one-pass path).
    pub fn guidance(&self, w: f64, given: &[String]) -> Result<Option<Guidance>, String> {
        let rule = match self.guidance_rule {
            RuleKind::Cfg => GuidanceRule::Cfg,
            RuleKind::Rescale => GuidanceRule::Rescale { phi: self.guidance_rescale },
            RuleKind::Apg => GuidanceRule::Apg {
                eta: self.apg_eta,
                norm_threshold: self.apg_norm_threshold,
                momentum: self.apg_momentum,
            },
            RuleKind::CfgZeroStar => GuidanceRule::CfgZeroStar { zero_init: self.zero_init_steps },
        };
        let needs = |flag: &str, kind: RuleKind| {
            let id = flag.trim_start_matches("--").replace('-', "_");
            if given.contains(&id) && self.guidance_rule != kind {
                return Err(format!(
                    "{flag}: an option of --guidance-rule {}",
                    kind.to_possible_value().unwrap().get_name()
                ));
            }
            Ok(())
        };
        needs("--guidance-rescale", RuleKind::Rescale)?;
        needs("--apg-eta", RuleKind::Apg)?;
        needs("--apg-norm-threshold", RuleKind::Apg)?;
        needs("--apg-momentum", RuleKind::Apg)?;
        needs("--zero-init-steps", RuleKind::CfgZeroStar)?;
        let mut g = Guidance::new(rule, w);
        if let Some(space) = self.guidance_space {
            g.space = match space {
                SpaceKind::Eps => Parameterisation::Eps,
                SpaceKind::X0 => Parameterisation::X0,
                SpaceKind::V => Parameterisation::V,
                SpaceKind::Velocity => Parameterisation::Velocity,
            };
        }
        g.interval = match self.guidance_interval.as_deref() {
            None => None,
            Some(&[lo, hi]) => Some((lo, hi)),
            Some(v) => return Err(format!("--guidance-interval: {} values given, expected LO,HI", v.len())),
        };
        g.validate().map_err(|e| e.to_string())?;
        let plain = rule == GuidanceRule::Cfg && g.interval.is_none() && self.guidance_space.is_none();
        Ok((!plain).then_some(g))
    }

    /// The classifier scale, checked finite.
    pub fn classifier_scale(&self) -> Result<Option<f64>, String> {
        match self.classifier_scale {
            Some(s) if !s.is_finite() => Err(format!("--classifier-scale = {s}: must be finite")),
            s => Ok(s),
        }
    }
}
