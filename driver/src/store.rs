//! The one store: every operation is a core state machine run by one loop
//! ([`Store::drive`], the async mirror of `authsession_core::op::run`)
//! over any [`Backend`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use authsession_core::op::{
    Count, Create, Created, Input, List, ListPage, Operation, Page, PageRequest, Policy, Revoke,
    RevokeAllReport, Step,
};
use authsession_core::plan::{Applied, Reply};
use authsession_core::{
    DeviceSessionId, KeySpace, RevokeSessionInput, RevokeSessionOutcome, RevokeUserSessionsInput,
    RevokeUserSessionsOutcome, Session, Timestamp, TransitionError, UserId,
};
use tokio::time::Instant;
use tracing::Instrument as _;

use crate::backend::Backend;
use crate::config::RetryPolicy;
use crate::error::Error;
use crate::revoke_all::RevokeAllOptions;
use crate::telemetry;

/// Where "now" comes from: the system clock by default; tests inject
/// their own (retention and the session limit's revocations read it).
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> Timestamp + Send + Sync>);

impl Clock {
    /// The system's wall clock.
    pub fn system() -> Self {
        Self(Arc::new(system_now))
    }

    /// A clock reading `now()`.
    pub fn from_fn(now: impl Fn() -> Timestamp + Send + Sync + 'static) -> Self {
        Self(Arc::new(now))
    }

    /// The current time.
    pub fn now(&self) -> Timestamp {
        (self.0)()
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Clock")
    }
}

fn system_now() -> Timestamp {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(since) => i128::try_from(since.as_nanos()).unwrap_or(i128::MAX),
        Err(before) => -i128::try_from(before.duration().as_nanos()).unwrap_or(i128::MAX),
    };
    // A clock outside years 0000..=9999 is unusable; the epoch keeps the
    // store working (retention then removes nothing early).
    Timestamp::from_unix_nanos(nanos).unwrap_or_else(|_| Timestamp::min_value())
}

/// A device-session store over a backend: the standalone Redis backend
/// ([`crate::RedisSessionStore`]), a Redis Cluster
/// (`ClusterSessionStore`, feature `cluster`) or the in-memory
/// model ([`crate::MemorySessionStore`]). Cheap to clone: clones share the
/// backend.
pub struct Store<B> {
    pub(crate) backend: Arc<B>,
    pub(crate) keys: KeySpace,
    pub(crate) policy: Policy,
    pub(crate) retry: RetryPolicy,
    pub(crate) timeout: Duration,
    pub(crate) clock: Clock,
    /// Owners seen and the near cache (`cache/`).
    pub(crate) hot: crate::cache::HotPath,
}

impl<B> Clone for Store<B> {
    fn clone(&self) -> Self {
        Self {
            backend: Arc::clone(&self.backend),
            keys: self.keys.clone(),
            policy: self.policy,
            retry: self.retry,
            timeout: self.timeout,
            clock: self.clock.clone(),
            hot: self.hot.clone(),
        }
    }
}

impl<B: Backend + fmt::Debug> fmt::Debug for Store<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .field("keys", &self.keys)
            .field("policy", &self.policy)
            .field("operation_timeout", &self.timeout)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// How long an operation may run.
#[derive(Debug, Clone, Copy)]
enum Budget {
    /// The operation timeout for each batch (reset after every applied
    /// plan with writes) and for every round trip.
    PerBatch,
    /// No overall bound (maintenance walks); every round trip bounded.
    PerRoundTrip,
}

impl<B: Backend> Store<B> {
    /// A store on `backend` with the default key space, policy, 1 s
    /// operation timeout and retry policy.
    pub fn with_backend(backend: B) -> Self {
        Self {
            backend: Arc::new(backend),
            keys: KeySpace::default(),
            policy: Policy::default(),
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(1),
            clock: Clock::system(),
            hot: crate::cache::HotPath::default(),
        }
    }

    /// The same store with another key space.
    pub fn with_key_space(mut self, keys: KeySpace) -> Self {
        self.keys = keys;
        self
    }

    /// The same store with another policy (retention, session limit, batch
    /// size).
    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// The same store with another retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Result<Self, Error> {
        retry.validate()?;
        self.retry = retry;
        Ok(self)
    }

    /// The same store with another operation timeout (must be positive).
    pub fn with_operation_timeout(mut self, timeout: Duration) -> Result<Self, Error> {
        if timeout.is_zero() {
            return Err(Error::config("operation_timeout", "must be positive"));
        }
        self.timeout = timeout;
        Ok(self)
    }

    /// The same store reading "now" from `clock`.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The current time by this store's clock.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Runs `op` to completion: the async mirror of
    /// [`authsession_core::op::run_with`], with deadlines, jittered backoff,
    /// one span and (feature `metrics`) measurements.
    pub(crate) async fn drive<O: Operation>(&self, op: O) -> Result<O::Output, Error> {
        self.drive_with(op, Budget::PerBatch, None).await
    }

    /// [`Store::drive`] for maintenance walks: no overall deadline, and
    /// `progress` told the keys the walk's scans have returned so far.
    pub(crate) async fn drive_walk<O: Operation>(
        &self,
        op: O,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<O::Output, Error> {
        self.drive_with(op, Budget::PerRoundTrip, Some(progress))
            .await
    }

    async fn drive_with<O: Operation>(
        &self,
        mut op: O,
        budget: Budget,
        progress: Option<&(dyn Fn(u64) + Sync)>,
    ) -> Result<O::Output, Error> {
        let mut scanned = 0u64;
        let name = op.name();
        let span = telemetry::operation_span(name, self.backend.info());
        let started = std::time::Instant::now();
        let mut stats = telemetry::Stats::default();
        let result = async {
            let mut batch =
                Batch::new(self.retry, self.timeout, budget, Instant::from_std(started));
            let mut input = Input::Start;
            loop {
                input = match op.resume(input)? {
                    Step::Read(reads) => {
                        let rt = batch.round_trip("read")?;
                        stats.round_trips += 1;
                        let replies = self.backend.read(rt, &reads).await?;
                        if let Some(progress) = progress {
                            let keys = replies.iter().map(|reply| match reply {
                                Reply::Keys(keys, _) => keys.len(),
                                _ => 0,
                            });
                            let keys = u64::try_from(keys.sum::<usize>()).unwrap_or(u64::MAX);
                            if keys > 0 {
                                scanned = scanned.saturating_add(keys);
                                progress(scanned);
                            }
                        }
                        Input::Replies(replies)
                    }
                    Step::Apply(plan) => 'apply: {
                        if plan.is_empty() {
                            Input::Applied(Applied::Done)
                        } else {
                            let rt = batch.round_trip("apply")?;
                            stats.round_trips += 1;
                            let applied = match self.backend.apply(rt, &plan).await {
                                // A read's lazy removal the store cannot
                                // write: the operation answers without it.
                                Err(e) if plan.is_best_effort() && e.is_write_refused() => {
                                    let kind = e.kind().as_str();
                                    tracing::debug!(error.type = kind, "authsession.skipped");
                                    break 'apply Input::Skipped;
                                }
                                applied => applied?,
                            };
                            if plan.writes().is_empty() {
                                tracing::debug!(
                                    applied = applied == Applied::Done,
                                    "authsession.confirm"
                                );
                            } else if applied == Applied::Done {
                                stats.batches += 1;
                                batch.progress();
                            }
                            Input::Applied(applied)
                        }
                    }
                    Step::Backoff { key } => {
                        stats.retries += 1;
                        tracing::debug!(attempt = batch.attempts + 1, "authsession.retry");
                        tracing::trace!(key = %key, "authsession.retry.key");
                        batch.backoff(&*self.backend, key).await?;
                        Input::Resumed
                    }
                    Step::Done(output) => break Ok::<_, Error>(output),
                };
            }
        }
        .instrument(span.clone())
        .await;
        telemetry::finish(
            &span,
            name,
            &stats,
            started.elapsed(),
            result.as_ref().err(),
        );
        result
    }
}

/// The deadline and attempt budget of the current batch.
#[derive(Debug)]
struct Batch {
    retry: RetryPolicy,
    timeout: Duration,
    budget: Budget,
    deadline: Option<Instant>,
    attempts: u32,
}

impl Batch {
    /// The first batch of an operation that started at `started` (one
    /// clock read fewer per operation).
    fn new(retry: RetryPolicy, timeout: Duration, budget: Budget, started: Instant) -> Self {
        Self {
            retry,
            timeout,
            budget,
            deadline: match budget {
                Budget::PerBatch => started.checked_add(timeout),
                Budget::PerRoundTrip => None,
            },
            attempts: 0,
        }
    }

    /// A plan with writes applied: a fresh deadline and attempt budget.
    fn progress(&mut self) {
        self.attempts = 0;
        self.deadline = match self.budget {
            Budget::PerBatch => Instant::now().checked_add(self.timeout),
            Budget::PerRoundTrip => None,
        };
    }

    /// What one round trip may take now.
    fn round_trip(&self, op: &'static str) -> Result<Duration, Error> {
        match self.deadline {
            None => Ok(self.timeout),
            Some(at) => {
                let left = at.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    Err(Error::deadline_passed(op, self.timeout))
                } else {
                    Ok(left.min(self.timeout))
                }
            }
        }
    }

    /// After an invalidated attempt at `key`: sleeps a jittered backoff, or
    /// gives up when the attempts or the deadline are used up.
    async fn backoff(&mut self, backend: &impl Backend, key: String) -> Result<(), Error> {
        let failed = self.attempts;
        self.attempts = self.attempts.saturating_add(1);
        let exhausted = || {
            Error::from(TransitionError::ContentionExhausted {
                attempts: failed.saturating_add(1),
                key: key.clone(),
            })
        };
        if self.attempts >= self.retry.max_attempts {
            return Err(exhausted());
        }
        let cap = self.retry.backoff_cap(failed);
        let cap_nanos = u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX);
        let pause = Duration::from_nanos(rand::random_range(0..=cap_nanos));
        let fits = self.deadline.is_none_or(|at| {
            Instant::now()
                .checked_add(pause)
                .is_some_and(|wake| wake < at)
        });
        if !fits {
            return Err(exhausted());
        }
        backend.pause(pause).await;
        Ok(())
    }
}

impl<B: Backend> crate::SessionStore for Store<B> {
    async fn ping(&self) -> Result<(), Error> {
        let span = telemetry::operation_span("ping", self.backend.info());
        let started = std::time::Instant::now();
        let result = self
            .backend
            .ping(self.timeout)
            .instrument(span.clone())
            .await;
        let stats = telemetry::Stats {
            round_trips: 1,
            ..telemetry::Stats::default()
        };
        telemetry::finish(
            &span,
            "ping",
            &stats,
            started.elapsed(),
            result.as_ref().err(),
        );
        result
    }

    async fn get(&self, id: &DeviceSessionId) -> Result<Session, Error> {
        self.hot_get(id, None).await
    }

    async fn get_for_user(&self, user: &UserId, id: &DeviceSessionId) -> Result<Session, Error> {
        self.hot_get(id, Some(user)).await
    }

    async fn list_by_user_id(&self, user: &UserId) -> Result<Vec<Session>, Error> {
        self.drive(List::new(&self.keys, self.policy, self.now(), user.clone()))
            .await
    }

    async fn list_page(&self, user: &UserId, request: &PageRequest) -> Result<Page, Error> {
        let op = ListPage::new(
            &self.keys,
            self.policy,
            self.now(),
            user.clone(),
            request.clone(),
        );
        self.drive(op).await
    }

    async fn count_active_by_user_id(&self, user: &UserId) -> Result<u64, Error> {
        self.drive(Count::new(&self.keys, user)).await
    }

    async fn create(&self, session: &Session) -> Result<Created, Error> {
        let op = Create::new(&self.keys, self.policy, self.now(), session.clone());
        let created = self.drive(op).await?;
        self.hot
            .saw(&self.keys, session.id(), Some(&created.session));
        Ok(created)
    }

    async fn revoke(&self, input: &RevokeSessionInput) -> Result<RevokeSessionOutcome, Error> {
        self.drive(Revoke::new(
            &self.keys,
            self.policy,
            self.now(),
            input.clone(),
        ))
        .await
    }

    async fn revoke_now(&self, input: &RevokeSessionInput) -> Result<RevokeSessionOutcome, Error> {
        self.drive(Revoke::now(
            &self.keys,
            self.policy,
            self.now(),
            input.clone(),
        ))
        .await
    }

    async fn revoke_all_by_user_id(
        &self,
        input: &RevokeUserSessionsInput,
    ) -> Result<RevokeUserSessionsOutcome, Error> {
        let options = RevokeAllOptions::default().collect(true);
        Ok(self.run_revoke_all(input, &options).await?.into_outcome())
    }

    async fn revoke_all_count(
        &self,
        input: &RevokeUserSessionsInput,
    ) -> Result<RevokeAllReport, Error> {
        self.run_revoke_all(input, &RevokeAllOptions::default())
            .await
    }

    async fn revoke_all_with(
        &self,
        input: &RevokeUserSessionsInput,
        options: &RevokeAllOptions,
    ) -> Result<RevokeAllReport, Error> {
        self.run_revoke_all(input, options).await
    }

    fn key_space(&self) -> &KeySpace {
        &self.keys
    }
}
