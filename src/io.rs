//! Reading and writing the project's files: `.npy` arrays (float64, C order) and atomic writes.
//!
//! Every reader checks dtype, rank and finiteness and names the file and the field in its error;
//! every writer goes through a temporary file in the destination directory and a rename, so a
//! failed run never leaves a half-written output behind.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use ndarray::{Array, Array1, Array2, Array3, Dimension};
use ndarray_npy::{ReadNpyExt, WriteNpyExt};

use crate::error::{Result, ScoreError};

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ScoreError + '_ {
    move |source| ScoreError::Io { path: path.display().to_string(), source }
}

fn read_npy<D: Dimension>(path: &Path, field: &str) -> Result<Array<f64, D>> {
    let file = fs::File::open(path).map_err(io_err(path))?;
    let arr = Array::<f64, D>::read_npy(std::io::BufReader::new(file)).map_err(|e| ScoreError::Npy {
        path: path.display().to_string(),
        message: format!("{field}: {e} (expected a float64 array with {} dimension(s))", D::NDIM.unwrap_or(0)),
    })?;
    if let Some((index, &value)) = arr.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(ScoreError::NonFiniteInput { field: field.to_string(), index, value });
    }
    Ok(arr)
}

/// Reads a finite float64 vector.
pub fn read_npy_1d(path: &Path, field: &str) -> Result<Array1<f64>> {
    read_npy(path, field)
}

/// Reads a finite float64 matrix (one sample per row).
pub fn read_npy_2d(path: &Path, field: &str) -> Result<Array2<f64>> {
    read_npy(path, field)
}

/// Reads a finite float64 array of rank 3 (fixed noise: steps x N x d).
pub fn read_npy_3d(path: &Path, field: &str) -> Result<Array3<f64>> {
    read_npy(path, field)
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, flushed, then renamed.
/// A missing parent directory is created first.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |mut f| f.write_all(bytes))
}

/// Runs `write` on a temporary file beside `path`, then syncs it and renames it to `path`;
/// removes it on any error.
fn write_atomic_with(path: &Path, write: impl FnOnce(&fs::File) -> std::io::Result<()>) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(io_err(path))?;
    }
    let tmp = temp_path(path);
    let result = (|| {
        let f = fs::File::create(&tmp)?;
        write(&f)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io_err(path))
}

/// Writes a float64 array as `.npy` atomically, streamed to the temporary file (no copy of the
/// array in memory).
pub fn write_npy<D: Dimension>(path: &Path, array: &Array<f64, D>) -> Result<()> {
    write_atomic_with(path, |f| {
        let mut w = std::io::BufWriter::new(f);
        array.write_npy(&mut w).map_err(std::io::Error::other)?;
        w.flush()
    })
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors_name_the_file() {
        let dir = std::env::temp_dir().join(format!("scoresde-io-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("a.npy");
        let a = ndarray::array![[1.0, 2.0], [3.0, 4.0]];
        write_npy(&p, &a).unwrap();
        assert_eq!(read_npy_2d(&p, "z-init").unwrap(), a);
        // Wrong rank.
        let e = read_npy_1d(&p, "grid").unwrap_err().to_string();
        assert!(e.contains("a.npy") && e.contains("grid"), "{e}");
        // Non-finite entries.
        write_npy(&p, &ndarray::array![[1.0, f64::NAN]]).unwrap();
        assert_eq!(read_npy_2d(&p, "z-init").unwrap_err().to_string(), "z-init[1] = NaN: must be finite");
        // Missing file.
        let e = read_npy_2d(&dir.join("missing.npy"), "z-init").unwrap_err().to_string();
        assert!(e.contains("missing.npy"), "{e}");
        // A missing parent directory is created; a path that cannot be a directory fails and
        // leaves nothing behind.
        write_npy(&dir.join("new/sub/x.npy"), &a).unwrap();
        fs::write(dir.join("file"), b"x").unwrap();
        assert!(write_npy(&dir.join("file/x.npy"), &a).is_err());
        let leftovers: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }
}
