//! What `authsession check` looks for and what it reports: the problem
//! vocabulary shared by the bounded check walk ([`crate::op::Check`]), the
//! driver and the CLI.
//!
//! Records are the source of truth; indexes (and, in the tagged layout,
//! owner keys) are derived from them. A repair only ever writes derived
//! data — index entries and owner keys — each write guarded by the stored
//! state it was derived from. A record that does not decode (or is another
//! user's) is reported and its bytes left for a human, but its index
//! entries go: a user is always revocable whole after a repair.

use std::fmt;

use serde::ser::{SerializeStruct as _, Serializer};
use serde::Serialize;

use crate::codec::DecodeError;
use crate::op::TransitionError;
use crate::plan::{KeyType, Member};

/// What `check` does about what it finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum CheckMode {
    /// Report only; write nothing.
    #[default]
    Report,
    /// Also repair derived data (index entries, owner keys), batch by
    /// batch, and report what was fixed and what was not.
    Repair,
}

/// Why an index member does not belong in its index. Each reason is the
/// check's name for the corruption an operation reports when it meets
/// such a member ([`StrayReason::kind`] is that error's kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum StrayReason {
    /// The member names no record (`dangling_index_member`).
    NoRecord,
    /// The record belongs to another user (`foreign_index_member`).
    OtherUser,
    /// The active index names a revoked session (`inactive_index_member`).
    Revoked,
    /// The revoked index names a session that is not revoked
    /// (`unrevoked_index_member`).
    NotRevoked,
    /// The member is not a valid device session id, or not UTF-8 at all
    /// (`invalid_index_member`).
    InvalidMember,
    /// The member's record does not decode (`corrupt_record`): the entry
    /// goes, the record's bytes stay for a human.
    CorruptRecord,
}

impl StrayReason {
    /// Stable machine-readable kind: the kind of the operation error for
    /// the same corruption.
    pub const fn kind(self) -> &'static str {
        match self {
            StrayReason::NoRecord => "dangling_index_member",
            StrayReason::OtherUser => "foreign_index_member",
            StrayReason::Revoked => "inactive_index_member",
            StrayReason::NotRevoked => "unrevoked_index_member",
            StrayReason::InvalidMember => "invalid_index_member",
            StrayReason::CorruptRecord => "corrupt_record",
        }
    }

    /// The reason matching an operation's corruption error, if it is about
    /// an index member.
    pub fn from_error(error: &TransitionError) -> Option<Self> {
        Some(match error {
            TransitionError::DanglingIndexMember { .. } => StrayReason::NoRecord,
            TransitionError::ForeignIndexMember { .. } => StrayReason::OtherUser,
            TransitionError::InactiveIndexMember { .. } => StrayReason::Revoked,
            TransitionError::InvalidIndexMember { .. } => StrayReason::InvalidMember,
            TransitionError::CorruptRecord { .. } => StrayReason::CorruptRecord,
            _ => return None,
        })
    }

    /// Whether a repair removes the entry: always (a member whose record
    /// is missing, corrupt or another user's would stop the user's
    /// revocation from being whole; the record itself is left alone).
    pub const fn is_repairable(self) -> bool {
        true
    }
}

impl fmt::Display for StrayReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StrayReason::NoRecord => "no record",
            StrayReason::OtherUser => "session belongs to another user",
            StrayReason::Revoked => "session is revoked",
            StrayReason::NotRevoked => "session is not revoked",
            StrayReason::InvalidMember => "member is not a valid device session id",
            StrayReason::CorruptRecord => "record is corrupt",
        })
    }
}

/// An index member as text for messages: itself when UTF-8, else its bytes
/// escaped (`b"\xff\xfe"`).
pub fn show_member(member: &[u8]) -> String {
    match std::str::from_utf8(member) {
        Ok(text) => format!("{text:?}"),
        Err(_) => format!("b\"{}\"", member.escape_ascii()),
    }
}

/// One inconsistency found by `check`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    /// A key under one of the store's prefixes that names nothing (not the
    /// canonical encoding of a valid id or user id).
    #[error("{key}: key does not name a valid device session or user id")]
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
    /// Tagged layout: a record under one user's tag that names another
    /// user.
    #[error("{key}: record belongs to user {owner:?}, not to the user of its key")]
    ForeignRecord {
        /// The record key.
        key: String,
        /// The user the record names.
        owner: String,
    },
    /// A valid record missing from (or misscored in) an index it belongs
    /// in: the all-sessions index always, the active index when active,
    /// the revoked index when revoked.
    #[error("{index_key}: missing or misscored member {member:?} (record {record_key})")]
    MissingIndexEntry {
        /// The index that should hold it.
        index_key: String,
        /// The session id.
        member: String,
        /// The record key.
        record_key: String,
    },
    /// An index member that does not belong there.
    #[error("{index_key}: stray member {}: {reason}", show_member(member))]
    StrayIndexEntry {
        /// The index holding it.
        index_key: String,
        /// The member, as stored (possibly not UTF-8).
        member: Member,
        /// Why it does not belong there.
        reason: StrayReason,
    },
    /// A key under one of the store's prefixes holding another type than
    /// the store keeps there (a string where an index belongs, a sorted
    /// set where a record or owner key belongs).
    #[error("{key}: holds the wrong type (expected a {})", expected.as_str())]
    WrongType {
        /// The key.
        key: String,
        /// What belongs there.
        expected: KeyType,
    },
    /// Tagged layout: a record whose owner key (id → user) is missing.
    #[error("{owner_key}: missing owner key of record {record_key}")]
    MissingOwnerKey {
        /// Where the owner key belongs.
        owner_key: String,
        /// The record.
        record_key: String,
    },
    /// Tagged layout: an owner key whose record is absent, at two looks at
    /// least the grace apart (a create writes the owner key a round trip
    /// before the record, so a young one may be a create in flight). It
    /// blocks its id for every other user; a repair removes it.
    #[error("{owner_key}: owner key without its record {record_key}")]
    DanglingOwnerKey {
        /// The owner key.
        owner_key: String,
        /// The record it names (absent).
        record_key: String,
    },
    /// Tagged layout: an owner key holding no valid user id, so naming no
    /// record (left for a human: the store cannot read it).
    #[error("{owner_key}: owner key holds no valid user id")]
    CorruptOwnerKey {
        /// The owner key.
        owner_key: String,
    },
    /// Tagged layout: a record whose owner key names another user (or
    /// holds no valid user id).
    #[error("{owner_key}: owner key names {owner:?}, not the user of record {record_key}")]
    ForeignOwnerKey {
        /// The owner key.
        owner_key: String,
        /// The record.
        record_key: String,
        /// What the owner key holds (lossily shown when not UTF-8).
        owner: String,
    },
}

impl Problem {
    /// Stable machine-readable kind (snake_case).
    pub fn kind(&self) -> &'static str {
        match self {
            Problem::UnparsableKey { .. } => "unparsable_key",
            Problem::CorruptRecord { .. } => "corrupt_record",
            Problem::ForeignRecord { .. } => "foreign_record",
            Problem::MissingIndexEntry { .. } => "missing_index_entry",
            Problem::StrayIndexEntry { .. } => "stray_index_entry",
            Problem::WrongType { .. } => "wrong_type",
            Problem::MissingOwnerKey { .. } => "missing_owner_key",
            Problem::ForeignOwnerKey { .. } => "foreign_owner_key",
            Problem::DanglingOwnerKey { .. } => "dangling_owner_key",
            Problem::CorruptOwnerKey { .. } => "corrupt_owner_key",
        }
    }

    /// The key the problem is about (the index for index entries, the
    /// owner key for owner keys).
    pub fn key(&self) -> &str {
        match self {
            Problem::UnparsableKey { key }
            | Problem::CorruptRecord { key, .. }
            | Problem::ForeignRecord { key, .. }
            | Problem::WrongType { key, .. } => key,
            Problem::MissingIndexEntry { index_key, .. }
            | Problem::StrayIndexEntry { index_key, .. } => index_key,
            Problem::MissingOwnerKey { owner_key, .. }
            | Problem::ForeignOwnerKey { owner_key, .. }
            | Problem::DanglingOwnerKey { owner_key, .. }
            | Problem::CorruptOwnerKey { owner_key } => owner_key,
        }
    }

    /// Whether `check --repair` can fix it: index drift (missing,
    /// misscored and stray entries — members that are not UTF-8, or whose
    /// record is missing, corrupt or another user's, included), missing
    /// owner keys and dangling ones. Corrupt or foreign records, foreign
    /// or corrupt owner keys, unparsable keys and keys of the wrong type
    /// hold data the store cannot read: reported, left for a human.
    pub fn is_repairable(&self) -> bool {
        match self {
            Problem::MissingIndexEntry { .. }
            | Problem::MissingOwnerKey { .. }
            | Problem::DanglingOwnerKey { .. } => true,
            Problem::StrayIndexEntry { reason, .. } => reason.is_repairable(),
            _ => false,
        }
    }

    /// The stray reason, for stray entries.
    pub fn stray_reason(&self) -> Option<StrayReason> {
        match self {
            Problem::StrayIndexEntry { reason, .. } => Some(*reason),
            _ => None,
        }
    }

    /// A total order for reports: key, kind, then the rest of the message.
    fn sort_key(&self) -> (String, &'static str, String) {
        (self.key().to_owned(), self.kind(), self.to_string())
    }
}

/// Why a problem found was not fixed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnrepairedReason {
    /// The check ran without repair.
    ReportOnly,
    /// A repair never writes it: data the store cannot read is left for a
    /// human ([`Problem::is_repairable`]).
    NotRepairable,
    /// An owner key seen without its record and not looked at again yet:
    /// a create in flight looks the same for a moment, so it is a problem
    /// (and removed) only when still so at a second look at least the
    /// grace later ([`crate::op::RecheckOwners`]).
    AwaitingGrace,
    /// A key the repair would write holds another type (reported itself as
    /// [`Problem::WrongType`]).
    WrongType {
        /// The key.
        key: String,
    },
    /// The batch kept changing under the repair: its guards failed on
    /// every re-read (bounded); nothing of it was written. Run the check
    /// again.
    Contention {
        /// Reads of the batch made.
        attempts: u32,
    },
}

impl UnrepairedReason {
    /// Stable machine-readable kind (snake_case).
    pub const fn kind(&self) -> &'static str {
        match self {
            UnrepairedReason::ReportOnly => "report_only",
            UnrepairedReason::NotRepairable => "not_repairable",
            UnrepairedReason::AwaitingGrace => "awaiting_grace",
            UnrepairedReason::WrongType { .. } => "wrong_type",
            UnrepairedReason::Contention { .. } => "contention",
        }
    }
}

impl fmt::Display for UnrepairedReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnrepairedReason::ReportOnly => f.write_str("not repaired: check ran without repair"),
            UnrepairedReason::NotRepairable => f.write_str(
                "not repairable: the store cannot read it, so a repair never changes it; left for a human",
            ),
            UnrepairedReason::AwaitingGrace => f.write_str(
                "not repaired yet: may be a create in flight; looked at again after the grace",
            ),
            UnrepairedReason::WrongType { key } => {
                write!(f, "not repaired: {key} holds the wrong type")
            }
            UnrepairedReason::Contention { attempts } => write!(
                f,
                "not repaired: the batch kept changing ({attempts} reads); run the check again"
            ),
        }
    }
}

/// A problem found and not fixed, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Unrepaired {
    /// The problem.
    pub problem: Problem,
    /// Why it was not fixed.
    pub reason: UnrepairedReason,
}

/// What a check of a store's key space found and did.
///
/// Every problem found is either in `repaired` (fixed by an applied repair
/// plan) or in `unrepaired` (with why): a check without repair reports
/// everything as unrepaired, and a repair reports only what it fixed.
/// A problem seen in a batch that changed under the repair and was read
/// again is reported as found on the last read.
///
/// Serializes (for the CLI) as
/// `{"records":N,"index_entries":N,"batches":N,"problems":[P…],"repaired":N,"unrepaired":[P…]}`
/// where each `P` is `{"kind","key","message"}` (plus `"reason"`, the
/// [`StrayReason::kind`], for stray entries); each problem in `problems`
/// also has `"repaired": bool`, each in `unrepaired` has `"why"` (the
/// [`UnrepairedReason::kind`]) and `"why_message"`. `repaired` is the
/// number of problems fixed (it was a boolean before the check became
/// batched: `0` where that said `false`).
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct CheckReport {
    /// Records read (a key the scan returned twice — Redis may repeat keys
    /// while it rehashes — counts twice).
    pub records: usize,
    /// Index entries read (all-sessions, active and revoked indexes).
    pub index_entries: usize,
    /// Bounded batches examined (record batches and index batches).
    pub batches: u64,
    /// Every problem found, in key order.
    pub problems: Vec<Problem>,
    /// The problems fixed by applied repair plans, in key order.
    pub repaired: Vec<Problem>,
    /// The problems found and not fixed, with why, in key order.
    pub unrepaired: Vec<Unrepaired>,
    /// Owner keys seen without their record, waiting for their second
    /// look ([`CheckReport::owner_recheck`]).
    pub(crate) owner_sightings: Vec<crate::op::OwnerSighting>,
}

impl CheckReport {
    /// Whether no problem was found.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }

    /// How many problems remain: found and not repaired. The CLI exits
    /// non-zero when this is not 0.
    pub fn remaining(&self) -> usize {
        self.unrepaired.len()
    }

    /// Whether nothing remains: no problem found, or every one repaired.
    pub fn is_resolved(&self) -> bool {
        self.unrepaired.is_empty()
    }

    /// Puts the lists in key order and drops repeats (a key the scan
    /// returned twice).
    pub(crate) fn finish(&mut self) {
        fn tidy<T>(items: &mut Vec<T>, problem: impl Fn(&T) -> &Problem) {
            items.sort_by_cached_key(|item| problem(item).sort_key());
            items.dedup_by(|a, b| problem(a) == problem(b));
        }
        tidy(&mut self.problems, |p| p);
        tidy(&mut self.repaired, |p| p);
        tidy(&mut self.unrepaired, |u| &u.problem);
        // Found twice (a key the scan returned twice), fixed the second
        // time: it is repaired.
        let repaired = self.repaired_set();
        self.unrepaired
            .retain(|u| !repaired.contains(&u.problem.sort_key()));
    }

    fn repaired_set(&self) -> std::collections::HashSet<(String, &'static str, String)> {
        self.repaired.iter().map(Problem::sort_key).collect()
    }
}

struct ProblemJson<'a> {
    problem: &'a Problem,
    repaired: Option<bool>,
    why: Option<&'a UnrepairedReason>,
}

impl Serialize for ProblemJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Problem", 6)?;
        s.serialize_field("kind", self.problem.kind())?;
        s.serialize_field("key", self.problem.key())?;
        s.serialize_field("message", &self.problem.to_string())?;
        if let Some(reason) = self.problem.stray_reason() {
            s.serialize_field("reason", reason.kind())?;
        }
        if let Some(repaired) = self.repaired {
            s.serialize_field("repaired", &repaired)?;
        }
        if let Some(why) = self.why {
            s.serialize_field("why", why.kind())?;
            s.serialize_field("why_message", &why.to_string())?;
        }
        s.end()
    }
}

impl Serialize for CheckReport {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let repaired = self.repaired_set();
        let problems: Vec<ProblemJson<'_>> = self
            .problems
            .iter()
            .map(|problem| ProblemJson {
                problem,
                repaired: Some(repaired.contains(&problem.sort_key())),
                why: None,
            })
            .collect();
        let unrepaired: Vec<ProblemJson<'_>> = self
            .unrepaired
            .iter()
            .map(|u| ProblemJson {
                problem: &u.problem,
                repaired: None,
                why: Some(&u.reason),
            })
            .collect();
        let mut s = serializer.serialize_struct("CheckReport", 6)?;
        s.serialize_field("records", &self.records)?;
        s.serialize_field("index_entries", &self.index_entries)?;
        s.serialize_field("batches", &self.batches)?;
        s.serialize_field("problems", &problems)?;
        s.serialize_field("repaired", &self.repaired.len())?;
        s.serialize_field("unrepaired", &unrepaired)?;
        s.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stray_reasons_share_the_operations_kinds() {
        let errors = [
            TransitionError::DanglingIndexMember {
                index_key: "i".into(),
                member: "m".into(),
                record_key: "r".into(),
            },
            TransitionError::ForeignIndexMember {
                index_key: "i".into(),
                member: "m".into(),
                owner: "o".into(),
            },
            TransitionError::InactiveIndexMember {
                index_key: "i".into(),
                member: "m".into(),
            },
            TransitionError::InvalidIndexMember {
                index_key: "i".into(),
                member: "m".into(),
            },
            TransitionError::CorruptRecord {
                key: "r".into(),
                source: DecodeError::NotAnObject,
            },
        ];
        for error in &errors {
            let reason = StrayReason::from_error(error).unwrap();
            assert_eq!(reason.kind(), error.kind());
        }
        assert_eq!(
            StrayReason::from_error(&TransitionError::NotFound { key: "k".into() }),
            None
        );
        assert!(StrayReason::CorruptRecord.is_repairable());
        assert!(StrayReason::InvalidMember.is_repairable());
    }

    #[test]
    fn non_utf8_members_are_shown_escaped() {
        let p = Problem::StrayIndexEntry {
            index_key: "i".into(),
            member: vec![0xff, 0xfe],
            reason: StrayReason::InvalidMember,
        };
        assert_eq!(
            p.to_string(),
            "i: stray member b\"\\xff\\xfe\": member is not a valid device session id"
        );
        assert!(p.is_repairable());
        assert_eq!(show_member(b"dev-1"), "\"dev-1\"");
    }

    #[test]
    fn serializes_what_was_found_fixed_and_left() {
        let stray = Problem::StrayIndexEntry {
            index_key: "i".into(),
            member: b"m".to_vec(),
            reason: StrayReason::NoRecord,
        };
        let corrupt = Problem::CorruptRecord {
            key: "r".into(),
            error: DecodeError::NotAnObject,
        };
        let report = CheckReport {
            records: 2,
            index_entries: 3,
            batches: 1,
            problems: vec![stray.clone(), corrupt.clone()],
            repaired: vec![stray],
            unrepaired: vec![Unrepaired {
                problem: corrupt,
                reason: UnrepairedReason::NotRepairable,
            }],
            ..CheckReport::default()
        };
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["records"], 2);
        assert_eq!(json["index_entries"], 3);
        assert_eq!(json["batches"], 1);
        assert_eq!(json["repaired"], 1);
        assert_eq!(
            json["problems"][0],
            serde_json::json!({
                "kind": "stray_index_entry",
                "key": "i",
                "message": "i: stray member \"m\": no record",
                "reason": "dangling_index_member",
                "repaired": true,
            })
        );
        assert_eq!(json["problems"][1]["repaired"], false);
        assert_eq!(json["unrepaired"][0]["kind"], "corrupt_record");
        assert_eq!(json["unrepaired"][0]["why"], "not_repairable");
        assert!(!report.is_clean());
        assert!(!report.is_resolved());
        assert_eq!(report.remaining(), 1);
    }
}
