//! The Go adapter's command sequences, re-implemented command for command
//! with redis-rs: the baseline of `bench --op *_reference`.
//!
//! This is an emulation, not the Go binary (there is no Go toolchain
//! here). It sends exactly what `sessionstore.go` (go-redis v9, RESP2)
//! sends, in the same order and the same round trips, each worker on its
//! own connection — as go-redis's `Watch` pins one pooled connection for
//! a transaction. (redis-rs 1.8's only async connection type is the
//! multiplexed one; each adapter owns its own and nothing else ever sends
//! on it, so `WATCH` state and command order are exactly the adapter's.
//! An async task per worker is also the closest match to a goroutine per
//! request: a blocking thread per worker measured about 20 % more client
//! CPU per op, which would flatter the comparison.)
//!
//! - `Get`: `GET record` (1 round trip).
//! - `ListByUserID`: `ZREVRANGE all 0 -1`, then one `GET` per session
//!   (1 + N).
//! - `Create`: `WATCH record`; `GET record`; `MULTI SET ZADD all ZADD
//!   active EXEC` (one pipelined write); `UNWATCH` (go-redis's `Tx.Close`)
//!   — 4 round trips; a non-nil `GET` or an aborted `EXEC` is a conflict.
//! - `Revoke`: up to 3 attempts of `WATCH record`; `GET record`; `MULTI
//!   SET ZREM active EXEC`; `UNWATCH` (4); an already revoked session ends
//!   after the `GET` (`UNWATCH` still sent).
//! - `RevokeAllByUserID`: up to 3 attempts of `WATCH active`; `ZREVRANGE
//!   active 0 -1`; one `GET` per session; `MULTI (SET record ZREM active
//!   id)×N EXEC`; `UNWATCH` — 4 + N round trips; with no active session
//!   `MULTI ZCARD active EXEC` instead. An aborted `EXEC` (`TxFailedErr`)
//!   retries at once, without backoff; the third failure is an error.
//!
//! Records are strictly decoded (the id checked against the key) and
//! encoded with the core's codec, which is byte-compatible with the
//! adapter's `encoding/json` output; keys and scores come from the
//! reference layout of the same key space.

use std::time::Duration;

use authsession_core::{
    codec, sort_newest_first, DeviceSessionId, IndexScore, KeySpace, RevokeSessionInput,
    RevokeSessionOutcome, RevokeUserSessionsInput, RevokeUserSessionsOutcome, Session, UserId,
};
use redis::aio::MultiplexedConnection;

/// `mutationRetryLimit` of the adapter.
const MUTATION_RETRY_LIMIT: usize = 3;

/// Why an emulated call failed, by the same kinds the store reports.
#[derive(Debug)]
#[non_exhaustive]
pub enum GoError {
    /// `ports.ErrNotFound`.
    NotFound,
    /// `ports.ErrConflict`.
    Conflict,
    /// A record that fails strict decoding, a missing or foreign record
    /// behind an index member, a revoked session in the active index.
    Corrupt,
    /// The transition does not validate (e.g. revoked before created).
    InvalidInput,
    /// "mutation retry limit exceeded".
    RetryLimit,
    /// Any Redis error.
    Backend(redis::RedisError),
}

impl GoError {
    /// The stable kind, as the store names it.
    pub fn kind(&self) -> &'static str {
        match self {
            GoError::NotFound => "not_found",
            GoError::Conflict => "conflict",
            GoError::Corrupt => "corrupt",
            GoError::InvalidInput => "invalid_input",
            GoError::RetryLimit => "contention_exhausted",
            GoError::Backend(e) if e.is_timeout() => "timeout",
            GoError::Backend(_) => "backend",
        }
    }

    /// A missing record behind an index member is corruption.
    fn missing_is_corrupt(self) -> Self {
        match self {
            GoError::NotFound => GoError::Corrupt,
            other => other,
        }
    }
}

impl From<redis::RedisError> for GoError {
    fn from(error: redis::RedisError) -> Self {
        GoError::Backend(error)
    }
}

/// The adapter on one connection of its own.
pub struct GoAdapter {
    conn: MultiplexedConnection,
    keys: KeySpace,
}

impl std::fmt::Debug for GoAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoAdapter").finish_non_exhaustive()
    }
}

impl GoAdapter {
    /// Opens a connection of its own to `client`'s server (`timeout`
    /// bounds connecting and every reply, like the adapter's
    /// `OperationTimeout`). `keys` must be in the reference layout.
    pub async fn connect(
        client: &redis::Client,
        keys: KeySpace,
        timeout: Duration,
    ) -> Result<Self, redis::RedisError> {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        let conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        Ok(Self { conn, keys })
    }

    fn record_key(&self, id: &DeviceSessionId) -> String {
        self.keys.reference_record_key(id)
    }

    /// `loadSessionWithGetter`: `GET`, then the strict decode.
    async fn load(&mut self, id: &DeviceSessionId) -> Result<Session, GoError> {
        let payload: Option<Vec<u8>> = redis::cmd("GET")
            .arg(self.record_key(id))
            .query_async(&mut self.conn)
            .await?;
        let payload = payload.ok_or(GoError::NotFound)?;
        codec::decode(id, &payload).map_err(|_| GoError::Corrupt)
    }

    async fn watch(&mut self, key: &str) -> Result<(), GoError> {
        redis::cmd("WATCH")
            .arg(key)
            .exec_async(&mut self.conn)
            .await?;
        Ok(())
    }

    /// `Tx.Close`: sent whatever the transaction's function returned (its
    /// error ignored, as go-redis ignores it).
    async fn unwatch(&mut self) {
        let _ = redis::cmd("UNWATCH").exec_async(&mut self.conn).await;
    }

    /// `TxPipelined`: MULTI, the commands, EXEC in one write; `false` when
    /// EXEC was aborted by a watched key's change (`TxFailedErr`).
    async fn exec(&mut self, pipe: &redis::Pipeline) -> Result<bool, GoError> {
        let replies: Option<redis::Value> = pipe.query_async(&mut self.conn).await?;
        Ok(replies.is_some())
    }

    /// `Store.Get`.
    pub async fn get(&mut self, id: &DeviceSessionId) -> Result<Session, GoError> {
        self.load(id).await
    }

    /// `Store.ListByUserID`.
    pub async fn list(&mut self, user: &UserId) -> Result<Vec<Session>, GoError> {
        let ids: Vec<String> = redis::cmd("ZREVRANGE")
            .arg(self.keys.user_sessions_key(user))
            .arg(0)
            .arg(-1)
            .query_async(&mut self.conn)
            .await?;
        let mut sessions = Vec::with_capacity(ids.len());
        for raw in ids {
            let id = DeviceSessionId::parse(raw).map_err(|_| GoError::Corrupt)?;
            let session = self.load(&id).await.map_err(GoError::missing_is_corrupt)?;
            if session.user_id() != user {
                return Err(GoError::Corrupt);
            }
            sessions.push(session);
        }
        sort_newest_first(&mut sessions);
        Ok(sessions)
    }

    /// `Store.Create`.
    pub async fn create(&mut self, session: &Session) -> Result<(), GoError> {
        let payload = codec::encode(session);
        let key = self.record_key(session.id());
        self.watch(&key).await?;
        let result = self.create_watched(session, &key, &payload).await;
        self.unwatch().await;
        match result {
            Ok(true) => Ok(()),
            Ok(false) => Err(GoError::Conflict),
            Err(e) => Err(e),
        }
    }

    async fn create_watched(
        &mut self,
        session: &Session,
        key: &str,
        payload: &[u8],
    ) -> Result<bool, GoError> {
        let existing: Option<Vec<u8>> = redis::cmd("GET")
            .arg(key)
            .query_async(&mut self.conn)
            .await?;
        if existing.is_some() {
            return Err(GoError::Conflict);
        }
        let score = IndexScore::of(session.created_at()).to_string();
        let member = session.id().as_str();
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("SET")
            .arg(key)
            .arg(payload)
            .cmd("ZADD")
            .arg(self.keys.user_sessions_key(session.user_id()))
            .arg(&score)
            .arg(member);
        if session.is_active() {
            pipe.cmd("ZADD")
                .arg(self.keys.user_active_sessions_key(session.user_id()))
                .arg(&score)
                .arg(member);
        }
        self.exec(&pipe).await
    }

    /// `Store.Revoke` (`runMutation`: up to three attempts, the next at
    /// once after an aborted EXEC).
    pub async fn revoke(
        &mut self,
        input: &RevokeSessionInput,
    ) -> Result<RevokeSessionOutcome, GoError> {
        let key = self.record_key(&input.device_session_id);
        for _ in 0..MUTATION_RETRY_LIMIT {
            self.watch(&key).await?;
            let result = self.revoke_watched(input, &key).await;
            self.unwatch().await;
            if let Some(outcome) = result? {
                return Ok(outcome);
            }
        }
        Err(GoError::RetryLimit)
    }

    /// One attempt; `None` when EXEC was aborted.
    async fn revoke_watched(
        &mut self,
        input: &RevokeSessionInput,
        key: &str,
    ) -> Result<Option<RevokeSessionOutcome>, GoError> {
        let id = &input.device_session_id;
        let current = self.load(id).await?;
        if !current.is_active() {
            return Ok(Some(RevokeSessionOutcome::AlreadyRevoked(current)));
        }
        let active = self.keys.user_active_sessions_key(current.user_id());
        let next = current
            .revoked(input.revocation.clone())
            .map_err(|_| GoError::InvalidInput)?;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("SET")
            .arg(key)
            .arg(codec::encode(&next))
            .cmd("ZREM")
            .arg(&active)
            .arg(id.as_str());
        Ok(self
            .exec(&pipe)
            .await?
            .then_some(RevokeSessionOutcome::Revoked(next)))
    }

    /// `Store.RevokeAllByUserID` (`runMutation` as for revoke).
    pub async fn revoke_all(
        &mut self,
        input: &RevokeUserSessionsInput,
    ) -> Result<RevokeUserSessionsOutcome, GoError> {
        let active = self.keys.user_active_sessions_key(&input.user_id);
        for _ in 0..MUTATION_RETRY_LIMIT {
            self.watch(&active).await?;
            let result = self.revoke_all_watched(input, &active).await;
            self.unwatch().await;
            if let Some(outcome) = result? {
                return Ok(outcome);
            }
        }
        Err(GoError::RetryLimit)
    }

    /// One attempt; `None` when EXEC was aborted.
    async fn revoke_all_watched(
        &mut self,
        input: &RevokeUserSessionsInput,
        active: &str,
    ) -> Result<Option<RevokeUserSessionsOutcome>, GoError> {
        let ids: Vec<String> = redis::cmd("ZREVRANGE")
            .arg(active)
            .arg(0)
            .arg(-1)
            .query_async(&mut self.conn)
            .await?;
        if ids.is_empty() {
            // The adapter forces an EXEC so WATCH observes concurrent
            // changes on the no-op path too.
            let mut pipe = redis::pipe();
            pipe.atomic().cmd("ZCARD").arg(active);
            return Ok(self
                .exec(&pipe)
                .await?
                .then_some(RevokeUserSessionsOutcome::NoActiveSessions));
        }
        let mut revoked = Vec::with_capacity(ids.len());
        for raw in ids {
            let id = DeviceSessionId::parse(raw).map_err(|_| GoError::Corrupt)?;
            let record = self.load(&id).await.map_err(GoError::missing_is_corrupt)?;
            if record.user_id() != &input.user_id || !record.is_active() {
                return Err(GoError::Corrupt);
            }
            revoked.push(
                record
                    .revoked(input.revocation.clone())
                    .map_err(|_| GoError::InvalidInput)?,
            );
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        for session in &revoked {
            pipe.cmd("SET")
                .arg(self.record_key(session.id()))
                .arg(codec::encode(session))
                .cmd("ZREM")
                .arg(active)
                .arg(session.id().as_str());
        }
        if !self.exec(&pipe).await? {
            return Ok(None);
        }
        sort_newest_first(&mut revoked);
        Ok(Some(RevokeUserSessionsOutcome::Revoked(revoked)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use authsession_core::Timestamp;
    use authsession_driver::{CheckMode, SessionAdmin as _, SessionStore as _};
    use authsession_tests::fixtures::{active, revocation};
    use authsession_tests::monitor::Monitor;
    use authsession_tests::RedisServer;

    fn session(id: &str, user: &str, at: &str) -> Session {
        active(id, user, Timestamp::parse(at).unwrap())
    }

    /// Every emulated call sends exactly the adapter's commands, in order,
    /// and reads and writes what the store reads and writes.
    #[test]
    fn sends_the_adapters_commands_and_agrees_with_the_store() {
        let server = RedisServer::start();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let keys = KeySpace::with_base("go:").unwrap();
            let store = server.store(keys.clone()).await;
            let raw = server.raw().await;
            let mut monitor = Monitor::start(server.port());
            let client = redis::Client::open(server.url()).unwrap();
            let mut go = GoAdapter::connect(&client, keys, Duration::from_secs(5))
                .await
                .unwrap();
            let mut sent = async || -> Vec<String> {
                let commands = monitor.since_last_mark(&raw).await;
                commands.into_iter().map(|c| c.name).collect()
            };
            sent().await;

            let first = session("d1", "u", "2026-01-01T00:00:00Z");
            go.create(&first).await.unwrap();
            assert_eq!(
                sent().await,
                ["watch", "get", "multi", "set", "zadd", "zadd", "exec", "unwatch"]
            );
            assert_eq!(store.get(first.id()).await.unwrap(), first);
            sent().await;
            assert!(matches!(go.create(&first).await, Err(GoError::Conflict)));
            assert_eq!(sent().await, ["watch", "get", "unwatch"]);

            for (i, at) in ["2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z"]
                .iter()
                .enumerate()
            {
                store
                    .create(&session(&format!("d{}", i + 2), "u", at))
                    .await
                    .unwrap();
            }
            sent().await;
            let user = UserId::parse("u").unwrap();
            let listed = go.list(&user).await.unwrap();
            assert_eq!(sent().await, ["zrevrange", "get", "get", "get"]);
            assert_eq!(listed, store.list_by_user_id(&user).await.unwrap());
            sent().await;
            assert_eq!(go.get(first.id()).await.unwrap(), first);
            assert_eq!(sent().await, ["get"]);
            assert!(matches!(
                go.get(&DeviceSessionId::parse("nope").unwrap()).await,
                Err(GoError::NotFound)
            ));
            sent().await;

            let input = RevokeSessionInput {
                device_session_id: first.id().clone(),
                revocation: revocation(Timestamp::parse("2026-02-01T00:00:00Z").unwrap()),
            };
            let revoked = go.revoke(&input).await.unwrap();
            assert_eq!(revoked.as_str(), "revoked");
            assert_eq!(
                sent().await,
                ["watch", "get", "multi", "set", "zrem", "exec", "unwatch"]
            );
            assert_eq!(&store.get(first.id()).await.unwrap(), revoked.session());
            sent().await;
            assert_eq!(go.revoke(&input).await.unwrap().as_str(), "already_revoked");
            assert_eq!(sent().await, ["watch", "get", "unwatch"]);

            let all = RevokeUserSessionsInput {
                user_id: user.clone(),
                revocation: revocation(Timestamp::parse("2026-02-02T00:00:00Z").unwrap()),
            };
            let outcome = go.revoke_all(&all).await.unwrap();
            assert_eq!(
                sent().await,
                [
                    "watch",
                    "zrevrange",
                    "get",
                    "get",
                    "multi",
                    "set",
                    "zrem",
                    "set",
                    "zrem",
                    "exec",
                    "unwatch"
                ]
            );
            let ids: Vec<&str> = outcome.sessions().iter().map(|s| s.id().as_str()).collect();
            assert_eq!(ids, ["d3", "d2"]);
            for s in outcome.sessions() {
                assert_eq!(&store.get(s.id()).await.unwrap(), s);
            }
            assert_eq!(store.count_active_by_user_id(&user).await.unwrap(), 0);
            sent().await;
            assert_eq!(
                go.revoke_all(&all).await.unwrap().as_str(),
                "no_active_sessions"
            );
            assert_eq!(
                sent().await,
                ["watch", "zrevrange", "multi", "zcard", "exec", "unwatch"]
            );
            assert!(store.check(CheckMode::Report).await.unwrap().is_clean());
        });
    }
}
