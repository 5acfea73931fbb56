//! The network's matrix products `dst += lhs rhs` (row-major, `rhs` the layer's `inputs x
//! outputs` weights), with register-blocked AVX-512 and AVX2 + FMA copies for f64.
//!
//! Why not only the `gemm` crate: the layers are N x 64 by 64 x 64, too small for a general
//! GEMM's packing of both operands to pay off (on a Zen 4 it ran these shapes at 31 GF/s per
//! core, three quarters of the FMA pipes). Here the weights are read in place (a 64 x 32 panel
//! is 16 KiB and stays in L1 while the rows stream past it) and the rows are never packed: a
//! tile of [`ROWS`] rows by one panel of columns keeps its sums in registers for the whole
//! inner dimension, and each `lhs` element is broadcast once per panel.
//!
//! Every element of `dst` is one chain of fused multiply-adds, started from its value in `dst`
//! and taken over the inner index in order, whatever the copy, the tile or the rows around it:
//! the AVX-512 and AVX2 copies give the same bits, and a row's result does not depend on how the
//! rows are chunked. The portable copy (and f32, and shapes the panels do not tile) goes
//! through `gemm`, which sums in its own order: it agrees with the others to rounding.

use super::real::Real;
use crate::fastexp::SimdPath;

/// Rows per register tile (6 rows by 4 vectors of sums fill 24 of AVX-512's 32 registers; by 2
/// vectors, 12 of AVX2's 16).
const ROWS: usize = 6;

/// Where a layer's sums start.
#[derive(Clone, Copy)]
pub(super) enum Start<'a, T> {
    /// `dst += lhs rhs`.
    Accumulate,
    /// `dst = b + lhs rhs` (`b` one row of n values, the same for every row).
    Bias(&'a [T]),
    /// `dst = (dst + b) + lhs rhs`: a residual stream and the bias of the layer adding to it.
    Residual(&'a [T]),
}

/// `dst += lhs rhs` for row-major `lhs` (m x k), `rhs` (k x n) and `dst` (m x n), on the copy
/// the process runs ([`crate::fastexp::simd_path`]).
pub(super) fn dense_acc<T: Real>(m: usize, k: usize, n: usize, lhs: &[T], rhs: &[T], dst: &mut [T]) {
    layer_on(crate::fastexp::simd_path(), (m, k, n), lhs, rhs, Start::Accumulate, dst, None);
}

/// One dense layer: `dst = start + lhs rhs` (see [`Start`]), and `act = silu(dst)` if `act` is
/// given (the same bits as [`super::silu::silu_into`] on `dst` afterwards), on the copy the
/// process runs. The fused copies apply the bias and SiLU to each tile while it is in registers
/// and L1, so the layer is one pass over its rows.
pub(super) fn layer<T: Real>(
    shape: (usize, usize, usize),
    lhs: &[T],
    rhs: &[T],
    start: Start<'_, T>,
    dst: &mut [T],
    act: Option<&mut [T]>,
) {
    layer_on(crate::fastexp::simd_path(), shape, lhs, rhs, start, dst, act);
}

/// [`layer`] on the copy `path`.
pub(super) fn layer_on<T: Real>(
    path: SimdPath,
    (m, k, n): (usize, usize, usize),
    lhs: &[T],
    rhs: &[T],
    start: Start<'_, T>,
    dst: &mut [T],
    act: Option<&mut [T]>,
) {
    assert!(lhs.len() == m * k && rhs.len() == k * n && dst.len() == m * n, "dense layer: shapes");
    assert!(act.as_ref().is_none_or(|a| a.len() == m * n), "dense layer: act has the wrong length");
    if let Start::Bias(b) | Start::Residual(b) = start {
        assert_eq!(b.len(), n, "dense layer: bias length");
    }
    assert!(path.supported(), "the {} copy needs CPU features this CPU lacks", path.name());
    #[cfg(target_arch = "x86_64")]
    if let (Some(l), Some(r)) = (T::as_f64(lhs), T::as_f64(rhs)) {
        // The AVX2 tile where the AVX-512 panels do not fit (the same bits).
        let wide = path == SimdPath::Avx512 && n % x86::PANEL512 == 0;
        let tiled = wide || (path != SimdPath::Portable && n % x86::PANEL256 == 0);
        if tiled {
            let (start, bias) = match start {
                Start::Accumulate => (x86::Begin::Accumulate, std::ptr::null()),
                Start::Bias(b) => (x86::Begin::Bias, T::as_f64(b).expect("f64").as_ptr()),
                Start::Residual(b) => (x86::Begin::Residual, T::as_f64(b).expect("f64").as_ptr()),
            };
            let c = T::as_f64_mut(dst).expect("f64").as_mut_ptr();
            let act = act.map_or(std::ptr::null_mut(), |a| T::as_f64_mut(a).expect("f64").as_mut_ptr());
            let op = x86::Op { k, n, a: l.as_ptr(), b: r.as_ptr(), c, col: 0, start, bias, act };
            // SAFETY: `supported` checked the copy's CPU features; the slices hold m x k, k x n,
            // m x n (and n bias) values (checked above), n is a multiple of the panel width,
            // `dst` and `act` are borrowed mutably so they alias nothing else.
            unsafe {
                if wide {
                    x86::layer_avx512(m, op)
                } else {
                    x86::layer_avx2(m, op)
                }
            }
            return;
        }
    }
    match start {
        Start::Accumulate => {}
        Start::Bias(b) => super::fused::fill_rows(dst, b),
        Start::Residual(b) => super::fused::add_rows(dst, b),
    }
    super::fused::gemm_acc_t(m, k, n, (lhs, false), (rhs, false), dst);
    if let Some(act) = act {
        super::silu::silu_on(path, dst, act);
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::ROWS;
    use crate::fastexp::Fused;
    use crate::nn::silu::{map_slice, Silu};
    use std::arch::x86_64::*;

    /// Columns per panel: 4 vectors of 8 (AVX-512) or 2 of 4 (AVX2).
    pub(super) const PANEL512: usize = 32;
    pub(super) const PANEL256: usize = 8;

    /// [`super::Start`] without its slice.
    #[derive(Clone, Copy, PartialEq, Eq)]
    pub(super) enum Begin {
        Accumulate,
        Bias,
        Residual,
    }

    /// One product's operands: `c` (m x n) from `a` (m x k), `b` (k x n), the bias (n values,
    /// or null) and `act` (m x n, or null); `col` is the panel's first column.
    #[derive(Clone, Copy)]
    pub(super) struct Op {
        pub(super) k: usize,
        pub(super) n: usize,
        pub(super) a: *const f64,
        pub(super) b: *const f64,
        pub(super) c: *mut f64,
        pub(super) col: usize,
        pub(super) start: Begin,
        pub(super) bias: *const f64,
        pub(super) act: *mut f64,
    }

    /// A register tile and the layer over whole panels, for one vector width.
    macro_rules! copy {
        ($layer:ident, $tile:ident, $features:literal, $panel:ident, $lanes:literal, $vecs:literal,
         $zero:ident, $load:ident, $store:ident, $set1:ident, $fmadd:ident, $add:ident) => {
            /// # Safety
            ///
            /// The CPU must support the copy's features; `op` must describe slices holding
            /// m x k, k x n and m x n values (n bias values where it has them, m x n for `act`
            /// when not null) with `n` a multiple of the panel width.
            #[target_feature(enable = $features)]
            pub(super) unsafe fn $layer(m: usize, op: Op) {
                for col in (0..op.n).step_by($panel) {
                    let op = Op { col, ..op };
                    let mut row = 0;
                    const _: () = assert!(ROWS == 6, "the remainder match covers 1..=5 rows");
                    while row + ROWS <= m {
                        // SAFETY: row + ROWS <= m; the caller's contract covers the rest.
                        unsafe { $tile::<ROWS>(row, op) };
                        row += ROWS;
                    }
                    // SAFETY: row + (m - row) = m.
                    unsafe {
                        match m - row {
                            0 => {}
                            1 => $tile::<1>(row, op),
                            2 => $tile::<2>(row, op),
                            3 => $tile::<3>(row, op),
                            4 => $tile::<4>(row, op),
                            _ => $tile::<5>(row, op),
                        }
                    }
                }
            }

            /// Rows `row..row + R` by the panel's columns.
            #[target_feature(enable = $features)]
            #[inline]
            unsafe fn $tile<const R: usize>(row: usize, op: Op) {
                let Op { k, n, a, b, c, col, start, bias, act } = op;
                // SAFETY (every pointer below): row + R <= m and col + panel <= n, so each
                // offset stays within the slices the caller described.
                unsafe {
                    let c = c.add(row * n + col);
                    let a = a.add(row * k);
                    let mut acc = [[$zero(); $vecs]; R];
                    for (r, sums) in acc.iter_mut().enumerate() {
                        for (j, s) in sums.iter_mut().enumerate() {
                            *s = match start {
                                Begin::Accumulate => $load(c.add(r * n + $lanes * j)),
                                Begin::Bias => $load(bias.add(col + $lanes * j)),
                                Begin::Residual => {
                                    $add($load(c.add(r * n + $lanes * j)), $load(bias.add(col + $lanes * j)))
                                }
                            };
                        }
                    }
                    for p in 0..k {
                        let bp = b.add(p * n + col);
                        let mut w = [$zero(); $vecs];
                        for (j, wj) in w.iter_mut().enumerate() {
                            *wj = $load(bp.add($lanes * j));
                        }
                        for (r, sums) in acc.iter_mut().enumerate() {
                            let v = $set1(*a.add(r * k + p));
                            for (s, &wj) in sums.iter_mut().zip(&w) {
                                *s = $fmadd(v, wj, *s);
                            }
                        }
                    }
                    for (r, sums) in acc.iter().enumerate() {
                        for (j, s) in sums.iter().enumerate() {
                            $store(c.add(r * n + $lanes * j), *s);
                        }
                    }
                    if !act.is_null() {
                        for r in 0..R {
                            let src = std::slice::from_raw_parts(c.add(r * n), $panel);
                            let dst = std::slice::from_raw_parts_mut(act.add((row + r) * n + col), $panel);
                            map_slice::<Silu, Fused, f64>(src, dst);
                        }
                    }
                }
            }
        };
    }

    copy!(
        layer_avx512,
        tile512,
        "avx512f,avx512dq,avx2,fma",
        PANEL512,
        8,
        4,
        _mm512_setzero_pd,
        _mm512_loadu_pd,
        _mm512_storeu_pd,
        _mm512_set1_pd,
        _mm512_fmadd_pd,
        _mm512_add_pd
    );
    copy!(
        layer_avx2,
        tile256,
        "avx2,fma",
        PANEL256,
        4,
        2,
        _mm256_setzero_pd,
        _mm256_loadu_pd,
        _mm256_storeu_pd,
        _mm256_set1_pd,
        _mm256_fmadd_pd,
        _mm256_add_pd
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_pcg::Pcg64;

    fn random(n: usize, rng: &mut Pcg64) -> Vec<f64> {
        (0..n).map(|_| rng.random_range(-1.0..1.0)).collect()
    }

    /// One chain of fused multiply-adds per element, in order: what the fused copies compute.
    fn chain(m: usize, k: usize, n: usize, lhs: &[f64], rhs: &[f64], dst: &mut [f64]) {
        for i in 0..m {
            for j in 0..n {
                let mut s = dst[i * n + j];
                for p in 0..k {
                    s = lhs[i * k + p].mul_add(rhs[p * n + j], s);
                }
                dst[i * n + j] = s;
            }
        }
    }

    #[test]
    fn fused_copies_are_one_fma_chain_per_element_and_the_portable_one_agrees_to_rounding() {
        let mut rng = Pcg64::seed_from_u64(7);
        // Row counts with and without a remainder tile; widths that tile (64, 32, 8) and not (2).
        for &(m, k, n) in &[(256, 64, 64), (13, 64, 64), (5, 2, 64), (1, 64, 32), (7, 17, 8), (9, 64, 2)] {
            let (lhs, rhs, init) = (random(m * k, &mut rng), random(k * n, &mut rng), random(m * n, &mut rng));
            let mut want = init.clone();
            chain(m, k, n, &lhs, &rhs, &mut want);
            for path in SimdPath::supported_paths() {
                let mut got = init.clone();
                layer_on(path, (m, k, n), &lhs, &rhs, Start::Accumulate, &mut got, None);
                let tiled = path != SimdPath::Portable && n % 8 == 0;
                for (g, w) in got.iter().zip(&want) {
                    if tiled {
                        assert_eq!(g.to_bits(), w.to_bits(), "{} ({m}, {k}, {n}): {g} vs {w}", path.name());
                    } else {
                        // Another summation order: either sum of the k + 1 terms (each at most 1 in
                        // magnitude) is within (k + 1) eps (k + 1) of the exact one.
                        let bound = 2.0 * ((k + 1) * (k + 1)) as f64 * f64::EPSILON;
                        assert!((g - w).abs() <= bound, "{} ({m}, {k}, {n}): {g} vs {w}", path.name());
                    }
                }
            }
        }
    }

    #[test]
    fn bias_residual_and_silu_epilogues_in_every_copy() {
        let mut rng = Pcg64::seed_from_u64(9);
        for &(m, k, n) in &[(31, 64, 64), (4, 2, 64), (8, 64, 8), (3, 64, 2)] {
            let (lhs, rhs, init, b) =
                (random(m * k, &mut rng), random(k * n, &mut rng), random(m * n, &mut rng), random(n, &mut rng));
            for path in SimdPath::supported_paths() {
                let tiled = path != SimdPath::Portable && n % 8 == 0;
                for residual in [false, true] {
                    // The reference: the start written out, then one FMA chain per element.
                    let mut want: Vec<f64> =
                        (0..m * n).map(|i| if residual { init[i] + b[i % n] } else { b[i % n] }).collect();
                    chain(m, k, n, &lhs, &rhs, &mut want);
                    let (mut got, mut act) = (init.clone(), vec![f64::NAN; m * n]);
                    let start = if residual { Start::Residual(&b[..]) } else { Start::Bias(&b[..]) };
                    layer_on(path, (m, k, n), &lhs, &rhs, start, &mut got, Some(&mut act));
                    let mut silu = vec![0.0; m * n];
                    crate::nn::silu::silu_on(path, &got, &mut silu);
                    assert!(act.iter().zip(&silu).all(|(a, s)| a.to_bits() == s.to_bits()), "{}: act", path.name());
                    let bound = 2.0 * ((k + 2) * (k + 2)) as f64 * f64::EPSILON;
                    for (g, w) in got.iter().zip(&want) {
                        if tiled {
                            assert_eq!(g.to_bits(), w.to_bits(), "{} ({m}, {k}, {n}) residual {residual}", path.name());
                        } else {
                            assert!((g - w).abs() <= bound, "{} ({m}, {k}, {n}) residual {residual}", path.name());
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_row_gives_the_same_bits_alone_or_among_others() {
        let mut rng = Pcg64::seed_from_u64(8);
        let (m, k, n) = (20, 64, 64);
        let (lhs, rhs) = (random(m * k, &mut rng), random(k * n, &mut rng));
        let mut all = vec![0.5; m * n];
        dense_acc(m, k, n, &lhs, &rhs, &mut all);
        for i in [0, 5, 6, 11, 19] {
            let mut one = vec![0.5; n];
            dense_acc(1, k, n, &lhs[i * k..(i + 1) * k], &rhs, &mut one);
            assert!(one.iter().zip(&all[i * n..(i + 1) * n]).all(|(a, b)| a.to_bits() == b.to_bits()), "row {i}");
        }
    }

    #[test]
    fn f32_goes_through_gemm() {
        let (m, k, n) = (7, 3, 32);
        let lhs: Vec<f32> = (0..m * k).map(|i| i as f32 * 0.25).collect();
        let rhs: Vec<f32> = (0..k * n).map(|i| 1.0 - i as f32 * 0.125).collect();
        let mut got = vec![1.0f32; m * n];
        dense_acc(m, k, n, &lhs, &rhs, &mut got);
        for i in 0..m {
            for j in 0..n {
                // Products of multiples of 1/8 and sums of at most 4 small terms: exact in f32.
                let want: f32 = 1.0 + (0..k).map(|p| lhs[i * k + p] * rhs[p * n + j]).sum::<f32>();
                assert_eq!(got[i * n + j], want);
            }
        }
    }
}
