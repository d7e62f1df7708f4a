//! `authsession bench`: the load generator behind the figures in BENCHMARKS.md.
//!
//! N worker tasks share one store on a multi-threaded runtime. Latency is
//! measured around the store call only (choosing ids, formatting and
//! bookkeeping happen outside the timed region) into one HDR histogram per
//! worker, merged at the end. Every run works under a fresh key prefix that
//! is purged afterwards, whatever happened.
//!
//! Workloads that consume what they touch (`revoke`, `revoke_all`) run in
//! rounds: preload a batch of fresh sessions (untimed), let the workers use
//! it up, repeat until the timed total reaches the duration; the batch size
//! follows the measured rate so few rounds are needed. `ops_per_sec`
//! divides by the timed total only.
//!
//! The `*_reference` workloads are the same workloads run with the Go
//! adapter's command sequences (see `reference.rs`) on one connection of
//! its own per worker: the adapter's baseline measured
//! in the same run, against the same server, with the same data. `churn`
//! creates and revokes at a steady rate under the configured limit and
//! retention and reports the server's key count and memory before and
//! after.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use authsession_core::{
    ClientPublicKey, DeviceSessionId, KeySpace, Revocation, RevokeActorId, RevokeActorType,
    RevokeReasonCode, RevokeSessionInput, RevokeUserSessionsInput, Session, UserId,
};
use authsession_driver::{CheckMode, Error, ErrorKind, SessionAdmin, SessionStore};
use clap::ValueEnum;
use hdrhistogram::Histogram;
use rand::rngs::SmallRng;
use rand::seq::{IndexedRandom as _, SliceRandom as _};
use rand::{RngExt as _, SeedableRng};
use serde::Serialize;

use crate::clock;
use crate::error::CliError;
use crate::reference::{GoAdapter, GoError};

/// The workloads `bench --op` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum BenchOp {
    /// `get` of random loaded sessions.
    Get,
    /// `create` of new sessions for random users.
    Create,
    /// `list_by_user_id` of random loaded users.
    List,
    /// `count_active_by_user_id` of random loaded users.
    Count,
    /// `revoke` of distinct loaded active sessions.
    Revoke,
    /// `revoke_all_by_user_id` of distinct users holding K active sessions.
    #[value(name = "revoke_all", alias = "revoke-all")]
    RevokeAll,
    /// 50% get, 20% count, 10% list, 10% create, 8% revoke, 2% revoke_all.
    Mixed,
    /// All workers on one user: creators create, the rest revoke all (and
    /// every 4th op revoke one recently created session).
    Contention,
    /// Steady create + revoke over the users (half the ops each: a create
    /// for a random user, then a revoke of the worker's oldest created
    /// session) under --max-active-sessions / --revoked-retention; reports
    /// the server's keys and used_memory at start and end (Redis only).
    Churn,
    /// `get`, with the Go adapter's commands (GET).
    #[value(name = "get_reference", alias = "get-reference")]
    GetReference,
    /// `list`, with the Go adapter's commands (ZREVRANGE + one GET each).
    #[value(name = "list_reference", alias = "list-reference")]
    ListReference,
    /// `create`, with the Go adapter's commands (WATCH, GET, MULTI/EXEC,
    /// UNWATCH).
    #[value(name = "create_reference", alias = "create-reference")]
    CreateReference,
    /// `revoke`, with the Go adapter's commands (WATCH, GET, MULTI/EXEC,
    /// UNWATCH; retried on an aborted EXEC).
    #[value(name = "revoke_reference", alias = "revoke-reference")]
    RevokeReference,
    /// `revoke_all`, with the Go adapter's commands (WATCH, ZREVRANGE, one
    /// GET each, MULTI (SET + ZREM)×K EXEC, UNWATCH; retried on an aborted
    /// EXEC).
    #[value(name = "revoke_all_reference", alias = "revoke-all-reference")]
    RevokeAllReference,
}

impl BenchOp {
    /// Whether the workload runs the Go adapter's command sequences.
    pub(crate) fn is_reference(self) -> bool {
        self.store_op() != self
    }

    /// The workload whose data and targets a reference workload shares.
    fn store_op(self) -> BenchOp {
        match self {
            BenchOp::GetReference => BenchOp::Get,
            BenchOp::ListReference => BenchOp::List,
            BenchOp::CreateReference => BenchOp::Create,
            BenchOp::RevokeReference => BenchOp::Revoke,
            BenchOp::RevokeAllReference => BenchOp::RevokeAll,
            other => other,
        }
    }

    /// The name `--op` takes.
    pub(crate) fn name(self) -> String {
        self.to_possible_value()
            .map(|v| v.get_name().to_owned())
            .unwrap_or_default()
    }
}

/// Validated bench parameters.
#[derive(Debug, Clone)]
pub(crate) struct BenchParams {
    pub(crate) op: BenchOp,
    pub(crate) concurrency: usize,
    pub(crate) duration: Duration,
    pub(crate) sessions_per_user: usize,
    pub(crate) users: usize,
    pub(crate) creators: usize,
    /// The store's active-session limit, if any (`churn` preloads at most
    /// that many sessions per user).
    pub(crate) session_limit: Option<u32>,
}

/// The Redis server a bench runs against, for what the store does not
/// expose: dedicated connections for the Go adapter's command sequences,
/// and `DBSIZE` / `INFO memory`.
#[derive(Debug, Clone)]
pub(crate) struct Server {
    client: redis::Client,
}

/// What the server spent during the timed phases: its CPU (`INFO cpu`,
/// user + system, I/O included) and, per command, calls and execution
/// time (`INFO commandstats`; commands inside MULTI/EXEC and scripts are
/// counted too).
#[derive(Debug, Clone, Default)]
struct ServerUsage {
    cpu_us: f64,
    commands: BTreeMap<String, (u64, u64)>,
}

impl ServerUsage {
    /// `self - before` (counters only grow; a reset shows as zero).
    fn since(&self, before: &ServerUsage) -> ServerUsage {
        let commands = self
            .commands
            .iter()
            .map(|(name, (calls, usec))| {
                let (c0, u0) = before.commands.get(name).copied().unwrap_or_default();
                (
                    name.clone(),
                    (calls.saturating_sub(c0), usec.saturating_sub(u0)),
                )
            })
            .filter(|(_, (calls, _))| *calls > 0)
            .collect();
        ServerUsage {
            cpu_us: (self.cpu_us - before.cpu_us).max(0.0),
            commands,
        }
    }

    fn add(&mut self, other: &ServerUsage) {
        self.cpu_us += other.cpu_us;
        for (name, (calls, usec)) in &other.commands {
            let entry = self.commands.entry(name.clone()).or_default();
            entry.0 += calls;
            entry.1 += usec;
        }
    }
}

/// One command's cost per op in the report.
#[derive(Debug, Serialize)]
pub(crate) struct CommandCost {
    calls: f64,
    usec: f64,
}

/// Keys and memory of the server at one instant.
#[derive(Debug, Clone, Copy)]
struct Footprint {
    keys: u64,
    used_memory: u64,
}

/// Connecting and every read or write of a Go adapter connection (the
/// store's default operation timeout).
const REFERENCE_TIMEOUT: Duration = Duration::from_secs(1);

impl Server {
    /// The server at `url` (no connection is made yet).
    pub(crate) fn open(url: &str) -> Result<Self, CliError> {
        let client = redis::Client::open(url)
            .map_err(|e| CliError::new("config", format!("--redis-url: {e}")))?;
        Ok(Self { client })
    }

    fn footprint(&self) -> Result<Footprint, CliError> {
        let failed = |e: redis::RedisError| CliError::new("backend", format!("DBSIZE/INFO: {e}"));
        let mut conn = self
            .client
            .get_connection_with_timeout(REFERENCE_TIMEOUT)
            .map_err(failed)?;
        let keys: u64 = redis::cmd("DBSIZE").query(&mut conn).map_err(failed)?;
        let info: String = redis::cmd("INFO")
            .arg("memory")
            .query(&mut conn)
            .map_err(failed)?;
        let used_memory = info
            .lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| CliError::new("backend", "INFO memory has no used_memory"))?;
        Ok(Footprint { keys, used_memory })
    }

    /// The server's CPU and command counters now. The probe's own commands
    /// (`INFO`, the connection's `CLIENT SETINFO`) are left out.
    fn usage(&self) -> Result<ServerUsage, CliError> {
        let failed = |e: redis::RedisError| CliError::new("backend", format!("INFO: {e}"));
        let mut conn = self
            .client
            .get_connection_with_timeout(REFERENCE_TIMEOUT)
            .map_err(failed)?;
        // One section per INFO (Redis 6.2 takes only one), pipelined.
        let (cpu, commandstats): (String, String) = redis::pipe()
            .cmd("INFO")
            .arg("cpu")
            .cmd("INFO")
            .arg("commandstats")
            .query(&mut conn)
            .map_err(failed)?;
        let mut usage = ServerUsage::default();
        for line in cpu.lines().chain(commandstats.lines()) {
            if let Some(seconds) = line
                .strip_prefix("used_cpu_user:")
                .or_else(|| line.strip_prefix("used_cpu_sys:"))
            {
                usage.cpu_us += seconds.trim().parse::<f64>().unwrap_or(0.0) * 1e6;
            } else if let Some((name, fields)) = line
                .strip_prefix("cmdstat_")
                .and_then(|rest| rest.split_once(':'))
            {
                if name == "info" || name.starts_with("client") {
                    continue;
                }
                let field = |key: &str| {
                    fields
                        .split(',')
                        .find_map(|f| f.strip_prefix(key))
                        .and_then(|v| v.parse::<u64>().ok())
                        .unwrap_or(0)
                };
                usage
                    .commands
                    .insert(name.to_owned(), (field("calls="), field("usec=")));
            }
        }
        Ok(usage)
    }

    /// `n` Go adapters, each on its own connection, over `keys`.
    async fn adapters(&self, n: usize, keys: &KeySpace) -> Result<Adapters, CliError> {
        let mut adapters = Vec::with_capacity(n);
        for _ in 0..n {
            let adapter = GoAdapter::connect(&self.client, keys.clone(), REFERENCE_TIMEOUT)
                .await
                .map_err(|e| CliError::new("backend", format!("connecting to redis: {e}")))?;
            adapters.push(Some(adapter));
        }
        Ok(Arc::new(Mutex::new(adapters)))
    }
}

/// One Go adapter per worker: worker `i` takes slot `i` for a timed phase
/// and puts it back afterwards (connections outlive the rounds).
type Adapters = Arc<Mutex<Vec<Option<GoAdapter>>>>;

/// Set on Ctrl-C: workers and preloading stop, the run reports what it did
/// and the caller still purges the key space.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Stops the run early (Ctrl-C).
pub(crate) fn interrupt() {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

/// Whether the run was stopped early.
pub(crate) fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// Whether a worker should start another op.
fn running(deadline: Instant) -> bool {
    !interrupted() && Instant::now() < deadline
}

/// Largest preload batch of one round of a consuming workload, in sessions
/// (bounds the memory of the in-memory store and the preload pause).
const MAX_BATCH_SESSIONS: usize = 400_000;
/// Concurrent `create` calls while preloading.
const PRELOAD_PARALLELISM: usize = 64;
/// Histogram range: 1 ns .. 60 s, 3 significant digits.
const MAX_LATENCY_NS: u64 = 60_000_000_000;

/// What one worker (or the merge of all) observed.
struct Stats {
    latency_ns: Histogram<u64>,
    ops: u64,
    errors: BTreeMap<&'static str, u64>,
    outcomes: BTreeMap<&'static str, u64>,
    /// CPU time this process spent during the timed phases (Linux only).
    client_cpu_ns: Option<u64>,
    /// What the Redis server spent during the timed phases.
    server: Option<ServerUsage>,
}

/// CPU time consumed so far by every thread of this process, from
/// `/proc/self/task/*/schedstat` (nanoseconds on CPU); `None` where that
/// is unavailable. Lets the report say what an op costs the client,
/// independently of how busy the machine was.
fn process_cpu_ns() -> Option<u64> {
    let mut total = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total)
}

impl Stats {
    fn new() -> Result<Self, CliError> {
        Ok(Self {
            latency_ns: Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3)
                .map_err(|e| CliError::new("bench", format!("histogram: {e}")))?,
            ops: 0,
            errors: BTreeMap::new(),
            outcomes: BTreeMap::new(),
            client_cpu_ns: Some(0),
            server: None,
        })
    }

    /// Records one store call that started at `started`; returns its value
    /// when it succeeded.
    fn record<T>(&mut self, started: Instant, result: Result<T, Error>) -> Option<T> {
        self.record_kind(started, result.map_err(|e| e.kind().as_str()))
    }

    /// [`Stats::record`] for one Go adapter call.
    fn record_go<T>(&mut self, started: Instant, result: Result<T, GoError>) -> Option<T> {
        self.record_kind(started, result.map_err(|e| e.kind()))
    }

    /// Counts a call that ended as expected (its latency and one op).
    fn ok(&mut self, started: Instant) {
        let elapsed = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.ops += 1;
        self.latency_ns.saturating_record(elapsed.max(1));
    }

    fn record_kind<T>(&mut self, started: Instant, result: Result<T, &'static str>) -> Option<T> {
        match result {
            Ok(value) => {
                self.ok(started);
                Some(value)
            }
            Err(kind) => {
                *self.errors.entry(kind).or_default() += 1;
                None
            }
        }
    }

    fn outcome(&mut self, outcome: &'static str) {
        *self.outcomes.entry(outcome).or_default() += 1;
    }

    fn merge(&mut self, other: Stats) -> Result<(), CliError> {
        self.latency_ns
            .add(&other.latency_ns)
            .map_err(|e| CliError::new("bench", format!("histogram merge: {e:?}")))?;
        self.ops += other.ops;
        for (kind, n) in other.errors {
            *self.errors.entry(kind).or_default() += n;
        }
        for (outcome, n) in other.outcomes {
            *self.outcomes.entry(outcome).or_default() += n;
        }
        self.client_cpu_ns = self
            .client_cpu_ns
            .zip(other.client_cpu_ns)
            .map(|(a, b)| a + b);
        if let Some(usage) = &other.server {
            self.server
                .get_or_insert_with(ServerUsage::default)
                .add(usage);
        }
        Ok(())
    }
}

/// The JSON line `bench` prints. `ops` and the latency percentiles count
/// successful store calls; failed ones are counted in `errors` by kind.
/// `outcomes` counts revoke outcomes (and contention's creates).
#[derive(Debug, Serialize)]
pub(crate) struct BenchReport {
    op: BenchOp,
    backend: String,
    concurrency: usize,
    duration_s: f64,
    ops: u64,
    ops_per_sec: f64,
    errors: BTreeMap<&'static str, u64>,
    p50_us: f64,
    p99_us: f64,
    p999_us: f64,
    max_us: f64,
    /// CPU the bench process (workers, driver, runtime) spent per
    /// successful op during the timed phases: what an op costs the client.
    #[serde(skip_serializing_if = "Option::is_none")]
    client_cpu_us_per_op: Option<f64>,
    /// Redis: the server's CPU (user + system, I/O included, `INFO cpu`)
    /// per successful op during the timed phases.
    #[serde(skip_serializing_if = "Option::is_none")]
    server_cpu_us_per_op: Option<f64>,
    /// Redis: per command, calls and execution µs per successful op during
    /// the timed phases (`INFO commandstats`; commands run by scripts and
    /// inside MULTI/EXEC included).
    #[serde(skip_serializing_if = "Option::is_none")]
    server_commands_per_op: Option<BTreeMap<String, CommandCost>>,
    outcomes: BTreeMap<&'static str, u64>,
    preloaded_sessions: usize,
    /// `--cache`: what the near cache did over the whole run (preload and
    /// purge included).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) cache: Option<authsession_driver::CacheStats>,
    /// Stopped early by Ctrl-C.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    interrupted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    invariants: Option<Invariants>,
    /// `churn` on Redis: `DBSIZE` of the whole database when the timed
    /// phase starts (after the preload) and when it ends (before the
    /// purge).
    #[serde(skip_serializing_if = "Option::is_none")]
    keys_start: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    keys_end: Option<u64>,
    /// `churn` on Redis: `used_memory` (bytes, `INFO memory`) at the same
    /// instants.
    #[serde(skip_serializing_if = "Option::is_none")]
    used_memory_start: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    used_memory_end: Option<u64>,
}

impl BenchReport {
    /// Whether the run saw errors or (contention) broken invariants.
    pub(crate) fn is_clean(&self) -> bool {
        !self.interrupted
            && self.errors.is_empty()
            && self.invariants.as_ref().is_none_or(|i| i.consistent)
    }
}

/// Record/index agreement after a `contention` run (from `check`).
#[derive(Debug, Serialize)]
struct Invariants {
    consistent: bool,
    records: usize,
    index_entries: usize,
    problems: usize,
    problem_kinds: BTreeMap<&'static str, u64>,
    active_sessions: u64,
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn us(ns: u64) -> f64 {
    // Nanoseconds to microseconds, one decimal.
    (ns as f64 / 100.0).round() / 10.0
}

/// Fixed values every bench session and revocation uses.
struct Fixtures {
    reason: RevokeReasonCode,
    actor_type: RevokeActorType,
    actor_id: RevokeActorId,
}

impl Fixtures {
    fn new() -> Result<Self, CliError> {
        Ok(Self {
            reason: RevokeReasonCode::parse("bench")?,
            actor_type: RevokeActorType::parse("bench")?,
            actor_id: RevokeActorId::parse("authsession-bench")?,
        })
    }

    fn session(&self, id: String, user: &UserId, rng: &mut SmallRng) -> Result<Session, CliError> {
        let mut key = [0u8; ClientPublicKey::LEN];
        rng.fill(&mut key[..]);
        Ok(Session::active(
            DeviceSessionId::parse(id)?,
            user.clone(),
            ClientPublicKey::from(key),
            clock::now()?,
        )?)
    }

    fn revocation(&self) -> Result<Revocation, CliError> {
        Ok(Revocation::new(
            clock::now()?,
            self.reason.clone(),
            self.actor_type.clone(),
            self.actor_id.clone(),
        )?)
    }
}

/// Creates `sessions` with bounded parallelism; any failure aborts the run.
async fn preload<S: SessionStore + SessionAdmin + 'static>(
    store: &Arc<S>,
    sessions: Vec<Session>,
) -> Result<(), CliError> {
    let sessions = Arc::new(sessions);
    let cursor = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..PRELOAD_PARALLELISM.min(sessions.len()) {
        let (store, sessions, cursor) = (store.clone(), sessions.clone(), cursor.clone());
        tasks.push(tokio::spawn(async move {
            while let Some(session) = sessions
                .get(cursor.fetch_add(1, Ordering::Relaxed))
                .filter(|_| !interrupted())
            {
                store.create(session).await?;
            }
            Ok::<(), Error>(())
        }));
    }
    for task in tasks {
        task.await
            .map_err(|e| CliError::new("bench", format!("preload task failed: {e}")))?
            .map_err(|e| CliError::from(e).context("preloading sessions"))?;
    }
    Ok(())
}

/// Users `u0..uU` each with sessions `u{u}-s{k}`, all active.
struct Loaded {
    users: Vec<UserId>,
    ids: Vec<DeviceSessionId>,
}

/// The U × K sessions the read-heavy workloads (get, count, list, mixed)
/// run against.
async fn load_all_users<S: SessionStore + SessionAdmin + 'static>(
    store: &Arc<S>,
    fixtures: &Fixtures,
    params: &BenchParams,
    rng: &mut SmallRng,
) -> Result<Loaded, CliError> {
    load_users(
        store,
        fixtures,
        "",
        params.users,
        params.sessions_per_user,
        rng,
    )
    .await
}

async fn load_users<S: SessionStore + SessionAdmin + 'static>(
    store: &Arc<S>,
    fixtures: &Fixtures,
    tag: &str,
    users: usize,
    per_user: usize,
    rng: &mut SmallRng,
) -> Result<Loaded, CliError> {
    let mut loaded = Loaded {
        users: Vec::with_capacity(users),
        ids: Vec::with_capacity(users * per_user),
    };
    let mut sessions = Vec::with_capacity(users * per_user);
    for u in 0..users {
        let user = UserId::parse(format!("{tag}u{u}"))?;
        for k in 0..per_user {
            let session = fixtures.session(format!("{tag}u{u}-s{k}"), &user, rng)?;
            loaded.ids.push(session.id().clone());
            sessions.push(session);
        }
        loaded.users.push(user);
    }
    preload(store, sessions).await?;
    Ok(loaded)
}

/// Spawns `n` workers running `work(worker_index, stats)` and merges their
/// stats; returns them with the wall time from spawn to the last join.
async fn run_workers<F, Fut>(
    n: usize,
    server: Option<&Server>,
    work: F,
) -> Result<(Stats, Duration), CliError>
where
    F: Fn(usize, Stats) -> Fut,
    Fut: std::future::Future<Output = Result<Stats, CliError>> + Send + 'static,
{
    let server_before = server.map(Server::usage).transpose()?;
    let cpu_before = process_cpu_ns();
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for worker in 0..n {
        tasks.push(tokio::spawn(work(worker, Stats::new()?)));
    }
    let mut total = Stats::new()?;
    for task in tasks {
        let stats = task
            .await
            .map_err(|e| CliError::new("bench", format!("worker failed: {e}")))??;
        total.merge(stats)?;
    }
    let elapsed = started.elapsed();
    total.client_cpu_ns = cpu_before
        .zip(process_cpu_ns())
        .map(|(before, after)| after.saturating_sub(before));
    if let (Some(server), Some(before)) = (server, server_before) {
        total.server = Some(server.usage()?.since(&before));
    }
    Ok((total, elapsed))
}

/// Lets the other workers run when the store never suspends (the
/// in-memory store), so no worker starves the others, at no cost
/// otherwise: it yields only once the task's cooperative budget is spent,
/// which a store waiting on I/O never reaches. (An unconditional
/// `yield_now` costs a driver poll per op, a syscall and often a thread
/// wake-up, that the reference workloads do not pay.)
async fn fair_turn() {
    tokio::task::coop::consume_budget().await;
}

/// A random element; the workloads never run on empty sets (validated),
/// so an empty one is reported rather than assumed away.
fn pick<'a, T>(rng: &mut SmallRng, items: &'a [T]) -> Result<&'a T, CliError> {
    items
        .choose(rng)
        .ok_or_else(|| CliError::new("bench", "nothing to pick from"))
}

fn seed(worker: usize, salt: u64) -> u64 {
    (worker as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt
}

/// [`run_workers`] for the Go adapter: worker `i` runs `work(i, adapter,
/// stats)` with adapter `i`, and hands it back with its stats.
async fn run_adapters<F, Fut>(
    adapters: &Adapters,
    server: Option<&Server>,
    work: F,
) -> Result<(Stats, Duration), CliError>
where
    F: Fn(usize, GoAdapter, Stats) -> Fut,
    Fut: std::future::Future<Output = Result<(GoAdapter, Stats), CliError>> + Send + 'static,
{
    let n = adapters
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .len();
    run_workers(n, server, |worker, stats| {
        let slots = adapters.clone();
        let adapter = slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(worker)
            .and_then(Option::take)
            .ok_or_else(|| CliError::new("bench", "no Go adapter for a worker"));
        let run = adapter.map(|adapter| work(worker, adapter, stats));
        async move {
            let (adapter, stats) = run?.await?;
            if let Some(slot) = slots
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get_mut(worker)
            {
                *slot = Some(adapter);
            }
            Ok(stats)
        }
    })
    .await
}

/// The Go adapters a reference workload needs (`None` for the others).
async fn adapters_for<S: SessionStore>(
    store: &S,
    params: &BenchParams,
    server: Option<&Server>,
) -> Result<Option<Adapters>, CliError> {
    if !params.op.is_reference() {
        return Ok(None);
    }
    let server = server.ok_or_else(|| {
        CliError::usage("the Go adapter's command sequences need a standalone Redis server")
    })?;
    server
        .adapters(params.concurrency, store.key_space())
        .await
        .map(Some)
}

/// Runs the workload on `store` (whose key space must be fresh) and
/// reports. The caller purges the key space afterwards. `server` is the
/// Redis server behind `store`, when it is one.
pub(crate) async fn run<S: SessionStore + SessionAdmin + 'static>(
    store: Arc<S>,
    params: &BenchParams,
    backend: &str,
    server: Option<&Server>,
) -> Result<BenchReport, CliError> {
    let fixtures = Arc::new(Fixtures::new()?);
    let mut rng = SmallRng::seed_from_u64(seed(usize::MAX, 1));
    let n = params.concurrency;
    let duration = params.duration;
    let mut preloaded = 0;
    let mut invariants = None;
    let mut footprints = None;
    let adapters = adapters_for(&*store, params, server).await?;

    let (stats, elapsed) = match (params.op.store_op(), adapters) {
        (BenchOp::Get | BenchOp::Count | BenchOp::List, adapters) => {
            let loaded = Arc::new(load_all_users(&store, &fixtures, params, &mut rng).await?);
            preloaded = loaded.ids.len();
            let op = params.op;
            let deadline = Instant::now() + duration;
            match adapters {
                Some(adapters) => {
                    run_adapters(&adapters, server, |worker, mut adapter, mut stats| {
                        let loaded = loaded.clone();
                        async move {
                            let mut rng = SmallRng::seed_from_u64(seed(worker, 2));
                            while running(deadline) {
                                if op == BenchOp::GetReference {
                                    let id = pick(&mut rng, &loaded.ids)?;
                                    let t = Instant::now();
                                    let r = adapter.get(id).await;
                                    stats.record_go(t, r);
                                } else {
                                    let user = pick(&mut rng, &loaded.users)?;
                                    let t = Instant::now();
                                    let r = adapter.list(user).await;
                                    stats.record_go(t, r);
                                }
                            }
                            Ok((adapter, stats))
                        }
                    })
                    .await?
                }
                None => {
                    run_workers(n, server, |worker, mut stats| {
                        let (store, loaded) = (store.clone(), loaded.clone());
                        async move {
                            let mut rng = SmallRng::seed_from_u64(seed(worker, 2));
                            while running(deadline) {
                                fair_turn().await;
                                match op {
                                    BenchOp::Get => {
                                        let id = pick(&mut rng, &loaded.ids)?;
                                        let t = Instant::now();
                                        let r = store.get(id).await;
                                        stats.record(t, r);
                                    }
                                    BenchOp::Count => {
                                        let user = pick(&mut rng, &loaded.users)?;
                                        let t = Instant::now();
                                        let r = store.count_active_by_user_id(user).await;
                                        stats.record(t, r);
                                    }
                                    _ => {
                                        let user = pick(&mut rng, &loaded.users)?;
                                        let t = Instant::now();
                                        let r = store.list_by_user_id(user).await;
                                        stats.record(t, r);
                                    }
                                }
                            }
                            Ok(stats)
                        }
                    })
                    .await?
                }
            }
        }
        (BenchOp::Create, adapters) => {
            let users: Arc<Vec<UserId>> = Arc::new(
                (0..params.users)
                    .map(|u| UserId::parse(format!("u{u}")))
                    .collect::<Result<_, _>>()?,
            );
            let deadline = Instant::now() + duration;
            match adapters {
                Some(adapters) => {
                    run_adapters(&adapters, server, |worker, mut adapter, mut stats| {
                        let (users, fixtures) = (users.clone(), fixtures.clone());
                        async move {
                            let mut rng = SmallRng::seed_from_u64(seed(worker, 3));
                            let mut next = 0u64;
                            while running(deadline) {
                                let user = pick(&mut rng, &users)?;
                                let session = fixtures.session(
                                    format!("w{worker}-c{next}"),
                                    user,
                                    &mut rng,
                                )?;
                                next += 1;
                                let t = Instant::now();
                                let r = adapter.create(&session).await;
                                stats.record_go(t, r);
                            }
                            Ok((adapter, stats))
                        }
                    })
                    .await?
                }
                None => {
                    run_workers(n, server, |worker, mut stats| {
                        let (store, users, fixtures) =
                            (store.clone(), users.clone(), fixtures.clone());
                        async move {
                            let mut rng = SmallRng::seed_from_u64(seed(worker, 3));
                            let mut next = 0u64;
                            while running(deadline) {
                                fair_turn().await;
                                let user = pick(&mut rng, &users)?;
                                let session = fixtures.session(
                                    format!("w{worker}-c{next}"),
                                    user,
                                    &mut rng,
                                )?;
                                next += 1;
                                let t = Instant::now();
                                let r = store.create(&session).await;
                                stats.record(t, r);
                            }
                            Ok(stats)
                        }
                    })
                    .await?
                }
            }
        }
        (BenchOp::Revoke | BenchOp::RevokeAll, adapters) => {
            let (stats, elapsed, loaded) = consume_in_rounds(
                &store,
                &fixtures,
                params,
                adapters.as_ref(),
                server,
                &mut rng,
            )
            .await?;
            preloaded = loaded;
            (stats, elapsed)
        }
        (BenchOp::Mixed, _) => {
            let loaded = Arc::new(load_all_users(&store, &fixtures, params, &mut rng).await?);
            preloaded = loaded.ids.len();
            // Revokes take distinct loaded sessions in random order.
            let mut pool = loaded.ids.clone();
            pool.shuffle(&mut rng);
            let pool = Arc::new(pool);
            let cursor = Arc::new(AtomicUsize::new(0));
            let deadline = Instant::now() + duration;
            run_workers(n, server, |worker, stats| {
                let (store, loaded, fixtures) = (store.clone(), loaded.clone(), fixtures.clone());
                let (pool, cursor) = (pool.clone(), cursor.clone());
                mixed_worker(
                    store, loaded, fixtures, pool, cursor, worker, deadline, stats,
                )
            })
            .await?
        }
        (BenchOp::Contention, _) => {
            let user = Arc::new(UserId::parse("contended-user")?);
            let recent: Arc<Mutex<VecDeque<DeviceSessionId>>> = Arc::default();
            let creators = params.creators;
            let deadline = Instant::now() + duration;
            let result = run_workers(n, server, |worker, stats| {
                let (store, fixtures) = (store.clone(), fixtures.clone());
                let (user, recent) = (user.clone(), recent.clone());
                contention_worker(
                    store,
                    fixtures,
                    user,
                    recent,
                    worker,
                    worker < creators,
                    deadline,
                    stats,
                )
            })
            .await?;
            let report = store
                .check(CheckMode::Report)
                .await
                .map_err(|e| CliError::from(e).context("check"))?;
            let active = store
                .count_active_by_user_id(&user)
                .await
                .map_err(|e| CliError::from(e).context("count"))?;
            let mut problem_kinds = BTreeMap::new();
            for problem in &report.problems {
                *problem_kinds.entry(problem.kind()).or_default() += 1;
            }
            invariants = Some(Invariants {
                consistent: report.problems.is_empty(),
                records: report.records,
                index_entries: report.index_entries,
                problems: report.problems.len(),
                problem_kinds,
                active_sessions: active,
            });
            result
        }
        (BenchOp::Churn, _) => {
            // Start in the steady state: each user holds K sessions (at most
            // the limit, so a `reject` limit does not fail the preload).
            let per_user = params
                .session_limit
                .map_or(params.sessions_per_user, |max| {
                    params
                        .sessions_per_user
                        .min(usize::try_from(max).unwrap_or(usize::MAX))
                });
            let loaded = Arc::new(
                load_users(&store, &fixtures, "", params.users, per_user, &mut rng).await?,
            );
            preloaded = loaded.ids.len();
            let start = server.map(Server::footprint).transpose()?;
            let deadline = Instant::now() + duration;
            let result = run_workers(n, server, |worker, stats| {
                let (store, loaded, fixtures) = (store.clone(), loaded.clone(), fixtures.clone());
                churn_worker(store, loaded, fixtures, worker, deadline, stats)
            })
            .await?;
            let end = server.map(Server::footprint).transpose()?;
            footprints = start.zip(end);
            result
        }
        (_, _) => return Err(CliError::new("bench", "no such workload")),
    };

    let secs = elapsed.as_secs_f64();
    let h = &stats.latency_ns;
    let report = BenchReport {
        op: params.op,
        backend: backend.to_owned(),
        concurrency: n,
        duration_s: (secs * 1000.0).round() / 1000.0,
        ops: stats.ops,
        ops_per_sec: if secs > 0.0 {
            (stats.ops as f64 / secs).round()
        } else {
            0.0
        },
        p50_us: us(h.value_at_quantile(0.50)),
        p99_us: us(h.value_at_quantile(0.99)),
        p999_us: us(h.value_at_quantile(0.999)),
        max_us: us(h.max()),
        client_cpu_us_per_op: stats
            .client_cpu_ns
            .filter(|_| stats.ops > 0)
            .map(|ns| us(ns / stats.ops.max(1))),
        server_cpu_us_per_op: stats
            .server
            .as_ref()
            .filter(|_| stats.ops > 0)
            .map(|u| round1(u.cpu_us / stats.ops as f64)),
        server_commands_per_op: stats.server.as_ref().filter(|_| stats.ops > 0).map(|u| {
            u.commands
                .iter()
                .map(|(name, (calls, usec))| {
                    let per_op = |n: u64| (n as f64 / stats.ops as f64 * 100.0).round() / 100.0;
                    (
                        name.clone(),
                        CommandCost {
                            calls: per_op(*calls),
                            usec: per_op(*usec),
                        },
                    )
                })
                .collect()
        }),
        errors: stats.errors,
        outcomes: stats.outcomes,
        preloaded_sessions: preloaded,
        cache: None,
        interrupted: interrupted(),
        invariants,
        keys_start: footprints.map(|(start, _)| start.keys),
        keys_end: footprints.map(|(_, end)| end.keys),
        used_memory_start: footprints.map(|(start, _)| start.used_memory),
        used_memory_end: footprints.map(|(_, end)| end.used_memory),
    };
    Ok(report)
}

/// What one op of a consuming workload revokes.
enum Target {
    User(UserId),
    Session(DeviceSessionId),
}

impl Target {
    fn users(loaded: &Loaded) -> Vec<Target> {
        loaded.users.iter().cloned().map(Target::User).collect()
    }
    fn sessions(loaded: &Loaded) -> Vec<Target> {
        loaded.ids.iter().cloned().map(Target::Session).collect()
    }
}

/// `revoke` / `revoke_all` (and their reference forms, with `adapters`):
/// rounds of (preload a batch, consume it timed). Returns the merged
/// stats, the timed total and how many sessions were preloaded.
async fn consume_in_rounds<S: SessionStore + SessionAdmin + 'static>(
    store: &Arc<S>,
    fixtures: &Arc<Fixtures>,
    params: &BenchParams,
    adapters: Option<&Adapters>,
    server: Option<&Server>,
    rng: &mut SmallRng,
) -> Result<(Stats, Duration, usize), CliError> {
    let all = params.op.store_op() == BenchOp::RevokeAll;
    let per_item = if all {
        params.sessions_per_user.max(1)
    } else {
        1
    };
    let max_items = (MAX_BATCH_SESSIONS / per_item).max(1);
    // The first round is small and gives the rate the next ones are sized by.
    let mut items = (params.concurrency * 64).clamp(256, max_items);
    let mut total = Stats::new()?;
    let mut timed = Duration::ZERO;
    let mut preloaded = 0;
    let mut round = 0usize;
    while timed < params.duration && !interrupted() {
        let tag = format!("r{round}-");
        round += 1;
        let loaded = if all {
            load_users(store, fixtures, &tag, items, per_item, rng).await?
        } else {
            // Revoke: `items` sessions spread over the users.
            let users = params.users.max(1);
            let mut loaded = Loaded {
                users: Vec::new(),
                ids: Vec::with_capacity(items),
            };
            let mut sessions = Vec::with_capacity(items);
            let user_ids: Vec<UserId> = (0..users)
                .map(|u| UserId::parse(format!("u{u}")))
                .collect::<Result<_, _>>()?;
            for (i, user) in (0..items).zip(user_ids.iter().cycle()) {
                let session = fixtures.session(format!("{tag}s{i}"), user, rng)?;
                loaded.ids.push(session.id().clone());
                sessions.push(session);
            }
            preload(store, sessions).await?;
            loaded
        };
        preloaded += loaded.ids.len();
        // Distinct targets in random order: users (revoke_all) or sessions.
        let mut targets = if all {
            Target::users(&loaded)
        } else {
            Target::sessions(&loaded)
        };
        targets.shuffle(rng);
        let targets = Arc::new(targets);
        let cursor = Arc::new(AtomicUsize::new(0));
        let deadline = Instant::now() + (params.duration - timed);
        let (stats, elapsed) = match adapters {
            Some(adapters) => {
                run_adapters(adapters, server, |_, mut adapter, mut stats| {
                    let fixtures = fixtures.clone();
                    let (targets, cursor) = (targets.clone(), cursor.clone());
                    async move {
                        while running(deadline) {
                            let Some(target) = targets.get(cursor.fetch_add(1, Ordering::Relaxed))
                            else {
                                break;
                            };
                            let revocation = fixtures.revocation()?;
                            match target {
                                Target::User(user) => {
                                    let input = RevokeUserSessionsInput {
                                        user_id: user.clone(),
                                        revocation,
                                    };
                                    let t = Instant::now();
                                    let r = adapter.revoke_all(&input).await;
                                    if let Some(outcome) = stats.record_go(t, r) {
                                        stats.outcome(outcome.as_str());
                                    }
                                }
                                Target::Session(id) => {
                                    let input = RevokeSessionInput {
                                        device_session_id: id.clone(),
                                        revocation,
                                    };
                                    let t = Instant::now();
                                    let r = adapter.revoke(&input).await;
                                    if let Some(outcome) = stats.record_go(t, r) {
                                        stats.outcome(outcome.as_str());
                                    }
                                }
                            }
                        }
                        Ok((adapter, stats))
                    }
                })
                .await?
            }
            None => {
                run_workers(params.concurrency, server, |_, mut stats| {
                    let (store, fixtures) = (store.clone(), fixtures.clone());
                    let (targets, cursor) = (targets.clone(), cursor.clone());
                    async move {
                        while running(deadline) {
                            fair_turn().await;
                            let Some(target) = targets.get(cursor.fetch_add(1, Ordering::Relaxed))
                            else {
                                break;
                            };
                            let revocation = fixtures.revocation()?;
                            match target {
                                Target::User(user) => {
                                    let input = RevokeUserSessionsInput {
                                        user_id: user.clone(),
                                        revocation,
                                    };
                                    let t = Instant::now();
                                    let r = store.revoke_all_by_user_id(&input).await;
                                    if let Some(outcome) = stats.record(t, r) {
                                        stats.outcome(outcome.as_str());
                                    }
                                }
                                Target::Session(id) => {
                                    let input = RevokeSessionInput {
                                        device_session_id: id.clone(),
                                        revocation,
                                    };
                                    let t = Instant::now();
                                    let r = store.revoke(&input).await;
                                    if let Some(outcome) = stats.record(t, r) {
                                        stats.outcome(outcome.as_str());
                                    }
                                }
                            }
                        }
                        Ok(stats)
                    }
                })
                .await?
            }
        };
        let done = stats.ops + stats.errors.values().sum::<u64>();
        total.merge(stats)?;
        timed += elapsed;
        // Size the next round to last the remaining time at this rate
        // (with a margin), within the memory bound.
        let remaining = params.duration.saturating_sub(timed).as_secs_f64();
        let rate = done as f64 / elapsed.as_secs_f64().max(1e-6);
        items = ((rate * remaining * 1.2) as usize).clamp(256, max_items);
    }
    Ok((total, timed, preloaded))
}

/// `churn`: odd ops create a session for a random user, even ones revoke
/// the oldest session this worker created (already revoked by the limit,
/// or gone with retention, are expected answers, not errors).
async fn churn_worker<S: SessionStore + SessionAdmin>(
    store: Arc<S>,
    loaded: Arc<Loaded>,
    fixtures: Arc<Fixtures>,
    worker: usize,
    deadline: Instant,
    mut stats: Stats,
) -> Result<Stats, CliError> {
    let mut rng = SmallRng::seed_from_u64(seed(worker, 6));
    let mut mine: VecDeque<DeviceSessionId> = VecDeque::new();
    let mut n = 0u64;
    while running(deadline) {
        fair_turn().await;
        n += 1;
        let oldest = if n.is_multiple_of(2) {
            mine.pop_front()
        } else {
            None
        };
        match oldest {
            None => {
                let user = pick(&mut rng, &loaded.users)?;
                let session = fixtures.session(format!("w{worker}-ch{n}"), user, &mut rng)?;
                let t = Instant::now();
                match store.create(&session).await {
                    Ok(created) => {
                        stats.ok(t);
                        stats.outcome("created");
                        for _ in &created.evicted {
                            stats.outcome("evicted");
                        }
                        mine.push_back(session.id().clone());
                    }
                    Err(e) if e.kind() == ErrorKind::SessionLimit => {
                        stats.ok(t);
                        stats.outcome("rejected_by_limit");
                    }
                    Err(e) => {
                        stats.record(t, Err::<(), _>(e));
                    }
                }
            }
            Some(id) => {
                let input = RevokeSessionInput {
                    device_session_id: id,
                    revocation: fixtures.revocation()?,
                };
                let t = Instant::now();
                match store.revoke(&input).await {
                    Ok(outcome) => {
                        stats.ok(t);
                        stats.outcome(outcome.as_str());
                    }
                    Err(e) if e.kind() == ErrorKind::NotFound => {
                        stats.ok(t);
                        stats.outcome("gone");
                    }
                    Err(e) => {
                        stats.record(t, Err::<(), _>(e));
                    }
                }
            }
        }
    }
    Ok(stats)
}

#[allow(clippy::too_many_arguments)]
async fn mixed_worker<S: SessionStore + SessionAdmin>(
    store: Arc<S>,
    loaded: Arc<Loaded>,
    fixtures: Arc<Fixtures>,
    pool: Arc<Vec<DeviceSessionId>>,
    cursor: Arc<AtomicUsize>,
    worker: usize,
    deadline: Instant,
    mut stats: Stats,
) -> Result<Stats, CliError> {
    let mut rng = SmallRng::seed_from_u64(seed(worker, 4));
    let mut created: Vec<DeviceSessionId> = Vec::new();
    let mut next = 0u64;
    while running(deadline) {
        fair_turn().await;
        let user = pick(&mut rng, &loaded.users)?;
        match rng.random_range(0..100u32) {
            0..50 => {
                let id = pick(&mut rng, &loaded.ids)?;
                let t = Instant::now();
                let r = store.get(id).await;
                stats.record(t, r);
            }
            50..70 => {
                let t = Instant::now();
                let r = store.count_active_by_user_id(user).await;
                stats.record(t, r);
            }
            70..80 => {
                let t = Instant::now();
                let r = store.list_by_user_id(user).await;
                stats.record(t, r);
            }
            80..90 => {
                let session = fixtures.session(format!("m{worker}-{next}"), user, &mut rng)?;
                next += 1;
                let t = Instant::now();
                let r = store.create(&session).await;
                if stats.record(t, r).is_some() {
                    created.push(session.id().clone());
                }
            }
            90..98 => {
                // A distinct loaded session while any is left, then one this
                // worker created, then (rarely) a random loaded one.
                let id = match pool.get(cursor.fetch_add(1, Ordering::Relaxed)) {
                    Some(id) => id.clone(),
                    None => match created.pop() {
                        Some(id) => id,
                        None => pick(&mut rng, &loaded.ids)?.clone(),
                    },
                };
                let input = RevokeSessionInput {
                    device_session_id: id,
                    revocation: fixtures.revocation()?,
                };
                let t = Instant::now();
                let r = store.revoke(&input).await;
                if let Some(outcome) = stats.record(t, r) {
                    stats.outcome(outcome.as_str());
                }
            }
            _ => {
                let input = RevokeUserSessionsInput {
                    user_id: user.clone(),
                    revocation: fixtures.revocation()?,
                };
                let t = Instant::now();
                let r = store.revoke_all_by_user_id(&input).await;
                if let Some(outcome) = stats.record(t, r) {
                    stats.outcome(outcome.as_str());
                }
            }
        }
    }
    Ok(stats)
}

/// How many recently created ids revokers may pick from.
const RECENT_CAP: usize = 256;

#[allow(clippy::too_many_arguments)]
async fn contention_worker<S: SessionStore + SessionAdmin>(
    store: Arc<S>,
    fixtures: Arc<Fixtures>,
    user: Arc<UserId>,
    recent: Arc<Mutex<VecDeque<DeviceSessionId>>>,
    worker: usize,
    creator: bool,
    deadline: Instant,
    mut stats: Stats,
) -> Result<Stats, CliError> {
    let mut rng = SmallRng::seed_from_u64(seed(worker, 5));
    let mut n = 0u64;
    while running(deadline) {
        fair_turn().await;
        n += 1;
        if creator {
            let session = fixtures.session(format!("c{worker}-{n}"), &user, &mut rng)?;
            let t = Instant::now();
            let r = store.create(&session).await;
            if stats.record(t, r).is_some() {
                stats.outcome("created");
                let mut queue = recent.lock().unwrap_or_else(PoisonError::into_inner);
                if queue.len() == RECENT_CAP {
                    queue.pop_front();
                }
                queue.push_back(session.id().clone());
            }
            continue;
        }
        let target = if n.is_multiple_of(4) {
            recent
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop_back()
        } else {
            None
        };
        let revocation = fixtures.revocation()?;
        match target {
            Some(id) => {
                let input = RevokeSessionInput {
                    device_session_id: id,
                    revocation,
                };
                let t = Instant::now();
                let r = store.revoke(&input).await;
                if let Some(outcome) = stats.record(t, r) {
                    stats.outcome(outcome.as_str());
                }
            }
            None => {
                let input = RevokeUserSessionsInput {
                    user_id: (*user).clone(),
                    revocation,
                };
                let t = Instant::now();
                let r = store.revoke_all_by_user_id(&input).await;
                if let Some(outcome) = stats.record(t, r) {
                    stats.outcome(outcome.as_str());
                }
            }
        }
    }
    Ok(stats)
}
