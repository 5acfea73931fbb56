//! Linear multistep (Adams-Bashforth on a variable grid), k-diffusion's LMS sampler.

use ndarray::{Array2, ArrayViewMut2};

use crate::error::{Result, SolverError};
use crate::stepper::{OdeStepper, StepInfo};
use crate::system::SigmaSpace;

/// Adams-Bashforth of order `order` on the sigma grid (k-diffusion `sample_lms`): with the last k
/// derivatives d_j = eps(x_j, s_j), x_{i+1} = x_i + sum_j c_j d_{i-j}, c_j the integral over
/// [s_i, s_{i+1}] of the Lagrange basis polynomial of node s_{i-j} on the nodes s_i, ..., s_{i-k+1}.
/// The first steps use the orders available (1, 2, ...). The coefficients are integrated exactly
/// (4-point Gauss-Legendre, exact for these polynomials of degree <= 3 and up to degree 7), as
/// k-diffusion's adaptive quadrature does to round-off.
/// - Order `order` (1-4); NFE 1 per step. Requires: [`SigmaSpace`]. Deterministic.
/// - Reproduces k-diffusion with order 4: `d2_vp-t_lms4-sigma_n10`, `d2_vp-karras_lms4-sigma_n10`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lms {
    order: usize,
}

impl Lms {
    /// Validates 1 <= order <= 4.
    pub fn new(order: usize) -> Result<Self> {
        if !(1..=4).contains(&order) {
            return Err(SolverError::InvalidParameter {
                name: "order",
                value: order as f64,
                expected: "LMS order must be 1 to 4",
            });
        }
        Ok(Self { order })
    }
}

/// Derivative history (most recent first) and the nodes they were taken at.
#[derive(Debug)]
pub struct LmsState {
    ds: Vec<Array2<f64>>,
    nodes: Vec<f64>,
    filled: usize,
}

/// Integral over [a, b] of the Lagrange basis polynomial of `nodes[j]`.
fn basis_integral(nodes: &[f64], j: usize, a: f64, b: f64) -> f64 {
    const X: [f64; 4] =
        [-0.861_136_311_594_052_6, -0.339_981_043_584_856_3, 0.339_981_043_584_856_3, 0.861_136_311_594_052_6];
    const W: [f64; 4] =
        [0.347_854_845_137_453_9, 0.652_145_154_862_546_1, 0.652_145_154_862_546_1, 0.347_854_845_137_453_9];
    let (m, r) = (0.5 * (a + b), 0.5 * (b - a));
    X.iter()
        .zip(W)
        .map(|(&x, w)| {
            let tau = m + r * x;
            let l: f64 = nodes
                .iter()
                .enumerate()
                .filter(|(k, _)| *k != j)
                .map(|(_, &tk)| (tau - tk) / (nodes[j] - tk))
                .product();
            w * l
        })
        .sum::<f64>()
        * r
}

impl<S: SigmaSpace + ?Sized> OdeStepper<S> for Lms {
    type State = LmsState;

    fn init(&self, rows: usize, cols: usize) -> LmsState {
        LmsState {
            ds: (0..self.order).map(|_| Array2::zeros((rows, cols))).collect(),
            nodes: vec![0.0; self.order],
            filled: 0,
        }
    }
    fn step(&self, sys: &S, at: StepInfo, mut x: ArrayViewMut2<f64>, st: &mut LmsState) -> Result<()> {
        // Shift the history: slot 0 is the newest.
        st.ds.rotate_right(1);
        st.nodes.rotate_right(1);
        sys.eps(at.t0, x.view(), st.ds[0].view_mut())?;
        st.nodes[0] = at.t0;
        st.filled = (st.filled + 1).min(self.order);
        let nodes = &st.nodes[..st.filled];
        for j in 0..st.filled {
            x.scaled_add(basis_integral(nodes, j, at.t0, at.t1), &st.ds[j]);
        }
        Ok(())
    }
}
