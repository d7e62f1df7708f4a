//! What `revoke_all`'s all-sessions walk costs: for each N, one user with N
//! sessions of which 90% are already revoked (in the all-sessions index
//! only) and 10% active, on a private redis-server. Prints one JSON line
//! per N: round trips (every backend call), wall time, batches, calls per
//! command and the slowest single command (SLOWLOG, 0 threshold).
//!
//! `cargo run --release -p authsession-tests --example revoke_all_cost -- 1000 10000`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use authsession_driver::core::{codec, IndexScore, KeySpace};
use authsession_driver::{RedisBackend, SessionStore, Store};
use authsession_tests::fixtures::{active, revocation, revoke_all_input, ts};
use authsession_tests::{CountingBackend, RedisRaw, RedisServer};

async fn load(raw: &RedisRaw, keys: &KeySpace, n: usize) {
    let mut conn = raw.connection();
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let mut pipe = redis::pipe();
        for &i in chunk {
            let mut s = active(
                &format!("s-{i:07}"),
                "big",
                ts(i64::try_from(i).unwrap(), 0),
            );
            let live = i % 10 == 0;
            if !live {
                s = s.revoked(revocation(ts(2_000_000, 0))).unwrap();
            }
            let score = IndexScore::of(s.created_at()).to_string();
            pipe.cmd("SET")
                .arg(keys.record_key(s.user_id(), s.id()))
                .arg(codec::encode(&s))
                .ignore();
            pipe.cmd("ZADD")
                .arg(keys.user_sessions_key(s.user_id()))
                .arg(&score)
                .arg(s.id().as_str())
                .ignore();
            if live {
                pipe.cmd("ZADD")
                    .arg(keys.user_active_sessions_key(s.user_id()))
                    .arg(&score)
                    .arg(s.id().as_str())
                    .ignore();
            }
        }
        let () = pipe.query_async(&mut conn).await.unwrap();
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap())
        .collect();
    for n in sizes {
        let server = RedisServer::start_with(&[
            "--slowlog-log-slower-than",
            "0",
            "--slowlog-max-len",
            "1000000",
        ]);
        let keys = KeySpace::default();
        let raw = server.raw_unhurried().await;
        load(&raw, &keys, n).await;
        let backend = RedisBackend::connect(&server.config(keys.clone()))
            .await
            .unwrap();
        let trips = Arc::new(AtomicU64::new(0));
        let store = Store::with_backend(CountingBackend::new(backend, Arc::clone(&trips)))
            .with_key_space(keys);
        // Load the script first: steady state is what counts.
        store.ping().await.unwrap();
        raw.reset_stats().await;
        trips.store(0, Ordering::Relaxed);
        let started = Instant::now();
        let report = store
            .revoke_all_count(&revoke_all_input("big", ts(3_000_000, 0)))
            .await
            .unwrap();
        let wall = started.elapsed();
        assert_eq!(report.count, n.div_ceil(10) as u64);
        // Ours only: not the measurement's own commands.
        let per_command: Vec<String> = raw
            .command_calls()
            .await
            .into_iter()
            .filter(|(name, _)| {
                !matches!(name.as_str(), "info" | "config|resetstat" | "slowlog|reset")
            })
            .map(|(name, n)| format!("\"{name}\":{n}"))
            .collect();
        let worst_us = raw
            .slowlog()
            .await
            .iter()
            .filter(|e| !matches!(e.command().as_str(), "slowlog" | "info"))
            .map(|e| e.micros)
            .max()
            .unwrap_or(0);
        println!(
            "{{\"n\":{n},\"active\":{},\"round_trips\":{},\"revoke_all_ms\":{:.1},\"batches\":{},\"calls\":{{{}}},\"worst_command_us\":{}}}",
            report.count,
            trips.load(Ordering::Relaxed),
            wall.as_secs_f64() * 1e3,
            report.batches,
            per_command.join(","),
            worst_us,
        );
    }
}
