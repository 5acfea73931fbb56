//! The schedule zoo of k-diffusion, ComfyUI and Align-Your-Steps: point sequences in sigma~ (or
//! in the fraction of the time range) that [`super::build_grid`] places between a run's ends.
//! Each function returns the `n + 1` points of an `n`-step grid, from noise to data.

use super::diffusers::linspace;

/// k-diffusion's `get_sigmas_polyexponential`: ln sigma~ interpolated with the ramp
/// linspace(1, 0, n + 1)^rho (rho = 1 is the exponential / log-SNR schedule).
pub fn polyexponential(sigma_min: f64, sigma_max: f64, n: usize, rho: f64) -> Vec<f64> {
    let (lo, hi) = (sigma_min.ln(), sigma_max.ln());
    linspace(1.0, 0.0, n + 1).into_iter().map(|r| (r.powf(rho) * (hi - lo) + lo).exp()).collect()
}

/// ComfyUI's `kl_optimal` schedule (Sabour et al. 2024, "Align Your Steps", the KL-optimal
/// schedule of a Gaussian target): sigma~ = tan(arctan(sigma_max) + i/n (arctan(sigma_min) -
/// arctan(sigma_max))), i = 0..n.
pub fn kl_optimal(sigma_min: f64, sigma_max: f64, n: usize) -> Vec<f64> {
    let (a, b) = (sigma_max.atan(), sigma_min.atan());
    linspace(0.0, 1.0, n + 1).into_iter().map(|u| (a + u * (b - a)).tan()).collect()
}

/// ComfyUI's `linear_quadratic` schedule (from Mochi): the fraction of the time range left,
/// from 1 to 0, linear for the first n / 2 steps down to 1 - threshold (0.025), quadratic after.
pub fn linear_quadratic(n: usize, threshold: f64) -> Vec<f64> {
    if n == 1 {
        return vec![1.0, 0.0];
    }
    let linear = n / 2;
    let quadratic = n - linear;
    let (l, q, nf) = (linear as f64, quadratic as f64, n as f64);
    let diff = l - threshold * nf;
    let quad_coef = diff / (l * q * q);
    let lin_coef = threshold / l - 2.0 * diff / (q * q);
    let constant = quad_coef * l * l;
    let mut x: Vec<f64> = (0..linear).map(|i| i as f64 * threshold / l).collect();
    x.extend((linear..n).map(|i| {
        let i = i as f64;
        quad_coef * i * i + lin_coef * i + constant
    }));
    x.push(1.0);
    x.into_iter().map(|v| 1.0 - v).collect()
}

/// The published Align-Your-Steps tables (Sabour et al. 2024; NVIDIA's how-to page), 10 steps
/// in sigma~ of the VP models they were optimised for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AysModel {
    /// Stable Diffusion 1.5.
    Sd1,
    /// Stable Diffusion XL.
    Sdxl,
    /// Stable Video Diffusion.
    Svd,
}

impl AysModel {
    /// The 11 published levels (10 steps), from noise to data (the last is set to 0 by
    /// [`ays`]).
    pub fn table(self) -> &'static [f64; 11] {
        match self {
            Self::Sd1 => &[
                14.6146412293,
                6.4745760956,
                3.8636745985,
                2.6946151520,
                1.8841921177,
                1.3943805092,
                0.9642583904,
                0.6523686016,
                0.3977456272,
                0.1515232662,
                0.0291671582,
            ],
            Self::Sdxl => &[
                14.6146412293,
                6.3184485287,
                3.7681790315,
                2.1811480769,
                1.3405244945,
                0.8620721141,
                0.5550693289,
                0.3798540708,
                0.2332364134,
                0.1114188177,
                0.0291671582,
            ],
            Self::Svd => &[700.00, 54.5, 15.886, 7.977, 4.248, 1.789, 0.981, 0.403, 0.173, 0.034, 0.002],
        }
    }
}

/// Log-linear interpolation of a decreasing sequence to `m` points (the AYS how-to's
/// `loglinear_interp`: ln of the reversed sequence interpolated on linspace(0, 1, .)).
pub fn loglinear_interp(levels: &[f64], m: usize) -> Vec<f64> {
    let k = levels.len();
    let ys: Vec<f64> = levels.iter().rev().map(|v| v.ln()).collect();
    let xs = linspace(0.0, 1.0, k);
    let mut out: Vec<f64> = linspace(0.0, 1.0, m)
        .into_iter()
        .map(|x| {
            let j = xs.partition_point(|&v| v <= x).clamp(1, k - 1);
            let (x0, x1) = (xs[j - 1], xs[j]);
            (ys[j - 1] + (x - x0) / (x1 - x0) * (ys[j] - ys[j - 1])).exp()
        })
        .collect();
    out.reverse();
    out
}

/// An n-step AYS grid (ComfyUI's node): the table itself for 10 steps, otherwise its log-linear
/// interpolation to n + 1 levels; the last level then set to 0.
pub fn ays(model: AysModel, n: usize) -> Vec<f64> {
    let table = model.table();
    let mut v = if n + 1 == table.len() { table.to_vec() } else { loglinear_interp(table, n + 1) };
    *v.last_mut().expect("n + 1 >= 2 points") = 0.0;
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loglinear_interp_keeps_the_table_at_its_own_length_and_ends() {
        let t = AysModel::Sd1.table();
        let same = loglinear_interp(t, 11);
        for (a, b) in same.iter().zip(t) {
            assert!((a - b).abs() <= 1e-12 * b);
        }
        let more = loglinear_interp(t, 21);
        assert!((more[0] - t[0]).abs() < 1e-12 && (more[20] - t[10]).abs() < 1e-12);
        // Every second point of the doubled grid is a table point.
        assert!((more[10] - t[5]).abs() < 1e-12);
    }

    #[test]
    fn linear_quadratic_runs_from_one_to_zero_and_is_continuous() {
        for n in [2, 5, 10, 25] {
            let s = linear_quadratic(n, 0.025);
            assert_eq!(s.len(), n + 1);
            assert_eq!((s[0], s[n]), (1.0, 0.0));
            assert!(s.windows(2).all(|w| w[1] < w[0]), "{s:?}");
            // The linear part ends at 1 - threshold at step n/2: the quadratic part starts there.
            assert!((s[n / 2] - (1.0 - 0.025)).abs() < 1e-12, "{s:?}");
        }
    }

    #[test]
    fn kl_optimal_and_polyexponential_hit_their_ends() {
        let k = kl_optimal(0.002, 80.0, 7);
        assert!((k[0] - 80.0).abs() < 1e-12 && (k[7] - 0.002).abs() < 1e-15);
        let p = polyexponential(0.002, 80.0, 7, 1.0);
        let e: Vec<f64> = linspace(80f64.ln(), 0.002f64.ln(), 8).into_iter().map(f64::exp).collect();
        for (a, b) in p.iter().zip(&e) {
            assert!((a - b).abs() <= 1e-13 * b);
        }
    }
}
