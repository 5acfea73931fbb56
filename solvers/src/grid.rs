//! Time grids as validated data.
//!
//! Every fixed-step solver takes its step sizes from consecutive grid points (never from a
//! separate `dt`), so a grid is checked once, when it is built: at least two points, all finite,
//! strictly monotone. Diffusion samplers run grids *downwards* (noise -> data); the generic
//! solvers accept either direction.

use crate::error::{Result, SolverError};

/// A strictly monotone, finite sequence of at least two times.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeGrid {
    points: Vec<f64>,
}

impl TimeGrid {
    /// Validates and wraps `points`.
    ///
    /// ```
    /// use scoresde_solvers::TimeGrid;
    /// let g = TimeGrid::new(vec![1.0, 0.5, 0.1]).unwrap();
    /// assert_eq!(g.steps(), 2);
    /// assert!(TimeGrid::new(vec![1.0, 1.0]).is_err());
    /// ```
    pub fn new(points: Vec<f64>) -> Result<Self> {
        if points.len() < 2 {
            return Err(SolverError::GridTooShort { len: points.len() });
        }
        if let Some((index, &value)) = points.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(SolverError::NonFiniteGrid { index, value });
        }
        let decreasing = points[1] < points[0];
        for i in 1..points.len() {
            let (prev, next) = (points[i - 1], points[i]);
            let ok = if decreasing { next < prev } else { next > prev };
            if !ok {
                return Err(SolverError::NonMonotoneGrid { index: i, prev, next });
            }
        }
        Ok(Self { points })
    }

    /// `steps + 1` equally spaced points from `start` to `end` (both included exactly).
    pub fn uniform(start: f64, end: f64, steps: usize) -> Result<Self> {
        if steps == 0 {
            return Err(SolverError::InvalidParameter { name: "steps", value: 0.0, expected: "must be at least 1" });
        }
        let n = steps as f64;
        let mut points: Vec<f64> = (0..=steps).map(|i| start + (end - start) * (i as f64 / n)).collect();
        points[steps] = end;
        Self::new(points)
    }

    /// The points, in integration order.
    pub fn points(&self) -> &[f64] {
        &self.points
    }

    /// Number of steps (points minus one).
    pub fn steps(&self) -> usize {
        self.points.len() - 1
    }

    /// First point.
    pub fn start(&self) -> f64 {
        self.points[0]
    }

    /// Last point.
    pub fn end(&self) -> f64 {
        self.points[self.points.len() - 1]
    }

    /// Whether the grid runs towards smaller times.
    pub fn is_decreasing(&self) -> bool {
        self.points[1] < self.points[0]
    }

    /// Consecutive pairs `(t_i, t_{i+1})`, one per step.
    pub fn intervals(&self) -> impl Iterator<Item = (f64, f64)> + '_ {
        self.points.windows(2).map(|w| (w[0], w[1]))
    }
}
