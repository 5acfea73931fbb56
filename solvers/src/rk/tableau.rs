//! Explicit Runge-Kutta methods as checked data.
//!
//! A method is its Butcher tableau: nodes `c`, the strictly lower-triangular matrix `a` (row i
//! holds a_{i,0..i}), weights `b`, and for embedded pairs the error weights `b_err = b - b_hat`.
//! One generic stepper ([`crate::ExplicitRk`]) runs them all; [`ButcherTableau::check`] verifies
//! the row-sum condition and the order conditions up to the claimed order (tested for every
//! constant here).

/// An explicit Runge-Kutta method.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ButcherTableau {
    /// Short name (as on the command line).
    pub name: &'static str,
    /// Nodes c_i.
    pub c: &'static [f64],
    /// Lower-triangular coefficients: `a[i]` has length i.
    pub a: &'static [&'static [f64]],
    /// Weights of the propagated solution.
    pub b: &'static [f64],
    /// Error weights b - b_hat of an embedded pair (length = stages), if any.
    pub b_err: Option<&'static [f64]>,
    /// Classical order of the propagated solution.
    pub order: u32,
    /// Order of the embedded solution (the error estimate is O(h^(embedded_order+1))).
    pub embedded_order: u32,
    /// First-same-as-last: the last stage is evaluated at (t1, x1), so it equals the first stage
    /// of the next step. Such a stage only feeds the error estimate.
    pub fsal: bool,
}

impl ButcherTableau {
    /// Number of stages.
    pub fn stages(&self) -> usize {
        self.c.len()
    }

    /// Stages whose derivative the propagated solution needs: trailing stages with zero weight
    /// (the FSAL stage of an embedded pair) are skipped when no error estimate is wanted.
    pub fn solution_stages(&self) -> usize {
        let mut s = self.stages();
        while s > 1 && self.b[s - 1] == 0.0 {
            s -= 1;
        }
        s
    }

    /// Checks shapes, row sums (c_i = sum_j a_ij to 1e-14) and the order conditions up to
    /// `self.order` (up to order 5: all 17 rooted-tree conditions), to 1e-12.
    pub fn check(&self) -> Result<(), String> {
        let s = self.stages();
        if self.a.len() != s || self.b.len() != s {
            return Err(format!("{}: a has {} rows, b {} entries, c {}", self.name, self.a.len(), self.b.len(), s));
        }
        for (i, row) in self.a.iter().enumerate() {
            if row.len() != i {
                return Err(format!("{}: a[{i}] has length {}, expected {i}", self.name, row.len()));
            }
            let sum: f64 = row.iter().sum();
            if (sum - self.c[i]).abs() > 1e-14 {
                return Err(format!("{}: row sum of a[{i}] = {sum} but c[{i}] = {}", self.name, self.c[i]));
            }
        }
        if let Some(e) = self.b_err {
            if e.len() != s {
                return Err(format!("{}: b_err has length {}", self.name, e.len()));
            }
        }
        let conditions = order_conditions(self);
        for (order, lhs, rhs, label) in conditions {
            if order <= self.order && (lhs - rhs).abs() > 1e-12 {
                return Err(format!("{}: order-{order} condition {label}: {lhs} != {rhs}", self.name));
            }
        }
        Ok(())
    }
}

/// The order conditions (order, value, required, label) for trees up to order 5.
fn order_conditions(t: &ButcherTableau) -> Vec<(u32, f64, f64, &'static str)> {
    let s = t.stages();
    let a = |i: usize, j: usize| if j < i { t.a[i][j] } else { 0.0 };
    let (b, c) = (t.b, t.c);
    // ac[i] = sum_j a_ij c_j ; ac2[i] = sum_j a_ij c_j^2 ; aac[i] = sum_j a_ij ac[j] ; ...
    let mv = |v: &[f64]| -> Vec<f64> { (0..s).map(|i| (0..s).map(|j| a(i, j) * v[j]).sum()).collect() };
    let pw = |k: i32| -> Vec<f64> { c.iter().map(|x| x.powi(k)).collect() };
    let dot = |u: &[f64]| -> f64 { (0..s).map(|i| b[i] * u[i]).sum() };
    let had = |u: &[f64], v: &[f64]| -> Vec<f64> { (0..s).map(|i| u[i] * v[i]).collect() };
    let ones = vec![1.0; s];
    let c1 = pw(1);
    let c2 = pw(2);
    let c3 = pw(3);
    let ac = mv(&c1);
    let ac2 = mv(&c2);
    let aac = mv(&ac);
    let ac3 = mv(&c3);
    let a_cac = mv(&had(&c1, &ac));
    let aac2 = mv(&ac2);
    let aaac = mv(&aac);
    vec![
        (1, dot(&ones), 1.0, "sum b"),
        (2, dot(&c1), 1.0 / 2.0, "b.c"),
        (3, dot(&c2), 1.0 / 3.0, "b.c^2"),
        (3, dot(&ac), 1.0 / 6.0, "b.Ac"),
        (4, dot(&c3), 1.0 / 4.0, "b.c^3"),
        (4, dot(&had(&c1, &ac)), 1.0 / 8.0, "b.(c*Ac)"),
        (4, dot(&ac2), 1.0 / 12.0, "b.Ac^2"),
        (4, dot(&aac), 1.0 / 24.0, "b.AAc"),
        (5, dot(&pw(4)), 1.0 / 5.0, "b.c^4"),
        (5, dot(&had(&c2, &ac)), 1.0 / 10.0, "b.(c^2*Ac)"),
        (5, dot(&had(&ac, &ac)), 1.0 / 20.0, "b.(Ac)^2"),
        (5, dot(&had(&c1, &ac2)), 1.0 / 15.0, "b.(c*Ac^2)"),
        (5, dot(&ac3), 1.0 / 20.0, "b.Ac^3"),
        (5, dot(&had(&c1, &aac)), 1.0 / 30.0, "b.(c*AAc)"),
        (5, dot(&a_cac), 1.0 / 40.0, "b.A(c*Ac)"),
        (5, dot(&aac2), 1.0 / 60.0, "b.AAc^2"),
        (5, dot(&aaac), 1.0 / 120.0, "b.AAAc"),
    ]
}

/// Forward Euler. Order 1, 1 stage.
pub const EULER: ButcherTableau = ButcherTableau {
    name: "euler",
    c: &[0.0],
    a: &[&[]],
    b: &[1.0],
    b_err: None,
    order: 1,
    embedded_order: 0,
    fsal: false,
};

/// Explicit midpoint rule. Order 2, 2 stages.
pub const MIDPOINT: ButcherTableau = ButcherTableau {
    name: "midpoint",
    c: &[0.0, 0.5],
    a: &[&[], &[0.5]],
    b: &[0.0, 1.0],
    b_err: None,
    order: 2,
    embedded_order: 0,
    fsal: false,
};

/// Heun's method (explicit trapezoidal rule). Order 2, 2 stages.
pub const HEUN: ButcherTableau = ButcherTableau {
    name: "heun",
    c: &[0.0, 1.0],
    a: &[&[], &[1.0]],
    b: &[0.5, 0.5],
    b_err: None,
    order: 2,
    embedded_order: 0,
    fsal: false,
};

/// The classic fourth-order Runge-Kutta method (Kutta 1901). Order 4, 4 stages.
pub const RK4: ButcherTableau = ButcherTableau {
    name: "rk4",
    c: &[0.0, 0.5, 0.5, 1.0],
    a: &[&[], &[0.5], &[0.0, 0.5], &[0.0, 0.0, 1.0]],
    b: &[1.0 / 6.0, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 6.0],
    b_err: None,
    order: 4,
    embedded_order: 0,
    fsal: false,
};

/// Kutta's 3/8 rule. Order 4, 4 stages (torchdiffeq's `rk4`).
pub const RK4_38: ButcherTableau = ButcherTableau {
    name: "rk4-38",
    c: &[0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0],
    a: &[&[], &[1.0 / 3.0], &[-1.0 / 3.0, 1.0], &[1.0, -1.0, 1.0]],
    b: &[1.0 / 8.0, 3.0 / 8.0, 3.0 / 8.0, 1.0 / 8.0],
    b_err: None,
    order: 4,
    embedded_order: 0,
    fsal: false,
};

/// Dormand-Prince 5(4) (Dormand & Prince 1980). Order 5 with an embedded order-4 solution,
/// 7 stages with FSAL (6 new evaluations per accepted step).
pub const DOPRI5: ButcherTableau = ButcherTableau {
    name: "dopri5",
    c: &[0.0, 1.0 / 5.0, 3.0 / 10.0, 4.0 / 5.0, 8.0 / 9.0, 1.0, 1.0],
    a: &[
        &[],
        &[1.0 / 5.0],
        &[3.0 / 40.0, 9.0 / 40.0],
        &[44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0],
        &[19372.0 / 6561.0, -25360.0 / 2187.0, 64448.0 / 6561.0, -212.0 / 729.0],
        &[9017.0 / 3168.0, -355.0 / 33.0, 46732.0 / 5247.0, 49.0 / 176.0, -5103.0 / 18656.0],
        &[35.0 / 384.0, 0.0, 500.0 / 1113.0, 125.0 / 192.0, -2187.0 / 6784.0, 11.0 / 84.0],
    ],
    b: &[35.0 / 384.0, 0.0, 500.0 / 1113.0, 125.0 / 192.0, -2187.0 / 6784.0, 11.0 / 84.0, 0.0],
    b_err: Some(&[
        35.0 / 384.0 - 5179.0 / 57600.0,
        0.0,
        500.0 / 1113.0 - 7571.0 / 16695.0,
        125.0 / 192.0 - 393.0 / 640.0,
        -2187.0 / 6784.0 + 92097.0 / 339200.0,
        11.0 / 84.0 - 187.0 / 2100.0,
        -1.0 / 40.0,
    ]),
    order: 5,
    embedded_order: 4,
    fsal: true,
};

// Tsitouras (2011), Table 1: the published coefficients to double precision.
const TS_A32: f64 = 0.335_480_655_492_357;
const TS_A31: f64 = 0.327 - TS_A32;
const TS_C5: f64 = 0.980_025_540_904_509_7;
const TS_B: [f64; 6] = [
    0.096_460_766_818_065_23,
    0.01,
    0.479_889_650_414_499_6,
    1.379_008_574_103_742,
    -3.290_069_515_436_081,
    2.324_710_524_099_774,
];
const TS_BHAT: [f64; 7] = [
    0.094_680_755_765_839_46,
    0.009_183_565_540_343_253,
    0.487_770_528_424_761_6,
    1.234_297_566_930_479,
    -2.707_712_349_983_525_5,
    1.866_628_418_170_587,
    1.0 / 66.0,
];

/// Tsitouras 5(4) (Tsitouras 2011). Order 5 with an embedded order-4 solution, 7 stages with
/// FSAL. As a fixed-step method it uses 6 evaluations per step.
pub const TSIT5: ButcherTableau = ButcherTableau {
    name: "tsit5",
    c: &[0.0, 0.161, 0.327, 0.9, TS_C5, 1.0, 1.0],
    a: &[
        &[],
        &[0.161],
        &[TS_A31, TS_A32],
        &[2.897_153_057_105_493_4, -6.359_448_489_975_075, 4.362_295_432_869_581_4],
        &[5.325_864_828_439_257, -11.748_883_564_062_828, 7.495_539_342_889_836, -0.092_495_066_361_755_25],
        &[
            5.861_455_442_946_42,
            -12.920_969_317_847_11,
            8.159_367_898_576_159,
            -0.071_584_973_281_401,
            -0.028_269_050_394_068_383,
        ],
        &[TS_B[0], TS_B[1], TS_B[2], TS_B[3], TS_B[4], TS_B[5]],
    ],
    b: &[TS_B[0], TS_B[1], TS_B[2], TS_B[3], TS_B[4], TS_B[5], 0.0],
    b_err: Some(&[
        TS_B[0] - TS_BHAT[0],
        TS_B[1] - TS_BHAT[1],
        TS_B[2] - TS_BHAT[2],
        TS_B[3] - TS_BHAT[3],
        TS_B[4] - TS_BHAT[4],
        TS_B[5] - TS_BHAT[5],
        -TS_BHAT[6],
    ]),
    order: 5,
    embedded_order: 4,
    fsal: true,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tableau_satisfies_its_order_conditions() {
        for t in [EULER, MIDPOINT, HEUN, RK4, RK4_38, DOPRI5, TSIT5] {
            t.check().unwrap();
        }
    }

    #[test]
    fn order_check_can_fail() {
        // The trapezoid weights with a wrong node violate b.c = 1/2.
        let bad = ButcherTableau { c: &[0.0, 0.5], a: &[&[], &[0.5]], b: &[0.5, 0.5], ..HEUN };
        assert!(bad.check().unwrap_err().contains("b.c"));
        // RK4 does not satisfy the order-5 conditions.
        assert!(ButcherTableau { order: 5, ..RK4 }.check().is_err());
    }

    #[test]
    fn embedded_solutions_have_their_order() {
        for t in [DOPRI5, TSIT5] {
            let e = t.b_err.unwrap();
            let bhat: Vec<f64> = t.b.iter().zip(e).map(|(b, e)| b - e).collect();
            let leaked: &'static [f64] = Box::leak(bhat.into_boxed_slice());
            let emb = ButcherTableau { b: leaked, order: t.embedded_order, ..t };
            emb.check().unwrap();
            assert!(ButcherTableau { order: 5, ..emb }.check().is_err(), "{}: embedded is not order 5", t.name);
            // FSAL: last row of a equals b.
            let last = t.a[t.stages() - 1];
            assert!(last.iter().zip(t.b).all(|(a, b)| (a - b).abs() < 1e-15));
        }
    }
}
