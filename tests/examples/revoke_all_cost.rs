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
use std::time::{Duration, Instant};

use authsession_driver::backend::{Backend, BackendInfo};
use authsession_driver::core::plan::{Applied, Plan, Read, Reply};
use authsession_driver::core::{codec, IndexScore, KeySpace};
use authsession_driver::{Error, RedisBackend, SessionStore, Store};
use authsession_tests::fixtures::{active, revocation, revoke_all_input, ts};
use authsession_tests::{RedisRaw, RedisServer};

/// Counts the store's round trips: every backend call is one.
#[derive(Debug)]
struct Counting(RedisBackend, Arc<AtomicU64>);

impl Backend for Counting {
    fn info(&self) -> &BackendInfo {
        self.0.info()
    }
    async fn ping(&self, budget: Duration) -> Result<(), Error> {
        self.1.fetch_add(1, Ordering::Relaxed);
        self.0.ping(budget).await
    }
    async fn read(&self, budget: Duration, reads: &[Read]) -> Result<Vec<Reply>, Error> {
        self.1.fetch_add(1, Ordering::Relaxed);
        self.0.read(budget, reads).await
    }
    async fn apply(&self, budget: Duration, plan: &Plan) -> Result<Applied, Error> {
        self.1.fetch_add(1, Ordering::Relaxed);
        self.0.apply(budget, plan).await
    }
    async fn delete(&self, budget: Duration, keys: &[String]) -> Result<u64, Error> {
        self.1.fetch_add(1, Ordering::Relaxed);
        self.0.delete(budget, keys).await
    }
}

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

/// Calls per command since the last reset.
async fn calls(raw: &RedisRaw) -> Vec<(String, u64)> {
    let info: String = raw.query(redis::cmd("INFO").arg("commandstats")).await;
    let mut out = Vec::new();
    for line in info.lines() {
        let Some(rest) = line.strip_prefix("cmdstat_") else {
            continue;
        };
        let Some((name, fields)) = rest.split_once(':') else {
            continue;
        };
        if matches!(name, "info" | "config|resetstat" | "slowlog|reset") {
            continue;
        }
        let n = fields
            .split(',')
            .find_map(|kv| kv.strip_prefix("calls="))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        out.push((name.to_owned(), n));
    }
    out
}

/// The slowest command since the last reset, µs.
async fn worst_us(raw: &RedisRaw) -> u64 {
    let entries: Vec<redis::Value> = raw.query(redis::cmd("SLOWLOG").arg("GET").arg(-1)).await;
    entries
        .into_iter()
        .filter_map(|e| match e {
            redis::Value::Array(fields) => {
                let args: Vec<Vec<u8>> =
                    redis::from_redis_value(fields[3].clone()).unwrap_or_default();
                let ours = args.first().is_some_and(|a| {
                    !a.eq_ignore_ascii_case(b"slowlog") && !a.eq_ignore_ascii_case(b"info")
                });
                ours.then(|| redis::from_redis_value::<u64>(fields[2].clone()).unwrap_or(0))
            }
            _ => None,
        })
        .max()
        .unwrap_or(0)
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
        let client = redis::Client::open(server.url()).unwrap();
        let conn = client
            .get_multiplexed_async_connection_with_config(
                &redis::AsyncConnectionConfig::new().set_response_timeout(None),
            )
            .await
            .unwrap();
        let raw = RedisRaw::new(conn);
        load(&raw, &keys, n).await;
        let backend = RedisBackend::connect(&server.config(keys.clone()))
            .await
            .unwrap();
        let trips = Arc::new(AtomicU64::new(0));
        let store = Store::with_backend(Counting(backend, Arc::clone(&trips))).with_key_space(keys);
        // Load the script first: steady state is what counts.
        store.ping().await.unwrap();
        let _: () = raw.query(redis::cmd("SLOWLOG").arg("RESET")).await;
        let _: () = raw.query(redis::cmd("CONFIG").arg("RESETSTAT")).await;
        trips.store(0, Ordering::Relaxed);
        let started = Instant::now();
        let report = store
            .revoke_all_count(&revoke_all_input("big", ts(3_000_000, 0)))
            .await
            .unwrap();
        let wall = started.elapsed();
        assert_eq!(report.count, n.div_ceil(10) as u64);
        let per_command: Vec<String> = calls(&raw)
            .await
            .into_iter()
            .map(|(name, n)| format!("\"{name}\":{n}"))
            .collect();
        println!(
            "{{\"n\":{n},\"active\":{},\"round_trips\":{},\"revoke_all_ms\":{:.1},\"batches\":{},\"calls\":{{{}}},\"worst_command_us\":{}}}",
            report.count,
            trips.load(Ordering::Relaxed),
            wall.as_secs_f64() * 1e3,
            report.batches,
            per_command.join(","),
            worst_us(&raw).await,
        );
    }
}
