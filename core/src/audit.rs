//! The consistency audit behind `authsession check`: strict-decode every
//! record, compare both indexes of every user with the records, and plan
//! the index repairs.
//!
//! Records are the source of truth; indexes are derived. The audit never
//! plans a change to a record, only index entries: an undecodable record is
//! reported and left for a human.

use std::collections::{BTreeMap, BTreeSet};

use crate::codec::{self, DecodeError};
use crate::ids::DeviceSessionId;
use crate::keys::{IndexScore, KeySpace};
use crate::plan::{Member, OnViolation, Plan, Precondition, Write};
use crate::session::Session;

/// One inconsistency found by [`audit`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    /// A key under the session prefix whose suffix is not a valid encoded id.
    #[error("{key}: key does not name a valid device session id")]
    UnparsableKey {
        /// The key.
        key: String,
    },
    /// A record that fails strict decoding (or is stored under another id).
    #[error("{key}: corrupt record: {error}")]
    CorruptRecord {
        /// The record key.
        key: String,
        /// Why it was rejected.
        error: DecodeError,
    },
    /// A valid record missing from (or misscored in) one of its indexes.
    #[error("{index_key}: missing or misscored member {member:?} (record {record_key})")]
    MissingIndexEntry {
        /// The index that should hold it.
        index_key: String,
        /// The session id.
        member: String,
        /// The record key.
        record_key: String,
    },
    /// An index member with no record, another user's record, an
    /// undecodable record, or (active index) a revoked record.
    #[error("{index_key}: stray member {member:?}: {reason}")]
    StrayIndexEntry {
        /// The index holding it.
        index_key: String,
        /// The member.
        member: String,
        /// Why it does not belong there.
        reason: &'static str,
    },
}

impl Problem {
    /// Stable machine-readable kind (snake_case).
    pub fn kind(&self) -> &'static str {
        match self {
            Problem::UnparsableKey { .. } => "unparsable_key",
            Problem::CorruptRecord { .. } => "corrupt_record",
            Problem::MissingIndexEntry { .. } => "missing_index_entry",
            Problem::StrayIndexEntry { .. } => "stray_index_entry",
        }
    }

    /// The key the problem is about.
    pub fn key(&self) -> &str {
        match self {
            Problem::UnparsableKey { key } | Problem::CorruptRecord { key, .. } => key,
            Problem::MissingIndexEntry { index_key, .. }
            | Problem::StrayIndexEntry { index_key, .. } => index_key,
        }
    }

    /// Whether `check --repair` fixes it (index drift only).
    pub fn is_repairable(&self) -> bool {
        matches!(
            self,
            Problem::MissingIndexEntry { .. } | Problem::StrayIndexEntry { .. }
        )
    }
}

/// What [`audit`] found and how to fix the index drift.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Records examined.
    pub records: usize,
    /// Index entries examined.
    pub index_entries: usize,
    /// Every problem, in key order.
    pub problems: Vec<Problem>,
    /// Index writes fixing every repairable problem, guarded by the record
    /// bytes and index memberships they were derived from (apply with
    /// retry: a violation means the key space changed during the scan).
    pub repair: Plan,
}

/// Audits a snapshot of the key space: `records` are every `(key, bytes)`
/// under the session prefix, `indexes` every `(key, members with scores)`
/// under the two index prefixes. Keys outside the key space are ignored.
pub fn audit(
    keys: &KeySpace,
    records: impl IntoIterator<Item = (String, Vec<u8>)>,
    indexes: impl IntoIterator<Item = (String, Vec<(Member, f64)>)>,
) -> Report {
    let mut problems = Vec::new();
    let mut preconditions = Vec::new();
    let mut writes = Vec::new();
    let mut record_count = 0;
    let mut index_entries = 0;

    // Valid records by id, plus ids whose record exists but is corrupt.
    let mut sessions: BTreeMap<String, (String, Session, Vec<u8>)> = BTreeMap::new();
    // Records a repair write depends on; only these guard the repair plan,
    // so repairing a large key space does not ship every record back.
    let mut guarded: BTreeSet<String> = BTreeSet::new();
    let mut corrupt: BTreeSet<String> = BTreeSet::new();
    for (key, bytes) in records {
        record_count += 1;
        let Some(id) = keys.parse_session_key(&key) else {
            problems.push(Problem::UnparsableKey { key });
            continue;
        };
        match codec::decode(&id, &bytes) {
            Ok(session) => {
                sessions.insert(id.into_string(), (key, session, bytes));
            }
            Err(error) => {
                corrupt.insert(id.into_string());
                problems.push(Problem::CorruptRecord { key, error });
            }
        }
    }

    // Expected index contents, derived from the records.
    let mut expected: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    for (id, (_, session, _)) in &sessions {
        let score = IndexScore::of(session.created_at()).as_f64();
        expected
            .entry(keys.user_sessions_key(session.user_id()))
            .or_default()
            .insert(id.clone(), score);
        if session.is_active() {
            expected
                .entry(keys.user_active_sessions_key(session.user_id()))
                .or_default()
                .insert(id.clone(), score);
        }
    }

    let mut seen: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    for (index_key, members) in indexes {
        index_entries += members.len();
        let active_only = if keys.parse_user_sessions_key(&index_key).is_some() {
            Some(false)
        } else {
            keys.parse_user_active_sessions_key(&index_key)
                .map(|_| true)
        };
        let want = expected.get(&index_key);
        for (raw_member, score) in members {
            let member = String::from_utf8_lossy(&raw_member).into_owned();
            let valid_utf8 = std::str::from_utf8(&raw_member).is_ok();
            if valid_utf8 && want.is_some_and(|w| w.contains_key(&member)) {
                seen.entry(index_key.clone())
                    .or_default()
                    .insert(member, score);
                continue;
            }
            let id = valid_utf8
                .then(|| DeviceSessionId::parse(member.as_str()).ok())
                .flatten();
            let reason = match (active_only, &id) {
                (None, _) => "index key does not name a valid user id",
                (_, None) => "member is not a valid device session id",
                _ if corrupt.contains(&member) => "record is corrupt",
                (Some(active_only), Some(_)) => match sessions.get(&member) {
                    None => "no record",
                    Some((_, s, _)) if active_only && !s.is_active() => "session is revoked",
                    Some(_) => "session belongs to another user",
                },
            };
            // Entries of a corrupt record stay until a human fixes the
            // record; everything else that does not belong is removed,
            // guarded by the record still being what the audit saw.
            if reason != "record is corrupt" {
                if let (Some(id), true) = (&id, reason == "no record") {
                    preconditions.push(Precondition::Absent {
                        key: keys.session_key(id),
                    });
                }
                if sessions.contains_key(&member) {
                    guarded.insert(member.clone());
                }
                writes.push(Write::IndexRemove {
                    key: index_key.clone(),
                    member: raw_member.clone(),
                });
            }
            problems.push(Problem::StrayIndexEntry {
                index_key: index_key.clone(),
                member,
                reason,
            });
        }
    }

    for (index_key, want) in &expected {
        let have = seen.get(index_key);
        for (member, score) in want {
            if have.and_then(|h| h.get(member)) == Some(score) {
                continue;
            }
            let Some((record_key, session, _)) = sessions.get(member) else {
                continue;
            };
            guarded.insert(member.clone());
            problems.push(Problem::MissingIndexEntry {
                index_key: index_key.clone(),
                member: member.clone(),
                record_key: record_key.clone(),
            });
            writes.push(Write::IndexAdd {
                key: index_key.clone(),
                score: IndexScore::of(session.created_at()),
                member: member.clone(),
            });
        }
    }

    preconditions.extend(guarded.iter().filter_map(|id| {
        let (key, _, bytes) = sessions.get(id)?;
        Some(Precondition::ValueEquals {
            key: key.clone(),
            value: bytes.clone(),
        })
    }));
    problems.sort_by(|a, b| a.key().cmp(b.key()));
    let repair = if writes.is_empty() {
        Plan::empty()
    } else {
        Plan::new(preconditions, writes, OnViolation::Retry)
    };
    Report {
        records: record_count,
        index_entries,
        problems,
        repair,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MemoryKv;
    use crate::op::{self, Create, Policy};
    use crate::plan::Applied;
    use crate::{
        ClientPublicKey, Revocation, RevokeActorId, RevokeActorType, RevokeReasonCode, Timestamp,
        UserId,
    };

    fn session(id: &str, user: &str) -> Session {
        Session::active(
            DeviceSessionId::parse(id).unwrap(),
            UserId::parse(user).unwrap(),
            ClientPublicKey::from_bytes(&[1; 32]).unwrap(),
            Timestamp::parse("2024-05-06T07:08:09Z").unwrap(),
        )
        .unwrap()
    }

    fn create_in(kv: &mut MemoryKv, keys: &KeySpace, s: &Session) {
        let now = s.created_at();
        op::run(kv, Create::new(keys, Policy::default(), now, s.clone()), 4).unwrap();
    }

    fn run(keys: &KeySpace, kv: &MemoryKv) -> Report {
        let records = kv
            .value_keys()
            .filter(|k| k.starts_with(keys.prefixes()[0]))
            .map(|k| (k.to_owned(), kv.get(k).unwrap().to_vec()))
            .collect::<Vec<_>>();
        let indexes = kv
            .index_keys()
            .filter(|k| !k.starts_with(keys.revoked_prefix()))
            .map(|k| (k.to_owned(), kv.index_range(k, None)))
            .collect::<Vec<_>>();
        audit(keys, records, indexes)
    }

    #[test]
    fn finds_every_planted_problem_and_repairs_the_drift() {
        let keys = KeySpace::default();
        let mut kv = MemoryKv::new();
        for (id, user) in [("a", "u1"), ("b", "u1"), ("c", "u2"), ("d", "u1")] {
            create_in(&mut kv, &keys, &session(id, user));
        }
        let clean = run(&keys, &kv);
        assert!(clean.problems.is_empty(), "{:?}", clean.problems);
        assert!(clean.repair.is_empty());
        assert_eq!((clean.records, clean.index_entries), (4, 8));

        let u1 = UserId::parse("u1").unwrap();
        let all_u1 = keys.user_sessions_key(&u1);
        let active_u1 = keys.user_active_sessions_key(&u1);
        // Garbage record, dangling member, foreign member, revoked-in-active,
        // missing entry, wrong score, unparsable key.
        kv.set_raw(
            keys.session_key(&DeviceSessionId::parse("g").unwrap()),
            "not json",
        );
        kv.index_add_raw(&all_u1, "ghost", 5.0);
        kv.index_add_raw(&all_u1, "c", 5.0);
        let revoked = session("r", "u1")
            .revoked(
                Revocation::new(
                    Timestamp::parse("2024-05-07T00:00:00Z").unwrap(),
                    RevokeReasonCode::parse("x").unwrap(),
                    RevokeActorType::parse("y").unwrap(),
                    RevokeActorId::empty(),
                )
                .unwrap(),
            )
            .unwrap();
        create_in(&mut kv, &keys, &revoked);
        kv.index_add_raw(&active_u1, "r", 1.0);
        kv.index_add_raw(&active_u1, "b", 42.0);
        kv.delete_raw(&keys.user_sessions_key(&UserId::parse("u2").unwrap()));
        kv.set_raw("authsession:session:!!!", "x");

        let report = run(&keys, &kv);
        let mut kinds: Vec<(&str, &str)> = report
            .problems
            .iter()
            .map(|p| (p.kind(), p.key()))
            .collect();
        kinds.sort_unstable();
        let u2_all = keys.user_sessions_key(&UserId::parse("u2").unwrap());
        let g_key = keys.session_key(&DeviceSessionId::parse("g").unwrap());
        let mut expected = vec![
            ("corrupt_record", g_key.as_str()),
            ("missing_index_entry", active_u1.as_str()),
            ("missing_index_entry", u2_all.as_str()),
            ("stray_index_entry", active_u1.as_str()),
            ("stray_index_entry", all_u1.as_str()),
            ("stray_index_entry", all_u1.as_str()),
            ("unparsable_key", "authsession:session:!!!"),
        ];
        expected.sort_unstable();
        assert_eq!(kinds, expected);

        // Guarded by exactly the records its writes depend on (b, c, r) and
        // the ghost's absence; untouched records (a, d) are not shipped.
        let guards: Vec<&str> = report
            .repair
            .preconditions()
            .map(Precondition::key)
            .collect();
        let key_of = |id: &str| keys.session_key(&DeviceSessionId::parse(id).unwrap());
        assert_eq!(
            guards,
            [key_of("ghost"), key_of("b"), key_of("c"), key_of("r")]
        );
        assert_eq!(kv.apply(&report.repair), Applied::Done);
        let after = run(&keys, &kv);
        assert!(
            after.problems.iter().all(|p| !p.is_repairable()),
            "{:?}",
            after.problems
        );
        assert_eq!(after.problems.len(), 2);
        assert!(after.repair.is_empty());
    }
}
