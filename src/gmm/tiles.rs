//! Moving a block of rows between the caller's row-major N x d arrays and the kernel's
//! transposed block (`xs`, `acc`: coordinate i of row b at `i B + b`), four rows by four
//! coordinates at a time with AVX vector loads, stores and in-lane shuffles.
//!
//! Why this module exists: done one value at a time, the transposition in and out of the block
//! took a quarter of the kernel's time at d = 16 (two scalar memory operations per value, on a
//! CPU that stores one value per cycle). A 4 x 4 tile is eight 128-bit loads, four shuffles and
//! four 256-bit stores on the way in, and four 256-bit loads, four shuffles and eight 128-bit
//! stores on the way out. The output map (`RowMap`) and the finiteness test run on the tile's
//! vectors before they are stored, with the same separate multiplies and adds as the scalar
//! code, so the values are bit-identical to the scalar path's. Rows and coordinates that do not
//! fill a tile are moved one value at a time.
//!
//! Only the kernel's AVX2 copy calls these functions (the CPU check is its caller's).

use std::arch::x86_64::*;

use super::rowmap::{non_finite, RowMap, EXPONENT};

/// `xs[i bs + b] = rows[b d + i]` for the `nb = rows.len() / d` rows of the block.
///
/// # Safety
///
/// The CPU must support AVX.
#[target_feature(enable = "avx")]
pub(super) unsafe fn load(rows: &[f64], d: usize, bs: usize, xs: &mut [f64]) {
    let nb = rows.len() / d;
    assert!(rows.len() == nb * d && xs.len() >= d * bs && nb <= bs, "block sizes");
    let (nb4, d4) = (nb / 4 * 4, d / 4 * 4);
    let src = rows.as_ptr();
    let dst = xs.as_mut_ptr();
    for b in (0..nb4).step_by(4) {
        let r = [src.add(b * d), src.add((b + 1) * d), src.add((b + 2) * d), src.add((b + 3) * d)];
        for i in (0..d4).step_by(4) {
            // t = [row0 i, row0 i+1, row2 i, row2 i+1] and [row1 .., row3 ..], then the
            // in-lane unpacks give coordinate i (low) and i + 1 (high) of the four rows.
            let t0 = pair(r[0].add(i), r[2].add(i));
            let t1 = pair(r[1].add(i), r[3].add(i));
            let t2 = pair(r[0].add(i + 2), r[2].add(i + 2));
            let t3 = pair(r[1].add(i + 2), r[3].add(i + 2));
            _mm256_storeu_pd(dst.add(i * bs + b), _mm256_unpacklo_pd(t0, t1));
            _mm256_storeu_pd(dst.add((i + 1) * bs + b), _mm256_unpackhi_pd(t0, t1));
            _mm256_storeu_pd(dst.add((i + 2) * bs + b), _mm256_unpacklo_pd(t2, t3));
            _mm256_storeu_pd(dst.add((i + 3) * bs + b), _mm256_unpackhi_pd(t2, t3));
        }
        for i in d4..d {
            for (j, row) in r.iter().enumerate() {
                *dst.add(i * bs + b + j) = *row.add(i);
            }
        }
    }
    for b in nb4..nb {
        for i in 0..d {
            *dst.add(i * bs + b) = *src.add(b * d + i);
        }
    }
}

/// `[lo[0], lo[1], hi[0], hi[1]]`.
///
/// # Safety
///
/// Two values must be readable at `lo` and at `hi`.
#[inline]
#[target_feature(enable = "avx")]
unsafe fn pair(lo: *const f64, hi: *const f64) -> __m256d {
    _mm256_insertf128_pd(_mm256_castpd128_pd256(_mm_loadu_pd(lo)), _mm_loadu_pd(hi), 1)
}

/// `rows[b d + i] = map(xs[i bs + b], acc[i bs + b])` for the `nb = rows.len() / d` rows of
/// the block; returns whether every value written is finite.
///
/// # Safety
///
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn store(rows: &mut [f64], d: usize, bs: usize, xs: &[f64], acc: &[f64], map: RowMap) -> bool {
    let nb = rows.len() / d;
    assert!(rows.len() == nb * d && xs.len() >= d * bs && acc.len() >= d * bs && nb <= bs, "block sizes");
    let (nb4, d4) = (nb / 4 * 4, d / 4 * 4);
    let dst = rows.as_mut_ptr();
    let (xp, ap) = (xs.as_ptr(), acc.as_ptr());
    let exponent = _mm256_set1_epi64x(EXPONENT as i64);
    let mut bad = _mm256_setzero_si256();
    let mut bad_scalar = 0u64;
    let mut value = |at: usize| {
        let v = map.apply(*xp.add(at), *ap.add(at));
        bad_scalar |= non_finite(v);
        v
    };
    for b in (0..nb4).step_by(4) {
        let r = [dst.add(b * d), dst.add((b + 1) * d), dst.add((b + 2) * d), dst.add((b + 3) * d)];
        for i in (0..d4).step_by(4) {
            let mut c = [_mm256_setzero_pd(); 4];
            for (j, cj) in c.iter_mut().enumerate() {
                let at = (i + j) * bs + b;
                let v = apply(map, _mm256_loadu_pd(xp.add(at)), _mm256_loadu_pd(ap.add(at)));
                let e = _mm256_and_si256(_mm256_castpd_si256(v), exponent);
                bad = _mm256_or_si256(bad, _mm256_cmpeq_epi64(e, exponent));
                *cj = v;
            }
            // u0 = [row0 i, row0 i+1, row2 i, row2 i+1], u1 the same for rows 1 and 3; u2, u3
            // for coordinates i+2, i+3.
            let u0 = _mm256_unpacklo_pd(c[0], c[1]);
            let u1 = _mm256_unpackhi_pd(c[0], c[1]);
            let u2 = _mm256_unpacklo_pd(c[2], c[3]);
            let u3 = _mm256_unpackhi_pd(c[2], c[3]);
            _mm_storeu_pd(r[0].add(i), _mm256_castpd256_pd128(u0));
            _mm_storeu_pd(r[0].add(i + 2), _mm256_castpd256_pd128(u2));
            _mm_storeu_pd(r[1].add(i), _mm256_castpd256_pd128(u1));
            _mm_storeu_pd(r[1].add(i + 2), _mm256_castpd256_pd128(u3));
            _mm_storeu_pd(r[2].add(i), _mm256_extractf128_pd(u0, 1));
            _mm_storeu_pd(r[2].add(i + 2), _mm256_extractf128_pd(u2, 1));
            _mm_storeu_pd(r[3].add(i), _mm256_extractf128_pd(u1, 1));
            _mm_storeu_pd(r[3].add(i + 2), _mm256_extractf128_pd(u3, 1));
        }
        for i in d4..d {
            for (j, row) in r.iter().enumerate() {
                *row.add(i) = value(i * bs + b + j);
            }
        }
    }
    for b in nb4..nb {
        for i in 0..d {
            *dst.add(b * d + i) = value(i * bs + b);
        }
    }
    bad_scalar == 0 && _mm256_testz_si256(bad, bad) == 1
}

/// [`RowMap::apply`] on four values: the same operations in the same order.
#[inline]
#[target_feature(enable = "avx2")]
fn apply(map: RowMap, x: __m256d, v: __m256d) -> __m256d {
    let (mul, add, splat) = (_mm256_mul_pd, _mm256_add_pd, _mm256_set1_pd);
    match map {
        RowMap::Scaled(scale) => mul(splat(scale), v),
        RowMap::Affine(scale, a, c) => add(mul(splat(a), x), mul(splat(c), mul(splat(scale), v))),
        RowMap::Update(scale, a, c, h) => {
            add(x, mul(splat(h), add(mul(splat(a), x), mul(splat(c), mul(splat(scale), v)))))
        }
    }
}
