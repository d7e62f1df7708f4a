//! The one store: every operation is a core state machine run by one loop
//! ([`Store::drive`], the async mirror of `authsession_core::op::run`)
//! over any [`Backend`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use authsession_core::op::{
    Action, Backoff, Count, Create, Created, List, ListPage, Operation, Page, PageRequest, Policy,
    Revoke, RevokeAllReport, Runner,
};
use authsession_core::plan::{Applied, Plan, Reply};
use authsession_core::{
    DeviceSessionId, KeySpace, RevokeSessionInput, RevokeSessionOutcome, RevokeUserSessionsInput,
    RevokeUserSessionsOutcome, Session, Timestamp, UserId,
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

    /// Runs `op` to completion with the core's [`Runner`] (the loop's
    /// bookkeeping), adding the I/O, deadlines, jittered backoff, one span
    /// and (feature `metrics`) measurements.
    /// Applies `plan`. The near cache forgets every key the plan writes,
    /// whatever the outcome (a timeout's is unknown), before the caller
    /// hears of it: read-your-writes, while the server's own invalidation
    /// may still be on its way.
    async fn apply(&self, budget: Duration, plan: &Plan) -> Result<Applied, Error> {
        let applied = self.backend.apply(budget, plan).await;
        if let Some(near) = self.backend.near_cache() {
            near.wrote(plan.writes().iter().map(|w| w.key()));
        }
        applied
    }

    /// Deletes `keys`, forgotten by the near cache as [`Store::apply`]'s.
    pub(crate) async fn delete(&self, budget: Duration, keys: &[String]) -> Result<u64, Error> {
        let deleted = self.backend.delete(budget, keys).await;
        if let Some(near) = self.backend.near_cache() {
            near.wrote(keys.iter().map(String::as_str));
        }
        deleted
    }

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
        op: O,
        budget: Budget,
        progress: Option<&(dyn Fn(u64) + Sync)>,
    ) -> Result<O::Output, Error> {
        let name = op.name();
        let span = telemetry::operation_span(name, self.backend.info());
        let started = std::time::Instant::now();
        let mut runner = Runner::new(op, self.retry.max_attempts);
        let mut io = Io {
            batch: Batch::new(self.timeout, budget, Instant::from_std(started)),
            round_trips: 0,
            scanned: 0,
            progress,
        };
        let result = self
            .act(&mut runner, &mut io)
            .instrument(span.clone())
            .await;
        let tally = runner.tally();
        let stats = telemetry::Stats {
            round_trips: io.round_trips,
            retries: tally.retries,
            batches: tally.batches,
        };
        telemetry::finish(
            &span,
            name,
            &stats,
            started.elapsed(),
            result.as_ref().err(),
        );
        result
    }

    /// Does what the runner asks until the operation is done: one round
    /// trip per read or plan, a pause per backoff.
    async fn act<O: Operation>(
        &self,
        runner: &mut Runner<O>,
        io: &mut Io<'_>,
    ) -> Result<O::Output, Error> {
        loop {
            match runner.advance()? {
                Action::Read(reads) => {
                    let rt = io.round_trip("read")?;
                    let replies = self.backend.read(rt, &reads).await?;
                    io.scanned(&replies);
                    runner.replies(replies);
                }
                Action::Apply(plan) => {
                    let rt = io.round_trip("apply")?;
                    match self.apply(rt, &plan).await {
                        // A read's lazy removal the store cannot write: the
                        // operation answers without it.
                        Err(e) if plan.is_best_effort() && e.is_write_refused() => {
                            let kind = e.kind().as_str();
                            tracing::debug!(error.type = kind, "authsession.skipped");
                            runner.skipped();
                        }
                        applied => {
                            let applied = applied?;
                            if plan.writes().is_empty() {
                                let held = applied == Applied::Done;
                                tracing::debug!(applied = held, "authsession.confirm");
                            }
                            if runner.applied(applied) {
                                io.batch.progress();
                            }
                        }
                    }
                }
                Action::Backoff(backoff) => {
                    tracing::debug!(attempt = backoff.attempt(), "authsession.retry");
                    tracing::trace!(key = %backoff.key(), "authsession.retry.key");
                    io.batch
                        .backoff(&*self.backend, &self.retry, backoff)
                        .await?;
                    runner.resumed();
                }
                Action::Done(output) => return Ok(output),
            }
        }
    }
}

/// The I/O side of one run: its deadlines, round trips and scan progress.
struct Io<'a> {
    batch: Batch,
    round_trips: u64,
    /// Keys the walk's scans have returned so far.
    scanned: u64,
    progress: Option<&'a (dyn Fn(u64) + Sync)>,
}

impl Io<'_> {
    /// What the next round trip may take, counted.
    fn round_trip(&mut self, op: &'static str) -> Result<Duration, Error> {
        let rt = self.batch.round_trip(op)?;
        self.round_trips += 1;
        Ok(rt)
    }

    /// Tells the progress callback the keys scans have returned so far.
    fn scanned(&mut self, replies: &[Reply]) {
        let Some(progress) = self.progress else {
            return;
        };
        let keys = replies.iter().map(|reply| match reply {
            Reply::Keys(keys, _) => keys.len(),
            _ => 0,
        });
        let keys = u64::try_from(keys.sum::<usize>()).unwrap_or(u64::MAX);
        if keys > 0 {
            self.scanned = self.scanned.saturating_add(keys);
            progress(self.scanned);
        }
    }
}

/// The deadline of the current batch.
#[derive(Debug)]
struct Batch {
    timeout: Duration,
    budget: Budget,
    deadline: Option<Instant>,
}

impl Batch {
    /// The first batch of an operation that started at `started` (one
    /// clock read fewer per operation).
    fn new(timeout: Duration, budget: Budget, started: Instant) -> Self {
        Self {
            timeout,
            budget,
            deadline: match budget {
                Budget::PerBatch => started.checked_add(timeout),
                Budget::PerRoundTrip => None,
            },
        }
    }

    /// A plan with writes applied: a fresh deadline.
    fn progress(&mut self) {
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

    /// After an invalidated attempt with attempts left: sleeps a jittered
    /// backoff, or gives up when the deadline leaves no room for it.
    async fn backoff(
        &self,
        backend: &impl Backend,
        retry: &RetryPolicy,
        backoff: Backoff,
    ) -> Result<(), Error> {
        let cap = retry.backoff_cap(backoff.attempt().saturating_sub(1));
        let cap_nanos = u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX);
        let pause = Duration::from_nanos(rand::random_range(0..=cap_nanos));
        let fits = self.deadline.is_none_or(|at| {
            Instant::now()
                .checked_add(pause)
                .is_some_and(|wake| wake < at)
        });
        if !fits {
            return Err(Error::from(backoff.give_up()));
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
