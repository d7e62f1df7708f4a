//! Values shared by the maintenance walks' unit tests (check, sweep).
#![allow(clippy::unwrap_used)]

use crate::{
    ClientPublicKey, DeviceSessionId, Revocation, RevokeActorId, RevokeActorType, RevokeReasonCode,
    Session, Timestamp, UserId,
};

/// 2024-05-06T07:08:09Z plus `secs`.
pub(crate) fn ts(secs: i64) -> Timestamp {
    Timestamp::from_unix_nanos(i128::from(1_714_979_289 + secs) * 1_000_000_000).unwrap()
}

pub(crate) fn id(s: &str) -> DeviceSessionId {
    DeviceSessionId::parse(s).unwrap()
}

pub(crate) fn user(s: &str) -> UserId {
    UserId::parse(s).unwrap()
}

/// Active session `i` of user `u`, created at `ts(at)`.
pub(crate) fn session(i: &str, u: &str, at: i64) -> Session {
    Session::active(
        id(i),
        user(u),
        ClientPublicKey::from_bytes(&[1; 32]).unwrap(),
        ts(at),
    )
    .unwrap()
}

/// A user's logout at `ts(at)`.
pub(crate) fn revocation(at: i64) -> Revocation {
    Revocation::new(
        ts(at),
        RevokeReasonCode::parse("logout").unwrap(),
        RevokeActorType::parse("user").unwrap(),
        RevokeActorId::empty(),
    )
    .unwrap()
}
