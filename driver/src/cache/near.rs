//! The near cache: validated sessions kept in this process, invalidated by
//! the server (Redis client-side caching, `CLIENT TRACKING` over RESP3).
//!
//! Not redis-rs's own `cache-aio`: it fills an entry in the caller's task
//! after the reply arrived, while invalidations are handled in the
//! connection's task — an invalidation that lands between the two is lost
//! and the stale value stays cached; it keeps serving cached values while
//! its connection is down until a reconnect; it has no barrier; and it
//! caches raw replies (decoded again on every hit, plus a `PTTL` per
//! miss). This cache is built on the same crate's RESP3 push primitive
//! instead, with these rules (rueidis's, in substance):
//!
//! - **Tracked reads only.** Every single-key read of a store with a cache
//!   goes through a dedicated tracking connection per server (`CLIENT
//!   TRACKING ON`, default mode: the server remembers the keys this
//!   connection read and pushes an `invalidate` when any client changes
//!   them).
//! - **Fill only if nothing happened meanwhile.** Before a miss is read,
//!   its key gets a pending slot with a fresh token; an invalidation (or a
//!   flush) removes the slot; the decoded, validated session is stored only
//!   if the slot still holds that token. Pushes are handled synchronously
//!   by the connection's reader, in the order the server sent them, so an
//!   invalidation of a value read is always handled before a later reply
//!   on that connection (the barrier below relies on it).
//! - **Lost connection, lost cache.** When a tracking connection drops (the
//!   reader's disconnect notice, or any failed request on it) the whole
//!   cache is cleared at once, before the next lookup; the next miss
//!   connects again. Fills from before cannot land: their slots are gone.
//! - **Flushes and server evictions** arrive as invalidations (a null key
//!   list means everything) and are honoured as such.
//! - `max_staleness` bounds an entry's age (from when its read was sent),
//!   `max_entries` the number of entries (least recently used first out).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use authsession_core::Session;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, PushInfo, PushKind, RedisError, Value};

use super::lru::Lru;
use crate::error::Error;

/// Settings of the near cache (opt-in: `RedisConfig::cache`,
/// `ClusterConfig::cache`, CLI `--cache`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// At most this many sessions are kept (≥ 1); the least recently used
    /// goes first.
    pub max_entries: usize,
    /// No entry older than this is used (> 0), whatever the server says: a
    /// backstop for an invalidation that cannot arrive (a network that
    /// drops packets silently keeps a connection "up" until TCP gives up).
    pub max_staleness: Duration,
}

impl Default for CacheConfig {
    /// 10 000 sessions, 60 s.
    fn default() -> Self {
        Self {
            max_entries: 10_000,
            max_staleness: Duration::from_secs(60),
        }
    }
}

impl CacheConfig {
    /// Checks the fields; errors name `cache.max_entries` or
    /// `cache.max_staleness`.
    pub fn validate(&self) -> Result<(), Error> {
        if self.max_entries == 0 {
            return Err(Error::config("cache.max_entries", "must be at least 1"));
        }
        if self.max_staleness.is_zero() {
            return Err(Error::config("cache.max_staleness", "must be positive"));
        }
        Ok(())
    }
}

/// What the near cache did since the store connected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct CacheStats {
    /// Reads answered from memory.
    pub hits: u64,
    /// Reads that went to the server.
    pub misses: u64,
    /// Keys the server said changed (each drops its entry, if any).
    pub invalidations: u64,
    /// Times the whole cache was dropped: `FLUSHALL`/`FLUSHDB`, or a
    /// tracking connection lost.
    pub flushes: u64,
    /// Sessions held now.
    pub entries: usize,
}

/// One server, as `(host, port)`.
pub(crate) type Node = (String, u16);

/// Builds a client for a node (same credentials and TLS as the store's
/// connection, RESP3).
pub(crate) type MakeClient = Box<dyn Fn(&str, u16) -> Result<redis::Client, Error> + Send + Sync>;

#[derive(Debug)]
enum Slot {
    /// A miss is being read; only the read holding `token` may fill it.
    Pending {
        token: u64,
        since: Instant,
    },
    Ready {
        session: Session,
        since: Instant,
    },
}

#[derive(Debug)]
struct State {
    entries: Lru<String, Slot>,
    next_token: u64,
}

/// The part the connections' push handlers share.
#[derive(Debug)]
pub(crate) struct Shared {
    config: CacheConfig,
    state: Mutex<State>,
    hits: AtomicU64,
    misses: AtomicU64,
    invalidations: AtomicU64,
    flushes: AtomicU64,
    /// Bumped on every invalidation or flush (for watchers).
    changes: tokio::sync::watch::Sender<u64>,
}

/// A read the cache answered, or the token a miss fills with.
#[derive(Debug)]
pub(crate) enum Lookup {
    Hit(Session),
    Miss(u64),
}

struct Link {
    /// Which connection this is (a replaced one must not drop its
    /// successor).
    id: u64,
    conn: MultiplexedConnection,
    dead: Arc<AtomicBool>,
}

/// A store's near cache: the entries and one tracking connection per
/// server (see the module docs for the rules).
pub struct NearCache {
    shared: Arc<Shared>,
    links: Links,
}

/// One multiplexed connection per server, connected on first use; with a
/// cache, tracking connections whose pushes go to it and whose loss
/// flushes it.
pub(crate) struct Links {
    map: std::sync::Mutex<HashMap<Node, Link>>,
    /// One connect at a time (a burst of first reads opens one connection).
    connecting: tokio::sync::Mutex<()>,
    make_client: MakeClient,
    connect_timeout: Duration,
    next_link: AtomicU64,
    tracking: Option<Arc<Shared>>,
}

impl std::fmt::Debug for Links {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Links")
            .field("tracking", &self.tracking.is_some())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for NearCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NearCache")
            .field("config", &self.shared.config)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The server says `keys` changed (`None`: everything).
    fn invalidate(&self, data: &[Value]) {
        match data.first() {
            Some(Value::Array(keys)) | Some(Value::Set(keys)) => {
                let mut state = self.lock();
                for key in keys {
                    let key = match key {
                        Value::BulkString(bytes) => std::str::from_utf8(bytes).ok(),
                        Value::SimpleString(text) => Some(text.as_str()),
                        _ => None,
                    };
                    // A key that is not UTF-8 is no key of ours.
                    if let Some(key) = key {
                        state.entries.remove(key);
                    }
                }
                drop(state);
                self.changes.send_modify(|c| *c = c.wrapping_add(1));
                let n = u64::try_from(keys.len()).unwrap_or(u64::MAX);
                self.invalidations.fetch_add(n, Ordering::Relaxed);
                tracing::debug!(keys = n, "authsession.cache.invalidate");
                #[cfg(feature = "metrics")]
                metrics::counter!("authsession.cache.invalidations").increment(n);
            }
            // FLUSHALL / FLUSHDB (or a push we do not understand: the safe
            // reading is "everything").
            _ => self.flush("flush"),
        }
    }

    fn flush(&self, why: &'static str) {
        self.lock().entries.clear();
        self.changes.send_modify(|c| *c = c.wrapping_add(1));
        self.flushes.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(reason = why, "authsession.cache.flush");
        #[cfg(feature = "metrics")]
        metrics::counter!("authsession.cache.flushes", "reason" => why).increment(1);
    }
}

impl NearCache {
    /// A cache whose tracking connections `make_client` builds; connects to
    /// `first` at once and checks the server tracks keys for it, so a server
    /// (or proxy) that cannot fails here, never later with unchecked data.
    pub(crate) async fn connect(
        config: CacheConfig,
        make_client: MakeClient,
        first: Node,
        timeout: Duration,
    ) -> Result<Self, Error> {
        config.validate()?;
        let shared = Arc::new(Shared {
            config,
            state: Mutex::new(State {
                entries: Lru::new(config.max_entries),
                next_token: 0,
            }),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            invalidations: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
            changes: tokio::sync::watch::Sender::new(0),
        });
        let cache = Self {
            links: Links::new(make_client, timeout, Some(Arc::clone(&shared))),
            shared,
        };
        let link = cache.links.open(&first, timeout).await.map_err(|e| {
            Error::config(
                "cache",
                format!(
                    "the server cannot keep a near cache coherent (needs RESP3 and CLIENT \
                     TRACKING, Redis 6.2+ or Valkey, and no proxy in between): {e}"
                ),
            )
        })?;
        let mut conn = link.conn.clone();
        verify_tracking(&mut conn, timeout).await?;
        cache.links.lock().insert(first, link);
        Ok(cache)
    }

    /// Its tracking connections.
    pub(crate) fn links(&self) -> &Links {
        &self.links
    }

    /// The settings.
    pub fn config(&self) -> CacheConfig {
        self.shared.config
    }

    /// Marks every invalidation and flush the servers send (a counter): a
    /// watcher re-reads what it watches when it changes, and sends nothing
    /// while nothing changes.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.shared.changes.subscribe()
    }

    /// Counts since the store connected.
    pub fn stats(&self) -> CacheStats {
        let s = &self.shared;
        CacheStats {
            hits: s.hits.load(Ordering::Relaxed),
            misses: s.misses.load(Ordering::Relaxed),
            invalidations: s.invalidations.load(Ordering::Relaxed),
            flushes: s.flushes.load(Ordering::Relaxed),
            entries: s.lock().entries.len(),
        }
    }

    /// The validated session at `key`, or a token to fill it with after
    /// reading it (through [`NearCache::get`]).
    pub(crate) fn lookup(&self, key: &str) -> Lookup {
        let now = Instant::now();
        let max = self.shared.config.max_staleness;
        let mut state = self.shared.lock();
        if let Some(Slot::Ready { session, since }) = state.entries.get_mut(key) {
            if now.saturating_duration_since(*since) < max {
                let session = session.clone();
                drop(state);
                self.shared.hits.fetch_add(1, Ordering::Relaxed);
                #[cfg(feature = "metrics")]
                metrics::counter!("authsession.cache.hits").increment(1);
                return Lookup::Hit(session);
            }
        }
        state.next_token = state.next_token.wrapping_add(1);
        let token = state.next_token;
        state
            .entries
            .insert(key.to_owned(), Slot::Pending { token, since: now });
        drop(state);
        self.shared.misses.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        metrics::counter!("authsession.cache.misses").increment(1);
        Lookup::Miss(token)
    }

    /// Stores `session`, validated from the value read at `key` after
    /// [`NearCache::lookup`] gave `token` — unless the key changed (or the
    /// cache was flushed) since.
    pub(crate) fn fill(&self, key: &str, token: u64, session: Session) {
        let mut state = self.shared.lock();
        if let Some(slot) = state.entries.peek_mut(key) {
            if let Slot::Pending { token: t, since } = *slot {
                if t == token {
                    *slot = Slot::Ready { session, since };
                }
            }
        }
    }

    /// This process wrote (or may have written) `keys`: their entries go
    /// now, before the write returns (read-your-writes; the server's own
    /// invalidation may still be on its way), and so do pending fills of
    /// reads that may have seen the old value.
    pub(crate) fn wrote<'a>(&self, keys: impl IntoIterator<Item = &'a str>) {
        let mut state = self.shared.lock();
        for key in keys {
            state.entries.remove(key);
        }
    }

    /// The barrier: one `PING` round trip on every tracking connection.
    /// Every invalidation the server sent before answering it has been
    /// handled when this returns, so no entry older than a write
    /// acknowledged before the call is served afterwards. A connection that
    /// fails the round trip is dropped with the whole cache, which keeps
    /// that promise too.
    pub async fn sync(&self, budget: Duration) -> Result<(), Error> {
        self.links.ping_all(budget).await;
        Ok(())
    }
}

impl Links {
    /// No connection yet; `tracking`: the cache they track for.
    pub(crate) fn new(
        make_client: MakeClient,
        connect_timeout: Duration,
        tracking: Option<Arc<Shared>>,
    ) -> Self {
        Self {
            map: std::sync::Mutex::new(HashMap::new()),
            connecting: tokio::sync::Mutex::new(()),
            make_client,
            connect_timeout,
            next_link: AtomicU64::new(0),
            tracking,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Node, Link>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `GET key` on `node` (connected first if needed), within `budget`.
    /// A request failed by anything but the server's own answer drops the
    /// connection (and, tracking, the whole cache).
    pub(crate) async fn get(
        &self,
        node: &Node,
        budget: Duration,
        key: &str,
    ) -> Result<Value, TrackedError> {
        let started = tokio::time::Instant::now();
        // Waiting for another caller's connect counts against the budget.
        let (id, mut conn) = match tokio::time::timeout(budget, self.link(node, budget)).await {
            Ok(link) => link?,
            Err(_) => return Err(TrackedError::Timeout(budget)),
        };
        let left = budget.saturating_sub(started.elapsed());
        let cmd = redis::cmd("GET").arg(key).to_owned();
        match tokio::time::timeout(left, cmd.query_async::<Value>(&mut conn)).await {
            Ok(Ok(value)) => Ok(value),
            // The server's own answer (`WRONGTYPE`, `MOVED`, …): the
            // connection is fine.
            Ok(Err(e)) if e.code().is_some() => Err(TrackedError::Redis(e)),
            Ok(Err(e)) => {
                self.lost(node, id);
                Err(TrackedError::Redis(e))
            }
            Err(_) => {
                self.lost(node, id);
                Err(TrackedError::Timeout(budget))
            }
        }
    }

    /// Connects to each of `nodes` not connected yet (errors left for the
    /// first read to meet).
    #[cfg(feature = "cluster")]
    pub(crate) async fn warm(&self, nodes: &[Node], budget: Duration) {
        for node in nodes {
            let _ = self.link(node, budget).await;
        }
    }

    /// One `PING` round trip on every connection; one that fails is lost.
    async fn ping_all(&self, budget: Duration) {
        let links: Vec<(Node, u64, MultiplexedConnection)> = self
            .lock()
            .iter()
            .map(|(node, link)| (node.clone(), link.id, link.conn.clone()))
            .collect();
        for (node, id, mut conn) in links {
            let cmd = redis::cmd("PING");
            let ping = cmd.query_async::<Value>(&mut conn);
            match tokio::time::timeout(budget, ping).await {
                Ok(Ok(_)) => {}
                _ => self.lost(&node, id),
            }
        }
    }

    /// The live connection to `node`.
    fn live(&self, node: &Node) -> Option<(u64, MultiplexedConnection)> {
        self.lock()
            .get(node)
            .filter(|link| !link.dead.load(Ordering::Acquire))
            .map(|link| (link.id, link.conn.clone()))
    }

    /// The live connection to `node`, connected if there is none.
    async fn link(
        &self,
        node: &Node,
        budget: Duration,
    ) -> Result<(u64, MultiplexedConnection), Error> {
        if let Some(found) = self.live(node) {
            return Ok(found);
        }
        let _one = self.connecting.lock().await;
        if let Some(found) = self.live(node) {
            return Ok(found);
        }
        let link = self.open(node, budget.min(self.connect_timeout)).await?;
        let found = (link.id, link.conn.clone());
        self.lock().insert(node.clone(), link);
        Ok(found)
    }

    /// Connection `id` to `node` failed: it is dropped, and (tracking) so
    /// is every entry — one missed invalidation would be enough to serve a
    /// stale session.
    fn lost(&self, node: &Node, id: u64) {
        let link = {
            let mut links = self.lock();
            if links.get(node).is_some_and(|l| l.id == id) {
                links.remove(node)
            } else {
                None
            }
        };
        if let Some(link) = link {
            // The reader may have noticed first (and flushed already).
            if !link.dead.swap(true, Ordering::AcqRel) {
                if let Some(shared) = &self.tracking {
                    shared.flush("connection_lost");
                }
            }
        }
    }

    /// A new connection to `node` (tracking: RESP3, pushes to the cache,
    /// `CLIENT TRACKING ON`).
    async fn open(&self, node: &Node, timeout: Duration) -> Result<Link, Error> {
        let client = (self.make_client)(&node.0, node.1)?;
        let dead = Arc::new(AtomicBool::new(false));
        let mut config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(None);
        if let Some(shared) = &self.tracking {
            let shared = Arc::clone(shared);
            let flag = Arc::clone(&dead);
            // Called by the connection's reader, in the server's order,
            // before any later reply is handed out.
            let on_push = move |info: PushInfo| -> Result<(), Infallible> {
                match info.kind {
                    PushKind::Invalidate => shared.invalidate(&info.data),
                    // Once per connection (a failed request may have
                    // noticed first).
                    PushKind::Disconnection if !flag.swap(true, Ordering::AcqRel) => {
                        shared.flush("connection_lost");
                    }
                    _ => {}
                }
                Ok(())
            };
            config = config.set_push_sender(on_push);
        }
        let conn = match tokio::time::timeout(
            timeout,
            client.get_multiplexed_async_connection_with_config(&config),
        )
        .await
        {
            Ok(conn) => conn.map_err(|e| Error::redis("connect", e))?,
            Err(_) => return Err(Error::timeout("connect", timeout)),
        };
        if self.tracking.is_some() {
            let mut tracking = conn.clone();
            let cmd = redis::cmd("CLIENT").arg("TRACKING").arg("ON").to_owned();
            let on = cmd.query_async::<Value>(&mut tracking);
            match tokio::time::timeout(timeout, on).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(Error::redis("cache connect", e)),
                Err(_) => return Err(Error::timeout("cache connect", timeout)),
            }
        }
        // Entries filled before this connection existed were tracked by a
        // connection that is gone (its loss flushed them already).
        let id = self.next_link.fetch_add(1, Ordering::Relaxed);
        Ok(Link { id, conn, dead })
    }
}

/// A tracked read's failure: the server's error (for the backend to map,
/// e.g. `WRONGTYPE`, `MOVED`) or the budget spent.
#[derive(Debug)]
pub(crate) enum TrackedError {
    Connect(Error),
    Redis(RedisError),
    Timeout(Duration),
}

impl From<Error> for TrackedError {
    fn from(e: Error) -> Self {
        TrackedError::Connect(e)
    }
}

impl TrackedError {
    /// As the store's error.
    pub(crate) fn into_error(self) -> Error {
        match self {
            TrackedError::Connect(e) => e,
            TrackedError::Redis(e) => Error::redis("read", e),
            TrackedError::Timeout(after) => Error::timeout("read", after),
        }
    }
}

/// `CLIENT TRACKINGINFO` must say tracking is on for this connection: a
/// proxy that accepted `CLIENT TRACKING ON` for a connection of its own
/// would not.
async fn verify_tracking(conn: &mut MultiplexedConnection, timeout: Duration) -> Result<(), Error> {
    let cmd = redis::cmd("CLIENT").arg("TRACKINGINFO").to_owned();
    let info = cmd.query_async::<Value>(conn);
    let value = match tokio::time::timeout(timeout, info).await {
        Ok(Ok(value)) => value,
        Ok(Err(e)) => {
            return Err(Error::config(
                "cache",
                format!("the server cannot report key tracking (CLIENT TRACKINGINFO): {e}"),
            ))
        }
        Err(_) => return Err(Error::timeout("cache connect", timeout)),
    };
    if tracking_on(&value) {
        Ok(())
    } else {
        Err(Error::config(
            "cache",
            "the server does not track keys for the cache's connection (CLIENT TRACKINGINFO)",
        ))
    }
}

/// Whether a `CLIENT TRACKINGINFO` reply lists the flag `on`.
fn tracking_on(value: &Value) -> bool {
    let text = |v: &Value| match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    };
    let pairs: Vec<(Value, Value)> = match value {
        Value::Map(pairs) => pairs.clone(),
        Value::Array(items) => items
            .chunks(2)
            .filter_map(|pair| match pair {
                [k, v] => Some((k.clone(), v.clone())),
                _ => None,
            })
            .collect(),
        _ => return false,
    };
    pairs.iter().any(|(k, v)| {
        text(k).as_deref() == Some("flags")
            && match v {
                Value::Array(flags) | Value::Set(flags) => {
                    flags.iter().any(|f| text(f).as_deref() == Some("on"))
                }
                _ => false,
            }
    })
}
