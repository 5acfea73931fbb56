//! A guided model: a conditional and an unconditional model combined by a [`Guidance`] rule at
//! every evaluation (one guided NFE; the two evaluations of a network count as one).

use ndarray::{Array2, ArrayView2, ArrayViewMut2};

use std::sync::Mutex;

use super::rule::{Guidance, GuidanceState};
use crate::error::Result;
use crate::model::{NoiseLevel, Parameterisation, ScoreModel};

/// `guidance.combine(cond, uncond)` in `guidance.space` at every evaluation, with the rule's
/// state (APG's momentum, CFG-Zero*'s zero-init) carried from one evaluation to the next: a
/// `Guided` serves one run (make a new one per run).
pub struct Guided {
    cond: Box<dyn ScoreModel>,
    uncond: Box<dyn ScoreModel>,
    guidance: Guidance,
    state: Mutex<GuidanceState>,
}

impl Guided {
    /// The guided model of `cond` and `uncond` (same dimension) under `guidance` (validated).
    pub fn new(cond: Box<dyn ScoreModel>, uncond: Box<dyn ScoreModel>, guidance: Guidance) -> Result<Self> {
        guidance.validate()?;
        if cond.dim() != uncond.dim() {
            return Err(crate::ScoreError::DimensionMismatch {
                what: "guided model: the unconditional model's dimension".into(),
                expected: cond.dim(),
                found: uncond.dim(),
            });
        }
        Ok(Self { cond, uncond, guidance, state: Mutex::new(GuidanceState::default()) })
    }

    /// The rule, interval and space.
    pub fn guidance(&self) -> &Guidance {
        &self.guidance
    }
}

/// `model`'s prediction at `level` in `space`.
fn predict_in(
    model: &dyn ScoreModel,
    space: Parameterisation,
    level: NoiseLevel,
    x: ArrayView2<f64>,
    out: ArrayViewMut2<f64>,
) -> Result<()> {
    let mut out = out;
    if model.parameterisation() == space {
        return model.predict(level, x, out);
    }
    model.predict_eps(level, x, out.view_mut())?;
    space.from_eps(level, x, out);
    Ok(())
}

impl ScoreModel for Guided {
    fn dim(&self) -> usize {
        self.cond.dim()
    }
    fn parameterisation(&self) -> Parameterisation {
        self.guidance.space
    }
    fn predict(&self, level: NoiseLevel, x: ArrayView2<f64>, out: ArrayViewMut2<f64>) -> Result<()> {
        let space = self.guidance.space;
        let mut c = Array2::zeros(x.dim());
        predict_in(&*self.cond, space, level, x, c.view_mut())?;
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if !self.guidance.active(level) {
            // Outside the interval the rule returns c and never reads u (one pass saved).
            return self.guidance.combine(level, c.view(), c.view(), out, &mut state);
        }
        let mut u = Array2::zeros(x.dim());
        predict_in(&*self.uncond, space, level, x, u.view_mut())?;
        self.guidance.combine(level, c.view(), u.view(), out, &mut state)
    }
    fn has_pair(&self) -> bool {
        true
    }
    /// The rule's combination and the unconditional prediction, both in the rule's space
    /// (outside the guidance interval the guided one is the conditional).
    fn predict_pair(
        &self,
        level: NoiseLevel,
        x: ArrayView2<f64>,
        guided: ArrayViewMut2<f64>,
        mut uncond: ArrayViewMut2<f64>,
    ) -> Result<()> {
        let space = self.guidance.space;
        let mut c = Array2::zeros(x.dim());
        predict_in(&*self.cond, space, level, x, c.view_mut())?;
        predict_in(&*self.uncond, space, level, x, uncond.view_mut())?;
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        self.guidance.combine(level, c.view(), uncond.view(), guided, &mut state)
    }
}
