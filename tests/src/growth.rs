//! Big users and growth, on every store: pages against `list`, retention
//! under an injected clock, the per-user active-session limit, batched
//! revoke-all — with the Go adapter's view of the data (every index entry
//! has its record and vice versa) checked raw after every step.
//!
//! Use [`growth_suite!`](crate::growth_suite) with a factory
//! `async fn(Policy, Clock) -> (guard, store, raw)`.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use authsession_driver::core::codec;
use authsession_driver::core::op::{
    BatchSize, OnLimit, PageCursor, PageLimit, PageRequest, Policy, SessionLimit, StatusFilter,
};
use authsession_driver::core::{
    Index, IndexScore, KeyKind, KeySpace, Layout, RevokeSessionOutcome, RevokeUserSessionsOutcome,
    Session, Timestamp, UserId,
};
use authsession_driver::{Clock, Error, ErrorKind, SessionStore};

use crate::fixtures::{active, id, revocation, revoke_all_input, revoke_input, ts, user};
use crate::raw::{MemoryRaw, RawKv, RedisRaw};

/// Expands to one `#[tokio::test]` per growth scenario. `$make` is an
/// async fn `(Policy, Clock) -> (guard, store, raw)`; the guard lives
/// until the test ends.
#[macro_export]
macro_rules! growth_suite {
    ($make:path) => {
        $crate::growth_suite!(@each $make;
            pages_concatenate_to_list,
            foreign_and_malformed_cursors_are_invalid,
            retention_with_a_clock,
            retention_create_removes_expired_sessions,
            limit_reject,
            limit_revoke_oldest,
            churn_with_limit_and_retention_stays_bounded,
            revoke_all_in_batches
        );
    };
    (@each $make:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                $crate::growth::$name($make).await;
            }
        )*
    };
}

/// Raw key listing on top of [`RawKv`], to see every key a store wrote.
pub trait RawScan: RawKv {
    /// Every key starting with `prefix`, sorted.
    fn keys_under(&self, prefix: &str) -> impl Future<Output = Vec<String>> + Send;
}

impl RawScan for MemoryRaw {
    async fn keys_under(&self, prefix: &str) -> Vec<String> {
        self.0.with_kv(|kv| {
            kv.keys()
                .filter(|k| k.starts_with(prefix))
                .map(str::to_owned)
                .collect()
        })
    }
}

impl RawScan for RedisRaw {
    async fn keys_under(&self, prefix: &str) -> Vec<String> {
        let mut pattern = String::with_capacity(prefix.len() + 1);
        for c in prefix.chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push('*');
        let mut keys = Vec::new();
        let mut cursor = 0u64;
        loop {
            let (next, page): (u64, Vec<String>) = self
                .query(
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(1000),
                )
                .await;
            keys.extend(page);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        keys.sort();
        keys.dedup();
        keys
    }
}

/// A clock tests set by hand.
#[derive(Debug, Clone)]
pub struct TestClock(Arc<Mutex<Timestamp>>);

impl TestClock {
    /// A clock showing `now`.
    pub fn at(now: Timestamp) -> Self {
        Self(Arc::new(Mutex::new(now)))
    }

    /// Moves it to `now`.
    pub fn set(&self, now: Timestamp) {
        *self.0.lock().unwrap() = now;
    }

    /// The store's view of it.
    pub fn clock(&self) -> Clock {
        let shared = Arc::clone(&self.0);
        Clock::from_fn(move || *shared.lock().unwrap())
    }
}

/// What the raw data holds, once checked.
#[derive(Debug, Default)]
pub struct View {
    /// Every record, by id.
    pub records: BTreeMap<String, Session>,
    /// Keys of any kind under the store's prefixes.
    pub keys: usize,
    /// Entries of the revoked indexes (written under a retention only).
    pub revoked_indexed: usize,
}

impl View {
    /// The active sessions of `user`.
    pub fn active_of(&self, user: &UserId) -> usize {
        self.records
            .values()
            .filter(|s| s.user_id() == user && s.is_active())
            .count()
    }
}

/// Checks the data as the Go adapter (and our revoked index) sees it, and
/// panics at the first inconsistency: every record decodes under its key;
/// every all-sessions and active-index entry names a record of that user
/// with its creation score (active ones active); every revoked-index entry
/// names a revoked record with its revocation score; and every record is
/// in its user's all-sessions index and in the active index exactly when
/// active. A user's revoked index, which a store writes under a retention
/// only, holds all of the user's revoked sessions or does not exist.
pub async fn assert_consistent<R: RawScan>(raw: &R, keys: &KeySpace, step: &str) -> View {
    let session_prefix = keys.prefix(KeyKind::Record);
    let mut view = View::default();
    for key in raw.keys_under(session_prefix).await {
        let sid = keys
            .parse_reference_record_key(&key)
            .unwrap_or_else(|| panic!("{step}: stray key {key}"));
        let bytes = raw
            .get(&key)
            .await
            .unwrap_or_else(|| panic!("{step}: {key} is not a string"));
        let session = codec::decode(&sid, &bytes)
            .unwrap_or_else(|e| panic!("{step}: record {key} does not decode: {e}"));
        view.records.insert(sid.as_str().to_owned(), session);
        view.keys += 1;
    }
    // (user, id) pairs each index holds.
    let mut indexed: [BTreeMap<(String, String), ()>; 3] = Default::default();
    for (which, index) in Index::ALL.into_iter().enumerate() {
        for key in raw.keys_under(keys.prefix(KeyKind::Index(index))).await {
            view.keys += 1;
            let owner = keys
                .parse_index_key(index, &key)
                .unwrap_or_else(|| panic!("{step}: stray index key {key}"));
            let entries = raw.zrange(&key).await;
            assert!(!entries.is_empty(), "{step}: {key} is not a sorted set");
            for (member, score) in entries {
                let session = view.records.get(&member).unwrap_or_else(|| {
                    panic!("{step}: {key} names {member:?}, which has no record")
                });
                assert_eq!(
                    session.user_id(),
                    &owner,
                    "{step}: {key} names a foreign {member:?}"
                );
                let expected = match index {
                    Index::All => IndexScore::of(session.created_at()),
                    Index::Active => {
                        assert!(
                            session.is_active(),
                            "{step}: {key} names revoked {member:?}"
                        );
                        IndexScore::of(session.created_at())
                    }
                    _ => {
                        // The revoked index.
                        let revocation = session
                            .revocation()
                            .unwrap_or_else(|| panic!("{step}: {key} names active {member:?}"));
                        IndexScore::of(revocation.at())
                    }
                };
                assert_eq!(
                    score,
                    expected.as_f64(),
                    "{step}: score of {member:?} in {key}"
                );
                if index == Index::Revoked {
                    view.revoked_indexed += 1;
                }
                indexed[which].insert((owner.as_str().to_owned(), member), ());
            }
        }
    }
    for (sid, session) in &view.records {
        let entry = (session.user_id().as_str().to_owned(), sid.clone());
        assert!(
            indexed[0].contains_key(&entry),
            "{step}: record {sid:?} is missing from its all-sessions index"
        );
        assert_eq!(
            indexed[1].contains_key(&entry),
            session.is_active(),
            "{step}: active index membership of {sid:?}"
        );
        let user_has_revoked_index = indexed[2].keys().any(|(u, _)| *u == entry.0);
        if user_has_revoked_index {
            assert_eq!(
                indexed[2].contains_key(&entry),
                !session.is_active(),
                "{step}: revoked index membership of {sid:?}"
            );
        }
    }
    view
}

/// Every page of `user` from the first, concatenated.
pub async fn walk<S: SessionStore>(
    store: &S,
    user: &UserId,
    limit: usize,
    status: StatusFilter,
) -> Vec<Session> {
    let mut all = Vec::new();
    let mut cursor: Option<PageCursor> = None;
    for _ in 0..1_000_000 {
        let request = PageRequest {
            limit: PageLimit::new(limit).unwrap(),
            cursor: cursor.take(),
            status,
        };
        let page = store
            .list_page(user, &request)
            .await
            .unwrap_or_else(|e| panic!("list_page: {} {e}", e.kind().as_str()));
        assert!(page.sessions.len() <= limit);
        all.extend(page.sessions);
        match page.next_cursor {
            None => return all,
            // Through its text, as a caller keeps it.
            Some(next) => cursor = Some(PageCursor::parse(&next.to_string()).unwrap()),
        }
    }
    panic!("pages never end");
}

fn ids(sessions: &[Session]) -> Vec<&str> {
    sessions.iter().map(|s| s.id().as_str()).collect()
}

fn policy_with(f: impl FnOnce(&mut Policy)) -> Policy {
    let mut policy = Policy::default();
    f(&mut policy);
    policy
}

/// 60 sessions of `u-1` in 12 microseconds (different nanoseconds, or the
/// same instant with different ids), every seventh revoked; a few of
/// `u-2` in the same scores.
async fn tied_sessions<S: SessionStore>(store: &S) {
    for i in 0..60i64 {
        let sid = format!("{}-{i:02}", ["b", "a", "Z", "é"][(i % 4) as usize]);
        let created = ts(0, (i % 12) * 1000 + [0, 300, 300, 999][(i % 4) as usize]);
        store.create(&active(&sid, "u-1", created)).await.unwrap();
        if i % 7 == 3 {
            store.revoke(&revoke_input(&sid, ts(50, 0))).await.unwrap();
        }
    }
    for i in 0..5i64 {
        let created = ts(0, i * 1000);
        store
            .create(&active(&format!("other-{i}"), "u-2", created))
            .await
            .unwrap();
    }
}

/// With no changes, pages of every size concatenate exactly to `list`
/// (the active filter: to its active subset).
pub async fn pages_concatenate_to_list<G, S, R, F>(make: impl Fn(Policy, Clock) -> F)
where
    F: Future<Output = (G, S, R)>,
    S: SessionStore,
    R: RawScan,
{
    let (_guard, store, raw) = make(Policy::default(), Clock::system()).await;
    tied_sessions(&store).await;
    let u = user("u-1");
    let list = store.list_by_user_id(&u).await.unwrap();
    assert_eq!(list.len(), 60);
    let active: Vec<Session> = list.iter().filter(|s| s.is_active()).cloned().collect();
    assert_eq!(active.len(), 51);
    for limit in [1, 2, 3, 7, 12, 50, 59, 60, 61, 1000] {
        assert_eq!(
            walk(&store, &u, limit, StatusFilter::All).await,
            list,
            "limit {limit}"
        );
        assert_eq!(
            walk(&store, &u, limit, StatusFilter::Active).await,
            active,
            "active, limit {limit}"
        );
    }
    let default = walk(&store, &u, PageLimit::default().get(), StatusFilter::All).await;
    assert_eq!(default, list);
    assert_consistent(&raw, store.key_space(), "after the walks").await;
}

/// A cursor of another user or status filter, or garbage: `invalid_cursor`.
pub async fn foreign_and_malformed_cursors_are_invalid<G, S, R, F>(
    make: impl Fn(Policy, Clock) -> F,
) where
    F: Future<Output = (G, S, R)>,
    S: SessionStore,
    R: RawScan,
{
    let (_guard, store, _raw) = make(Policy::default(), Clock::system()).await;
    tied_sessions(&store).await;
    let first = |u: &'static str, status| {
        let store = &store;
        async move {
            let request = PageRequest {
                limit: PageLimit::new(3).unwrap(),
                cursor: None,
                status,
            };
            store.list_page(&user(u), &request).await.unwrap()
        }
    };
    let all = first("u-1", StatusFilter::All).await.next_cursor.unwrap();
    let act = first("u-1", StatusFilter::Active)
        .await
        .next_cursor
        .unwrap();
    let u2 = first("u-2", StatusFilter::All).await.next_cursor.unwrap();
    for (u, cursor, status) in [
        ("u-2", &all, StatusFilter::All),
        ("u-1", &u2, StatusFilter::All),
        ("u-1", &all, StatusFilter::Active),
        ("u-1", &act, StatusFilter::All),
    ] {
        let request = PageRequest {
            limit: PageLimit::new(3).unwrap(),
            cursor: Some(cursor.clone()),
            status,
        };
        let err = store.list_page(&user(u), &request).await.unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::InvalidCursor,
            "{u} {status:?}: {err}"
        );
        assert!(!err.is_retryable());
    }
    for garbage in ["", "%%%", "AAAA", &format!("{}=", all.as_str())] {
        let err = Error::from(PageCursor::parse(garbage).unwrap_err());
        assert_eq!(err.kind(), ErrorKind::InvalidCursor, "{garbage:?}");
    }
}

/// Retention with an injected clock: from the instant a revoked session's
/// retention has passed it is `not_found` and unlisted, removed by the
/// user's own operations; the raw data stays consistent at every step.
pub async fn retention_with_a_clock<G, S, R, F>(make: impl Fn(Policy, Clock) -> F)
where
    F: Future<Output = (G, S, R)>,
    S: SessionStore,
    R: RawScan,
{
    let hour = Duration::from_secs(3600);
    let clock = TestClock::at(ts(0, 0));
    let policy = policy_with(|p| p.revoked_retention = Some(hour));
    let (_guard, store, raw) = make(policy, clock.clock()).await;
    let keys = store.key_space().clone();
    let u = user("u-1");
    for (i, sid) in ["a", "b", "c", "d"].into_iter().enumerate() {
        store
            .create(&active(sid, "u-1", ts(i as i64, 0)))
            .await
            .unwrap();
    }
    clock.set(ts(10, 0));
    store.revoke(&revoke_input("a", ts(10, 0))).await.unwrap();
    clock.set(ts(20, 0));
    store.revoke(&revoke_input("b", ts(20, 0))).await.unwrap();
    let view = assert_consistent(&raw, &keys, "revoked a and b").await;
    assert_eq!(view.records.len(), 4);
    // Under a retention both are in the revoked index.
    assert_eq!(view.revoked_indexed, 2);

    // Exactly one retention after a's revocation: still there.
    clock.set(ts(3610, 0));
    assert_eq!(store.get(&id("a")).await.unwrap().id().as_str(), "a");
    assert_eq!(store.list_by_user_id(&u).await.unwrap().len(), 4);
    assert_consistent(&raw, &keys, "at a's retention instant").await;

    // A nanosecond later a is gone; get removes it.
    clock.set(ts(3610, 1));
    let err = store.get(&id("a")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert_eq!(
        err.key(),
        Some(keys.reference_record_key(&id("a")).as_str())
    );
    let view = assert_consistent(&raw, &keys, "get removed a").await;
    assert!(!view.records.contains_key("a"));
    assert_eq!(view.records.len(), 3);
    assert_eq!(
        store.get_for_user(&u, &id("a")).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    match store.revoke(&revoke_input("a", ts(3700, 0))).await {
        Err(e) => assert_eq!(e.kind(), ErrorKind::NotFound),
        Ok(outcome) => panic!("revoked an expired session: {outcome:?}"),
    }
    assert_eq!(
        ids(&store.list_by_user_id(&u).await.unwrap()),
        ["d", "c", "b"]
    );

    // b expires: a page omits and removes it, and the walk ends cleanly.
    clock.set(ts(3620, 1));
    let pages = walk(&store, &u, 1, StatusFilter::All).await;
    assert_eq!(ids(&pages), ["d", "c"]);
    let view = assert_consistent(&raw, &keys, "a page removed b").await;
    assert_eq!(view.records.keys().collect::<Vec<_>>(), ["c", "d"]);
    assert_eq!(
        store.get_for_user(&u, &id("b")).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );

    // c is revoked now and d is listed while c ages: list removes it when
    // its time comes, never reporting it corrupt.
    store.revoke(&revoke_input("c", ts(3620, 1))).await.unwrap();
    for (at, expected) in [
        (ts(7220, 1), &["d", "c"][..]),
        (ts(7220, 2), &["d"][..]),
        (ts(99_999, 0), &["d"][..]),
    ] {
        clock.set(at);
        let listed = store.list_by_user_id(&u).await.unwrap();
        assert_eq!(ids(&listed), expected);
        assert_eq!(
            ids(&walk(&store, &u, 50, StatusFilter::All).await),
            expected
        );
        assert_consistent(&raw, &keys, &format!("list at {at}")).await;
    }
    assert_eq!(store.count_active_by_user_id(&u).await.unwrap(), 1);
    // An active session never expires.
    assert_eq!(store.get(&id("d")).await.unwrap().id().as_str(), "d");
}

/// `create` removes a few expired sessions of its user through the revoked
/// index, each record with its index entries.
pub async fn retention_create_removes_expired_sessions<G, S, R, F>(
    make: impl Fn(Policy, Clock) -> F,
) where
    F: Future<Output = (G, S, R)>,
    S: SessionStore,
    R: RawScan,
{
    let clock = TestClock::at(ts(0, 0));
    let policy = policy_with(|p| p.revoked_retention = Some(Duration::from_secs(60)));
    let (_guard, store, raw) = make(policy, clock.clock()).await;
    let keys = store.key_space().clone();
    let u = user("u-1");
    for i in 0..40i64 {
        let s = active(&format!("r{i:02}"), "u-1", ts(i, 0))
            .revoked(revocation(ts(100 + i, 0)))
            .unwrap();
        store.create(&s).await.unwrap();
    }
    assert_eq!(
        assert_consistent(&raw, &keys, "40 revoked")
            .await
            .records
            .len(),
        40
    );
    // All 40 expired; each create removes at most a few.
    clock.set(ts(1000, 0));
    let mut remaining = 40;
    let mut creates = 0;
    while remaining > 0 {
        creates += 1;
        let sid = format!("n{creates}");
        let created = store
            .create(&active(&sid, "u-1", ts(1000, 0)))
            .await
            .unwrap();
        assert!(created.evicted.is_empty());
        let view = assert_consistent(&raw, &keys, &format!("create {sid}")).await;
        let revoked = view.records.values().filter(|s| !s.is_active()).count();
        assert!(revoked < remaining, "create {sid} removed none");
        assert!(
            remaining - revoked <= 16,
            "one create removes a bounded number"
        );
        remaining = revoked;
    }
    assert!(creates >= 3);
    let listed = store.list_by_user_id(&u).await.unwrap();
    assert_eq!(listed.len(), creates);
    assert!(listed.iter().all(Session::is_active));
}

/// `reject`: at the limit, `session_limit` and nothing written.
pub async fn limit_reject<G, S, R, F>(make: impl Fn(Policy, Clock) -> F)
where
    F: Future<Output = (G, S, R)>,
    S: SessionStore,
    R: RawScan,
{
    let policy = policy_with(|p| p.session_limit = SessionLimit::new(3, OnLimit::Reject));
    let (_guard, store, raw) = make(policy, Clock::system()).await;
    let keys = store.key_space().clone();
    let u = user("u-1");
    for i in 0..3i64 {
        store
            .create(&active(&format!("s{i}"), "u-1", ts(i, 0)))
            .await
            .unwrap();
    }
    let before = assert_consistent(&raw, &keys, "three").await;
    let err = store
        .create(&active("s3", "u-1", ts(3, 0)))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::SessionLimit, "{err}");
    assert!(!err.is_retryable());
    let after = assert_consistent(&raw, &keys, "refused").await;
    assert_eq!(after.records, before.records, "nothing written");
    assert_eq!(after.keys, before.keys);
    assert_eq!(raw.get(&keys.reference_record_key(&id("s3"))).await, None);
    assert_eq!(store.count_active_by_user_id(&u).await.unwrap(), 3);

    // Revoked sessions and other users are not limited.
    let revoked = active("r", "u-1", ts(4, 0))
        .revoked(revocation(ts(5, 0)))
        .unwrap();
    store.create(&revoked).await.unwrap();
    store.create(&active("x", "u-2", ts(4, 0))).await.unwrap();
    // Room after a revoke.
    store.revoke(&revoke_input("s0", ts(6, 0))).await.unwrap();
    store.create(&active("s3", "u-1", ts(7, 0))).await.unwrap();
    assert_eq!(store.count_active_by_user_id(&u).await.unwrap(), 3);
    let view = assert_consistent(&raw, &keys, "after room was made").await;
    assert_eq!(view.active_of(&u), 3);
}

/// `revoke-oldest`: the oldest active sessions are revoked in the same
/// atomic step (reason `session_limit`, actor type `system`) and named.
pub async fn limit_revoke_oldest<G, S, R, F>(make: impl Fn(Policy, Clock) -> F)
where
    F: Future<Output = (G, S, R)>,
    S: SessionStore,
    R: RawScan,
{
    let clock = TestClock::at(ts(100, 0));
    let policy = policy_with(|p| p.session_limit = SessionLimit::new(3, OnLimit::RevokeOldest));
    let (_guard, store, raw) = make(policy, clock.clock()).await;
    let keys = store.key_space().clone();
    let u = user("u-1");
    let mut evicted = Vec::new();
    for i in 0..8i64 {
        clock.set(ts(100 + i, 0));
        let created = store
            .create(&active(&format!("s{i}"), "u-1", ts(i, 0)))
            .await
            .unwrap();
        assert_eq!(created.session.id().as_str(), format!("s{i}"));
        for s in &created.evicted {
            let r = s.revocation().unwrap();
            assert_eq!(r.reason_code().as_str(), "session_limit");
            assert_eq!(r.actor_type().as_str(), "system");
            assert_eq!(r.at(), ts(100 + i, 0));
            // The stored record is exactly the one reported.
            assert_eq!(
                raw.get(&keys.reference_record_key(s.id())).await,
                Some(codec::encode(s))
            );
        }
        evicted.extend(created.evicted.iter().map(|s| s.id().as_str().to_owned()));
        let view = assert_consistent(&raw, &keys, &format!("create s{i}")).await;
        assert_eq!(view.active_of(&u), (i as usize + 1).min(3));
    }
    assert_eq!(evicted, ["s0", "s1", "s2", "s3", "s4"]);
    let active_now: Vec<Session> = walk(&store, &u, 50, StatusFilter::Active).await;
    assert_eq!(ids(&active_now), ["s7", "s6", "s5"]);
    // A revoked session ignores the limit and evicts nobody.
    let revoked = active("r", "u-1", ts(50, 0))
        .revoked(revocation(ts(60, 0)))
        .unwrap();
    assert!(store.create(&revoked).await.unwrap().evicted.is_empty());
    assert_eq!(store.count_active_by_user_id(&u).await.unwrap(), 3);
}

/// Create + revoke churn with a limit and a retention: the user's keys stay
/// bounded, consistent at every step.
pub async fn churn_with_limit_and_retention_stays_bounded<G, S, R, F>(
    make: impl Fn(Policy, Clock) -> F,
) where
    F: Future<Output = (G, S, R)>,
    S: SessionStore,
    R: RawScan,
{
    let clock = TestClock::at(ts(0, 0));
    let policy = policy_with(|p| {
        p.session_limit = SessionLimit::new(4, OnLimit::RevokeOldest);
        p.revoked_retention = Some(Duration::from_secs(60));
    });
    let (_guard, store, raw) = make(policy, clock.clock()).await;
    let keys = store.key_space().clone();
    let u = user("u-1");
    let mut max_keys = 0;
    for i in 0..120i64 {
        let now = ts(i * 5, 0);
        clock.set(now);
        store
            .create(&active(&format!("s{i:03}"), "u-1", now))
            .await
            .unwrap();
        if i % 3 == 0 {
            // Some sessions log out on their own.
            store
                .revoke(&revoke_input(&format!("s{i:03}"), now))
                .await
                .unwrap();
        }
        let view = assert_consistent(&raw, &keys, &format!("churn {i}")).await;
        assert!(view.active_of(&u) <= 4);
        max_keys = max_keys.max(view.keys);
    }
    // ≤ 4 active + those revoked within the last minute (one create or
    // revoke every 5 s: ≤ 2 revocations per create, so ≤ 26) + a few not
    // yet collected (each create removes them only after a whole
    // microsecond past the retention) + 3 index keys.
    assert!(max_keys <= 4 + 26 + 4 + 3, "{max_keys} keys");
}

/// Every key under `keys`' prefixes (owner keys included).
pub async fn key_count<R: RawScan>(raw: &R, keys: &KeySpace) -> usize {
    let mut n = 0;
    for (_, prefix) in keys.prefixes() {
        n += raw.keys_under(prefix).await.len();
    }
    n
}

/// The owner keys (tagged layout) whose record is absent.
pub async fn owner_keys_without_record<R: RawScan>(raw: &R, keys: &KeySpace) -> Vec<String> {
    if keys.layout() != Layout::Tagged {
        return Vec::new();
    }
    let prefix = keys.prefix(KeyKind::Owner);
    let mut dangling = Vec::new();
    for owner_key in raw.keys_under(prefix).await {
        let id = keys.parse_owner_key(&owner_key).expect("an owner key");
        let value = raw.get(&owner_key).await.expect("a string");
        let owner = UserId::parse(std::str::from_utf8(&value).unwrap()).unwrap();
        if raw.get(&keys.record_key(&owner, &id)).await.is_none() {
            dangling.push(owner_key);
        }
    }
    dangling
}

/// Logins under a limit of 5 with `revoke-oldest` and a retention of 10 s,
/// on 3 users, once a second for 200 s: the most keys either layout holds
/// at any point, and the keys left after the retention has passed and a
/// `sweep` (with the owner keys' second look: no create is in flight).
async fn churn_keys<G, S, R, F>(
    make: &impl Fn(KeySpace, Policy, Clock) -> F,
    keys: KeySpace,
) -> (usize, usize)
where
    F: Future<Output = (G, S, R)>,
    S: SessionStore + authsession_driver::SessionAdmin,
    R: RawScan,
{
    let clock = TestClock::at(ts(0, 0));
    let policy = policy_with(|p| {
        p.session_limit = SessionLimit::new(5, OnLimit::RevokeOldest);
        p.revoked_retention = Some(Duration::from_secs(10));
        p.owner_grace = Duration::ZERO;
    });
    let (_guard, store, raw) = make(keys.clone(), policy, clock.clock()).await;
    let mut most = 0;
    for i in 0..200i64 {
        let now = ts(i, 0);
        clock.set(now);
        for u in 0..3 {
            store
                .create(&active(&format!("c{u}-{i:03}"), &format!("u{u}"), now))
                .await
                .unwrap();
        }
        most = most.max(key_count(&raw, &keys).await);
    }
    clock.set(ts(1000, 0));
    let swept = store.sweep().await.unwrap();
    assert!(swept.sessions_removed > 0, "{swept:?}");
    assert_eq!(
        owner_keys_without_record(&raw, &keys).await,
        Vec::<String>::new(),
        "after the sweep"
    );
    let report = store
        .check(authsession_driver::CheckMode::Report)
        .await
        .unwrap();
    assert!(report.is_clean(), "{report:#?}");
    // 5 active sessions per user and their 2 index keys (owner keys too
    // in the tagged layout).
    let left = key_count(&raw, &keys).await;
    (most, left)
}

/// Churn in the tagged layout (retention and `revoke-oldest`) keeps the
/// key count within twice the reference layout's: owner keys go with
/// their sessions. After the retention and a sweep, no owner key lacks
/// its record.
pub async fn churn_in_the_tagged_layout_stays_within_twice_the_reference<G, S, R, F>(
    make: impl Fn(KeySpace, Policy, Clock) -> F,
) where
    F: Future<Output = (G, S, R)>,
    S: SessionStore + authsession_driver::SessionAdmin,
    R: RawScan,
{
    let reference = crate::fixtures::fresh_key_space("churn");
    let tagged = crate::fixtures::fresh_key_space("churn")
        .in_layout(authsession_driver::core::Layout::Tagged)
        .unwrap();
    let (most_reference, left_reference) = churn_keys(&make, reference).await;
    let (most_tagged, left_tagged) = churn_keys(&make, tagged).await;
    eprintln!(
        "churn keys: reference at most {most_reference}, {left_reference} after sweep; \
         tagged at most {most_tagged}, {left_tagged} after sweep"
    );
    // 3 users × (≤ 5 active + ≤ ~11 revoked within 10 s + a few not yet
    // collected) records and 3 index keys each.
    assert!(most_reference <= 3 * (5 + 11 + 4 + 3), "{most_reference}");
    assert!(
        most_tagged <= 2 * most_reference,
        "tagged {most_tagged} > 2 × reference {most_reference}"
    );
    assert_eq!(left_reference, 3 * (5 + 2));
    assert_eq!(left_tagged, 3 * (5 + 5 + 2));
}

/// `revoke_all` in batches of three through the store: the classic form
/// and the count form; every session existing at the start, whatever its
/// creation time (after the instant: revoked at its own creation time).
pub async fn revoke_all_in_batches<G, S, R, F>(make: impl Fn(Policy, Clock) -> F)
where
    F: Future<Output = (G, S, R)>,
    S: SessionStore,
    R: RawScan,
{
    let policy = policy_with(|p| p.batch_size = BatchSize::new(3).unwrap());
    let (_guard, store, raw) = make(policy, Clock::system()).await;
    let keys = store.key_space().clone();
    let u = user("u-1");
    for i in 0..10i64 {
        store
            .create(&active(&format!("s{i}"), "u-1", ts(i, 0)))
            .await
            .unwrap();
    }
    // In the instant's microsecond: before, after (a whole batch of them).
    for (sid, nanos) in [
        ("e-a", 900),
        ("e-b", 100),
        ("e-c", 900),
        ("e-d", 900),
        ("e-e", 100),
    ] {
        store
            .create(&active(sid, "u-1", ts(50, nanos)))
            .await
            .unwrap();
    }
    store
        .create(&active("later", "u-1", ts(99, 0)))
        .await
        .unwrap();
    let outcome = store
        .revoke_all_by_user_id(&revoke_all_input("u-1", ts(50, 500)))
        .await
        .unwrap();
    let RevokeUserSessionsOutcome::Revoked(revoked) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(revoked.len(), 16);
    assert_eq!(
        &ids(&revoked)[..6],
        ["later", "e-a", "e-c", "e-d", "e-b", "e-e"]
    );
    for s in &revoked {
        let at = s.revocation().unwrap().at();
        assert_eq!(at, s.created_at().max(ts(50, 500)), "{}", s.id());
    }
    let view = assert_consistent(&raw, &keys, "revoke all").await;
    assert!(view.records.values().all(|s| !s.is_active()));

    // The count form, later: nothing left.
    let report = store
        .revoke_all_count(&revoke_all_input("u-1", ts(100, 0)))
        .await
        .unwrap();
    assert_eq!((report.count, report.batches), (0, 0));
    assert!(report.revoked.is_empty());
    assert_eq!(store.count_active_by_user_id(&u).await.unwrap(), 0);
    let again = store
        .revoke(&revoke_input("later", ts(200, 0)))
        .await
        .unwrap();
    assert!(matches!(again, RevokeSessionOutcome::AlreadyRevoked(_)));
    assert_consistent(&raw, &keys, "count form").await;
}
