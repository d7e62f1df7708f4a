//! `revoke all` that survives faults: the core's operation, driven by the
//! store's one loop, restarted after a retryable failure (a dropped
//! connection, a failover, one round trip's timeout) for as long as it
//! keeps making progress. Every batch is idempotent, so a restart reads
//! again from where the walk stands and never rewrites a revoked session.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use authsession_core::op::{Input, Operation, RevokeAll, RevokeAllReport, Step};
use authsession_core::{RevokeUserSessionsInput, TransitionError};
use tokio::time::Instant;

use crate::backend::Backend;
use crate::error::Error;
use crate::store::Store;

/// Called with the number of sessions revoked so far, after every batch.
type Progress = Arc<dyn Fn(u64) + Send + Sync>;

/// How a `revoke all` runs: whether it keeps every revoked session, how
/// many failed attempts in a row it takes before giving up, an optional
/// deadline for the whole call, and a progress callback.
#[derive(Clone)]
pub struct RevokeAllOptions {
    collect: bool,
    max_failures: u32,
    deadline: Option<Duration>,
    progress: Option<Progress>,
}

impl Default for RevokeAllOptions {
    /// Count only, give up after 5 failed attempts in a row without
    /// progress, no deadline, no callback.
    fn default() -> Self {
        Self {
            collect: false,
            max_failures: 5,
            deadline: None,
            progress: None,
        }
    }
}

impl fmt::Debug for RevokeAllOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevokeAllOptions")
            .field("collect", &self.collect)
            .field("max_failures", &self.max_failures)
            .field("deadline", &self.deadline)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

impl RevokeAllOptions {
    /// The defaults ([`RevokeAllOptions::default`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Keep every revoked session in the report (newest first), or only
    /// count them in constant memory.
    pub fn collect(mut self, collect: bool) -> Self {
        self.collect = collect;
        self
    }

    /// Give up after this many retryable failures in a row with no batch
    /// applied in between (at least 1; 1 = never retry).
    pub fn max_failures(mut self, failures: u32) -> Self {
        self.max_failures = failures.max(1);
        self
    }

    /// Give up once the whole call has run this long (checked between
    /// round trips; a batch is never cut in half).
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Call `progress` with the number of sessions revoked so far after
    /// every applied batch (on the task running the call: keep it short).
    pub fn on_progress(mut self, progress: impl Fn(u64) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(progress));
        self
    }
}

/// The operation, reporting progress after each step that revoked more.
struct Reporting<'a> {
    op: &'a mut RevokeAll,
    progress: Option<&'a Progress>,
    told: &'a mut u64,
}

impl Operation for Reporting<'_> {
    type Output = RevokeAllReport;

    fn name(&self) -> &'static str {
        self.op.name()
    }

    fn resume(&mut self, input: Input) -> Result<Step<RevokeAllReport>, TransitionError> {
        let step = self.op.resume(input);
        let count = self.op.report().count;
        if count > *self.told {
            *self.told = count;
            if let Some(progress) = self.progress {
                progress(count);
            }
        }
        step
    }
}

impl<B: Backend> Store<B> {
    /// Runs `revoke all` with `options`: restarts it after a retryable
    /// failure while batches keep being applied, gives up (with how many
    /// were revoked) after `max_failures` failures in a row or at the
    /// deadline; `partially_revoked` when something could not be revoked.
    pub(crate) async fn run_revoke_all(
        &self,
        input: &RevokeUserSessionsInput,
        options: &RevokeAllOptions,
    ) -> Result<RevokeAllReport, Error> {
        let mut op = RevokeAll::new(&self.keys, self.policy, input.clone(), options.collect);
        let deadline = options.deadline.and_then(|d| Instant::now().checked_add(d));
        let mut told = 0u64;
        let mut failures = 0u32;
        let mut batches_seen = 0u64;
        loop {
            // Each round trip is bounded, not the whole walk: after the
            // active batches, the all-sessions walk only reads, so a
            // per-batch deadline would cut off a user with many sessions.
            let reporting = Reporting {
                op: &mut op,
                progress: options.progress.as_ref(),
                told: &mut told,
            };
            let run = self.drive_walk(reporting, &crate::admin::no_progress);
            let result = match deadline {
                None => run.await,
                Some(at) => match tokio::time::timeout_at(at, run).await {
                    Ok(result) => result,
                    Err(_) => {
                        let total = options.deadline.unwrap_or_default();
                        let error = Error::timeout("revoke_all", total);
                        return Err(Error::revoke_all_gave_up(
                            op.report().clone(),
                            failures,
                            error,
                        ));
                    }
                },
            };
            let error = match result {
                Ok(report) => return Ok(report),
                Err(error) if error.is_retryable() => error,
                Err(error) => return Err(error),
            };
            // Progress since the last failure starts the count afresh.
            let batches = op.report().batches;
            if batches > batches_seen {
                batches_seen = batches;
                failures = 0;
            }
            failures = failures.saturating_add(1);
            let out_of_time = deadline.is_some_and(|at| Instant::now() >= at);
            if failures >= options.max_failures || out_of_time {
                return Err(Error::revoke_all_gave_up(
                    op.report().clone(),
                    failures,
                    error,
                ));
            }
            tracing::debug!(failures, kind = %error.kind(), "authsession.revoke_all.restart");
            self.backend.pause(restart_pause(failures)).await;
            op.restart();
        }
    }
}

/// The pause before restarting after `failures` failures in a row: an
/// outage (a reconnect, a failover, a restarting server) takes longer than
/// contention, so 50 ms doubling up to 2 s, the upper half jittered —
/// five failures in a row span at least ~0.4 s.
fn restart_pause(failures: u32) -> Duration {
    let cap = Duration::from_millis(50)
        .saturating_mul(1u32 << failures.saturating_sub(1).min(8))
        .min(Duration::from_secs(2));
    let half = u64::try_from(cap.as_nanos() / 2).unwrap_or(u64::MAX);
    Duration::from_nanos(half.saturating_add(rand::random_range(0..=half)))
}
