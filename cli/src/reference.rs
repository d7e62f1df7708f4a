//! The Go adapter's command sequences, re-implemented command for command
//! with redis-rs: the baseline of `bench --op *_reference`.
//!
//! This is an emulation, not the Go binary (there is no Go toolchain
//! here). It sends exactly what `sessionstore.go` (go-redis v9, RESP2)
//! sends, in the same order and the same round trips, on one dedicated
//! blocking connection — what go-redis's `Watch` pins from its pool for
//! the duration of a transaction:
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

/// `mutationRetryLimit` of the adapter.
const MUTATION_RETRY_LIMIT: usize = 3;

/// Why an emulated call failed, by the same kinds the store reports.
#[derive(Debug)]
pub(crate) enum GoError {
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
    pub(crate) fn kind(&self) -> &'static str {
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
}

impl From<redis::RedisError> for GoError {
    fn from(error: redis::RedisError) -> Self {
        GoError::Backend(error)
    }
}

/// One attempt's end: done, or `TxFailedErr` (retry).
enum Attempt<T> {
    Done(T),
    Retry,
}

/// The adapter on one dedicated connection.
pub(crate) struct GoAdapter {
    conn: redis::Connection,
    keys: KeySpace,
}

impl std::fmt::Debug for GoAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoAdapter").finish_non_exhaustive()
    }
}

impl GoAdapter {
    /// Opens a dedicated connection to `client`'s server (`timeout` bounds
    /// connecting and every read and write, like the adapter's
    /// `OperationTimeout`). `keys` must be in the reference layout.
    pub(crate) fn connect(
        client: &redis::Client,
        keys: KeySpace,
        timeout: Duration,
    ) -> Result<Self, redis::RedisError> {
        let conn = client.get_connection_with_timeout(timeout)?;
        conn.set_read_timeout(Some(timeout))?;
        conn.set_write_timeout(Some(timeout))?;
        Ok(Self { conn, keys })
    }

    fn record_key(&self, id: &DeviceSessionId) -> String {
        self.keys.session_key(id)
    }

    /// `loadSessionWithGetter`: `GET`, then the strict decode.
    fn load(&mut self, id: &DeviceSessionId) -> Result<Session, GoError> {
        let payload: Option<Vec<u8>> = redis::cmd("GET")
            .arg(self.record_key(id))
            .query(&mut self.conn)?;
        let payload = payload.ok_or(GoError::NotFound)?;
        codec::decode(id, &payload).map_err(|_| GoError::Corrupt)
    }

    fn watch(&mut self, key: &str) -> Result<(), GoError> {
        redis::cmd("WATCH").arg(key).exec(&mut self.conn)?;
        Ok(())
    }

    /// `Tx.Close`: sent whatever the transaction's function returned.
    fn unwatch(&mut self) -> Result<(), GoError> {
        redis::cmd("UNWATCH").exec(&mut self.conn)?;
        Ok(())
    }

    /// `Watch(fn, key)`: WATCH, the function, UNWATCH (its error ignored,
    /// as go-redis ignores it).
    fn in_watch<T>(
        &mut self,
        key: &str,
        body: impl FnOnce(&mut Self) -> Result<T, GoError>,
    ) -> Result<T, GoError> {
        self.watch(key)?;
        let result = body(self);
        let _ = self.unwatch();
        result
    }

    /// `TxPipelined`: MULTI, the commands, EXEC in one write; `false` when
    /// EXEC was aborted by a watched key's change (`TxFailedErr`).
    fn exec(&mut self, pipe: &redis::Pipeline) -> Result<bool, GoError> {
        let replies: Option<redis::Value> = pipe.query(&mut self.conn)?;
        Ok(replies.is_some())
    }

    /// `Store.Get`.
    pub(crate) fn get(&mut self, id: &DeviceSessionId) -> Result<Session, GoError> {
        self.load(id)
    }

    /// `Store.ListByUserID`.
    pub(crate) fn list(&mut self, user: &UserId) -> Result<Vec<Session>, GoError> {
        let ids: Vec<String> = redis::cmd("ZREVRANGE")
            .arg(self.keys.user_sessions_key(user))
            .arg(0)
            .arg(-1)
            .query(&mut self.conn)?;
        let mut sessions = Vec::with_capacity(ids.len());
        for raw in ids {
            let id = DeviceSessionId::parse(raw).map_err(|_| GoError::Corrupt)?;
            let session = self.load(&id).map_err(|e| match e {
                GoError::NotFound => GoError::Corrupt,
                other => other,
            })?;
            if session.user_id() != user {
                return Err(GoError::Corrupt);
            }
            sessions.push(session);
        }
        sort_newest_first(&mut sessions);
        Ok(sessions)
    }

    /// `Store.Create`.
    pub(crate) fn create(&mut self, session: &Session) -> Result<(), GoError> {
        let payload = codec::encode(session);
        let key = self.record_key(session.id());
        let all = self.keys.user_sessions_key(session.user_id());
        let active = self.keys.user_active_sessions_key(session.user_id());
        let score = IndexScore::of(session.created_at()).to_string();
        let member = session.id().as_str();
        let applied = self.in_watch(&key, |this| {
            let existing: Option<Vec<u8>> = redis::cmd("GET").arg(&key).query(&mut this.conn)?;
            if existing.is_some() {
                return Err(GoError::Conflict);
            }
            let mut pipe = redis::pipe();
            pipe.atomic()
                .cmd("SET")
                .arg(&key)
                .arg(&payload)
                .cmd("ZADD")
                .arg(&all)
                .arg(&score)
                .arg(member);
            if session.is_active() {
                pipe.cmd("ZADD").arg(&active).arg(&score).arg(member);
            }
            this.exec(&pipe)
        })?;
        if applied {
            Ok(())
        } else {
            Err(GoError::Conflict)
        }
    }

    /// `runMutation`: up to three attempts, the next at once after an
    /// aborted EXEC.
    fn mutation<T>(
        &mut self,
        mut attempt: impl FnMut(&mut Self) -> Result<Attempt<T>, GoError>,
    ) -> Result<T, GoError> {
        for _ in 0..MUTATION_RETRY_LIMIT {
            if let Attempt::Done(value) = attempt(self)? {
                return Ok(value);
            }
        }
        Err(GoError::RetryLimit)
    }

    /// `Store.Revoke`.
    pub(crate) fn revoke(
        &mut self,
        input: &RevokeSessionInput,
    ) -> Result<RevokeSessionOutcome, GoError> {
        let id = &input.device_session_id;
        let key = self.record_key(id);
        self.mutation(|this| {
            this.in_watch(&key, |this| {
                let current = this.load(id)?;
                if !current.is_active() {
                    return Ok(Attempt::Done(RevokeSessionOutcome::AlreadyRevoked(current)));
                }
                let active = this.keys.user_active_sessions_key(current.user_id());
                let next = current
                    .revoked(input.revocation.clone())
                    .map_err(|_| GoError::InvalidInput)?;
                let mut pipe = redis::pipe();
                pipe.atomic()
                    .cmd("SET")
                    .arg(&key)
                    .arg(codec::encode(&next))
                    .cmd("ZREM")
                    .arg(&active)
                    .arg(id.as_str());
                Ok(if this.exec(&pipe)? {
                    Attempt::Done(RevokeSessionOutcome::Revoked(next))
                } else {
                    Attempt::Retry
                })
            })
        })
    }

    /// `Store.RevokeAllByUserID`.
    pub(crate) fn revoke_all(
        &mut self,
        input: &RevokeUserSessionsInput,
    ) -> Result<RevokeUserSessionsOutcome, GoError> {
        let user = &input.user_id;
        let active = self.keys.user_active_sessions_key(user);
        self.mutation(|this| {
            this.in_watch(&active, |this| {
                let ids: Vec<String> = redis::cmd("ZREVRANGE")
                    .arg(&active)
                    .arg(0)
                    .arg(-1)
                    .query(&mut this.conn)?;
                if ids.is_empty() {
                    // The adapter forces an EXEC so WATCH observes concurrent
                    // changes on the no-op path too.
                    let mut pipe = redis::pipe();
                    pipe.atomic().cmd("ZCARD").arg(&active);
                    return Ok(if this.exec(&pipe)? {
                        Attempt::Done(RevokeUserSessionsOutcome::NoActiveSessions)
                    } else {
                        Attempt::Retry
                    });
                }
                let mut revoked = Vec::with_capacity(ids.len());
                for raw in ids {
                    let id = DeviceSessionId::parse(raw).map_err(|_| GoError::Corrupt)?;
                    let record = this.load(&id).map_err(|e| match e {
                        GoError::NotFound => GoError::Corrupt,
                        other => other,
                    })?;
                    if record.user_id() != user || !record.is_active() {
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
                        .arg(this.record_key(session.id()))
                        .arg(codec::encode(session))
                        .cmd("ZREM")
                        .arg(&active)
                        .arg(session.id().as_str());
                }
                if !this.exec(&pipe)? {
                    return Ok(Attempt::Retry);
                }
                sort_newest_first(&mut revoked);
                Ok(Attempt::Done(RevokeUserSessionsOutcome::Revoked(revoked)))
            })
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use authsession_core::{
        ClientPublicKey, Revocation, RevokeActorId, RevokeActorType, RevokeReasonCode, Timestamp,
    };
    use authsession_driver::{CheckMode, SessionAdmin as _, SessionStore as _};
    use authsession_tests::monitor::Monitor;
    use authsession_tests::RedisServer;

    fn session(id: &str, user: &str, at: &str) -> Session {
        Session::active(
            DeviceSessionId::parse(id).unwrap(),
            UserId::parse(user).unwrap(),
            ClientPublicKey::from([7; 32]),
            Timestamp::parse(at).unwrap(),
        )
        .unwrap()
    }

    fn revocation(at: &str) -> Revocation {
        Revocation::new(
            Timestamp::parse(at).unwrap(),
            RevokeReasonCode::parse("logout").unwrap(),
            RevokeActorType::parse("user").unwrap(),
            RevokeActorId::empty(),
        )
        .unwrap()
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
            let mut go = GoAdapter::connect(&client, keys, Duration::from_secs(5)).unwrap();
            let mut sent = async || -> Vec<String> {
                let commands = monitor.since_last_mark(&raw).await;
                commands.into_iter().map(|c| c.name).collect()
            };
            sent().await;

            let first = session("d1", "u", "2026-01-01T00:00:00Z");
            go.create(&first).unwrap();
            assert_eq!(
                sent().await,
                ["watch", "get", "multi", "set", "zadd", "zadd", "exec", "unwatch"]
            );
            assert_eq!(store.get(first.id()).await.unwrap(), first);
            sent().await;
            assert!(matches!(go.create(&first), Err(GoError::Conflict)));
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
            let listed = go.list(&user).unwrap();
            assert_eq!(sent().await, ["zrevrange", "get", "get", "get"]);
            assert_eq!(listed, store.list_by_user_id(&user).await.unwrap());
            sent().await;
            assert_eq!(go.get(first.id()).unwrap(), first);
            assert_eq!(sent().await, ["get"]);
            assert!(matches!(
                go.get(&DeviceSessionId::parse("nope").unwrap()),
                Err(GoError::NotFound)
            ));
            sent().await;

            let input = RevokeSessionInput {
                device_session_id: first.id().clone(),
                revocation: revocation("2026-02-01T00:00:00Z"),
            };
            let revoked = go.revoke(&input).unwrap();
            assert_eq!(revoked.as_str(), "revoked");
            assert_eq!(
                sent().await,
                ["watch", "get", "multi", "set", "zrem", "exec", "unwatch"]
            );
            assert_eq!(&store.get(first.id()).await.unwrap(), revoked.session());
            sent().await;
            assert_eq!(go.revoke(&input).unwrap().as_str(), "already_revoked");
            assert_eq!(sent().await, ["watch", "get", "unwatch"]);

            let all = RevokeUserSessionsInput {
                user_id: user.clone(),
                revocation: revocation("2026-02-02T00:00:00Z"),
            };
            let outcome = go.revoke_all(&all).unwrap();
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
            assert_eq!(go.revoke_all(&all).unwrap().as_str(), "no_active_sessions");
            assert_eq!(
                sent().await,
                ["watch", "zrevrange", "multi", "zcard", "exec", "unwatch"]
            );
            assert!(store.check(CheckMode::Report).await.unwrap().is_clean());
        });
    }
}
