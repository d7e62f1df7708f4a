//! Raw key-value access behind a store's back, to plant corruption and
//! inspect what was written — one interface for both stores so the
//! conformance suite is written once.

use std::future::Future;

use authsession_driver::core::model::MemoryKv;
use authsession_driver::MemorySessionStore;
use redis::aio::MultiplexedConnection;
use redis::cluster_async::ClusterConnection;

/// Raw writes and reads on a store's backing data, with Redis semantics
/// for keys of the other type: reading one finds nothing, writing one
/// replaces it.
pub trait RawKv: Send + Sync {
    /// Stores `value` at `key` (string).
    fn set(&self, key: &str, value: &[u8]) -> impl Future<Output = ()> + Send;
    /// The string at `key`.
    fn get(&self, key: &str) -> impl Future<Output = Option<Vec<u8>>> + Send;
    /// Adds `member` with `score` to the sorted set at `key`.
    fn zadd(&self, key: &str, member: &str, score: f64) -> impl Future<Output = ()> + Send;
    /// Removes `member` from the sorted set at `key`.
    fn zrem(&self, key: &str, member: &str) -> impl Future<Output = ()> + Send;
    /// The sorted set at `key`, ascending by score then member.
    fn zrange(&self, key: &str) -> impl Future<Output = Vec<(String, f64)>> + Send;
    /// Deletes `key`.
    fn del(&self, key: &str) -> impl Future<Output = ()> + Send;
    /// The hash slot the server assigns `key` (`CLUSTER KEYSLOT`), when
    /// it is a cluster.
    fn key_slot(&self, _key: &str) -> impl Future<Output = Option<u16>> + Send {
        async { None }
    }
}

/// Raw access to a [`MemorySessionStore`].
#[derive(Debug, Clone)]
pub struct MemoryRaw(pub MemorySessionStore);

impl MemoryRaw {
    fn with<R>(&self, f: impl FnOnce(&mut MemoryKv) -> R) -> R {
        self.0.with_kv(f)
    }
}

impl RawKv for MemoryRaw {
    async fn set(&self, key: &str, value: &[u8]) {
        // Like Redis SET: replaces a sorted set at the key too.
        self.with(|kv| {
            kv.delete_raw(key);
            kv.set_raw(key, value);
        });
    }
    async fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.with(|kv| kv.get(key).map(<[u8]>::to_vec))
    }
    async fn zadd(&self, key: &str, member: &str, score: f64) {
        self.with(|kv| {
            if kv.get(key).is_some() {
                kv.delete_raw(key);
            }
            kv.index_add_raw(key, member, score);
        });
    }
    async fn zrem(&self, key: &str, member: &str) {
        use authsession_driver::core::plan::{OnViolation, Plan, Write};
        let plan = Plan::new(
            Vec::new(),
            vec![Write::IndexRemove {
                key: key.to_owned(),
                member: member.as_bytes().to_vec(),
            }],
            OnViolation::Retry,
        );
        let applied = self.with(|kv| kv.apply(&plan));
        assert_eq!(applied, authsession_driver::core::plan::Applied::Done);
    }
    async fn zrange(&self, key: &str) -> Vec<(String, f64)> {
        self.with(|kv| {
            kv.index_range(key, None)
                .into_iter()
                .map(|(m, s)| (String::from_utf8_lossy(&m).into_owned(), s))
                .collect()
        })
    }
    async fn del(&self, key: &str) {
        self.with(|kv| kv.delete_raw(key));
    }
}

/// Raw access to a Redis server.
#[derive(Clone)]
pub struct RedisRaw(MultiplexedConnection);

impl std::fmt::Debug for RedisRaw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedisRaw")
    }
}

impl RedisRaw {
    /// Wraps a connection.
    pub fn new(conn: MultiplexedConnection) -> Self {
        Self(conn)
    }

    /// A handle on the (multiplexed) connection.
    pub fn connection(&self) -> MultiplexedConnection {
        self.0.clone()
    }

    /// Runs a command.
    pub async fn try_query<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
    ) -> redis::RedisResult<T> {
        let mut conn = self.0.clone();
        cmd.query_async(&mut conn).await
    }

    /// Runs a command, panicking on error.
    pub async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> T {
        let mut conn = self.0.clone();
        cmd.query_async(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("raw redis command failed: {e}"))
    }

    /// `INFO commandstats`: every command's calls and mean server time.
    pub async fn command_stats(&self) -> std::collections::BTreeMap<String, CommandStat> {
        let info: String = self.query(redis::cmd("INFO").arg("commandstats")).await;
        info.lines()
            .filter_map(|line| {
                let (name, stats) = line.strip_prefix("cmdstat_")?.split_once(':')?;
                let field = |key: &str| stats.split(',').find_map(|kv| kv.strip_prefix(key));
                Some((
                    name.to_owned(),
                    CommandStat {
                        calls: field("calls=")?.parse().ok()?,
                        usec_per_call: field("usec_per_call=")?.parse().ok()?,
                    },
                ))
            })
            .collect()
    }

    /// `INFO commandstats` as `command -> calls`.
    pub async fn command_calls(&self) -> std::collections::BTreeMap<String, u64> {
        self.command_stats()
            .await
            .into_iter()
            .map(|(name, stat)| (name, stat.calls))
            .collect()
    }

    /// Every SLOWLOG entry the server keeps, newest first.
    pub async fn slowlog(&self) -> Vec<SlowEntry> {
        let entries: Vec<redis::Value> = self.query(redis::cmd("SLOWLOG").arg("GET").arg(-1)).await;
        entries
            .into_iter()
            .map(|entry| {
                let redis::Value::Array(fields) = entry else {
                    panic!("slowlog entry {entry:?}");
                };
                let text = |value: Option<&redis::Value>| {
                    value
                        .and_then(|v| redis::from_redis_value::<Vec<u8>>(v.clone()).ok())
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                        .unwrap_or_default()
                };
                let args: Vec<Vec<u8>> =
                    redis::from_redis_value(fields.get(3).cloned().unwrap_or(redis::Value::Nil))
                        .unwrap_or_default();
                SlowEntry {
                    micros: fields
                        .get(2)
                        .and_then(|v| redis::from_redis_value(v.clone()).ok())
                        .unwrap_or_else(|| panic!("slowlog duration {fields:?}")),
                    args: args
                        .iter()
                        .map(|a| String::from_utf8_lossy(a).into_owned())
                        .collect(),
                    client: text(fields.get(4)),
                }
            })
            .collect()
    }

    /// Starts the server's accounting afresh: `SLOWLOG RESET` and `CONFIG
    /// RESETSTAT` (commandstats).
    pub async fn reset_stats(&self) {
        let () = self.query(redis::cmd("SLOWLOG").arg("RESET")).await;
        let () = self.query(redis::cmd("CONFIG").arg("RESETSTAT")).await;
    }
}

/// One command's line of `INFO commandstats`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CommandStat {
    pub calls: u64,
    /// Mean server time per call, µs.
    pub usec_per_call: f64,
}

/// One SLOWLOG entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlowEntry {
    /// Server time, µs.
    pub micros: i64,
    /// The command and its arguments (lossy UTF-8).
    pub args: Vec<String>,
    /// The client's address.
    pub client: String,
}

impl SlowEntry {
    /// The command's name, lowercase.
    pub fn command(&self) -> String {
        self.args
            .first()
            .map(|a| a.to_lowercase())
            .unwrap_or_default()
    }
}

impl RawKv for RedisRaw {
    async fn set(&self, key: &str, value: &[u8]) {
        let () = self.query(redis::cmd("SET").arg(key).arg(value)).await;
    }
    async fn get(&self, key: &str) -> Option<Vec<u8>> {
        match self.try_query(redis::cmd("GET").arg(key)).await {
            Err(e) if e.code() == Some("WRONGTYPE") => None,
            other => other.unwrap_or_else(|e| panic!("raw GET failed: {e}")),
        }
    }
    async fn zadd(&self, key: &str, member: &str, score: f64) {
        let zadd = redis::cmd("ZADD")
            .arg(key)
            .arg(score)
            .arg(member)
            .to_owned();
        match self.try_query::<i64>(&zadd).await {
            Err(e) if e.code() == Some("WRONGTYPE") => {
                self.del(key).await;
                let _: i64 = self.query(&zadd).await;
            }
            other => {
                other.unwrap_or_else(|e| panic!("raw ZADD failed: {e}"));
            }
        }
    }
    async fn zrem(&self, key: &str, member: &str) {
        let _: i64 = self.query(redis::cmd("ZREM").arg(key).arg(member)).await;
    }
    async fn zrange(&self, key: &str) -> Vec<(String, f64)> {
        let cmd = redis::cmd("ZRANGE")
            .arg(key)
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .to_owned();
        match self.try_query(&cmd).await {
            Err(e) if e.code() == Some("WRONGTYPE") => Vec::new(),
            other => other.unwrap_or_else(|e| panic!("raw ZRANGE failed: {e}")),
        }
    }
    async fn del(&self, key: &str) {
        let _: i64 = self.query(redis::cmd("DEL").arg(key)).await;
    }
}

/// Raw access to a Redis Cluster: the client routes each command to its
/// key's primary.
#[derive(Clone)]
pub struct ClusterRaw(ClusterConnection);

impl std::fmt::Debug for ClusterRaw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterRaw")
    }
}

impl ClusterRaw {
    /// Wraps a cluster connection.
    pub fn new(conn: ClusterConnection) -> Self {
        Self(conn)
    }

    /// A handle on the connection.
    pub fn connection(&self) -> ClusterConnection {
        self.0.clone()
    }

    /// Runs a command (routed by its key).
    pub async fn try_query<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
    ) -> redis::RedisResult<T> {
        let mut conn = self.0.clone();
        cmd.query_async(&mut conn).await
    }

    /// Runs a command, panicking on error.
    pub async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> T {
        self.try_query(cmd)
            .await
            .unwrap_or_else(|e| panic!("raw cluster command failed: {e}"))
    }
}

impl RawKv for ClusterRaw {
    async fn set(&self, key: &str, value: &[u8]) {
        let () = self.query(redis::cmd("SET").arg(key).arg(value)).await;
    }
    async fn get(&self, key: &str) -> Option<Vec<u8>> {
        match self.try_query(redis::cmd("GET").arg(key)).await {
            Err(e) if e.code() == Some("WRONGTYPE") => None,
            other => other.unwrap_or_else(|e| panic!("raw GET failed: {e}")),
        }
    }
    async fn zadd(&self, key: &str, member: &str, score: f64) {
        let zadd = redis::cmd("ZADD")
            .arg(key)
            .arg(score)
            .arg(member)
            .to_owned();
        match self.try_query::<i64>(&zadd).await {
            Err(e) if e.code() == Some("WRONGTYPE") => {
                self.del(key).await;
                let _: i64 = self.query(&zadd).await;
            }
            other => {
                other.unwrap_or_else(|e| panic!("raw ZADD failed: {e}"));
            }
        }
    }
    async fn zrem(&self, key: &str, member: &str) {
        let _: i64 = self.query(redis::cmd("ZREM").arg(key).arg(member)).await;
    }
    async fn zrange(&self, key: &str) -> Vec<(String, f64)> {
        let cmd = redis::cmd("ZRANGE")
            .arg(key)
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .to_owned();
        match self.try_query(&cmd).await {
            Err(e) if e.code() == Some("WRONGTYPE") => Vec::new(),
            other => other.unwrap_or_else(|e| panic!("raw ZRANGE failed: {e}")),
        }
    }
    async fn del(&self, key: &str) {
        let _: i64 = self.query(redis::cmd("DEL").arg(key)).await;
    }
    async fn key_slot(&self, key: &str) -> Option<u16> {
        Some(
            self.query(redis::cmd("CLUSTER").arg("KEYSLOT").arg(key))
                .await,
        )
    }
}
