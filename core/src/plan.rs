//! The plan vocabulary: what a transition asks a driver to check and write.
//!
//! A [`Plan`] is data, not commands. A driver must apply it atomically:
//! check every [`Precondition`] against the current state and, only if all
//! hold, make every [`Write`] — or nothing. The Redis driver does this in
//! one Lua script; the in-memory store under one lock ([`crate::model`]).

use crate::keys::IndexScore;

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
    /// The members of the sorted set at `key` whose score is at most
    /// `max_score` (every member when `None`) are exactly `members`, as a
    /// set.
    IndexRangeEquals {
        /// The sorted set's key.
        key: String,
        /// Inclusive upper score bound, or no bound.
        max_score: Option<IndexScore>,
        /// The members expected, in any order, without duplicates.
        members: Vec<String>,
    },
}

impl Precondition {
    /// The key the precondition reads.
    pub fn key(&self) -> &str {
        match self {
            Precondition::Absent { key }
            | Precondition::ValueEquals { key, .. }
            | Precondition::IndexRangeEquals { key, .. } => key,
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
        /// The member.
        member: String,
    },
}

impl Write {
    /// The key the write touches.
    pub fn key(&self) -> &str {
        match self {
            Write::Set { key, .. }
            | Write::IndexAdd { key, .. }
            | Write::IndexRemove { key, .. } => key,
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
}

/// Preconditions plus writes, applied all-or-nothing.
#[derive(Debug, Clone, PartialEq)]
#[must_use = "a plan does nothing until a driver applies it"]
pub struct Plan {
    preconditions: Vec<Precondition>,
    writes: Vec<Write>,
    on_violation: OnViolation,
}

impl Plan {
    /// A plan of `preconditions` and `writes`.
    pub fn new(
        preconditions: Vec<Precondition>,
        writes: Vec<Write>,
        on_violation: OnViolation,
    ) -> Self {
        Self {
            preconditions,
            writes,
            on_violation,
        }
    }

    /// The plan that checks and writes nothing.
    pub fn empty() -> Self {
        Self::new(Vec::new(), Vec::new(), OnViolation::Retry)
    }

    /// The checks, in order.
    pub fn preconditions(&self) -> &[Precondition] {
        &self.preconditions
    }

    /// The writes, in order.
    pub fn writes(&self) -> &[Write] {
        &self.writes
    }

    /// What a violated precondition means.
    pub fn on_violation(&self) -> OnViolation {
        self.on_violation
    }

    /// Whether there is nothing to check or write (the driver may skip the
    /// round trip).
    pub fn is_empty(&self) -> bool {
        self.preconditions.is_empty() && self.writes.is_empty()
    }

    /// Every key the plan reads or writes, first use first, without
    /// duplicates (for declaring keys to the server, e.g. Lua `KEYS`).
    pub fn keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = Vec::new();
        let all = self
            .preconditions
            .iter()
            .map(Precondition::key)
            .chain(self.writes.iter().map(Write::key));
        for key in all {
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        keys
    }
}

/// A plan together with the outcome the operation reports once the plan is
/// applied.
#[derive(Debug, Clone, PartialEq)]
#[must_use = "a plan does nothing until a driver applies it"]
pub struct Planned<T> {
    /// What to check and write.
    pub plan: Plan,
    /// What the operation returns after a successful apply.
    pub outcome: T,
}
