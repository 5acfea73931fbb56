//! The `scoresde` command line as a library: each command's flags (clap derive) and the function
//! that runs them, so that other front ends (the Python package) parse the same flags and reach
//! the same code. `main.rs` is only the process boundary: parse, run, print one error line.

pub mod bench_cmd;
pub mod bench_net;
pub mod choices;
pub mod classifier_cmd;
pub mod cli;
pub mod elbo_cmd;
pub mod eval_cmd;
pub mod flags;
pub mod grid_cmd;
pub mod guidance_flags;
pub mod inpaint_flags;
pub mod nll_cmd;
pub mod sample_cmd;
pub mod sweep;
pub mod train_cmd;
