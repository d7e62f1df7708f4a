//! Scale figures for BENCHMARKS.md: for each N, one user with N active
//! sessions on a private redis-server; `revoke_all` wall time and batches,
//! the worst single command's server time (SLOWLOG with a 1 ms threshold:
//! 0 means no command of ours took 1 ms or more), and `list_page` latency walking all N.
//!
//! `cargo run --release -p authsession-tests --example scale -- 1000 10000 100000`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::Instant;

use authsession_driver::core::op::{PageRequest, StatusFilter};
use authsession_driver::core::{codec, IndexScore, KeySpace};
use authsession_driver::{RedisSessionStore, SessionStore};
use authsession_tests::fixtures::{active, revoke_all_input, ts, user};
use authsession_tests::{RedisRaw, RedisServer};

async fn load(raw: &RedisRaw, keys: &KeySpace, n: usize) {
    let mut conn = raw.connection();
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let mut pipe = redis::pipe();
        for &i in chunk {
            let s = active(
                &format!("s-{i:07}"),
                "big",
                ts(1_700_000_000 + i64::try_from(i / 4).unwrap(), 0),
            );
            let score = IndexScore::of(s.created_at()).to_string();
            pipe.cmd("SET")
                .arg(keys.record_key(s.user_id(), s.id()))
                .arg(codec::encode(&s))
                .ignore();
            for index in [
                keys.user_sessions_key(s.user_id()),
                keys.user_active_sessions_key(s.user_id()),
            ] {
                pipe.cmd("ZADD")
                    .arg(index)
                    .arg(&score)
                    .arg(s.id().as_str())
                    .ignore();
            }
        }
        let () = pipe.query_async(&mut conn).await.unwrap();
    }
}

/// The slowest command since the last reset: (µs, command name).
async fn worst(raw: &RedisRaw) -> (i64, String) {
    raw.slowlog()
        .await
        .into_iter()
        .filter(|e| e.command() != "slowlog")
        .map(|e| (e.micros, e.command()))
        .max()
        .unwrap_or_default()
}

/// Mean server time per call of `command` since the last reset (µs).
async fn usec_per_call(raw: &RedisRaw, command: &str) -> f64 {
    raw.command_stats()
        .await
        .get(command)
        .map_or(0.0, |stat| stat.usec_per_call)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
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
        // No response timeout: loading and SLOWLOG GET are big replies.
        let raw = server.raw_unhurried().await;
        load(&raw, &keys, n).await;
        let store = RedisSessionStore::connect(server.config(keys.clone()))
            .await
            .unwrap();

        // Pages over all N (active filter = the same index walk).
        raw.reset_stats().await;
        let mut latencies = Vec::new();
        let mut cursor = None;
        let mut seen = 0;
        loop {
            let request = PageRequest {
                cursor,
                status: StatusFilter::All,
                ..PageRequest::default()
            };
            let started = Instant::now();
            let page = store.list_page(&user("big"), &request).await.unwrap();
            latencies.push(started.elapsed().as_secs_f64() * 1e6);
            seen += page.sessions.len();
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, n);
        let page_worst = worst(&raw).await;
        let zrange_mean = usec_per_call(&raw, "zrange").await;
        let mget_mean = usec_per_call(&raw, "mget").await;
        latencies.sort_by(f64::total_cmp);

        raw.reset_stats().await;
        let started = Instant::now();
        let report = store
            .revoke_all_count(&revoke_all_input("big", ts(1_900_000_000, 0)))
            .await
            .unwrap();
        let wall = started.elapsed();
        assert_eq!(report.count, n as u64);
        let revoke_worst = worst(&raw).await;
        let evalsha_mean = usec_per_call(&raw, "evalsha").await;
        println!(
            "{{\"n\":{n},\"revoke_all_ms\":{:.1},\"batches\":{},\"revoke_all_worst_command_us\":{},\"revoke_all_worst_command\":\"{}\",\"evalsha_mean_us\":{:.0},\"zrange_mean_us\":{:.0},\"mget_mean_us\":{:.0},\"pages\":{},\"page_p50_us\":{:.0},\"page_p99_us\":{:.0},\"page_max_us\":{:.0},\"page_worst_command_us\":{},\"page_worst_command\":\"{}\"}}",
            wall.as_secs_f64() * 1e3,
            report.batches,
            revoke_worst.0,
            revoke_worst.1,
            evalsha_mean,
            zrange_mean,
            mget_mean,
            latencies.len(),
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            latencies.last().copied().unwrap_or(0.0),
            page_worst.0,
            page_worst.1,
        );
    }
}
