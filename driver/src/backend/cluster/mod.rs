//! The Redis Cluster backend: redis-rs's async cluster client (one
//! multiplexed connection per node, slot map refreshed on `MOVED` and
//! failures), the same Redis translation as the standalone backend
//! ([`super::script`]), and the routing a cluster needs on top:
//!
//! - **Single-key reads** (every `get`) go straight to the key's primary
//!   on a connection of our own (one per primary, opened at connect; the
//!   near cache's tracking connections when there is a cache): the
//!   cluster client's routing costs about as much as the read. Any
//!   failure there lists the slots again and sends that read through the
//!   cluster client.
//! - **Reads**: the reads of one step are grouped by hash slot; each
//!   slot's reads go as one pipeline to that slot's primary, every group
//!   at once (one round trip in time). A store's step names keys of one
//!   user — one slot in the tagged layout — except maintenance walks:
//!   `Values` over keys of several slots is split per slot and put back in
//!   order. `Scan` visits every primary in turn (see [`scan::ScanPosition`]).
//! - **Plans**: the generic script by `EVALSHA` on the primary of the
//!   plan's slot — every key of a plan is in one slot by construction of
//!   the tagged layout; a plan that is not is refused before anything is
//!   sent. On `NOSCRIPT` the script is loaded on that primary only (not on
//!   every node, which would wait on any stalled replica) and run again,
//!   in one pipeline (`SCRIPT LOAD`, `EVALSHA`).
//!   With `wait_replicas`, `WAIT` rides in the same pipeline, so it runs on
//!   the same node connection right after the script.
//! - **Retries**: the library's own retries are off (`retries(0)`): after
//!   an I/O error it would resend a script that may already have run.
//!   Here a request is resent only when the server surely did not run it
//!   (`MOVED`, `ASK`, `TRYAGAIN`, `CLUSTERDOWN`, `MASTERDOWN`, `LOADING`,
//!   `READONLY`, no connection to the node, connection refused), after a
//!   short jittered pause, within the round trip's budget; a read (which
//!   changes nothing) is resent after any I/O error too. A script whose
//!   connection broke mid-flight surfaces as a retryable error with an
//!   unknown outcome, exactly as on a standalone server. (Even a resent
//!   script would not apply a change twice: every plan is guarded by
//!   preconditions on the state it was computed from, and its writes are
//!   idempotent — but the operation would then report what the second run
//!   saw, e.g. `conflict` for its own `create`.)

mod reads;
mod scan;
mod send;
mod slots;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use authsession_core::plan::{Applied, Plan, Read, Reply};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{
    MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo, SingleNodeRoutingInfo,
};
use redis::Value;
use tokio::time::Instant;

use super::script::{self, ReplicaWait};
use super::{bounded, Backend, BackendInfo};
use crate::cache::{direct_read, tracked_read, Links, NearCache};
use crate::cluster_config::ClusterConfig;
use crate::error::Error;
use send::Resend;
use slots::{key_slot, shards, slot_route, Node, SlotRange};

/// A Redis Cluster behind one `redis::cluster_async::ClusterConnection`
/// (one multiplexed connection per node). Cheap to clone: clones share the
/// connection.
///
/// Each step's reads go as one pipeline per hash slot to that slot's
/// primary (all slots at once); a scan visits every primary in turn; each
/// plan is one script on the primary of its slot — the tagged layout keeps
/// every plan in one slot, and a plan spanning slots is refused before
/// anything is sent. A request is sent again, within the round trip's
/// budget, only when the server surely did not run it (`MOVED`, `ASK`,
/// `TRYAGAIN`, `CLUSTERDOWN`, `READONLY`, `LOADING`, no connection yet);
/// a script whose connection broke in flight is reported as a retryable
/// error of unknown outcome, never resent behind the caller's back.
#[derive(Clone)]
pub struct ClusterBackend {
    conn: ClusterConnection,
    info: BackendInfo,
    wait: ReplicaWait,
    /// The slot ranges of the primaries, as last listed (for scans, and
    /// the near cache's tracking connections).
    slots: Arc<Mutex<Vec<SlotRange>>>,
    near: Option<Arc<NearCache>>,
    /// Connections of our own to each primary, for single-key reads.
    direct: Option<Arc<Links>>,
}

// The cluster connection has no `Debug` of its own.
impl std::fmt::Debug for ClusterBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterBackend")
            .field("info", &self.info)
            .field("wait", &self.wait)
            .field("near", &self.near)
            .finish_non_exhaustive()
    }
}

impl ClusterBackend {
    /// A backend on a cluster connection the service already has. `info`
    /// names the cluster for spans. Every round trip is bounded by the
    /// store's operation timeout whatever the connection's settings; build
    /// the connection with `.retries(0)` (as [`ClusterBackend::connect`]
    /// does) so that the client never resends a script on its own.
    pub fn from_connection(conn: ClusterConnection, info: BackendInfo) -> Self {
        Self {
            conn,
            info,
            wait: ReplicaWait::default(),
            slots: Arc::new(Mutex::new(Vec::new())),
            near: None,
            direct: None,
        }
    }

    /// Acknowledge a mutation only once `WAIT` on the key's primary
    /// confirms `replicas` of its replicas have it (within `timeout`); 0
    /// turns it off.
    ///
    /// `WAIT` blocks that node's connection until the replicas answer:
    /// with a replica down, every mutation on its primary waits `timeout`
    /// and fails with `write_unconfirmed`.
    pub fn with_wait_replicas(mut self, replicas: u32, timeout: Duration) -> Self {
        self.wait = ReplicaWait { replicas, timeout };
        self
    }

    /// Validates `config` and connects to the cluster through its seeds
    /// (within `operation_timeout`), then checks every primary answers.
    ///
    /// The client follows topology changes by itself: during a failover
    /// operations fail with retryable errors, then succeed again.
    pub async fn connect(config: &ClusterConfig) -> Result<Self, Error> {
        config.validate()?;
        let seeds = config.seeds()?;
        let timeout = config.settings.operation_timeout;
        let access = config.settings.access();
        let client = access
            .cluster_builder(&seeds)?
            .connection_timeout(timeout)
            .response_timeout(timeout)
            // See the module header: resend only what surely did not run.
            .retries(0)
            .build()
            .map_err(|e| Error::config("nodes", e.to_string()))?;
        let conn = bounded(timeout, "connect", client.get_async_connection()).await?;
        let (host, port) = seeds
            .into_iter()
            .next()
            .ok_or_else(|| Error::config("nodes", "name at least one seed node"))?;
        let backend = Self::from_connection(
            conn,
            // A cluster has only database 0.
            BackendInfo::redis(host, port, 0),
        )
        .with_wait_replicas(config.settings.wait_replicas, timeout);
        backend.ping(timeout).await?;
        let near = match config.settings.cache {
            Some(cache) => {
                let first = seeds_first(config)?;
                let make = access.clone().tracking_clients(0);
                Some(Arc::new(
                    NearCache::connect(cache, make, first, timeout).await?,
                ))
            }
            None => None,
        };
        let direct = Arc::new(Links::new(access.tracking_clients(0), timeout, None));
        // Every primary connected now: the first reads pay no connect.
        if let Ok(ranges) = backend.refresh_slots(Instant::now() + timeout).await {
            let primaries: Vec<Node> = shards(&ranges).into_iter().map(|(_, n)| n).collect();
            direct.warm(&primaries, timeout).await;
            if let Some(near) = &near {
                near.links().warm(&primaries, timeout).await;
            }
        }
        Ok(Self {
            near,
            direct: Some(direct),
            ..backend
        })
    }
}

/// The first seed, where the near cache checks the servers can track.
fn seeds_first(config: &ClusterConfig) -> Result<Node, Error> {
    config
        .seeds()?
        .into_iter()
        .next()
        .ok_or_else(|| Error::config("nodes", "name at least one seed node"))
}

impl Backend for ClusterBackend {
    fn info(&self) -> &BackendInfo {
        &self.info
    }

    async fn ping(&self, budget: Duration) -> Result<(), Error> {
        let mut conn = self.conn.clone();
        let every_primary = RoutingInfo::MultiNode((
            MultipleNodeRoutingInfo::AllMasters,
            Some(ResponsePolicy::AllSucceeded),
        ));
        let value = bounded(
            budget,
            "ping",
            conn.route_command(redis::cmd("PING"), every_primary),
        )
        .await?;
        value.extract_error().map_err(|e| Error::redis("ping", e))?;
        Ok(())
    }

    fn near_cache(&self) -> Option<&NearCache> {
        self.near.as_deref()
    }

    async fn read(&self, budget: Duration, reads: &[Read]) -> Result<Vec<Reply>, Error> {
        if let [Read::Value { key }] = reads {
            // One key: straight to its primary on a connection of our own
            // (the cluster client's routing costs about as much as the
            // read); through the near cache's tracking connection with a
            // cache.
            let deadline = Instant::now() + budget;
            let read = match (&self.near, &self.direct) {
                (Some(near), _) => {
                    let node = self.node_of(deadline, key).await;
                    match node {
                        Ok(node) => tracked_read(near, &node, budget, reads).await,
                        Err(_) => None,
                    }
                }
                (None, Some(direct)) => match self.node_of(deadline, key).await {
                    Ok(node) => direct_read(direct, &node, budget, reads).await,
                    Err(_) => None,
                },
                (None, None) => None,
            };
            match read {
                Some(Ok(replies)) => return Ok(replies),
                Some(Err(e)) => {
                    // Another node serves the key now, or its node is gone
                    // (a failover): list the primaries again, and read it
                    // through the cluster client this once (never filled).
                    if let Some(near) = &self.near {
                        near.wrote([key.as_str()]);
                    }
                    let _ = self.refresh_slots(deadline).await;
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(e.into_error());
                    }
                    return self.read_plain(left, reads).await;
                }
                None => {
                    if let Some(near) = &self.near {
                        near.wrote([key.as_str()]);
                    }
                }
            }
        }
        self.read_plain(budget, reads).await
    }

    async fn delete(&self, budget: Duration, keys: &[String]) -> Result<u64, Error> {
        self.delete_plain(budget, keys).await
    }

    async fn apply(&self, budget: Duration, plan: &Plan) -> Result<Applied, Error> {
        let wait = self.wait;
        let invocation = script::Invocation::new(plan, wait, budget)?;
        let mut keys = invocation.keys();
        let Some(first) = keys.next() else {
            return Ok(Applied::Done);
        };
        let slot = key_slot(first.as_bytes());
        if let Some(other) = keys.find(|k| key_slot(k.as_bytes()) != slot) {
            return Err(Error::cross_slot(
                first,
                slot,
                other,
                key_slot(other.as_bytes()),
            ));
        }
        let mut primary = SlotPrimary {
            backend: self,
            route: slot_route(slot),
            deadline: Instant::now() + budget,
        };
        script::invoke(&mut primary, &invocation, budget).await
    }
}

/// The primary of one slot as a connection, for [`script::invoke`]: each
/// pipeline goes to whichever node serves the slot, and is resent (within
/// `deadline`) only when it surely did not run there.
struct SlotPrimary<'a> {
    backend: &'a ClusterBackend,
    route: SingleNodeRoutingInfo,
    deadline: Instant,
}

impl redis::aio::ConnectionLike for SlotPrimary<'_> {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> redis::RedisFuture<'a, Value> {
        Box::pin(async move {
            let values = self
                .backend
                .send(self.deadline, &self.route, &[cmd], Resend::IfRefused)
                .await?;
            Ok(values.into_iter().next().unwrap_or(Value::Nil))
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let cmds: Vec<&redis::Cmd> = pipeline.cmd_iter().collect();
            let values = self
                .backend
                .send(self.deadline, &self.route, &cmds, Resend::IfRefused)
                .await?;
            Ok(values.into_iter().skip(offset).take(count).collect())
        })
    }

    fn get_db(&self) -> i64 {
        0
    }
}
