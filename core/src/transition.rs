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

/// The id an index member names, or why it is not one.
fn member_id(index_key: &str, member: &str) -> Result<DeviceSessionId, TransitionError> {
    DeviceSessionId::parse(member).map_err(|_| TransitionError::InvalidIndexMember {
        index_key: index_key.to_owned(),
        member: member.to_owned(),
    })
}

/// The record keys to read for the members of the index at `index_key`
/// (the second read of `list` and `revoke_all`), in member order.
pub fn record_keys(
    keys: &KeySpace,
    index_key: &str,
    members: &[String],
) -> Result<Vec<String>, TransitionError> {
    members
        .iter()
        .map(|member| Ok(keys.session_key(&member_id(index_key, member)?)))
        .collect()
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
            let id = member_id(index_key, member)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{MemoryKv, Violation};
    use crate::{
        ClientPublicKey, Revocation, RevokeActorId, RevokeActorType, RevokeReasonCode, Timestamp,
    };

    fn ts(text: &str) -> Timestamp {
        Timestamp::parse(text).unwrap()
    }

    fn session(id: &str, user: &str, created: &str) -> Session {
        Session::active(
            DeviceSessionId::parse(id).unwrap(),
            UserId::parse(user).unwrap(),
            ClientPublicKey::from_bytes(&[9; 32]).unwrap(),
            ts(created),
        )
        .unwrap()
    }

    fn revocation(at: &str) -> Revocation {
        Revocation::new(
            ts(at),
            RevokeReasonCode::parse("logout").unwrap(),
            RevokeActorType::parse("user").unwrap(),
            RevokeActorId::empty(),
        )
        .unwrap()
    }

    fn revoke_input(id: &str, at: &str) -> RevokeSessionInput {
        RevokeSessionInput {
            device_session_id: DeviceSessionId::parse(id).unwrap(),
            revocation: revocation(at),
        }
    }

    fn revoke_all_input(user: &str, at: &str) -> RevokeUserSessionsInput {
        RevokeUserSessionsInput {
            user_id: UserId::parse(user).unwrap(),
            revocation: revocation(at),
        }
    }

    /// Reads an index range and its records the way a driver does.
    fn read_index(
        kv: &MemoryKv,
        key: &str,
        max: Option<IndexScore>,
    ) -> (Vec<String>, Vec<Option<Vec<u8>>>) {
        let keys = KeySpace::default();
        let members: Vec<String> = kv
            .index_range(key, max)
            .into_iter()
            .map(|(m, _)| m)
            .collect();
        let records = members
            .iter()
            .map(|m| {
                kv.get(&keys.session_key(&DeviceSessionId::parse(m.as_str()).unwrap()))
                    .map(<[u8]>::to_vec)
            })
            .collect();
        (members, records)
    }

    fn create_in(kv: &mut MemoryKv, s: &Session) {
        kv.apply(&create(&KeySpace::default(), s).plan).unwrap();
    }

    #[test]
    fn create_plans_record_and_both_indexes() {
        let keys = KeySpace::default();
        let s = session("dev-1", "user-1", "2024-05-06T07:08:09.123456789Z");
        let planned = create(&keys, &s);
        assert_eq!(planned.outcome, s);
        assert_eq!(
            planned.plan.preconditions(),
            [Precondition::Absent {
                key: keys.session_key(s.id())
            }]
        );
        assert_eq!(planned.plan.on_violation(), OnViolation::Conflict);
        let score = IndexScore::of(s.created_at());
        assert_eq!(
            planned.plan.writes(),
            [
                Write::Set {
                    key: keys.session_key(s.id()),
                    value: codec::encode(&s)
                },
                Write::IndexAdd {
                    key: keys.user_sessions_key(s.user_id()),
                    score,
                    member: "dev-1".into()
                },
                Write::IndexAdd {
                    key: keys.user_active_sessions_key(s.user_id()),
                    score,
                    member: "dev-1".into()
                },
            ]
        );
        let mut kv = MemoryKv::new();
        kv.apply(&planned.plan).unwrap();
        let again = kv.apply(&create(&keys, &s).plan).unwrap_err();
        assert_eq!(again.on_violation, OnViolation::Conflict);
    }

    #[test]
    fn creating_a_revoked_session_skips_the_active_index() {
        let keys = KeySpace::default();
        let s = session("dev-1", "user-1", "2024-05-06T07:08:09Z")
            .revoked(revocation("2024-05-06T08:00:00Z"))
            .unwrap();
        let plan = create(&keys, &s).plan;
        assert_eq!(plan.writes().len(), 2);
        assert!(plan
            .writes()
            .iter()
            .all(|w| w.key() != keys.user_active_sessions_key(s.user_id())));
    }

    #[test]
    fn get_reports_not_found_and_corruption_with_the_key() {
        let keys = KeySpace::default();
        let id = DeviceSessionId::parse("dev-1").unwrap();
        let err = get(&keys, &id, None).unwrap_err();
        assert_eq!(
            (err.kind(), err.key()),
            ("not_found", Some("authsession:session:ZGV2LTE"))
        );
        assert!(!err.is_corruption());
        let err = get(&keys, &id, Some(b"{garbage")).unwrap_err();
        assert_eq!(
            (err.kind(), err.key()),
            ("corrupt_record", Some("authsession:session:ZGV2LTE"))
        );
        assert!(err.is_corruption());
        // A valid record of another id under this key is corruption too.
        let other = codec::encode(&session("dev-2", "user-1", "2024-05-06T07:08:09Z"));
        let err = get(&keys, &id, Some(&other)).unwrap_err();
        assert!(matches!(
            &err,
            TransitionError::CorruptRecord {
                source: DecodeError::IdMismatch { .. },
                ..
            }
        ));
    }

    #[test]
    fn revoke_outcomes() {
        let keys = KeySpace::default();
        let mut kv = MemoryKv::new();
        let s = session("dev-1", "user-1", "2024-05-06T07:08:09Z");
        create_in(&mut kv, &s);
        let key = keys.session_key(s.id());
        let active_key = keys.user_active_sessions_key(s.user_id());

        let err = revoke(&keys, &revoke_input("dev-2", "2024-05-06T08:00:00Z"), None).unwrap_err();
        assert_eq!(err.kind(), "not_found");

        let early = revoke(
            &keys,
            &revoke_input("dev-1", "2024-05-06T07:08:08.999999999Z"),
            kv.get(&key),
        )
        .unwrap_err();
        assert_eq!(
            early,
            TransitionError::Invalid(ValidationError::RevokedBeforeCreated)
        );
        assert_eq!(early.kind(), "revoked_before_created");

        let same_instant = revoke(
            &keys,
            &revoke_input("dev-1", "2024-05-06T07:08:09Z"),
            kv.get(&key),
        )
        .unwrap();
        assert!(matches!(
            same_instant.outcome,
            RevokeSessionOutcome::Revoked(_)
        ));

        let planned = revoke(
            &keys,
            &revoke_input("dev-1", "2024-05-06T08:00:00Z"),
            kv.get(&key),
        )
        .unwrap();
        let RevokeSessionOutcome::Revoked(revoked) = &planned.outcome else {
            panic!("{:?}", planned.outcome)
        };
        assert!(planned.outcome.is_consistent());
        assert_eq!(
            planned.plan.preconditions(),
            [Precondition::ValueEquals {
                key: key.clone(),
                value: kv.get(&key).unwrap().to_vec()
            }]
        );
        kv.apply(&planned.plan).unwrap();
        assert_eq!(kv.get(&key), Some(codec::encode(revoked).as_slice()));
        assert_eq!(kv.index_len(&active_key), 0);
        assert_eq!(kv.index_len(&keys.user_sessions_key(s.user_id())), 1);

        // The stale plan computed before does not apply twice.
        assert_eq!(
            kv.apply(&same_instant.plan).unwrap_err().on_violation,
            OnViolation::Retry
        );

        let again = revoke(
            &keys,
            &revoke_input("dev-1", "2024-05-06T09:00:00Z"),
            kv.get(&key),
        )
        .unwrap();
        assert_eq!(
            again.outcome,
            RevokeSessionOutcome::AlreadyRevoked(revoked.clone())
        );
        assert!(again.plan.is_empty());
    }

    #[test]
    fn list_is_newest_first_with_ties_by_id_bytes() {
        let keys = KeySpace::default();
        let mut kv = MemoryKv::new();
        for (id, created) in [
            ("b", "2024-05-06T07:08:09Z"),
            ("a", "2024-05-06T07:08:09Z"),
            ("c", "2024-05-06T07:08:10Z"),
            ("d", "2024-05-06T07:08:09.0000001Z"),
            ("é", "2024-05-06T07:08:09Z"),
            ("Z", "2024-05-06T07:08:09Z"),
        ] {
            create_in(&mut kv, &session(id, "user-1", created));
        }
        create_in(&mut kv, &session("x", "user-2", "2030-01-01T00:00:00Z"));
        let user = UserId::parse("user-1").unwrap();
        let (members, records) = read_index(&kv, &keys.user_sessions_key(&user), None);
        let Step::Done(list) = list(&keys, &user, &members, &records).unwrap() else {
            panic!("confirm")
        };
        let ids: Vec<&str> = list.iter().map(|s| s.id().as_str()).collect();
        assert_eq!(ids, ["c", "d", "Z", "a", "b", "é"]);
    }

    #[test]
    fn list_anomalies_need_confirmation_and_corruption_does_not() {
        let keys = KeySpace::default();
        let user = UserId::parse("user-1").unwrap();
        let index = keys.user_sessions_key(&user);
        let mut kv = MemoryKv::new();
        create_in(&mut kv, &session("dev-1", "user-1", "2024-05-06T07:08:09Z"));
        create_in(&mut kv, &session("dev-9", "user-9", "2024-05-06T07:08:09Z"));

        // Dangling member: confirmed on the unchanged state, then the error.
        kv.index_add_raw(&index, "ghost", 1.0);
        let (members, records) = read_index(&kv, &index, None);
        let Step::Confirm { plan, error } = list(&keys, &user, &members, &records).unwrap() else {
            panic!()
        };
        assert_eq!(error.kind(), "dangling_index_member");
        assert_eq!(error.key(), Some(index.as_str()));
        assert!(plan.writes().is_empty());
        kv.apply(&plan).unwrap();
        // …but a concurrent change (the ghost's record appears) violates it.
        create_in(&mut kv, &session("ghost", "user-1", "2024-05-06T07:08:09Z"));
        assert_eq!(
            kv.apply(&plan).unwrap_err().on_violation,
            OnViolation::Retry
        );

        // Foreign member.
        kv.index_add_raw(&index, "dev-9", 1.0);
        let (members, records) = read_index(&kv, &index, None);
        let Step::Confirm { error, .. } = list(&keys, &user, &members, &records).unwrap() else {
            panic!()
        };
        assert!(
            matches!(&error, TransitionError::ForeignIndexMember { owner, .. } if owner == "user-9")
        );

        // Corrupt record and invalid member: errors straight away.
        let mut kv2 = MemoryKv::new();
        kv2.index_add_raw(&index, "dev-1", 1.0);
        kv2.set_raw(
            keys.session_key(&DeviceSessionId::parse("dev-1").unwrap()),
            "{}",
        );
        let (members, records) = read_index(&kv2, &index, None);
        assert_eq!(
            list(&keys, &user, &members, &records).unwrap_err().kind(),
            "corrupt_record"
        );
        let err = list(&keys, &user, &[" bad".to_owned()], &[None]).unwrap_err();
        assert_eq!(err.kind(), "invalid_index_member");
    }

    #[test]
    fn revoke_all_revokes_only_sessions_that_existed_at_the_instant() {
        let keys = KeySpace::default();
        let mut kv = MemoryKv::new();
        create_in(&mut kv, &session("old", "user-1", "2024-05-06T07:00:00Z"));
        create_in(
            &mut kv,
            &session("same", "user-1", "2024-05-06T08:00:00.0000005Z"),
        );
        create_in(
            &mut kv,
            &session("exact", "user-1", "2024-05-06T08:00:00.0000004Z"),
        );
        create_in(&mut kv, &session("later", "user-1", "2024-05-06T09:00:00Z"));
        create_in(&mut kv, &session("other", "user-2", "2024-05-06T07:00:00Z"));
        let input = revoke_all_input("user-1", "2024-05-06T08:00:00.0000004Z");
        let scan = revoke_all_scan(&keys, &input);
        let (members, records) = read_index(&kv, &scan.key, Some(scan.max_score));
        // "same" shares the microsecond score but was created 100 ns later.
        assert_eq!(members, ["old", "exact", "same"]);
        let Step::Done(planned) = revoke_all(&keys, &input, &members, &records).unwrap() else {
            panic!()
        };
        let ids: Vec<&str> = planned
            .outcome
            .sessions()
            .iter()
            .map(|s| s.id().as_str())
            .collect();
        assert_eq!(ids, ["exact", "old"]);
        assert!(planned.outcome.is_consistent_for(&input.user_id));
        kv.apply(&planned.plan).unwrap();
        let active: Vec<String> = kv
            .index_range(&scan.key, None)
            .into_iter()
            .map(|(m, _)| m)
            .collect();
        assert_eq!(active, ["same", "later"]);
        assert_eq!(
            kv.index_len(&keys.user_active_sessions_key(&UserId::parse("user-2").unwrap())),
            1
        );

        // Nothing left at or before the instant.
        let (members, records) = read_index(&kv, &scan.key, Some(scan.max_score));
        let Step::Done(none) = revoke_all(&keys, &input, &members, &records).unwrap() else {
            panic!()
        };
        assert_eq!(none.outcome, RevokeUserSessionsOutcome::NoActiveSessions);
        assert!(none.plan.is_empty());
    }

    #[test]
    fn revoke_all_plan_detects_a_concurrent_create_in_range() {
        let keys = KeySpace::default();
        let mut kv = MemoryKv::new();
        create_in(&mut kv, &session("a", "user-1", "2024-05-06T07:00:00Z"));
        let input = revoke_all_input("user-1", "2024-05-06T08:00:00Z");
        let scan = revoke_all_scan(&keys, &input);
        let (members, records) = read_index(&kv, &scan.key, Some(scan.max_score));
        let Step::Done(planned) = revoke_all(&keys, &input, &members, &records).unwrap() else {
            panic!()
        };
        // A session created later than the instant does not disturb the plan…
        create_in(&mut kv, &session("later", "user-1", "2024-05-06T09:00:00Z"));
        let mut copy = kv.clone();
        copy.apply(&planned.plan).unwrap();
        // …one created before it does: it must be revoked too, so retry.
        create_in(&mut kv, &session("b", "user-1", "2024-05-06T07:30:00Z"));
        let Violation { on_violation, .. } = kv.apply(&planned.plan).unwrap_err();
        assert_eq!(on_violation, OnViolation::Retry);
    }

    #[test]
    fn revoke_all_confirms_a_revoked_member_of_the_active_index() {
        let keys = KeySpace::default();
        let mut kv = MemoryKv::new();
        let s = session("a", "user-1", "2024-05-06T07:00:00Z");
        create_in(&mut kv, &s);
        let active_key = keys.user_active_sessions_key(s.user_id());
        let input = revoke_all_input("user-1", "2024-05-06T08:00:00Z");
        let scan = revoke_all_scan(&keys, &input);
        let (members, _) = read_index(&kv, &scan.key, Some(scan.max_score));
        // A concurrent revoke lands between the index read and the record read.
        let planned = revoke(
            &keys,
            &revoke_input("a", "2024-05-06T07:30:00Z"),
            kv.get(&keys.session_key(s.id())),
        )
        .unwrap();
        kv.apply(&planned.plan).unwrap();
        let records = vec![kv.get(&keys.session_key(s.id())).map(<[u8]>::to_vec)];
        let Step::Confirm { plan, error } = revoke_all(&keys, &input, &members, &records).unwrap()
        else {
            panic!()
        };
        assert_eq!(error.kind(), "inactive_index_member");
        // The index no longer holds it: a race, not corruption.
        assert!(kv.apply(&plan).is_err());
        // Planted for real: confirmed.
        kv.index_add_raw(&active_key, "a", IndexScore::of(s.created_at()).as_f64());
        let (members, records) = read_index(&kv, &scan.key, Some(scan.max_score));
        let Step::Confirm { plan, .. } = revoke_all(&keys, &input, &members, &records).unwrap()
        else {
            panic!()
        };
        kv.apply(&plan).unwrap();
    }
}
