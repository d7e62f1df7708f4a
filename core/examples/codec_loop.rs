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

use authsession_core::{decode, encode};

#[path = "../benches/fixtures/mod.rs"]
mod fixtures;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (op, which, n) = (
        args[1].as_str(),
        args[2].as_str(),
        args[3].parse::<usize>().unwrap(),
    );
    let (active, revoked) = fixtures::sessions();
    let session = if which == "revoked" { revoked } else { active };
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
