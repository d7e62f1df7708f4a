//! Why an operation cannot proceed, and the one `kind()` vocabulary.

use crate::codec::DecodeError;
use crate::error::ValidationError;
use crate::op::RevokeAllReport;
use crate::plan::KeyType;

/// A stable, machine-readable error kind (snake_case), shared by the
/// driver, the CLI and the WASM build: every error type of the core
/// implements it, and the adapters read kinds only through it.
pub trait Kind {
    /// The kind, e.g. `not_found`, `unknown_field`, `invalid_cursor`.
    fn kind(&self) -> &'static str;
}

impl Kind for ValidationError {
    fn kind(&self) -> &'static str {
        ValidationError::kind(self)
    }
}

impl Kind for DecodeError {
    fn kind(&self) -> &'static str {
        DecodeError::kind(self)
    }
}

/// Why an operation cannot proceed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TransitionError {
    /// The input breaks a domain rule (e.g. revoking before creation).
    #[error("invalid input: {0}")]
    Invalid(#[from] ValidationError),
    /// No session exists at `key` (or it is past its retention, or it
    /// belongs to another user than the one asked about).
    #[error("session not found at {key}")]
    NotFound {
        /// The record (or owner) key.
        key: String,
    },
    /// `create`: a session with that id already exists (at `key`).
    #[error("session already exists at {key}")]
    Conflict {
        /// The record or owner key.
        key: String,
    },
    /// `create`: the user already holds the maximum number of active
    /// sessions and the policy is to refuse; nothing was written.
    #[error("user {user:?} already holds {max} active sessions (the limit)")]
    SessionLimit {
        /// The user.
        user: String,
        /// The configured limit.
        max: u32,
    },
    /// A page cursor that this store did not issue for this user and
    /// status filter (or that is malformed).
    #[error("invalid page cursor: {reason}")]
    InvalidCursor {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The record at `key` does not decode (or belongs to another id).
    #[error("corrupt session record at {key}: {source}")]
    CorruptRecord {
        /// The record key.
        key: String,
        /// Why it was rejected.
        source: DecodeError,
    },
    /// The record at `key` (tagged layout: under a user's tag) belongs to
    /// another user.
    #[error("session record at {key} belongs to user {owner:?}")]
    ForeignRecord {
        /// The record key.
        key: String,
        /// The user the record names.
        owner: String,
    },
    /// The owner key at `key` does not hold a valid user id.
    #[error("owner key {key} does not hold a valid user id")]
    CorruptOwner {
        /// The owner key.
        key: String,
    },
    /// `key` holds a value of another type than the store keeps there.
    #[error("corrupt data: {key} holds a value of the wrong type (expected a {})", expected.as_str())]
    WrongType {
        /// The key.
        key: String,
        /// What belongs there.
        expected: KeyType,
    },
    /// An index member is not a valid device session id.
    #[error("index {index_key} holds invalid member {member:?}")]
    InvalidIndexMember {
        /// The sorted set's key.
        index_key: String,
        /// The member as stored (lossily shown when not UTF-8).
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
    /// Concurrent changes kept invalidating the reads until the attempts
    /// ran out; nothing of the last attempt was written.
    #[error(
        "gave up after {attempts} attempts: concurrent changes kept invalidating the reads (last at {key})"
    )]
    ContentionExhausted {
        /// Attempts made.
        attempts: u32,
        /// The key whose change invalidated the last attempt.
        key: String,
    },
    /// `revoke all` revoked every session it could, but left some of the
    /// user's index members or keys unrevoked (undecodable, another user's,
    /// missing, of the wrong type): the report names each, with why.
    #[error("{}", .0.summary())]
    PartiallyRevoked(Box<RevokeAllReport>),
}

impl Kind for TransitionError {
    fn kind(&self) -> &'static str {
        TransitionError::kind(self)
    }
}

impl TransitionError {
    /// Stable machine-readable kind (snake_case). Validation errors report
    /// their own kind.
    pub fn kind(&self) -> &'static str {
        match self {
            TransitionError::Invalid(inner) => inner.kind(),
            TransitionError::NotFound { .. } => "not_found",
            TransitionError::Conflict { .. } => "conflict",
            TransitionError::SessionLimit { .. } => "session_limit",
            TransitionError::InvalidCursor { .. } => "invalid_cursor",
            TransitionError::CorruptRecord { .. } => "corrupt_record",
            TransitionError::ForeignRecord { .. } => "foreign_record",
            TransitionError::CorruptOwner { .. } => "corrupt_owner",
            TransitionError::WrongType { .. } => "wrong_type",
            TransitionError::InvalidIndexMember { .. } => "invalid_index_member",
            TransitionError::DanglingIndexMember { .. } => "dangling_index_member",
            TransitionError::ForeignIndexMember { .. } => "foreign_index_member",
            TransitionError::InactiveIndexMember { .. } => "inactive_index_member",
            TransitionError::ContentionExhausted { .. } => "contention_exhausted",
            TransitionError::PartiallyRevoked(_) => "partially_revoked",
        }
    }

    /// Whether the error reports corrupt stored data (as opposed to bad
    /// input, a missing session, a refusal or contention).
    pub fn is_corruption(&self) -> bool {
        matches!(
            self,
            TransitionError::CorruptRecord { .. }
                | TransitionError::ForeignRecord { .. }
                | TransitionError::CorruptOwner { .. }
                | TransitionError::WrongType { .. }
                | TransitionError::InvalidIndexMember { .. }
                | TransitionError::DanglingIndexMember { .. }
                | TransitionError::ForeignIndexMember { .. }
                | TransitionError::InactiveIndexMember { .. }
        )
    }

    /// The key of the offending record or index, when there is one.
    pub fn key(&self) -> Option<&str> {
        match self {
            TransitionError::Invalid(_)
            | TransitionError::SessionLimit { .. }
            | TransitionError::InvalidCursor { .. }
            | TransitionError::PartiallyRevoked(_) => None,
            TransitionError::NotFound { key }
            | TransitionError::Conflict { key }
            | TransitionError::CorruptRecord { key, .. }
            | TransitionError::ForeignRecord { key, .. }
            | TransitionError::CorruptOwner { key }
            | TransitionError::WrongType { key, .. }
            | TransitionError::ContentionExhausted { key, .. } => Some(key),
            TransitionError::InvalidIndexMember { index_key, .. }
            | TransitionError::DanglingIndexMember { index_key, .. }
            | TransitionError::ForeignIndexMember { index_key, .. }
            | TransitionError::InactiveIndexMember { index_key, .. } => Some(index_key),
        }
    }
}
