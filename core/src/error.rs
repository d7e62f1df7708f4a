//! Validation errors: a value that breaks a domain rule.

use std::fmt;

/// The field a validation or decode error is about. Its [`Field::as_str`]
/// is the stored record's JSON key, so messages name what an operator sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Field {
    /// `device_session_id`
    DeviceSessionId,
    /// `user_id`
    UserId,
    /// `client_public_key_base64`
    ClientPublicKey,
    /// `status`
    Status,
    /// `created_at`
    CreatedAt,
    /// `revoked_at`
    RevokedAt,
    /// `revoke_reason_code`
    RevokeReasonCode,
    /// `revoke_actor_type`
    RevokeActorType,
    /// `revoke_actor_id`
    RevokeActorId,
    /// A key-space prefix (configuration, not a record field).
    KeyPrefix,
}

impl Field {
    /// The record's JSON key for this field.
    pub const fn as_str(self) -> &'static str {
        match self {
            Field::DeviceSessionId => "device_session_id",
            Field::UserId => "user_id",
            Field::ClientPublicKey => "client_public_key_base64",
            Field::Status => "status",
            Field::CreatedAt => "created_at",
            Field::RevokedAt => "revoked_at",
            Field::RevokeReasonCode => "revoke_reason_code",
            Field::RevokeActorType => "revoke_actor_type",
            Field::RevokeActorId => "revoke_actor_id",
            Field::KeyPrefix => "key_prefix",
        }
    }

    /// Every record field, in stored order.
    pub const RECORD_FIELDS: [Field; 9] = [
        Field::DeviceSessionId,
        Field::UserId,
        Field::ClientPublicKey,
        Field::Status,
        Field::CreatedAt,
        Field::RevokedAt,
        Field::RevokeReasonCode,
        Field::RevokeActorType,
        Field::RevokeActorId,
    ];

    /// The record field whose JSON key is exactly `key`.
    pub fn from_record_key(key: &str) -> Option<Field> {
        Field::RECORD_FIELDS.into_iter().find(|f| f.as_str() == key)
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A value that breaks a domain rule. Returned by every validating
/// constructor, so holding a domain value proves it is valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// The field is empty where at least one byte is required.
    #[error("{field} must not be empty")]
    Empty {
        /// The offending field.
        field: Field,
    },
    /// The field is longer than its byte limit.
    #[error("{field} must be at most {max} bytes, got {actual}")]
    TooLong {
        /// The offending field.
        field: Field,
        /// The limit in bytes.
        max: usize,
        /// The actual length in bytes.
        actual: usize,
    },
    /// The field starts or ends with Unicode whitespace.
    #[error("{field} must not have leading or trailing whitespace")]
    SurroundingWhitespace {
        /// The offending field.
        field: Field,
    },
    /// The field contains a Unicode control character (category Cc).
    #[error("{field} must not contain control characters")]
    ControlCharacter {
        /// The offending field.
        field: Field,
    },
    /// A code field does not match `[a-z][a-z0-9_]*`.
    #[error("{field} must match [a-z][a-z0-9_]*")]
    InvalidCode {
        /// The offending field.
        field: Field,
    },
    /// The client public key is not strict, padded standard base64.
    #[error("client_public_key_base64 is not strict padded standard base64")]
    InvalidBase64,
    /// The client public key does not have exactly 32 bytes.
    #[error("client public key must be exactly 32 bytes, got {actual}")]
    InvalidKeyLength {
        /// The decoded length in bytes.
        actual: usize,
    },
    /// The status is neither `active` nor `revoked`.
    #[error("status must be \"active\" or \"revoked\"")]
    InvalidStatus,
    /// The timestamp text is not an RFC 3339 timestamp at all.
    #[error("{field} is not a valid RFC 3339 timestamp")]
    InvalidTimestamp {
        /// The offending field.
        field: Field,
    },
    /// The timestamp is valid RFC 3339 but not in canonical UTC
    /// `RFC3339Nano` form (offset, trailing zeros, …).
    #[error("{field} must be a canonical UTC RFC3339Nano timestamp")]
    NonCanonicalTimestamp {
        /// The offending field.
        field: Field,
    },
    /// The timestamp is outside years 0000..=9999.
    #[error("{field} must be within years 0000..=9999")]
    TimestampOutOfRange {
        /// The offending field.
        field: Field,
    },
    /// The timestamp is Go's zero time `0001-01-01T00:00:00Z`.
    #[error("{field} must not be the zero time")]
    ZeroTimestamp {
        /// The offending field.
        field: Field,
    },
    /// The revocation happened before the session was created.
    #[error("revocation time must not be before session creation time")]
    RevokedBeforeCreated,
    /// An active session carries a revocation.
    #[error("active session must not carry revocation metadata")]
    ActiveWithRevocation,
    /// A revoked session carries no revocation.
    #[error("revoked session must carry revocation metadata")]
    RevokedWithoutRevocation,
    /// A count (page limit, batch size, session limit) outside its range.
    #[error("{what} must be in 1..={max}")]
    OutOfRange {
        /// What was out of range.
        what: &'static str,
        /// The largest value accepted.
        max: usize,
    },
    /// Key-space prefixes are empty, equal, or one is a prefix of another.
    #[error("invalid key prefixes: {reason}")]
    InvalidKeyPrefix {
        /// Which rule the prefixes break.
        reason: &'static str,
    },
}

impl ValidationError {
    /// Stable machine-readable kind (snake_case).
    pub fn kind(&self) -> &'static str {
        match self {
            ValidationError::Empty { field }
            | ValidationError::TooLong { field, .. }
            | ValidationError::SurroundingWhitespace { field }
            | ValidationError::ControlCharacter { field }
            | ValidationError::InvalidCode { field } => match field {
                Field::DeviceSessionId | Field::UserId => "invalid_id",
                Field::RevokeReasonCode => "invalid_reason_code",
                Field::RevokeActorType => "invalid_actor_type",
                Field::RevokeActorId => "invalid_actor_id",
                Field::KeyPrefix => "invalid_key_prefix",
                Field::Status => "invalid_status",
                Field::ClientPublicKey => "invalid_public_key",
                Field::CreatedAt | Field::RevokedAt => "invalid_timestamp",
            },
            ValidationError::InvalidBase64 | ValidationError::InvalidKeyLength { .. } => {
                "invalid_public_key"
            }
            ValidationError::InvalidStatus => "invalid_status",
            ValidationError::InvalidTimestamp { .. } => "invalid_timestamp",
            ValidationError::NonCanonicalTimestamp { .. } => "non_canonical_timestamp",
            ValidationError::TimestampOutOfRange { .. } => "timestamp_out_of_range",
            ValidationError::ZeroTimestamp { .. } => "zero_timestamp",
            ValidationError::RevokedBeforeCreated => "revoked_before_created",
            ValidationError::ActiveWithRevocation | ValidationError::RevokedWithoutRevocation => {
                "status_revocation_mismatch"
            }
            ValidationError::InvalidKeyPrefix { .. } => "invalid_key_prefix",
            ValidationError::OutOfRange { .. } => "out_of_range",
        }
    }

    /// The field the error is about, when it is about one field.
    pub fn field(&self) -> Option<Field> {
        match self {
            ValidationError::Empty { field }
            | ValidationError::TooLong { field, .. }
            | ValidationError::SurroundingWhitespace { field }
            | ValidationError::ControlCharacter { field }
            | ValidationError::InvalidCode { field }
            | ValidationError::InvalidTimestamp { field }
            | ValidationError::NonCanonicalTimestamp { field }
            | ValidationError::TimestampOutOfRange { field }
            | ValidationError::ZeroTimestamp { field } => Some(*field),
            ValidationError::InvalidBase64 | ValidationError::InvalidKeyLength { .. } => {
                Some(Field::ClientPublicKey)
            }
            ValidationError::InvalidStatus => Some(Field::Status),
            ValidationError::RevokedBeforeCreated => Some(Field::RevokedAt),
            ValidationError::ActiveWithRevocation | ValidationError::RevokedWithoutRevocation => {
                Some(Field::Status)
            }
            ValidationError::InvalidKeyPrefix { .. } => Some(Field::KeyPrefix),
            ValidationError::OutOfRange { .. } => None,
        }
    }

    /// The same error, re-attributed to `field` (a timestamp parsed for
    /// `revoked_at` reports `revoked_at`, not `created_at`). Only timestamp
    /// errors are re-attributed; any other error is returned unchanged.
    pub fn for_field(self, field: Field) -> Self {
        match self {
            ValidationError::InvalidTimestamp { .. } => ValidationError::InvalidTimestamp { field },
            ValidationError::NonCanonicalTimestamp { .. } => {
                ValidationError::NonCanonicalTimestamp { field }
            }
            ValidationError::TimestampOutOfRange { .. } => {
                ValidationError::TimestampOutOfRange { field }
            }
            ValidationError::ZeroTimestamp { .. } => ValidationError::ZeroTimestamp { field },
            other => other,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn for_field_re_attributes_timestamp_errors_only() {
        let err = ValidationError::NonCanonicalTimestamp {
            field: Field::CreatedAt,
        }
        .for_field(Field::RevokedAt);
        assert_eq!(err.field(), Some(Field::RevokedAt));
        assert_eq!(err.kind(), "non_canonical_timestamp");
        assert!(err.to_string().starts_with("revoked_at"));
        let other = ValidationError::InvalidStatus.for_field(Field::RevokedAt);
        assert_eq!(other, ValidationError::InvalidStatus);
    }
}
