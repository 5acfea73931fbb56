//! The top-level command line (clap derive) and its dispatch. Each command's flags live in its
//! own module (`sample_cmd::SampleArgs`, ...); the choices they share in `choices`. The field doc
//! comments are the `--help` text.

use clap::{Parser, Subcommand};

use crate::choices::CmdResult;
use crate::{bench_cmd, classifier_cmd, elbo_cmd, eval_cmd, grid_cmd, nll_cmd, sample_cmd, sweep, train_cmd};

/// scoresde: numerics of diffusion models, tested against exact targets.
#[derive(Debug, Parser)]
#[command(name = "scoresde", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Draw samples with a reverse-SDE or probability-flow solver and the exact score of a target.
    Sample(Box<sample_cmd::SampleArgs>),
    /// Write the grid a configuration produces (sigmas.npy, timesteps.npy, t.npy): diffusers'
    /// DDPM/Euler and flow-match tables, k-diffusion's, ComfyUI's and Align-Your-Steps schedules.
    Grid(Box<grid_cmd::GridArgs>),
    /// Compare a sample file with the exact target: mean and covariance error, sliced W2, log-density.
    Eval(eval_cmd::EvalArgs),
    /// Log-likelihood of points through the probability-flow ODE (exact divergence), checked
    /// against the target's closed-form density.
    Nll(nll_cmd::NllArgs),
    /// Variational bound on ln p of points (the DDPM bound or the continuous-time ELBO), in nats
    /// and bits per dimension, for the exact score or a trained network.
    Elbo(elbo_cmd::ElboArgs),
    /// Run an experiment sweep (default: the headline steps-vs-quality figure on the ring) and
    /// write CSV, JSON sidecar and PNG/SVG figures.
    Sweep(sweep::SweepArgs),
    /// Train an MLP score model by denoising score matching (checkpoints, resume, loss curve).
    Train(Box<train_cmd::TrainArgs>),
    /// Train a noisy classifier of a mixture's classes for classifier guidance.
    TrainClassifier(Box<classifier_cmd::ClassifierArgs>),
    /// Time sampling and the exact-score kernel (particle-NFE per second) and print a Markdown table.
    Bench(bench_cmd::BenchArgs),
    /// List every solver from the registry: order, NFE per step, space, options, paper, the peer
    /// runs it reproduces (Markdown; the README's solver table is this output).
    Solvers,
}

/// Parses the process's arguments, noting which flags of `sample` were given explicitly.
///
/// A usage error is one line (`error: ...`, clap's first line, then where the flags are listed)
/// with exit status 1, like every other error; `--help` and `--version` print and exit 0.
pub fn parse() -> Cli {
    use clap::{CommandFactory, FromArgMatches};
    let usage_error = |e: clap::Error| -> ! {
        use clap::error::ErrorKind;
        if matches!(
            e.kind(),
            ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        ) {
            e.exit()
        }
        eprintln!(
            "error: {} (`scoresde help` and `scoresde COMMAND --help` list the flags)",
            crate::flags::clap_line(&e)
        );
        std::process::exit(1)
    };
    let matches = Cli::command().try_get_matches().unwrap_or_else(|e| usage_error(e));
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| usage_error(e));
    match (&mut cli.command, matches.subcommand()) {
        (Command::Sample(a), Some(("sample", sub))) => a.given = crate::flags::given(sub),
        (Command::Grid(a), Some(("grid", sub))) => a.given = crate::flags::given(sub),
        (Command::Nll(a), Some(("nll", sub))) => a.given = crate::flags::given(sub),
        _ => {}
    }
    cli
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> CmdResult {
    match cli.command {
        Command::Sample(a) => sample_cmd::run(*a),
        Command::Grid(a) => grid_cmd::run(*a),
        Command::Eval(a) => eval_cmd::run(a),
        Command::Nll(a) => nll_cmd::run(a),
        Command::Elbo(a) => elbo_cmd::run(a),
        Command::Sweep(a) => sweep::run(a),
        Command::Train(a) => train_cmd::run(*a),
        Command::TrainClassifier(a) => classifier_cmd::run(*a),
        Command::Bench(a) => bench_cmd::run(a),
        Command::Solvers => {
            print!("{}", scoresde::sampler::registry::markdown_table());
            Ok(())
        }
    }
}

/// An error and its causes as the one line the command line prints (`error: ...`), each cause
/// added unless its text is already in the line.
pub fn error_line(e: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = format!("error: {e}");
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !msg.contains(&text) {
            msg.push_str(&format!(": {text}"));
        }
        source = s.source();
    }
    // One line, whatever a message from another crate holds (npy header errors span six).
    msg.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
}
