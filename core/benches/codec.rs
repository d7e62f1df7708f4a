//! Encode/decode cost of a typical active and revoked record.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authsession_core::{
    decode, encode, ClientPublicKey, DeviceSessionId, Revocation, RevokeActorId, RevokeActorType,
    RevokeReasonCode, Session, Timestamp, UserId,
};
use criterion::{black_box, criterion_group, criterion_main, Criterion};

fn sessions() -> (Session, Session) {
    let active = Session::active(
        DeviceSessionId::parse("0b0c8d7e-5a3f-4f5e-9a61-2f1f0d9c3a77").unwrap(),
        UserId::parse("user-4d1b7a52").unwrap(),
        ClientPublicKey::from_bytes(&[7; 32]).unwrap(),
        Timestamp::parse("2026-11-27T10:00:00.123456789Z").unwrap(),
    )
    .unwrap();
    let revoked = active
        .clone()
        .revoked(
            Revocation::new(
                Timestamp::parse("2026-11-27T11:00:00Z").unwrap(),
                RevokeReasonCode::parse("user_logout").unwrap(),
                RevokeActorType::parse("user").unwrap(),
                RevokeActorId::parse("user-4d1b7a52").unwrap(),
            )
            .unwrap(),
        )
        .unwrap();
    (active, revoked)
}

fn codec(c: &mut Criterion) {
    let (active, revoked) = sessions();
    let id = active.id().clone();
    for (name, session) in [("active", &active), ("revoked", &revoked)] {
        let bytes = encode(session);
        c.bench_function(&format!("encode/{name}"), |b| {
            b.iter(|| encode(black_box(session)))
        });
        c.bench_function(&format!("decode/{name}"), |b| {
            b.iter(|| decode(black_box(&id), black_box(&bytes)).unwrap())
        });
    }
}

criterion_group!(benches, codec);
criterion_main!(benches);
