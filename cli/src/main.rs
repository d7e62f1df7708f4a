//! `authsession`: the operator's command line for device sessions.
//! Every command prints JSON on stdout; any error exits non-zero with its
//! message and stable kind on stderr.
//!
//! This file is the entry point: parse, run, map the outcome to an exit
//! status. The arguments are defined in `args`, the dispatch is in
//! `dispatch`, each command in a file of its own; a store command is
//! written once over the driver's traits and run on the store `target`
//! opens.

mod args;
#[cfg(feature = "bench")]
mod bench;
mod clock;
mod demo;
mod dispatch;
mod duration;
mod error;
mod migrate;
mod offline;
mod output;
mod progress;
mod scratch;
mod store;
mod target;
mod timestamp;
mod verbose;
mod watch;

use std::process::ExitCode;

use clap::{CommandFactory as _, FromArgMatches as _};

use args::{Cli, Given};
use error::CliError;

/// Parses the command line, runs the command, and maps the result to the
/// process exit code (errors on stderr with their kind).
fn main() -> ExitCode {
    let matches = match Cli::command().try_get_matches() {
        Ok(matches) => matches,
        Err(error) => return clap_exit(&error),
    };
    let given = Given::from_matches(&matches);
    let mut cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => return clap_exit(&error),
    };
    cli.global.given = given;
    verbose::install(cli.global.verbose);
    let result = if cli.global.memory && given.redis_url_flag {
        Err(CliError::usage(
            "--memory and --redis-url exclude each other",
        ))
    } else if given.cluster_flag && (cli.global.memory || given.redis_url_flag) {
        Err(CliError::usage(
            "--cluster-node excludes --redis-url and --memory",
        ))
    } else {
        dispatch::run(cli)
    };
    match result {
        Ok(code) => code,
        Err(error) => fail(&error),
    }
}

/// Exit status when stdout was closed under the command (`| head -1`):
/// what a shell reports for a tool ended by SIGPIPE.
const STDOUT_CLOSED_STATUS: u8 = 128 + 13;

/// Prints `error` as one line on stderr (nothing when stdout was closed:
/// the reader went away on purpose) and picks the exit status.
fn fail(error: &CliError) -> ExitCode {
    match error.kind() {
        CliError::STDOUT_CLOSED => ExitCode::from(STDOUT_CLOSED_STATUS),
        kind => {
            error::stderr_line(&format!("error: {error}"));
            ExitCode::from(if kind == "usage" { 2 } else { 1 })
        }
    }
}

/// A command line clap refused: help and version print as usual (exit 0);
/// anything else is one `usage` line (exit 2), the first paragraph of
/// clap's message.
fn clap_exit(error: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match error.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            // A closed stdout here is no error worth reporting.
            let _ = error.print();
            ExitCode::SUCCESS
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => fail(&CliError::usage(
            "a command is required; `authsession --help` lists them",
        )),
        _ => fail(&CliError::usage(clap_message(&error.to_string()))),
    }
}

/// clap's rendered error up to its first blank line (the usage block and
/// tips follow it), on one line, without the `error: ` label.
fn clap_message(rendered: &str) -> String {
    let first: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .take_while(|line| !line.is_empty())
        .collect();
    let text = first.join(" ");
    let text = text.strip_prefix("error: ").unwrap_or(&text);
    format!("{text}; see --help")
}
