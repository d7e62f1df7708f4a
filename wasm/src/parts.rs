//! The JS shapes as plain Rust: a session ([`SessionParts`]) and the
//! `expect` argument ([`ExpectationInput`]). They hold no `JsValue`, so
//! serde and the core's validating constructors are tested here natively;
//! `args.rs` and `output.rs` move them across the JS boundary.

use std::borrow::Cow;

use authsession_core::{
    ClientPublicKey, DeviceSessionId, Expectation, Field, Revocation, RevokeActorId,
    RevokeActorType, RevokeReasonCode, Session, Status, Timestamp, UserId,
};
use serde::{Deserialize, Serialize};

use crate::error::Failure;

/// The JS shape of a session with plain Rust strings: what `to_js`
/// writes (borrowing from the decoded session where it can, as decoding is
/// the hot path) and what a JS session object is read into.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct SessionParts<'a> {
    device_session_id: Cow<'a, str>,
    user_id: Cow<'a, str>,
    client_public_key: Cow<'a, str>,
    status: Cow<'a, str>,
    created_at: Cow<'a, str>,
    revocation: Option<RevocationParts<'a>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RevocationParts<'a> {
    at: Cow<'a, str>,
    reason_code: Cow<'a, str>,
    actor_type: Cow<'a, str>,
    actor_id: Cow<'a, str>,
}

impl SessionParts<'_> {
    /// Calls `f` with `session`'s parts, all borrowed (the key's base64 and
    /// the timestamps' text live on this stack frame): no allocation on the
    /// decode path.
    pub(crate) fn with<R>(session: &Session, f: impl FnOnce(&SessionParts<'_>) -> R) -> R {
        let mut key = [0u8; 44];
        let created_at = session.created_at().canonical();
        let revocation = session.revocation().map(|r| (r, r.at().canonical()));
        f(&SessionParts {
            device_session_id: session.id().as_str().into(),
            user_id: session.user_id().as_str().into(),
            client_public_key: session.client_public_key().encode_base64(&mut key).into(),
            status: session.status().as_str().into(),
            created_at: created_at.as_str().into(),
            revocation: revocation.as_ref().map(|(r, at)| RevocationParts {
                at: at.as_str().into(),
                reason_code: r.reason_code().as_str().into(),
                actor_type: r.actor_type().as_str().into(),
                actor_id: r.actor_id().as_str().into(),
            }),
        })
    }

    /// Through the core's validating constructors only.
    pub(crate) fn into_session(self) -> Result<Session, Failure> {
        let timestamp =
            |text: &str, field: Field| Timestamp::parse(text).map_err(|e| e.for_field(field));
        let revocation = match self.revocation {
            None => None,
            Some(r) => Some(Revocation::new(
                timestamp(&r.at, Field::RevokedAt)?,
                RevokeReasonCode::parse(r.reason_code.into_owned())?,
                RevokeActorType::parse(r.actor_type.into_owned())?,
                RevokeActorId::parse(r.actor_id.into_owned())?,
            )?),
        };
        Ok(Session::from_parts(
            DeviceSessionId::parse(self.device_session_id.into_owned())?,
            UserId::parse(self.user_id.into_owned())?,
            ClientPublicKey::from_base64(&self.client_public_key)?,
            Status::parse(&self.status)?,
            timestamp(&self.created_at, Field::CreatedAt)?,
            revocation,
        )?)
    }
}

/// `requireActiveSession`'s `expect` argument as JS hands it in.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ExpectationInput {
    // Absent means "do not check"; `null` is refused rather than read as
    // absent, so a missing value upstream cannot silently skip a check.
    #[serde(default, deserialize_with = "present_string")]
    user_id: Option<String>,
    #[serde(default, deserialize_with = "present_string")]
    client_public_key: Option<String>,
}

fn present_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    String::deserialize(d).map(Some)
}

impl ExpectationInput {
    /// Through the core's validating constructors.
    pub(crate) fn parse(self) -> Result<Expectation, Failure> {
        Ok(Expectation::parse(
            self.user_id.as_deref(),
            self.client_public_key.as_deref(),
        )?)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    use authsession_core::codec;

    const KEY: &str = "6CNOOq9vU5hNuRjuSnPSuoYdvt6iZpSYfEDOihlBz8I=";

    fn parts() -> SessionParts<'static> {
        SessionParts {
            device_session_id: "dev-1".into(),
            user_id: "user-1".into(),
            client_public_key: KEY.into(),
            status: "revoked".into(),
            created_at: "2024-05-06T07:08:09.5Z".into(),
            revocation: Some(RevocationParts {
                at: "2024-05-06T07:08:10Z".into(),
                reason_code: "logout".into(),
                actor_type: "user".into(),
                actor_id: "".into(),
            }),
        }
    }

    #[test]
    fn parts_round_trip_through_the_core() {
        let session = parts().into_session().unwrap();
        assert_eq!(session.status(), Status::Revoked);
        SessionParts::with(&session, |p| assert_eq!(p, &parts()));
        let bytes = codec::encode(&session);
        let id = DeviceSessionId::parse("dev-1").unwrap();
        assert_eq!(codec::decode(&id, &bytes).unwrap(), session);
    }

    #[test]
    fn parts_errors_carry_the_core_kinds() {
        let kind = |edit: fn(&mut SessionParts<'static>)| {
            let mut p = parts();
            edit(&mut p);
            p.into_session().unwrap_err()
        };
        assert_eq!(
            kind(|p| p.device_session_id = " x".into()).kind,
            "invalid_id"
        );
        assert_eq!(kind(|p| p.user_id = "".into()).kind, "invalid_id");
        assert_eq!(
            kind(|p| p.client_public_key = "AAAA".into()).kind,
            "invalid_public_key"
        );
        assert_eq!(kind(|p| p.status = "Active".into()).kind, "invalid_status");
        assert_eq!(
            kind(|p| p.created_at = "2024-05-06T07:08:09.50Z".into()).kind,
            "non_canonical_timestamp"
        );
        let revoked_at = kind(|p| {
            if let Some(r) = &mut p.revocation {
                r.at = "yesterday".into();
            }
        });
        assert_eq!(revoked_at.kind, "invalid_timestamp");
        assert!(
            revoked_at.message.starts_with("revoked_at"),
            "{revoked_at:?}"
        );
        // Edits of the revocation, each with the kind it must give.
        let revocation = |edit: fn(&mut RevocationParts<'static>)| {
            let mut p = parts();
            if let Some(r) = &mut p.revocation {
                edit(r);
            }
            p.into_session().unwrap_err().kind
        };
        assert_eq!(
            revocation(|r| r.at = "2024-05-06T07:08:09Z".into()),
            "revoked_before_created"
        );
        assert_eq!(
            revocation(|r| r.reason_code = "Logout".into()),
            "invalid_reason_code"
        );
        assert_eq!(
            kind(|p| p.status = "active".into()).kind,
            "status_revocation_mismatch"
        );
        assert_eq!(
            kind(|p| p.revocation = None).kind,
            "status_revocation_mismatch"
        );
    }

    #[test]
    fn the_js_shape_is_camel_case_with_null_revocation() {
        let mut p = parts();
        p.status = "active".into();
        p.revocation = None;
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(
            json,
            format!(
                r#"{{"deviceSessionId":"dev-1","userId":"user-1","clientPublicKey":"{KEY}","status":"active","createdAt":"2024-05-06T07:08:09.5Z","revocation":null}}"#
            )
        );
        assert_eq!(serde_json::from_str::<SessionParts<'_>>(&json).unwrap(), p);
        let revoked = serde_json::to_string(&parts()).unwrap();
        assert!(revoked.contains(
            r#""revocation":{"at":"2024-05-06T07:08:10Z","reasonCode":"logout","actorType":"user","actorId":""}"#
        ));
        assert_eq!(
            serde_json::from_str::<SessionParts<'_>>(&revoked).unwrap(),
            parts()
        );
        // Unknown or misspelt fields are refused, not ignored.
        let extra = json.replacen('{', r#"{"extra":1,"#, 1);
        assert!(serde_json::from_str::<SessionParts<'_>>(&extra).is_err());
        let snake = json.replace("userId", "user_id");
        assert!(serde_json::from_str::<SessionParts<'_>>(&snake).is_err());
    }

    #[test]
    fn expectation_input_refuses_null_and_unknown_fields() {
        let read = |json: &str| serde_json::from_str::<ExpectationInput>(json);
        let empty = read("{}").unwrap();
        assert_eq!((empty.user_id, empty.client_public_key), (None, None));
        let user = read(r#"{"userId":"u"}"#).unwrap();
        assert_eq!(user.user_id.as_deref(), Some("u"));
        assert!(read(r#"{"userId":null}"#).is_err());
        assert!(read(r#"{"clientPublicKey":null}"#).is_err());
        assert!(read(r#"{"userID":"u"}"#).is_err());
        assert!(read(r#"{"userId":1}"#).is_err());
    }

    #[test]
    fn expectations_go_through_the_core() {
        let mut p = parts();
        p.status = "active".into();
        p.revocation = None;
        let active = p.into_session().unwrap();
        let revoked = parts().into_session().unwrap();
        let check = |user: Option<&str>, key: Option<&str>, session: &Session| {
            ExpectationInput {
                user_id: user.map(str::to_owned),
                client_public_key: key.map(str::to_owned),
            }
            .parse()
            .and_then(|e| e.check(session).map_err(Failure::from))
            .map_err(|f| f.kind)
        };
        assert_eq!(check(None, None, &active), Ok(()));
        assert_eq!(check(Some("user-1"), Some(KEY), &active), Ok(()));
        assert_eq!(check(Some("user-1"), None, &revoked), Err("not_active"));
        assert_eq!(
            check(Some("user-2"), Some(KEY), &active),
            Err("user_mismatch")
        );
        let other_key = ClientPublicKey::from_bytes(&[1; 32]).unwrap().to_base64();
        assert_eq!(
            check(Some("user-1"), Some(&other_key), &active),
            Err("key_mismatch")
        );
        assert_eq!(check(Some(""), None, &active), Err("invalid_id"));
        assert_eq!(
            check(None, Some("AAAA"), &active),
            Err("invalid_public_key")
        );
    }
}
