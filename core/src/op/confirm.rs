//! Telling corruption from a concurrent change: each member's record is
//! checked against the index that named it, and a disagreement is
//! reported only once a precondition-only plan confirms it still holds
//! (otherwise the operation reads again).

use crate::codec;
use crate::ids::{DeviceSessionId, UserId};
use crate::op::replies::{retry_unless_done, Explain};
use crate::op::{Step, TransitionError};
use crate::plan::{Applied, OnViolation, Plan, Precondition};
use crate::session::Session;

/// One member's record, checked against the index that named it.
pub(crate) enum Checked {
    /// The record decodes, is the user's, and (when required) is active.
    Session(Session, Vec<u8>),
    /// The index and the record disagree: apply `plan` (preconditions
    /// only); if it holds, report `error`, else read again.
    Confirm(Plan, TransitionError),
}

/// The plan confirming that the index at `index_key` still names `id` and
/// its record at `record_key` is still `stored`.
fn confirm_plan(
    index_key: &str,
    id: &DeviceSessionId,
    record_key: &str,
    stored: Option<&[u8]>,
) -> Plan {
    let record = match stored {
        None => Precondition::Absent {
            key: record_key.to_owned(),
        },
        Some(bytes) => Precondition::ValueEquals {
            key: record_key.to_owned(),
            value: bytes.to_vec(),
        },
    };
    Plan::new(
        vec![
            Precondition::IndexContains {
                key: index_key.to_owned(),
                members: vec![id.as_str().as_bytes().to_vec()],
            },
            record,
        ],
        Vec::new(),
        OnViolation::Retry,
    )
}

/// What the index at `index_key` says about the member `id` (its record
/// read as `stored`), for `user`. `require_active`: the index is the
/// active one.
pub(crate) fn check_member(
    user: &UserId,
    index_key: &str,
    id: &DeviceSessionId,
    record_key: &str,
    stored: Option<Vec<u8>>,
    require_active: bool,
) -> Result<Checked, TransitionError> {
    let confirm = |stored: Option<&[u8]>, error| {
        let plan = confirm_plan(index_key, id, record_key, stored);
        Ok(Checked::Confirm(plan, error))
    };
    let Some(bytes) = stored else {
        return confirm(
            None,
            TransitionError::DanglingIndexMember {
                index_key: index_key.to_owned(),
                member: id.as_str().to_owned(),
                record_key: record_key.to_owned(),
            },
        );
    };
    let session = codec::decode(id, &bytes).map_err(|source| TransitionError::CorruptRecord {
        key: record_key.to_owned(),
        source,
    })?;
    if session.user_id() != user {
        let owner = session.user_id().as_str().to_owned();
        return confirm(
            Some(&bytes),
            TransitionError::ForeignIndexMember {
                index_key: index_key.to_owned(),
                member: id.as_str().to_owned(),
                owner,
            },
        );
    }
    if require_active && !session.is_active() {
        return confirm(
            Some(&bytes),
            TransitionError::InactiveIndexMember {
                index_key: index_key.to_owned(),
                member: id.as_str().to_owned(),
            },
        );
    }
    Ok(Checked::Session(session, bytes))
}

/// Sessions read with their stored bytes.
pub(crate) type SessionsRead = Vec<(Session, Vec<u8>)>;

/// Checks every member read from `index_key`: the sessions with their
/// bytes, or the first disagreement to confirm.
pub(crate) fn check_members(
    user: &UserId,
    index_key: &str,
    ids: &[DeviceSessionId],
    record_keys: &[String],
    records: Vec<Option<Vec<u8>>>,
    require_active: bool,
) -> Result<Result<SessionsRead, (Plan, TransitionError)>, TransitionError> {
    let mut sessions = Vec::with_capacity(ids.len());
    let mut records = records.into_iter();
    for (id, record_key) in ids.iter().zip(record_keys) {
        let stored = records.next().flatten();
        match check_member(user, index_key, id, record_key, stored, require_active)? {
            Checked::Session(session, bytes) => sessions.push((session, bytes)),
            Checked::Confirm(plan, error) => return Ok(Err((plan, error))),
        }
    }
    Ok(Ok(sessions))
}

/// The answer to a confirmation plan: the error when it held, a retry when
/// something changed.
pub(crate) fn confirmed<T>(
    plan: &impl Explain,
    applied: Applied,
    error: TransitionError,
) -> Result<Step<T>, TransitionError> {
    match retry_unless_done(plan, applied)? {
        None => Err(error),
        Some(retry) => Ok(retry),
    }
}
