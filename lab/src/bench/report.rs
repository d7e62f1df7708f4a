//! The JSON line `bench` prints, built from what the workload measured.

use std::collections::BTreeMap;

use serde::Serialize;

use super::server::CommandCost;
use super::{interrupted, BenchOp, BenchParams, Measured};

/// The JSON line `bench` prints. `ops` and the latency percentiles count
/// successful store calls; failed ones are counted in `errors` by kind.
/// `outcomes` counts revoke outcomes (and contention's creates).
#[derive(Debug, Serialize)]
pub struct BenchReport {
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
    cache: Option<authsession_driver::CacheStats>,
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
    pub fn is_clean(&self) -> bool {
        !self.interrupted
            && self.errors.is_empty()
            && self.invariants.as_ref().is_none_or(|i| i.consistent)
    }

    /// What the near cache did over the whole run (`--cache`).
    pub fn set_cache(&mut self, cache: Option<authsession_driver::CacheStats>) {
        self.cache = cache;
    }

    /// The report of a run of `params` on `backend` that measured
    /// `measured`.
    pub(crate) fn new(params: &BenchParams, backend: &str, measured: Measured) -> Self {
        let Measured {
            stats,
            elapsed,
            preloaded,
            invariants,
            footprints,
        } = measured;
        let secs = elapsed.as_secs_f64();
        let h = &stats.latency_ns;
        let measured_ops = Some(stats.ops).filter(|&ops| ops > 0);
        let server = stats.server.as_ref().filter(|_| stats.ops > 0);
        BenchReport {
            op: params.op,
            backend: backend.to_owned(),
            concurrency: params.concurrency,
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
                .zip(measured_ops)
                .map(|(ns, ops)| us(ns / ops)),
            server_cpu_us_per_op: server.map(|u| round1(u.cpu_us / stats.ops as f64)),
            server_commands_per_op: server.map(|u| per_op(&u.commands, stats.ops)),
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
        }
    }
}

/// Per command, calls and execution µs per op (two decimals).
fn per_op(commands: &BTreeMap<String, (u64, u64)>, ops: u64) -> BTreeMap<String, CommandCost> {
    let per_op = |n: u64| (n as f64 / ops as f64 * 100.0).round() / 100.0;
    commands
        .iter()
        .map(|(name, (calls, usec))| {
            let cost = CommandCost {
                calls: per_op(*calls),
                usec: per_op(*usec),
            };
            (name.clone(), cost)
        })
        .collect()
}

/// Record/index agreement after a `contention` run (from `check`).
#[derive(Debug, Serialize)]
pub(crate) struct Invariants {
    pub(crate) consistent: bool,
    pub(crate) records: usize,
    pub(crate) index_entries: usize,
    pub(crate) problems: usize,
    pub(crate) problem_kinds: BTreeMap<&'static str, u64>,
    pub(crate) active_sessions: u64,
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn us(ns: u64) -> f64 {
    // Nanoseconds to microseconds, one decimal.
    (ns as f64 / 100.0).round() / 10.0
}
