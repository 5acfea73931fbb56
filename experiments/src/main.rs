//! The `scoresde` command line.
//!
//! `sample` runs any solver on any process with the exact score of a Gaussian-mixture target and
//! writes the samples as `.npy`; `eval` scores a sample file against the exact target. Its flags
//! for replaying peer runs are fixed by shared/reference/README.md. Every failure prints one line
//! naming the bad field and value and exits with status 1, leaving no output file behind.

use std::process::ExitCode;

use scoresde_experiments::cli;

fn main() -> ExitCode {
    let args = cli::parse();
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", cli::error_line(&*e));
            ExitCode::FAILURE
        }
    }
}
