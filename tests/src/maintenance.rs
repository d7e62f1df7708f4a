//! Maintenance scenarios (`check`, `check --repair`, `sweep`), written
//! once and run on every store: each takes a store and raw access to its
//! data. Batches are tiny (3) so every scenario runs many of them.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use authsession_driver::core::audit::{Problem, StrayReason, UnrepairedReason};
use authsession_driver::core::op::{BatchSize, Policy};
use authsession_driver::core::{codec, IndexScore, KeyKind, KeySpace, Layout, Session};
use authsession_driver::{
    Backend, CheckMode, CheckReport, Clock, ErrorKind, SessionAdmin, SessionStore, Store,
};

use crate::fixtures::{active, id, revocation, revoke_all_input, revoke_input, ts, user};
use crate::raw::{MemoryRaw, RawKv, RedisRaw};

/// One member at one instant: in which of the indexes asked about, and
/// its record.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    /// Membership per index, in the order asked.
    pub indexed: Vec<bool>,
    /// The record's bytes.
    pub record: Option<Vec<u8>>,
}

/// Raw access beyond [`RawKv`]: members as bytes, and one atomic view of
/// an index and records (what a reader such as the Go adapter could see
/// at one instant).
pub trait RawBytes: RawKv {
    /// `ZADD key score member` with a member of any bytes.
    fn zadd_bytes(&self, key: &str, member: &[u8], score: f64) -> impl Future<Output = ()> + Send;
    /// The members of the sorted set at `key`, as bytes.
    fn members(&self, key: &str) -> impl Future<Output = Vec<Vec<u8>>> + Send;
    /// Atomically: deletes `keys` and removes `member` from `indexes`.
    fn remove_whole(
        &self,
        keys: &[String],
        indexes: &[String],
        member: &str,
    ) -> impl Future<Output = ()> + Send;
    /// Atomically (one instant): for each `(member, record_key)`, whether
    /// `member` is in each of the sorted sets `index_keys`, and the string
    /// at `record_key`.
    fn atomic_view(
        &self,
        index_keys: &[String],
        entries: &[(String, String)],
    ) -> impl Future<Output = Vec<View>> + Send;
}

impl RawBytes for MemoryRaw {
    async fn zadd_bytes(&self, key: &str, member: &[u8], score: f64) {
        self.0
            .with_kv(|kv| kv.index_add_raw(key, member.to_vec(), score));
    }

    async fn members(&self, key: &str) -> Vec<Vec<u8>> {
        self.0.with_kv(|kv| {
            kv.index_range(key, None)
                .into_iter()
                .map(|(m, _)| m)
                .collect()
        })
    }

    async fn remove_whole(&self, keys: &[String], indexes: &[String], member: &str) {
        use authsession_driver::core::plan::{Plan, Write};
        let writes = keys
            .iter()
            .map(|key| Write::Delete { key: key.clone() })
            .chain(indexes.iter().map(|key| Write::IndexRemove {
                key: key.clone(),
                member: member.as_bytes().to_vec(),
            }));
        let plan = Plan::empty().with_writes(writes);
        self.0.with_kv(|kv| kv.apply(&plan));
    }

    async fn atomic_view(&self, index_keys: &[String], entries: &[(String, String)]) -> Vec<View> {
        // One lock: one instant.
        self.0.with_kv(|kv| {
            entries
                .iter()
                .map(|(member, record_key)| View {
                    indexed: index_keys
                        .iter()
                        .map(|k| {
                            kv.index_range(k, None)
                                .iter()
                                .any(|(m, _)| m == member.as_bytes())
                        })
                        .collect(),
                    record: kv.get(record_key).map(<[u8]>::to_vec),
                })
                .collect()
        })
    }
}

/// Reads indexes and records in one script: one instant. `ARGV[1]`: the
/// number of indexes (the first `KEYS`), then the members; the other
/// `KEYS` are the members' records.
const VIEW_LUA: &str = r"
local n = tonumber(ARGV[1])
local out = {}
for e = 1, #KEYS - n do
  local row = {}
  for i = 1, n do
    row[i] = redis.call('ZSCORE', KEYS[i], ARGV[e + 1]) and 1 or 0
  end
  local record = redis.call('GET', KEYS[n + e])
  row[n + 1] = record and 1 or 0
  row[n + 2] = record or ''
  out[e] = row
end
return out
";

impl RawBytes for RedisRaw {
    async fn zadd_bytes(&self, key: &str, member: &[u8], score: f64) {
        let _: i64 = self
            .query(redis::cmd("ZADD").arg(key).arg(score).arg(member))
            .await;
    }

    async fn members(&self, key: &str) -> Vec<Vec<u8>> {
        self.query(redis::cmd("ZRANGE").arg(key).arg(0).arg(-1))
            .await
    }

    async fn remove_whole(&self, keys: &[String], indexes: &[String], member: &str) {
        let mut pipe = redis::pipe();
        pipe.atomic();
        for key in keys {
            pipe.cmd("DEL").arg(key).ignore();
        }
        for key in indexes {
            pipe.cmd("ZREM").arg(key).arg(member).ignore();
        }
        let mut conn = self.connection();
        let () = pipe.query_async(&mut conn).await.unwrap();
    }

    async fn atomic_view(&self, index_keys: &[String], entries: &[(String, String)]) -> Vec<View> {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(VIEW_LUA)
            .arg(index_keys.len() + entries.len())
            .arg(index_keys);
        for (_, record_key) in entries {
            cmd.arg(record_key);
        }
        cmd.arg(index_keys.len());
        for (member, _) in entries {
            cmd.arg(member);
        }
        let rows: Vec<Vec<redis::Value>> = self.query(&cmd).await;
        let n = index_keys.len();
        rows.into_iter()
            .map(|row| {
                let int = |v: &redis::Value| matches!(v, redis::Value::Int(1));
                let indexed = row[..n].iter().map(int).collect();
                let record =
                    int(&row[n]).then(|| redis::from_redis_value(row[n + 1].clone()).unwrap());
                View { indexed, record }
            })
            .collect()
    }
}

/// `n` sessions per batch.
pub fn batch_policy(n: usize) -> Policy {
    Policy {
        batch_size: BatchSize::new(n).expect("batch size"),
        ..Policy::default()
    }
}

fn kinds(report: &CheckReport) -> Vec<(String, String)> {
    let mut kinds: Vec<(String, String)> = report
        .problems
        .iter()
        .map(|p| {
            let kind = match p.stray_reason() {
                Some(reason) => format!("{}:{}", p.kind(), reason.kind()),
                None => p.kind().to_owned(),
            };
            (kind, p.key().to_owned())
        })
        .collect();
    kinds.sort();
    kinds
}

/// Users `u0..u{users}` with three sessions each, the first one revoked.
async fn populate<S: SessionStore>(store: &S, users: usize) {
    for u in 0..users {
        for s in 0..3 {
            let session = active(&format!("s{u}-{s}"), &format!("u{u}"), ts(s, 0));
            store.create(&session).await.unwrap();
        }
        store
            .revoke(&revoke_input(&format!("s{u}-0"), ts(10, 0)))
            .await
            .unwrap();
    }
}

/// Every kind of problem, planted; `check` finds each, a repair fixes
/// each repairable one batch by batch (batches of 3), the next check finds
/// only what a human must fix, and the operations work again.
pub async fn planted_problems_are_found_and_repaired_batch_by_batch<B: Backend, R: RawBytes>(
    store: Store<B>,
    raw: &R,
) {
    let store = store.with_policy(batch_policy(3));
    let keys = store.key_space().clone();
    let tagged = keys.layout() == Layout::Tagged;
    populate(&store, 4).await;
    let (u1, u2) = (user("u1"), user("u2"));
    let all1 = keys.user_sessions_key(&u1);
    let active1 = keys.user_active_sessions_key(&u1);
    let revoked1 = keys.user_revoked_sessions_key(&u1);
    let score = |s: i64| IndexScore::of(ts(s, 0)).as_f64();

    // A record without any index entry.
    let unindexed = active("unindexed", "u1", ts(4, 0));
    raw.set(
        &keys.record_key(&u1, unindexed.id()),
        &codec::encode(&unindexed),
    )
    .await;
    if let Some(owner) = keys.owner_key(unindexed.id()) {
        raw.set(&owner, b"u1").await;
    }
    // A revoked session left in the active index; a misscored entry; an
    // active session in the revoked index; a revoked one missing there
    // (no problem: the Go adapter never writes that index).
    raw.zadd(&active1, "s1-0", score(0)).await;
    raw.zadd(&all1, "s1-1", 12_345.0).await;
    raw.zadd(&revoked1, "s1-2", score(11)).await;
    raw.zrem(&keys.user_revoked_sessions_key(&u2), "s2-0").await;
    // Dangling, invalid and not-UTF-8 members.
    raw.zadd(&all1, "ghost", 1.0).await;
    raw.zadd_bytes(&active1, b"", 1.0).await;
    raw.zadd_bytes(&all1, b"\xff\xfe", 1.0).await;
    // Another user's session (the reference layout can name it).
    if !tagged {
        raw.zadd(&all1, "s2-1", score(1)).await;
    }
    // What a human must fix: a corrupt record, a key naming nothing, a
    // string where an index belongs.
    let corrupt = keys.record_key(&u2, &id("garbage"));
    raw.set(&corrupt, b"not a record").await;
    let session_prefix = keys.prefix(KeyKind::Record);
    let unparsable = format!("{session_prefix}!!not-base64!!");
    raw.set(&unparsable, b"{}").await;
    let wrong = keys.user_active_sessions_key(&user("u9"));
    raw.set(&wrong, b"not an index").await;
    // Tagged: a record whose owner key is gone.
    let owner = keys.owner_key(&id("s3-1"));
    if let Some(owner) = &owner {
        raw.del(owner).await;
    }

    let mut expected: Vec<(String, String)> = vec![
        ("corrupt_record".into(), corrupt.clone()),
        ("missing_index_entry".into(), all1.clone()), // unindexed
        ("missing_index_entry".into(), active1.clone()), // unindexed
        ("missing_index_entry".into(), all1.clone()), // s1-1 misscored
        // s2-0 missing from the revoked index is not a problem: sessions
        // the Go adapter revoked are never there.
        (
            "stray_index_entry:inactive_index_member".into(),
            active1.clone(),
        ),
        (
            "stray_index_entry:unrevoked_index_member".into(),
            revoked1.clone(),
        ),
        (
            "stray_index_entry:dangling_index_member".into(),
            all1.clone(),
        ),
        (
            "stray_index_entry:invalid_index_member".into(),
            active1.clone(),
        ),
        (
            "stray_index_entry:invalid_index_member".into(),
            all1.clone(),
        ),
        ("unparsable_key".into(), unparsable.clone()),
        ("wrong_type".into(), wrong.clone()),
    ];
    if !tagged {
        expected.push((
            "stray_index_entry:foreign_index_member".into(),
            all1.clone(),
        ));
    }
    if let Some(owner) = &owner {
        expected.push(("missing_owner_key".into(), owner.clone()));
    }
    expected.sort();

    let report = store.check(CheckMode::Report).await.unwrap();
    assert_eq!(kinds(&report), expected, "{report:#?}");
    assert!(report.repaired.is_empty());
    assert_eq!(report.remaining(), expected.len());
    // 12 + unindexed + garbage + unparsable records; several batches.
    assert_eq!(report.records, 15);
    assert!(report.batches >= 8, "{}", report.batches);
    // Reporting wrote nothing.
    assert_eq!(store.check(CheckMode::Report).await.unwrap(), report);

    let repaired = store.check(CheckMode::Repair).await.unwrap();
    assert_eq!(repaired.problems, report.problems);
    let mut left: Vec<&str> = repaired
        .unrepaired
        .iter()
        .map(|u| {
            assert_eq!(u.reason, UnrepairedReason::NotRepairable, "{u:?}");
            u.problem.kind()
        })
        .collect();
    left.sort_unstable();
    assert_eq!(left, ["corrupt_record", "unparsable_key", "wrong_type"]);
    assert_eq!(repaired.repaired.len(), expected.len() - 3);
    assert_eq!(repaired.remaining(), 3);

    let after = store.check(CheckMode::Report).await.unwrap();
    let after_kinds: BTreeSet<&str> = after.problems.iter().map(Problem::kind).collect();
    assert_eq!(after.problems.len(), 3, "{after:#?}");
    assert_eq!(
        after_kinds,
        BTreeSet::from(["corrupt_record", "unparsable_key", "wrong_type"])
    );
    for key in [&all1, &active1] {
        assert!(
            raw.members(key)
                .await
                .iter()
                .all(|m| std::str::from_utf8(m).is_ok_and(|m| !m.is_empty() && m != "ghost")),
            "{key}"
        );
    }
    if let Some(owner) = &owner {
        assert_eq!(raw.get(owner).await.as_deref(), Some(&b"u3"[..]));
    }
    // The operations work again.
    let ids: Vec<String> = store
        .list_by_user_id(&u1)
        .await
        .unwrap()
        .iter()
        .map(|s| s.id().as_str().to_owned())
        .collect();
    assert_eq!(ids, ["unindexed", "s1-2", "s1-1", "s1-0"]);
    let outcome = store
        .revoke_all_by_user_id(&revoke_all_input("u1", ts(50, 0)))
        .await
        .unwrap();
    assert_eq!(outcome.sessions().len(), 3);
    if tagged {
        assert_eq!(store.get(&id("s3-1")).await.unwrap().id().as_str(), "s3-1");
    }
}

/// The reported case: a member that is not UTF-8 (`\xff\xfe`) in a user's
/// all-sessions index is found, removed by a repair (reported as
/// repaired), and the next check is clean.
pub async fn a_non_utf8_member_is_removed_by_repair<B: Backend, R: RawBytes>(
    store: Store<B>,
    raw: &R,
) {
    let store = store.with_policy(batch_policy(3));
    let keys = store.key_space().clone();
    populate(&store, 2).await;
    let all = keys.user_sessions_key(&user("u1"));
    raw.zadd_bytes(&all, b"\xff\xfe", 1.0).await;
    let stray = Problem::StrayIndexEntry {
        index_key: all.clone(),
        member: b"\xff\xfe".to_vec(),
        reason: StrayReason::InvalidMember,
    };

    let report = store.check(CheckMode::Report).await.unwrap();
    assert_eq!(report.problems, std::slice::from_ref(&stray));
    assert_eq!(report.unrepaired[0].reason, UnrepairedReason::ReportOnly);
    assert_eq!(report.remaining(), 1);

    let repaired = store.check(CheckMode::Repair).await.unwrap();
    assert_eq!(repaired.repaired, [stray]);
    assert!(repaired.is_resolved(), "{repaired:#?}");
    let json = serde_json::to_value(&repaired).unwrap();
    assert_eq!(json["repaired"], 1);
    assert_eq!(json["problems"][0]["reason"], "invalid_index_member");
    assert_eq!(json["problems"][0]["repaired"], true);

    let after = store.check(CheckMode::Report).await.unwrap();
    assert!(after.is_clean(), "{after:#?}");
    assert_eq!(
        raw.members(&all).await,
        [b"s1-0".to_vec(), b"s1-1".to_vec(), b"s1-2".to_vec()]
    );
}

/// While writers keep changing the sessions a repair is fixing, the repair
/// never writes on a stale read. Each writer cycles its sessions through
/// three states, each step atomic: a bare record (drift for the repair:
/// no index entry), revoked (the store's own `revoke`), removed whole. A
/// reader watching single instants must never see an entry the records
/// contradict — an entry without its record, a revoked session in the
/// active index, an active one in the revoked index — which neither the
/// drift nor the writers produce, only a repair that wrote from a read
/// that was no longer true. Once the writers stop, a repair converges: the
/// next check is clean.
pub async fn concurrent_writers_never_get_a_wrong_repair<
    B: Backend,
    R: RawBytes + Clone + 'static,
>(
    store: Store<B>,
    raw: &R,
) {
    const USERS: usize = 3;
    const CYCLING: usize = 4;
    const STEPS: u64 = 150;
    let store = store.with_policy(repair_policy(3));
    let keys = store.key_space().clone();
    populate(&store, USERS).await;
    let ids = |u: usize| (0..CYCLING).map(move |k| format!("c{u}-{k}"));
    let stop = Arc::new(AtomicBool::new(false));
    let steps = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    for u in 0..USERS {
        let store = store.clone();
        let raw = raw.clone();
        let keys = keys.clone();
        let steps = Arc::clone(&steps);
        writers.push(tokio::spawn(async move {
            let owner = user(&format!("u{u}"));
            for n in 0..STEPS {
                steps.fetch_add(1, Ordering::Relaxed);
                let k = usize::try_from(n).unwrap() % CYCLING;
                let member = format!("c{u}-{k}");
                let session = active(&member, owner.as_str(), ts(1000, 0));
                let record_key = keys.record_key(&owner, session.id());
                match (n / CYCLING as u64) % 3 {
                    0 => {
                        // A bare record: the repair's work.
                        if let Some(key) = keys.owner_key(session.id()) {
                            raw.set(&key, owner.as_str().as_bytes()).await;
                        }
                        raw.set(&record_key, &codec::encode(&session)).await;
                    }
                    1 => {
                        let at = ts(2000 + i64::try_from(n).unwrap(), 0);
                        let _ = store.revoke(&revoke_input(&member, at)).await;
                    }
                    _ => {
                        let mut gone = vec![record_key];
                        gone.extend(keys.owner_key(session.id()));
                        let indexes = [
                            keys.user_sessions_key(&owner),
                            keys.user_active_sessions_key(&owner),
                            keys.user_revoked_sessions_key(&owner),
                        ];
                        raw.remove_whole(&gone, &indexes, &member).await;
                    }
                }
                tokio::task::yield_now().await;
            }
        }));
    }
    let watcher = {
        let raw = raw.clone();
        let keys = keys.clone();
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            let mut views = 0u64;
            loop {
                let finished = stop.load(Ordering::Relaxed);
                for u in 0..USERS {
                    let owner = user(&format!("u{u}"));
                    let indexes = [
                        keys.user_sessions_key(&owner),
                        keys.user_active_sessions_key(&owner),
                        keys.user_revoked_sessions_key(&owner),
                    ];
                    let entries: Vec<(String, String)> = ids(u)
                        .map(|member| {
                            let record_key = keys.record_key(&owner, &id(&member));
                            (member, record_key)
                        })
                        .collect();
                    for ((member, _), view) in entries
                        .iter()
                        .zip(raw.atomic_view(&indexes, &entries).await)
                    {
                        let session = view
                            .record
                            .as_ref()
                            .map(|bytes| codec::decode(&id(member), bytes).unwrap());
                        if view.indexed[0] {
                            assert!(session.is_some(), "{member}: indexed without its record");
                        }
                        if view.indexed[1] {
                            assert!(
                                session.as_ref().is_some_and(Session::is_active),
                                "{member}: in the active index but {session:?}"
                            );
                        }
                        if view.indexed[2] {
                            assert!(
                                session.as_ref().is_some_and(|s| !s.is_active()),
                                "{member}: in the revoked index but {session:?}"
                            );
                        }
                    }
                    views += 1;
                }
                if finished {
                    return views;
                }
                tokio::task::yield_now().await;
            }
        })
    };
    // Repairs while the writers are under way.
    while steps.load(Ordering::Relaxed) < 10 {
        tokio::task::yield_now().await;
    }
    let mut repairs = 0;
    let mut repaired = 0;
    while steps.load(Ordering::Relaxed) < STEPS * USERS as u64 || repairs == 0 {
        let report = store.check(CheckMode::Repair).await.unwrap();
        assert_eq!(
            report.repaired.len() + report.unrepaired.len(),
            report.problems.len()
        );
        repaired += report.repaired.len();
        repairs += 1;
    }
    for writer in writers {
        writer.await.unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let views = watcher.await.unwrap();
    assert!(views >= USERS as u64, "{views}");
    assert!(repaired > 0, "{repairs} repairs fixed nothing");
    // With nobody interfering, a repair converges.
    let last = store.check(CheckMode::Repair).await.unwrap();
    assert!(last.is_resolved(), "{last:#?}");
    let after = store.check(CheckMode::Report).await.unwrap();
    assert!(after.is_clean(), "{after:#?}");
}

/// Retention sweeping: every revoked session past the retention goes —
/// also of users nobody touches and sessions the Go adapter revoked
/// (never in the revoked index) — record and entries together at every
/// instant (a concurrent reader never sees one without the other); the
/// rest stays; a second sweep removes nothing; no retention, no sweep.
pub async fn sweep_removes_expired_sessions_and_keeps_the_go_view_consistent<
    B: Backend,
    R: RawBytes + Clone + 'static,
>(
    store: Store<B>,
    raw: &R,
) {
    let now = Arc::new(AtomicI64::new(0));
    let clock = {
        let now = Arc::clone(&now);
        Clock::from_fn(move || ts(now.load(Ordering::Relaxed), 0))
    };
    let plain = store.clone();
    let store = store.with_clock(clock).with_policy(Policy {
        revoked_retention: Some(Duration::from_secs(3600)),
        ..batch_policy(3)
    });
    let keys: KeySpace = store.key_space().clone();
    let users = 6;
    let mut gone = Vec::new();
    let mut kept = Vec::new();
    let mut every = Vec::new();
    for u in 0..users {
        let name = format!("u{u}");
        for s in 0..5 {
            let session = active(&format!("s{u}-{s}"), &name, ts(s, 0));
            store.create(&session).await.unwrap();
            every.push((name.clone(), format!("s{u}-{s}")));
        }
        // Revoked by us at 10 s (expire at 1 h 10 s), and by us at 2 h
        // (kept).
        for s in [0, 1] {
            store
                .revoke(&revoke_input(&format!("s{u}-{s}"), ts(10, 0)))
                .await
                .unwrap();
            gone.push(format!("s{u}-{s}"));
        }
        now.store(7200, Ordering::Relaxed);
        store
            .revoke(&revoke_input(&format!("s{u}-2"), ts(7200, 0)))
            .await
            .unwrap();
        now.store(0, Ordering::Relaxed);
        kept.extend([2, 3, 4].map(|s| format!("s{u}-{s}")));
        // Revoked by the Go adapter at 20 s: record and all-sessions
        // entry, never the revoked index.
        let go: Session = active(&format!("g{u}"), &name, ts(5, 0))
            .revoked(revocation(ts(20, 0)))
            .unwrap();
        raw.set(&keys.record_key(go.user_id(), go.id()), &codec::encode(&go))
            .await;
        raw.zadd(
            &keys.user_sessions_key(go.user_id()),
            go.id().as_str(),
            IndexScore::of(go.created_at()).as_f64(),
        )
        .await;
        gone.push(format!("g{u}"));
        every.push((name.clone(), format!("g{u}")));
    }
    // Before the retention has passed nothing goes.
    now.store(3000, Ordering::Relaxed);
    let early = store.sweep().await.unwrap();
    assert_eq!(early.sessions_removed, 0, "{early:?}");
    assert_eq!(early.users, users as u64);

    // Later: a reader watches every user's all-sessions index
    // and records at single instants while the sweep runs.
    now.store(10_000, Ordering::Relaxed);
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let raw = raw.clone();
        let keys = keys.clone();
        let every = every.clone();
        let done = Arc::clone(&done);
        tokio::spawn(async move {
            let mut views = 0u64;
            loop {
                let finished = done.load(Ordering::Relaxed);
                for u in 0..users {
                    let name = format!("u{u}");
                    let entries: Vec<(String, String)> = every
                        .iter()
                        .filter(|(owner, _)| *owner == name)
                        .map(|(_, s)| (s.clone(), keys.record_key(&user(&name), &id(s))))
                        .collect();
                    let view = raw
                        .atomic_view(&[keys.user_sessions_key(&user(&name))], &entries)
                        .await;
                    for ((member, _), view) in entries.iter().zip(view) {
                        assert_eq!(
                            view.indexed[0],
                            view.record.is_some(),
                            "{member}: index entry and record disagree at one instant"
                        );
                    }
                    views += 1;
                }
                if finished {
                    return views;
                }
                tokio::task::yield_now().await;
            }
        })
    };
    let report = store.sweep().await.unwrap();
    done.store(true, Ordering::Relaxed);
    let views = watcher.await.unwrap();
    assert!(views >= users as u64);
    assert_eq!(report.users, users as u64);
    assert_eq!(report.sessions_removed, gone.len() as u64, "{report:?}");
    assert!(report.batches >= 2, "{report:?}");
    assert_eq!(report.skipped, 0);
    assert_eq!(report.retention, Some(Duration::from_secs(3600)));

    for s in &gone {
        let err = plain.get(&id(s)).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{s}");
    }
    for u in 0..users {
        let name = format!("u{u}");
        let listed: Vec<String> = plain
            .list_by_user_id(&user(&name))
            .await
            .unwrap()
            .iter()
            .map(|s| s.id().as_str().to_owned())
            .collect();
        assert_eq!(listed, [4, 3, 2].map(|s| format!("s{u}-{s}")));
        let revoked = raw
            .members(&keys.user_revoked_sessions_key(&user(&name)))
            .await;
        assert_eq!(revoked, [format!("s{u}-2").into_bytes()]);
    }
    let report = plain.check(CheckMode::Report).await.unwrap();
    assert!(report.is_clean(), "{report:#?}");
    assert_eq!(report.records, kept.len());

    // Idempotent; and without a retention, nothing is examined.
    let again = store.sweep().await.unwrap();
    assert_eq!((again.sessions_removed, again.batches), (0, 0));
    let none = plain.sweep().await.unwrap();
    assert_eq!(none.retention, None);
    assert_eq!((none.users, none.sessions_removed), (0, 0));
}

/// `n` sessions per batch, and the owner keys' second look right away: no
/// create is in flight in these scenarios (the concurrent one only risks
/// an owner key that a later repair puts back).
fn repair_policy(n: usize) -> Policy {
    Policy {
        owner_grace: Duration::ZERO,
        ..batch_policy(n)
    }
}

/// Members whose record is missing, undecodable or another user's, in
/// every index of a user, plus an active session reachable from neither
/// index: `check` reports each, `check --repair` takes the bad members out
/// of the indexes (the bad bytes stay under their keys) and puts the lost
/// session back into both, a second check finds none of what the repair
/// fixed, and `revoke_all` then revokes every valid session and succeeds.
pub async fn bad_members_leave_the_indexes_and_the_user_is_revocable_whole<B: Backend, R: RawKv>(
    store: Store<B>,
    raw: &R,
) {
    let store = store.with_policy(repair_policy(3));
    let keys = store.key_space().clone();
    let tagged = keys.layout() == Layout::Tagged;
    populate(&store, 3).await;
    let u1 = user("u1");
    let all = keys.user_sessions_key(&u1);
    let active_index = keys.user_active_sessions_key(&u1);
    let revoked_index = keys.user_revoked_sessions_key(&u1);
    let indexes = [&all, &active_index, &revoked_index];
    // No record at all.
    for key in indexes {
        raw.zadd(key, "ghost", 1.0).await;
    }
    // A record that does not decode.
    let bad_key = keys.record_key(&u1, &id("bad"));
    raw.set(&bad_key, b"{\"device_session_id\":").await;
    for key in indexes {
        raw.zadd(key, "bad", 2.0).await;
    }
    // Another user's session: u2's own in the reference layout; in the
    // tagged layout a record under u1's tag naming u2.
    let (theirs, theirs_key) = if tagged {
        let theirs = active("theirs", "u2", ts(3, 0));
        let key = keys.record_key(&u1, theirs.id());
        raw.set(&key, &codec::encode(&theirs)).await;
        ("theirs", key)
    } else {
        ("s2-1", keys.record_key(&user("u2"), &id("s2-1")))
    };
    let theirs_bytes = raw.get(&theirs_key).await.unwrap();
    for key in [&all, &active_index] {
        raw.zadd(key, theirs, 3.0).await;
    }
    // An active session in neither index.
    store.create(&active("lost", "u1", ts(4, 0))).await.unwrap();
    for key in [&all, &active_index] {
        raw.zrem(key, "lost").await;
    }
    // The user's revocation stops at (or names) what it cannot revoke;
    // revoking one by one is not what an incident needs.
    let mut expected: Vec<(String, String)> = vec![
        ("corrupt_record".into(), bad_key.clone()),
        ("missing_index_entry".into(), all.clone()),
        ("missing_index_entry".into(), active_index.clone()),
    ];
    for key in indexes {
        expected.push(("stray_index_entry:corrupt_record".into(), key.clone()));
        expected.push((
            "stray_index_entry:dangling_index_member".into(),
            key.clone(),
        ));
    }
    for key in [&all, &active_index] {
        expected.push(("stray_index_entry:foreign_index_member".into(), key.clone()));
    }
    if tagged {
        expected.push(("foreign_record".into(), theirs_key.clone()));
    }
    expected.sort();

    let report = store.check(CheckMode::Report).await.unwrap();
    assert_eq!(kinds(&report), expected, "{report:#?}");
    let repaired = store.check(CheckMode::Repair).await.unwrap();
    assert_eq!(kinds(&repaired), expected);
    let left: Vec<(&str, &str)> = repaired
        .unrepaired
        .iter()
        .map(|u| (u.problem.kind(), u.reason.kind()))
        .collect();
    let records_left: Vec<(&str, &str)> = if tagged {
        vec![
            ("corrupt_record", "not_repairable"),
            ("foreign_record", "not_repairable"),
        ]
    } else {
        vec![("corrupt_record", "not_repairable")]
    };
    assert_eq!(left, records_left, "{repaired:#?}");
    assert_eq!(repaired.repaired.len(), expected.len() - records_left.len());
    // Each stray member is reported with its key and why.
    let json = serde_json::to_value(&repaired).unwrap();
    let strays = json["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["kind"] == "stray_index_entry")
        .count();
    assert_eq!(strays, 8);
    // The bad bytes are where they were.
    assert_eq!(
        raw.get(&bad_key).await.as_deref(),
        Some(&b"{\"device_session_id\":"[..])
    );
    assert_eq!(raw.get(&theirs_key).await, Some(theirs_bytes));
    for key in indexes {
        let members: Vec<String> = raw.zrange(key).await.into_iter().map(|(m, _)| m).collect();
        for gone in ["ghost", "bad", theirs] {
            assert!(!members.iter().any(|m| m == gone), "{key}: {members:?}");
        }
    }

    // A second check finds none of what the repair fixed.
    let after = store.check(CheckMode::Report).await.unwrap();
    for problem in &after.problems {
        assert!(
            !repaired.repaired.contains(problem),
            "found again: {problem}"
        );
    }
    let after_kinds: Vec<&str> = after.problems.iter().map(Problem::kind).collect();
    let records_left: Vec<&str> = records_left.iter().map(|(k, _)| *k).collect();
    assert_eq!(after_kinds, records_left, "{after:#?}");

    // The user is revocable whole: every valid session, the lost one too.
    let outcome = store
        .revoke_all_by_user_id(&revoke_all_input("u1", ts(50, 0)))
        .await
        .unwrap();
    let mut revoked: Vec<&str> = outcome.sessions().iter().map(|s| s.id().as_str()).collect();
    revoked.sort_unstable();
    assert_eq!(revoked, ["lost", "s1-1", "s1-2"]);
    assert_eq!(store.count_active_by_user_id(&u1).await.unwrap(), 0);
    assert!(!store.get(&id("lost")).await.unwrap().is_active());
}

/// Tagged layout: an owner key without its record (a create that never
/// finished) is reported; `check --repair` removes it at its second look
/// (the grace, here none); the next check is clean and the id is free for
/// another user again. A look without repair removes nothing. In the
/// reference layout there are no owner keys: nothing to find.
pub async fn dangling_owner_keys_are_reported_and_removed_after_the_grace<B: Backend, R: RawKv>(
    store: Store<B>,
    raw: &R,
) {
    let store = store.with_policy(repair_policy(3));
    let keys = store.key_space().clone();
    populate(&store, 2).await;
    let Some(owner) = keys.owner_key(&id("half")) else {
        assert!(store.check(CheckMode::Repair).await.unwrap().is_clean());
        return;
    };
    // What a create leaves when it stops after its first round trip.
    raw.set(&owner, b"u1").await;
    let problem = Problem::DanglingOwnerKey {
        owner_key: owner.clone(),
        record_key: keys.record_key(&user("u1"), &id("half")),
    };
    // It blocks the id for everyone else.
    let err = store
        .create(&active("half", "u0", ts(1, 0)))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);

    let report = store.check(CheckMode::Report).await.unwrap();
    assert_eq!(
        report.problems,
        std::slice::from_ref(&problem),
        "{report:#?}"
    );
    assert_eq!(report.unrepaired[0].reason, UnrepairedReason::ReportOnly);
    assert_eq!(raw.get(&owner).await.as_deref(), Some(&b"u1"[..]));

    let repaired = store.check(CheckMode::Repair).await.unwrap();
    assert_eq!(repaired.repaired, std::slice::from_ref(&problem));
    assert!(repaired.is_resolved(), "{repaired:#?}");
    assert_eq!(raw.get(&owner).await, None);
    let after = store.check(CheckMode::Report).await.unwrap();
    assert!(after.is_clean(), "{after:#?}");
    // The id is free again.
    store.create(&active("half", "u0", ts(1, 0))).await.unwrap();
    assert!(store.check(CheckMode::Report).await.unwrap().is_clean());
}

/// Tagged layout: retention takes owner keys with their sessions — lazily
/// (`get`, `list` and `create` meeting expired sessions) and by `sweep`,
/// which also removes an owner key left without its record; afterwards no
/// owner key lacks its record and `check` is clean. The reference layout
/// has none to take.
pub async fn owner_keys_go_with_their_sessions<B: Backend, R: RawKv>(store: Store<B>, raw: &R) {
    let now = Arc::new(AtomicI64::new(100));
    let clock = {
        let now = Arc::clone(&now);
        Clock::from_fn(move || ts(now.load(Ordering::Relaxed), 0))
    };
    let store = store.with_clock(clock).with_policy(Policy {
        revoked_retention: Some(Duration::from_secs(60)),
        ..repair_policy(3)
    });
    let keys = store.key_space().clone();
    for u in 0..3 {
        for s in 0..4 {
            let session = active(&format!("o{u}-{s}"), &format!("u{u}"), ts(s, 0));
            store.create(&session).await.unwrap();
        }
        for s in 0..3 {
            store
                .revoke(&revoke_input(&format!("o{u}-{s}"), ts(100, 0)))
                .await
                .unwrap();
        }
    }
    let owner_of = |name: &str| keys.owner_key(&id(name));
    // A create that stopped after its owner key.
    if let Some(half) = owner_of("half") {
        raw.set(&half, b"u2").await;
    }
    now.store(1000, Ordering::Relaxed);
    // Lazily: a get of an expired session takes its owner key too.
    assert_eq!(
        store.get(&id("o0-0")).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    if let Some(owner) = owner_of("o0-0") {
        assert_eq!(raw.get(&owner).await, None);
    }
    // A list of u1 and a create of u2 take theirs.
    let listed = store.list_by_user_id(&user("u1")).await.unwrap();
    assert_eq!(listed.len(), 1);
    store
        .create(&active("o2-new", "u2", ts(1000, 0)))
        .await
        .unwrap();
    for u in 1..3 {
        for s in 0..3 {
            let name = format!("o{u}-{s}");
            let record = keys.record_key(&user(&format!("u{u}")), &id(&name));
            assert_eq!(raw.get(&record).await, None, "{name}");
            if let Some(owner) = owner_of(&name) {
                assert_eq!(raw.get(&owner).await, None, "{name}");
            }
        }
    }
    // The sweep takes the rest, and the dangling one.
    let report = store.sweep().await.unwrap();
    assert_eq!(report.sessions_removed, 2, "{report:?}");
    let expected_owners = if keys.layout() == Layout::Tagged {
        3
    } else {
        0
    };
    assert_eq!(report.owner_keys_removed, expected_owners, "{report:?}");
    for u in 0..3 {
        for s in 0..4 {
            let name = format!("o{u}-{s}");
            if let Some(owner) = owner_of(&name) {
                let kept = s == 3;
                assert_eq!(raw.get(&owner).await.is_some(), kept, "{name}");
            }
        }
    }
    if let Some(half) = owner_of("half") {
        assert_eq!(raw.get(&half).await, None);
    }
    // No owner key without its record: the check's own walk says so.
    let after = store.check(CheckMode::Report).await.unwrap();
    assert!(after.is_clean(), "{after:#?}");
    assert_eq!(after.records, 4);
    let again = store.sweep().await.unwrap();
    assert_eq!((again.sessions_removed, again.owner_keys_removed), (0, 0));
}

/// Expands to one `#[tokio::test]` per maintenance scenario and layout.
/// `$make` is an async fn of a [`KeySpace`] returning
/// `(guard, store, raw)`.
#[macro_export]
macro_rules! maintenance_suite {
    ($make:ident) => {
        $crate::maintenance_suite!(@each $make;
            planted_problems_are_found_and_repaired_batch_by_batch,
            a_non_utf8_member_is_removed_by_repair,
            concurrent_writers_never_get_a_wrong_repair,
            sweep_removes_expired_sessions_and_keeps_the_go_view_consistent,
            bad_members_leave_the_indexes_and_the_user_is_revocable_whole,
            dangling_owner_keys_are_reported_and_removed_after_the_grace,
            owner_keys_go_with_their_sessions
        );
    };
    (@each $make:ident; $($name:ident),* $(,)?) => {
        mod reference {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let keys = $crate::fixtures::fresh_key_space("maintenance");
                    let (_guard, store, raw) = super::$make(keys).await;
                    $crate::maintenance::$name(store, &raw).await;
                }
            )*
        }
        mod tagged {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let keys = $crate::fixtures::fresh_key_space("maintenance")
                        .in_layout(authsession_driver::core::Layout::Tagged)
                        .unwrap();
                    let (_guard, store, raw) = super::$make(keys).await;
                    $crate::maintenance::$name(store, &raw).await;
                }
            )*
        }
    };
}
