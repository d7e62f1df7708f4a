//! Writes fail safe or not at all, on a real server: every mutating
//! operation (create, revoke, revoke-all, check --repair, sweep; with and
//! without a retention and a revoke-oldest limit; both layouts) is run by
//! an ACL user lacking ONE write command it uses (found by running it with
//! full rights and reading `INFO commandstats`). It must fail with
//! `permission_denied`, and afterwards, read through a privileged
//! connection, no active record lies outside its user's active or
//! all-sessions index, no revoked-index member names an active record, and
//! no index entry lacks its record unless it is the entry of the session
//! being created. Where the server checks a script's writes up front
//! (`redis.acl_check_cmd`: Redis 7.0+, Valkey) nothing at all is written.
//!
//! Runs on whatever `AUTHSESSION_TEST_REDIS_SERVER` names (default
//! `redis-server`); which server it is comes from the server (`INFO
//! server`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use authsession_driver::core::op::{OnLimit, Policy, SessionLimit};
use authsession_driver::core::{decode, DeviceSessionId, Index, KeySpace, Layout};
use authsession_driver::{
    CheckMode, Clock, Error, ErrorKind, RedisSessionStore, SessionAdmin, SessionStore,
};
use authsession_tests::fixtures::{active, id, revoke_all_input, revoke_input, ts, user};
use authsession_tests::raw::RawKv as _;
use authsession_tests::{RedisRaw, RedisServer, ServerInfo};

/// The script's write commands.
const WRITES: [&str; 4] = ["mset", "del", "zadd", "zrem"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Create,
    Revoke,
    RevokeAll,
    /// `check --repair` of an active record outside its active index.
    RepairMissing,
    /// `check --repair` of an all-sessions member without a record.
    RepairDangling,
    Sweep,
}

/// Each a single plan in these set-ups, so "nothing written" is exact.
const OPS: [Op; 6] = [
    Op::Create,
    Op::Revoke,
    Op::RevokeAll,
    Op::RepairMissing,
    Op::RepairDangling,
    Op::Sweep,
];

struct Fixture {
    server: RedisServer,
    raw: RedisRaw,
    /// The server under test, as it describes itself.
    info: ServerInfo,
    now: Arc<AtomicI64>,
}

/// Every key under the prefix base with what it holds (a value or a
/// sorted set's members with scores).
type Dump = BTreeMap<String, Result<Vec<u8>, Vec<(String, f64)>>>;

impl Fixture {
    async fn start() -> Self {
        let server = RedisServer::start();
        let raw = server.raw().await;
        let info = server.info().await;
        Self {
            server,
            raw,
            info,
            now: Arc::new(AtomicI64::new(0)),
        }
    }

    async fn store(
        &self,
        keys: &KeySpace,
        policy: Policy,
        login: Option<&str>,
    ) -> RedisSessionStore {
        let config = {
            let mut config = self.server.config(keys.clone());
            config.settings.username = login.map(str::to_owned);
            config.settings.password = login.map(|_| "pw".to_owned());
            config.settings.policy = policy;
            config
        };
        let now = Arc::clone(&self.now);
        RedisSessionStore::connect(config)
            .await
            .unwrap()
            .with_clock(Clock::from_fn(move || ts(now.load(Ordering::Relaxed), 0)))
    }

    /// An ACL user with every right but `command`.
    async fn user_without(&self, command: &str) -> String {
        let name = format!("no-{command}");
        let _: i64 = self
            .raw
            .query(redis::cmd("ACL").arg("DELUSER").arg(&name))
            .await;
        let () = self
            .raw
            .query(
                redis::cmd("ACL")
                    .arg("SETUSER")
                    .arg(&name)
                    .arg(&["on", ">pw", "~*", "+@all"][..])
                    .arg(format!("-{command}")),
            )
            .await;
        name
    }

    async fn dump(&self, base: &str) -> Dump {
        let keys: Vec<String> = self
            .raw
            .query(redis::cmd("KEYS").arg(format!("{base}*")))
            .await;
        let mut dump = Dump::new();
        for key in keys {
            let kind: String = self.raw.query(redis::cmd("TYPE").arg(&key)).await;
            let value = if kind == "zset" {
                Err(self.raw.zrange(&key).await)
            } else {
                Ok(self.raw.get(&key).await.unwrap())
            };
            dump.insert(key, value);
        }
        dump
    }

    /// The write commands the server ran (inside scripts too).
    async fn writes_run(&self) -> BTreeSet<String> {
        let calls = self.raw.command_calls().await;
        WRITES
            .iter()
            .filter(|c| calls.get(**c).is_some_and(|n| *n > 0))
            .map(|c| (*c).to_owned())
            .collect()
    }

    async fn reset_stats(&self) {
        let () = self.raw.query(redis::cmd("CONFIG").arg("RESETSTAT")).await;
    }
}

fn policies() -> [(&'static str, Policy); 2] {
    [
        ("plain", Policy::default()),
        (
            "retention+limit",
            Policy {
                revoked_retention: Some(Duration::from_secs(3600)),
                session_limit: SessionLimit::new(2, OnLimit::RevokeOldest),
                ..Policy::default()
            },
        ),
    ]
}

/// The state each run starts from, under `base`: user `u` with two active
/// sessions, one revoked long ago (expired under the retention), and for
/// the repairs, index drift (an active record outside its active index,
/// or a dangling member).
async fn setup(f: &Fixture, keys: &KeySpace, policy: Policy, op: Op) {
    f.now.store(1_000, Ordering::Relaxed);
    let store = f.store(keys, policy, None).await;
    store.create(&active("s-0", "u", ts(1, 0))).await.unwrap();
    store.revoke(&revoke_input("s-0", ts(2, 0))).await.unwrap();
    store.create(&active("s-1", "u", ts(10, 0))).await.unwrap();
    store.create(&active("s-2", "u", ts(11, 0))).await.unwrap();
    let u = user("u");
    match op {
        Op::RepairMissing => f.raw.zrem(&keys.user_active_sessions_key(&u), "s-1").await,
        Op::RepairDangling => f.raw.zadd(&keys.user_sessions_key(&u), "ghost", 5e15).await,
        _ => {}
    }
    // Past s-0's retention.
    f.now.store(100_000, Ordering::Relaxed);
}

async fn run(store: &RedisSessionStore, op: Op) -> Result<(), Error> {
    match op {
        Op::Create => store
            .create(&active("s-3", "u", ts(50_000, 0)))
            .await
            .map(drop),
        Op::Revoke => store
            .revoke(&revoke_input("s-2", ts(60_000, 0)))
            .await
            .map(drop),
        Op::RevokeAll => store
            .revoke_all_by_user_id(&revoke_all_input("u", ts(60_000, 0)))
            .await
            .map(drop),
        Op::RepairMissing | Op::RepairDangling => store.check(CheckMode::Repair).await.map(drop),
        Op::Sweep => store.sweep().await.map(drop),
    }
}

/// What is unsafe in `dump` (empty: nothing). `creating`: the session the
/// operation was creating, whose index entries may precede its record.
fn unsafe_state(keys: &KeySpace, dump: &Dump, creating: Option<&str>) -> Vec<String> {
    let mut problems = Vec::new();
    let members = |key: &str| -> Vec<String> {
        match dump.get(key) {
            Some(Err(members)) => members.iter().map(|(m, _)| m.clone()).collect(),
            _ => Vec::new(),
        }
    };
    for (key, value) in dump {
        if let (Some((_, sid)), Ok(bytes)) = (keys.parse_record_key(key), value) {
            let session = decode(&sid, bytes).unwrap();
            let u = session.user_id();
            if session.is_active() {
                for index in [keys.user_active_sessions_key(u), keys.user_sessions_key(u)] {
                    if !members(&index).iter().any(|m| m == sid.as_str()) {
                        problems.push(format!("active {key} outside {index}"));
                    }
                }
            }
        }
    }
    for (index, value) in dump {
        let Err(entries) = value else { continue };
        let owner = keys
            .parse_any_index_key(index)
            .map(|(_, user)| user)
            .expect("an index key");
        for (member, _) in entries {
            if member == "ghost" || Some(member.as_str()) == creating {
                continue; // planted by the repair's set-up / being created
            }
            let sid = DeviceSessionId::parse(member).unwrap();
            let record = keys.record_key(&owner, &sid);
            match dump.get(&record) {
                Some(Ok(bytes)) => {
                    let session = decode(&sid, bytes).unwrap();
                    if keys.parse_index_key(Index::Revoked, index).is_some() && session.is_active()
                    {
                        problems.push(format!("{index} names active {record}"));
                    }
                }
                _ => problems.push(format!("{index} names missing {record}")),
            }
        }
    }
    problems
}

#[tokio::test]
async fn a_user_lacking_one_write_command_fails_safe_in_every_operation() {
    let f = Fixture::start().await;
    let mut runs = 0;
    let mut round = 0;
    for layout in [Layout::Reference, Layout::Tagged] {
        for (policy_name, policy) in policies() {
            for op in OPS {
                // What the operation writes with full rights.
                round += 1;
                let base = format!("f{round}:");
                let keys = KeySpace::with_base_and_layout(&base, layout).unwrap();
                setup(&f, &keys, policy, op).await;
                let full = f.store(&keys, policy, None).await;
                f.reset_stats().await;
                run(&full, op).await.unwrap();
                let used = f.writes_run().await;
                assert!(
                    !used.is_empty() || (op == Op::Sweep && policy.revoked_retention.is_none()),
                    "{op:?} {policy_name}: writes nothing?"
                );
                for command in &used {
                    round += 1;
                    let base = format!("f{round}:");
                    let keys = KeySpace::with_base_and_layout(&base, layout).unwrap();
                    setup(&f, &keys, policy, op).await;
                    let login = f.user_without(command).await;
                    let store = f.store(&keys, policy, Some(&login)).await;
                    let before = f.dump(&base).await;
                    let what = format!(
                        "{}: {op:?} ({policy_name}, {layout:?}) without {command}",
                        f.info
                    );
                    let err = run(&store, op).await.expect_err(&what);
                    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{what}: {err}");
                    assert!(!err.to_string().contains('\n'), "{what}: {err}");
                    let mut after = f.dump(&base).await;
                    let creating = (op == Op::Create).then_some("s-3");
                    let unsafe_before = unsafe_state(&keys, &before, creating);
                    let unsafe_after = unsafe_state(&keys, &after, creating);
                    let new: Vec<_> = unsafe_after
                        .iter()
                        .filter(|p| !unsafe_before.contains(p))
                        .collect();
                    assert!(new.is_empty(), "{what}: {new:?}");
                    if f.info.has_acl_check_cmd() {
                        // A create in the tagged layout writes the owner
                        // key first, in a plan of its own that was allowed.
                        if let Some(owner) = keys.owner_key(&id("s-3")) {
                            after.remove(&owner);
                        }
                        assert_eq!(after, before, "{what}: something was written");
                    }
                    runs += 1;
                }
            }
        }
    }
    eprintln!("{}: {runs} refused runs checked", f.info);
    assert!(runs >= 20, "{runs}");
}

/// The script's own refusal (servers with `redis.acl_check_cmd`) names the
/// command and the key, on one line.
#[tokio::test]
async fn the_refusal_names_the_command() {
    let f = Fixture::start().await;
    let keys = KeySpace::with_base("n:").unwrap();
    let login = f.user_without("zadd").await;
    let store = f.store(&keys, Policy::default(), Some(&login)).await;
    let err = store
        .create(&active("s-1", "u", ts(1, 0)))
        .await
        .expect_err("refused");
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    if f.info.has_acl_check_cmd() {
        let text = err.to_string();
        assert!(
            text.contains("ZADD") && text.contains("nothing was written"),
            "{text}"
        );
    }
    assert_eq!(f.dump("n:").await, Dump::new(), "{}", f.info);
}

/// Waits (bounded) until `replica` is online for `primary`, has loaded its
/// data and has acknowledged every write so far (`WAIT`, kept under the
/// raw connection's response timeout).
async fn replicated(primary: &RedisRaw, replica: &RedisRaw) {
    let started = std::time::Instant::now();
    loop {
        let online: String = primary.query(redis::cmd("INFO").arg("replication")).await;
        let link: String = replica.query(redis::cmd("INFO").arg("replication")).await;
        let loading: String = replica.query(redis::cmd("INFO").arg("persistence")).await;
        let ready = online
            .lines()
            .any(|l| l.starts_with("slave0:") && l.contains("state=online"))
            && link.lines().any(|l| l.trim() == "master_link_status:up")
            && loading.lines().any(|l| l.trim() == "loading:0");
        if ready {
            let acked: i64 = primary.query(redis::cmd("WAIT").arg(1).arg(200)).await;
            if acked == 1 {
                return;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the replica never caught up: {online} {link}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Lazy retention removal is best-effort: on a read-only replica and as a
/// user without the writes, reads of expired sessions answer as if they
/// had been removed, and nothing is written.
#[tokio::test]
async fn reads_never_need_writes() {
    let f = Fixture::start().await;
    let policy = Policy {
        revoked_retention: Some(Duration::from_secs(3600)),
        ..Policy::default()
    };
    let keys = KeySpace::with_base("r:").unwrap();
    f.now.store(1_000, Ordering::Relaxed);
    let store = f.store(&keys, policy, None).await;
    store.create(&active("s-1", "u", ts(1, 0))).await.unwrap();
    store.create(&active("s-2", "u", ts(2, 0))).await.unwrap();
    store.revoke(&revoke_input("s-1", ts(3, 0))).await.unwrap();
    // A full sync at once (no wait for more replicas to join).
    let () = f
        .raw
        .query(
            redis::cmd("CONFIG")
                .arg("SET")
                .arg("repl-diskless-sync-delay")
                .arg(0),
        )
        .await;
    let port = f.server.port().to_string();
    let replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &port]);
    let replica_raw = replica.raw().await;
    replicated(&f.raw, &replica_raw).await;
    let dump = |raw: &RedisRaw| {
        let raw = raw.clone();
        async move {
            let mut keys: Vec<String> = raw.query(redis::cmd("KEYS").arg("r:*")).await;
            keys.sort();
            let mut out = Vec::new();
            for key in keys {
                let kind: String = raw.query(redis::cmd("TYPE").arg(&key)).await;
                let members = if kind == "zset" {
                    raw.zrange(&key).await
                } else {
                    Vec::new()
                };
                out.push((key, kind, members));
            }
            out
        }
    };
    let before = dump(&replica_raw).await;

    // s-1 is past its retention now.
    f.now.store(100_000, Ordering::Relaxed);
    let login = f.user_without("@write").await;
    let on_replica = RedisSessionStore::connect({
        let mut config = replica.config(keys.clone());
        config.settings.policy = policy;
        config
    })
    .await
    .unwrap()
    .with_clock(Clock::from_fn(|| ts(100_000, 0)));
    let without_writes = f.store(&keys, policy, Some(&login)).await;
    for (what, reader, refusal) in [
        ("replica", &on_replica, ErrorKind::ReadOnlyReplica),
        ("no writes", &without_writes, ErrorKind::PermissionDenied),
    ] {
        let what = format!("{}: {what}", f.info);
        let u = user("u");
        let err = reader.get(&id("s-1")).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{what}: {err}");
        let err = reader.get_for_user(&u, &id("s-1")).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{what}: {err}");
        let listed = reader.list_by_user_id(&u).await.unwrap();
        assert_eq!(listed.len(), 1, "{what}: {listed:?}");
        assert_eq!(listed[0].id(), &id("s-2"), "{what}");
        let page = reader
            .list_page(&u, &authsession_driver::core::op::PageRequest::default())
            .await
            .unwrap();
        assert_eq!(page.sessions.len(), 1, "{what}: {page:?}");
        // A revoke of the expired session finds nothing to revoke either.
        let err = reader
            .revoke(&revoke_input("s-1", ts(100_000, 0)))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{what}: {err}");
        // Writes proper still fail, with their kind.
        let err = reader
            .create(&active("s-9", "u", ts(9, 0)))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), refusal, "{what}: {err}");
    }
    // Nothing was removed: the record and its entries are all still there.
    replicated(&f.raw, &replica_raw).await;
    assert_eq!(dump(&replica_raw).await, before, "{}", f.info);
    assert_eq!(dump(&f.raw).await, before, "{}", f.info);
}

/// A server at `maxmemory` (policy `noeviction`) refuses a script only at
/// its first memory-growing write, never after one: a create or a revoke
/// is `out_of_memory` with nothing written, while a removal (whose first
/// write, `ZREM`, frees memory) goes through whole.
#[tokio::test]
async fn out_of_memory_refuses_whole_plans() {
    let f = Fixture::start().await;
    let policy = Policy {
        revoked_retention: Some(Duration::from_secs(3600)),
        ..Policy::default()
    };
    let keys = KeySpace::with_base("m:").unwrap();
    setup(&f, &keys, policy, Op::Create).await;
    let store = f.store(&keys, policy, None).await;
    let before = f.dump("m:").await;
    let () = f
        .raw
        .query(redis::cmd("CONFIG").arg("SET").arg("maxmemory").arg(1))
        .await;
    let what = &f.info;
    let err = store
        .create(&active("s-3", "u", ts(50_000, 0)))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutOfMemory, "{what}: {err}");
    assert!(!err.is_retryable(), "{what}: {err}");
    let err = store
        .revoke(&revoke_input("s-2", ts(60_000, 0)))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutOfMemory, "{what}: {err}");
    assert_eq!(f.dump("m:").await, before, "{what}: nothing written");
    // s-0 is past its retention: reading it removes it, memory or not.
    let err = store.get(&id("s-0")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{what}: {err}");
    let after = f.dump("m:").await;
    let s0 = keys.record_key(&user("u"), &id("s-0"));
    assert!(
        !after.contains_key(&s0),
        "{what}: the expired record was removed"
    );
    assert!(unsafe_state(&keys, &after, None).is_empty(), "{what}");
    let () = f
        .raw
        .query(redis::cmd("CONFIG").arg("SET").arg("maxmemory").arg(0))
        .await;
    store
        .create(&active("s-3", "u", ts(50_000, 0)))
        .await
        .unwrap();
}
