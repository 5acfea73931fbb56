//! A guided model: a conditional and an unconditional model combined by a [`Guidance`] rule at
//! every evaluation (one guided NFE; the two evaluations of a network count as one).

use ndarray::{Array2, ArrayView2, ArrayViewMut2};

use super::rule::Guidance;
use crate::error::Result;
use crate::model::{NoiseLevel, Parameterisation, ScoreModel};

/// `guidance.combine(cond, uncond)` in `guidance.space` at every evaluation.
pub struct Guided {
    cond: Box<dyn ScoreModel>,
    uncond: Box<dyn ScoreModel>,
    guidance: Guidance,
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
        Ok(Self { cond, uncond, guidance })
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
    fn predict(&self, level: NoiseLevel, x: ArrayView2<f64>, mut out: ArrayViewMut2<f64>) -> Result<()> {
        let space = self.guidance.space;
        let mut c = Array2::zeros(x.dim());
        predict_in(&*self.cond, space, level, x, c.view_mut())?;
        if !self.guidance.active(level) {
            out.assign(&c);
            return Ok(());
        }
        let mut u = Array2::zeros(x.dim());
        predict_in(&*self.uncond, space, level, x, u.view_mut())?;
        self.guidance.combine(level, c.view(), u.view(), out);
        Ok(())
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
        mut guided: ArrayViewMut2<f64>,
        mut uncond: ArrayViewMut2<f64>,
    ) -> Result<()> {
        let space = self.guidance.space;
        let mut c = Array2::zeros(x.dim());
        predict_in(&*self.cond, space, level, x, c.view_mut())?;
        predict_in(&*self.uncond, space, level, x, uncond.view_mut())?;
        if self.guidance.active(level) {
            self.guidance.combine(level, c.view(), uncond.view(), guided);
        } else {
            guided.assign(&c);
        }
        Ok(())
    }
}
