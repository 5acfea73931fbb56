//! Built-in targets, so that every command has a default that runs with no input files.
//!
//! - `ring8`: the 2-d ring of 8 diagonal Gaussians of the peer reference cases (radius 3, weights
//!   alternating 1/12 and 1/6, variances 0.03 / 0.05 / 0.08): multimodal, unequal weights.
//! - `aniso16`: 16-d mixture of 4 components with full covariances whose eigenvalues span two
//!   decades (condition number 100), rotated differently per component.
//! - `gauss2`: a single correlated 2-d Gaussian, whose probability flow is known in closed form.
//! - `quad4`: 4 overlapping isotropic 2-d Gaussians at (+-1, 0) and (0, +-1), sd 0.5, equal
//!   weights; the guidance experiment's two classes are components {0, 1} and {2, 3}.
//! - `diag16`: 16-d mixture of 8 equally weighted diagonal components (variances spanning two
//!   decades, shifted per component): the d = 16, K = 8 case of the throughput benchmarks.

use std::f64::consts::PI;
use std::path::Path;

use ndarray::{Array1, Array2};

use crate::error::Result;
use crate::gmm::{Covariance, GaussianMixture};

/// Names of the built-in targets.
pub const BUILTIN: [&str; 5] = ["ring8", "aniso16", "gauss2", "quad4", "diag16"];

/// The built-in target called `name`, if there is one.
pub fn builtin(name: &str) -> Option<GaussianMixture> {
    match name {
        "ring8" => Some(ring8()),
        "aniso16" => Some(aniso16()),
        "gauss2" => Some(gauss2()),
        "quad4" => Some(quad4()),
        "diag16" => Some(diag16()),
        _ => None,
    }
}

/// A built-in target by name, or else a JSON file.
pub fn load(name_or_path: &str) -> Result<GaussianMixture> {
    match builtin(name_or_path) {
        Some(t) => Ok(t),
        None if !Path::new(name_or_path).exists() => Err(crate::error::ScoreError::UnknownName {
            field: "target",
            value: name_or_path.to_string(),
            expected: format!("{}, or a JSON file (no such file)", BUILTIN.join(", ")),
        }),
        None => GaussianMixture::from_json_file(Path::new(name_or_path)),
    }
}

/// The ring of 8 (same numbers as shared/reference/cases/problems/ring8_d2).
pub fn ring8() -> GaussianMixture {
    let k = 8;
    let weights: Vec<f64> = (0..k).map(|i| if i % 2 == 0 { 1.0 / 12.0 } else { 1.0 / 6.0 }).collect();
    let means = Array2::from_shape_fn((k, 2), |(i, j)| {
        let a = 2.0 * PI * i as f64 / k as f64;
        3.0 * if j == 0 { a.cos() } else { a.sin() }
    });
    let v = [0.03, 0.05, 0.08];
    let diag = Array2::from_shape_fn((k, 2), |(i, _)| v[i % 3]);
    GaussianMixture::new(weights, means, Covariance::Diagonal(diag)).expect("ring8 is valid")
}

/// The anisotropic 16-d mixture.
pub fn aniso16() -> GaussianMixture {
    let (k, d) = (4usize, 16usize);
    let weights = vec![0.4, 0.3, 0.2, 0.1];
    let means = Array2::from_shape_fn((k, d), |(c, j)| {
        let phase = 2.0 * PI * c as f64 / k as f64;
        match j {
            0 => 4.0 * phase.cos(),
            1 => 4.0 * phase.sin(),
            _ => 0.5 * ((c + 1) as f64 * (j as f64) * 0.7).sin(),
        }
    });
    let covs = (0..k)
        .map(|c| {
            // Eigenvalues 0.01..1 (geometric), eigenvectors from a product of plane rotations.
            let eig = Array1::from_shape_fn(d, |i| 10f64.powf(-2.0 * i as f64 / (d - 1) as f64));
            let mut q = Array2::<f64>::eye(d);
            for i in 0..d - 1 {
                let th = 0.3 + 0.4 * c as f64 + 0.1 * i as f64;
                let (cs, sn) = (th.cos(), th.sin());
                for r in 0..d {
                    let (a, b) = (q[[r, i]], q[[r, i + 1]]);
                    q[[r, i]] = cs * a - sn * b;
                    q[[r, i + 1]] = sn * a + cs * b;
                }
            }
            let mut s = Array2::<f64>::zeros((d, d));
            for a in 0..d {
                for b in 0..=a {
                    let v: f64 = (0..d).map(|i| q[[a, i]] * eig[i] * q[[b, i]]).sum();
                    s[[a, b]] = v;
                    s[[b, a]] = v;
                }
            }
            s
        })
        .collect();
    GaussianMixture::new(weights, means, Covariance::Full(covs)).expect("aniso16 is valid")
}

/// A single correlated 2-d Gaussian N([1, -0.5], [[1, 0.8], [0.8, 1]]).
pub fn gauss2() -> GaussianMixture {
    let means = ndarray::array![[1.0, -0.5]];
    let cov = ndarray::array![[1.0, 0.8], [0.8, 1.0]];
    GaussianMixture::new(vec![1.0], means, Covariance::Full(vec![cov])).expect("gauss2 is valid")
}

/// Four overlapping Gaussians: class-conditional structure for guidance experiments.
pub fn quad4() -> GaussianMixture {
    let means = ndarray::array![[-1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, -1.0]];
    GaussianMixture::new(vec![0.25; 4], means, Covariance::Isotropic(vec![0.25; 4])).expect("quad4 is valid")
}

/// The diagonal 16-d mixture of 8 components: means on a circle of radius 4 in the first two
/// coordinates (smaller offsets in the others), variances `10^(-2 ((i + c) mod 16) / 15)`.
pub fn diag16() -> GaussianMixture {
    let (k, d) = (8usize, 16usize);
    let means = Array2::from_shape_fn((k, d), |(c, j)| {
        let phase = 2.0 * PI * c as f64 / k as f64;
        match j {
            0 => 4.0 * phase.cos(),
            1 => 4.0 * phase.sin(),
            _ => 0.5 * ((c + 1) as f64 * j as f64 * 0.7).sin(),
        }
    });
    let diag = Array2::from_shape_fn((k, d), |(c, i)| 10f64.powf(-2.0 * ((i + c) % d) as f64 / (d - 1) as f64));
    GaussianMixture::new(vec![1.0 / k as f64; k], means, Covariance::Diagonal(diag)).expect("diag16 is valid")
}
