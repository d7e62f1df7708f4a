//! `authsession`: the operator's command line for device sessions.
//! Every command prints JSON on stdout; any error exits non-zero with its
//! message and stable kind on stderr.
//!
//! This file holds the argument definitions and the dispatch. Values
//! arrive as text and are parsed by core's validating constructors here,
//! so a bad value fails with core's stable kind.

mod bench;
mod clock;
mod cluster;
mod demo;
mod duration;
mod error;
mod offline;
mod output;
mod progress;
mod reference;
mod store;
mod timestamp;
mod verbose;
mod watch;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use authsession_core::op::{
    BatchSize, OnLimit, PageCursor, PageLimit, PageRequest, Policy, SessionLimit, StatusFilter,
};
use authsession_core::{
    DeviceSessionId, KeySpace, Layout, RevokeSessionInput, RevokeUserSessionsInput, UserId,
};
use authsession_driver::{SessionAdmin, SessionStore};
use clap::parser::ValueSource;
use clap::{
    ArgAction, Args, CommandFactory as _, FromArgMatches as _, Parser, Subcommand, ValueEnum,
};

use error::CliError;
use store::{CreateFlags, MigrateTarget, RevocationFlags, StoreCommand, StoreOptions};

/// Default server for the commands that talk to Redis (like redis-cli).
const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// Inspect, revoke, validate and check authsession device sessions.
#[derive(Debug, Parser)]
#[command(
    name = "authsession",
    version,
    max_term_width = 100,
    after_help = "Every command prints JSON on stdout. On any error it exits 1 and prints one \
                  line on stderr, `authsession: error: MESSAGE (kind: KIND)` (usage errors \
                  exit 2). A closed stdout (`| head -1`) ends the command quietly with status \
                  141. check, sweep and migrate print a summary line on stderr (and, on a \
                  terminal, a live count)."
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
    /// Redis Cluster seed node URL (repeatable; the environment variable
    /// takes a comma-separated list): use the cluster store, in the tagged
    /// layout. Excludes --redis-url and --memory.
    #[arg(
        long = "cluster-node",
        env = "AUTHSESSION_CLUSTER_NODES",
        value_delimiter = ',',
        global = true,
        value_name = "URL"
    )]
    cluster_nodes: Vec<String>,
    /// Base of the key prefixes: `{BASE}session:`, `{BASE}user_sessions:`,
    /// `{BASE}user_active_sessions:` (plus `{BASE}user_revoked_sessions:`
    /// and, in the tagged layout, `{BASE}session_owner:`).
    #[arg(
        long,
        env = "AUTHSESSION_PREFIX",
        default_value = authsession_core::DEFAULT_KEY_BASE,
        global = true,
        value_name = "BASE"
    )]
    prefix: String,
    /// Key layout: `reference` (the Go adapter's; the default on a
    /// standalone server) or `tagged` (one hash slot per user; the only
    /// one on a cluster).
    #[arg(long, env = "AUTHSESSION_LAYOUT", value_enum, global = true)]
    layout: Option<LayoutArg>,
    /// Use a fresh in-memory store (same semantics as Redis; nothing
    /// outlives the command) instead of Redis.
    #[arg(long, global = true)]
    memory: bool,
    /// Remove revoked sessions this long after their revocation (`30d`,
    /// `12h`, `15m`, `1s`, `1h30m`, …); default: keep them forever. After
    /// turning it on for an existing store, run `sweep` once: sessions
    /// revoked before are removed by it, not by the users' operations.
    #[arg(
        long,
        env = "AUTHSESSION_REVOKED_RETENTION",
        global = true,
        value_name = "DURATION"
    )]
    revoked_retention: Option<String>,
    /// Tagged layout: `check --repair` and `sweep` remove an owner key
    /// without its record only if it still is this long after they first
    /// saw it (a create writes its owner key just before its record); they
    /// wait that long when they saw one. Default 1m.
    #[arg(
        long,
        env = "AUTHSESSION_OWNER_GRACE",
        global = true,
        value_name = "DURATION"
    )]
    owner_grace: Option<String>,
    /// At most N active sessions per user, enforced atomically by create;
    /// default: no limit.
    #[arg(
        long,
        env = "AUTHSESSION_MAX_ACTIVE_SESSIONS",
        global = true,
        value_name = "N"
    )]
    max_active_sessions: Option<u32>,
    /// What create does at the limit: `reject` (kind `session_limit`,
    /// nothing written) or `revoke-oldest` (the oldest active sessions are
    /// revoked in the same atomic step, reason `session_limit`, actor type
    /// `system`).
    #[arg(
        long,
        env = "AUTHSESSION_ON_LIMIT",
        value_enum,
        default_value_t = OnLimitArg::Reject,
        global = true
    )]
    on_limit: OnLimitArg,
    /// Sessions per atomic batch of revoke-all, check, sweep and migrate.
    #[arg(
        long,
        env = "AUTHSESSION_BATCH_SIZE",
        global = true,
        value_name = "N",
        // From the core's constants, so the text cannot drift from them.
        help = format!(
            "Sessions per atomic batch of revoke-all, check, sweep and migrate (1..={}; default {})",
            BatchSize::MAX,
            BatchSize::default().get()
        )
    )]
    batch_size: Option<usize>,
    /// Acknowledge a write only once `WAIT` confirms N replicas have it
    /// (default 0: don't wait).
    #[arg(
        long,
        env = "AUTHSESSION_WAIT_REPLICAS",
        default_value_t = 0,
        global = true,
        value_name = "N"
    )]
    wait_replicas: u32,
    /// Keep sessions read by `get` in this process (a near cache), each
    /// dropped as soon as the server says it changed, whoever changed it
    /// (Redis client-side caching; needs RESP3 and CLIENT TRACKING: Redis
    /// 6.2+ or Valkey, no proxy). Fails at connect where the server cannot.
    #[arg(long, env = "AUTHSESSION_CACHE", global = true)]
    cache: bool,
    /// With --cache: at most N sessions kept (least recently used first
    /// out; default 10000).
    #[arg(long, global = true, value_name = "N")]
    cache_max_entries: Option<usize>,
    /// With --cache: never use a kept session older than this (`60s`,
    /// `5m`, …; default 60s), even if no change was announced.
    #[arg(long, global = true, value_name = "DURATION")]
    cache_max_staleness: Option<String>,
    /// Print each store operation's span on stderr when it ends (name,
    /// db.* fields, attempts, round trips, batches, outcome); -vv adds
    /// retries and confirms. `RUST_LOG` (a tracing filter) overrides it.
    #[arg(short, long, action = ArgAction::Count, global = true)]
    verbose: u8,
    /// Which of the above were given (on the command line or in the
    /// environment), not defaulted.
    #[arg(skip)]
    given: Given,
}

/// Flags whose mere presence matters.
#[derive(Debug, Clone, Copy, Default)]
struct Given {
    /// `--redis-url` on the command line (the environment's yields).
    redis_url_flag: bool,
    /// `--cluster-node` on the command line.
    cluster_flag: bool,
    /// `--on-limit` set at all.
    on_limit: bool,
}

/// `--layout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LayoutArg {
    Reference,
    Tagged,
}

impl From<LayoutArg> for Layout {
    fn from(layout: LayoutArg) -> Self {
        match layout {
            LayoutArg::Reference => Layout::Reference,
            LayoutArg::Tagged => Layout::Tagged,
        }
    }
}

/// `--on-limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OnLimitArg {
    Reject,
    RevokeOldest,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate a raw stored record offline with the strict decoder.
    #[command(long_about = format!(
        "Validate a raw stored record offline with the strict decoder. A record (and a --batch \
         line) may be at most {} bytes; longer input is `invalid_input` (a valid record is \
         under 2 KiB).",
        offline::MAX_INPUT
    ))]
    Decode(DecodeArgs),
    /// Print the keys derived for a device session id and/or a user.
    Keys(KeysArgs),
    /// Create an active session (fails with `conflict` if the id exists,
    /// `session_limit` at the limit with `--on-limit reject`). Prints the
    /// session; with `--on-limit revoke-oldest` (and a limit) always
    /// `{"session":…,"evicted":[…]}`, evicted = the sessions revoked to make
    /// room, oldest first (usually none).
    Create(CreateArgs),
    /// Print a session.
    Get {
        /// Device session id.
        id: String,
        /// Only if it is this user's session (another user's is
        /// `not_found`); one round trip in every layout.
        #[arg(long)]
        user: Option<String>,
    },
    /// Print every session of a user, newest first. With --limit, --cursor
    /// or --active prints one page instead:
    /// `{"sessions":[…],"next_cursor":"…"|null}`.
    List {
        /// User id.
        user: String,
        /// Sessions per page (1..=1000; default 50).
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
        /// Continue after the page that returned this `next_cursor` (same
        /// user and --active as that page).
        #[arg(long, value_name = "C")]
        cursor: Option<String>,
        /// Active sessions only.
        #[arg(long)]
        active: bool,
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
    /// Revoke every session of a user active when the command starts,
    /// whatever its creation time (one dated ahead is revoked at its own
    /// creation time), in atomic batches, also those its active index lost;
    /// prints the outcome (`revoked`, `no_active_sessions` or
    /// `partially_revoked`) with every revoked session, the index drift
    /// repaired and what could not be revoked. Exits non-zero with kind
    /// `partially_revoked` after printing when something could not be
    /// revoked (`check --repair` then makes the user fully revocable).
    /// Retries dropped connections and timeouts while it makes progress;
    /// progress on stderr.
    RevokeAll {
        /// User id.
        user: String,
        #[command(flatten)]
        revocation: RevokeAllArgs,
        /// Print counts instead of every session (constant memory at any
        /// number of sessions).
        #[arg(long)]
        count: bool,
        /// Give up after this many failed attempts in a row with no batch
        /// applied in between.
        #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
        max_failures: u32,
        /// Give up once the whole command has run this long (e.g. 10m).
        #[arg(long, value_name = "DURATION")]
        deadline: Option<String>,
    },
    /// Scan the key space: strict-decode every record and check every
    /// index against them. Exits non-zero if problems remain.
    Check {
        /// Fix index drift (missing, misscored or stray index entries —
        /// members whose record is missing, corrupt or another user's
        /// included) and owner keys (missing ones set, dangling ones
        /// removed after --owner-grace); corrupt records and keys of the
        /// wrong type are reported, never changed. Exits non-zero when
        /// problems remain.
        #[arg(long)]
        repair: bool,
    },
    /// Remove every revoked session past --revoked-retention, in bounded
    /// batches (every primary of a cluster), including those revoked while
    /// no retention was set or by the Go adapter. Prints
    /// `{"users":…,"sessions_removed":…,"batches":…,"owner_keys_removed":…}`.
    /// In the tagged layout it also removes owner keys without their record
    /// (after --owner-grace).
    Sweep,
    /// Print each session's state as a JSON line
    /// `{"id","status":"active"|"revoked"|"not_found","session"}`, then a
    /// line per change, as the server announces changes (client-side
    /// caching invalidations; nothing is polled). Exits 0 once every
    /// session is revoked or gone; with --timeout, exits 1 (kind
    /// `timeout`) when that takes longer. Needs a Redis server that can
    /// track keys (RESP3).
    Watch {
        /// Device session ids.
        #[arg(required = true, value_name = "ID")]
        ids: Vec<String>,
        /// Give up after this long (`30s`, `5m`, …).
        #[arg(long, value_name = "DURATION")]
        timeout: Option<String>,
    },
    /// Copy the whole key space (the global flags name the source) into
    /// another server, prefix or layout in bounded batches, idempotently,
    /// then verify every session on both sides. Prints
    /// `{"users":…,"sessions":…,"copied":…,"already_present":…,"differences":[{"user_id","id","kind"}]}`
    /// and exits non-zero when differences is not empty.
    Migrate(MigrateArgs),
    /// Walk through a full session lifecycle (in memory unless a Redis URL
    /// is given; on Redis under a fresh prefix, deleted afterwards).
    Demo,
    /// Load generator: runs one workload for a fixed time under a fresh
    /// prefix (deleted afterwards) and prints one JSON line of throughput,
    /// errors and latency percentiles. The `*_reference` workloads run the
    /// Go adapter's exact command sequences (WATCH/MULTI/EXEC, one GET per
    /// session) re-implemented command for command with redis-rs, each
    /// worker on a connection of its own: a faithful emulation of the Go
    /// adapter as a baseline in the same run, not the Go binary.
    Bench(BenchArgs),
}

#[derive(Debug, Args)]
struct MigrateArgs {
    /// Target: a standalone Redis server.
    #[arg(
        long,
        value_name = "URL",
        required_unless_present = "to_cluster_node",
        conflicts_with = "to_cluster_node"
    )]
    to_url: Option<String>,
    /// Target: a Redis Cluster seed node (repeatable).
    #[arg(long, value_name = "URL")]
    to_cluster_node: Vec<String>,
    /// Target layout; default: tagged on a cluster, else the source's.
    #[arg(long, value_enum)]
    to_layout: Option<LayoutArg>,
    /// Target prefix base; default: the source's.
    #[arg(long, value_name = "BASE")]
    to_prefix: Option<String>,
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

/// `revoke-all`'s revocation flags: as `revoke`'s, with its own words for
/// `--at`.
#[derive(Debug, Args)]
struct RevokeAllArgs {
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
    /// Sessions created after it are revoked too, at their own creation
    /// time.
    #[arg(long, value_name = "TS")]
    at: Option<String>,
}

impl RevokeAllArgs {
    fn flags(&self) -> RevocationFlags<'_> {
        RevocationFlags {
            reason: &self.reason,
            actor_type: &self.actor_type,
            actor_id: self.actor_id.as_deref(),
            at: self.at.as_deref(),
        }
    }
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
    /// Concurrent workers (sharing one store; each `*_reference` worker has
    /// a connection of its own).
    #[arg(long, default_value_t = 1, value_name = "N")]
    concurrency: usize,
    /// Measured seconds (fractions allowed).
    #[arg(long, default_value_t = 5.0, value_name = "S")]
    duration: f64,
    /// Sessions per user loaded for get/count/list/mixed/churn (churn: at
    /// most --max-active-sessions), and held by each user revoke_all
    /// revokes.
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
    fn params(&self, options: &StoreOptions) -> Result<bench::BenchParams, CliError> {
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
            session_limit: options.policy.session_limit.map(|l| l.max_active()),
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
    #[arg(long, long_help = format!(
        "Read JSON lines `{{\"id\":…,\"payload_b64\":…}}` and answer one JSON line per input \
         line; a line over {} bytes is answered `invalid_input` and the batch goes on.",
        offline::MAX_INPUT
    ))]
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

/// Where a store command runs.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Backend {
    Memory,
    Redis(String),
    Cluster(Vec<String>),
}

impl GlobalArgs {
    /// The store a command runs on: `--memory`, else the cluster nodes or
    /// the URL (an explicit flag beats the environment), else
    /// `default_url` (`None`: in memory).
    fn backend(&self, default_url: Option<&str>) -> Backend {
        let cluster = !self.cluster_nodes.is_empty()
            && (self.given.cluster_flag || !self.given.redis_url_flag);
        match (&self.redis_url, default_url) {
            _ if self.memory => Backend::Memory,
            _ if cluster => Backend::Cluster(self.cluster_nodes.clone()),
            (Some(url), _) => Backend::Redis(url.clone()),
            (None, Some(url)) => Backend::Redis(url.to_owned()),
            (None, None) => Backend::Memory,
        }
    }

    /// The layout on `backend`: `--layout`, else tagged on a cluster and
    /// the reference layout elsewhere.
    fn layout(&self, backend: &Backend) -> Result<Layout, CliError> {
        match (self.layout, backend) {
            (Some(LayoutArg::Reference), Backend::Cluster(_)) => Err(CliError::usage(
                "--layout reference: a cluster needs the tagged layout",
            )),
            (Some(layout), _) => Ok(layout.into()),
            (None, Backend::Cluster(_)) => Ok(Layout::Tagged),
            (None, _) => Ok(Layout::Reference),
        }
    }

    /// Retention, session limit and batch size from the flags.
    fn policy(&self) -> Result<Policy, CliError> {
        let revoked_retention = self
            .revoked_retention
            .as_deref()
            .map(|text| duration::parse(text, "--revoked-retention"))
            .transpose()?;
        let on_limit = match self.on_limit {
            OnLimitArg::Reject => OnLimit::Reject,
            OnLimitArg::RevokeOldest => OnLimit::RevokeOldest,
        };
        let session_limit = match self.max_active_sessions {
            None if self.given.on_limit => {
                return Err(CliError::usage("--on-limit needs --max-active-sessions"))
            }
            None => None,
            Some(n) => Some(SessionLimit::new(n, on_limit).ok_or_else(|| {
                CliError::new("out_of_range", "--max-active-sessions must be at least 1")
            })?),
        };
        let batch_size = match self.batch_size {
            None => BatchSize::default(),
            Some(n) => BatchSize::new(n).ok_or_else(|| {
                CliError::new(
                    "out_of_range",
                    format!("--batch-size must be within 1..={}", BatchSize::MAX),
                )
            })?,
        };
        let owner_grace = self
            .owner_grace
            .as_deref()
            .map(|text| duration::parse(text, "--owner-grace"))
            .transpose()?
            .unwrap_or(Policy::DEFAULT_OWNER_GRACE);
        Ok(Policy {
            revoked_retention,
            session_limit,
            batch_size,
            owner_grace,
        })
    }

    /// Everything but the location of a store on `backend`, under `base`.
    fn options_with_base(&self, backend: &Backend, base: &str) -> Result<StoreOptions, CliError> {
        let keys = KeySpace::with_base_and_layout(base, self.layout(backend)?)
            .map_err(|e| CliError::from(e).context("--prefix"))?;
        Ok(StoreOptions {
            keys,
            policy: self.policy()?,
            wait_replicas: self.wait_replicas,
            cache: self.cache_config()?,
        })
    }

    /// `--cache` and its bounds.
    fn cache_config(&self) -> Result<Option<authsession_driver::CacheConfig>, CliError> {
        if !self.cache {
            if self.cache_max_entries.is_some() || self.cache_max_staleness.is_some() {
                return Err(CliError::usage(
                    "--cache-max-entries and --cache-max-staleness need --cache",
                ));
            }
            return Ok(None);
        }
        let mut config = authsession_driver::CacheConfig::default();
        if let Some(n) = self.cache_max_entries {
            if n == 0 {
                return Err(CliError::new(
                    "out_of_range",
                    "--cache-max-entries must be at least 1",
                ));
            }
            config.max_entries = n;
        }
        if let Some(text) = &self.cache_max_staleness {
            config.max_staleness = duration::parse(text, "--cache-max-staleness")?;
        }
        Ok(Some(config))
    }

    /// [`GlobalArgs::options_with_base`] under `--prefix`.
    fn options(&self, backend: &Backend) -> Result<StoreOptions, CliError> {
        self.options_with_base(backend, &self.prefix)
    }

    /// Whether `create` prints `{"session":…,"evicted":[…]}`: whenever the
    /// limit may evict, so the shape depends on the flags, never the data.
    fn create_reports_evictions(&self) -> bool {
        self.max_active_sessions.is_some() && self.on_limit == OnLimitArg::RevokeOldest
    }
}

/// Parses the command line, runs the command, and maps the result to the
/// process exit code (errors on stderr with their kind).
fn main() -> ExitCode {
    let matches = match Cli::command().try_get_matches() {
        Ok(matches) => matches,
        Err(error) => return clap_exit(&error),
    };
    let from_command_line = |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);
    let given = Given {
        redis_url_flag: from_command_line("redis_url"),
        cluster_flag: from_command_line("cluster_nodes"),
        on_limit: matches
            .value_source("on_limit")
            .is_some_and(|s| s != ValueSource::DefaultValue),
    };
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
        run(cli)
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

/// `list`'s page request, when --limit, --cursor or --active asks for one.
fn page_request(
    limit: Option<usize>,
    cursor: Option<&str>,
    active: bool,
) -> Result<Option<PageRequest>, CliError> {
    if limit.is_none() && cursor.is_none() && !active {
        return Ok(None);
    }
    let limit = match limit {
        Some(n) => PageLimit::new(n).map_err(|e| CliError::from(e).context("--limit"))?,
        None => PageLimit::default(),
    };
    let cursor = cursor
        .map(|text| {
            PageCursor::parse(text)
                .map_err(|e| CliError::new(e.kind(), e.to_string()).context("--cursor"))
        })
        .transpose()?;
    Ok(Some(PageRequest {
        limit,
        cursor,
        status: if active {
            StatusFilter::Active
        } else {
            StatusFilter::All
        },
    }))
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
            let backend = global.backend(None);
            offline::keys(
                &global.options(&backend)?.keys,
                args.id.as_deref(),
                args.user.as_deref(),
            )?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Demo => return run_demo(&global),
        Command::Bench(args) => return run_bench(&global, &args),
        Command::Migrate(args) => return run_migrate(&global, &args),
        Command::Watch { ids, timeout } => return run_watch(&global, &ids, timeout.as_deref()),
        // Every value is validated before any connection is made.
        Command::Create(args) => StoreCommand::Create {
            session: CreateFlags {
                id: &args.id,
                user: &args.user,
                public_key: &args.public_key,
                created_at: args.created_at.as_deref(),
            }
            .parse()?,
            with_evicted: global.create_reports_evictions(),
        },
        Command::Get { id, user } => StoreCommand::Get {
            id: parse_id(&id)?,
            user: user.as_deref().map(parse_user).transpose()?,
        },
        Command::List {
            user,
            limit,
            cursor,
            active,
        } => {
            let user = parse_user(&user)?;
            match page_request(limit, cursor.as_deref(), active)? {
                Some(request) => StoreCommand::ListPage(user, request),
                None => StoreCommand::List(user),
            }
        }
        Command::Count { user } => StoreCommand::Count(parse_user(&user)?),
        Command::Revoke { id, revocation } => StoreCommand::Revoke {
            input: RevokeSessionInput {
                device_session_id: parse_id(&id)?,
                revocation: revocation.flags().parse()?,
            },
            now: revocation.at.is_none(),
        },
        Command::RevokeAll {
            user,
            revocation,
            count,
            max_failures,
            deadline,
        } => StoreCommand::RevokeAll {
            input: RevokeUserSessionsInput {
                user_id: parse_user(&user)?,
                revocation: revocation.flags().parse()?,
            },
            count_only: count,
            max_failures,
            deadline: deadline
                .map(|text| duration::parse(&text, "--deadline"))
                .transpose()?,
        },
        Command::Check { repair } => StoreCommand::Check { repair },
        Command::Sweep => StoreCommand::Sweep,
    };
    let backend = global.backend(Some(DEFAULT_REDIS_URL));
    let options = global.options(&backend)?;
    let rt = runtime(false)?;
    rt.block_on(async {
        match &backend {
            Backend::Memory => store::run(&store::memory_store(&options)?, command).await,
            Backend::Redis(url) => {
                store::run(&store::connect_redis(url, &options).await?, command).await
            }
            Backend::Cluster(nodes) => {
                store::run(&cluster::connect_cluster(nodes, &options).await?, command).await
            }
        }
    })
}

fn run_watch(
    global: &GlobalArgs,
    ids: &[String],
    timeout: Option<&str>,
) -> Result<ExitCode, CliError> {
    let ids = ids
        .iter()
        .map(|id| parse_id(id))
        .collect::<Result<Vec<_>, _>>()?;
    let timeout = timeout
        .map(|text| duration::parse(text, "--timeout"))
        .transpose()?;
    let backend = global.backend(Some(DEFAULT_REDIS_URL));
    let mut options = global.options(&backend)?;
    // Watching is driven by the cache's invalidations.
    options.cache = Some(options.cache.unwrap_or_default());
    let rt = runtime(false)?;
    rt.block_on(async {
        match &backend {
            Backend::Memory => Err(CliError::usage("watch needs a Redis server (not --memory)")),
            Backend::Redis(url) => {
                let store = store::connect_redis(url, &options).await?;
                watch::watch(&store, &ids, timeout).await
            }
            Backend::Cluster(nodes) => {
                let store = cluster::connect_cluster(nodes, &options).await?;
                watch::watch(&store, &ids, timeout).await
            }
        }
    })
}

fn run_migrate(global: &GlobalArgs, args: &MigrateArgs) -> Result<ExitCode, CliError> {
    let source = global.backend(Some(DEFAULT_REDIS_URL));
    let source_options = global.options(&source)?;
    let (target, target_backend) = match &args.to_url {
        Some(url) => (MigrateTarget::Url(url.clone()), Backend::Redis(url.clone())),
        None => (
            MigrateTarget::Cluster(args.to_cluster_node.clone()),
            Backend::Cluster(args.to_cluster_node.clone()),
        ),
    };
    let base = args.to_prefix.as_deref().unwrap_or(&global.prefix);
    if source == target_backend && base == global.prefix {
        return Err(CliError::usage(
            "migrate: the target is the source; name another server, cluster or --to-prefix",
        ));
    }
    let layout = match (args.to_layout, &target) {
        (Some(LayoutArg::Reference), MigrateTarget::Cluster(_)) => {
            return Err(CliError::usage(
                "--to-layout reference: a cluster needs the tagged layout",
            ))
        }
        (Some(layout), _) => layout.into(),
        (None, MigrateTarget::Cluster(_)) => Layout::Tagged,
        (None, MigrateTarget::Url(_)) => source_options.keys.layout(),
    };
    let target_options = StoreOptions {
        keys: KeySpace::with_base_and_layout(base, layout)
            .map_err(|e| CliError::from(e).context("--to-prefix"))?,
        ..source_options.clone()
    };
    let rt = runtime(false)?;
    rt.block_on(async {
        match &source {
            Backend::Memory => {
                let store = store::memory_store(&source_options)?;
                store::migrate(&store, &target, &target_options).await
            }
            Backend::Redis(url) => {
                let store = store::connect_redis(url, &source_options).await?;
                store::migrate(&store, &target, &target_options).await
            }
            Backend::Cluster(nodes) => {
                let store = cluster::connect_cluster(nodes, &source_options).await?;
                store::migrate(&store, &target, &target_options).await
            }
        }
    })
}

/// A key-space base no one else uses, under the configured base.
fn fresh_options(
    global: &GlobalArgs,
    backend: &Backend,
    what: &str,
) -> Result<StoreOptions, CliError> {
    let base = format!("{}{what}:{}:", global.prefix, clock::unique_suffix());
    global.options_with_base(backend, &base)
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

/// The demo on a store whose key space is fresh (deleted afterwards).
async fn demo_and_purge<S: SessionStore + SessionAdmin>(
    store: &S,
    backend: &str,
) -> Result<(), CliError> {
    let result = demo::run(store, backend).await;
    let ((), deleted) = purge_after(store, result).await?;
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
}

fn run_demo(global: &GlobalArgs) -> Result<ExitCode, CliError> {
    let rt = runtime(false)?;
    let backend = global.backend(None);
    rt.block_on(async {
        match &backend {
            Backend::Memory => {
                let store = store::memory_store(&global.options(&backend)?)?;
                demo::run(&store, "memory").await
            }
            Backend::Redis(url) => {
                let options = fresh_options(global, &backend, "demo")?;
                demo_and_purge(&store::connect_redis(url, &options).await?, "redis").await
            }
            Backend::Cluster(nodes) => {
                let options = fresh_options(global, &backend, "demo")?;
                let store = cluster::connect_cluster(nodes, &options).await?;
                demo_and_purge(&store, "cluster").await
            }
        }
    })?;
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
            error::stderr_line("bench: interrupted; stopping and purging its keys");
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

/// Runs the bench on `store` and purges its key space afterwards.
async fn bench_and_purge<S: SessionStore + SessionAdmin + 'static>(
    store: S,
    params: &bench::BenchParams,
    backend: &str,
    server: Option<&bench::Server>,
) -> Result<bench::BenchReport, CliError> {
    let store = Arc::new(store);
    let result = bench::run(store.clone(), params, backend, server).await;
    Ok(purge_after(&*store, result).await?.0)
}

fn run_bench(global: &GlobalArgs, args: &BenchArgs) -> Result<ExitCode, CliError> {
    let backend = global.backend(Some(DEFAULT_REDIS_URL));
    let options = fresh_options(global, &backend, "bench")?;
    let params = args.params(&options)?;
    if params.op.is_reference() {
        if !matches!(backend, Backend::Redis(_)) {
            return Err(CliError::usage(format!(
                "bench --op {}: the Go adapter's command sequences need a standalone Redis server",
                params.op.name()
            )));
        }
        if options.keys.layout() != Layout::Reference {
            return Err(CliError::usage(format!(
                "bench --op {}: the Go adapter only knows the reference layout",
                params.op.name()
            )));
        }
    }
    let rt = runtime(true)?;
    stop_on_ctrl_c(&rt)?;
    let report = rt.block_on(async {
        match &backend {
            Backend::Memory => {
                bench_and_purge(store::memory_store(&options)?, &params, "memory", None).await
            }
            Backend::Redis(url) => {
                // The store validates the URL (without echoing it) first.
                let store = store::connect_redis(url, &options).await?;
                let server = bench::Server::open(url)?;
                let cache = store.clone();
                let mut report = bench_and_purge(store, &params, "redis", Some(&server)).await?;
                report.cache = cache.cache_stats();
                Ok(report)
            }
            Backend::Cluster(nodes) => {
                let store = cluster::connect_cluster(nodes, &options).await?;
                let cache = store.clone();
                let mut report = bench_and_purge(store, &params, "cluster", None).await?;
                report.cache = cache.cache_stats();
                Ok(report)
            }
        }
    })?;
    output::print(&report)?;
    if bench::interrupted() {
        error::report("bench", "interrupted", "interrupted");
        Ok(ExitCode::from(130))
    } else if report.is_clean() {
        Ok(ExitCode::SUCCESS)
    } else {
        error::report("bench", "errors or broken invariants", "bench_failed");
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

    fn global(args: &[&str]) -> GlobalArgs {
        let mut all = vec!["authsession"];
        all.extend_from_slice(args);
        all.push("demo");
        let matches = Cli::command().try_get_matches_from(all).unwrap();
        let mut cli = Cli::from_arg_matches(&matches).unwrap();
        cli.global.given = Given {
            redis_url_flag: matches.value_source("redis_url") == Some(ValueSource::CommandLine),
            cluster_flag: matches.value_source("cluster_nodes") == Some(ValueSource::CommandLine),
            on_limit: matches
                .value_source("on_limit")
                .is_some_and(|s| s != ValueSource::DefaultValue),
        };
        cli.global
    }

    #[test]
    fn help_states_the_limits_from_their_constants() {
        let help = |args: &[&str]| {
            let mut all = vec!["authsession"];
            all.extend_from_slice(args);
            let error = Cli::command().try_get_matches_from(all).unwrap_err();
            assert_eq!(error.kind(), clap::error::ErrorKind::DisplayHelp);
            error.to_string()
        };
        let batch = format!(
            "(1..={}; default {})",
            BatchSize::MAX,
            BatchSize::default().get()
        );
        assert!(help(&["check", "-h"]).contains(&batch), "{batch}");
        let decode = help(&["decode", "--help"]);
        let cap = format!("at most {} bytes", offline::MAX_INPUT);
        assert!(decode.contains(&cap), "{decode}");
        let line = format!("a line over {} bytes", offline::MAX_INPUT);
        assert!(decode.contains(&line), "{decode}");
    }

    #[test]
    fn clap_errors_become_one_usage_line() {
        let message = |args: &[&str]| {
            let mut all = vec!["authsession"];
            all.extend_from_slice(args);
            let error = Cli::command().try_get_matches_from(all).unwrap_err();
            clap_message(&error.to_string())
        };
        assert_eq!(
            message(&["get"]),
            "the following required arguments were not provided: <ID>; see --help"
        );
        assert_eq!(
            message(&["--bogus", "get", "x"]),
            "unexpected argument '--bogus' found; see --help"
        );
    }

    #[test]
    fn backend_selection() {
        let redis = |url: &str| Backend::Redis(url.to_owned());
        // Store commands default to the local server, demo to memory.
        assert_eq!(
            global(&[]).backend(Some(DEFAULT_REDIS_URL)),
            redis(DEFAULT_REDIS_URL)
        );
        assert_eq!(global(&[]).backend(None), Backend::Memory);
        let url = ["--redis-url", "redis://h:1"];
        assert_eq!(global(&url).backend(None), redis("redis://h:1"));
        assert_eq!(
            global(&["--redis-url", "redis://h:1", "--memory"]).backend(Some(DEFAULT_REDIS_URL)),
            Backend::Memory
        );
        let nodes = [
            "--cluster-node",
            "redis://a:1",
            "--cluster-node",
            "redis://b:2",
        ];
        let cluster = Backend::Cluster(vec!["redis://a:1".into(), "redis://b:2".into()]);
        assert_eq!(global(&nodes).backend(None), cluster);
        assert_eq!(
            global(&nodes).layout(&cluster).unwrap(),
            Layout::Tagged,
            "a cluster defaults to the tagged layout"
        );
        assert_eq!(
            global(&[]).layout(&Backend::Memory).unwrap(),
            Layout::Reference
        );
        assert_eq!(
            global(&["--layout", "tagged"])
                .layout(&Backend::Memory)
                .unwrap(),
            Layout::Tagged
        );
        assert_eq!(
            global(&["--layout", "reference"])
                .layout(&cluster)
                .unwrap_err()
                .kind(),
            "usage"
        );
    }

    #[test]
    fn cache_flags() {
        assert_eq!(global(&[]).cache_config().unwrap(), None);
        let config = global(&[
            "--cache",
            "--cache-max-entries",
            "50",
            "--cache-max-staleness",
            "5s",
        ])
        .cache_config()
        .unwrap()
        .unwrap();
        assert_eq!(config.max_entries, 50);
        assert_eq!(config.max_staleness, Duration::from_secs(5));
        assert_eq!(
            global(&["--cache"]).cache_config().unwrap(),
            Some(authsession_driver::CacheConfig::default())
        );
        let kind = |args: &[&str]| global(args).cache_config().unwrap_err().kind().to_owned();
        assert_eq!(kind(&["--cache-max-entries", "5"]), "usage");
        assert_eq!(
            kind(&["--cache", "--cache-max-entries", "0"]),
            "out_of_range"
        );
        assert_eq!(
            kind(&["--cache", "--cache-max-staleness", "soon"]),
            "invalid_duration"
        );
    }

    #[test]
    fn policy_flags() {
        let policy = global(&[
            "--revoked-retention",
            "1h30m",
            "--max-active-sessions",
            "3",
            "--on-limit",
            "revoke-oldest",
            "--batch-size",
            "7",
        ])
        .policy()
        .unwrap();
        assert_eq!(policy.revoked_retention, Some(Duration::from_secs(5400)));
        let limit = policy.session_limit.unwrap();
        assert_eq!(limit.max_active(), 3);
        assert_eq!(limit.on_limit, OnLimit::RevokeOldest);
        assert_eq!(policy.batch_size.get(), 7);
        assert_eq!(global(&[]).policy().unwrap(), Policy::default());
        assert_eq!(
            global(&["--max-active-sessions", "2"])
                .policy()
                .unwrap()
                .session_limit
                .unwrap()
                .on_limit,
            OnLimit::Reject
        );
        let kind = |args: &[&str]| global(args).policy().unwrap_err().kind().to_owned();
        assert_eq!(kind(&["--revoked-retention", "1y"]), "invalid_duration");
        assert_eq!(kind(&["--max-active-sessions", "0"]), "out_of_range");
        assert_eq!(kind(&["--batch-size", "0"]), "out_of_range");
        assert_eq!(kind(&["--batch-size", "1001"]), "out_of_range");
        assert_eq!(kind(&["--on-limit", "reject"]), "usage");
    }
}
