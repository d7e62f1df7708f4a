//! Round trips per uncontended operation (SPEC §11): get 1, count 1,
//! create 1, list ≤ 2, revoke ≤ 2, revoke_all ≤ 4 up to a batch (one more
//! than before: the all-sessions walk that finds sessions the active index
//! lost reads their records and active scores), whatever the number of
//! sessions; in the tagged layout (SPEC §15) get_for_user 1, get 2 (1 for
//! an id whose owner the store has seen),
//! create 2, revoke 3, count 1, list page ≤ 2. Counted on the server: MONITOR says who sent each command
//! (the store, or a Lua script it ran), and `INFO commandstats` deltas
//! cross-check that MONITOR saw every command the server executed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use authsession_driver::{RedisBackend, SessionStore, Store};
use authsession_tests::fixtures::{
    active, fresh_key_space, id, revoke_all_input, revoke_input, ts, user,
};
use authsession_tests::monitor::{Monitor, MonitoredCommand};
use authsession_tests::{CountingBackend, RedisRaw, RedisServer};

struct Probe {
    monitor: Monitor,
    raw: RedisRaw,
}

impl Probe {
    /// Runs `op` and returns the commands the store sent for it (script
    /// internals excluded), after checking them against commandstats.
    async fn client_commands<T>(&mut self, op: impl Future<Output = T>) -> (T, Vec<String>) {
        let before = self.raw.command_calls().await;
        self.monitor.since_last_mark(&self.raw).await;
        let value = op.await;
        let seen = self.monitor.since_last_mark(&self.raw).await;
        let after = self.raw.command_calls().await;

        // Everything the server executed in the window, by name: the two
        // markers and the first INFO aside, exactly what MONITOR logged.
        let mut delta: BTreeMap<String, u64> = after
            .iter()
            .map(|(name, calls)| (name.clone(), calls - before.get(name).copied().unwrap_or(0)))
            .filter(|(_, d)| *d > 0)
            .collect();
        for (name, n) in [("echo", 2), ("info", 1)] {
            let left = delta.get(name).copied().unwrap_or(0).saturating_sub(n);
            if left == 0 {
                delta.remove(name);
            } else {
                delta.insert(name.to_owned(), left);
            }
        }
        let mut logged: BTreeMap<String, u64> = BTreeMap::new();
        for c in &seen {
            *logged.entry(c.name.clone()).or_default() += 1;
        }
        assert_eq!(delta, logged, "commandstats and MONITOR disagree");

        let client: Vec<String> = seen
            .iter()
            .filter(|c| !MonitoredCommand::from_script(c))
            .map(|c| c.name.clone())
            .collect();
        (value, client)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trips_per_operation_are_constant() {
    let server = RedisServer::start();
    let store = server.store(fresh_key_space("round-trips")).await;
    let mut probe = Probe {
        monitor: Monitor::start(server.port()),
        raw: server.raw().await,
    };

    // Warm up: the first script call loads the script (EVALSHA → NOSCRIPT
    // → SCRIPT LOAD → EVALSHA); steady state is what SPEC §11 counts.
    store
        .create(&active("warm-up", "warm-up", ts(0, 0)))
        .await
        .unwrap();

    for n in [1usize, 5, 40] {
        let u = format!("user-{n}");
        let mut last = None;
        for i in 0..n {
            let s = active(&format!("s-{n}-{i}"), &u, ts(i64::try_from(i).unwrap(), 0));
            let (result, cmds) = probe.client_commands(store.create(&s)).await;
            result.unwrap();
            assert_eq!(cmds, ["evalsha"], "create");
            last = Some(s);
        }
        let last = last.unwrap();

        let (got, cmds) = probe.client_commands(store.get(last.id())).await;
        assert_eq!(got.unwrap(), last);
        assert_eq!(cmds, ["get"], "get");

        let (count, cmds) = probe
            .client_commands(store.count_active_by_user_id(&user(&u)))
            .await;
        assert_eq!(count.unwrap(), u64::try_from(n).unwrap());
        assert_eq!(cmds, ["zcard"], "count");

        let (listed, cmds) = probe
            .client_commands(store.list_by_user_id(&user(&u)))
            .await;
        assert_eq!(listed.unwrap().len(), n);
        assert_eq!(cmds, ["zrange", "mget"], "list of {n}");

        let (revoked, cmds) = probe
            .client_commands(store.revoke(&revoke_input(last.id().as_str(), ts(100, 0))))
            .await;
        assert_eq!(revoked.unwrap().as_str(), "revoked");
        assert_eq!(cmds, ["get", "evalsha"], "revoke");

        let (again, cmds) = probe
            .client_commands(store.revoke(&revoke_input(last.id().as_str(), ts(100, 0))))
            .await;
        assert_eq!(again.unwrap().as_str(), "already_revoked");
        assert_eq!(cmds, ["get"], "revoke of a revoked session");

        let (all, cmds) = probe
            .client_commands(store.revoke_all_by_user_id(&revoke_all_input(&u, ts(100, 0))))
            .await;
        assert_eq!(all.unwrap().sessions().len(), n - 1);
        // First round trip: both indexes' highest scores, the first active
        // batch and the first all-sessions window; then the batch's
        // records and plan; then the window's records with their active
        // scores.
        let expected: &[&str] = if n > 1 {
            &[
                "zrange", "zrange", "zrange", "zrange", "mget", "evalsha", "mget", "zmscore",
            ]
        } else {
            &["zrange", "zrange", "zrange", "zrange", "mget", "zmscore"]
        };
        assert_eq!(cmds, expected, "revoke_all of {}", n - 1);
    }

    let (listed, cmds) = probe
        .client_commands(store.list_by_user_id(&user("nobody")))
        .await;
    assert!(listed.unwrap().is_empty());
    assert_eq!(cmds, ["zrange"], "list of nobody");

    let (missing, cmds) = probe.client_commands(store.get(&id("missing"))).await;
    assert!(missing.is_err());
    assert_eq!(cmds, ["get"], "get of a missing id");

    let (dup, cmds) = probe
        .client_commands(store.create(&active("warm-up", "warm-up", ts(0, 0))))
        .await;
    assert!(dup.is_err());
    assert_eq!(cmds, ["evalsha"], "conflicting create");
}

/// Commands joined by spaces, and round trips.
fn want(cmds: &str, round_trips: u64) -> (String, u64) {
    (cmds.to_owned(), round_trips)
}

/// The tagged layout (the cluster's) on a standalone server: `get_for_user`
/// 1, `get` 2 (owner key, record), `create` 2 (owner key, then the
/// record's script), `revoke` 3 (owner, record, script), `count` 1, a list
/// page ≤ 2 — whatever the number of sessions. Commands from MONITOR,
/// round trips from the backend calls (a step's reads are one pipeline).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trips_in_the_tagged_layout() {
    use authsession_driver::core::op::{PageLimit, PageRequest, StatusFilter};
    use authsession_driver::core::Layout;

    let server = RedisServer::start();
    let keys = fresh_key_space("round-trips-tagged")
        .in_layout(Layout::Tagged)
        .unwrap();
    let backend = RedisBackend::connect(&server.config(keys.clone()))
        .await
        .unwrap();
    let trips = Arc::new(AtomicU64::new(0));
    // A second store on the same server that has seen none of the ids.
    let stranger = Store::with_backend(CountingBackend::new(backend.clone(), Arc::clone(&trips)))
        .with_key_space(keys.clone());
    let store =
        Store::with_backend(CountingBackend::new(backend, Arc::clone(&trips))).with_key_space(keys);
    let mut probe = Probe {
        monitor: Monitor::start(server.port()),
        raw: server.raw().await,
    };
    store
        .create(&active("warm-up", "warm-up", ts(0, 0)))
        .await
        .unwrap();
    macro_rules! measure {
        ($op:expr) => {{
            let before = trips.load(Ordering::Relaxed);
            let (value, cmds) = probe.client_commands($op).await;
            (value, cmds, trips.load(Ordering::Relaxed) - before)
        }};
    }

    for n in [1usize, 5, 40] {
        let u = format!("user-{n}");
        let mut last = None;
        for i in 0..n {
            let s = active(&format!("s-{n}-{i}"), &u, ts(i64::try_from(i).unwrap(), 0));
            let (result, cmds, rt) = measure!(store.create(&s));
            result.unwrap();
            assert_eq!((cmds.join(" "), rt), want("evalsha evalsha", 2), "create");
            last = Some(s);
        }
        let last = last.unwrap();

        let (got, cmds, rt) = measure!(store.get_for_user(&user(&u), last.id()));
        assert_eq!(got.unwrap(), last);
        assert_eq!((cmds.join(" "), rt), want("get", 1), "get_for_user");

        // This store created it: it knows the owner, and reads the record
        // at once.
        let (got, cmds, rt) = measure!(store.get(last.id()));
        assert_eq!(got.unwrap(), last);
        assert_eq!((cmds.join(" "), rt), want("get", 1), "get of a known id");

        // An id never seen: the owner key, then the record; from then on
        // the record only.
        let (got, cmds, rt) = measure!(stranger.get(last.id()));
        assert_eq!(got.unwrap(), last);
        assert_eq!((cmds.join(" "), rt), want("get get", 2), "get of a new id");
        let (got, cmds, rt) = measure!(stranger.get(last.id()));
        assert_eq!(got.unwrap(), last);
        assert_eq!((cmds.join(" "), rt), want("get", 1), "get of a seen id");

        let (count, cmds, rt) = measure!(store.count_active_by_user_id(&user(&u)));
        assert_eq!(count.unwrap(), u64::try_from(n).unwrap());
        assert_eq!((cmds.join(" "), rt), want("zcard", 1), "count");

        let mut request = PageRequest {
            limit: PageLimit::new(2).unwrap(),
            cursor: None,
            status: StatusFilter::All,
        };
        let mut pages = 0;
        let mut seen = 0;
        loop {
            let (page, cmds, rt) = measure!(store.list_page(&user(&u), &request));
            let page = page.unwrap();
            // The index window (a later page also reads the rest of the
            // cursor's score group, in the same pipeline), then the records.
            assert!(rt <= 2, "page {pages} of {n}: {rt} round trips");
            assert_eq!(cmds.last().map(String::as_str), Some("mget"), "{cmds:?}");
            assert!(
                cmds.iter().rev().skip(1).all(|c| c == "zrange") && cmds.len() <= 3,
                "page {pages} of {n}: {cmds:?}"
            );
            pages += 1;
            assert!(!page.sessions.is_empty(), "page {pages} of {n}");
            seen += page.sessions.len();
            match page.next_cursor {
                Some(next) => request.cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, n);

        let input = revoke_input(last.id().as_str(), ts(100, 0));
        let (revoked, cmds, rt) = measure!(store.revoke(&input));
        assert_eq!(revoked.unwrap().as_str(), "revoked");
        assert_eq!((cmds.join(" "), rt), want("get get evalsha", 3), "revoke");

        let (again, cmds, rt) = measure!(store.revoke(&input));
        assert_eq!(again.unwrap().as_str(), "already_revoked");
        assert_eq!(
            (cmds.join(" "), rt),
            want("get get", 2),
            "revoke of a revoked session"
        );
    }

    let (missing, cmds, rt) = measure!(store.get(&id("missing")));
    assert!(missing.is_err());
    assert_eq!((cmds.join(" "), rt), want("get", 1), "get of an unowned id");

    let (dup, cmds, rt) = measure!(store.create(&active("warm-up", "someone-else", ts(0, 0))));
    assert!(dup.is_err());
    assert_eq!(
        (cmds.join(" "), rt),
        want("evalsha", 1),
        "create of another user's id"
    );
}
