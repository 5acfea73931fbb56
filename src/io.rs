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

fn read_npy_any<D: Dimension>(path: &Path, field: &str) -> Result<Array<f64, D>> {
    let file = fs::File::open(path).map_err(io_err(path))?;
    Array::<f64, D>::read_npy(std::io::BufReader::new(file)).map_err(|e| ScoreError::Npy {
        path: path.display().to_string(),
        message: format!("{field}: {e} (expected a float64 array with {} dimension(s))", D::NDIM.unwrap_or(0)),
    })
}

fn read_npy<D: Dimension>(path: &Path, field: &str) -> Result<Array<f64, D>> {
    let arr = read_npy_any::<D>(path, field)?;
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

/// Reads a float64 matrix that may hold NaN or infinities (the caller checks the entries it
/// reads: inpainting's observed values outside the mask).
pub fn read_npy_2d_unchecked(path: &Path, field: &str) -> Result<Array2<f64>> {
    read_npy_any(path, field)
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

/// Where and how `path` is written. A regular file (or a new path) gets a temporary file beside
/// it renamed into place; a symbolic link is followed, so the link stays and its target is
/// replaced; anything else that exists (a character device such as /dev/null, a FIFO, a socket)
/// is written through, never replaced; a directory is an error.
enum Destination {
    Replace(PathBuf),
    WriteThrough,
}

fn destination(path: &Path) -> Result<Destination> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Destination::Replace(path.to_path_buf())),
        Err(e) => return Err(io_err(path)(e)),
    };
    let file_type = meta.file_type();
    if file_type.is_symlink() {
        // The link's target, which may not exist yet (then it is created) but whose directory must.
        let target = fs::read_link(path).map_err(io_err(path))?;
        let target = match target.is_absolute() {
            true => target,
            false => path.parent().unwrap_or(Path::new("")).join(target),
        };
        return match fs::metadata(&target) {
            Ok(m) if m.is_dir() => Err(io_err(path)(std::io::Error::other("is a link to a directory"))),
            Ok(m) if !m.is_file() => Ok(Destination::WriteThrough),
            _ => Ok(Destination::Replace(target)),
        };
    }
    if meta.is_dir() {
        return Err(io_err(path)(std::io::Error::other("is a directory")));
    }
    Ok(if meta.is_file() { Destination::Replace(path.to_path_buf()) } else { Destination::WriteThrough })
}

/// Runs `write` on a temporary file beside `path`, then syncs it and renames it to `path`;
/// removes it on any error. Special files and links are handled as [`Destination`] says; the
/// temporary files of killed runs to the same path (their process gone) are removed first.
/// Temporary files being written now, removed by [`remove_active_temps`] when the process is
/// interrupted.
static ACTIVE: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// Removes the temporary files of the writes in progress: for a SIGINT/SIGTERM handler, which
/// then exits (the command line installs one), so that an interrupted write leaves nothing.
pub fn remove_active_temps() {
    if let Ok(active) = ACTIVE.lock() {
        for p in active.iter() {
            let _ = fs::remove_file(p);
        }
    }
}

fn track(tmp: &Path, on: bool) {
    if let Ok(mut active) = ACTIVE.lock() {
        if on {
            active.push(tmp.to_path_buf());
        } else {
            active.retain(|p| p != tmp);
        }
    }
}

fn write_atomic_with(path: &Path, write: impl FnOnce(&fs::File) -> std::io::Result<()>) -> Result<()> {
    let path = match destination(path)? {
        Destination::WriteThrough => {
            let result = fs::OpenOptions::new().write(true).open(path).and_then(|f| write(&f));
            return result.map_err(io_err(path));
        }
        Destination::Replace(p) => p,
    };
    let path = path.as_path();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(io_err(path))?;
    }
    remove_stale_temps(path);
    let tmp = temp_path(path);
    track(&tmp, true);
    let result = (|| {
        let f = fs::File::create(&tmp)?;
        write(&f)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    track(&tmp, false);
    result.map_err(io_err(path))
}

/// Removes `.NAME.PID.tmp` files beside `path` whose process no longer runs (left by a run that
/// was killed while writing `path`). Best effort: a file that cannot be removed is left.
fn remove_stale_temps(path: &Path) {
    if !cfg!(target_os = "linux") {
        return; // whether a process runs is read from /proc
    }
    let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else { return };
    let dir = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(d) => d.to_path_buf(),
        None => PathBuf::from("."),
    };
    let Ok(entries) = fs::read_dir(&dir) else { return };
    let prefix = format!(".{name}.");
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = file.strip_prefix(&prefix).and_then(|rest| rest.strip_suffix(".tmp")) else { continue };
        let Ok(pid) = pid.parse::<u32>() else { continue };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = fs::remove_file(entry.path());
        }
    }
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

    #[test]
    fn links_are_followed_and_special_files_written_through() {
        let dir = std::env::temp_dir().join(format!("scoresde-io-special-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let a = ndarray::array![[1.0, 2.0]];
        // A link to a file: the link stays a link, its target gets the samples.
        let target = dir.join("real.npy");
        fs::write(&target, b"old").unwrap();
        let link = dir.join("link.npy");
        std::os::unix::fs::symlink("real.npy", &link).unwrap();
        write_npy(&link, &a).unwrap();
        assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(read_npy_2d(&target, "x").unwrap(), a);
        // A dangling link: its target is created.
        let dangling = dir.join("dangling.npy");
        std::os::unix::fs::symlink("made.npy", &dangling).unwrap();
        write_npy(&dangling, &a).unwrap();
        assert!(fs::symlink_metadata(&dangling).unwrap().file_type().is_symlink());
        assert_eq!(read_npy_2d(&dir.join("made.npy"), "x").unwrap(), a);
        // /dev/null stays a character device (as root the old rename would have replaced it).
        write_atomic(Path::new("/dev/null"), b"discarded").unwrap();
        use std::os::unix::fs::FileTypeExt;
        assert!(fs::metadata("/dev/null").unwrap().file_type().is_char_device());
        // A FIFO is written through to its reader.
        let fifo = dir.join("pipe");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || fs::read(fifo).unwrap())
        };
        write_atomic(&fifo, b"through the pipe").unwrap();
        assert_eq!(reader.join().unwrap(), b"through the pipe");
        assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
        // A directory is refused with its name.
        let e = write_atomic(&dir, b"x").unwrap_err().to_string();
        assert!(e.contains("is a directory"), "{e}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn temp_files_of_killed_runs_are_removed() {
        let dir = std::env::temp_dir().join(format!("scoresde-io-stale-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        // pid_max is at most 2^22 on Linux: this process cannot exist.
        let dead = dir.join(".x.npy.4999999.tmp");
        let other_name = dir.join(".y.npy.4999999.tmp");
        fs::write(&dead, b"half").unwrap();
        fs::write(&other_name, b"half").unwrap();
        write_atomic(&dir.join("x.npy"), b"whole").unwrap();
        assert!(!dead.exists(), "a dead run's temp file of the same path is removed");
        assert!(other_name.exists(), "another path's temp file is left alone");
        let names: Vec<_> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 2, "{names:?}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
