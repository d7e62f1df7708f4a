//! Round trips per uncontended operation (SPEC §11): get 1, count 1,
//! create 1, list ≤ 2, revoke ≤ 2, revoke_all ≤ 3, whatever the number of
//! sessions. Counted on the server: MONITOR says who sent each command
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

use authsession_driver::SessionStore;
use authsession_tests::fixtures::{
    active, fresh_key_space, id, revoke_all_input, revoke_input, ts, user,
};
use authsession_tests::monitor::{Monitor, MonitoredCommand};
use authsession_tests::{RedisRaw, RedisServer};

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
        let expected: &[&str] = if n > 1 {
            &["zrange", "mget", "evalsha"]
        } else {
            &["zrange"]
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
