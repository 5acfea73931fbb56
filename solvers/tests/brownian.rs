//! The virtual Brownian tree: Brownian laws of increments (checked with 5-standard-error bounds,
//! false-positive rate 5.7e-7 per check under the normal approximation, 12 checks: 7e-6 per run),
//! and the exact invariances: refinement, query order, batch offset.

use ndarray::Array2;
use scoresde_solvers::noise::Draw;
use scoresde_solvers::{BrownianNoise, BrownianTree, NoiseSource, TimeGrid};

const M: usize = 20_000;

fn w(tree: &BrownianTree, row: usize, t: f64) -> f64 {
    let mut out = [0.0];
    let mut work = [0.0; 3];
    tree.value(row as u64, t, &mut out, &mut work);
    out[0]
}

fn increments(tree: &BrownianTree, s: f64, t: f64) -> Vec<f64> {
    (0..M).map(|i| w(tree, i, t) - w(tree, i, s)).collect()
}

fn mean_var(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let m = x.iter().sum::<f64>() / n;
    (m, x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (n - 1.0))
}

#[test]
fn increments_have_brownian_mean_and_variance() {
    let tree = BrownianTree::new(3, 1e-3, 1.0).unwrap();
    // A whole-range increment, a dyadic-node one, arbitrary ones, and one inside a tiny interval.
    for (s, t) in [(1e-3, 1.0), (0.25, 0.75), (0.1234, 0.987), (0.5, 0.5 + 1e-6), (0.3, 0.30001)] {
        let x = increments(&tree, s, t);
        let (m, v) = mean_var(&x);
        let h = t - s;
        assert!(m.abs() < 5.0 * (h / M as f64).sqrt(), "[{s}, {t}]: mean {m}");
        assert!((v - h).abs() < 5.0 * h * (2.0 / (M - 1) as f64).sqrt(), "[{s}, {t}]: variance {v} vs {h}");
    }
}

#[test]
fn disjoint_increments_are_uncorrelated() {
    let tree = BrownianTree::new(9, 0.0, 1.0).unwrap();
    for ((a, b), (c, d)) in [((0.0, 0.3), (0.3, 0.9)), ((0.11, 0.12), (0.5, 0.51))] {
        let x = increments(&tree, a, b);
        let y = increments(&tree, c, d);
        let (mx, vx) = mean_var(&x);
        let (my, vy) = mean_var(&y);
        let cov = x.iter().zip(&y).map(|(x, y)| (x - mx) * (y - my)).sum::<f64>() / (M - 1) as f64;
        let r = cov / (vx * vy).sqrt();
        // Under independence sqrt(M) r is approximately standard normal.
        assert!(r.abs() < 5.0 / (M as f64).sqrt(), "corr {r}");
    }
}

#[test]
fn values_do_not_depend_on_query_order_or_other_queries() {
    let tree = BrownianTree::new(5, 0.0, 2.0).unwrap();
    let ts = [1.7, 0.3, 1.0, 0.3000001, 2.0, 0.0];
    let forward: Vec<f64> = ts.iter().map(|&t| w(&tree, 7, t)).collect();
    let backward: Vec<f64> = ts.iter().rev().map(|&t| w(&tree, 7, t)).collect();
    assert!(forward.iter().zip(backward.iter().rev()).all(|(a, b)| a == b));
    assert_eq!(w(&tree, 7, 0.0), 0.0);
}

fn path_increments(grid: &TimeGrid, rows: usize, offset: u64) -> Vec<Array2<f64>> {
    let mut noise = BrownianNoise::new(21, grid, offset).unwrap();
    grid.intervals()
        .enumerate()
        .map(|(k, (t0, t1))| {
            let mut z = Array2::zeros((rows, 2));
            noise.normals(&Draw::main(k, grid.steps(), 0, t0, t1), z.view_mut()).unwrap();
            z * (t1 - t0).abs().sqrt()
        })
        .collect()
}

#[test]
fn refining_the_grid_keeps_the_path() {
    // Coarse points are a subset of the fine ones: each coarse increment is the sum of the fine
    // increments inside it, to round-off.
    let coarse = TimeGrid::uniform(1.0, 1e-3, 10).unwrap();
    let mut fine_points = vec![];
    for (t0, t1) in coarse.intervals() {
        fine_points.extend([t0, t0 + 0.37 * (t1 - t0), t0 + 0.8 * (t1 - t0)]);
    }
    fine_points.push(coarse.end());
    let fine = TimeGrid::new(fine_points).unwrap();
    let c = path_increments(&coarse, 50, 0);
    let f = path_increments(&fine, 50, 0);
    for k in 0..10 {
        let summed = &f[3 * k] + &f[3 * k + 1] + &f[3 * k + 2];
        let err = (&summed - &c[k]).iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(err < 1e-13, "step {k}: {err}");
    }
}

#[test]
fn rows_do_not_depend_on_the_batch() {
    let grid = TimeGrid::uniform(1.0, 0.0, 6).unwrap();
    let all = path_increments(&grid, 40, 0);
    let tail = path_increments(&grid, 15, 25);
    for (a, b) in all.iter().zip(&tail) {
        assert_eq!(a.slice(ndarray::s![25.., ..]), b);
    }
}

#[test]
fn draws_are_answered_by_interval_not_by_step_index() {
    // The same interval asked as step 0 of 3 or step 5 of 9, after other intervals or not, and
    // retried (as an adaptive solve does after a rejection): the same increment, bit for bit.
    let grid = TimeGrid::new(vec![1.0, 0.5, 0.0]).unwrap();
    let ask = |noise: &mut BrownianNoise, d: Draw| {
        let mut z = Array2::zeros((3, 2));
        noise.normals(&d, z.view_mut()).unwrap();
        z
    };
    let mut a = BrownianNoise::new(4, &grid, 0).unwrap();
    let first = ask(&mut a, Draw::main(0, 3, 0, 0.8, 0.3));
    let mut b = BrownianNoise::new(4, &grid, 0).unwrap();
    ask(&mut b, Draw::main(0, 9, 0, 1.0, 0.8));
    ask(&mut b, Draw::main(1, 9, 0, 0.8, 0.1));
    assert_eq!(ask(&mut b, Draw::main(5, 9, 0, 0.8, 0.3)), first);
    assert_eq!(ask(&mut b, Draw::main(5, 9, 0, 0.8, 0.3)), first);
    // Extra draws: keyed by the interval and their number, independent of the path's increments.
    let e0 = ask(&mut a, Draw::main(0, 3, 2, 0.8, 0.3).extra(0));
    let e1 = ask(&mut a, Draw::main(0, 3, 2, 0.8, 0.3).extra(1));
    assert_eq!(ask(&mut b, Draw::main(7, 9, 2, 0.8, 0.3).extra(0)), e0);
    assert_ne!(e0, e1);
    assert_ne!(e0, first);
    // Outside the tree's span: an error naming the time, not a panic.
    let err = a.normals(&Draw::main(0, 1, 0, 1.5, 0.5), Array2::zeros((3, 2)).view_mut()).unwrap_err();
    assert!(err.to_string().contains("1.5"), "{err}");
}
