//! Backends: where plans are applied and reads answered. The operations
//! (the core's state machines, run by [`crate::Store`]) are written once;
//! a backend only translates the core's I/O vocabulary
//! ([`authsession_core::plan`]) into its own: Redis commands and one Lua
//! script on a standalone server or a cluster, or the pure model under a
//! lock in memory.

use std::future::Future;
use std::time::Duration;

use authsession_core::plan::{Applied, Plan, Read, Reply};

use crate::error::Error;

#[cfg(feature = "cluster")]
pub(crate) mod cluster;
pub(crate) mod memory;
pub(crate) mod redis;
pub(crate) mod script;

#[cfg(feature = "cluster")]
pub use self::cluster::ClusterBackend;
pub use self::memory::MemoryBackend;
pub use self::redis::RedisBackend;

/// What a backend tells spans and metrics about itself (OpenTelemetry
/// database semantic conventions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendInfo {
    /// `db.system.name`: `redis` (or `memory` for the in-memory model).
    pub system: &'static str,
    /// `server.address` of the (first) server, when there is one.
    pub address: Option<String>,
    /// `server.port`.
    pub port: Option<u16>,
    /// `db.namespace`: the database index.
    pub namespace: Option<String>,
}

impl BackendInfo {
    /// A Redis server (or the first seed of a cluster) at `host:port`,
    /// database `db`.
    pub fn redis(host: String, port: u16, db: i64) -> Self {
        Self {
            system: "redis",
            address: Some(host),
            port: Some(port),
            namespace: Some(db.to_string()),
        }
    }
}

/// A store's storage. Every call is one round trip (bounded by `budget`)
/// for a server, one lock for memory.
pub trait Backend: Send + Sync + 'static {
    /// Who this backend talks to.
    fn info(&self) -> &BackendInfo;

    /// The server answers (one `PING`).
    fn ping(&self, budget: Duration) -> impl Future<Output = Result<(), Error>> + Send;

    /// Answers `reads` in one round trip (pipelined), in order; a key of
    /// the wrong type answers [`Reply::WrongType`].
    fn read(
        &self,
        budget: Duration,
        reads: &[Read],
    ) -> impl Future<Output = Result<Vec<Reply>, Error>> + Send;

    /// Applies `plan` atomically: every precondition holds and every write
    /// is made, or nothing is written. (The one exception, a write refused
    /// part-way by a server that cannot check writes up front — Redis 6.2's
    /// ACL — leaves a prefix of the writes in [`Plan::write_phases`] order,
    /// which fails safe.)
    ///
    /// [`Plan::write_phases`]: authsession_core::plan::Plan::write_phases
    fn apply(
        &self,
        budget: Duration,
        plan: &Plan,
    ) -> impl Future<Output = Result<Applied, Error>> + Send;

    /// Deletes `keys` whatever they hold (maintenance: `purge`); returns
    /// how many existed.
    fn delete(
        &self,
        budget: Duration,
        keys: &[String],
    ) -> impl Future<Output = Result<u64, Error>> + Send;

    /// The near cache, when this backend keeps one (`cache` in its config).
    fn near_cache(&self) -> Option<&crate::NearCache> {
        None
    }

    /// Waits `pause` before the next attempt of a contended operation.
    fn pause(&self, pause: Duration) -> impl Future<Output = ()> + Send {
        tokio::time::sleep(pause)
    }
}

/// Runs one round trip within `budget`: the single place a backend's I/O
/// is bounded.
pub(crate) async fn bounded<T>(
    budget: Duration,
    op: &'static str,
    fut: impl Future<Output = Result<T, ::redis::RedisError>>,
) -> Result<T, Error> {
    match tokio::time::timeout(budget, fut).await {
        Ok(result) => result.map_err(|e| Error::redis(op, e)),
        Err(_) => Err(Error::timeout(op, budget)),
    }
}
