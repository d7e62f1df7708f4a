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
//!   order. `Scan` visits every primary in turn (see [`ScanPosition`]).
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

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use authsession_core::plan::{Applied, Plan, Read, Reply, ScanCursor};
use futures_util::future::{try_join, try_join_all};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{
    MultipleNodeRoutingInfo, ResponsePolicy, Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr,
};
use redis::{ErrorKind as RedisErrorKind, RedisError, ServerErrorKind, Value};
use tokio::time::Instant;

use super::script::{self, ReplicaWait};
use super::{bounded, Backend, BackendInfo};
use crate::cache::{direct_read, tracked_read, Links, NearCache};
use crate::cluster_config::ClusterConfig;
use crate::error::{retry_of, Error, Retry};

/// Number of hash slots of a Redis Cluster.
const SLOTS: u16 = 16384;
/// First pause before resending a refused request.
const FIRST_PAUSE: Duration = Duration::from_millis(2);
/// Longest pause between two sends of one request.
const MAX_PAUSE: Duration = Duration::from_millis(100);

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

/// Which requests may be sent again after an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resend {
    /// Only when the server surely did not run it (scripts, deletes).
    IfRefused,
    /// Also after an I/O error that may have happened after it ran
    /// (reads: running them twice changes nothing).
    IfUnanswered,
}

/// One primary's slots.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SlotRange {
    start: u16,
    end: u16,
    host: String,
    port: u16,
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
        let timeout = config.operation_timeout;
        let access = config.access();
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
            BackendInfo {
                system: "redis",
                address: Some(host),
                port: Some(port),
                namespace: Some("0".to_owned()),
            },
        )
        .with_wait_replicas(config.wait_replicas, timeout);
        backend.ping(timeout).await?;
        let near = match config.cache {
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

    /// Sends `cmds` as one pipeline to `route` (or, after `ASK`, to the
    /// node named, each command preceded by `ASKING`), resending while
    /// `resend` allows and the deadline is not near.
    async fn send(
        &self,
        deadline: Instant,
        route: &SingleNodeRoutingInfo,
        cmds: &[impl Borrow<redis::Cmd> + Sync],
        resend: Resend,
    ) -> Result<Vec<Value>, RedisError> {
        let mut attempt = 0u32;
        let mut asking: Option<SingleNodeRoutingInfo> = None;
        loop {
            let target = asking.clone().unwrap_or_else(|| route.clone());
            let result = self.send_once(&target, cmds, asking.is_some()).await;
            let err = match result {
                Ok(values) => return Ok(values),
                Err(err) => err,
            };
            if !may_resend(&err, resend) {
                return Err(err);
            }
            asking = (err.kind() == RedisErrorKind::Server(ServerErrorKind::Ask))
                .then(|| err.redirect_node().and_then(|(addr, _)| by_address(addr)))
                .flatten();
            let pause = if asking.is_some() {
                Duration::ZERO
            } else {
                pause_before(attempt)
            };
            if Instant::now() + pause >= deadline {
                return Err(err);
            }
            tokio::time::sleep(pause).await;
            attempt = attempt.saturating_add(1);
        }
    }

    /// One pipeline to one node.
    async fn send_once(
        &self,
        route: &SingleNodeRoutingInfo,
        cmds: &[impl Borrow<redis::Cmd>],
        asking: bool,
    ) -> Result<Vec<Value>, RedisError> {
        let mut pipe = redis::pipe();
        for cmd in cmds {
            let cmd = cmd.borrow();
            if asking && !is_keyless(cmd) {
                pipe.cmd("ASKING");
            }
            pipe.add_command(cmd.clone());
        }
        let count = pipe.len();
        let mut conn = self.conn.clone();
        let values = conn.route_pipeline(pipe, 0, count, route.clone()).await?;
        if !asking {
            return Ok(values);
        }
        // Drop the `ASKING` replies (each `OK`, or an error that the
        // command after it reports again).
        let mut out = Vec::with_capacity(cmds.len());
        let mut values = values.into_iter();
        for cmd in cmds {
            if !is_keyless(cmd.borrow()) {
                values.next();
            }
            out.extend(values.next());
        }
        Ok(out)
    }

    /// The primaries' slot ranges, listed afresh (`CLUSTER SLOTS`).
    async fn refresh_slots(&self, deadline: Instant) -> Result<Vec<SlotRange>, RedisError> {
        let cmd = redis::cmd("CLUSTER").arg("SLOTS").to_owned();
        let values = self
            .send(
                deadline,
                &SingleNodeRoutingInfo::RandomPrimary,
                &[cmd],
                Resend::IfUnanswered,
            )
            .await?;
        let value = values
            .into_iter()
            .next()
            .unwrap_or(Value::Nil)
            .extract_error()?;
        let fallback = self.info.address.as_deref().unwrap_or("127.0.0.1");
        let ranges = parse_slots(&value, fallback).ok_or_else(|| {
            RedisError::from((
                RedisErrorKind::Parse,
                "unexpected CLUSTER SLOTS reply",
                format!("{value:?}"),
            ))
        })?;
        *self.slots.lock().unwrap_or_else(PoisonError::into_inner) = ranges.clone();
        Ok(ranges)
    }

    /// One page of a scan over every primary: the reply value (SCAN's own)
    /// and the cursor to continue from.
    async fn scan(
        &self,
        deadline: Instant,
        read: &Read,
        cursor: &ScanCursor,
    ) -> Result<(Value, Option<ScanCursor>), RedisError> {
        let position = ScanPosition::parse(cursor.as_str())?;
        let mut ranges = {
            let cached = self
                .slots
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            if position.is_none() || cached.is_empty() {
                self.refresh_slots(deadline).await?
            } else {
                cached
            }
        };
        let mut attempt = 0u32;
        loop {
            let shards = shards(&ranges);
            let Some(first) = shards.first() else {
                return Err(RedisError::from((
                    RedisErrorKind::Parse,
                    "CLUSTER SLOTS lists no primary",
                )));
            };
            // Where this page goes: the primary now serving the position's
            // slot. Another node than the cursor's (a failover) starts that
            // shard over: a server cursor means nothing on another node.
            let (slot, server_cursor, node) = match &position {
                None => (first.0, "0".to_owned(), first.1.clone()),
                Some(p) => {
                    let node = owner(&ranges, p.slot).ok_or_else(|| {
                        RedisError::from((RedisErrorKind::Parse, "no primary serves a slot"))
                    })?;
                    let cursor = if node == p.node {
                        p.server_cursor.clone()
                    } else {
                        "0".to_owned()
                    };
                    (p.slot, cursor, node)
                }
            };
            let cmd = script::command(read, &server_cursor);
            let route = SingleNodeRoutingInfo::ByAddress {
                host: node.0.clone(),
                port: node.1,
            };
            let err = match self.send_once(&route, &[cmd], false).await {
                Ok(values) => {
                    let value = values.into_iter().next().unwrap_or(Value::Nil);
                    let next = match scan_cursor_of(&value) {
                        Some(next) if next != "0" => Some(ScanPosition {
                            slot,
                            server_cursor: next,
                            node,
                        }),
                        // This primary is done: the next one by first slot.
                        _ => {
                            let this = shards
                                .iter()
                                .find(|(_, n)| *n == node)
                                .map_or(slot, |(s, _)| *s);
                            shards
                                .iter()
                                .find(|(s, _)| *s > this)
                                .map(|(s, n)| ScanPosition {
                                    slot: *s,
                                    server_cursor: "0".to_owned(),
                                    node: n.clone(),
                                })
                        }
                    };
                    return Ok((value, next.map(|p| ScanCursor::from_backend(p.text()))));
                }
                Err(err) => err,
            };
            // The node may be gone (failover): list the primaries again.
            let pause = pause_before(attempt);
            if !may_resend(&err, Resend::IfUnanswered) || Instant::now() + pause >= deadline {
                return Err(err);
            }
            tokio::time::sleep(pause).await;
            attempt = attempt.saturating_add(1);
            ranges = self.refresh_slots(deadline).await?;
        }
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

/// The hash slot of `key`, as Redis and redis-rs compute it: CRC16/XMODEM
/// (the `crc16` crate redis-rs uses) of the key, or of its `{tag}` when it
/// has a non-empty one, modulo 16384. (redis-rs computes the same in
/// `Slot::for_key` but does not expose the number.)
pub(crate) fn key_slot(key: &[u8]) -> u16 {
    let hashed = hash_tag(key).unwrap_or(key);
    crc16::State::<crc16::XMODEM>::calculate(hashed) % SLOTS
}

fn hash_tag(key: &[u8]) -> Option<&[u8]> {
    let open = key.iter().position(|&b| b == b'{')?;
    let rest = key.get(open + 1..)?;
    let close = rest.iter().position(|&b| b == b'}')?;
    rest.get(..close).filter(|tag| !tag.is_empty())
}

fn slot_route(slot: u16) -> SingleNodeRoutingInfo {
    SingleNodeRoutingInfo::SpecificNode(Route::new(slot, SlotAddr::Master))
}

/// `host:port` (as `MOVED`/`ASK` name a node) as a route.
fn by_address(addr: &str) -> Option<SingleNodeRoutingInfo> {
    let (host, port) = addr.rsplit_once(':')?;
    Some(SingleNodeRoutingInfo::ByAddress {
        host: host.to_owned(),
        port: port.parse().ok()?,
    })
}

/// Commands that name no key (no `ASKING` before them).
fn is_keyless(cmd: &redis::Cmd) -> bool {
    matches!(
        cmd.args_iter().next(),
        Some(redis::Arg::Simple(name)) if name.eq_ignore_ascii_case(b"WAIT")
            || name.eq_ignore_ascii_case(b"SCRIPT")
    )
}

/// Whether `err` lets the request be sent again: always when the server
/// surely did not run it, and after an I/O error too for requests that
/// change nothing.
fn may_resend(err: &RedisError, resend: Resend) -> bool {
    match retry_of(err) {
        Retry::Refused => true,
        Retry::Unanswered => resend == Resend::IfUnanswered,
        Retry::TimedOut | Retry::Never => false,
    }
}

/// A jittered pause before send number `attempt + 2`: from 1–2 ms,
/// doubling, up to 50–100 ms (a failover takes seconds; a redirect is
/// followed at once).
fn pause_before(attempt: u32) -> Duration {
    let cap = FIRST_PAUSE
        .checked_mul(1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX))
        .unwrap_or(MAX_PAUSE)
        .min(MAX_PAUSE);
    let nanos = u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rand::random_range(nanos / 2..=nanos))
}

/// `CLUSTER SLOTS` → the primaries' ranges, sorted by first slot.
fn parse_slots(value: &Value, fallback_host: &str) -> Option<Vec<SlotRange>> {
    let Value::Array(ranges) = value else {
        return None;
    };
    let mut out = Vec::with_capacity(ranges.len());
    for range in ranges {
        let Value::Array(items) = range else {
            return None;
        };
        let int = |v: Option<&Value>| match v {
            Some(Value::Int(n)) => u16::try_from(*n).ok(),
            _ => None,
        };
        let start = int(items.first())?;
        let end = int(items.get(1))?;
        let Some(Value::Array(primary)) = items.get(2) else {
            return None;
        };
        let host = match primary.first() {
            Some(Value::BulkString(b)) => String::from_utf8(b.clone()).ok()?,
            Some(Value::SimpleString(s)) => s.clone(),
            _ => return None,
        };
        // An empty or unknown endpoint means "the node you asked".
        let host = if host.is_empty() || host == "?" {
            fallback_host.to_owned()
        } else {
            host
        };
        let port = int(primary.get(1))?;
        out.push(SlotRange {
            start,
            end,
            host,
            port,
        });
    }
    out.sort_by_key(|r| r.start);
    Some(out)
}

type Node = (String, u16);

/// Every primary once, with its lowest slot, ordered by it.
fn shards(ranges: &[SlotRange]) -> Vec<(u16, Node)> {
    let mut first: BTreeMap<Node, u16> = BTreeMap::new();
    for r in ranges {
        let slot = first.entry((r.host.clone(), r.port)).or_insert(r.start);
        *slot = (*slot).min(r.start);
    }
    let mut out: Vec<(u16, Node)> = first.into_iter().map(|(n, s)| (s, n)).collect();
    out.sort();
    out
}

fn owner(ranges: &[SlotRange], slot: u16) -> Option<Node> {
    ranges
        .iter()
        .find(|r| r.start <= slot && slot <= r.end)
        .map(|r| (r.host.clone(), r.port))
}

/// SCAN's next cursor from its reply.
fn scan_cursor_of(value: &Value) -> Option<String> {
    let Value::Array(items) = value else {
        return None;
    };
    match items.first()? {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Where a scan over every primary stands: the shard (named by the lowest
/// slot of its primary when the page was read), that primary's address
/// and its own SCAN cursor. As text: `{slot}:{cursor}@{host}:{port}`.
/// Primaries are visited by increasing first slot; after a failover the
/// shard's new primary is scanned from its start (keys may repeat, as
/// scans allow; none present throughout is skipped). Slots moving between
/// primaries during a scan (resharding) void that guarantee for their
/// keys.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ScanPosition {
    slot: u16,
    server_cursor: String,
    node: Node,
}

impl ScanPosition {
    /// `None` for the start of a scan.
    fn parse(text: &str) -> Result<Option<Self>, RedisError> {
        if text.is_empty() {
            return Ok(None);
        }
        let invalid = || {
            RedisError::from((
                RedisErrorKind::Client,
                "invalid cluster scan cursor",
                text.to_owned(),
            ))
        };
        let (position, node) = text.split_once('@').ok_or_else(invalid)?;
        let (slot, cursor) = position.split_once(':').ok_or_else(invalid)?;
        let (host, port) = node.rsplit_once(':').ok_or_else(invalid)?;
        let slot: u16 = slot.parse().map_err(|_| invalid())?;
        if slot >= SLOTS
            || host.is_empty()
            || cursor.is_empty()
            || !cursor.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(invalid());
        }
        Ok(Some(Self {
            slot,
            server_cursor: cursor.to_owned(),
            node: (host.to_owned(), port.parse().map_err(|_| invalid())?),
        }))
    }

    fn text(&self) -> String {
        format!(
            "{}:{}@{}:{}",
            self.slot, self.server_cursor, self.node.0, self.node.1
        )
    }
}

/// How one read is answered: whole by one command, or (`Values` over
/// several slots) in slices.
#[derive(Debug)]
enum Part {
    Whole(usize),
    Slice {
        read: usize,
        positions: Vec<usize>,
        sub: Read,
    },
}

/// The reads of one step grouped by slot.
#[derive(Debug, Default)]
struct ReadPlan {
    by_slot: BTreeMap<u16, (Vec<redis::Cmd>, Vec<Part>)>,
    scans: Vec<usize>,
    empty: Vec<usize>,
}

impl ReadPlan {
    fn new(reads: &[Read]) -> Result<Self, Error> {
        let mut plan = Self::default();
        for (i, read) in reads.iter().enumerate() {
            match read {
                Read::Scan { .. } => plan.scans.push(i),
                Read::Values { keys } if keys.is_empty() => plan.empty.push(i),
                Read::Values { keys } => {
                    let mut slots: BTreeMap<u16, (Vec<usize>, Vec<String>)> = BTreeMap::new();
                    for (position, key) in keys.iter().enumerate() {
                        let slice = slots.entry(key_slot(key.as_bytes())).or_default();
                        slice.0.push(position);
                        slice.1.push(key.clone());
                    }
                    if slots.len() == 1 {
                        if let Some(&slot) = slots.keys().next() {
                            plan.add(slot, read, Part::Whole(i));
                        }
                    } else {
                        for (slot, (positions, keys)) in slots {
                            let sub = Read::Values { keys };
                            let cmd = script::command(&sub, "");
                            plan.add_cmd(
                                slot,
                                cmd,
                                Part::Slice {
                                    read: i,
                                    positions,
                                    sub,
                                },
                            );
                        }
                    }
                }
                other => {
                    let (key, _) = other
                        .typed_key()
                        .ok_or_else(|| Error::unsupported(format!("{other:?}")))?;
                    plan.add(key_slot(key.as_bytes()), other, Part::Whole(i));
                }
            }
        }
        Ok(plan)
    }

    fn add(&mut self, slot: u16, read: &Read, part: Part) {
        self.add_cmd(slot, script::command(read, ""), part);
    }

    fn add_cmd(&mut self, slot: u16, cmd: redis::Cmd, part: Part) {
        let group = self.by_slot.entry(slot).or_default();
        group.0.push(cmd);
        group.1.push(part);
    }
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
        let deleted = self.delete_plain(budget, keys).await;
        if let Some(near) = &self.near {
            near.wrote(keys.iter().map(String::as_str));
        }
        deleted
    }

    async fn apply(&self, budget: Duration, plan: &Plan) -> Result<Applied, Error> {
        let applied = self.apply_plan(budget, plan).await;
        if let Some(near) = &self.near {
            // Whatever the outcome (a timeout's is unknown): read-your-writes.
            near.wrote(plan.writes().iter().map(|w| w.key()));
        }
        applied
    }
}

impl ClusterBackend {
    /// The primary serving `key`'s slot, as last listed (listed now if
    /// never).
    async fn node_of(&self, deadline: Instant, key: &str) -> Result<Node, RedisError> {
        let slot = key_slot(key.as_bytes());
        let cached = owner(
            &self.slots.lock().unwrap_or_else(PoisonError::into_inner),
            slot,
        );
        match cached {
            Some(node) => Ok(node),
            None => {
                let ranges = self.refresh_slots(deadline).await?;
                owner(&ranges, slot).ok_or_else(|| {
                    RedisError::from((RedisErrorKind::Parse, "no primary serves a slot"))
                })
            }
        }
    }

    async fn read_plain(&self, budget: Duration, reads: &[Read]) -> Result<Vec<Reply>, Error> {
        let plan = ReadPlan::new(reads)?;
        let deadline = Instant::now() + budget;
        let groups = plan.by_slot.iter().map(|(slot, (cmds, _))| async move {
            let values = self
                .send(deadline, &slot_route(*slot), cmds, Resend::IfUnanswered)
                .await?;
            Ok::<_, RedisError>(values)
        });
        let scans = plan
            .scans
            .iter()
            .filter_map(|&i| match reads.get(i) {
                Some(read @ Read::Scan { cursor, .. }) => Some((read, cursor)),
                _ => None,
            })
            .map(|(read, cursor)| self.scan(deadline, read, cursor));
        let (groups, scans) = bounded(
            budget,
            "read",
            try_join(try_join_all(groups), try_join_all(scans)),
        )
        .await?;

        let mut replies: Vec<Option<Reply>> = vec![None; reads.len()];
        let mut slices: BTreeMap<usize, Vec<Option<Vec<u8>>>> = BTreeMap::new();
        for ((_, (_, parts)), values) in plan.by_slot.iter().zip(groups) {
            if values.len() != parts.len() {
                return Err(Error::unsupported("pipeline reply count".to_owned()));
            }
            for (part, value) in parts.iter().zip(values) {
                match part {
                    Part::Whole(i) => {
                        let read = reads.get(*i).ok_or_else(read_mismatch)?;
                        let reply = script::reply(read, value, "read", |_| None)?;
                        if let Some(slot) = replies.get_mut(*i) {
                            *slot = Some(reply);
                        }
                    }
                    Part::Slice {
                        read,
                        positions,
                        sub,
                    } => {
                        let Reply::Values(values) = script::reply(sub, value, "read", |_| None)?
                        else {
                            return Err(read_mismatch());
                        };
                        let len = match reads.get(*read) {
                            Some(Read::Values { keys }) => keys.len(),
                            _ => return Err(read_mismatch()),
                        };
                        let whole = slices.entry(*read).or_insert_with(|| vec![None; len]);
                        for (&position, value) in positions.iter().zip(values) {
                            if let Some(slot) = whole.get_mut(position) {
                                *slot = value;
                            }
                        }
                    }
                }
            }
        }
        for (i, values) in slices {
            if let Some(slot) = replies.get_mut(i) {
                *slot = Some(Reply::Values(values));
            }
        }
        for i in plan.empty {
            if let Some(slot) = replies.get_mut(i) {
                *slot = Some(Reply::Values(Vec::new()));
            }
        }
        for (&i, (value, next)) in plan.scans.iter().zip(scans) {
            let read = reads.get(i).ok_or_else(read_mismatch)?;
            let reply = script::reply(read, value, "read", |_| next)?;
            if let Some(slot) = replies.get_mut(i) {
                *slot = Some(reply);
            }
        }
        replies
            .into_iter()
            .map(|r| r.ok_or_else(read_mismatch))
            .collect()
    }

    async fn delete_plain(&self, budget: Duration, keys: &[String]) -> Result<u64, Error> {
        let mut by_slot: BTreeMap<u16, Vec<&str>> = BTreeMap::new();
        for key in keys {
            by_slot
                .entry(key_slot(key.as_bytes()))
                .or_default()
                .push(key);
        }
        let deadline = Instant::now() + budget;
        let deletes = by_slot.iter().map(|(slot, keys)| async move {
            let unlink = redis::cmd("UNLINK").arg(keys).to_owned();
            let values = self
                .send(deadline, &slot_route(*slot), &[unlink], Resend::IfRefused)
                .await?;
            let value = values.into_iter().next().unwrap_or(Value::Nil);
            redis::from_redis_value::<u64>(value.extract_error()?).map_err(RedisError::from)
        });
        let counts = bounded(budget, "unlink", try_join_all(deletes)).await?;
        Ok(counts.into_iter().sum())
    }

    async fn apply_plan(&self, budget: Duration, plan: &Plan) -> Result<Applied, Error> {
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

fn read_mismatch() -> Error {
    Error::unsupported("a reply that does not match its read".to_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn key_slots_match_redis() {
        // Values from the Redis Cluster specification and CLUSTER KEYSLOT.
        assert_eq!(key_slot(b"123456789"), 0x31C3 % SLOTS);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"foo{}{bar}"), key_slot(b"foo{}{bar}"));
        assert_ne!(key_slot(b"foo{}{bar}"), key_slot(b"bar"));
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
        assert_eq!(key_slot(b"foo{bar}{zap}"), key_slot(b"bar"));
        for key in ["a", "authsession:session:{dXNlcg}aWQ", "x{}", "{", "}{"] {
            assert_eq!(
                Route::new(key_slot(key.as_bytes()), SlotAddr::Master),
                Route::with_key(key, SlotAddr::Master),
                "{key}"
            );
        }
    }

    #[test]
    fn scan_positions_round_trip_and_reject_garbage() {
        let p = ScanPosition {
            slot: 5461,
            server_cursor: "1234".into(),
            node: ("::1".into(), 7001),
        };
        assert_eq!(p.text(), "5461:1234@::1:7001");
        assert_eq!(ScanPosition::parse(&p.text()).unwrap(), Some(p));
        assert_eq!(ScanPosition::parse("").unwrap(), None);
        for bad in [
            "0",
            "x:1@h:1",
            "1:@h:1",
            "1:a@h:1",
            "16384:0@h:1",
            "1:0@:1",
            "1:0@h:x",
        ] {
            assert!(ScanPosition::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn shards_order_primaries_by_first_slot() {
        let r = |start, end, port| SlotRange {
            start,
            end,
            host: "h".into(),
            port,
        };
        let ranges = [r(0, 99, 2), r(100, 199, 1), r(200, 299, 2)];
        assert_eq!(
            shards(&ranges),
            [(0, ("h".into(), 2)), (100, ("h".into(), 1))]
        );
        assert_eq!(owner(&ranges, 250), Some(("h".into(), 2)));
        assert_eq!(owner(&ranges, 300), None);
    }

    #[test]
    fn reads_group_by_slot_and_split_values() {
        let a = "{a}x".to_owned();
        let b = "{b}y".to_owned();
        let plan = ReadPlan::new(&[
            Read::Value { key: a.clone() },
            Read::Values {
                keys: vec![a.clone(), b.clone(), a.clone()],
            },
            Read::IndexLen { key: b.clone() },
            Read::Values { keys: vec![] },
        ])
        .unwrap();
        assert_eq!(plan.by_slot.len(), 2);
        let (cmds, parts) = &plan.by_slot[&key_slot(b"a")];
        assert_eq!(cmds.len(), 2);
        assert!(
            matches!(&parts[1], Part::Slice { read: 1, positions, .. } if *positions == [0, 2])
        );
        assert_eq!(plan.empty, [3]);
    }

    #[test]
    fn only_refusals_resend_scripts() {
        let moved = RedisError::from((
            RedisErrorKind::Server(ServerErrorKind::Moved),
            "moved",
            "3999 127.0.0.1:6381".to_owned(),
        ));
        let dropped = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        let refused = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(may_resend(&moved, Resend::IfRefused));
        assert!(may_resend(&refused, Resend::IfRefused));
        assert!(!may_resend(&dropped, Resend::IfRefused));
        assert!(may_resend(&dropped, Resend::IfUnanswered));
        assert!(pause_before(0) <= FIRST_PAUSE);
        assert!(pause_before(40) <= MAX_PAUSE);
    }
}
