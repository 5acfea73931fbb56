//! The `scoresde` command line.
//!
//! `sample` runs any solver on any process with the exact score of a Gaussian-mixture target and
//! writes the samples as `.npy`; `eval` scores a sample file against the exact target. Its flags
//! for replaying peer runs are fixed by shared/reference/README.md. Every failure prints one line
//! naming the bad field and value and exits with status 1, leaving no output file behind.

use std::process::ExitCode;

use scoresde_experiments::cli;

fn main() -> ExitCode {
    // Ctrl-C or SIGTERM: remove the temporary files of writes in progress, then exit 130.
    let _ = ctrlc::set_handler(|| {
        scoresde::io::remove_active_temps();
        eprintln!("interrupted");
        std::process::exit(130);
    });
    let args = cli::parse();
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", cli::error_line(&*e));
            ExitCode::FAILURE
        }
    }
}
