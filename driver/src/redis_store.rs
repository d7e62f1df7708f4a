//! The Redis store: one multiplexed, self-reconnecting connection
//! (`redis::aio::ConnectionManager`); reads are plain commands, every
//! mutation is one generic Lua script applying a core plan atomically (no
//! `WATCH`, which is unsafe on a shared connection).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use authsession_core::plan::{Plan, Precondition, Write};
use authsession_core::{
    DeviceSessionId, IndexScore, KeySpace, RevokeSessionInput, RevokeSessionOutcome,
    RevokeUserSessionsInput, RevokeUserSessionsOutcome, Session, TransitionError, UserId,
};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{FromRedisValue, IntoConnectionInfo as _};

use crate::check::CheckReport;
use crate::config::{RedisConfig, RetryPolicy};
use crate::error::Error;
use crate::exec::{expected_type, Applied, Deadline, Executor, IndexEntries};
use crate::ops;
use crate::SessionStore;

/// The plan applier (see the script's header for its encoding).
const APPLY_PLAN_LUA: &str = include_str!("apply_plan.lua");

/// Keys per `SCAN` page and per `MGET`/pipeline batch of `check`/`purge`.
const SCAN_BATCH: usize = 512;

/// A [`SessionStore`] on Redis (or any server speaking its protocol with
/// Lua scripting). Cheap to clone: clones share the connection.
#[derive(Clone)]
pub struct RedisSessionStore {
    exec: Arc<RedisExec>,
    keys: KeySpace,
    retry: RetryPolicy,
    operation_timeout: Duration,
    addr: String,
}

impl fmt::Debug for RedisSessionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSessionStore")
            .field("addr", &self.addr)
            .field("keys", &self.keys)
            .field("operation_timeout", &self.operation_timeout)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

struct RedisExec {
    conn: ConnectionManager,
    apply_plan: redis::Script,
}

impl RedisSessionStore {
    /// Validates `config` and connects (within `operation_timeout`).
    ///
    /// The connection reconnects by itself after a failure: operations
    /// fail fast with [`ErrorKind::Backend`](crate::ErrorKind::Backend)
    /// (or `Timeout`) while the server is unreachable and succeed again
    /// once it is back.
    pub async fn connect(config: RedisConfig) -> Result<Self, Error> {
        config.validate()?;
        let (host, port) = config.host_port()?;
        let addr = if config.tls {
            redis::ConnectionAddr::TcpTls {
                host,
                port,
                insecure: false,
                tls_params: None,
            }
        } else {
            redis::ConnectionAddr::Tcp(host, port)
        };
        let mut settings = redis::RedisConnectionInfo::default().set_db(config.db);
        if let Some(username) = &config.username {
            settings = settings.set_username(username);
        }
        if let Some(password) = &config.password {
            settings = settings.set_password(password);
        }
        let info = addr
            .into_connection_info()
            .map_err(|e| Error::config("addr", e.to_string()))?
            .set_redis_settings(settings);
        let client = match &config.tls_ca_pem {
            #[cfg(feature = "tls")]
            Some(pem) => redis::Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.clone()),
                },
            )
            .map_err(|e| Error::config("tls_ca_pem", e.to_string()))?,
            #[cfg(not(feature = "tls"))]
            Some(_) => return Err(Error::config("tls", "built without the `tls` feature")),
            None => redis::Client::open(info).map_err(|e| Error::config("addr", e.to_string()))?,
        };
        let timeout = config.operation_timeout;
        // One connection attempt per reconnect, bounded by the operation
        // timeout: while the server is down, callers get the connection
        // error at once instead of queueing behind a backoff loop, and the
        // next call tries again.
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(0);
        let conn = match tokio::time::timeout(
            timeout,
            ConnectionManager::new_with_config(client, manager_config),
        )
        .await
        {
            Ok(conn) => conn.map_err(|e| Error::redis("connect", e))?,
            Err(_) => return Err(Error::timeout("connect", timeout)),
        };
        let store = Self {
            exec: Arc::new(RedisExec {
                conn,
                apply_plan: redis::Script::new(APPLY_PLAN_LUA),
            }),
            keys: config.key_space,
            retry: config.retry,
            operation_timeout: timeout,
            addr: config.addr,
        };
        // Without credentials the server accepts the connection and refuses
        // the first command: surface that (and any other refusal) here, as
        // a clear error of `connect`, not of some later operation.
        store.exec.ping(store.deadline()).await?;
        Ok(store)
    }

    fn deadline(&self) -> Deadline {
        Deadline::after(self.operation_timeout)
    }

    /// `check` and `purge` walk the whole key space: no overall deadline,
    /// but every round trip is still bounded.
    fn scan_deadline(&self) -> Deadline {
        Deadline::per_round_trip(self.operation_timeout)
    }
}

impl RedisExec {
    /// One round trip, bounded by what is left of the deadline.
    async fn query<T: FromRedisValue>(
        &self,
        deadline: Deadline,
        op: &'static str,
        cmd: &redis::Cmd,
    ) -> Result<T, Error> {
        self.query_typed(deadline, op, cmd, None).await
    }

    /// [`Self::query`] on one key that must hold `expected` (a type name):
    /// a `WRONGTYPE` reply is corrupt data at that key.
    async fn query_typed<T: FromRedisValue>(
        &self,
        deadline: Deadline,
        op: &'static str,
        cmd: &redis::Cmd,
        key_type: Option<(&str, &'static str)>,
    ) -> Result<T, Error> {
        let budget = deadline
            .round_trip_budget()
            .ok_or_else(|| Error::deadline_passed(op, deadline.round_trip()))?;
        let mut conn = self.conn.clone();
        match tokio::time::timeout(budget, cmd.query_async::<T>(&mut conn)).await {
            Ok(result) => result.map_err(|e| match key_type {
                Some((key, expected)) if e.code() == Some("WRONGTYPE") => {
                    Error::wrong_type(key, expected)
                }
                _ => Error::redis(op, e),
            }),
            Err(_) => Err(Error::timeout(op, budget)),
        }
    }

    /// One pipelined round trip.
    async fn query_pipe<T: FromRedisValue>(
        &self,
        deadline: Deadline,
        op: &'static str,
        pipe: &redis::Pipeline,
    ) -> Result<T, Error> {
        let budget = deadline
            .round_trip_budget()
            .ok_or_else(|| Error::deadline_passed(op, deadline.round_trip()))?;
        let mut conn = self.conn.clone();
        match tokio::time::timeout(budget, pipe.query_async::<T>(&mut conn)).await {
            Ok(result) => result.map_err(|e| Error::redis(op, e)),
            Err(_) => Err(Error::timeout(op, budget)),
        }
    }

    /// Every key matching `prefix*` (of `type_name` when given), page by
    /// page, handing each page to `each`.
    async fn scan_keys(
        &self,
        deadline: Deadline,
        prefix: &str,
        type_name: Option<&str>,
    ) -> Result<Vec<String>, Error> {
        let pattern = format!("{}*", glob_escape(prefix));
        let mut cursor: u64 = 0;
        let mut keys = Vec::new();
        loop {
            let mut cmd = redis::cmd("SCAN");
            cmd.arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(SCAN_BATCH);
            if let Some(type_name) = type_name {
                cmd.arg("TYPE").arg(type_name);
            }
            let (next, page): (u64, Vec<Vec<u8>>) = self.query(deadline, "scan", &cmd).await?;
            // Keys under our prefixes are built from base64url text; a
            // non-UTF-8 key cannot be ours.
            keys.extend(page.into_iter().filter_map(|k| String::from_utf8(k).ok()));
            if next == 0 {
                break;
            }
            cursor = next;
        }
        keys.sort();
        keys.dedup();
        Ok(keys)
    }
}

/// `prefix` with the glob metacharacters of `SCAN MATCH` escaped.
fn glob_escape(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len());
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The script's `KEYS` and `ARGV` for `plan` (encoding in the script's
/// header).
fn plan_args(plan: &Plan) -> (Vec<&str>, Vec<Vec<u8>>) {
    let keys = plan.keys();
    let position: HashMap<&str, usize> =
        keys.iter().enumerate().map(|(i, k)| (*k, i + 1)).collect();
    let at = |key: &str| {
        position
            .get(key)
            .copied()
            .unwrap_or_default()
            .to_string()
            .into_bytes()
    };
    let text = |s: &str| s.as_bytes().to_vec();
    let mut argv = vec![plan.preconditions().len().to_string().into_bytes()];
    for precondition in plan.preconditions() {
        match precondition {
            Precondition::Absent { key } => argv.extend([text("A"), at(key)]),
            Precondition::ValueEquals { key, value } => {
                argv.extend([text("V"), at(key), value.clone()]);
            }
            Precondition::IndexRangeEquals {
                key,
                max_score,
                members,
            } => {
                let max = max_score.map_or_else(|| "+inf".to_owned(), |s| s.to_string());
                argv.extend([
                    text("R"),
                    at(key),
                    max.into_bytes(),
                    members.len().to_string().into_bytes(),
                ]);
                argv.extend(members.iter().map(|m| text(m)));
            }
            // A precondition this driver does not know must fail the
            // script (before any write), never be skipped.
            other => argv.push(format!("unsupported {other:?}").into_bytes()),
        }
    }
    for write in plan.writes() {
        match write {
            Write::Set { key, value } => argv.extend([text("S"), at(key), value.clone()]),
            Write::IndexAdd { key, score, member } => argv.extend([
                text("Z"),
                at(key),
                score.to_string().into_bytes(),
                text(member),
            ]),
            Write::IndexRemove { key, member } => {
                argv.extend([text("X"), at(key), text(member)]);
            }
            other => argv.push(format!("unsupported {other:?}").into_bytes()),
        }
    }
    (keys, argv)
}

/// Non-UTF-8 sorted-set members cannot be device session ids.
fn members_to_strings(index_key: &str, raw: Vec<Vec<u8>>) -> Result<Vec<String>, Error> {
    raw.into_iter()
        .map(|m| {
            String::from_utf8(m).map_err(|e| {
                TransitionError::InvalidIndexMember {
                    index_key: index_key.to_owned(),
                    member: String::from_utf8_lossy(e.as_bytes()).into_owned(),
                }
                .into()
            })
        })
        .collect()
}

impl Executor for RedisExec {
    async fn ping(&self, deadline: Deadline) -> Result<(), Error> {
        let _: String = self.query(deadline, "ping", &redis::cmd("PING")).await?;
        Ok(())
    }

    async fn get(&self, deadline: Deadline, key: &str) -> Result<Option<Vec<u8>>, Error> {
        let cmd = redis::cmd("GET").arg(key).to_owned();
        self.query_typed(deadline, "get", &cmd, Some((key, "string")))
            .await
    }

    async fn mget(
        &self,
        deadline: Deadline,
        keys: &[String],
    ) -> Result<Vec<Option<Vec<u8>>>, Error> {
        // MGET answers nil for a key of another type; the flows then treat
        // it as missing and confirm that on the server.
        self.query(deadline, "mget", redis::cmd("MGET").arg(keys))
            .await
    }

    async fn index_members(
        &self,
        deadline: Deadline,
        key: &str,
        max_score: Option<IndexScore>,
    ) -> Result<Vec<String>, Error> {
        let (op, cmd) = match max_score {
            None => (
                "zrange",
                redis::cmd("ZRANGE").arg(key).arg(0).arg(-1).to_owned(),
            ),
            Some(max) => (
                "zrangebyscore",
                redis::cmd("ZRANGEBYSCORE")
                    .arg(key)
                    .arg("-inf")
                    .arg(max.to_string())
                    .to_owned(),
            ),
        };
        let raw: Vec<Vec<u8>> = self
            .query_typed(deadline, op, &cmd, Some((key, "sorted set")))
            .await?;
        members_to_strings(key, raw)
    }

    async fn index_len(&self, deadline: Deadline, key: &str) -> Result<u64, Error> {
        let cmd = redis::cmd("ZCARD").arg(key).to_owned();
        self.query_typed(deadline, "zcard", &cmd, Some((key, "sorted set")))
            .await
    }

    async fn apply(&self, deadline: Deadline, plan: &Plan) -> Result<Applied, Error> {
        let budget = deadline
            .round_trip_budget()
            .ok_or_else(|| Error::deadline_passed("apply", deadline.round_trip()))?;
        let (keys, argv) = plan_args(plan);
        let mut invocation = self.apply_plan.prepare_invoke();
        for key in &keys {
            invocation.key(*key);
        }
        for arg in &argv {
            invocation.arg(arg.as_slice());
        }
        let mut conn = self.conn.clone();
        let result: i64 =
            match tokio::time::timeout(budget, invocation.invoke_async(&mut conn)).await {
                Ok(result) => result.map_err(|e| Error::redis("apply", e))?,
                Err(_) => return Err(Error::timeout("apply", budget)),
            };
        let key_at = |i: i64| {
            usize::try_from(i)
                .ok()
                .and_then(|i| i.checked_sub(1))
                .and_then(|i| keys.get(i))
                .map(|k| (*k).to_owned())
        };
        match result {
            0 => Ok(Applied::Done),
            i if i > 0 => {
                let key = usize::try_from(i - 1)
                    .ok()
                    .and_then(|i| plan.preconditions().get(i))
                    .map(|p| p.key().to_owned())
                    .unwrap_or_default();
                Ok(Applied::Violated { key })
            }
            i => {
                let key = key_at(i.saturating_neg()).unwrap_or_default();
                let expected = expected_type(plan, &key);
                Err(Error::wrong_type(key, expected))
            }
        }
    }

    async fn scan_values(
        &self,
        deadline: Deadline,
        prefix: &str,
    ) -> Result<Vec<(String, Vec<u8>)>, Error> {
        let keys = self.scan_keys(deadline, prefix, Some("string")).await?;
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(SCAN_BATCH) {
            let values: Vec<Option<Vec<u8>>> = self.mget(deadline, chunk).await?;
            // A key deleted since the scan is simply gone.
            out.extend(
                chunk
                    .iter()
                    .zip(values)
                    .filter_map(|(k, v)| v.map(|v| (k.clone(), v))),
            );
        }
        Ok(out)
    }

    async fn scan_indexes(
        &self,
        deadline: Deadline,
        prefix: &str,
    ) -> Result<Vec<IndexEntries>, Error> {
        let keys = self.scan_keys(deadline, prefix, Some("zset")).await?;
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(SCAN_BATCH) {
            let mut pipe = redis::pipe();
            for key in chunk {
                pipe.cmd("ZRANGE").arg(key).arg(0).arg(-1).arg("WITHSCORES");
            }
            let sets: Vec<Vec<(Vec<u8>, f64)>> = self.query_pipe(deadline, "zrange", &pipe).await?;
            for (key, members) in chunk.iter().zip(sets) {
                let members = members
                    .into_iter()
                    .map(|(m, score)| (String::from_utf8_lossy(&m).into_owned(), score))
                    .collect();
                out.push((key.clone(), members));
            }
        }
        Ok(out)
    }

    async fn delete_prefix(&self, deadline: Deadline, prefix: &str) -> Result<u64, Error> {
        let keys = self.scan_keys(deadline, prefix, None).await?;
        let mut deleted = 0;
        for chunk in keys.chunks(SCAN_BATCH) {
            let n: u64 = self
                .query(deadline, "unlink", redis::cmd("UNLINK").arg(chunk))
                .await?;
            deleted += n;
        }
        Ok(deleted)
    }

    async fn pause(&self, pause: Duration) {
        tokio::time::sleep(pause).await;
    }
}

impl SessionStore for RedisSessionStore {
    async fn ping(&self) -> Result<(), Error> {
        ops::ping(&*self.exec, self.deadline()).await
    }

    async fn get(&self, id: &DeviceSessionId) -> Result<Session, Error> {
        ops::get(&*self.exec, &self.keys, self.deadline(), id).await
    }

    async fn list_by_user_id(&self, user: &UserId) -> Result<Vec<Session>, Error> {
        ops::list(&*self.exec, &self.keys, self.retry, self.deadline(), user).await
    }

    async fn count_active_by_user_id(&self, user: &UserId) -> Result<u64, Error> {
        ops::count_active(&*self.exec, &self.keys, self.deadline(), user).await
    }

    async fn create(&self, session: &Session) -> Result<(), Error> {
        ops::create(&*self.exec, &self.keys, self.deadline(), session).await
    }

    async fn revoke(&self, input: &RevokeSessionInput) -> Result<RevokeSessionOutcome, Error> {
        ops::revoke(&*self.exec, &self.keys, self.retry, self.deadline(), input).await
    }

    async fn revoke_all_by_user_id(
        &self,
        input: &RevokeUserSessionsInput,
    ) -> Result<RevokeUserSessionsOutcome, Error> {
        ops::revoke_all(&*self.exec, &self.keys, self.retry, self.deadline(), input).await
    }

    async fn check(&self, repair: bool) -> Result<CheckReport, Error> {
        ops::check(
            &*self.exec,
            &self.keys,
            self.retry,
            self.scan_deadline(),
            repair,
        )
        .await
    }

    async fn purge(&self) -> Result<u64, Error> {
        ops::purge(&*self.exec, &self.keys, self.scan_deadline()).await
    }

    fn key_space(&self) -> &KeySpace {
        &self.keys
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use authsession_core::plan::OnViolation;

    #[test]
    fn glob_escape_escapes_metacharacters() {
        assert_eq!(glob_escape("a:b"), "a:b");
        assert_eq!(glob_escape("a*?[]\\"), "a\\*\\?\\[\\]\\\\");
    }

    #[test]
    fn plan_encoding_names_keys_by_position() {
        let plan = Plan::new(
            vec![
                Precondition::Absent { key: "k1".into() },
                Precondition::IndexRangeEquals {
                    key: "z".into(),
                    max_score: None,
                    members: vec!["m1".into(), "m2".into()],
                },
                Precondition::ValueEquals {
                    key: "k2".into(),
                    value: b"old".to_vec(),
                },
            ],
            vec![
                Write::Set {
                    key: "k1".into(),
                    value: b"v".to_vec(),
                },
                Write::IndexAdd {
                    key: "z".into(),
                    score: IndexScore::of("2024-05-06T07:08:09.123456789Z".parse().unwrap()),
                    member: "m3".into(),
                },
                Write::IndexRemove {
                    key: "z".into(),
                    member: "m1".into(),
                },
            ],
            OnViolation::Retry,
        );
        let (keys, argv) = plan_args(&plan);
        assert_eq!(keys, ["k1", "z", "k2"]);
        let argv: Vec<String> = argv
            .into_iter()
            .map(|a| String::from_utf8(a).unwrap())
            .collect();
        assert_eq!(
            argv,
            [
                "3",
                "A",
                "1",
                "R",
                "2",
                "+inf",
                "2",
                "m1",
                "m2",
                "V",
                "3",
                "old",
                "S",
                "1",
                "v",
                "Z",
                "2",
                "1714979289123456",
                "m3",
                "X",
                "2",
                "m1"
            ]
        );
    }
}
