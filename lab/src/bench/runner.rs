//! Running workers and counting what they observe: N tasks, one HDR
//! histogram each, merged at the end, with the client's and the server's
//! CPU around the timed phase.

use std::collections::BTreeMap;
use std::sync::PoisonError;
use std::time::{Duration, Instant};

use authsession_driver::Error;
use hdrhistogram::Histogram;
use rand::rngs::SmallRng;
use rand::seq::IndexedRandom as _;

use super::server::{Adapters, Server, ServerUsage};
use crate::reference::{GoAdapter, GoError};
use crate::LabError;

/// Largest preload batch of one round of a consuming workload, in sessions
/// (bounds the memory of the in-memory store and the preload pause).
pub(crate) const MAX_BATCH_SESSIONS: usize = 400_000;
/// Concurrent `create` calls while preloading.
pub(crate) const PRELOAD_PARALLELISM: usize = 64;
/// Histogram range: 1 ns .. 60 s, 3 significant digits.
const MAX_LATENCY_NS: u64 = 60_000_000_000;

/// What one worker (or the merge of all) observed.
pub(crate) struct Stats {
    pub(crate) latency_ns: Histogram<u64>,
    pub(crate) ops: u64,
    pub(crate) errors: BTreeMap<&'static str, u64>,
    pub(crate) outcomes: BTreeMap<&'static str, u64>,
    /// CPU time this process spent during the timed phases (Linux only).
    pub(crate) client_cpu_ns: Option<u64>,
    /// What the Redis server spent during the timed phases.
    pub(crate) server: Option<ServerUsage>,
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
    pub(crate) fn new() -> Result<Self, LabError> {
        Ok(Self {
            latency_ns: Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3)
                .map_err(|e| LabError::new("bench", format!("histogram: {e}")))?,
            ops: 0,
            errors: BTreeMap::new(),
            outcomes: BTreeMap::new(),
            client_cpu_ns: Some(0),
            server: None,
        })
    }

    /// Records one store call that started at `started`; returns its value
    /// when it succeeded.
    pub(crate) fn record<T>(&mut self, started: Instant, result: Result<T, Error>) -> Option<T> {
        self.record_kind(started, result.map_err(|e| e.kind().as_str()))
    }

    /// [`Stats::record`] for one Go adapter call.
    pub(crate) fn record_go<T>(
        &mut self,
        started: Instant,
        result: Result<T, GoError>,
    ) -> Option<T> {
        self.record_kind(started, result.map_err(|e| e.kind()))
    }

    /// Counts a call that ended as expected (its latency and one op).
    pub(crate) fn ok(&mut self, started: Instant) {
        let elapsed = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.ops += 1;
        self.latency_ns.saturating_record(elapsed.max(1));
    }

    /// [`Stats::record`] for a call that failed with a kind.
    pub(crate) fn record_kind<T>(
        &mut self,
        started: Instant,
        result: Result<T, &'static str>,
    ) -> Option<T> {
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

    pub(crate) fn outcome(&mut self, outcome: &'static str) {
        *self.outcomes.entry(outcome).or_default() += 1;
    }

    pub(crate) fn merge(&mut self, other: Stats) -> Result<(), LabError> {
        self.latency_ns
            .add(&other.latency_ns)
            .map_err(|e| LabError::new("bench", format!("histogram merge: {e:?}")))?;
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

/// Spawns `n` workers running `work(worker_index, stats)` and merges their
/// stats; returns them with the wall time from spawn to the last join.
pub(crate) async fn run_workers<F, Fut>(
    n: usize,
    server: Option<&Server>,
    work: F,
) -> Result<(Stats, Duration), LabError>
where
    F: Fn(usize, Stats) -> Fut,
    Fut: std::future::Future<Output = Result<Stats, LabError>> + Send + 'static,
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
            .map_err(|e| LabError::new("bench", format!("worker failed: {e}")))??;
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
pub(crate) async fn fair_turn() {
    tokio::task::coop::consume_budget().await;
}

/// A random element; the workloads never run on empty sets (validated),
/// so an empty one is reported rather than assumed away.
pub(crate) fn pick<'a, T>(rng: &mut SmallRng, items: &'a [T]) -> Result<&'a T, LabError> {
    items
        .choose(rng)
        .ok_or_else(|| LabError::new("bench", "nothing to pick from"))
}

pub(crate) fn seed(worker: usize, salt: u64) -> u64 {
    (worker as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt
}

/// [`run_workers`] for the Go adapter: worker `i` runs `work(i, adapter,
/// stats)` with adapter `i`, and hands it back with its stats.
pub(crate) async fn run_adapters<F, Fut>(
    adapters: &Adapters,
    server: Option<&Server>,
    work: F,
) -> Result<(Stats, Duration), LabError>
where
    F: Fn(usize, GoAdapter, Stats) -> Fut,
    Fut: std::future::Future<Output = Result<(GoAdapter, Stats), LabError>> + Send + 'static,
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
            .ok_or_else(|| LabError::new("bench", "no Go adapter for a worker"));
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
