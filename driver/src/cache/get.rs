//! `get` and `get_for_user` through the hot path: the owner remembered for
//! the id (tagged layout), the near cache when there is one, then the
//! core's `Get` as usual. The core decides what a remembered owner or a
//! cached session means ([`Get::with_known_owner`],
//! [`Get::with_remembered`]); this file only keeps them.

use std::time::Instant;

use authsession_core::op::{Get, Input, Operation as _, Step};
use authsession_core::{DeviceSessionId, Session, UserId};

use super::{CacheStats, Lookup};
use crate::backend::Backend;
use crate::error::{Error, ErrorKind};
use crate::store::Store;
use crate::telemetry;

impl<B: Backend> Store<B> {
    /// `get(id)` (`user` `None`) or `get_for_user(user, id)`.
    pub(crate) async fn hot_get(
        &self,
        id: &DeviceSessionId,
        user: Option<&UserId>,
    ) -> Result<Session, Error> {
        let now = self.now();
        let make = || match user {
            Some(user) => Get::for_user(&self.keys, self.policy, now, user.clone(), id.clone()),
            None => {
                let op = Get::new(&self.keys, self.policy, now, id.clone());
                match self.hot.known_owner(&self.keys, id) {
                    Some(owner) => op.with_known_owner(owner),
                    None => op,
                }
            }
        };
        let op = make();
        let result = match (self.backend.near_cache(), op.first_record_key()) {
            (Some(near), Some(key)) => match near.lookup(&key) {
                Lookup::Hit(session) => match self.answer_cached(op.with_remembered(session)) {
                    Some(answer) => answer,
                    // Not answerable from memory (past its retention): read.
                    None => self.drive(make()).await,
                },
                Lookup::Miss(token) => {
                    let result = self.drive(op).await;
                    if let Ok(session) = &result {
                        // Only what was read at this key, validated.
                        if self.keys.record_key(session.user_id(), session.id()) == key {
                            near.fill(&key, token, session.clone());
                        }
                    }
                    result
                }
            },
            _ => self.drive(op).await,
        };
        match &result {
            Ok(session) => self.hot.saw(&self.keys, id, Some(session)),
            // Not found by id: the owner key is gone too (the core read it
            // after the miss), so is what was remembered. By user, the id may
            // be another user's: nothing learnt.
            Err(e) if e.kind() == ErrorKind::NotFound && user.is_none() => {
                self.hot.saw(&self.keys, id, None)
            }
            Err(_) => {}
        }
        result
    }

    /// Runs `op` (given a cached session) without I/O, with its span;
    /// `None` when it needs a read after all.
    fn answer_cached(&self, mut op: Get) -> Option<Result<Session, Error>> {
        let name = op.name();
        let started = Instant::now();
        let result = match op.resume(Input::Start) {
            Ok(Step::Done(session)) => Ok(session),
            Ok(_) => return None,
            Err(e) => Err(Error::from(e)),
        };
        let span = telemetry::operation_span(name, self.backend.info());
        span.record("cache", "hit");
        telemetry::finish(
            &span,
            name,
            &telemetry::Stats::default(),
            started.elapsed(),
            result.as_ref().err(),
        );
        Some(result)
    }

    /// The near cache's barrier: once this returns, no cached read returns
    /// a value older than what the server held when the call began (every
    /// invalidation the server sent before has been handled: one round
    /// trip on each tracking connection). A no-op without a cache.
    pub async fn sync(&self) -> Result<(), Error> {
        match self.backend.near_cache() {
            Some(near) => near.sync(self.timeout).await,
            None => Ok(()),
        }
    }

    /// What the near cache did so far (`None` without one).
    pub fn cache_stats(&self) -> Option<CacheStats> {
        self.backend.near_cache().map(super::NearCache::stats)
    }
}
