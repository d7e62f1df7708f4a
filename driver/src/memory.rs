//! The in-memory store: the core's [`MemoryKv`] behind a mutex, driven by
//! the same flows as Redis, so outcomes, errors and ordering are identical.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use authsession_core::model::MemoryKv;
use authsession_core::plan::{OnViolation, Plan, Precondition, Write};
use authsession_core::{
    DeviceSessionId, IndexScore, KeySpace, RevokeSessionInput, RevokeSessionOutcome,
    RevokeUserSessionsInput, RevokeUserSessionsOutcome, Session, UserId,
};

use crate::check::CheckReport;
use crate::config::RetryPolicy;
use crate::error::Error;
use crate::exec::{expected_type, Applied, Deadline, Executor, IndexEntries};
use crate::ops;
use crate::SessionStore;

/// A [`SessionStore`] in process memory, with the Redis store's semantics.
/// For tests and the CLI's embedded default. Cheap to clone (clones share
/// the data).
#[derive(Debug, Clone, Default)]
pub struct MemorySessionStore {
    kv: Arc<Shared>,
    keys: KeySpace,
    retry: RetryPolicy,
}

#[derive(Debug, Default)]
pub(crate) struct Shared(Mutex<MemoryKv>);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, MemoryKv> {
        // MemoryKv never panics mid-update, so a poisoned lock still
        // guards a consistent state.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl MemorySessionStore {
    /// An empty store over `keys`.
    pub fn new(keys: KeySpace) -> Self {
        Self {
            kv: Arc::default(),
            keys,
            retry: RetryPolicy::default(),
        }
    }

    /// Runs `f` on the raw state under the lock: tests plant corruption
    /// with [`MemoryKv::set_raw`] and friends, or inspect it.
    pub fn with_kv<R>(&self, f: impl FnOnce(&mut MemoryKv) -> R) -> R {
        f(&mut self.kv.lock())
    }

    /// Memory operations never wait on I/O; the deadline only bounds
    /// retries of contended mutations.
    fn deadline() -> Deadline {
        Deadline::per_round_trip(Duration::MAX)
    }
}

/// Whether a sorted set exists at `key` (the model drops emptied ones,
/// like Redis).
fn holds_index(kv: &MemoryKv, key: &str) -> bool {
    kv.index_len(key) > 0
}

impl Executor for Shared {
    async fn ping(&self, _: Deadline) -> Result<(), Error> {
        Ok(())
    }

    async fn get(&self, _: Deadline, key: &str) -> Result<Option<Vec<u8>>, Error> {
        let kv = self.lock();
        match kv.get(key) {
            Some(value) => Ok(Some(value.to_vec())),
            None if holds_index(&kv, key) => Err(Error::wrong_type(key, "string")),
            None => Ok(None),
        }
    }

    async fn mget(&self, _: Deadline, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        let kv = self.lock();
        Ok(keys.iter().map(|k| kv.get(k).map(<[u8]>::to_vec)).collect())
    }

    async fn index_members(
        &self,
        _: Deadline,
        key: &str,
        max_score: Option<IndexScore>,
    ) -> Result<Vec<String>, Error> {
        let kv = self.lock();
        if kv.get(key).is_some() {
            return Err(Error::wrong_type(key, "sorted set"));
        }
        Ok(kv
            .index_range(key, max_score)
            .into_iter()
            .map(|(member, _)| member)
            .collect())
    }

    async fn index_len(&self, _: Deadline, key: &str) -> Result<u64, Error> {
        let kv = self.lock();
        if kv.get(key).is_some() {
            return Err(Error::wrong_type(key, "sorted set"));
        }
        Ok(u64::try_from(kv.index_len(key)).unwrap_or(u64::MAX))
    }

    async fn apply(&self, _: Deadline, plan: &Plan) -> Result<Applied, Error> {
        let mut kv = self.lock();
        // Same order of checks as the Redis script: each precondition's
        // key type, then whether it holds; then the write targets' types.
        for precondition in plan.preconditions() {
            let key = precondition.key();
            let wrong_type = match precondition {
                Precondition::IndexRangeEquals { .. } => kv.get(key).is_some(),
                _ => kv.get(key).is_none() && holds_index(&kv, key),
            };
            if wrong_type {
                return Err(Error::wrong_type(key, expected_type(plan, key)));
            }
            let alone = Plan::new(vec![precondition.clone()], Vec::new(), OnViolation::Retry);
            if kv.apply(&alone).is_err() {
                return Ok(Applied::Violated {
                    key: key.to_owned(),
                });
            }
        }
        for write in plan.writes() {
            let index_write = matches!(write, Write::IndexAdd { .. } | Write::IndexRemove { .. });
            if index_write && kv.get(write.key()).is_some() {
                return Err(Error::wrong_type(write.key(), "sorted set"));
            }
        }
        Ok(match kv.apply(plan) {
            Ok(()) => Applied::Done,
            Err(violation) => Applied::Violated { key: violation.key },
        })
    }

    async fn scan_values(
        &self,
        _: Deadline,
        prefix: &str,
    ) -> Result<Vec<(String, Vec<u8>)>, Error> {
        let kv = self.lock();
        Ok(kv
            .value_keys()
            .filter(|k| k.starts_with(prefix))
            .filter_map(|k| kv.get(k).map(|v| (k.to_owned(), v.to_vec())))
            .collect())
    }

    async fn scan_indexes(&self, _: Deadline, prefix: &str) -> Result<Vec<IndexEntries>, Error> {
        let kv = self.lock();
        Ok(kv
            .index_keys()
            .filter(|k| k.starts_with(prefix))
            .map(|k| (k.to_owned(), kv.index_range(k, None)))
            .collect())
    }

    async fn delete_prefix(&self, _: Deadline, prefix: &str) -> Result<u64, Error> {
        let mut kv = self.lock();
        let doomed: Vec<String> = kv
            .value_keys()
            .chain(kv.index_keys())
            .filter(|k| k.starts_with(prefix))
            .map(str::to_owned)
            .collect();
        for key in &doomed {
            kv.delete_raw(key);
        }
        Ok(u64::try_from(doomed.len()).unwrap_or(u64::MAX))
    }

    async fn pause(&self, _: Duration) {
        // Contention here is between tasks of one process holding the lock
        // for microseconds: yielding lets the winner finish.
        tokio::task::yield_now().await;
    }
}

impl SessionStore for MemorySessionStore {
    async fn ping(&self) -> Result<(), Error> {
        ops::ping(&*self.kv, Self::deadline()).await
    }

    async fn get(&self, id: &DeviceSessionId) -> Result<Session, Error> {
        ops::get(&*self.kv, &self.keys, Self::deadline(), id).await
    }

    async fn list_by_user_id(&self, user: &UserId) -> Result<Vec<Session>, Error> {
        ops::list(&*self.kv, &self.keys, self.retry, Self::deadline(), user).await
    }

    async fn count_active_by_user_id(&self, user: &UserId) -> Result<u64, Error> {
        ops::count_active(&*self.kv, &self.keys, Self::deadline(), user).await
    }

    async fn create(&self, session: &Session) -> Result<(), Error> {
        ops::create(&*self.kv, &self.keys, Self::deadline(), session).await
    }

    async fn revoke(&self, input: &RevokeSessionInput) -> Result<RevokeSessionOutcome, Error> {
        ops::revoke(&*self.kv, &self.keys, self.retry, Self::deadline(), input).await
    }

    async fn revoke_all_by_user_id(
        &self,
        input: &RevokeUserSessionsInput,
    ) -> Result<RevokeUserSessionsOutcome, Error> {
        ops::revoke_all(&*self.kv, &self.keys, self.retry, Self::deadline(), input).await
    }

    async fn check(&self, repair: bool) -> Result<CheckReport, Error> {
        ops::check(&*self.kv, &self.keys, self.retry, Self::deadline(), repair).await
    }

    async fn purge(&self) -> Result<u64, Error> {
        ops::purge(&*self.kv, &self.keys, Self::deadline()).await
    }

    fn key_space(&self) -> &KeySpace {
        &self.keys
    }
}
