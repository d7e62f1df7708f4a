//! Sessions, revocations, operation inputs and outcomes.

use std::fmt;

use crate::error::{Field, ValidationError};
use crate::ids::{
    ClientPublicKey, DeviceSessionId, RevokeActorId, RevokeActorType, RevokeReasonCode, UserId,
};
use crate::timestamp::Timestamp;

/// Lifecycle status of a device session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The session may be used.
    Active,
    /// The session was revoked; terminal.
    Revoked,
}

impl Status {
    /// The stored spelling: `active` or `revoked`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Revoked => "revoked",
        }
    }

    /// Parses the stored spelling exactly (case-sensitive, no padding).
    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        match text {
            "active" => Ok(Status::Active),
            "revoked" => Ok(Status::Revoked),
            _ => Err(ValidationError::InvalidStatus),
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Status {
    type Err = ValidationError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

/// Who revoked a session, when and why. Its time is never Go's zero time.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "RevocationFields")]
pub struct Revocation {
    at: Timestamp,
    reason_code: RevokeReasonCode,
    actor_type: RevokeActorType,
    #[serde(default)]
    actor_id: RevokeActorId,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RevocationFields {
    at: Timestamp,
    reason_code: RevokeReasonCode,
    actor_type: RevokeActorType,
    #[serde(default)]
    actor_id: RevokeActorId,
}

impl TryFrom<RevocationFields> for Revocation {
    type Error = ValidationError;
    fn try_from(f: RevocationFields) -> Result<Self, Self::Error> {
        Revocation::new(f.at, f.reason_code, f.actor_type, f.actor_id)
    }
}

impl Revocation {
    /// A revocation at `at`; fails when `at` is Go's zero time.
    pub fn new(
        at: Timestamp,
        reason_code: RevokeReasonCode,
        actor_type: RevokeActorType,
        actor_id: RevokeActorId,
    ) -> Result<Self, ValidationError> {
        if at.is_go_zero() {
            return Err(ValidationError::ZeroTimestamp {
                field: Field::RevokedAt,
            });
        }
        Ok(Self {
            at,
            reason_code,
            actor_type,
            actor_id,
        })
    }

    /// When the session was revoked.
    pub fn at(&self) -> Timestamp {
        self.at
    }
    /// Why.
    pub fn reason_code(&self) -> &RevokeReasonCode {
        &self.reason_code
    }
    /// What kind of actor revoked it.
    pub fn actor_type(&self) -> &RevokeActorType {
        &self.actor_type
    }
    /// Which actor revoked it (may be empty).
    pub fn actor_id(&self) -> &RevokeActorId {
        &self.actor_id
    }
}

/// One device session. Invariants: `status == Active` ⇔ no revocation;
/// `revocation.at >= created_at`; `created_at` is not Go's zero time.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(try_from = "SessionFields")]
pub struct Session {
    id: DeviceSessionId,
    user_id: UserId,
    client_public_key: ClientPublicKey,
    // No `status` field: it is derived from `revocation`, so the two can
    // never disagree.
    created_at: Timestamp,
    revocation: Option<Revocation>,
}

/// The serialized shape (the vectors' `session` object), status included.
#[derive(serde::Serialize)]
struct SessionView<'a> {
    id: &'a DeviceSessionId,
    user_id: &'a UserId,
    client_public_key_b64: &'a ClientPublicKey,
    status: Status,
    created_at: Timestamp,
    revocation: Option<&'a Revocation>,
}

impl serde::Serialize for Session {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        SessionView {
            id: &self.id,
            user_id: &self.user_id,
            client_public_key_b64: &self.client_public_key,
            status: self.status(),
            created_at: self.created_at,
            revocation: self.revocation.as_ref(),
        }
        .serialize(serializer)
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionFields {
    id: DeviceSessionId,
    user_id: UserId,
    client_public_key_b64: ClientPublicKey,
    status: Status,
    created_at: Timestamp,
    revocation: Option<Revocation>,
}

impl TryFrom<SessionFields> for Session {
    type Error = ValidationError;
    fn try_from(f: SessionFields) -> Result<Self, Self::Error> {
        Session::from_parts(
            f.id,
            f.user_id,
            f.client_public_key_b64,
            f.status,
            f.created_at,
            f.revocation,
        )
    }
}

impl Session {
    /// A new active session; fails when `created_at` is Go's zero time.
    pub fn active(
        id: DeviceSessionId,
        user_id: UserId,
        client_public_key: ClientPublicKey,
        created_at: Timestamp,
    ) -> Result<Self, ValidationError> {
        if created_at.is_go_zero() {
            return Err(ValidationError::ZeroTimestamp {
                field: Field::CreatedAt,
            });
        }
        Ok(Self {
            id,
            user_id,
            client_public_key,
            created_at,
            revocation: None,
        })
    }

    /// A session from all its parts, as a serialized form holds them:
    /// `status` and `revocation` must agree (active ⇔ no revocation), plus
    /// the rules of [`Session::active`] and [`Session::revoked`].
    pub fn from_parts(
        id: DeviceSessionId,
        user_id: UserId,
        client_public_key: ClientPublicKey,
        status: Status,
        created_at: Timestamp,
        revocation: Option<Revocation>,
    ) -> Result<Self, ValidationError> {
        let session = Session::active(id, user_id, client_public_key, created_at)?;
        match (status, revocation) {
            (Status::Active, None) => Ok(session),
            (Status::Active, Some(_)) => Err(ValidationError::ActiveWithRevocation),
            (Status::Revoked, None) => Err(ValidationError::RevokedWithoutRevocation),
            (Status::Revoked, Some(revocation)) => session.revoked(revocation),
        }
    }

    /// This session, revoked by `revocation`. Fails when the revocation
    /// predates creation. It does not look at the current status: the
    /// transitions decide `AlreadyRevoked` before calling it.
    pub fn revoked(mut self, revocation: Revocation) -> Result<Self, ValidationError> {
        if revocation.at < self.created_at {
            return Err(ValidationError::RevokedBeforeCreated);
        }
        self.revocation = Some(revocation);
        Ok(self)
    }

    /// This session revoked by `revocation`, its time raised to the
    /// session's own creation time when it is earlier (a session dated
    /// ahead of the revoker's clock: existence decides, not clocks), so the
    /// record stays valid (`revoked_at >= created_at`).
    pub fn revoked_no_earlier_than_creation(mut self, mut revocation: Revocation) -> Self {
        if revocation.at < self.created_at {
            revocation.at = self.created_at;
        }
        self.revocation = Some(revocation);
        self
    }

    /// The device session id.
    pub fn id(&self) -> &DeviceSessionId {
        &self.id
    }
    /// The owning user.
    pub fn user_id(&self) -> &UserId {
        &self.user_id
    }
    /// The client's public key.
    pub fn client_public_key(&self) -> &ClientPublicKey {
        &self.client_public_key
    }
    /// Active or revoked.
    pub fn status(&self) -> Status {
        if self.revocation.is_some() {
            Status::Revoked
        } else {
            Status::Active
        }
    }
    /// Whether the session is active.
    pub fn is_active(&self) -> bool {
        self.revocation.is_none()
    }
    /// Creation time.
    pub fn created_at(&self) -> Timestamp {
        self.created_at
    }
    /// The revocation, present exactly when revoked.
    pub fn revocation(&self) -> Option<&Revocation> {
        self.revocation.as_ref()
    }
}

/// Input of "revoke one session".
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RevokeSessionInput {
    /// The session to revoke.
    pub device_session_id: DeviceSessionId,
    /// The revocation to record.
    pub revocation: Revocation,
}

/// Input of "revoke all active sessions of a user".
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RevokeUserSessionsInput {
    /// The user whose sessions to revoke.
    pub user_id: UserId,
    /// The revocation to record on each. Every session active when the
    /// call begins is revoked, whatever its creation time; one created
    /// after `revocation.at` (a clock ahead) is revoked at its own
    /// creation time.
    pub revocation: Revocation,
}

/// Outcome of "revoke one session".
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RevokeSessionOutcome {
    /// The session was active and is now revoked (the new state).
    Revoked(Session),
    /// The session was already revoked; nothing was written (the stored,
    /// unchanged state).
    AlreadyRevoked(Session),
}

impl RevokeSessionOutcome {
    /// `revoked` or `already_revoked`.
    pub fn as_str(&self) -> &'static str {
        match self {
            RevokeSessionOutcome::Revoked(_) => "revoked",
            RevokeSessionOutcome::AlreadyRevoked(_) => "already_revoked",
        }
    }

    /// The session, revoked either way.
    pub fn session(&self) -> &Session {
        match self {
            RevokeSessionOutcome::Revoked(s) | RevokeSessionOutcome::AlreadyRevoked(s) => s,
        }
    }

    /// The outcome's own invariant (like the reference's `Validate`): the
    /// session is revoked.
    pub fn is_consistent(&self) -> bool {
        self.session().status() == Status::Revoked
    }
}

/// Outcome of "revoke all active sessions of a user".
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RevokeUserSessionsOutcome {
    /// At least one session was revoked; newest first.
    Revoked(Vec<Session>),
    /// The user had no active session when the call began; nothing was
    /// written.
    NoActiveSessions,
}

impl RevokeUserSessionsOutcome {
    /// `revoked` or `no_active_sessions`.
    pub fn as_str(&self) -> &'static str {
        match self {
            RevokeUserSessionsOutcome::Revoked(_) => "revoked",
            RevokeUserSessionsOutcome::NoActiveSessions => "no_active_sessions",
        }
    }

    /// The revoked sessions, newest first (empty for `NoActiveSessions`).
    pub fn sessions(&self) -> &[Session] {
        match self {
            RevokeUserSessionsOutcome::Revoked(s) => s,
            RevokeUserSessionsOutcome::NoActiveSessions => &[],
        }
    }

    /// The outcome's invariants (like the reference's `Validate`):
    /// `Revoked` holds at least one session, all revoked, all of `user`,
    /// strictly newest first (so no duplicates).
    pub fn is_consistent_for(&self, user: &UserId) -> bool {
        let RevokeUserSessionsOutcome::Revoked(sessions) = self else {
            return true;
        };
        !sessions.is_empty()
            && sessions
                .iter()
                .all(|s| s.status() == Status::Revoked && s.user_id() == user)
            && sessions.windows(2).all(|w| match w {
                [a, b] => crate::order::newest_first(a, b).is_lt(),
                _ => true,
            })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn parts() -> (DeviceSessionId, UserId, ClientPublicKey, Timestamp) {
        (
            DeviceSessionId::parse("dev-1").unwrap(),
            UserId::parse("user-1").unwrap(),
            ClientPublicKey::from_bytes(&[7; 32]).unwrap(),
            Timestamp::parse("2024-05-06T07:08:09Z").unwrap(),
        )
    }

    fn revocation(at: &str) -> Revocation {
        Revocation::new(
            Timestamp::parse(at).unwrap(),
            RevokeReasonCode::parse("logout").unwrap(),
            RevokeActorType::parse("user").unwrap(),
            RevokeActorId::empty(),
        )
        .unwrap()
    }

    #[test]
    fn from_parts_checks_status_against_revocation() {
        let (id, user, key, at) = parts();
        let active =
            Session::from_parts(id.clone(), user.clone(), key, Status::Active, at, None).unwrap();
        assert_eq!(
            active,
            Session::active(id.clone(), user.clone(), key, at).unwrap()
        );
        let rev = revocation("2024-05-06T07:08:10Z");
        let revoked = Session::from_parts(
            id.clone(),
            user.clone(),
            key,
            Status::Revoked,
            at,
            Some(rev.clone()),
        )
        .unwrap();
        assert_eq!(revoked, active.clone().revoked(rev.clone()).unwrap());
        let kind = |status, rev: Option<Revocation>| {
            Session::from_parts(id.clone(), user.clone(), key, status, at, rev)
                .unwrap_err()
                .kind()
        };
        assert_eq!(
            kind(Status::Active, Some(rev)),
            "status_revocation_mismatch"
        );
        assert_eq!(kind(Status::Revoked, None), "status_revocation_mismatch");
        assert_eq!(
            kind(Status::Revoked, Some(revocation("2024-05-06T07:08:08Z"))),
            "revoked_before_created"
        );
    }
}
