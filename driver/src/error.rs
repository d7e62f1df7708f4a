//! The driver's one error type: opaque, with a stable [`ErrorKind`].

use std::fmt;
use std::time::Duration;

use authsession_core::op::RevokeAllReport;
use authsession_core::TransitionError;

/// What went wrong, as a stable machine-readable category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No session exists with that id.
    NotFound,
    /// `create`: a session with that id already exists.
    Conflict,
    /// The input breaks a domain rule (e.g. revoking before creation);
    /// nothing was written.
    InvalidInput,
    /// Stored data is corrupt (undecodable record, index naming a missing,
    /// foreign or revoked session, wrong key type); [`Error::key`] names it.
    Corrupt,
    /// A round trip (or the whole operation) exceeded its deadline. The
    /// outcome of a timed-out mutation is unknown: it was applied entirely
    /// or not at all.
    Timeout,
    /// The server could not be reached or answered with an error.
    Backend,
    /// Concurrent changes kept invalidating the operation's reads until the
    /// retry policy gave up; nothing was written.
    ContentionExhausted,
    /// The store configuration is invalid; the message names the field.
    Config,
    /// `create`: the user holds the maximum number of active sessions and
    /// the policy refuses new ones; nothing was written.
    SessionLimit,
    /// A page cursor this store did not issue for that user and status
    /// filter, or a malformed one.
    InvalidCursor,
    /// The mutation was applied on the primary but `WAIT` did not confirm
    /// the configured number of replicas in time: it may or may not survive
    /// a failover. Reading it back tells.
    WriteUnconfirmed,
    /// The server refused a command or key to this user (Redis ACL
    /// `NOPERM`): the store's ACL user lacks a permission.
    PermissionDenied,
    /// `revoke all` revoked every session it could but not everything:
    /// some members or keys are undecodable, another user's, missing or
    /// of the wrong type. [`Error::revoke_all_report`] names each (and
    /// counts what was revoked); `check --repair` makes the user fully
    /// revocable again. Not retryable: the data must change first.
    PartiallyRevoked,
}

impl ErrorKind {
    /// The stable snake_case name (`not_found`, `conflict`, …).
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::Corrupt => "corrupt",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Backend => "backend",
            ErrorKind::ContentionExhausted => "contention_exhausted",
            ErrorKind::Config => "config",
            ErrorKind::SessionLimit => "session_limit",
            ErrorKind::InvalidCursor => "invalid_cursor",
            ErrorKind::WriteUnconfirmed => "write_unconfirmed",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::PartiallyRevoked => "partially_revoked",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error of a [`SessionStore`](crate::SessionStore) operation or of the
/// store configuration.
///
/// Opaque on purpose: match on [`Error::kind`], read the offending key with
/// [`Error::key`]; the underlying `redis::RedisError` or core error is the
/// [`std::error::Error::source`].
pub struct Error(Box<Repr>);

#[derive(Debug, thiserror::Error)]
enum Repr {
    #[error(transparent)]
    Transition(TransitionError),
    #[error("{op} timed out after {after:?}")]
    Timeout { op: &'static str, after: Duration },
    #[error("operation deadline ({timeout:?}) passed before {op}")]
    DeadlinePassed { op: &'static str, timeout: Duration },
    #[error("redis authentication failed: {source}")]
    Auth {
        #[source]
        source: redis::RedisError,
    },
    #[error("redis {op} failed: {source}")]
    Redis {
        op: &'static str,
        #[source]
        source: redis::RedisError,
    },
    #[error("the write was applied but WAIT confirmed {acked} of {wanted} replicas in time: it may be lost on failover")]
    Unreplicated { wanted: u32, acked: u64 },
    #[error("this driver cannot encode {what}")]
    Unsupported { what: String },
    #[error("a plan must stay in one hash slot, but {first} is in slot {first_slot} and {other} in slot {other_slot}: only the tagged layout keeps each user's keys in one slot of a cluster")]
    CrossSlot {
        first: String,
        first_slot: u16,
        other: String,
        other_slot: u16,
    },
    #[error("redis refused {op}: {source}")]
    Permission {
        op: &'static str,
        #[source]
        source: redis::RedisError,
    },
    #[error("invalid config field `{field}`: {reason}")]
    Config { field: &'static str, reason: String },
    #[error("revoke all gave up after {failures} failed attempt(s) in a row: {}; running it again finishes the rest ({source})", report.summary())]
    RevokeAllGaveUp {
        report: Box<RevokeAllReport>,
        failures: u32,
        source: Error,
    },
}

impl Error {
    /// The error's category.
    pub fn kind(&self) -> ErrorKind {
        match &*self.0 {
            Repr::Transition(e) => match e {
                TransitionError::Invalid(_) => ErrorKind::InvalidInput,
                TransitionError::NotFound { .. } => ErrorKind::NotFound,
                TransitionError::Conflict { .. } => ErrorKind::Conflict,
                TransitionError::SessionLimit { .. } => ErrorKind::SessionLimit,
                TransitionError::InvalidCursor { .. } => ErrorKind::InvalidCursor,
                TransitionError::ContentionExhausted { .. } => ErrorKind::ContentionExhausted,
                TransitionError::PartiallyRevoked(_) => ErrorKind::PartiallyRevoked,
                _ => ErrorKind::Corrupt,
            },
            Repr::Timeout { .. } | Repr::DeadlinePassed { .. } => ErrorKind::Timeout,
            Repr::Auth { .. } => ErrorKind::Backend,
            Repr::Redis { source, .. } if source.is_timeout() => ErrorKind::Timeout,
            Repr::Redis { .. } => ErrorKind::Backend,
            Repr::Config { .. } => ErrorKind::Config,
            Repr::Unreplicated { .. } => ErrorKind::WriteUnconfirmed,
            Repr::Permission { .. } => ErrorKind::PermissionDenied,
            Repr::Unsupported { .. } | Repr::CrossSlot { .. } => ErrorKind::Backend,
            Repr::RevokeAllGaveUp { source, .. } => source.kind(),
        }
    }

    /// What a `revoke all` did before this error: the report of a
    /// [`ErrorKind::PartiallyRevoked`] call (what was revoked, what could
    /// not be), or how far one got before it gave up retrying.
    pub fn revoke_all_report(&self) -> Option<&RevokeAllReport> {
        match &*self.0 {
            Repr::Transition(TransitionError::PartiallyRevoked(report))
            | Repr::RevokeAllGaveUp { report, .. } => Some(report),
            _ => None,
        }
    }

    /// `revoke all` gave up after `failures` retryable failures in a row
    /// (or its deadline), the last being `source`.
    pub(crate) fn revoke_all_gave_up(
        report: RevokeAllReport,
        failures: u32,
        source: Error,
    ) -> Self {
        Self::new(Repr::RevokeAllGaveUp {
            report: Box::new(report),
            failures,
            source,
        })
    }

    /// Whether calling again may succeed without changing anything:
    /// timeouts, connection failures, a cluster failing over or moving
    /// slots (`CLUSTERDOWN`, `MOVED`, `ASK`, `TRYAGAIN`, `READONLY`, a node
    /// without a connection) and exhausted contention. (A timed-out
    /// mutation may already have been applied; retrying a `create` may then
    /// report a conflict.)
    pub fn is_retryable(&self) -> bool {
        match &*self.0 {
            Repr::Timeout { .. } | Repr::DeadlinePassed { .. } | Repr::Unreplicated { .. } => true,
            Repr::Transition(TransitionError::ContentionExhausted { .. }) => true,
            Repr::RevokeAllGaveUp { source, .. } => source.is_retryable(),
            Repr::Redis { source, .. } => {
                source.is_io_error()
                    || source.is_timeout()
                    || source.is_connection_dropped()
                    || source.is_connection_refusal()
                    || matches!(
                        source.retry_method(),
                        redis::RetryMethod::WaitAndRetry
                            | redis::RetryMethod::RetryImmediately
                            | redis::RetryMethod::MovedRedirect
                            | redis::RetryMethod::AskRedirect
                            | redis::RetryMethod::RefreshSlotsAndRetry
                            | redis::RetryMethod::ReconnectFromInitialConnections
                    )
            }
            _ => false,
        }
    }

    /// The key of the record or index the error is about: the corrupt
    /// record or index, the conflicting or missing record, the key whose
    /// contention exhausted the retries.
    pub fn key(&self) -> Option<&str> {
        match &*self.0 {
            Repr::Transition(e) => e.key(),
            _ => None,
        }
    }

    /// The configuration field an [`ErrorKind::Config`] error is about.
    pub fn config_field(&self) -> Option<&'static str> {
        match &*self.0 {
            Repr::Config { field, .. } => Some(field),
            _ => None,
        }
    }

    /// The core's detailed kind of a corruption, not-found or invalid-input
    /// error (`corrupt_record`, `dangling_index_member`, `revoked_before_created`,
    /// …), when the error came from a transition.
    pub fn detail_kind(&self) -> Option<&'static str> {
        match &*self.0 {
            Repr::Transition(e) => Some(e.kind()),
            _ => None,
        }
    }

    /// The server does not know the script (`NOSCRIPT`): load it, run again.
    pub(crate) fn is_noscript(&self) -> bool {
        self.is_server_code("NOSCRIPT")
    }

    /// Whether the server answered with the error code `code`.
    pub(crate) fn is_server_code(&self, code: &str) -> bool {
        matches!(&*self.0, Repr::Redis { source, .. } if source.code() == Some(code))
    }

    pub(crate) fn unsupported(what: String) -> Self {
        Self::new(Repr::Unsupported { what })
    }

    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) fn cross_slot(first: &str, first_slot: u16, other: &str, other_slot: u16) -> Self {
        Self::new(Repr::CrossSlot {
            first: first.to_owned(),
            first_slot,
            other: other.to_owned(),
            other_slot,
        })
    }

    pub(crate) fn unreplicated(wanted: u32, acked: u64) -> Self {
        Self::new(Repr::Unreplicated { wanted, acked })
    }

    pub(crate) fn timeout(op: &'static str, after: Duration) -> Self {
        Self::new(Repr::Timeout { op, after })
    }

    pub(crate) fn deadline_passed(op: &'static str, timeout: Duration) -> Self {
        Self::new(Repr::DeadlinePassed { op, timeout })
    }

    pub(crate) fn redis(op: &'static str, source: redis::RedisError) -> Self {
        // The cluster client reports a refused password while connecting
        // as an I/O error whose message carries the cause.
        let auth = source.kind() == redis::ErrorKind::AuthenticationFailed
            || matches!(source.code(), Some("WRONGPASS" | "NOAUTH"))
            || (source.kind() == redis::ErrorKind::Io
                && source.to_string().contains("AuthenticationFailed"));
        if auth {
            Self::new(Repr::Auth { source })
        } else if source.code() == Some("NOPERM") || refused_in_script(&source) {
            Self::new(Repr::Permission { op, source })
        } else {
            Self::new(Repr::Redis { op, source })
        }
    }

    pub(crate) fn config(field: &'static str, reason: impl Into<String>) -> Self {
        Self::new(Repr::Config {
            field,
            reason: reason.into(),
        })
    }

    fn new(repr: Repr) -> Self {
        Self(Box::new(repr))
    }
}

/// Redis 7.0 reports an ACL refusal of a call inside a script as a plain
/// error, `ERR The user executing the script can't run this command …` (or
/// `… access at least one of the keys …`); later versions say `NOPERM`.
fn refused_in_script(source: &redis::RedisError) -> bool {
    source.code() == Some("ERR")
        && source
            .detail()
            .is_some_and(|d| d.starts_with("The user executing the script can't"))
}

impl From<TransitionError> for Error {
    fn from(e: TransitionError) -> Self {
        Self::new(Repr::Transition(e))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind())
            .field("key", &self.key())
            .field("message", &self.to_string())
            .finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &*self.0 {
            // The transition error is displayed transparently; expose it
            // (not its own source) so callers can downcast to it.
            Repr::Transition(e) => Some(e),
            other => std::error::Error::source(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_stable() {
        let all = [
            (ErrorKind::NotFound, "not_found"),
            (ErrorKind::Conflict, "conflict"),
            (ErrorKind::InvalidInput, "invalid_input"),
            (ErrorKind::Corrupt, "corrupt"),
            (ErrorKind::Timeout, "timeout"),
            (ErrorKind::Backend, "backend"),
            (ErrorKind::ContentionExhausted, "contention_exhausted"),
            (ErrorKind::Config, "config"),
            (ErrorKind::SessionLimit, "session_limit"),
            (ErrorKind::InvalidCursor, "invalid_cursor"),
            (ErrorKind::WriteUnconfirmed, "write_unconfirmed"),
            (ErrorKind::PermissionDenied, "permission_denied"),
            (ErrorKind::PartiallyRevoked, "partially_revoked"),
        ];
        for (kind, text) in all {
            assert_eq!(kind.as_str(), text);
            assert_eq!(kind.to_string(), text);
        }
    }

    #[test]
    fn accessors() {
        let e = Error::from(TransitionError::Conflict { key: "k".into() });
        assert_eq!(e.kind(), ErrorKind::Conflict);
        assert_eq!(e.key(), Some("k"));
        assert!(!e.is_retryable());
        let e = Error::config("db", "must be >= 0");
        assert_eq!(e.kind(), ErrorKind::Config);
        assert_eq!(e.config_field(), Some("db"));
        assert!(e.to_string().contains("`db`"));
        let e = Error::from(TransitionError::ContentionExhausted {
            attempts: 3,
            key: "x".into(),
        });
        assert_eq!(e.kind(), ErrorKind::ContentionExhausted);
        assert!(e.is_retryable());
        let e = Error::timeout("get", Duration::from_millis(5));
        assert_eq!(e.kind(), ErrorKind::Timeout);
        assert!(e.is_retryable());
        let e = Error::cross_slot("a", 1, "b", 2);
        assert_eq!(e.kind(), ErrorKind::Backend);
        assert!(!e.is_retryable());
        assert!(e.to_string().contains("slot 1") && e.to_string().contains("slot 2"));
        for (kind, detail) in [
            (redis::ServerErrorKind::Moved, "1 127.0.0.1:7001"),
            (redis::ServerErrorKind::Ask, "1 127.0.0.1:7001"),
            (redis::ServerErrorKind::ClusterDown, "down"),
            (redis::ServerErrorKind::TryAgain, "again"),
            (redis::ServerErrorKind::ReadOnly, "replica"),
        ] {
            let source = redis::RedisError::from((
                redis::ErrorKind::Server(kind),
                "cluster",
                detail.to_owned(),
            ));
            assert!(Error::redis("read", source).is_retryable(), "{kind:?}");
        }
        let crossslot = redis::RedisError::from((
            redis::ErrorKind::Server(redis::ServerErrorKind::CrossSlot),
            "crossslot",
        ));
        assert!(!Error::redis("apply", crossslot).is_retryable());
        let e = Error::from(TransitionError::NotFound { key: "s".into() });
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert_eq!(e.detail_kind(), Some("not_found"));
        assert!(std::error::Error::source(&e).is_some());
    }
}
