//! The command line: the global flags, the commands and their arguments
//! as clap parses them (text; the values are validated when a command is
//! built, by core's constructors). What the global flags select and
//! configure is in `options`.

mod options;
#[cfg(test)]
mod tests;

use std::path::PathBuf;

use authsession_core::op::BatchSize;
use authsession_core::Layout;
use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Args, Parser, Subcommand, ValueEnum};

use crate::offline;
use crate::store::RevocationFlags;

/// Default server for the commands that talk to Redis (like redis-cli).
pub(crate) const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

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
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: GlobalArgs,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Args)]
pub(crate) struct GlobalArgs {
    /// Redis server URL (`redis://` or `rediss://`); store commands default
    /// to redis://127.0.0.1:6379, `demo` to the in-memory store.
    #[arg(long, env = "AUTHSESSION_REDIS_URL", global = true, value_name = "URL")]
    pub(crate) redis_url: Option<String>,
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
    pub(crate) cluster_nodes: Vec<String>,
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
    pub(crate) prefix: String,
    /// Key layout: `reference` (the Go adapter's; the default on a
    /// standalone server) or `tagged` (one hash slot per user; the only
    /// one on a cluster).
    #[arg(long, env = "AUTHSESSION_LAYOUT", value_enum, global = true)]
    pub(crate) layout: Option<LayoutArg>,
    /// Use a fresh in-memory store (same semantics as Redis; nothing
    /// outlives the command) instead of Redis.
    #[arg(long, global = true)]
    pub(crate) memory: bool,
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
    pub(crate) revoked_retention: Option<String>,
    /// Tagged layout: an owner key without its record may be a create in
    /// flight (a create writes it just before the record), so `check` and
    /// `sweep` look at one again this long after their walk (waiting for
    /// it when they saw any); only one still without its record is a
    /// problem, which `check --repair` and `sweep` remove. Default 1m.
    #[arg(
        long,
        env = "AUTHSESSION_OWNER_GRACE",
        global = true,
        value_name = "DURATION"
    )]
    pub(crate) owner_grace: Option<String>,
    /// At most N active sessions per user, enforced atomically by create;
    /// default: no limit.
    #[arg(
        long,
        env = "AUTHSESSION_MAX_ACTIVE_SESSIONS",
        global = true,
        value_name = "N"
    )]
    pub(crate) max_active_sessions: Option<u32>,
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
    pub(crate) on_limit: OnLimitArg,
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
    pub(crate) batch_size: Option<usize>,
    /// Acknowledge a write only once `WAIT` confirms N replicas have it
    /// (default 0: don't wait).
    #[arg(
        long,
        env = "AUTHSESSION_WAIT_REPLICAS",
        default_value_t = 0,
        global = true,
        value_name = "N"
    )]
    pub(crate) wait_replicas: u32,
    /// Keep sessions read by `get` in this process (a near cache), each
    /// dropped as soon as the server says it changed, whoever changed it
    /// (Redis client-side caching; needs RESP3 and CLIENT TRACKING: Redis
    /// 6.2+ or Valkey, no proxy). Fails at connect where the server cannot.
    #[arg(long, env = "AUTHSESSION_CACHE", global = true)]
    pub(crate) cache: bool,
    /// With --cache: at most N sessions kept (least recently used first
    /// out; default 10000).
    #[arg(long, global = true, value_name = "N")]
    pub(crate) cache_max_entries: Option<usize>,
    /// With --cache: never use a kept session older than this (`60s`,
    /// `5m`, …; default 60s), even if no change was announced.
    #[arg(long, global = true, value_name = "DURATION")]
    pub(crate) cache_max_staleness: Option<String>,
    /// Print each store operation's span on stderr when it ends (name,
    /// db.* fields, attempts, round trips, batches, outcome); -vv adds
    /// retries and confirms. `RUST_LOG` (a tracing filter) overrides it.
    #[arg(short, long, action = ArgAction::Count, global = true)]
    pub(crate) verbose: u8,
    /// Which of the above were given (on the command line or in the
    /// environment), not defaulted.
    #[arg(skip)]
    pub(crate) given: Given,
}

/// Flags whose mere presence matters.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Given {
    /// `--redis-url` on the command line (the environment's yields).
    pub(crate) redis_url_flag: bool,
    /// `--cluster-node` on the command line.
    pub(crate) cluster_flag: bool,
    /// `--on-limit` set at all.
    pub(crate) on_limit: bool,
}

impl Given {
    /// What `matches` says was given rather than defaulted.
    pub(crate) fn from_matches(matches: &ArgMatches) -> Self {
        let from_command_line =
            |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);
        Self {
            redis_url_flag: from_command_line("redis_url"),
            cluster_flag: from_command_line("cluster_nodes"),
            on_limit: matches
                .value_source("on_limit")
                .is_some_and(|s| s != ValueSource::DefaultValue),
        }
    }
}

/// `--layout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LayoutArg {
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
pub(crate) enum OnLimitArg {
    Reject,
    RevokeOldest,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
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
    #[command(mut_arg("at", |at| at.help(
        "Revocation time in any RFC 3339 form, stored in UTC; default now. Sessions created \
         after it are revoked too, at their own creation time",
    )))]
    RevokeAll {
        /// User id.
        user: String,
        #[command(flatten)]
        revocation: RevocationArgs,
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
    #[cfg(feature = "bench")]
    Bench(crate::bench::BenchArgs),
}

#[derive(Debug, Args)]
pub(crate) struct MigrateArgs {
    /// Target: a standalone Redis server.
    #[arg(
        long,
        value_name = "URL",
        required_unless_present = "to_cluster_node",
        conflicts_with = "to_cluster_node"
    )]
    pub(crate) to_url: Option<String>,
    /// Target: a Redis Cluster seed node (repeatable).
    #[arg(long, value_name = "URL")]
    pub(crate) to_cluster_node: Vec<String>,
    /// Target layout; default: tagged on a cluster, else the source's.
    #[arg(long, value_enum)]
    pub(crate) to_layout: Option<LayoutArg>,
    /// Target prefix base; default: the source's.
    #[arg(long, value_name = "BASE")]
    pub(crate) to_prefix: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// Device session id.
    #[arg(long)]
    pub(crate) id: String,
    /// User id.
    #[arg(long)]
    pub(crate) user: String,
    /// Client Ed25519 public key: standard padded base64 of 32 bytes.
    #[arg(long, value_name = "B64")]
    pub(crate) public_key: String,
    /// Creation time in any RFC 3339 form (e.g. 2026-11-27T10:00:00Z or
    /// 2026-11-27T12:00:00.5+02:00), stored in UTC; default now.
    #[arg(long, value_name = "TS")]
    pub(crate) created_at: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct RevocationArgs {
    /// Reason code (`[a-z][a-z0-9_]*`, ≤ 64 bytes).
    #[arg(long, value_name = "CODE")]
    pub(crate) reason: String,
    /// Actor type (`[a-z][a-z0-9_]*`, ≤ 32 bytes).
    #[arg(long, value_name = "TYPE")]
    pub(crate) actor_type: String,
    /// Actor id (optional).
    #[arg(long, value_name = "A")]
    pub(crate) actor_id: Option<String>,
    /// Revocation time in any RFC 3339 form, stored in UTC; default now.
    #[arg(long, value_name = "TS")]
    pub(crate) at: Option<String>,
}

impl RevocationArgs {
    pub(crate) fn flags(&self) -> RevocationFlags<'_> {
        RevocationFlags {
            reason: &self.reason,
            actor_type: &self.actor_type,
            actor_id: self.actor_id.as_deref(),
            at: self.at.as_deref(),
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct DecodeArgs {
    /// The device session id the record must belong to (the id of the key
    /// it was read from).
    #[arg(long, required_unless_present = "batch", conflicts_with = "batch")]
    pub(crate) id: Option<String>,
    /// Read JSON lines `{"id":…,"payload_b64":…}` and answer one JSON line
    /// per input line.
    #[arg(long, long_help = format!(
        "Read JSON lines `{{\"id\":…,\"payload_b64\":…}}` and answer one JSON line per input \
         line; a line over {} bytes is answered `invalid_input` and the batch goes on.",
        offline::MAX_INPUT
    ))]
    pub(crate) batch: bool,
    /// Input file (stdin when absent).
    pub(crate) file: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[group(required = true, multiple = true)]
pub(crate) struct KeysArgs {
    /// Device session id: prints its record key.
    #[arg(long)]
    pub(crate) id: Option<String>,
    /// User id: prints its two index keys.
    #[arg(long)]
    pub(crate) user: Option<String>,
}
