//! The standalone Redis backend: one multiplexed, self-reconnecting
//! connection (`redis::aio::ConnectionManager`); reads are pipelined plain
//! commands, every plan is one generic Lua script (no `WATCH`, which is
//! unsafe on a shared connection).

use std::time::Duration;

use authsession_core::plan::{Applied, Plan, Read, Reply, ScanCursor};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use std::sync::Arc;

use super::script::{self, ReplicaWait};
use super::{bounded, Backend, BackendInfo};
use crate::cache::{tracked_read, NearCache, Node, TrackedError};
use crate::config::RedisConfig;
use crate::error::Error;

/// A standalone Redis server (or anything speaking its protocol with Lua
/// scripting) behind one `ConnectionManager`. Cheap to clone: clones share
/// the connection.
#[derive(Clone, Debug)]
pub struct RedisBackend {
    conn: ConnectionManager,
    info: BackendInfo,
    wait: ReplicaWait,
    /// The near cache and the server its tracking connection goes to.
    near: Option<(Arc<NearCache>, Node)>,
}

impl RedisBackend {
    /// A backend on a connection the service already has. `info` names the
    /// server for spans (address, port, db).
    pub fn from_connection(conn: ConnectionManager, info: BackendInfo) -> Self {
        Self {
            conn,
            info,
            wait: ReplicaWait::default(),
            near: None,
        }
    }

    /// Acknowledge a mutation only once `WAIT` confirms `replicas` replicas
    /// have it (within `timeout`); 0 turns it off.
    pub fn with_wait_replicas(mut self, replicas: u32, timeout: Duration) -> Self {
        self.wait = ReplicaWait { replicas, timeout };
        self
    }

    /// Validates `config` and connects (within `operation_timeout`).
    ///
    /// The connection reconnects by itself after a failure: operations fail
    /// fast with `backend` (or `timeout`) errors while the server is
    /// unreachable and succeed again once it is back.
    pub async fn connect(config: &RedisConfig) -> Result<Self, Error> {
        config.validate()?;
        let (host, port) = config.host_port()?;
        let access = config.settings.access();
        let client = access.client(access.info(&host, port, config.db)?)?;
        let timeout = config.settings.operation_timeout;
        let near = match config.settings.cache {
            Some(cache) => {
                // The same server, credentials and TLS, over RESP3 (pushes).
                let make = access.tracking_clients(config.db);
                let node = (host.clone(), port);
                let near = NearCache::connect(cache, make, node.clone(), timeout).await?;
                Some((Arc::new(near), node))
            }
            None => None,
        };
        // One connection attempt per reconnect, bounded by the operation
        // timeout: while the server is down, callers get the connection
        // error at once instead of queueing behind a backoff loop, and the
        // next call tries again. No response timeout of redis-rs's own:
        // every round trip is bounded by what is left of its operation's
        // budget already (`bounded`), and a second timer per request costs
        // a timer registration (at low concurrency, a wake-up of the
        // runtime's driver) for nothing.
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(None)
            .set_number_of_retries(0);
        let manager = ConnectionManager::new_with_config(client, manager_config);
        let conn = bounded(timeout, "connect", manager).await?;
        let backend = Self::from_connection(conn, BackendInfo::redis(host, port, config.db))
            .with_wait_replicas(config.settings.wait_replicas, timeout);
        let backend = Self { near, ..backend };
        // Without credentials the server accepts the connection and refuses
        // the first command: surface that (and any other refusal) here, as
        // a clear error of `connect`, not of some later operation.
        backend.ping(timeout).await?;
        Ok(backend)
    }
}

impl Backend for RedisBackend {
    fn info(&self) -> &BackendInfo {
        &self.info
    }

    async fn ping(&self, budget: Duration) -> Result<(), Error> {
        let mut conn = self.conn.clone();
        let _: String = bounded(budget, "ping", redis::cmd("PING").query_async(&mut conn)).await?;
        Ok(())
    }

    fn near_cache(&self) -> Option<&NearCache> {
        self.near.as_ref().map(|(near, _)| &**near)
    }

    async fn read(&self, budget: Duration, reads: &[Read]) -> Result<Vec<Reply>, Error> {
        if let Some((near, node)) = &self.near {
            if let Some(replies) = tracked_read(near, node, budget, reads).await {
                return replies.map_err(TrackedError::into_error);
            }
        }
        if let [read] = reads {
            // One command needs no pipeline (and none of its buffers).
            let cursor = match read {
                Read::Scan { cursor, .. } => cursor.as_str(),
                _ => "",
            };
            let mut conn = self.conn.clone();
            let cmd = script::command(read, cursor);
            let value = match tokio::time::timeout(
                budget,
                cmd.query_async::<redis::Value>(&mut conn),
            )
            .await
            {
                Ok(Ok(value)) => value,
                Ok(Err(e)) if e.code() == Some("WRONGTYPE") => return Ok(vec![Reply::WrongType]),
                Ok(Err(e)) => return Err(Error::redis("read", e)),
                Err(_) => return Err(Error::timeout("read", budget)),
            };
            let reply = script::reply(read, value, "read", |next| {
                next.map(ScanCursor::from_backend)
            })?;
            return Ok(vec![reply]);
        }
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for read in reads {
            let cursor = match read {
                Read::Scan { cursor, .. } => cursor.as_str(),
                _ => "",
            };
            pipe.add_command(script::command(read, cursor));
        }
        let mut conn = self.conn.clone();
        let values: Vec<redis::Value> =
            bounded(budget, "read", pipe.query_async(&mut conn)).await?;
        if values.len() != reads.len() {
            return Err(Error::unsupported("pipeline reply count".to_owned()));
        }
        reads
            .iter()
            .zip(values)
            .map(|(read, value)| {
                script::reply(read, value, "read", |next| {
                    next.map(ScanCursor::from_backend)
                })
            })
            .collect()
    }

    async fn delete(&self, budget: Duration, keys: &[String]) -> Result<u64, Error> {
        if keys.is_empty() {
            return Ok(0);
        }
        let mut conn = self.conn.clone();
        bounded(
            budget,
            "unlink",
            redis::cmd("UNLINK").arg(keys).query_async(&mut conn),
        )
        .await
    }

    async fn apply(&self, budget: Duration, plan: &Plan) -> Result<Applied, Error> {
        let wait = self.wait;
        let invocation = script::Invocation::new(plan, wait, budget)?;
        script::invoke(&mut self.conn.clone(), &invocation, budget).await
    }
}
