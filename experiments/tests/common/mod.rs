//! What the command-line tests share: the binary, a scratch directory per test, paths as text.
#![allow(dead_code)] // each test file uses its own part

use std::path::{Path, PathBuf};
use std::process::Command;

/// The `scoresde` binary under test.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_scoresde"))
}

/// A fresh directory `scoresde-{suite}-{name}-{pid}` in the temp dir, removed when dropped.
pub struct Dir(pub PathBuf);

impl Dir {
    pub fn new(suite: &str, name: &str) -> Self {
        let d = std::env::temp_dir().join(format!("scoresde-{suite}-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Self(d)
    }
    pub fn p(&self, f: &str) -> PathBuf {
        self.0.join(f)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A path as a command-line word.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}
