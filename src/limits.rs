//! Sizes checked before they are allocated: a request that cannot fit in this machine's memory
//! is a one-line error naming the flag, its value and the bytes it would need, not an abort
//! inside the allocator ("memory allocation of 16000000000000 bytes failed", exit 134).

use crate::error::{Result, ScoreError};

/// The machine's physical memory in bytes (MemTotal of /proc/meminfo), or `None` where it
/// cannot be read.
pub fn total_memory() -> Option<u128> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u128 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Bytes as a short human-readable size (`16 TB`, `3.9 GB`, `512 kB`).
pub fn human(bytes: u128) -> String {
    let units = [("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)];
    let b = bytes as f64;
    for (name, size) in units {
        if b >= size {
            let v = b / size;
            return if v >= 100.0 { format!("{v:.0} {name}") } else { format!("{v:.1} {name}") };
        }
    }
    format!("{bytes} B")
}

/// Checks that `elements` float64 values (what `field` = `value` asks for, described by `what`)
/// fit in memory: an error when they exceed the machine's total memory (or 2^63 bytes).
pub fn check_f64s(field: &str, value: usize, elements: u128, what: &str) -> Result<()> {
    let bytes = elements.saturating_mul(8);
    let limit = total_memory().unwrap_or(u128::MAX).min(1 << 63);
    if bytes > limit {
        return Err(ScoreError::TooLarge {
            field: field.to_string(),
            value,
            what: what.to_string(),
            needs: human(bytes),
            available: human(limit),
        });
    }
    Ok(())
}

/// The largest number of grid steps accepted: far beyond any sampler's use (diffusers' tables
/// have 1000 steps), small enough that a typo (`--steps 1000000000`) is an error, not 8 GB.
pub const MAX_STEPS: usize = 10_000_000;

/// Checks a step count against [`MAX_STEPS`].
pub fn check_steps(field: &str, steps: usize) -> Result<()> {
    if steps > MAX_STEPS {
        return Err(ScoreError::InvalidParameter {
            name: field.to_string(),
            value: steps as f64,
            expected: "must be at most 10^7 (a grid that large is a typo, not a sampler)",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_checked_and_named() {
        assert_eq!(human(16_000_000_000_000), "16.0 TB");
        assert_eq!(human(3_900_000_000), "3.9 GB");
        assert_eq!(human(512), "512 B");
        assert!(check_f64s("n", 1000, 2000, "samples").is_ok());
        let e = check_f64s("n", 1_000_000_000_000, 2_000_000_000_000, "the samples (N x d float64)").unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("n = 1000000000000: the samples (N x d float64) need 16.0 TB"), "{msg}");
        assert!(check_steps("steps", 1000).is_ok() && check_steps("steps", 1_000_000_000).is_err());
    }
}
