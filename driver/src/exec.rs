//! The small storage vocabulary both stores implement, so that every
//! operation's flow ([`crate::ops`]) is written once: the Redis store maps
//! each call to one round trip, the memory store to one lock.

use std::future::Future;
use std::time::Duration;

use authsession_core::plan::{Plan, Precondition, Write};
use authsession_core::IndexScore;
use tokio::time::Instant;

use crate::config::RetryPolicy;
use crate::error::Error;

/// When an operation must be done by, and the cap of one round trip.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    /// The whole operation's deadline; `None` for unbounded scans
    /// (`check`, `purge`), whose round trips are still capped.
    at: Option<Instant>,
    round_trip: Duration,
}

impl Deadline {
    /// `timeout` from now for the whole operation and for each round trip.
    pub(crate) fn after(timeout: Duration) -> Self {
        Self {
            at: Instant::now().checked_add(timeout),
            round_trip: timeout,
        }
    }

    /// No overall deadline; each round trip capped at `round_trip`.
    pub(crate) fn per_round_trip(round_trip: Duration) -> Self {
        Self {
            at: None,
            round_trip,
        }
    }

    /// The time one round trip may take now, or `None` when the deadline
    /// has passed.
    pub(crate) fn round_trip_budget(&self) -> Option<Duration> {
        match self.at {
            None => Some(self.round_trip),
            Some(at) => {
                let left = at.saturating_duration_since(Instant::now());
                (!left.is_zero()).then(|| left.min(self.round_trip))
            }
        }
    }

    /// The configured cap of one round trip.
    pub(crate) fn round_trip(&self) -> Duration {
        self.round_trip
    }

    /// Whether sleeping `pause` still leaves time for another attempt.
    fn allows(&self, pause: Duration) -> bool {
        self.at.is_none_or(|at| {
            Instant::now()
                .checked_add(pause)
                .is_some_and(|wake| wake < at)
        })
    }
}

/// What applying a plan did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Applied {
    /// Every precondition held; every write was made.
    Done,
    /// The precondition about `key` did not hold; nothing was written.
    Violated { key: String },
}

/// The type a plan needs at `key`: a sorted set when it reads or writes
/// it as an index, else a string (a record).
pub(crate) fn expected_type(plan: &Plan, key: &str) -> &'static str {
    let as_index = plan.preconditions().iter().any(|p| {
        matches!(p, Precondition::IndexRangeEquals { key: k, .. } if k == key)
    }) || plan.writes().iter().any(|w| {
        matches!(w, Write::IndexAdd { key: k, .. } | Write::IndexRemove { key: k, .. } if k == key)
    });
    if as_index {
        "sorted set"
    } else {
        "string"
    }
}

/// A sorted set with its members and scores.
pub(crate) type IndexEntries = (String, Vec<(String, f64)>);

/// The storage operations the flows need. Every method is one round trip
/// for Redis (bounded by the deadline) and one lock for memory.
pub(crate) trait Executor: Send + Sync {
    /// Checks the server answers.
    fn ping(&self, deadline: Deadline) -> impl Future<Output = Result<(), Error>> + Send;

    /// The string value at `key`.
    fn get(
        &self,
        deadline: Deadline,
        key: &str,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, Error>> + Send;

    /// The string values at `keys` (non-empty), in order.
    fn mget(
        &self,
        deadline: Deadline,
        keys: &[String],
    ) -> impl Future<Output = Result<Vec<Option<Vec<u8>>>, Error>> + Send;

    /// Members of the sorted set at `key` with score at most `max_score`
    /// (all when `None`). Order is unspecified: the core orders results.
    fn index_members(
        &self,
        deadline: Deadline,
        key: &str,
        max_score: Option<IndexScore>,
    ) -> impl Future<Output = Result<Vec<String>, Error>> + Send;

    /// Cardinality of the sorted set at `key`.
    fn index_len(
        &self,
        deadline: Deadline,
        key: &str,
    ) -> impl Future<Output = Result<u64, Error>> + Send;

    /// Applies `plan` atomically: all preconditions hold and every write
    /// is made, or nothing is written.
    fn apply(
        &self,
        deadline: Deadline,
        plan: &Plan,
    ) -> impl Future<Output = Result<Applied, Error>> + Send;

    /// Every string key under `prefix` with its value.
    fn scan_values(
        &self,
        deadline: Deadline,
        prefix: &str,
    ) -> impl Future<Output = Result<Vec<(String, Vec<u8>)>, Error>> + Send;

    /// Every sorted set under `prefix` with its members and scores.
    fn scan_indexes(
        &self,
        deadline: Deadline,
        prefix: &str,
    ) -> impl Future<Output = Result<Vec<IndexEntries>, Error>> + Send;

    /// Deletes every key under `prefix`; returns how many.
    fn delete_prefix(
        &self,
        deadline: Deadline,
        prefix: &str,
    ) -> impl Future<Output = Result<u64, Error>> + Send;

    /// Waits `pause` before the next attempt of a contended mutation.
    fn pause(&self, pause: Duration) -> impl Future<Output = ()> + Send;
}

/// Counts attempts of one mutation and sleeps between them.
#[derive(Debug)]
pub(crate) struct Retrier {
    policy: RetryPolicy,
    deadline: Deadline,
    attempts: u32,
}

impl Retrier {
    pub(crate) fn new(policy: RetryPolicy, deadline: Deadline) -> Self {
        Self {
            policy,
            deadline,
            attempts: 0,
        }
    }

    /// Called after an attempt was invalidated at `key`: sleeps a jittered
    /// backoff, or fails with `ContentionExhausted` when the attempts or
    /// the deadline are used up.
    pub(crate) async fn backoff(&mut self, exec: &impl Executor, key: String) -> Result<(), Error> {
        let failed = self.attempts;
        self.attempts = self.attempts.saturating_add(1);
        if self.attempts >= self.policy.max_attempts {
            return Err(Error::contention(self.attempts, key));
        }
        let cap = self.policy.backoff_cap(failed);
        let cap_nanos = u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX);
        let pause = Duration::from_nanos(rand::random_range(0..=cap_nanos));
        if !self.deadline.allows(pause) {
            return Err(Error::contention(self.attempts, key));
        }
        exec.pause(pause).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::ErrorKind;

    fn policy(max_attempts: u32, delay: Duration) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            base_delay: delay,
            max_delay: delay,
        }
    }

    #[tokio::test]
    async fn gives_up_after_max_attempts() {
        let exec = crate::memory::Shared::default();
        let deadline = Deadline::per_round_trip(Duration::from_secs(1));
        let mut retrier = Retrier::new(policy(3, Duration::from_micros(1)), deadline);
        retrier.backoff(&exec, "k".into()).await.unwrap();
        retrier.backoff(&exec, "k".into()).await.unwrap();
        let err = retrier.backoff(&exec, "k".into()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ContentionExhausted);
        assert_eq!(err.key(), Some("k"));
        assert!(err.to_string().contains("3 attempts"), "{err}");
    }

    #[tokio::test]
    async fn gives_up_at_the_deadline() {
        let exec = crate::memory::Shared::default();
        let deadline = Deadline::after(Duration::ZERO);
        assert_eq!(deadline.round_trip_budget(), None);
        let mut retrier = Retrier::new(policy(64, Duration::ZERO), deadline);
        let err = retrier.backoff(&exec, "k".into()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ContentionExhausted);
    }

    #[test]
    fn round_trips_get_what_is_left() {
        let d = Deadline::after(Duration::from_secs(60));
        let budget = d.round_trip_budget().unwrap();
        assert!(budget <= Duration::from_secs(60) && budget > Duration::from_secs(59));
        let unbounded = Deadline::per_round_trip(Duration::from_millis(7));
        assert_eq!(
            unbounded.round_trip_budget(),
            Some(Duration::from_millis(7))
        );
    }
}
