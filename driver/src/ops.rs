//! Every operation's flow, written once over [`Executor`]: read what the
//! core's transition names, let the core decide, apply its plan. No domain
//! rule lives here; this module only sequences I/O and retries.

use std::future::Future;

use authsession_core::plan::{OnViolation, Plan};
use authsession_core::transition::{self, Step};
use authsession_core::{
    audit, DeviceSessionId, KeySpace, RevokeSessionInput, RevokeSessionOutcome,
    RevokeUserSessionsInput, RevokeUserSessionsOutcome, Session, TransitionError, UserId,
};

use crate::check::CheckReport;
use crate::config::RetryPolicy;
use crate::error::Error;
use crate::exec::{Applied, Deadline, Executor, Retrier};

/// What one attempt of a read-plan-apply mutation ended with.
enum Attempt<T> {
    Done(T),
    /// A concurrent change invalidated the reads (at `key`): read again.
    Retry(String),
}

/// Applies a plan whose violation means "read again".
async fn apply_or_retry<T>(
    exec: &impl Executor,
    deadline: Deadline,
    plan: &Plan,
    outcome: T,
) -> Result<Attempt<T>, Error> {
    if plan.is_empty() {
        return Ok(Attempt::Done(outcome));
    }
    match exec.apply(deadline, plan).await? {
        Applied::Done => Ok(Attempt::Done(outcome)),
        Applied::Violated { key } => match plan.on_violation() {
            OnViolation::Conflict => Err(Error::conflict(key)),
            _ => Ok(Attempt::Retry(key)),
        },
    }
}

/// The core found reads that contradict each other: apply its
/// precondition-only plan. If it holds, the contradiction is real
/// (corruption on one consistent view); if not, something changed between
/// the reads and the caller retries.
async fn confirm<T>(
    exec: &impl Executor,
    deadline: Deadline,
    plan: &Plan,
    error: TransitionError,
) -> Result<Attempt<T>, Error> {
    match exec.apply(deadline, plan).await? {
        Applied::Done => Err(error.into()),
        Applied::Violated { key } => Ok(Attempt::Retry(key)),
    }
}

/// Runs `attempt` until it is done, sleeping between invalidated attempts.
async fn with_retries<T, Fut>(
    exec: &impl Executor,
    policy: RetryPolicy,
    deadline: Deadline,
    mut attempt: impl FnMut() -> Fut,
) -> Result<T, Error>
where
    Fut: Future<Output = Result<Attempt<T>, Error>>,
{
    let mut retrier = Retrier::new(policy, deadline);
    loop {
        match attempt().await? {
            Attempt::Done(value) => return Ok(value),
            Attempt::Retry(key) => retrier.backoff(exec, key).await?,
        }
    }
}

pub(crate) async fn ping(exec: &impl Executor, deadline: Deadline) -> Result<(), Error> {
    exec.ping(deadline).await
}

pub(crate) async fn get(
    exec: &impl Executor,
    keys: &KeySpace,
    deadline: Deadline,
    id: &DeviceSessionId,
) -> Result<Session, Error> {
    let stored = exec.get(deadline, &keys.session_key(id)).await?;
    Ok(transition::get(keys, id, stored.as_deref())?)
}

pub(crate) async fn count_active(
    exec: &impl Executor,
    keys: &KeySpace,
    deadline: Deadline,
    user: &UserId,
) -> Result<u64, Error> {
    exec.index_len(deadline, &keys.user_active_sessions_key(user))
        .await
}

pub(crate) async fn create(
    exec: &impl Executor,
    keys: &KeySpace,
    deadline: Deadline,
    session: &Session,
) -> Result<(), Error> {
    let planned = transition::create(keys, session);
    match apply_or_retry(exec, deadline, &planned.plan, ()).await? {
        Attempt::Done(()) => Ok(()),
        // create's plan is OnViolation::Conflict; a retry request from it
        // would be a core change this flow does not expect.
        Attempt::Retry(key) => Err(Error::conflict(key)),
    }
}

/// Reads the records of `members` (skipping the round trip when empty).
async fn read_records(
    exec: &impl Executor,
    keys: &KeySpace,
    deadline: Deadline,
    index_key: &str,
    members: &[String],
) -> Result<Vec<Option<Vec<u8>>>, Error> {
    if members.is_empty() {
        return Ok(Vec::new());
    }
    let record_keys = transition::record_keys(keys, index_key, members)?;
    exec.mget(deadline, &record_keys).await
}

pub(crate) async fn list(
    exec: &impl Executor,
    keys: &KeySpace,
    policy: RetryPolicy,
    deadline: Deadline,
    user: &UserId,
) -> Result<Vec<Session>, Error> {
    let index_key = keys.user_sessions_key(user);
    let attempt = || async {
        let members = exec.index_members(deadline, &index_key, None).await?;
        let records = read_records(exec, keys, deadline, &index_key, &members).await?;
        match transition::list(keys, user, &members, &records)? {
            Step::Done(sessions) => Ok(Attempt::Done(sessions)),
            Step::Confirm { plan, error } => confirm(exec, deadline, &plan, error).await,
        }
    };
    with_retries(exec, policy, deadline, attempt).await
}

pub(crate) async fn revoke(
    exec: &impl Executor,
    keys: &KeySpace,
    policy: RetryPolicy,
    deadline: Deadline,
    input: &RevokeSessionInput,
) -> Result<RevokeSessionOutcome, Error> {
    let record_key = keys.session_key(&input.device_session_id);
    let attempt = || async {
        let stored = exec.get(deadline, &record_key).await?;
        let planned = transition::revoke(keys, input, stored.as_deref())?;
        apply_or_retry(exec, deadline, &planned.plan, planned.outcome).await
    };
    with_retries(exec, policy, deadline, attempt).await
}

pub(crate) async fn revoke_all(
    exec: &impl Executor,
    keys: &KeySpace,
    policy: RetryPolicy,
    deadline: Deadline,
    input: &RevokeUserSessionsInput,
) -> Result<RevokeUserSessionsOutcome, Error> {
    let scan = transition::revoke_all_scan(keys, input);
    let attempt = || async {
        let members = exec
            .index_members(deadline, &scan.key, Some(scan.max_score))
            .await?;
        let records = read_records(exec, keys, deadline, &scan.key, &members).await?;
        match transition::revoke_all(keys, input, &members, &records)? {
            Step::Done(planned) => {
                apply_or_retry(exec, deadline, &planned.plan, planned.outcome).await
            }
            Step::Confirm { plan, error } => confirm(exec, deadline, &plan, error).await,
        }
    };
    with_retries(exec, policy, deadline, attempt).await
}

/// Audits the key space; with `repair`, applies the audit's repair plan,
/// auditing again whenever the key space changed during the scan.
pub(crate) async fn check(
    exec: &impl Executor,
    keys: &KeySpace,
    policy: RetryPolicy,
    deadline: Deadline,
    repair: bool,
) -> Result<CheckReport, Error> {
    let [session_prefix, user_sessions_prefix, user_active_prefix] = keys.prefixes();
    let attempt = || async {
        let records = exec.scan_values(deadline, session_prefix).await?;
        let mut indexes = exec.scan_indexes(deadline, user_sessions_prefix).await?;
        indexes.extend(exec.scan_indexes(deadline, user_active_prefix).await?);
        let report = audit::audit(keys, records, indexes);
        if !repair || report.repair.is_empty() {
            return Ok::<_, Error>(Attempt::Done(CheckReport::from_audit(report, false)));
        }
        match exec.apply(deadline, &report.repair).await? {
            Applied::Done => Ok(Attempt::Done(CheckReport::from_audit(report, true))),
            Applied::Violated { key } => Ok(Attempt::Retry(key)),
        }
    };
    with_retries(exec, policy, deadline, attempt).await
}

pub(crate) async fn purge(
    exec: &impl Executor,
    keys: &KeySpace,
    deadline: Deadline,
) -> Result<u64, Error> {
    let mut deleted = 0;
    for prefix in keys.prefixes() {
        deleted += exec.delete_prefix(deadline, prefix).await?;
    }
    Ok(deleted)
}
