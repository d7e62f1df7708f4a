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
    /// `NOPERM`, also when refused inside the script): the store's ACL user
    /// lacks a permission. Not retryable: grant it (docs/acl.md). A refused
    /// mutation wrote nothing where the server can check a script's writes
    /// up front (Redis 7.0+, Valkey); on Redis 6.2 it may have made a
    /// fail-safe prefix of its writes (docs/acl.md).
    PermissionDenied,
    /// The server is at its `maxmemory` limit and refuses writes that
    /// would grow it (`OOM`); nothing was written. Not retryable as such:
    /// it lasts until memory is freed or the limit raised (reads and
    /// removals still work).
    OutOfMemory,
    /// The server is a read-only replica (`READONLY`); nothing was
    /// written. Retryable: during a failover the old primary answers this
    /// until the client reaches the new one (the cluster backend already
    /// follows it within the operation's deadline). A store configured
    /// with a replica's address keeps getting it: point it at the primary.
    ReadOnlyReplica,
    /// The server is loading its data set into memory after a start
    /// (`LOADING`) and answers nothing yet. Retryable: it passes once the
    /// load completes.
    ServerLoading,
    /// The server refused the credentials (`WRONGPASS`, `NOAUTH`, or a
    /// failed `AUTH`/`HELLO` while connecting). Not retryable: fix the
    /// username or password.
    AuthenticationFailed,
    /// `revoke all` revoked every session it could but not everything:
    /// some members or keys are undecodable, another user's, missing or
    /// of the wrong type. [`Error::revoke_all_report`] names each (and
    /// counts what was revoked); `check --repair` makes the user fully
    /// revocable again. Not retryable: the data must change first.
    PartiallyRevoked,
    /// A fault of this library: an error it has no kind for. Not
    /// retryable; please report it.
    Internal,
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
            ErrorKind::OutOfMemory => "out_of_memory",
            ErrorKind::ReadOnlyReplica => "read_only_replica",
            ErrorKind::ServerLoading => "server_loading",
            ErrorKind::AuthenticationFailed => "authentication_failed",
            ErrorKind::PartiallyRevoked => "partially_revoked",
            ErrorKind::Internal => "internal",
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
    /// An answer with a kind of its own (permission, memory, replica,
    /// loading); `kind` is one of those.
    #[error("redis refused {op}: {source}")]
    Refused {
        op: &'static str,
        kind: ErrorKind,
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
                // The core says which of its errors report corrupt data.
                e if e.is_corruption() => ErrorKind::Corrupt,
                TransitionError::Invalid(_) => ErrorKind::InvalidInput,
                TransitionError::NotFound { .. } => ErrorKind::NotFound,
                TransitionError::Conflict { .. } => ErrorKind::Conflict,
                TransitionError::SessionLimit { .. } => ErrorKind::SessionLimit,
                TransitionError::InvalidCursor { .. } => ErrorKind::InvalidCursor,
                TransitionError::ContentionExhausted { .. } => ErrorKind::ContentionExhausted,
                TransitionError::PartiallyRevoked(_) => ErrorKind::PartiallyRevoked,
                // The corruption variants (answered above), and any error a
                // newer core adds before this mapping names it: a fault of
                // the library, not of the data or the caller.
                _ => ErrorKind::Internal,
            },
            Repr::Timeout { .. } | Repr::DeadlinePassed { .. } => ErrorKind::Timeout,
            Repr::Auth { .. } => ErrorKind::AuthenticationFailed,
            Repr::Redis { source, .. } if source.is_timeout() => ErrorKind::Timeout,
            Repr::Redis { .. } => ErrorKind::Backend,
            Repr::Config { .. } => ErrorKind::Config,
            Repr::Unreplicated { .. } => ErrorKind::WriteUnconfirmed,
            Repr::Refused { kind, .. } => *kind,
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
            Repr::Refused { kind, .. } => {
                matches!(kind, ErrorKind::ReadOnlyReplica | ErrorKind::ServerLoading)
            }
            Repr::RevokeAllGaveUp { source, .. } => source.is_retryable(),
            Repr::Redis { source, .. } => retry_of(source) != Retry::Never,
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

    /// Whether the server refused to write (a read-only replica, no
    /// permission, out of memory): nothing was written, and trying again
    /// as is will not change that soon.
    pub(crate) fn is_write_refused(&self) -> bool {
        matches!(
            self.kind(),
            ErrorKind::ReadOnlyReplica | ErrorKind::PermissionDenied | ErrorKind::OutOfMemory
        )
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
        let code = server_code(&source);
        // The cluster client reports a refused password while connecting
        // as an I/O error whose message carries the cause.
        let auth = source.kind() == redis::ErrorKind::AuthenticationFailed
            || matches!(code.as_deref(), Some("WRONGPASS" | "NOAUTH"))
            || (source.kind() == redis::ErrorKind::Io
                && source.to_string().contains("AuthenticationFailed"));
        if auth {
            return Self::new(Repr::Auth { source });
        }
        let kind = match code.as_deref() {
            Some("NOPERM") => ErrorKind::PermissionDenied,
            Some("OOM") => ErrorKind::OutOfMemory,
            Some("READONLY") => ErrorKind::ReadOnlyReplica,
            Some("LOADING") => ErrorKind::ServerLoading,
            _ => return Self::new(Repr::Redis { op, source }),
        };
        Self::new(Repr::Refused { op, kind, source })
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

/// Whether, and how, a request that failed with a redis-rs error may be
/// tried again (redis-rs's own `retry_method`, read once for both the
/// error's [`Error::is_retryable`] and the cluster backend's resends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// The server surely did not run it: it refused it (a redirect, a
    /// cluster without quorum or failing over, a loading server, a
    /// replica) or it was never sent (connection refused, no connection to
    /// the node). Anything may be sent again.
    Refused,
    /// It failed in transit: it may have run. Only a request that changes
    /// nothing may be sent again as is.
    Unanswered,
    /// No answer in time: it may have run, and the round trip's budget is
    /// spent; the caller may try the operation again.
    TimedOut,
    /// Trying again as is will not help.
    Never,
}

pub(crate) fn retry_of(err: &redis::RedisError) -> Retry {
    use redis::RetryMethod as M;
    if err.is_timeout() {
        return Retry::TimedOut;
    }
    if err.is_connection_refusal() {
        return Retry::Refused;
    }
    match err.retry_method() {
        M::MovedRedirect
        | M::AskRedirect
        | M::WaitAndRetry
        | M::RefreshSlotsAndRetry
        | M::ReconnectFromInitialConnections => Retry::Refused,
        _ if err.is_io_error() || err.is_connection_dropped() => Retry::Unanswered,
        _ => Retry::Never,
    }
}

/// The error code of a server's answer, looking inside script errors: a
/// command refused inside a script comes back under the script's own
/// error on some servers, so the code that tells what happened is in the
/// text. Redis 7.0 and Valkey keep the code of a refused `OOM`/`READONLY`
/// call but report an ACL refusal as `ERR The user executing the script
/// can't …` (7.0) or `ERR ACL failure in script: …` (Valkey); Redis 6.2
/// wraps everything in `ERR Error running script (call to f_…):
/// @user_script:N: @user_script: N: -CODE …` (an ACL refusal without a
/// code). The apply script's own refusal is a plain `NOPERM …`. Every
/// other answer keeps the code redis-rs parsed.
fn server_code(source: &redis::RedisError) -> Option<std::borrow::Cow<'_, str>> {
    const ACL_REFUSALS: [&str; 2] = [
        "The user executing the script can't",
        "ACL failure in script",
    ];
    let code = source.code()?;
    if code != "ERR" {
        return Some(code.into());
    }
    let detail = source.detail().unwrap_or_default();
    // Redis 6.2: the refused call's own message follows the last
    // `@user_script: N: `.
    let inner = match detail.strip_prefix("Error running script") {
        Some(rest) => rest
            .rfind("@user_script: ")
            .and_then(|at| rest.get(at..))
            .and_then(|tail| tail.split_once(": ").map(|(_, t)| t))
            .and_then(|tail| tail.split_once(": ").map(|(_, t)| t))
            .unwrap_or_default(),
        None => detail,
    };
    if ACL_REFUSALS.iter().any(|p| inner.starts_with(p)) {
        return Some("NOPERM".into());
    }
    match inner
        .strip_prefix('-')
        .and_then(|t| t.split_whitespace().next())
    {
        Some(inner_code) if inner_code.chars().all(|c| c.is_ascii_uppercase()) => {
            Some(inner_code.to_owned().into())
        }
        _ => Some(code.into()),
    }
}

impl From<TransitionError> for Error {
    fn from(e: TransitionError) -> Self {
        Self::new(Repr::Transition(e))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One line, always: server messages (script errors above all) may
        // carry line breaks, and an operator's log or the CLI's stderr
        // reads errors line by line.
        struct OneLine<'a, 'b>(&'a mut fmt::Formatter<'b>);
        impl fmt::Write for OneLine<'_, '_> {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                let mut parts = s.split(['\r', '\n']);
                if let Some(first) = parts.next() {
                    self.0.write_str(first)?;
                }
                for part in parts {
                    self.0.write_str(" ")?;
                    self.0.write_str(part)?;
                }
                Ok(())
            }
        }
        fmt::write(&mut OneLine(f), format_args!("{}", self.0))
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
            (ErrorKind::OutOfMemory, "out_of_memory"),
            (ErrorKind::ReadOnlyReplica, "read_only_replica"),
            (ErrorKind::ServerLoading, "server_loading"),
            (ErrorKind::AuthenticationFailed, "authentication_failed"),
            (ErrorKind::PartiallyRevoked, "partially_revoked"),
            (ErrorKind::Internal, "internal"),
        ];
        for (kind, text) in all {
            assert_eq!(kind.as_str(), text);
            assert_eq!(kind.to_string(), text);
        }
    }

    /// The answers observed from Redis 7.0.15, 6.2.5 and Valkey 9.1.2 when
    /// a call inside a script is refused.
    #[test]
    fn refusals_inside_scripts_have_their_kinds_on_every_server() {
        let err = |text: &str| {
            let (code, detail) = text.split_once(' ').unwrap_or((text, ""));
            let source = redis::make_extension_error(code.to_owned(), Some(detail.to_owned()));
            Error::redis("apply", source)
        };
        let cases = [
            // Redis 7.0
            ("ERR The user executing the script can't run this command or subcommand script: 68578ce6, on @user_script:1.", ErrorKind::PermissionDenied),
            ("ERR The user executing the script can't access at least one of the keys mentioned in the command arguments script: 7a73, on @user_script:1.", ErrorKind::PermissionDenied),
            ("OOM command not allowed when used memory > 'maxmemory'. script: 98bf, on @user_script:1.", ErrorKind::OutOfMemory),
            ("READONLY You can't write against a read only replica. script: 98bf, on @user_script:1.", ErrorKind::ReadOnlyReplica),
            // Redis 6.2
            ("ERR Error running script (call to f_68578ce6): @user_script:1: @user_script: 1: The user executing the script can't run this command or subcommand", ErrorKind::PermissionDenied),
            ("ERR Error running script (call to f_98bf): @user_script:1: @user_script: 1: -OOM command not allowed when used memory > 'maxmemory'.", ErrorKind::OutOfMemory),
            ("ERR Error running script (call to f_98bf): @user_script:1: @user_script: 1: -READONLY You can't write against a read only replica.", ErrorKind::ReadOnlyReplica),
            ("ERR Error running script (call to f_d3c2): @user_script:1: WRONGTYPE Operation against a key holding the wrong kind of value", ErrorKind::Backend),
            // Valkey 9.1
            ("ERR ACL failure in script: User nomset has no permissions to run the 'mset' command script: on @user_script:1.", ErrorKind::PermissionDenied),
            ("ERR ACL failure in script: No permissions to access a key script: on @user_script:1.", ErrorKind::PermissionDenied),
            // Every server, outside scripts; and the script's own refusal.
            ("NOPERM this user has no permissions to access one of the keys used as arguments", ErrorKind::PermissionDenied),
            ("NOPERM apply_plan: the ACL refuses MSET; nothing was written", ErrorKind::PermissionDenied),
            ("LOADING Redis is loading the dataset in memory", ErrorKind::ServerLoading),
            ("WRONGPASS invalid username-password pair or user is disabled.", ErrorKind::AuthenticationFailed),
            ("NOAUTH Authentication required.", ErrorKind::AuthenticationFailed),
            ("ERR unknown command", ErrorKind::Backend),
        ];
        for (text, kind) in cases {
            let e = err(text);
            assert_eq!(e.kind(), kind, "{text}");
            let retryable = matches!(kind, ErrorKind::ReadOnlyReplica | ErrorKind::ServerLoading);
            assert_eq!(e.is_retryable(), retryable, "{text}");
        }
    }

    #[test]
    fn messages_never_span_lines() {
        let source = redis::make_extension_error(
            "ERR".to_owned(),
            Some("Error running script\nuser_script:1: bad\r\nmore".to_owned()),
        );
        let text = Error::redis("apply", source).to_string();
        assert!(!text.contains(['\n', '\r']), "{text}");
        assert!(
            text.contains("Error running script user_script:1: bad  more"),
            "{text}"
        );
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
