//! The state transitions of SPEC §6 as pure functions.
//!
//! Each operation is a short conversation between a driver and this module:
//! the driver reads what the transition names (a record, an index range and
//! the records it lists), passes the raw bytes in, and gets back either a
//! result or a [`Plan`] to apply atomically. No transition performs I/O.
//!
//! | operation | driver reads | then |
//! |---|---|---|
//! | get | [`KeySpace::session_key`] | [`get`] |
//! | count | `ZCARD` of [`KeySpace::user_active_sessions_key`] | — |
//! | create | — | apply [`create`]'s plan (`Conflict` on violation) |
//! | revoke | the record | apply [`revoke`]'s plan (`Retry` on violation) |
//! | list | all of [`KeySpace::user_sessions_key`], then those records | [`list`] |
//! | revoke all | [`revoke_all_scan`]'s range, then those records | apply [`revoke_all`]'s plan |
//!
//! When the records read contradict the index read just before (a missing,
//! foreign or revoked session), the cause may be a concurrent change
//! between the two reads rather than corruption. Those transitions then
//! return [`Step::Confirm`]: a precondition-only plan restating what was
//! read. If it applies, the state *is* that way on one consistent view and
//! the driver reports the error; if it is violated, the driver retries.

use crate::codec::{self, DecodeError};
use crate::error::ValidationError;
use crate::ids::{DeviceSessionId, UserId};
use crate::keys::{IndexScore, KeySpace};
use crate::order::sort_newest_first;
use crate::plan::{OnViolation, Plan, Planned, Precondition, Write};
use crate::session::{
    RevokeSessionInput, RevokeSessionOutcome, RevokeUserSessionsInput, RevokeUserSessionsOutcome,
    Session, Status,
};

/// Why a transition cannot proceed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TransitionError {
    /// The input breaks a domain rule (e.g. revoking before creation).
    #[error("invalid input: {0}")]
    Invalid(#[from] ValidationError),
    /// No record exists at `key`.
    #[error("session not found at {key}")]
    NotFound {
        /// The record key.
        key: String,
    },
    /// The record at `key` does not decode (or belongs to another id).
    #[error("corrupt session record at {key}: {source}")]
    CorruptRecord {
        /// The record key.
        key: String,
        /// Why it was rejected.
        source: DecodeError,
    },
    /// An index member is not a valid device session id.
    #[error("index {index_key} holds invalid member {member:?}")]
    InvalidIndexMember {
        /// The sorted set's key.
        index_key: String,
        /// The member as stored.
        member: String,
    },
    /// An index names a session whose record does not exist.
    #[error("index {index_key} references missing session {member:?} (record key {record_key})")]
    DanglingIndexMember {
        /// The sorted set's key.
        index_key: String,
        /// The member.
        member: String,
        /// Where its record should be.
        record_key: String,
    },
    /// A user's index names another user's session.
    #[error("index {index_key} references session {member:?} of user {owner:?}")]
    ForeignIndexMember {
        /// The sorted set's key.
        index_key: String,
        /// The member.
        member: String,
        /// The user the record belongs to.
        owner: String,
    },
    /// The active index names a session that is revoked.
    #[error("active index {index_key} references revoked session {member:?}")]
    InactiveIndexMember {
        /// The sorted set's key.
        index_key: String,
        /// The member.
        member: String,
    },
}

impl TransitionError {
    /// Stable machine-readable kind (snake_case). Validation errors report
    /// their own kind.
    pub fn kind(&self) -> &'static str {
        match self {
            TransitionError::Invalid(inner) => inner.kind(),
            TransitionError::NotFound { .. } => "not_found",
            TransitionError::CorruptRecord { .. } => "corrupt_record",
            TransitionError::InvalidIndexMember { .. } => "invalid_index_member",
            TransitionError::DanglingIndexMember { .. } => "dangling_index_member",
            TransitionError::ForeignIndexMember { .. } => "foreign_index_member",
            TransitionError::InactiveIndexMember { .. } => "inactive_index_member",
        }
    }

    /// Whether the error reports corrupt stored data (as opposed to bad
    /// input or a missing session).
    pub fn is_corruption(&self) -> bool {
        !matches!(
            self,
            TransitionError::Invalid(_) | TransitionError::NotFound { .. }
        )
    }

    /// The key of the offending record or index, when there is one.
    pub fn key(&self) -> Option<&str> {
        match self {
            TransitionError::Invalid(_) => None,
            TransitionError::NotFound { key } | TransitionError::CorruptRecord { key, .. } => {
                Some(key)
            }
            TransitionError::InvalidIndexMember { index_key, .. }
            | TransitionError::DanglingIndexMember { index_key, .. }
            | TransitionError::ForeignIndexMember { index_key, .. }
            | TransitionError::InactiveIndexMember { index_key, .. } => Some(index_key),
        }
    }
}

/// The result of a read-dependent transition.
#[derive(Debug, Clone, PartialEq)]
#[must_use = "a step must be acted on"]
pub enum Step<T> {
    /// The transition's result.
    Done(T),
    /// The reads contradict each other: apply `plan` (preconditions only).
    /// If it holds, report `error`; if it is violated, read again.
    Confirm {
        /// Precondition-only plan restating what was read.
        plan: Plan,
        /// The corruption to report when the plan holds.
        error: TransitionError,
    },
}

/// Decodes the record read for `id`. `None` is "not found".
pub fn get(
    keys: &KeySpace,
    id: &DeviceSessionId,
    stored: Option<&[u8]>,
) -> Result<Session, TransitionError> {
    let key = || keys.session_key(id);
    let bytes = stored.ok_or_else(|| TransitionError::NotFound { key: key() })?;
    codec::decode(id, bytes).map_err(|source| TransitionError::CorruptRecord { key: key(), source })
}

/// Plans the creation of `session`: its record (if absent) and its index
/// entries (the active index only when it is active). A violated plan is a
/// conflict: the id exists.
pub fn create(keys: &KeySpace, session: &Session) -> Planned<Session> {
    let record_key = keys.session_key(session.id());
    let score = IndexScore::of(session.created_at());
    let member = session.id().as_str().to_owned();
    let mut writes = vec![
        Write::Set {
            key: record_key.clone(),
            value: codec::encode(session),
        },
        Write::IndexAdd {
            key: keys.user_sessions_key(session.user_id()),
            score,
            member: member.clone(),
        },
    ];
    if session.is_active() {
        writes.push(Write::IndexAdd {
            key: keys.user_active_sessions_key(session.user_id()),
            score,
            member,
        });
    }
    Planned {
        plan: Plan::new(
            vec![Precondition::Absent { key: record_key }],
            writes,
            OnViolation::Conflict,
        ),
        outcome: session.clone(),
    }
}

/// Plans revoking one session, given the bytes read at its key. An already
/// revoked session yields `AlreadyRevoked` and an empty plan.
pub fn revoke(
    keys: &KeySpace,
    input: &RevokeSessionInput,
    stored: Option<&[u8]>,
) -> Result<Planned<RevokeSessionOutcome>, TransitionError> {
    let current = get(keys, &input.device_session_id, stored)?;
    if current.status() == Status::Revoked {
        return Ok(Planned {
            plan: Plan::empty(),
            outcome: RevokeSessionOutcome::AlreadyRevoked(current),
        });
    }
    let record_key = keys.session_key(current.id());
    let active_key = keys.user_active_sessions_key(current.user_id());
    let member = current.id().as_str().to_owned();
    let next = current.revoked(input.revocation.clone())?;
    let plan = Plan::new(
        vec![Precondition::ValueEquals {
            key: record_key.clone(),
            value: stored.unwrap_or_default().to_vec(),
        }],
        vec![
            Write::Set {
                key: record_key,
                value: codec::encode(&next),
            },
            Write::IndexRemove {
                key: active_key,
                member,
            },
        ],
        OnViolation::Retry,
    );
    Ok(Planned {
        plan,
        outcome: RevokeSessionOutcome::Revoked(next),
    })
}

/// Reads the records of index members, classifying each one. Shared by
/// `list` and `revoke_all`, which differ only in what is an anomaly.
struct MemberRead<'a> {
    member: &'a str,
    record_key: String,
    stored: Option<&'a [u8]>,
}

fn member_reads<'a>(
    keys: &KeySpace,
    index_key: &str,
    members: &'a [String],
    records: &'a [Option<Vec<u8>>],
) -> Result<Vec<(MemberRead<'a>, DeviceSessionId)>, TransitionError> {
    members
        .iter()
        .enumerate()
        .map(|(i, member)| {
            let id = DeviceSessionId::parse(member.as_str()).map_err(|_| {
                TransitionError::InvalidIndexMember {
                    index_key: index_key.to_owned(),
                    member: member.clone(),
                }
            })?;
            let stored = records.get(i).and_then(Option::as_deref);
            Ok((
                MemberRead {
                    member,
                    record_key: keys.session_key(&id),
                    stored,
                },
                id,
            ))
        })
        .collect()
}

/// A precondition-only plan restating an index read plus one record read.
fn confirm(
    index_key: &str,
    max_score: Option<IndexScore>,
    members: &[String],
    read: &MemberRead<'_>,
) -> Plan {
    let record = match read.stored {
        None => Precondition::Absent {
            key: read.record_key.clone(),
        },
        Some(bytes) => Precondition::ValueEquals {
            key: read.record_key.clone(),
            value: bytes.to_vec(),
        },
    };
    Plan::new(
        vec![
            Precondition::IndexRangeEquals {
                key: index_key.to_owned(),
                max_score,
                members: members.to_vec(),
            },
            record,
        ],
        Vec::new(),
        OnViolation::Retry,
    )
}

/// Decodes one member's record, or says why the index and record disagree.
fn check_member(
    user: &UserId,
    index_key: &str,
    max_score: Option<IndexScore>,
    members: &[String],
    read: &MemberRead<'_>,
    id: &DeviceSessionId,
) -> Result<Step<Session>, TransitionError> {
    let confirm_with = |error| {
        Ok(Step::Confirm {
            plan: confirm(index_key, max_score, members, read),
            error,
        })
    };
    let Some(bytes) = read.stored else {
        return confirm_with(TransitionError::DanglingIndexMember {
            index_key: index_key.to_owned(),
            member: read.member.to_owned(),
            record_key: read.record_key.clone(),
        });
    };
    let session = codec::decode(id, bytes).map_err(|source| TransitionError::CorruptRecord {
        key: read.record_key.clone(),
        source,
    })?;
    if session.user_id() != user {
        return confirm_with(TransitionError::ForeignIndexMember {
            index_key: index_key.to_owned(),
            member: read.member.to_owned(),
            owner: session.user_id().as_str().to_owned(),
        });
    }
    Ok(Step::Done(session))
}

/// Assembles `user`'s sessions from the all-sessions index (`members`, any
/// order) and the records read for them (`records[i]` for `members[i]`),
/// newest first.
pub fn list(
    keys: &KeySpace,
    user: &UserId,
    members: &[String],
    records: &[Option<Vec<u8>>],
) -> Result<Step<Vec<Session>>, TransitionError> {
    let index_key = keys.user_sessions_key(user);
    let mut sessions = Vec::with_capacity(members.len());
    for (read, id) in member_reads(keys, &index_key, members, records)? {
        match check_member(user, &index_key, None, members, &read, &id)? {
            Step::Done(session) => sessions.push(session),
            Step::Confirm { plan, error } => return Ok(Step::Confirm { plan, error }),
        }
    }
    sort_newest_first(&mut sessions);
    Ok(Step::Done(sessions))
}

/// The first read of "revoke all": the active index of the input's user,
/// members with a score at most this bound. (Scores are floored
/// microseconds, so the range may include sessions created up to 999 ns
/// after the revocation; [`revoke_all`] leaves those alone.)
#[derive(Debug, Clone, PartialEq)]
pub struct IndexScan {
    /// The sorted set to read.
    pub key: String,
    /// Inclusive upper score bound.
    pub max_score: IndexScore,
}

/// What "revoke all" reads first.
pub fn revoke_all_scan(keys: &KeySpace, input: &RevokeUserSessionsInput) -> IndexScan {
    IndexScan {
        key: keys.user_active_sessions_key(&input.user_id),
        max_score: IndexScore::of(input.revocation.at()),
    }
}

/// Plans revoking every active session of the user created at or before
/// the revocation time, given the [`revoke_all_scan`] range (`members`) and
/// the records read for them. The plan requires the range and each revoked
/// record to be unchanged.
pub fn revoke_all(
    keys: &KeySpace,
    input: &RevokeUserSessionsInput,
    members: &[String],
    records: &[Option<Vec<u8>>],
) -> Result<Step<Planned<RevokeUserSessionsOutcome>>, TransitionError> {
    let scan = revoke_all_scan(keys, input);
    let mut preconditions = vec![Precondition::IndexRangeEquals {
        key: scan.key.clone(),
        max_score: Some(scan.max_score),
        members: members.to_vec(),
    }];
    let mut writes = Vec::new();
    let mut revoked = Vec::new();
    for (read, id) in member_reads(keys, &scan.key, members, records)? {
        let session = match check_member(
            &input.user_id,
            &scan.key,
            Some(scan.max_score),
            members,
            &read,
            &id,
        )? {
            Step::Done(session) => session,
            Step::Confirm { plan, error } => return Ok(Step::Confirm { plan, error }),
        };
        if session.status() != Status::Active {
            let error = TransitionError::InactiveIndexMember {
                index_key: scan.key.clone(),
                member: read.member.to_owned(),
            };
            return Ok(Step::Confirm {
                plan: confirm(&scan.key, Some(scan.max_score), members, &read),
                error,
            });
        }
        if session.created_at() > input.revocation.at() {
            // Created after the revocation instant: it did not exist then.
            continue;
        }
        let next = session.revoked(input.revocation.clone())?;
        preconditions.push(Precondition::ValueEquals {
            key: read.record_key.clone(),
            value: read.stored.unwrap_or_default().to_vec(),
        });
        writes.push(Write::Set {
            key: read.record_key,
            value: codec::encode(&next),
        });
        writes.push(Write::IndexRemove {
            key: scan.key.clone(),
            member: read.member.to_owned(),
        });
        revoked.push(next);
    }
    if revoked.is_empty() {
        return Ok(Step::Done(Planned {
            plan: Plan::empty(),
            outcome: RevokeUserSessionsOutcome::NoActiveSessions,
        }));
    }
    sort_newest_first(&mut revoked);
    Ok(Step::Done(Planned {
        plan: Plan::new(preconditions, writes, OnViolation::Retry),
        outcome: RevokeUserSessionsOutcome::Revoked(revoked),
    }))
}
