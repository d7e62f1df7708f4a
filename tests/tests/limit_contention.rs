//! The active-session limit under contention: 64 concurrent creators on
//! one user with `max_active_sessions = N`, while a reader polls the
//! active index's cardinality raw (`ZCARD`, behind the store's back). The
//! count never exceeds N at any observed instant; `reject` fails only with
//! `session_limit`, `revoke-oldest` never fails; afterwards every record
//! agrees with every index. Again with retention on (evicted sessions
//! expire while the run goes on and creates remove them).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use authsession_driver::core::op::{OnLimit, Policy, SessionLimit};
use authsession_driver::core::{RevokeSessionOutcome, Timestamp};
use authsession_driver::{Clock, ErrorKind, MemorySessionStore, SessionStore};
use authsession_tests::fixtures::{active, fresh_key_space, revoke_input, ts, user};
use authsession_tests::growth::{assert_consistent, RawScan};
use authsession_tests::{MemoryRaw, RedisServer};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const CREATORS: usize = 64;
const CREATES_EACH: usize = 8;
const LIMIT: u32 = 5;
const USER: &str = "the-limited-user";

/// A clock that moves forward a millisecond every time it is read, so
/// revocations made by the limit age past a short retention during the
/// run, deterministically.
fn ticking_clock() -> Clock {
    let ticks = Arc::new(AtomicI64::new(0));
    Clock::from_fn(move || {
        let n = ticks.fetch_add(1, Ordering::Relaxed);
        ts(1000, 0)
            .checked_add_nanos(i128::from(n) * 1_000_000)
            .unwrap()
    })
}

#[derive(Debug, Default)]
struct Outcome {
    created: usize,
    /// `reject` runs: sessions their creator revoked right away (making
    /// room, and with retention soon expired).
    self_revoked: usize,
    limited: usize,
    evicted: Vec<String>,
    max_seen: u64,
    polls: u64,
}

/// The raw reader: polls the active index's cardinality behind the
/// store's back until told the creators are done (and once more after),
/// returning the largest count seen and the number of polls. It signals
/// `ready` after its first poll.
type StartReader =
    Box<dyn FnOnce(Arc<AtomicBool>, oneshot::Sender<()>) -> JoinHandle<(u64, u64)> + Send>;

/// Runs the creators while the reader polls.
async fn contend<S>(store: S, on_limit: OnLimit, start_reader: StartReader) -> Outcome
where
    S: SessionStore + Clone + 'static,
{
    let done = Arc::new(AtomicBool::new(false));
    let (ready, started) = oneshot::channel();
    let reader = start_reader(Arc::clone(&done), ready);
    started.await.unwrap();
    let mut tasks = Vec::new();
    for worker in 0..CREATORS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut outcome = Outcome::default();
            for n in 0..CREATES_EACH {
                let sid = format!("w{worker:02}-{n}");
                // Creation times interleave across workers.
                let created_at = ts(0, i64::try_from(n * CREATORS + worker).unwrap() * 1000);
                match store.create(&active(&sid, USER, created_at)).await {
                    Ok(created) => {
                        outcome.created += 1;
                        if on_limit == OnLimit::Reject && n % 2 == 0 {
                            let input = revoke_input(&sid, ts(500, 0));
                            let revoked = store.revoke(&input).await.unwrap_or_else(|e| {
                                panic!("revoke {sid}: {} {e}", e.kind().as_str())
                            });
                            assert!(matches!(revoked, RevokeSessionOutcome::Revoked(_)));
                            outcome.self_revoked += 1;
                        }
                        for s in &created.evicted {
                            let r = s.revocation().unwrap();
                            assert_eq!(r.reason_code().as_str(), "session_limit");
                            assert_eq!(r.actor_type().as_str(), "system");
                        }
                        outcome
                            .evicted
                            .extend(created.evicted.iter().map(|s| s.id().as_str().to_owned()));
                    }
                    Err(e)
                        if e.kind() == ErrorKind::SessionLimit && on_limit == OnLimit::Reject =>
                    {
                        outcome.limited += 1;
                    }
                    Err(e) => panic!("create {sid}: {} {e}", e.kind().as_str()),
                }
            }
            outcome
        }));
    }
    let mut total = Outcome::default();
    for task in tasks {
        let o = task.await.unwrap();
        total.created += o.created;
        total.self_revoked += o.self_revoked;
        total.limited += o.limited;
        total.evicted.extend(o.evicted);
    }
    done.store(true, Ordering::Release);
    let (max_seen, polls) = reader.await.unwrap();
    total.max_seen = max_seen;
    total.polls = polls;
    total
}

fn policy(on_limit: OnLimit, retention: Option<Duration>) -> Policy {
    Policy {
        session_limit: SessionLimit::new(LIMIT, on_limit),
        revoked_retention: retention,
        ..Policy::default()
    }
}

async fn check_after<S: SessionStore, R: RawScan>(
    store: &S,
    raw: &R,
    on_limit: OnLimit,
    retention: bool,
    outcome: &Outcome,
) {
    let attempts = CREATORS * CREATES_EACH;
    eprintln!(
        "{on_limit:?} retention={retention}: created {} (revoked again {}), limited {}, evicted {}, max active seen {} in {} polls",
        outcome.created,
        outcome.self_revoked,
        outcome.limited,
        outcome.evicted.len(),
        outcome.max_seen,
        outcome.polls
    );
    assert!(outcome.polls > 0);
    assert!(
        outcome.max_seen <= u64::from(LIMIT),
        "the active count reached {} > {LIMIT}",
        outcome.max_seen
    );
    assert_eq!(outcome.created + outcome.limited, attempts);
    let u = user(USER);
    let view = assert_consistent(raw, store.key_space(), "after the run").await;
    let active_now = outcome.created - outcome.self_revoked - outcome.evicted.len();
    assert!(active_now <= LIMIT as usize);
    assert_eq!(view.active_of(&u), active_now);
    assert_eq!(
        store.count_active_by_user_id(&u).await.unwrap(),
        active_now as u64
    );
    match on_limit {
        OnLimit::Reject => {
            assert!(outcome.evicted.is_empty());
            assert!(outcome.limited > 0, "the limit was reached");
            assert!(outcome.created > LIMIT as usize, "revokes made room");
            if retention {
                // The revoked ones expired at once: not listed, and
                // removed by the listing.
                let listed = store.list_by_user_id(&u).await.unwrap();
                assert_eq!(listed.len(), active_now);
                let view = assert_consistent(raw, store.key_space(), "after list").await;
                assert_eq!(view.records.len(), active_now);
            } else {
                assert_eq!(view.records.len(), outcome.created);
            }
        }
        _ => {
            assert_eq!(outcome.created, attempts);
            assert_eq!(active_now, LIMIT as usize);
            // Every create past the limit evicted exactly one session, and
            // no session was evicted twice.
            assert_eq!(outcome.evicted.len(), attempts - LIMIT as usize);
            let distinct: BTreeSet<&String> = outcome.evicted.iter().collect();
            assert_eq!(distinct.len(), outcome.evicted.len());
            if retention {
                // Most evicted sessions aged out and were removed.
                assert!(view.records.len() < attempts, "{}", view.records.len());
            } else {
                assert_eq!(view.records.len(), attempts);
            }
        }
    }
}

async fn on_memory(on_limit: OnLimit, retention: Option<Duration>) {
    let keys = fresh_key_space("limit-memory");
    let active_key = keys.user_active_sessions_key(&user(USER));
    let store = MemorySessionStore::new(keys)
        .with_policy(policy(on_limit, retention))
        .with_clock(ticking_clock());
    let polled = store.clone();
    // The memory store never waits, so its creators seldom yield: poll
    // from a thread of its own, under the store's lock like every plan.
    let start: StartReader = Box::new(move |done, ready| {
        tokio::task::spawn_blocking(move || {
            let mut ready = Some(ready);
            let (mut max_seen, mut polls) = (0u64, 0u64);
            loop {
                let finished = done.load(Ordering::Acquire);
                let n = polled.with_kv(|kv| kv.index_len(&active_key));
                max_seen = max_seen.max(u64::try_from(n).unwrap());
                polls += 1;
                if let Some(ready) = ready.take() {
                    ready.send(()).unwrap();
                }
                if finished {
                    return (max_seen, polls);
                }
                std::thread::yield_now();
            }
        })
    });
    let outcome = contend(store.clone(), on_limit, start).await;
    check_after(
        &store,
        &MemoryRaw(store.clone()),
        on_limit,
        retention.is_some(),
        &outcome,
    )
    .await;
}

async fn on_redis(on_limit: OnLimit, retention: Option<Duration>) {
    let server = RedisServer::start();
    let keys = fresh_key_space("limit-redis");
    let active_key = keys.user_active_sessions_key(&user(USER));
    let store = server
        .store(keys)
        .await
        .with_policy(policy(on_limit, retention))
        .with_clock(ticking_clock())
        // A generous deadline: this machine may be busy compiling; the
        // point is that the retry *count* is never exhausted.
        .with_operation_timeout(Duration::from_secs(20))
        .unwrap();
    // The reader has its own connection: its polls interleave with the
    // store's commands on the server.
    let reader = server.raw().await;
    let started = std::time::Instant::now();
    let start: StartReader = Box::new(move |done, ready| {
        tokio::spawn(async move {
            let mut ready = Some(ready);
            let (mut max_seen, mut polls) = (0u64, 0u64);
            loop {
                let finished = done.load(Ordering::Acquire);
                let n: u64 = reader.query(redis::cmd("ZCARD").arg(&active_key)).await;
                max_seen = max_seen.max(n);
                polls += 1;
                if let Some(ready) = ready.take() {
                    ready.send(()).unwrap();
                }
                if finished {
                    return (max_seen, polls);
                }
            }
        })
    });
    let outcome = contend(store.clone(), on_limit, start).await;
    // Measurement only: how the server spent the run.
    let raw = server.raw().await;
    let stats: String = raw.query(redis::cmd("INFO").arg("commandstats")).await;
    let evalsha = stats
        .lines()
        .find(|l| l.starts_with("cmdstat_evalsha:"))
        .unwrap_or("cmdstat_evalsha:none");
    eprintln!("{on_limit:?}: {:?}, {evalsha}", started.elapsed());
    check_after(&store, &raw, on_limit, retention.is_some(), &outcome).await;
}

const RETENTION: Duration = Duration::from_millis(50);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_revoke_oldest() {
    on_memory(OnLimit::RevokeOldest, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_reject() {
    on_memory(OnLimit::Reject, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_revoke_oldest_with_retention() {
    on_memory(OnLimit::RevokeOldest, Some(RETENTION)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_reject_with_retention() {
    on_memory(OnLimit::Reject, Some(RETENTION)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_revoke_oldest() {
    on_redis(OnLimit::RevokeOldest, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_reject() {
    on_redis(OnLimit::Reject, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_revoke_oldest_with_retention() {
    on_redis(OnLimit::RevokeOldest, Some(RETENTION)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_reject_with_retention() {
    on_redis(OnLimit::Reject, Some(RETENTION)).await;
}

#[test]
fn the_ticking_clock_moves_forward() {
    let clock = ticking_clock();
    let (a, b): (Timestamp, Timestamp) = (clock.now(), clock.now());
    assert!(b > a);
}
