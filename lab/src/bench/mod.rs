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
//! adapter's command sequences (see [`crate::reference`]) on one connection of
//! its own per worker: the adapter's baseline measured
//! in the same run, against the same server, with the same data. `churn`
//! creates and revokes at a steady rate under the configured limit and
//! retention and reports the server's key count and memory before and
//! after.
//!
//! One job per file: the workloads (`reads`, `consume`, `workers`), what
//! they load (`load`), the workers' runner and statistics (`runner`), what
//! the server measures (`server`) and the printed report (`report`).

mod consume;
mod load;
mod reads;
mod report;
mod runner;
mod server;
mod workers;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use authsession_driver::{SessionAdmin, SessionStore};
use clap::ValueEnum;
use rand::rngs::SmallRng;
use rand::SeedableRng;
use serde::Serialize;

use crate::LabError;
use load::Fixtures;
pub use report::BenchReport;
use report::Invariants;
use runner::{seed, Stats};
pub use server::Server;
use server::{adapters_for, Footprint};

/// The workloads `bench --op` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum BenchOp {
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
    pub fn is_reference(self) -> bool {
        self.store_op() != self
    }

    /// The workload whose data and targets a reference workload shares.
    pub(crate) fn store_op(self) -> BenchOp {
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
    pub fn name(self) -> String {
        self.to_possible_value()
            .map(|v| v.get_name().to_owned())
            .unwrap_or_default()
    }
}

/// Validated bench parameters.
#[derive(Debug, Clone)]
pub struct BenchParams {
    pub op: BenchOp,
    pub concurrency: usize,
    pub duration: Duration,
    pub sessions_per_user: usize,
    pub users: usize,
    pub creators: usize,
    /// The store's active-session limit, if any (`churn` preloads at most
    /// that many sessions per user).
    pub session_limit: Option<u32>,
}

/// Set on Ctrl-C: workers and preloading stop, the run reports what it did
/// and the caller still purges the key space.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Stops the run early (Ctrl-C).
pub fn interrupt() {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

/// Whether the run was stopped early.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// Whether a worker should start another op.
pub(crate) fn running(deadline: Instant) -> bool {
    !interrupted() && Instant::now() < deadline
}

/// What every worker of a run shares: the store and the fixed values.
pub(crate) struct Shared<S> {
    pub(crate) store: Arc<S>,
    pub(crate) fixtures: Arc<Fixtures>,
}

impl<S> Clone for Shared<S> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            fixtures: self.fixtures.clone(),
        }
    }
}

/// One run: what its workers share, its parameters and the Redis server
/// behind the store, when it is one.
pub(crate) struct Bench<'a, S> {
    pub(crate) shared: Shared<S>,
    pub(crate) params: &'a BenchParams,
    pub(crate) server: Option<&'a Server>,
}

/// What a workload measured: the merged stats of its timed phases and
/// their total time, how many sessions it preloaded, and what only some
/// workloads observe.
pub(crate) struct Measured {
    pub(crate) stats: Stats,
    pub(crate) elapsed: Duration,
    pub(crate) preloaded: usize,
    /// `contention`: record/index agreement afterwards.
    pub(crate) invariants: Option<Invariants>,
    /// `churn` on Redis: the server's keys and memory at start and end.
    pub(crate) footprints: Option<(Footprint, Footprint)>,
}

impl Measured {
    pub(crate) fn timed((stats, elapsed): (Stats, Duration), preloaded: usize) -> Self {
        Self {
            stats,
            elapsed,
            preloaded,
            invariants: None,
            footprints: None,
        }
    }
}

/// Runs the workload on `store` (whose key space must be fresh) and
/// reports. The caller purges the key space afterwards. `server` is the
/// Redis server behind `store`, when it is one.
pub async fn run<S: SessionStore + SessionAdmin + 'static>(
    store: Arc<S>,
    params: &BenchParams,
    backend: &str,
    server: Option<&Server>,
) -> Result<BenchReport, LabError> {
    let mut rng = SmallRng::seed_from_u64(seed(usize::MAX, 1));
    let adapters = adapters_for(&*store, params, server).await?;
    let bench = Bench {
        shared: Shared {
            store,
            fixtures: Arc::new(Fixtures::new()?),
        },
        params,
        server,
    };
    let measured = match (params.op.store_op(), adapters) {
        (BenchOp::Get | BenchOp::Count | BenchOp::List, Some(adapters)) => {
            reads::reads_reference(&bench, &adapters, &mut rng).await?
        }
        (BenchOp::Get | BenchOp::Count | BenchOp::List, None) => {
            reads::reads(&bench, &mut rng).await?
        }
        (BenchOp::Create, Some(adapters)) => reads::creates_reference(&bench, &adapters).await?,
        (BenchOp::Create, None) => reads::creates(&bench).await?,
        (BenchOp::Revoke | BenchOp::RevokeAll, adapters) => {
            consume::in_rounds(&bench, adapters.as_ref(), &mut rng).await?
        }
        (BenchOp::Mixed, _) => workers::mixed(&bench, &mut rng).await?,
        (BenchOp::Contention, _) => workers::contention(&bench).await?,
        (BenchOp::Churn, _) => workers::churn(&bench, &mut rng).await?,
        (_, _) => return Err(LabError::new("bench", "no such workload")),
    };
    Ok(BenchReport::new(params, backend, measured))
}
