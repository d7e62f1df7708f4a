//! Encode/decode cost of a typical active and revoked record.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use authsession_core::{decode, encode};
use criterion::{black_box, criterion_group, criterion_main, Criterion};

mod fixtures;

fn codec(c: &mut Criterion) {
    let (active, revoked) = fixtures::sessions();
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
