//! What the Redis server behind a run measures and provides: its CPU and
//! command counters around the timed phases (`INFO`), its keys and memory
//! (`DBSIZE`, `INFO memory`), and the Go adapters' own connections.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use authsession_core::KeySpace;
use authsession_driver::SessionStore;
use serde::Serialize;

use super::BenchParams;
use crate::reference::GoAdapter;
use crate::LabError;

/// The Redis server a bench runs against, for what the store does not
/// expose: dedicated connections for the Go adapter's command sequences,
/// and `DBSIZE` / `INFO memory`.
#[derive(Debug, Clone)]
pub struct Server {
    client: redis::Client,
}

/// What the server spent during the timed phases: its CPU (`INFO cpu`,
/// user + system, I/O included) and, per command, calls and execution
/// time (`INFO commandstats`; commands inside MULTI/EXEC and scripts are
/// counted too).
#[derive(Debug, Clone, Default)]
pub(crate) struct ServerUsage {
    pub(crate) cpu_us: f64,
    pub(crate) commands: BTreeMap<String, (u64, u64)>,
}

impl ServerUsage {
    /// `self - before` (counters only grow; a reset shows as zero).
    pub(crate) fn since(&self, before: &ServerUsage) -> ServerUsage {
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

    pub(crate) fn add(&mut self, other: &ServerUsage) {
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
    pub(crate) calls: f64,
    pub(crate) usec: f64,
}

/// Keys and memory of the server at one instant.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Footprint {
    pub(crate) keys: u64,
    pub(crate) used_memory: u64,
}

/// Connecting and every read or write of a Go adapter connection (the
/// store's default operation timeout).
const REFERENCE_TIMEOUT: Duration = Duration::from_secs(1);

impl Server {
    /// The server at `url` (no connection is made yet).
    pub fn open(url: &str) -> Result<Self, LabError> {
        let client = redis::Client::open(url)
            .map_err(|e| LabError::new("config", format!("--redis-url: {e}")))?;
        Ok(Self { client })
    }

    /// A blocking connection of its own, for the figures the store does
    /// not expose.
    fn probe(&self) -> redis::RedisResult<redis::Connection> {
        self.client.get_connection_with_timeout(REFERENCE_TIMEOUT)
    }

    /// The server's keys (`DBSIZE`) and `used_memory` now.
    pub(crate) fn footprint(&self) -> Result<Footprint, LabError> {
        let failed = |e: redis::RedisError| LabError::new("backend", format!("DBSIZE/INFO: {e}"));
        let mut conn = self.probe().map_err(failed)?;
        let keys: u64 = redis::cmd("DBSIZE").query(&mut conn).map_err(failed)?;
        let info: String = redis::cmd("INFO")
            .arg("memory")
            .query(&mut conn)
            .map_err(failed)?;
        let used_memory = info
            .lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| LabError::new("backend", "INFO memory has no used_memory"))?;
        Ok(Footprint { keys, used_memory })
    }

    /// The server's CPU and command counters now. The probe's own commands
    /// (`INFO`, the connection's `CLIENT SETINFO`) are left out.
    pub(crate) fn usage(&self) -> Result<ServerUsage, LabError> {
        let failed = |e: redis::RedisError| LabError::new("backend", format!("INFO: {e}"));
        let mut conn = self.probe().map_err(failed)?;
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
    async fn adapters(&self, n: usize, keys: &KeySpace) -> Result<Adapters, LabError> {
        let mut adapters = Vec::with_capacity(n);
        for _ in 0..n {
            let adapter = GoAdapter::connect(&self.client, keys.clone(), REFERENCE_TIMEOUT)
                .await
                .map_err(|e| LabError::new("backend", format!("connecting to redis: {e}")))?;
            adapters.push(Some(adapter));
        }
        Ok(Arc::new(Mutex::new(adapters)))
    }
}

/// One Go adapter per worker: worker `i` takes slot `i` for a timed phase
/// and puts it back afterwards (connections outlive the rounds).
pub(crate) type Adapters = Arc<Mutex<Vec<Option<GoAdapter>>>>;

/// The Go adapters a reference workload needs (`None` for the others).
pub(crate) async fn adapters_for<S: SessionStore>(
    store: &S,
    params: &BenchParams,
    server: Option<&Server>,
) -> Result<Option<Adapters>, LabError> {
    if !params.op.is_reference() {
        return Ok(None);
    }
    let server = server.ok_or_else(|| {
        LabError::usage("the Go adapter's command sequences need a standalone Redis server")
    })?;
    server
        .adapters(params.concurrency, store.key_space())
        .await
        .map(Some)
}
