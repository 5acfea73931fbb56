//! Forward-process identities (MATH.md section 1), checked on random parameters and times:
//! f = d log alpha / dt, g^2 = d sigma^2 / dt - 2 f sigma^2, lambda and sigma~ inverses, the
//! closed-form alpha(sigma~), and monotonicity of lambda. Derivatives are central differences with
//! step h = 1e-5 * scale: truncation O(h^2) and round-off O(1e-16 / h) are both below 1e-8 of the
//! quantity's scale, so the tolerance 1e-6 (relative to 1 + |value|) cannot be met by a wrong formula.

use proptest::prelude::*;
use scoresde::process::*;

fn processes(b0: f64, db: f64, s0: f64, ratio: f64) -> Vec<Box<dyn ForwardProcess>> {
    vec![
        Box::new(Vp::new(b0, b0 + db).unwrap()),
        Box::new(SubVp::new(b0, b0 + db).unwrap()),
        Box::new(Ve::new(s0, s0 * ratio).unwrap()),
        Box::new(VpCosine::default()),
        Box::new(Edm::new(s0, s0 * ratio).unwrap()),
    ]
}

fn check_identities(p: &dyn ForwardProcess, u: f64) -> Result<(), TestCaseError> {
    let tmax = p.t_max();
    let t = 0.01 * tmax + u * 0.98 * tmax;
    let h = 1e-5 * tmax;
    let d = |f: &dyn Fn(f64) -> f64| (f(t + h) - f(t - h)) / (2.0 * h);
    let name = p.name();
    let f_fd = d(&|s| p.alpha(s).ln());
    prop_assert!(
        (f_fd - p.f(t)).abs() <= 1e-6 * (1.0 + p.f(t).abs()),
        "{name} t={t}: f {} vs d log alpha/dt {f_fd}",
        p.f(t)
    );
    let g2_fd = d(&|s| p.sigma(s).powi(2)) - 2.0 * p.f(t) * p.sigma(t).powi(2);
    prop_assert!(
        (g2_fd - p.g2(t)).abs() <= 1e-6 * (1.0 + p.g2(t).abs()),
        "{name} t={t}: g2 {} vs identity {g2_fd}",
        p.g2(t)
    );
    let lam = p.log_snr(t);
    prop_assert!(
        (lam - (p.alpha(t) / p.sigma(t)).ln()).abs() <= 1e-12 * (1.0 + lam.abs()),
        "{name}: log_snr closed form"
    );
    let back = p.t_from_log_snr(lam);
    prop_assert!((back - t).abs() <= 1e-10 * tmax, "{name}: t {t} -> lambda {lam} -> {back}");
    let st = p.sigma_tilde(t);
    prop_assert!((p.t_from_sigma_tilde(st) - t).abs() <= 1e-10 * tmax, "{name}: sigma~ round trip at {t}");
    let a = p.alpha_from_sigma_tilde(st);
    prop_assert!((a - p.alpha(t)).abs() <= 1e-12 * p.alpha(t), "{name}: alpha(sigma~) {a} vs {}", p.alpha(t));
    prop_assert!(p.log_snr(t + h) < lam && lam < p.log_snr(t - h), "{name}: lambda not decreasing at {t}");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn identities_hold_on_random_parameters(
        b0 in 0.01f64..1.0, db in 1.0f64..30.0, s0 in 0.001f64..0.1, ratio in 10.0f64..10_000.0, u in 0.0f64..1.0,
    ) {
        for p in processes(b0, db, s0, ratio) {
            check_identities(p.as_ref(), u)?;
        }
    }
}

#[test]
fn vp_matches_the_reference_case_grid_ends() {
    // shared/reference manifests: sigma~(1) and sigma~(1e-3) of VP(0.1, 20).
    let vp = Vp::new(0.1, 20.0).unwrap();
    assert!((vp.sigma_tilde(1.0) / 152.16697028394637 - 1.0).abs() < 1e-13);
    assert!((vp.sigma_tilde(1e-3) / 0.010485992786702987 - 1.0).abs() < 1e-13);
    // Sub-VP prior: sigma(1) = 1 - e^{-B(1)} = 1 - 4.3e-5 (MATH.md table).
    let sub = SubVp::new(0.1, 20.0).unwrap();
    assert!((1.0 - sub.sigma(1.0) - (-10.05f64).exp()).abs() < 1e-15);
}

#[test]
fn inverses_are_accurate_at_the_extremes() {
    let vp = Vp::new(0.1, 20.0).unwrap();
    for t in [1e-6, 1e-3, 0.5, 1.0] {
        assert!((vp.t_from_log_snr(vp.log_snr(t)) / t - 1.0).abs() < 1e-9, "vp at {t}");
    }
    let sub = SubVp::new(0.1, 20.0).unwrap();
    for t in [1e-6, 1e-3, 0.5, 1.0] {
        assert!((sub.t_from_log_snr(sub.log_snr(t)) / t - 1.0).abs() < 1e-9, "subvp at {t}");
    }
}

#[test]
fn constructors_reject_bad_parameters_naming_them() {
    assert_eq!(Vp::new(-0.1, 20.0).unwrap_err().to_string(), "beta_min = -0.1: must be positive and finite");
    assert_eq!(Vp::new(1.0, 0.5).unwrap_err().to_string(), "beta_max = 0.5: must be greater than beta_min");
    assert_eq!(SubVp::new(0.1, f64::NAN).unwrap_err().to_string(), "beta_max = NaN: must be positive and finite");
    assert_eq!(Ve::new(0.01, 0.001).unwrap_err().to_string(), "sigma_max = 0.001: must be greater than sigma_min");
    assert_eq!(Edm::new(0.0, 80.0).unwrap_err().to_string(), "sigma_min = 0: must be positive and finite");
    assert_eq!(VpCosine::new(0.008, 1.0).unwrap_err().to_string(), "t_max = 1: must be in (0, 1)");
}
