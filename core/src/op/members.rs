//! Shared steps: reading index members' records and telling corruption
//! from a concurrent change (removing expired sessions is
//! [`crate::op::expiry`]'s).

use crate::codec;
use crate::ids::{DeviceSessionId, UserId};
use crate::keys::{IndexScore, KeySpace};
use crate::op::{Policy, Step, TransitionError};
use crate::plan::{Applied, KeyType, Member, OnViolation, Outline, Plan, Precondition, Write};
use crate::session::Session;
use crate::timestamp::Timestamp;

/// The id an index member names, or why it is not one.
pub(crate) fn member_id(
    index_key: &str,
    member: &[u8],
) -> Result<DeviceSessionId, TransitionError> {
    std::str::from_utf8(member)
        .ok()
        .and_then(|text| DeviceSessionId::parse(text).ok())
        .ok_or_else(|| TransitionError::InvalidIndexMember {
            index_key: index_key.to_owned(),
            member: String::from_utf8_lossy(member).into_owned(),
        })
}

/// The ids of `members` and the record keys to read for them.
pub(crate) fn ids_and_keys(
    keys: &KeySpace,
    user: &UserId,
    index_key: &str,
    members: &[Member],
) -> Result<(Vec<DeviceSessionId>, Vec<String>), TransitionError> {
    let ids = members
        .iter()
        .map(|m| member_id(index_key, m))
        .collect::<Result<Vec<_>, _>>()?;
    let record_keys = ids.iter().map(|id| keys.record_key(user, id)).collect();
    Ok((ids, record_keys))
}

/// One member's record, checked against the index that named it.
pub(crate) enum Checked {
    /// The record decodes, is the user's, and (when required) is active.
    Session(Session, Vec<u8>),
    /// The index and the record disagree: apply `plan` (preconditions
    /// only); if it holds, report `error`, else read again.
    Confirm(Plan, TransitionError),
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
        let record = match stored {
            None => Precondition::Absent {
                key: record_key.to_owned(),
            },
            Some(bytes) => Precondition::ValueEquals {
                key: record_key.to_owned(),
                value: bytes.to_vec(),
            },
        };
        let plan = Plan::new(
            vec![
                Precondition::IndexContains {
                    key: index_key.to_owned(),
                    members: vec![id.as_str().as_bytes().to_vec()],
                },
                record,
            ],
            Vec::new(),
            OnViolation::Retry,
        );
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
    plan: &Plan,
    applied: Applied,
    error: TransitionError,
) -> Result<Step<T>, TransitionError> {
    match applied {
        Applied::Done => Err(error),
        Applied::Violated { index } => Ok(Step::Backoff {
            key: violated_key(plan, index),
        }),
        Applied::WrongType { key } => Err(wrong_type(plan, key)),
    }
}

/// What reading a plan's answer needs of it: a [`Plan`] itself, or the
/// [`Outline`] an operation kept instead.
pub(crate) trait Explain {
    /// The key of the precondition at `index`.
    fn precondition_key(&self, index: usize) -> Option<&str>;
    /// The type the plan used `key` as.
    fn key_type(&self, key: &str) -> KeyType;
}

impl Explain for Plan {
    fn precondition_key(&self, index: usize) -> Option<&str> {
        self.precondition(index).map(Precondition::key)
    }

    fn key_type(&self, key: &str) -> KeyType {
        Plan::key_type(self, key)
    }
}

impl Explain for Outline {
    fn precondition_key(&self, index: usize) -> Option<&str> {
        Outline::precondition_key(self, index)
    }

    fn key_type(&self, key: &str) -> KeyType {
        Outline::key_type(self, key)
    }
}

/// The key of the precondition at `index`.
pub(crate) fn violated_key(plan: &impl Explain, index: usize) -> String {
    plan.precondition_key(index)
        .map(str::to_owned)
        .unwrap_or_default()
}

/// The wrong-type error for `key` of `plan`.
pub(crate) fn wrong_type(plan: &impl Explain, key: String) -> TransitionError {
    let expected = plan.key_type(&key);
    TransitionError::WrongType { key, expected }
}

/// Splits `sessions` into the visible ones and those past retention.
pub(crate) fn split_expired(
    policy: &Policy,
    now: Timestamp,
    sessions: Vec<(Session, Vec<u8>)>,
) -> (Vec<Session>, Vec<(Session, Vec<u8>)>) {
    let mut visible = Vec::with_capacity(sessions.len());
    let mut expired = Vec::new();
    for (session, bytes) in sessions {
        if policy.is_expired(&session, now) {
            expired.push((session, bytes));
        } else {
            visible.push(session);
        }
    }
    (visible, expired)
}

/// The writes that revoke `next` (the revoked state of an active session
/// of its user, stored at `record_key`): the record, out of the active
/// index, and into the revoked index when the policy keeps one
/// ([`Policy::indexes_revoked`]).
pub(crate) fn revoke_writes(
    keys: &KeySpace,
    policy: &Policy,
    next: &Session,
    record_key: String,
    out: &mut Vec<Write>,
) {
    let user = next.user_id();
    let member = next.id().as_str();
    out.push(Write::Set {
        key: record_key,
        value: codec::encode(next),
    });
    out.push(Write::IndexRemove {
        key: keys.user_active_sessions_key(user),
        member: member.as_bytes().to_vec(),
    });
    if let Some(revocation) = next.revocation().filter(|_| policy.indexes_revoked()) {
        out.push(Write::IndexAdd {
            key: keys.user_revoked_sessions_key(user),
            score: IndexScore::of(revocation.at()),
            member: member.to_owned(),
        });
    }
}
