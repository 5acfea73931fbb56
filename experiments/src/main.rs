//! The `scoresde` command line.
//!
//! `sample` runs any solver on any process with the exact score of a Gaussian-mixture target and
//! writes the samples as `.npy`; `eval` scores a sample file against the exact target. Its flags
//! for replaying peer runs are fixed by shared/reference/README.md. Every failure prints one line
//! naming the bad field and value and exits with status 1, leaving no output file behind.

mod bench_cmd;
mod choices;
mod cli;
mod eval_cmd;
mod nll_cmd;
mod sample_cmd;
mod sweep;
mod train_cmd;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let mut msg = format!("error: {e}");
            let mut source = std::error::Error::source(&*e);
            while let Some(s) = source {
                let text = s.to_string();
                if !msg.contains(&text) {
                    msg.push_str(&format!(": {text}"));
                }
                source = s.source();
            }
            eprintln!("{msg}");
            ExitCode::FAILURE
        }
    }
}
