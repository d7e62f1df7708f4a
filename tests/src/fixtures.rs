//! Session fixtures.

use std::sync::atomic::{AtomicU64, Ordering};

use authsession_driver::core::{
    ClientPublicKey, DeviceSessionId, KeySpace, Revocation, RevokeActorId, RevokeActorType,
    RevokeReasonCode, RevokeSessionInput, RevokeUserSessionsInput, Session, Timestamp, UserId,
};

/// 2026-11-27T10:00:00Z in Unix seconds: the fixtures' epoch.
pub const BASE_SECS: i128 = 1_795_773_600;

/// `BASE + secs` seconds `+ nanos` nanoseconds.
pub fn ts(secs: i64, nanos: i64) -> Timestamp {
    Timestamp::from_unix_nanos((BASE_SECS + i128::from(secs)) * 1_000_000_000 + i128::from(nanos))
        .expect("fixture timestamp in range")
}

/// The current time (for load tests whose sessions interleave with
/// revocations made "now").
pub fn now() -> Timestamp {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos();
    Timestamp::from_unix_nanos(i128::try_from(nanos).expect("nanos fit")).expect("now in range")
}

/// A device session id.
pub fn id(text: &str) -> DeviceSessionId {
    DeviceSessionId::parse(text).expect("fixture id")
}

/// A user id.
pub fn user(text: &str) -> UserId {
    UserId::parse(text).expect("fixture user")
}

/// A deterministic public key derived from `seed`.
pub fn key(seed: u8) -> ClientPublicKey {
    ClientPublicKey::from_bytes(&[seed; 32]).expect("32 bytes")
}

/// An active session.
pub fn active(id_text: &str, user_text: &str, created_at: Timestamp) -> Session {
    let seed = id_text
        .bytes()
        .fold(7u8, |a, b| a.wrapping_mul(31).wrapping_add(b));
    Session::active(id(id_text), user(user_text), key(seed), created_at).expect("fixture session")
}

/// A revocation at `at` with the given reason.
pub fn revocation_with(at: Timestamp, reason: &str, actor_id: &str) -> Revocation {
    Revocation::new(
        at,
        RevokeReasonCode::parse(reason).expect("reason"),
        RevokeActorType::parse("admin").expect("actor type"),
        RevokeActorId::parse(actor_id).expect("actor id"),
    )
    .expect("fixture revocation")
}

/// A revocation at `at` (`logout` by `admin`/`ops-1`).
pub fn revocation(at: Timestamp) -> Revocation {
    revocation_with(at, "logout", "ops-1")
}

/// Input to revoke one session.
pub fn revoke_input(id_text: &str, at: Timestamp) -> RevokeSessionInput {
    RevokeSessionInput {
        device_session_id: id(id_text),
        revocation: revocation(at),
    }
}

/// Input to revoke a user's sessions.
pub fn revoke_all_input(user_text: &str, at: Timestamp) -> RevokeUserSessionsInput {
    RevokeUserSessionsInput {
        user_id: user(user_text),
        revocation: revocation(at),
    }
}

/// A key space under a base no other test uses (`{tag}:{n}:{pid}:`).
pub fn fresh_key_space(tag: &str) -> KeySpace {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    KeySpace::with_base(&format!("t:{tag}:{n}:{}:", std::process::id())).expect("key base")
}
