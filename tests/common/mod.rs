//! Helpers shared by the integration tests.

/// Least-squares slope of log(error) against log(h) with h = 1 / steps: the empirical order of
/// convergence.
pub fn order_slope(steps: &[usize], errors: &[f64]) -> f64 {
    let lx: Vec<f64> = steps.iter().map(|&n| -(n as f64).ln()).collect();
    let ly: Vec<f64> = errors.iter().map(|e| e.ln()).collect();
    let k = lx.len() as f64;
    let (mx, my) = (lx.iter().sum::<f64>() / k, ly.iter().sum::<f64>() / k);
    let sxy: f64 = lx.iter().zip(&ly).map(|(x, y)| (x - mx) * (y - my)).sum();
    sxy / lx.iter().map(|x| (x - mx).powi(2)).sum::<f64>()
}
