//! What a caller that holds a session record (an edge worker, a service
//! that fetched it itself) requires of it before trusting it: active, and
//! optionally a given user's and bound to a given client public key.
//!
//! The decoder already proves the record is a valid session of the id it
//! was read for; [`Expectation::check`] adds the rest, so every adapter
//! (the WASM build's `requireActiveSession`, a service) applies the same
//! rule in the same order with the same kinds.

use crate::error::ValidationError;
use crate::ids::{ClientPublicKey, UserId};
use crate::op::Kind;
use crate::session::{Session, Status};

/// What a session must be: always active; when given, this user's and
/// bound to this client public key. `Expectation::default()` requires only
/// "active".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expectation {
    user_id: Option<UserId>,
    client_public_key: Option<ClientPublicKey>,
}

impl Expectation {
    /// An expectation of already validated values (`None`: not checked).
    pub fn new(user_id: Option<UserId>, client_public_key: Option<ClientPublicKey>) -> Self {
        Self {
            user_id,
            client_public_key,
        }
    }

    /// An expectation from text as a caller received it: the user id and
    /// the client public key (strict, padded standard base64), each checked
    /// by its validating constructor. `None` means "not checked"; an
    /// invalid value is an error, never a skipped check.
    pub fn parse(
        user_id: Option<&str>,
        client_public_key: Option<&str>,
    ) -> Result<Self, ValidationError> {
        Ok(Self {
            user_id: user_id.map(UserId::parse).transpose()?,
            client_public_key: client_public_key
                .map(ClientPublicKey::from_base64)
                .transpose()?,
        })
    }

    /// This expectation, also requiring the session to belong to `user`.
    pub fn with_user_id(mut self, user: UserId) -> Self {
        self.user_id = Some(user);
        self
    }

    /// This expectation, also requiring the session to carry `key`.
    pub fn with_client_public_key(mut self, key: ClientPublicKey) -> Self {
        self.client_public_key = Some(key);
        self
    }

    /// The user the session must belong to, if checked.
    pub fn user_id(&self) -> Option<&UserId> {
        self.user_id.as_ref()
    }

    /// The key the session must carry, if checked.
    pub fn client_public_key(&self) -> Option<&ClientPublicKey> {
        self.client_public_key.as_ref()
    }

    /// `Ok` when `session` is active and matches every expectation given.
    /// The status is checked first: a revoked session is `not_active`
    /// whoever asks, so the answer never tells a caller with the wrong user
    /// or key more than a revoked session would.
    pub fn check(&self, session: &Session) -> Result<(), ExpectationError> {
        let id = || session.id().as_str().to_owned();
        if !session.is_active() {
            return Err(ExpectationError::NotActive {
                id: id(),
                status: session.status(),
            });
        }
        if self
            .user_id
            .as_ref()
            .is_some_and(|user| user != session.user_id())
        {
            return Err(ExpectationError::UserMismatch { id: id() });
        }
        if self
            .client_public_key
            .as_ref()
            .is_some_and(|key| key != session.client_public_key())
        {
            return Err(ExpectationError::KeyMismatch { id: id() });
        }
        Ok(())
    }
}

/// Why a valid session does not meet an [`Expectation`]. Messages name the
/// session id only, never the other user or key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExpectationError {
    /// The session is not active (it is revoked).
    #[error("session {id:?} is {status}")]
    NotActive {
        /// The session's id.
        id: String,
        /// Its status.
        status: Status,
    },
    /// The session belongs to another user than the one expected.
    #[error("session {id:?} belongs to another user")]
    UserMismatch {
        /// The session's id.
        id: String,
    },
    /// The session is bound to another client public key than the one
    /// expected.
    #[error("session {id:?} is bound to another client public key")]
    KeyMismatch {
        /// The session's id.
        id: String,
    },
}

impl ExpectationError {
    /// Stable machine-readable kind: `not_active`, `user_mismatch` or
    /// `key_mismatch`.
    pub fn kind(&self) -> &'static str {
        match self {
            ExpectationError::NotActive { .. } => "not_active",
            ExpectationError::UserMismatch { .. } => "user_mismatch",
            ExpectationError::KeyMismatch { .. } => "key_mismatch",
        }
    }

    /// The id of the session that was checked.
    pub fn id(&self) -> &str {
        match self {
            ExpectationError::NotActive { id, .. }
            | ExpectationError::UserMismatch { id }
            | ExpectationError::KeyMismatch { id } => id,
        }
    }
}

impl Kind for ExpectationError {
    fn kind(&self) -> &'static str {
        ExpectationError::kind(self)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::ids::{DeviceSessionId, RevokeActorId, RevokeActorType, RevokeReasonCode};
    use crate::session::Revocation;
    use crate::timestamp::Timestamp;

    const KEY: &str = "6CNOOq9vU5hNuRjuSnPSuoYdvt6iZpSYfEDOihlBz8I=";

    fn active() -> Session {
        Session::active(
            DeviceSessionId::parse("dev-1").unwrap(),
            UserId::parse("user-1").unwrap(),
            ClientPublicKey::from_base64(KEY).unwrap(),
            Timestamp::parse("2024-05-06T07:08:09.5Z").unwrap(),
        )
        .unwrap()
    }

    fn revoked() -> Session {
        let revocation = Revocation::new(
            Timestamp::parse("2024-05-06T07:08:10Z").unwrap(),
            RevokeReasonCode::parse("logout").unwrap(),
            RevokeActorType::parse("user").unwrap(),
            RevokeActorId::empty(),
        )
        .unwrap();
        active().revoked(revocation).unwrap()
    }

    fn other_key() -> String {
        ClientPublicKey::from_bytes(&[1; 32]).unwrap().to_base64()
    }

    fn check(user: Option<&str>, key: Option<&str>, session: &Session) -> Result<(), &'static str> {
        Expectation::parse(user, key)
            .map_err(|e| e.kind())?
            .check(session)
            .map_err(|e| Kind::kind(&e))
    }

    #[test]
    fn active_sessions_meet_matching_expectations() {
        let s = active();
        assert_eq!(check(None, None, &s), Ok(()));
        assert_eq!(check(Some("user-1"), None, &s), Ok(()));
        assert_eq!(check(None, Some(KEY), &s), Ok(()));
        assert_eq!(check(Some("user-1"), Some(KEY), &s), Ok(()));
        assert_eq!(Expectation::default().check(&s), Ok(()));
    }

    #[test]
    fn mismatches_have_their_kinds_and_status_comes_first() {
        let (a, r, other) = (active(), revoked(), other_key());
        assert_eq!(check(None, None, &r), Err("not_active"));
        assert_eq!(check(Some("user-1"), Some(KEY), &r), Err("not_active"));
        assert_eq!(check(Some("user-2"), Some(&other), &r), Err("not_active"));
        assert_eq!(check(Some("user-2"), None, &a), Err("user_mismatch"));
        assert_eq!(
            check(Some("user-2"), Some(&other), &a),
            Err("user_mismatch")
        );
        assert_eq!(check(Some("user-1"), Some(&other), &a), Err("key_mismatch"));
        assert_eq!(check(None, Some(&other), &a), Err("key_mismatch"));
    }

    #[test]
    fn errors_name_the_session_only() {
        let err = Expectation::parse(Some("user-2"), None)
            .unwrap()
            .check(&active())
            .unwrap_err();
        assert_eq!(err, ExpectationError::UserMismatch { id: "dev-1".into() });
        assert_eq!(err.id(), "dev-1");
        assert_eq!(
            err.to_string(),
            r#"session "dev-1" belongs to another user"#
        );
        let err = Expectation::default().check(&revoked()).unwrap_err();
        assert_eq!(err.to_string(), r#"session "dev-1" is revoked"#);
        let err = Expectation::parse(None, Some(&other_key()))
            .unwrap()
            .check(&active())
            .unwrap_err();
        assert!(!err.to_string().contains(&other_key()), "{err}");
        assert!(!err.to_string().contains(KEY), "{err}");
    }

    #[test]
    fn constructors_validate() {
        assert_eq!(check(Some(""), None, &active()), Err("invalid_id"));
        assert_eq!(check(Some(" user-1"), None, &active()), Err("invalid_id"));
        assert_eq!(
            check(None, Some("AAAA"), &active()),
            Err("invalid_public_key")
        );
        assert_eq!(
            check(None, Some(&KEY.replace('=', "")), &active()),
            Err("invalid_public_key")
        );
        let user = UserId::parse("user-1").unwrap();
        let key = ClientPublicKey::from_base64(KEY).unwrap();
        let built = Expectation::default()
            .with_user_id(user.clone())
            .with_client_public_key(key);
        assert_eq!(built, Expectation::new(Some(user.clone()), Some(key)));
        assert_eq!(
            built,
            Expectation::parse(Some("user-1"), Some(KEY)).unwrap()
        );
        assert_eq!(built.user_id(), Some(&user));
        assert_eq!(built.client_public_key(), Some(&key));
        assert_eq!(
            Expectation::parse(None, None).unwrap(),
            Expectation::default()
        );
    }
}
