//! Differential test: random operation sequences (with raw corruption
//! mixed in) give identical results on the memory store and the Redis
//! store — same outcomes, same error kinds and keys, same final audit.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use authsession_driver::core::{IndexScore, KeySpace, Timestamp};
use authsession_driver::{CheckMode, MemorySessionStore, SessionAdmin, SessionStore};
use authsession_tests::fixtures::{
    active, id, revocation, revoke_all_input, revoke_input, ts, user,
};
use authsession_tests::{MemoryRaw, RawKv, RedisServer};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

#[derive(Debug, Clone)]
enum Op {
    Create {
        id: u8,
        user: u8,
        at: (i64, i64),
        revoked_after: Option<i64>,
    },
    Get(u8),
    List(u8),
    Count(u8),
    Revoke {
        id: u8,
        at: (i64, i64),
    },
    RevokeAll {
        user: u8,
        at: (i64, i64),
    },
    PlantGarbage(u8),
    PlantIndexMember {
        user: u8,
        id: u8,
        active: bool,
    },
    DeleteRecord(u8),
    PlantSortedSetAtRecord(u8),
    PlantStringAtIndex {
        user: u8,
        active: bool,
    },
    Check {
        repair: bool,
    },
}

fn instant() -> impl Strategy<Value = (i64, i64)> {
    (
        0i64..12,
        prop_oneof![Just(0i64), Just(1), Just(500), Just(999_999_999)],
    )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..6, 0u8..3, instant(), proptest::option::weighted(0.2, 0i64..3)).prop_map(
            |(id, user, at, revoked_after)| Op::Create { id, user, at, revoked_after }
        ),
        2 => (0u8..6).prop_map(Op::Get),
        2 => (0u8..3).prop_map(Op::List),
        1 => (0u8..3).prop_map(Op::Count),
        3 => (0u8..6, instant()).prop_map(|(id, at)| Op::Revoke { id, at }),
        3 => (0u8..3, instant()).prop_map(|(user, at)| Op::RevokeAll { user, at }),
        1 => (0u8..6).prop_map(Op::PlantGarbage),
        1 => (0u8..3, 0u8..7, any::<bool>())
            .prop_map(|(user, id, active)| Op::PlantIndexMember { user, id, active }),
        1 => (0u8..6).prop_map(Op::DeleteRecord),
        1 => (0u8..6).prop_map(Op::PlantSortedSetAtRecord),
        1 => (0u8..3, any::<bool>()).prop_map(|(user, active)| Op::PlantStringAtIndex { user, active }),
        1 => any::<bool>().prop_map(|repair| Op::Check { repair }),
    ]
}

fn sid(n: u8) -> String {
    format!("s{n}")
}

fn uid(n: u8) -> String {
    format!("u{n}")
}

fn at((secs, nanos): (i64, i64)) -> Timestamp {
    ts(secs, nanos)
}

/// Runs `op` on `store` (raw ops through `raw`) and renders the result
/// comparably: the value, or the error's kind, key and detail.
async fn run<S: SessionStore + SessionAdmin, R: RawKv>(store: &S, raw: &R, op: &Op) -> String {
    fn show<T: std::fmt::Debug>(r: Result<T, authsession_driver::Error>) -> String {
        match r {
            Ok(v) => format!("ok {v:?}"),
            Err(e) => format!(
                "err {} {:?} {:?}",
                e.kind().as_str(),
                e.key(),
                e.detail_kind()
            ),
        }
    }
    let keys: KeySpace = store.key_space().clone();
    match op {
        Op::Create {
            id: n,
            user: u,
            at: t,
            revoked_after,
        } => {
            let mut s = active(&sid(*n), &uid(*u), at(*t));
            if let Some(after) = revoked_after {
                s = s.revoked(revocation(ts(t.0 + after, t.1))).unwrap();
            }
            show(store.create(&s).await.map(drop))
        }
        Op::Get(n) => show(store.get(&id(&sid(*n))).await),
        Op::List(u) => show(store.list_by_user_id(&user(&uid(*u))).await),
        Op::Count(u) => show(store.count_active_by_user_id(&user(&uid(*u))).await),
        Op::Revoke { id: n, at: t } => show(store.revoke(&revoke_input(&sid(*n), at(*t))).await),
        Op::RevokeAll { user: u, at: t } => show(
            store
                .revoke_all_by_user_id(&revoke_all_input(&uid(*u), at(*t)))
                .await,
        ),
        Op::PlantGarbage(n) => {
            raw.set(
                &keys.reference_record_key(&id(&sid(*n))),
                b"{\"garbage\":true}",
            )
            .await;
            "planted".into()
        }
        Op::PlantIndexMember {
            user: u,
            id: n,
            active,
        } => {
            let u = user(&uid(*u));
            let key = if *active {
                keys.user_active_sessions_key(&u)
            } else {
                keys.user_sessions_key(&u)
            };
            // Score as if created at the id's number of seconds.
            let score = IndexScore::of(ts(i64::from(*n), 0)).as_f64();
            raw.zadd(&key, &sid(*n), score).await;
            "planted".into()
        }
        Op::PlantSortedSetAtRecord(n) => {
            let key = keys.reference_record_key(&id(&sid(*n)));
            raw.del(&key).await;
            raw.zadd(&key, "x", 1.0).await;
            "planted".into()
        }
        Op::PlantStringAtIndex { user: u, active } => {
            let u = user(&uid(*u));
            let key = if *active {
                keys.user_active_sessions_key(&u)
            } else {
                keys.user_sessions_key(&u)
            };
            raw.set(&key, b"not an index").await;
            "planted".into()
        }
        Op::DeleteRecord(n) => {
            raw.del(&keys.reference_record_key(&id(&sid(*n)))).await;
            "deleted".into()
        }
        Op::Check { repair } => show(
            store
                .check(if *repair {
                    CheckMode::Repair
                } else {
                    CheckMode::Report
                })
                .await
                .map(|r| {
                    let problems: Vec<String> = r
                        .problems
                        .iter()
                        .map(|p| format!("{} {}", p.kind(), p.key()))
                        .collect();
                    (r.records, r.index_entries, problems, r.repaired)
                }),
        ),
    }
}

#[test]
fn memory_and_redis_stores_agree() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = RedisServer::start();
    let case = std::cell::Cell::new(0u32);
    let created = std::cell::Cell::new(0u32);
    let mut runner = TestRunner::new(Config {
        cases: 48,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&proptest::collection::vec(op(), 1..60), |ops| {
        case.set(case.get() + 1);
        rt.block_on(async {
            // The same key base for both, so keys in results compare equal;
            // a new base per case keeps cases apart on the shared server.
            let keys = KeySpace::with_base(&format!("diff:{}:", case.get())).unwrap();
            let memory = MemorySessionStore::new(keys.clone());
            let memory_raw = MemoryRaw(memory.clone());
            let redis = server.store(keys).await;
            let redis_raw = server.raw().await;
            for (step, op) in ops.iter().enumerate() {
                let m = run(&memory, &memory_raw, op).await;
                let r = run(&redis, &redis_raw, op).await;
                if matches!(op, Op::Create { .. }) && m == "ok ()" {
                    created.set(created.get() + 1);
                }
                if m != r {
                    return Err(TestCaseError::fail(format!(
                        "step {step} {op:?}:\n memory: {m}\n redis:  {r}"
                    )));
                }
            }
            // Same final state, byte for byte where it matters.
            let final_m = run(&memory, &memory_raw, &Op::Check { repair: false }).await;
            let final_r = run(&redis, &redis_raw, &Op::Check { repair: false }).await;
            prop_assert_eq!(final_m, final_r);
            for n in 0..6 {
                let key = memory.key_space().reference_record_key(&id(&sid(n)));
                prop_assert_eq!(memory_raw.get(&key).await, redis_raw.get(&key).await);
            }
            Ok(())
        })
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    // The generator is not degenerate: sessions were really created.
    assert!(created.get() > 50, "only {} creates", created.get());
}
