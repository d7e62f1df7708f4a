//! `authsession`: the operator's command line for device sessions.
//! Every command prints JSON on stdout; any error exits non-zero with its
//! message and stable kind on stderr.
//!
//! This file holds the argument definitions and the dispatch. Values
//! arrive as text and are parsed by core's validating constructors here,
//! so a bad value fails with core's stable kind.

mod bench;
mod clock;
mod demo;
mod error;
mod offline;
mod output;
mod store;
mod timestamp;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use authsession_core::{
    DeviceSessionId, KeySpace, RevokeSessionInput, RevokeUserSessionsInput, UserId,
};
use authsession_driver::{MemorySessionStore, SessionAdmin, SessionStore};
use clap::parser::ValueSource;
use clap::{Args, CommandFactory as _, FromArgMatches as _, Parser, Subcommand};

use error::CliError;
use store::{CreateFlags, RevocationFlags, StoreCommand};

/// Default server for the commands that talk to Redis (like redis-cli).
const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// Inspect, revoke, validate and check authsession device sessions.
#[derive(Debug, Parser)]
#[command(
    name = "authsession",
    version,
    max_term_width = 100,
    after_help = "Every command prints JSON on stdout. On any error it exits 1 and prints the \
                  message with its stable kind on stderr (usage errors exit 2)."
)]
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
    /// Create an active session (fails with `conflict` if the id exists).
    Create(CreateArgs),
    /// Print a session.
    Get {
        /// Device session id.
        id: String,
    },
    /// Print every session of a user, newest first.
    List {
        /// User id.
        user: String,
    },
    /// Print how many active sessions a user has.
    Count {
        /// User id.
        user: String,
    },
    /// Revoke one session (`revoked`, or `already_revoked` with the stored
    /// session unchanged).
    Revoke {
        /// Device session id.
        id: String,
        #[command(flatten)]
        revocation: RevocationArgs,
    },
    /// Revoke every active session of a user created at or before the
    /// revocation time (`revoked` or `no_active_sessions`).
    RevokeAll {
        /// User id.
        user: String,
        #[command(flatten)]
        revocation: RevocationArgs,
    },
    /// Scan the key space: strict-decode every record and check both
    /// indexes against them. Exits non-zero if problems remain.
    Check {
        /// Fix index drift (missing, misscored or stray index entries);
        /// corrupt records are reported, never changed.
        #[arg(long)]
        repair: bool,
    },
    /// Walk through a full session lifecycle (in memory unless a Redis URL
    /// is given; on Redis under a fresh prefix, deleted afterwards).
    Demo,
    /// Load generator: runs one workload for a fixed time under a fresh
    /// prefix (deleted afterwards) and prints one JSON line of throughput,
    /// errors and latency percentiles.
    Bench(BenchArgs),
}

#[derive(Debug, Args)]
struct CreateArgs {
    /// Device session id.
    #[arg(long)]
    id: String,
    /// User id.
    #[arg(long)]
    user: String,
    /// Client Ed25519 public key: standard padded base64 of 32 bytes.
    #[arg(long, value_name = "B64")]
    public_key: String,
    /// Creation time in any RFC 3339 form (e.g. 2026-11-27T10:00:00Z or
    /// 2026-11-27T12:00:00.5+02:00), stored in UTC; default now.
    #[arg(long, value_name = "TS")]
    created_at: Option<String>,
}

#[derive(Debug, Args)]
struct RevocationArgs {
    /// Reason code (`[a-z][a-z0-9_]*`, ≤ 64 bytes).
    #[arg(long, value_name = "CODE")]
    reason: String,
    /// Actor type (`[a-z][a-z0-9_]*`, ≤ 32 bytes).
    #[arg(long, value_name = "TYPE")]
    actor_type: String,
    /// Actor id (optional).
    #[arg(long, value_name = "A")]
    actor_id: Option<String>,
    /// Revocation time in any RFC 3339 form, stored in UTC; default now.
    #[arg(long, value_name = "TS")]
    at: Option<String>,
}

impl RevocationArgs {
    fn flags(&self) -> RevocationFlags<'_> {
        RevocationFlags {
            reason: &self.reason,
            actor_type: &self.actor_type,
            actor_id: self.actor_id.as_deref(),
            at: self.at.as_deref(),
        }
    }
}

#[derive(Debug, Args)]
struct BenchArgs {
    /// Workload.
    #[arg(long, value_enum)]
    op: bench::BenchOp,
    /// Concurrent workers sharing one store.
    #[arg(long, default_value_t = 1, value_name = "N")]
    concurrency: usize,
    /// Measured seconds (fractions allowed).
    #[arg(long, default_value_t = 5.0, value_name = "S")]
    duration: f64,
    /// Sessions per user loaded for get/count/list/mixed, and held by
    /// each user revoke_all revokes.
    #[arg(long, default_value_t = 5, value_name = "K")]
    sessions_per_user: usize,
    /// Users to spread sessions over.
    #[arg(long, default_value_t = 1000, value_name = "U")]
    users: usize,
    /// contention: workers that create (default N/2); the rest revoke.
    #[arg(long, value_name = "C")]
    creators: Option<usize>,
}

impl BenchArgs {
    fn params(&self) -> Result<bench::BenchParams, CliError> {
        if self.concurrency == 0 || self.concurrency > 4096 {
            return Err(CliError::usage("--concurrency must be within 1..=4096"));
        }
        if !(self.duration.is_finite() && self.duration > 0.0 && self.duration <= 86_400.0) {
            return Err(CliError::usage(
                "--duration must be within (0, 86400] seconds",
            ));
        }
        if self.sessions_per_user == 0 || self.sessions_per_user > 10_000 {
            return Err(CliError::usage(
                "--sessions-per-user must be within 1..=10000",
            ));
        }
        if self.users == 0 || self.users.saturating_mul(self.sessions_per_user) > 10_000_000 {
            return Err(CliError::usage(
                "--users must be at least 1, with users × sessions-per-user ≤ 10000000",
            ));
        }
        let creators = self.creators.unwrap_or(self.concurrency / 2);
        if creators > self.concurrency {
            return Err(CliError::usage("--creators must not exceed --concurrency"));
        }
        Ok(bench::BenchParams {
            op: self.op,
            concurrency: self.concurrency,
            duration: Duration::from_secs_f64(self.duration),
            sessions_per_user: self.sessions_per_user,
            users: self.users,
            creators,
        })
    }
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

/// Where a store command runs.
enum Backend {
    Memory,
    Redis(String),
}

impl GlobalArgs {
    /// The store a command runs on: `--memory`, else the given URL, else
    /// `default_url` (`None`: in memory).
    fn backend(&self, default_url: Option<&str>) -> Backend {
        match (&self.redis_url, default_url) {
            _ if self.memory => Backend::Memory,
            (Some(url), _) => Backend::Redis(url.clone()),
            (None, Some(url)) => Backend::Redis(url.to_owned()),
            (None, None) => Backend::Memory,
        }
    }
}

/// Parses the command line, runs the command, and maps the result to the
/// process exit code (errors on stderr with their kind).
fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let explicit_url = matches.value_source("redis_url") == Some(ValueSource::CommandLine);
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    let result = if cli.global.memory && explicit_url {
        Err(CliError::usage(
            "--memory and --redis-url exclude each other",
        ))
    } else {
        run(cli)
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("authsession: error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn runtime(multi_thread: bool) -> Result<tokio::runtime::Runtime, CliError> {
    let mut builder = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    builder
        .enable_all()
        .build()
        .map_err(|e| CliError::io("starting the async runtime", &e))
}

fn parse_id(text: &str) -> Result<DeviceSessionId, CliError> {
    DeviceSessionId::parse(text).map_err(|e| CliError::from(e).context("device session id"))
}

fn parse_user(text: &str) -> Result<UserId, CliError> {
    UserId::parse(text).map_err(|e| CliError::from(e).context("user id"))
}

fn run(cli: Cli) -> Result<ExitCode, CliError> {
    let global = cli.global;
    let command = match cli.command {
        Command::Decode(args) => {
            match (args.batch, args.id) {
                (true, _) => offline::decode_batch(args.file.as_deref())?,
                (false, Some(id)) => offline::decode_one(&id, args.file.as_deref())?,
                (false, None) => return Err(CliError::usage("decode needs --id or --batch")),
            }
            return Ok(ExitCode::SUCCESS);
        }
        Command::Keys(args) => {
            offline::keys(
                &global.key_space()?,
                args.id.as_deref(),
                args.user.as_deref(),
            )?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Demo => return run_demo(&global),
        Command::Bench(args) => return run_bench(&global, &args),
        // Every value is validated before any connection is made.
        Command::Create(args) => StoreCommand::Create(
            CreateFlags {
                id: &args.id,
                user: &args.user,
                public_key: &args.public_key,
                created_at: args.created_at.as_deref(),
            }
            .parse()?,
        ),
        Command::Get { id } => StoreCommand::Get(parse_id(&id)?),
        Command::List { user } => StoreCommand::List(parse_user(&user)?),
        Command::Count { user } => StoreCommand::Count(parse_user(&user)?),
        Command::Revoke { id, revocation } => StoreCommand::Revoke(RevokeSessionInput {
            device_session_id: parse_id(&id)?,
            revocation: revocation.flags().parse()?,
        }),
        Command::RevokeAll { user, revocation } => {
            StoreCommand::RevokeAll(RevokeUserSessionsInput {
                user_id: parse_user(&user)?,
                revocation: revocation.flags().parse()?,
            })
        }
        Command::Check { repair } => StoreCommand::Check { repair },
    };
    let keys = global.key_space()?;
    let rt = runtime(false)?;
    match global.backend(Some(DEFAULT_REDIS_URL)) {
        Backend::Memory => rt.block_on(store::run(&MemorySessionStore::new(keys), command)),
        Backend::Redis(url) => rt.block_on(async {
            let store = store::connect_redis(&url, keys).await?;
            store::run(&store, command).await
        }),
    }
}

/// A key-space base no one else uses, under the configured base.
fn fresh_key_space(global: &GlobalArgs, what: &str) -> Result<KeySpace, CliError> {
    let base = format!("{}{what}:{}:", global.prefix, clock::unique_suffix());
    KeySpace::with_base(&base).map_err(CliError::from)
}

/// Deletes what a run left under its fresh key space, reporting (not
/// masking) the run's own error first.
async fn purge_after<S: SessionStore + SessionAdmin, T>(
    store: &S,
    result: Result<T, CliError>,
) -> Result<(T, u64), CliError> {
    let purged = store.purge().await;
    let value = result?;
    let deleted = purged.map_err(|e| CliError::from(e).context("purging the bench key space"))?;
    Ok((value, deleted))
}

fn run_demo(global: &GlobalArgs) -> Result<ExitCode, CliError> {
    let rt = runtime(false)?;
    match global.backend(None) {
        Backend::Memory => {
            let store = MemorySessionStore::new(global.key_space()?);
            rt.block_on(demo::run(&store, "memory"))?;
        }
        Backend::Redis(url) => rt.block_on(async {
            let store = store::connect_redis(&url, fresh_key_space(global, "demo")?).await?;
            let result = demo::run(&store, "redis").await;
            let ((), deleted) = purge_after(&store, result).await?;
            #[derive(serde::Serialize)]
            struct Purged {
                keys_deleted: u64,
            }
            demo::step(
                "purge",
                Purged {
                    keys_deleted: deleted,
                },
            )
        })?,
    }
    Ok(ExitCode::SUCCESS)
}

/// First Ctrl-C: the bench stops, reports and purges its keys; a second
/// one exits at once. The handler is registered before this returns, so
/// no early Ctrl-C can kill the process with its keys left behind.
#[cfg(unix)]
fn stop_on_ctrl_c(rt: &tokio::runtime::Runtime) -> Result<(), CliError> {
    use tokio::signal::unix::{signal, SignalKind};
    let _context = rt.enter();
    let mut interrupts = signal(SignalKind::interrupt())
        .map_err(|e| CliError::io("installing the Ctrl-C handler", &e))?;
    rt.spawn(async move {
        if interrupts.recv().await.is_some() {
            eprintln!("authsession: bench: interrupted; stopping and purging its keys");
            bench::interrupt();
            if interrupts.recv().await.is_some() {
                std::process::exit(130);
            }
        }
    });
    Ok(())
}

#[cfg(not(unix))]
fn stop_on_ctrl_c(rt: &tokio::runtime::Runtime) -> Result<(), CliError> {
    rt.spawn(async {
        if tokio::signal::ctrl_c().await.is_ok() {
            bench::interrupt();
        }
    });
    Ok(())
}

fn run_bench(global: &GlobalArgs, args: &BenchArgs) -> Result<ExitCode, CliError> {
    let params = args.params()?;
    let keys = fresh_key_space(global, "bench")?;
    let rt = runtime(true)?;
    stop_on_ctrl_c(&rt)?;
    let report = match global.backend(Some(DEFAULT_REDIS_URL)) {
        Backend::Memory => rt.block_on(async {
            let store = Arc::new(MemorySessionStore::new(keys));
            let result = bench::run(store.clone(), &params, "memory").await;
            purge_after(&*store, result).await
        }),
        Backend::Redis(url) => rt.block_on(async {
            let store = Arc::new(store::connect_redis(&url, keys).await?);
            let result = bench::run(store.clone(), &params, "redis").await;
            purge_after(&*store, result).await
        }),
    }?
    .0;
    output::print(&report)?;
    if bench::interrupted() {
        eprintln!("authsession: bench: interrupted (kind: interrupted)");
        Ok(ExitCode::from(130))
    } else if report.is_clean() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("authsession: bench: errors or broken invariants (kind: bench_failed)");
        Ok(ExitCode::FAILURE)
    }
}

#[cfg(test)]
mod tests {
    use crate::*;

    #[test]
    fn argument_definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn backend_selection() {
        let global = |redis_url: Option<&str>, memory: bool| GlobalArgs {
            redis_url: redis_url.map(str::to_owned),
            prefix: authsession_core::DEFAULT_KEY_BASE.to_owned(),
            memory,
        };
        let url = |b: Backend| match b {
            Backend::Memory => None,
            Backend::Redis(url) => Some(url),
        };
        // Store commands default to the local server, demo to memory.
        assert_eq!(
            url(global(None, false).backend(Some(DEFAULT_REDIS_URL))).as_deref(),
            Some(DEFAULT_REDIS_URL)
        );
        assert_eq!(url(global(None, false).backend(None)), None);
        assert_eq!(
            url(global(Some("redis://h:1"), false).backend(None)).as_deref(),
            Some("redis://h:1")
        );
        assert_eq!(
            url(global(Some("redis://h:1"), true).backend(Some(DEFAULT_REDIS_URL))),
            None
        );
    }
}
