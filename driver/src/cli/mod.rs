//! The `authsession` command line (SPEC §8): argument definitions and
//! dispatch. Values arrive as text and are parsed by core's validating
//! constructors here, so a bad value fails with core's stable kind.

mod error;
mod offline;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use authsession_core::KeySpace;
use clap::{Args, Parser, Subcommand};

use error::CliError;

/// Inspect, revoke, validate and check authsession device sessions.
#[derive(Debug, Parser)]
#[command(name = "authsession", version, about, max_term_width = 100)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct GlobalArgs {
    /// Redis server URL (`redis://` or `rediss://`); store commands default
    /// to redis://127.0.0.1:6379, `demo` to the in-memory store.
    #[arg(long, env = "AUTHSESSION_REDIS_URL", global = true, value_name = "URL")]
    redis_url: Option<String>,
    /// Base of the three key prefixes: `{BASE}session:`,
    /// `{BASE}user_sessions:`, `{BASE}user_active_sessions:`.
    #[arg(
        long,
        env = "AUTHSESSION_PREFIX",
        default_value = authsession_core::DEFAULT_KEY_BASE,
        global = true,
        value_name = "BASE"
    )]
    prefix: String,
    /// Use a fresh in-memory store (same semantics as Redis; nothing
    /// outlives the command) instead of Redis.
    #[arg(long, global = true)]
    memory: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate a raw stored record offline with the strict decoder.
    Decode(DecodeArgs),
    /// Print the keys derived for a device session id and/or a user.
    Keys(KeysArgs),
}

#[derive(Debug, Args)]
struct DecodeArgs {
    /// The device session id the record must belong to (the id of the key
    /// it was read from).
    #[arg(long, required_unless_present = "batch", conflicts_with = "batch")]
    id: Option<String>,
    /// Read JSON lines `{"id":…,"payload_b64":…}` and answer one JSON line
    /// per input line.
    #[arg(long)]
    batch: bool,
    /// Input file (stdin when absent).
    file: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[group(required = true, multiple = true)]
struct KeysArgs {
    /// Device session id: prints its record key.
    #[arg(long)]
    id: Option<String>,
    /// User id: prints its two index keys.
    #[arg(long)]
    user: Option<String>,
}

impl GlobalArgs {
    fn key_space(&self) -> Result<KeySpace, CliError> {
        KeySpace::with_base(&self.prefix).map_err(|e| CliError::from(e).context("--prefix"))
    }
}

/// Parses the command line, runs the command, and maps the result to the
/// process exit code (errors on stderr with their kind).
pub(crate) fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("authsession: error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, CliError> {
    match cli.command {
        Command::Decode(args) => {
            match (args.batch, args.id) {
                (true, _) => offline::decode_batch(args.file.as_deref())?,
                (false, Some(id)) => offline::decode_one(&id, args.file.as_deref())?,
                (false, None) => return Err(CliError::usage("decode needs --id or --batch")),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys(args) => {
            let key_space = cli.global.key_space()?;
            offline::keys(&key_space, args.id.as_deref(), args.user.as_deref())?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
