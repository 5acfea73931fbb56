//! One command's flags on their own: parsed from a list of words, and described (name, help,
//! default, whether it takes a value) for front ends that map keywords to flags (the Python
//! package turns `steps=20` into `--steps 20` and lists every flag in its docstrings).

use clap::{Args, Command, FromArgMatches};

/// A flag of a command, as its `--help` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagDoc {
    /// The long name without dashes (`beta-min`).
    pub name: String,
    /// The help text.
    pub help: String,
    /// The default as clap shows it, if the flag has one.
    pub default: Option<String>,
    /// Whether the flag takes a value (`--steps 20`) or is a switch (`--brownian`).
    pub takes_value: bool,
    /// The accepted values of a flag with a fixed set of them.
    pub choices: Vec<String>,
}

fn command<A: Args>(name: &'static str) -> Command {
    A::augment_args(Command::new(name).no_binary_name(true).disable_help_flag(true))
}

/// Parses `words` (`["--solver", "heun", "--steps", "20"]`) as the flags of one command; also
/// returns the ids of the flags the words give (see [`given`]).
pub fn parse<A: Args + FromArgMatches>(name: &'static str, words: &[String]) -> Result<(A, Vec<String>), clap::Error> {
    let mut matches = command::<A>(name).try_get_matches_from(words)?;
    let given = given(&matches);
    Ok((A::from_arg_matches_mut(&mut matches)?, given))
}

/// The ids (field names: `s_noise`) of the flags given explicitly, not by their defaults.
pub fn given(matches: &clap::ArgMatches) -> Vec<String> {
    matches
        .ids()
        .filter(|id| matches.value_source(id.as_str()) == Some(clap::parser::ValueSource::CommandLine))
        .map(|id| id.as_str().to_string())
        .collect()
}

/// The flags of one command, in declaration order.
pub fn describe<A: Args>(name: &'static str) -> Vec<FlagDoc> {
    command::<A>(name)
        .get_arguments()
        .filter_map(|arg| {
            let name = arg.get_long()?.to_string();
            let takes_value = arg.get_action().takes_values();
            let defaults: Vec<String> =
                arg.get_default_values().iter().map(|v| v.to_string_lossy().into_owned()).collect();
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            let choices = arg.get_possible_values().iter().map(|v| v.get_name().to_string()).collect();
            Some(FlagDoc {
                name,
                help,
                default: (!defaults.is_empty() && takes_value).then(|| defaults.join(",")),
                takes_value,
                choices,
            })
        })
        .collect()
}

/// A clap error as one line: its first line without the `error: ` prefix.
pub fn clap_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("").trim();
    let mut line = first.strip_prefix("error: ").unwrap_or(first).to_string();
    // "the following required arguments were not provided:" lists them on indented lines.
    if line.ends_with(':') {
        let listed: Vec<&str> = lines.take_while(|l| l.starts_with("  ")).map(str::trim).collect();
        line = format!("{} {}", line, listed.join(", "));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample_cmd::SampleArgs;

    #[test]
    fn parses_and_describes_sample_flags() {
        let words: Vec<String> = ["--solver", "dpmpp-2m", "--steps", "12", "--brownian"].map(String::from).to_vec();
        let (a, given): (SampleArgs, _) = parse("sample", &words).unwrap();
        // The flags given (and the argument groups --steps belongs to), not the defaulted ones.
        let args: Vec<&String> = given.iter().filter(|g| *g != "steps_from" && *g != "GridFlags").collect();
        assert_eq!(args, ["solver", "steps", "brownian"]);
        assert_eq!(a.solver.info().name, "dpmpp-2m");
        assert_eq!(a.grid_flags.steps, Some(12));
        assert!(a.brownian);
        let docs = describe::<SampleArgs>("sample");
        let steps = docs.iter().find(|f| f.name == "steps").unwrap();
        assert!(steps.takes_value && steps.default.is_none());
        let beta = docs.iter().find(|f| f.name == "beta-min").unwrap();
        assert_eq!(beta.default.as_deref(), Some("0.1"));
        let brownian = docs.iter().find(|f| f.name == "brownian").unwrap();
        assert!(!brownian.takes_value);
        assert!(docs.iter().find(|f| f.name == "solver").unwrap().choices.contains(&"heun".to_string()));
        let bad = parse::<SampleArgs>("sample", &["--steps".into(), "x".into()]).unwrap_err();
        assert!(clap_line(&bad).contains("--steps"), "{}", clap_line(&bad));
    }
}
