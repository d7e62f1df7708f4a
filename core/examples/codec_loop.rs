//! Runs encode or decode of a typical record N times, for instruction
//! counting under `valgrind --tool=callgrind` (repeatable on a busy
//! machine, unlike wall time). Usage: `codec_loop encode|decode active|revoked N`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

use std::hint::black_box;

use authsession_core::{
    decode, encode, ClientPublicKey, DeviceSessionId, Revocation, RevokeActorId, RevokeActorType,
    RevokeReasonCode, Session, Timestamp, UserId,
};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (op, which, n) = (
        args[1].as_str(),
        args[2].as_str(),
        args[3].parse::<usize>().unwrap(),
    );
    let active = Session::active(
        DeviceSessionId::parse("0b0c8d7e-5a3f-4f5e-9a61-2f1f0d9c3a77").unwrap(),
        UserId::parse("user-4d1b7a52").unwrap(),
        ClientPublicKey::from_bytes(&[7; 32]).unwrap(),
        Timestamp::parse("2026-11-27T10:00:00.123456789Z").unwrap(),
    )
    .unwrap();
    let session = if which == "revoked" {
        let at = Timestamp::parse("2026-11-27T11:00:00Z").unwrap();
        let revocation = Revocation::new(
            at,
            RevokeReasonCode::parse("user_logout").unwrap(),
            RevokeActorType::parse("user").unwrap(),
            RevokeActorId::parse("user-4d1b7a52").unwrap(),
        )
        .unwrap();
        active.revoked(revocation).unwrap()
    } else {
        active
    };
    let bytes = encode(&session);
    let id = session.id().clone();
    for _ in 0..n {
        if op == "encode" {
            black_box(encode(black_box(&session)));
        } else {
            black_box(decode(black_box(&id), black_box(&bytes)).unwrap());
        }
    }
}
