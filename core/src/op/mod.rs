//! The operations as sans-IO state machines, and the reference loop that
//! runs them.
//!
//! Every operation — `get`, `create`, `revoke`, `list`, a page, `revoke
//! all`, and the maintenance walks — is one value implementing
//! [`Operation`]: the driver feeds it [`Input`]s and does what each
//! returned [`Step`] says (read, apply a plan, back off, or finish). The
//! operation owns the whole sequence — which reads, which plan, what a
//! violated precondition means, when two reads contradict each other and
//! a precondition-only plan must confirm it before corruption is reported
//! — so every driver runs the same conversation:
//!
//! ```text
//! input = Start
//! loop:
//!     match op.resume(input)?:
//!         Read(reads)   => input = Replies(one round trip answering reads)
//!         Apply(plan)   => input = Applied(apply plan atomically)
//!         Backoff{key}  => pause (jittered, bounded attempts); input = Resumed
//!         Done(output)  => return output
//! ```
//!
//! The loop's bookkeeping — attempts per batch, progress, exhaustion,
//! empty plans — is [`Runner`]'s, stated once: [`run`] is the loop,
//! synchronous, over [`MemoryKv`] (tests and fuzzers use it, and
//! [`run_with`] to interleave other changes between steps); the async
//! driver wraps the same runner for every backend, adding only I/O,
//! deadlines, pauses and telemetry. A plan with writes that applied is
//! *progress*: the attempts start afresh after it (and the driver's
//! per-batch deadline), so a long batched operation is bounded per batch,
//! not in total.
//!
//! Time is a parameter: operations that depend on "now" (retention, the
//! limit's revocations) take it in their constructor.

mod confirm;
mod count;
mod create;
mod decode;
mod error;
mod expiry;
#[cfg(test)]
mod fail_safe;
#[cfg(test)]
mod fixtures;
mod get;
mod import;
mod list;
mod maintenance;
mod page;
mod replies;
mod revoke;
mod revoke_all;
mod runner;
#[cfg(test)]
mod tests;

use std::time::Duration;

pub use count::Count;
pub use create::{Create, Created};
pub use error::{Kind, TransitionError};
pub use get::Get;
pub use import::{Import, ImportConflict, ImportReport};
pub use list::List;
pub use maintenance::{Check, OwnerRecheck, OwnerSighting, RecheckOwners, Sweep, SweepReport};
pub use page::{ListPage, Page, PageCursor, PageLimit, PageRequest, StatusFilter};
pub use revoke::Revoke;
pub use revoke_all::{RevokeAll, RevokeAllReport, Unrevocable};
pub use runner::{Action, Attempts, Backoff, Runner, Tally};

// The reply readers every operation (and maintenance pass) uses.
pub(crate) use replies::{applied, best_effort_applied, out_of_sequence, replies};

use crate::model::MemoryKv;
use crate::plan::{Applied, Plan, Read, Reply};
use crate::timestamp::Timestamp;

/// Store-wide rules that shape plans: retention, the active-session limit,
/// the batch size and the owner keys' grace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Revoked sessions older than this (since their revocation) are gone:
    /// not found, not listed, and removed lazily. `None`: keep forever.
    pub revoked_retention: Option<Duration>,
    /// At most this many active sessions per user, enforced by `create`.
    pub session_limit: Option<SessionLimit>,
    /// Sessions per batch of the batched operations (revoke all, pages'
    /// reads, maintenance walks).
    pub batch_size: BatchSize,
    /// Tagged layout: how long an owner key without its record may be a
    /// create in flight. `check --repair` and `sweep` remove one only when
    /// it is still so at a second look this long after the first (see
    /// [`RecheckOwners`]); it must outlast any create. Default 1 minute.
    pub owner_grace: Duration,
}

impl Policy {
    /// The default grace of an owner key without its record.
    pub const DEFAULT_OWNER_GRACE: Duration = Duration::from_secs(60);
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            revoked_retention: None,
            session_limit: None,
            batch_size: BatchSize::default(),
            owner_grace: Self::DEFAULT_OWNER_GRACE,
        }
    }
}

impl Policy {
    /// Whether `session` is past its retention at `now` (revoked, and
    /// `revocation.at + retention < now`).
    pub fn is_expired(&self, session: &crate::Session, now: Timestamp) -> bool {
        match (self.revoked_retention, session.revocation()) {
            (Some(retention), Some(revocation)) => {
                let retention = i128::try_from(retention.as_nanos()).unwrap_or(i128::MAX);
                revocation.at().unix_nanos().saturating_add(retention) < now.unix_nanos()
            }
            _ => false,
        }
    }

    /// Whether revoked sessions are entered in the revoked index (by
    /// revocation time): only under a retention, the one thing that reads
    /// it (to find expired sessions cheaply). Without one it would be a
    /// second entry per revoked session kept forever, read by nobody.
    /// Sessions revoked while no retention was set (or by the Go adapter)
    /// are not in it; `sweep` finds those through the all-sessions index.
    pub fn indexes_revoked(&self) -> bool {
        self.revoked_retention.is_some()
    }

    /// The revocation time at or before which a revoked session has expired
    /// at `now`, as a revoked-index score bound; `None` without retention.
    pub(crate) fn expiry_cutoff(&self, now: Timestamp) -> Option<Timestamp> {
        let retention = self.revoked_retention?;
        let retention = i128::try_from(retention.as_nanos()).unwrap_or(i128::MAX);
        // Strictly before now - retention; one nanosecond earlier is the
        // inclusive bound. Out of range means nothing can have expired.
        Timestamp::from_unix_nanos(now.unix_nanos().saturating_sub(retention).saturating_sub(1))
            .ok()
    }
}

/// The per-user active-session limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimit {
    /// At most this many active sessions (≥ 1).
    max_active: u32,
    /// What `create` does when the limit is reached.
    pub on_limit: OnLimit,
}

impl SessionLimit {
    /// A limit of `max_active` active sessions; `None` for 0.
    pub fn new(max_active: u32, on_limit: OnLimit) -> Option<Self> {
        (max_active > 0).then_some(Self {
            max_active,
            on_limit,
        })
    }

    /// The limit.
    pub fn max_active(&self) -> u32 {
        self.max_active
    }
}

/// What `create` does at the active-session limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OnLimit {
    /// Refuse with `session_limit`; nothing written.
    Reject,
    /// Revoke the oldest active session(s) in the same atomic step
    /// (reason `session_limit`, actor type `system`).
    RevokeOldest,
}

impl std::str::FromStr for OnLimit {
    type Err = &'static str;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "reject" => Ok(OnLimit::Reject),
            "revoke-oldest" | "revoke_oldest" => Ok(OnLimit::RevokeOldest),
            _ => Err("expected `reject` or `revoke-oldest`"),
        }
    }
}

/// Sessions per batch: 1..=1000 (default 100).
///
/// The default keeps each batch's script short: revoking 100 sessions
/// takes about 1–2 ms of server time on a busy two-core machine, 500 took
/// 12–30 ms (measured by `tests/tests/big_user.rs`), past the ~10 ms a
/// single command of ours may hold the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSize(usize);

impl BatchSize {
    /// The largest batch.
    pub const MAX: usize = 1000;

    /// A batch size in 1..=1000.
    pub fn new(n: usize) -> Option<Self> {
        (1..=Self::MAX).contains(&n).then_some(Self(n))
    }

    /// The size.
    pub fn get(self) -> usize {
        self.0
    }
}

impl Default for BatchSize {
    fn default() -> Self {
        Self(100)
    }
}

/// What the driver does next.
#[derive(Debug, Clone, PartialEq)]
#[must_use = "a step must be acted on"]
pub enum Step<T> {
    /// Answer these reads (one round trip; they may be pipelined) with
    /// [`Input::Replies`], in order.
    Read(Vec<Read>),
    /// Apply this plan atomically and answer with [`Input::Applied`].
    Apply(Plan),
    /// A concurrent change invalidated the reads (at `key`): pause a
    /// jittered backoff (or give up when the attempts are used up), then
    /// answer [`Input::Resumed`].
    Backoff {
        /// The key whose change was detected.
        key: String,
    },
    /// The operation's result.
    Done(T),
}

/// What the driver hands the operation.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Input {
    /// The first call.
    Start,
    /// The replies to the last [`Step::Read`], in order.
    Replies(Vec<Reply>),
    /// What applying the last [`Step::Apply`] did.
    Applied(Applied),
    /// The backoff after [`Step::Backoff`] is over.
    Resumed,
    /// The last [`Step::Apply`] held a best-effort plan
    /// ([`Plan::best_effort`]) that the store could not write (a read-only
    /// replica, an ACL user without the write, out of memory): nothing was
    /// written, and the operation answers as if it had been applied.
    Skipped,
}

/// A sans-IO operation: a state machine of reads and plans.
pub trait Operation {
    /// What it returns.
    type Output;

    /// Its name (`get`, `create`, …), for spans and metrics.
    fn name(&self) -> &'static str;

    /// Advances with `input` (the answer to the previous step).
    fn resume(&mut self, input: Input) -> Result<Step<Self::Output>, TransitionError>;
}

/// An operation borrowed is an operation: a driver that must look into it
/// between runs (e.g. [`RevokeAll::restart`] after a lost answer) drives
/// it through `&mut`.
impl<O: Operation + ?Sized> Operation for &mut O {
    type Output = O::Output;

    fn name(&self) -> &'static str {
        (**self).name()
    }

    fn resume(&mut self, input: Input) -> Result<Step<Self::Output>, TransitionError> {
        (**self).resume(input)
    }
}

/// The reference loop: runs `op` to completion over `kv`, at most
/// `max_attempts` invalidated attempts per batch.
pub fn run<O: Operation>(
    kv: &mut MemoryKv,
    op: O,
    max_attempts: u32,
) -> Result<O::Output, TransitionError> {
    run_with(kv, op, max_attempts, |_, _| {})
}

/// A point between two steps of [`run_with`], where a test may change the
/// state as a concurrent client would.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Between {
    /// After a read was answered, before the operation sees the replies.
    Read,
    /// After a plan was applied.
    Apply,
}

/// [`run`], calling `between` after every read and every apply so a test
/// can interleave concurrent changes.
pub fn run_with<O: Operation>(
    kv: &mut MemoryKv,
    op: O,
    max_attempts: u32,
    mut between: impl FnMut(&mut MemoryKv, Between),
) -> Result<O::Output, TransitionError> {
    let mut runner = Runner::new(op, max_attempts);
    loop {
        match runner.advance()? {
            Action::Read(reads) => {
                let replies = kv.read_all(&reads);
                between(kv, Between::Read);
                runner.replies(replies);
            }
            Action::Apply(plan) => {
                let applied = kv.apply(&plan);
                between(kv, Between::Apply);
                runner.applied(applied);
            }
            Action::Backoff(_) => runner.resumed(),
            Action::Done(output) => return Ok(output),
        }
    }
}
