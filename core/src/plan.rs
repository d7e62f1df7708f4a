//! The I/O vocabulary: what an operation asks a driver to read, check and
//! write.
//!
//! Everything here is data, not commands. A [`Read`] is one query (a
//! backend may pipeline several in one round trip); a [`Plan`] must be
//! applied atomically: every [`Precondition`] checked against the current
//! state and, only if all hold, every [`Write`] made — or nothing. The
//! Redis backends do this in one Lua script; the in-memory model under one
//! lock ([`crate::model`]).
//!
//! Sorted-set members are raw bytes ([`Member`]): an index can hold a
//! member that is not valid UTF-8 (someone else wrote it), and a repair
//! must be able to name it to remove it.

use crate::keys::IndexScore;

/// A sorted-set member as stored: raw bytes (a device session id's UTF-8
/// when written by a store).
pub type Member = Vec<u8>;

/// What a key holds, for the wrong-type rule: a plan or read that uses a
/// key as an index needs a sorted set there (or nothing); any other use
/// needs a string (or nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyType {
    /// A string value (a record or an owner key).
    String,
    /// A sorted set (an index).
    SortedSet,
}

impl KeyType {
    /// Human name, as in messages ("a string", "a sorted set").
    pub const fn as_str(self) -> &'static str {
        match self {
            KeyType::String => "string",
            KeyType::SortedSet => "sorted set",
        }
    }
}

/// One end of a score range.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum ScoreBound {
    /// No bound (`-inf` / `+inf`).
    Unbounded,
    /// Scores equal to the bound are in range.
    Inclusive(IndexScore),
    /// Scores equal to the bound are out of range.
    Exclusive(IndexScore),
}

impl ScoreBound {
    /// Whether `score` is on the inner side of this bound used as a lower
    /// bound.
    pub fn admits_from_below(self, score: f64) -> bool {
        match self {
            ScoreBound::Unbounded => true,
            ScoreBound::Inclusive(b) => score >= b.as_f64(),
            ScoreBound::Exclusive(b) => score > b.as_f64(),
        }
    }

    /// Whether `score` is on the inner side of this bound used as an
    /// upper bound.
    pub fn admits_from_above(self, score: f64) -> bool {
        match self {
            ScoreBound::Unbounded => true,
            ScoreBound::Inclusive(b) => score <= b.as_f64(),
            ScoreBound::Exclusive(b) => score < b.as_f64(),
        }
    }
}

/// A range query on a sorted set, by score, with members in Redis order
/// (score, then member bytes; both reversed when `newest_first`), at most
/// `limit` of them. Answered by [`Reply::Members`] (with scores) when
/// `with_scores`, else by [`Reply::Names`]: scores cost the server far more
/// than the members (Redis formats each double as text), so an operation
/// asks for them only when it uses them.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexRange {
    /// The sorted set.
    pub key: String,
    /// Lowest score admitted.
    pub min: ScoreBound,
    /// Highest score admitted.
    pub max: ScoreBound,
    /// Highest score first (Redis `REV`).
    pub newest_first: bool,
    /// At most this many members (`LIMIT 0 n`); all when `None`.
    pub limit: Option<usize>,
    /// Whether the reply carries each member's score.
    pub with_scores: bool,
}

/// One query. Every read is bounded by what it names: a key, a list of
/// keys, or a range with a limit (only plain `list` reads a whole index).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Read {
    /// The string at `key` → [`Reply::Value`].
    Value {
        /// The key.
        key: String,
    },
    /// The strings at `keys`, in order → [`Reply::Values`]. A key holding
    /// another type reads as absent (like `MGET`).
    Values {
        /// The keys (non-empty).
        keys: Vec<String>,
    },
    /// The number of members of the sorted set at `key` → [`Reply::Len`].
    IndexLen {
        /// The key.
        key: String,
    },
    /// A range of a sorted set → [`Reply::Members`].
    IndexRange(IndexRange),
    /// The members of the sorted set at `key` at ranks `start ..
    /// start + limit` in Redis order (score, then member bytes, ascending),
    /// with scores → [`Reply::Members`] (`ZRANGE key start stop
    /// WITHSCORES`: O(log n + limit) whatever the scores). The maintenance
    /// walks page an index with it, anchored on the last member seen.
    IndexRanks {
        /// The sorted set.
        key: String,
        /// The first rank (0-based).
        start: u64,
        /// At most this many members (at least 1).
        limit: usize,
    },
    /// The scores of `members` in the sorted set at `key`, in order →
    /// [`Reply::Scores`].
    IndexScores {
        /// The key.
        key: String,
        /// The members asked about.
        members: Vec<Member>,
    },
    /// One page of the keys matching `pattern` (a glob; `*` only at the
    /// end) → [`Reply::Keys`]. The cursor is the backend's own (several
    /// servers in a cluster); start with [`ScanCursor::start`].
    Scan {
        /// Where to continue.
        cursor: ScanCursor,
        /// Keys under this prefix.
        prefix: String,
        /// Only keys of this type.
        key_type: KeyType,
        /// A hint of how many keys to return.
        count: usize,
    },
}

impl Read {
    /// The key whose type this read requires, and that type (a `WRONGTYPE`
    /// answer is corruption at that key). `Values` and `Scan` never fail
    /// on type.
    pub fn typed_key(&self) -> Option<(&str, KeyType)> {
        match self {
            Read::Value { key } => Some((key, KeyType::String)),
            Read::IndexLen { key }
            | Read::IndexScores { key, .. }
            | Read::IndexRanks { key, .. } => Some((key, KeyType::SortedSet)),
            Read::IndexRange(range) => Some((&range.key, KeyType::SortedSet)),
            Read::Values { .. } | Read::Scan { .. } => None,
        }
    }
}

/// An opaque position in a key-space scan (backend-defined text; empty at
/// the start).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScanCursor(String);

impl ScanCursor {
    /// The start of a scan.
    pub fn start() -> Self {
        Self(String::new())
    }

    /// A backend's cursor text.
    pub fn from_backend(text: String) -> Self {
        Self(text)
    }

    /// The backend's cursor text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The answer to one [`Read`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Reply {
    /// For [`Read::Value`].
    Value(Option<Vec<u8>>),
    /// For [`Read::Values`], in the order asked.
    Values(Vec<Option<Vec<u8>>>),
    /// For [`Read::IndexLen`].
    Len(u64),
    /// For [`Read::IndexRange`] with scores and [`Read::IndexRanks`]:
    /// members with scores, in the order asked.
    Members(Vec<(Member, f64)>),
    /// For [`Read::IndexRange`] without scores: members, in the order
    /// asked.
    Names(Vec<Member>),
    /// For [`Read::IndexScores`], in the order asked (`None`: not a member).
    Scores(Vec<Option<f64>>),
    /// For [`Read::Scan`]: keys (possibly repeated across pages) and the
    /// cursor to continue from, `None` when the scan is complete.
    Keys(Vec<String>, Option<ScanCursor>),
    /// The key named by [`Read::typed_key`] holds another type.
    WrongType,
}

/// A fact about the stored state the plan was computed from, which must
/// still hold when the plan is applied.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Precondition {
    /// `key` holds no value.
    Absent {
        /// The key.
        key: String,
    },
    /// `key` holds exactly `value` (the bytes that were read).
    ValueEquals {
        /// The key.
        key: String,
        /// The exact bytes expected.
        value: Vec<u8>,
    },
    /// `key` holds nothing or exactly `value` (an owner key: absent, or
    /// already this user's).
    AbsentOrEquals {
        /// The key.
        key: String,
        /// The bytes accepted.
        value: Vec<u8>,
    },
    /// The members of the sorted set at `key` whose score is at most
    /// `max_score` (every member when `None`) are exactly `members`, as a
    /// set.
    IndexRangeEquals {
        /// The sorted set's key.
        key: String,
        /// Inclusive upper score bound, or no bound.
        max_score: Option<IndexScore>,
        /// The members expected, in any order, without duplicates.
        members: Vec<Member>,
    },
    /// Every one of `members` is in the sorted set at `key`.
    IndexContains {
        /// The sorted set's key.
        key: String,
        /// The members (non-empty, without duplicates).
        members: Vec<Member>,
    },
    /// The sorted set at `key` has at most `max` members scored at most
    /// `max_score` (all members when `None`).
    IndexCountAtMost {
        /// The sorted set's key.
        key: String,
        /// Inclusive upper score bound, or no bound.
        max_score: Option<IndexScore>,
        /// The largest count that holds.
        max: u64,
    },
}

impl Precondition {
    /// The key the precondition reads.
    pub fn key(&self) -> &str {
        match self {
            Precondition::Absent { key }
            | Precondition::ValueEquals { key, .. }
            | Precondition::AbsentOrEquals { key, .. }
            | Precondition::IndexRangeEquals { key, .. }
            | Precondition::IndexContains { key, .. }
            | Precondition::IndexCountAtMost { key, .. } => key,
        }
    }

    /// The type the precondition needs at its key.
    pub fn key_type(&self) -> KeyType {
        match self {
            Precondition::Absent { .. }
            | Precondition::ValueEquals { .. }
            | Precondition::AbsentOrEquals { .. } => KeyType::String,
            Precondition::IndexRangeEquals { .. }
            | Precondition::IndexContains { .. }
            | Precondition::IndexCountAtMost { .. } => KeyType::SortedSet,
        }
    }
}

/// One write of a plan.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Write {
    /// Store `value` at `key` (string value, replacing any).
    Set {
        /// The key.
        key: String,
        /// The bytes to store.
        value: Vec<u8>,
    },
    /// Delete the string at `key` (no-op when absent).
    Delete {
        /// The key.
        key: String,
    },
    /// Add `member` to the sorted set at `key` with `score` (or update its
    /// score).
    IndexAdd {
        /// The sorted set's key.
        key: String,
        /// The member's score.
        score: IndexScore,
        /// The member (a raw device session id).
        member: String,
    },
    /// Remove `member` from the sorted set at `key` (no-op when absent).
    IndexRemove {
        /// The sorted set's key.
        key: String,
        /// The member, as stored.
        member: Member,
    },
}

impl Write {
    /// The key the write touches.
    pub fn key(&self) -> &str {
        match self {
            Write::Set { key, .. }
            | Write::Delete { key }
            | Write::IndexAdd { key, .. }
            | Write::IndexRemove { key, .. } => key,
        }
    }

    /// The type the write leaves at its key.
    pub fn key_type(&self) -> KeyType {
        match self {
            Write::Set { .. } | Write::Delete { .. } => KeyType::String,
            Write::IndexAdd { .. } | Write::IndexRemove { .. } => KeyType::SortedSet,
        }
    }

    /// The type the key must hold before the write, if any: an index write
    /// needs a sorted set (or nothing); a set or delete takes any key.
    pub fn checked_type(&self) -> Option<KeyType> {
        match self {
            Write::Set { .. } | Write::Delete { .. } => None,
            Write::IndexAdd { .. } | Write::IndexRemove { .. } => Some(KeyType::SortedSet),
        }
    }
}

/// What a violated precondition means for the operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OnViolation {
    /// The operation's own target already exists: report a conflict.
    Conflict,
    /// The state changed since it was read: read again and re-plan
    /// (bounded, jittered retries).
    Retry,
    /// The user's active-session limit is reached: report it.
    SessionLimit,
}

/// Preconditions plus writes, applied all-or-nothing.
///
/// Where a server cannot undo writes refused part-way (a command its ACL
/// denies, on a server that cannot check them up front), a backend makes
/// the writes in [`Plan::write_phases`] order, so every prefix fails safe.
#[derive(Debug, Clone, PartialEq)]
#[must_use = "a plan does nothing until a driver applies it"]
pub struct Plan {
    preconditions: Vec<(Precondition, OnViolation)>,
    writes: Vec<Write>,
    best_effort: bool,
}

impl Plan {
    /// A plan of `preconditions` (each meaning `on_violation` when it
    /// fails) and `writes`.
    pub fn new(
        preconditions: Vec<Precondition>,
        writes: Vec<Write>,
        on_violation: OnViolation,
    ) -> Self {
        Self {
            preconditions: preconditions
                .into_iter()
                .map(|p| (p, on_violation))
                .collect(),
            writes,
            best_effort: false,
        }
    }

    /// The plan that checks and writes nothing.
    pub fn empty() -> Self {
        Self {
            preconditions: Vec::new(),
            writes: Vec::new(),
            best_effort: false,
        }
    }

    /// The same plan, marked best-effort: writes the operation can do
    /// without (a read's lazy removal of expired sessions). When the store
    /// cannot write — a read-only replica, an ACL user without the write,
    /// a server out of memory — the driver answers [`crate::op::Input::Skipped`]
    /// instead of failing, and the operation answers as if the plan had
    /// been applied.
    pub fn best_effort(mut self) -> Self {
        self.best_effort = true;
        self
    }

    /// Whether the plan is best-effort ([`Plan::best_effort`]).
    pub fn is_best_effort(&self) -> bool {
        self.best_effort
    }

    /// Adds a precondition with its own meaning.
    pub fn require(mut self, precondition: Precondition, on_violation: OnViolation) -> Self {
        self.preconditions.push((precondition, on_violation));
        self
    }

    /// Adds writes.
    pub fn with_writes(mut self, writes: impl IntoIterator<Item = Write>) -> Self {
        self.writes.extend(writes);
        self
    }

    /// The checks, in order.
    pub fn preconditions(&self) -> impl ExactSizeIterator<Item = &Precondition> + '_ {
        self.preconditions.iter().map(|(p, _)| p)
    }

    /// The `index`-th precondition.
    pub fn precondition(&self, index: usize) -> Option<&Precondition> {
        self.preconditions.get(index).map(|(p, _)| p)
    }

    /// What a violation of the `index`-th precondition means.
    pub fn on_violation(&self, index: usize) -> OnViolation {
        self.preconditions
            .get(index)
            .map_or(OnViolation::Retry, |(_, v)| *v)
    }

    /// The writes, in order.
    pub fn writes(&self) -> &[Write] {
        &self.writes
    }

    /// Whether there is nothing to check or write (the driver may skip the
    /// round trip).
    pub fn is_empty(&self) -> bool {
        self.preconditions.is_empty() && self.writes.is_empty()
    }

    /// Each write's [`WritePhase`], in write order: the order in which a
    /// backend that cannot apply the plan atomically makes the writes, phase
    /// by phase, so that every prefix fails safe.
    ///
    /// The rule reads only the plan's vocabulary: an index add of a member
    /// the plan does not remove from another index covers a record about to
    /// be written ([`WritePhase::Cover`]); sets write records
    /// ([`WritePhase::Record`]); removals, and adds of a member the plan
    /// moves from another index (its new state's index, true only once the
    /// record says so), follow the record ([`WritePhase::Follow`]); deletes
    /// come last ([`WritePhase::Delete`]). So a create's index entries
    /// exist before its record (a refused record leaves a dangling entry,
    /// never a record outside its indexes), a revocation's record is
    /// written before it leaves the active index and enters the revoked
    /// one, and an expired record is deleted only after the entries naming
    /// it are gone. A write never goes to an earlier phase than an earlier
    /// write to the same string key or the same index member (its phase is
    /// raised instead), so sending the writes phase by phase keeps the
    /// order of every pair that does not commute.
    pub fn write_phases(&self) -> Vec<WritePhase> {
        // member -> (the first index it is removed from, removed from
        // another one too)
        let mut removed: std::collections::HashMap<&[u8], (&str, bool)> =
            std::collections::HashMap::new();
        for write in &self.writes {
            if let Write::IndexRemove { key, member } = write {
                let entry = removed.entry(member.as_slice()).or_insert((key, false));
                if entry.0 != key {
                    entry.1 = true;
                }
            }
        }
        let moved = |key: &str, member: &str| {
            removed
                .get(member.as_bytes())
                .is_some_and(|(first, several)| *several || *first != key)
        };
        // The latest phase per key and member (index writes of different
        // members commute) or per key (string writes).
        let mut last: std::collections::HashMap<(&str, &[u8]), WritePhase> =
            std::collections::HashMap::new();
        self.writes
            .iter()
            .map(|write| {
                let phase = match write {
                    Write::IndexAdd { key, member, .. } if !moved(key, member) => WritePhase::Cover,
                    Write::Set { .. } => WritePhase::Record,
                    Write::IndexAdd { .. } | Write::IndexRemove { .. } => WritePhase::Follow,
                    Write::Delete { .. } => WritePhase::Delete,
                };
                let member: &[u8] = match write {
                    Write::IndexAdd { member, .. } => member.as_bytes(),
                    Write::IndexRemove { member, .. } => member,
                    Write::Set { .. } | Write::Delete { .. } => &[],
                };
                let at = last.entry((write.key(), member)).or_insert(phase);
                *at = (*at).max(phase);
                *at
            })
            .collect()
    }

    /// What to keep of the plan to read its answer (see [`Outline`]).
    pub fn outline(&self) -> Outline {
        Outline {
            preconditions: self
                .preconditions
                .iter()
                .map(|(p, v)| (p.key().to_owned(), *v))
                .collect(),
            indexes: {
                // A plan names a handful of index keys, each many times.
                let mut indexes: Vec<String> = Vec::new();
                let uses = self
                    .preconditions()
                    .map(|p| (p.key(), p.key_type()))
                    .chain(self.writes.iter().map(|w| (w.key(), w.key_type())));
                for (key, key_type) in uses {
                    if key_type == KeyType::SortedSet && !indexes.iter().any(|k| k == key) {
                        indexes.push(key.to_owned());
                    }
                }
                indexes
            },
        }
    }

    /// The plan's keys with the type each must hold and whether the plan
    /// uses it in both roles — the one statement of the wrong-type rule
    /// (the model applies it, the Lua script mirrors it) — and, for each
    /// precondition and write, which key it uses; one pass, linear in the
    /// plan's size.
    pub fn key_table(&self) -> KeyTable<'_> {
        let uses = self
            .preconditions()
            .map(|p| (p.key(), Some(p.key_type()), role(p.key_type())))
            .chain(
                self.writes
                    .iter()
                    .map(|w| (w.key(), w.checked_type(), role(w.key_type()))),
            );
        let mut table = KeyTable {
            keys: Vec::new(),
            roles: Vec::new(),
            uses: Vec::with_capacity(self.preconditions.len() + self.writes.len()),
        };
        // Most plans name a handful of keys: a scan beats hashing them.
        // Batches name hundreds: then a map.
        let mut position: Option<std::collections::HashMap<&str, usize>> = None;
        for (key, needs, used_as) in uses {
            let found = match &position {
                Some(map) => map.get(key).copied(),
                None => table.keys.iter().rposition(|(k, _)| *k == key),
            };
            let at = match found {
                Some(at) => {
                    if let Some(entry) = table.keys.get_mut(at) {
                        entry.1 = stricter(entry.1, needs);
                    }
                    if let Some(roles) = table.roles.get_mut(at) {
                        *roles |= used_as;
                    }
                    at
                }
                None => {
                    let at = table.keys.len();
                    table.keys.push((key, needs));
                    table.roles.push(used_as);
                    if let Some(map) = &mut position {
                        map.insert(key, at);
                    } else if table.keys.len() > SCAN_KEYS {
                        position = Some(
                            table
                                .keys
                                .iter()
                                .enumerate()
                                .map(|(i, (k, _))| (*k, i))
                                .collect(),
                        );
                    }
                    at
                }
            };
            table.uses.push(at);
        }
        table
    }

    /// The type the plan uses `key` as (a sorted set when any precondition
    /// or write uses it as an index, else a string).
    pub fn key_type(&self, key: &str) -> KeyType {
        let as_index = self
            .preconditions()
            .filter(|p| p.key() == key)
            .map(Precondition::key_type)
            .chain(
                self.writes
                    .iter()
                    .filter(|w| w.key() == key)
                    .map(Write::key_type),
            )
            .any(|t| t == KeyType::SortedSet);
        if as_index {
            KeyType::SortedSet
        } else {
            KeyType::String
        }
    }
}

/// Where a write goes in the fail-safe order of a plan's writes
/// ([`Plan::write_phases`]), earliest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum WritePhase {
    /// Index entries a record about to be written needs.
    Cover,
    /// Records written.
    Record,
    /// Index entries that follow a record's change: removals, and moves
    /// into another index.
    Follow,
    /// Records deleted.
    Delete,
}

/// What an operation keeps of a plan it handed to the driver, to read the
/// answer ([`Applied`]): each precondition's key and meaning, and the keys
/// the plan uses as indexes. Unlike the plan it holds no values, so keeping
/// it costs a few key names, not a copy of every record written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outline {
    preconditions: Vec<(String, OnViolation)>,
    indexes: Vec<String>,
}

impl Outline {
    /// The key of the `index`-th precondition.
    pub fn precondition_key(&self, index: usize) -> Option<&str> {
        self.preconditions.get(index).map(|(k, _)| k.as_str())
    }

    /// What a violation of the `index`-th precondition means.
    pub fn on_violation(&self, index: usize) -> OnViolation {
        self.preconditions
            .get(index)
            .map_or(OnViolation::Retry, |(_, v)| *v)
    }

    /// The type the plan used `key` as (see [`Plan::key_type`]).
    pub fn key_type(&self, key: &str) -> KeyType {
        if self.indexes.iter().any(|k| k == key) {
            KeyType::SortedSet
        } else {
            KeyType::String
        }
    }
}

/// Up to this many keys, [`Plan::key_table`] finds a key by scanning.
const SCAN_KEYS: usize = 16;

/// A key's use as a string or as an index, as bits: a key whose uses set
/// both is used in both roles.
const AS_STRING: u8 = 1;
const AS_INDEX: u8 = 2;

fn role(key_type: KeyType) -> u8 {
    match key_type {
        KeyType::SortedSet => AS_INDEX,
        _ => AS_STRING,
    }
}

/// Of two needs at one key, the one to check: a sorted set over a string
/// (an index use decides), any check over none.
fn stricter(a: Option<KeyType>, b: Option<KeyType>) -> Option<KeyType> {
    match (a, b) {
        (Some(KeyType::SortedSet), _) | (_, Some(KeyType::SortedSet)) => Some(KeyType::SortedSet),
        (Some(t), _) | (_, Some(t)) => Some(t),
        (None, None) => None,
    }
}

/// A plan's keys, each once, first use first, with the type that must be
/// there when the key exists — the wrong-type rule. A key any precondition
/// or write uses as an index must be a sorted set; a key a precondition
/// reads as a value (or requires absent) must be a string; a key the plan
/// only sets or deletes is not checked (`None`): setting replaces whatever
/// a key held and deleting removes it, so nothing there can fail half-way
/// through a plan. A plan that finds a key of the wrong type writes
/// nothing. A plan that uses one key both as a string and as an index
/// ([`KeyTable::is_mixed`]) can never be applied whole, since no key holds
/// both: it is refused at that key as a wrong type, whatever the key
/// holds, before anything is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTable<'a> {
    keys: Vec<(&'a str, Option<KeyType>)>,
    /// Per key, the roles its uses give it (`AS_STRING` | `AS_INDEX`).
    roles: Vec<u8>,
    uses: Vec<usize>,
}

impl<'a> KeyTable<'a> {
    /// The keys with their checked types, first use first.
    pub fn keys(&self) -> &[(&'a str, Option<KeyType>)] {
        &self.keys
    }

    /// Whether the plan uses the key at `position` in [`KeyTable::keys`]
    /// both as a string and as an index (refused: see [`KeyTable`]).
    pub fn is_mixed(&self, position: usize) -> bool {
        self.roles.get(position) == Some(&(AS_STRING | AS_INDEX))
    }

    /// The position in [`KeyTable::keys`] of the key of the plan's `i`-th
    /// use: preconditions first, then writes, in plan order.
    pub fn position_of_use(&self, i: usize) -> Option<usize> {
        self.uses.get(i).copied()
    }
}

/// What applying a plan did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Applied {
    /// Every precondition held; every write was made.
    Done,
    /// Precondition `index` did not hold; nothing was written.
    Violated {
        /// Its position in the plan.
        index: usize,
    },
    /// `key` holds another type than the plan needs there; nothing was
    /// written.
    WrongType {
        /// The key.
        key: String,
    },
}
