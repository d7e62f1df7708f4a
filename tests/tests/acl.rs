//! Least privilege (docs/acl.md) on a real `redis-server`: the ACL users
//! are created from the doc's own block, the store runs every service
//! operation as the service user in both layouts (and every command it is
//! granted is one the operations use), anything outside the rules fails
//! with `permission_denied` — the admin commands, a key outside the
//! prefixes, a command missing inside the script, `SCRIPT LOAD`, `WAIT` —
//! and the admin user runs check, repair and purge.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use authsession_driver::core::op::{OnLimit, PageLimit, PageRequest, Policy, SessionLimit};
use authsession_driver::core::{KeySpace, Layout, RevokeSessionOutcome};
use authsession_driver::{
    CheckMode, Clock, Error, ErrorKind, RedisConfig, RedisSessionStore, SessionAdmin, SessionStore,
};
use authsession_tests::fixtures::{active, id, revoke_all_input, revoke_input, ts, user};
use authsession_tests::raw::RawKv as _;
use authsession_tests::{RedisRaw, RedisServer, ServerKind};

const DOC: &str = include_str!("../../docs/acl.md");
const SERVICE: &str = "authsession-service";
const ADMIN: &str = "authsession-admin";
/// The base the doc's rules are written for.
const BASE: &str = "authsession:";

/// The doc's ACL users: name → rules (`ACL SETUSER` arguments).
fn doc_users() -> BTreeMap<String, Vec<String>> {
    let block = DOC
        .split_once("```acl\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .map(|(block, _)| block)
        .expect("docs/acl.md has an ```acl block");
    block
        .lines()
        .filter_map(|line| line.strip_prefix("user "))
        .map(|line| {
            let mut words = line.split_whitespace().map(str::to_owned);
            let name = words.next().expect("user name");
            (name, words.collect())
        })
        .collect()
}

/// The password the doc's rules set (`>…`).
fn password(rules: &[String]) -> String {
    rules
        .iter()
        .find_map(|r| r.strip_prefix('>'))
        .expect("a password rule")
        .to_owned()
}

/// The commands the rules allow (`+cmd`).
fn granted(rules: &[String]) -> BTreeSet<String> {
    rules
        .iter()
        .filter_map(|r| r.strip_prefix('+'))
        .map(str::to_owned)
        .collect()
}

/// A server whose default user stays unrestricted (for the raw view).
struct Acl {
    server: RedisServer,
    raw: RedisRaw,
    users: BTreeMap<String, Vec<String>>,
    /// The stores' clock, in seconds past the fixtures' epoch.
    now: Arc<AtomicI64>,
}

impl Acl {
    async fn start() -> Self {
        let server = RedisServer::start();
        let raw = server.raw().await;
        let acl = Self {
            server,
            raw,
            users: doc_users(),
            now: Arc::new(AtomicI64::new(1_000)),
        };
        for name in [SERVICE, ADMIN] {
            acl.set_user(name, &acl.rules(name)).await;
        }
        acl
    }

    fn rules(&self, name: &str) -> Vec<String> {
        self.users
            .get(name)
            .unwrap_or_else(|| panic!("docs/acl.md defines {name}"))
            .clone()
    }

    /// `ACL SETUSER name rules…` (from scratch).
    async fn set_user(&self, name: &str, rules: &[String]) {
        let _: i64 = self
            .raw
            .query(redis::cmd("ACL").arg("DELUSER").arg(name))
            .await;
        let () = self
            .raw
            .query(redis::cmd("ACL").arg("SETUSER").arg(name).arg(rules))
            .await;
        // The client announces itself with `CLIENT SETINFO` at connect and
        // ignores a refusal; where the server takes the rule (all but Redis
        // 7.0, docs/acl.md), grant it so ACL LOG holds only real refusals.
        let info = self.server.info().await;
        let takes_setinfo_rule = !(info.kind() == ServerKind::Redis
            && (7, 0, 0) <= info.version()
            && info.version() < (7, 2, 0));
        if takes_setinfo_rule {
            let () = self
                .raw
                .query(
                    redis::cmd("ACL")
                        .arg("SETUSER")
                        .arg(name)
                        .arg("+client|setinfo"),
                )
                .await;
        }
    }

    /// The service rules with `change` applied (e.g. `-type`), as `name`.
    async fn variant(&self, name: &str, change: &[&str]) -> String {
        let mut rules = self.rules(SERVICE);
        rules.extend(change.iter().map(|c| (*c).to_owned()));
        self.set_user(name, &rules).await;
        name.to_owned()
    }

    fn config(&self, name: &str, keys: KeySpace) -> RedisConfig {
        let rules = self
            .users
            .get(name)
            .cloned()
            .unwrap_or_else(|| self.rules(SERVICE));
        {
            let mut config = self.server.config(keys);
            config.settings.username = Some(name.to_owned());
            config.settings.password = Some(password(&rules));
            config.settings.policy = policy();
            config
        }
    }

    async fn store(&self, name: &str, keys: KeySpace) -> RedisSessionStore {
        let now = Arc::clone(&self.now);
        RedisSessionStore::connect(self.config(name, keys))
            .await
            .unwrap_or_else(|e| panic!("{name} connects: {e}"))
            .with_clock(Clock::from_fn(move || ts(now.load(Ordering::Relaxed), 0)))
    }

    /// Sets the stores' clock to `secs` past the fixtures' epoch.
    fn set_now(&self, secs: i64) {
        self.now.store(secs, Ordering::Relaxed);
    }

    /// Entries of `ACL LOG` (refusals since the last reset).
    async fn refusals(&self) -> usize {
        let log: Vec<redis::Value> = self.raw.query(redis::cmd("ACL").arg("LOG")).await;
        log.len()
    }

    async fn reset_log(&self) {
        let () = self
            .raw
            .query(redis::cmd("ACL").arg("LOG").arg("RESET"))
            .await;
    }

    async fn flush_scripts(&self) {
        let () = self.raw.query(redis::cmd("SCRIPT").arg("FLUSH")).await;
    }

    /// Every key on the server.
    async fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.raw.query(redis::cmd("KEYS").arg("*")).await;
        keys.sort();
        keys
    }
}

/// Retention and a session limit, so that `create` runs every path its
/// plans have (evictions, expired removals).
fn policy() -> Policy {
    Policy {
        revoked_retention: Some(Duration::from_secs(3600)),
        session_limit: SessionLimit::new(2, OnLimit::RevokeOldest),
        ..Policy::default()
    }
}

fn keys(layout: Layout) -> KeySpace {
    KeySpace::with_base_and_layout(BASE, layout).unwrap()
}

fn denied(result: Result<impl std::fmt::Debug, Error>, what: &str) {
    let err = result.expect_err(what);
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{what}: {err}");
    assert!(!err.is_retryable(), "{what}: {err}");
}

/// Every service operation, with the outcomes a full-rights store gives.
async fn every_service_operation(acl: &Acl, store: &RedisSessionStore) {
    acl.set_now(1_000);
    let (u1, u2) = (user("u-1"), user("u-2"));
    store.ping().await.unwrap();
    for (n, t) in [("s-1", 1), ("s-2", 2)] {
        let created = store.create(&active(n, "u-1", ts(t, 0))).await.unwrap();
        assert!(created.evicted.is_empty());
    }
    // The limit (2) is reached: the oldest is revoked to make room.
    let created = store.create(&active("s-3", "u-1", ts(3, 0))).await.unwrap();
    assert_eq!(created.evicted.len(), 1);
    assert_eq!(created.evicted[0].id(), &id("s-1"));
    assert_eq!(
        store
            .create(&active("s-3", "u-1", ts(3, 0)))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Conflict
    );

    assert_eq!(store.get(&id("s-2")).await.unwrap().user_id(), &u1);
    assert_eq!(
        store.get_for_user(&u1, &id("s-2")).await.unwrap().id(),
        &id("s-2")
    );
    assert_eq!(
        store
            .get_for_user(&u2, &id("s-2"))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
    assert_eq!(store.list_by_user_id(&u1).await.unwrap().len(), 3);
    // Page by page (keyset cursors), the same three sessions.
    let mut request = PageRequest {
        limit: PageLimit::new(2).unwrap(),
        ..PageRequest::default()
    };
    let mut paged = Vec::new();
    loop {
        let page = store.list_page(&u1, &request).await.unwrap();
        paged.extend(page.sessions.into_iter().map(|s| s.id().clone()));
        match page.next_cursor {
            Some(cursor) => request.cursor = Some(cursor),
            None => break,
        }
    }
    assert_eq!(paged, [id("s-3"), id("s-2"), id("s-1")]);
    assert_eq!(store.count_active_by_user_id(&u1).await.unwrap(), 2);

    let revoked = store.revoke(&revoke_input("s-2", ts(10, 0))).await.unwrap();
    assert!(matches!(revoked, RevokeSessionOutcome::Revoked(_)));
    let again = store.revoke(&revoke_input("s-2", ts(11, 0))).await.unwrap();
    assert!(matches!(again, RevokeSessionOutcome::AlreadyRevoked(_)));
    let all = store
        .revoke_all_by_user_id(&revoke_all_input("u-1", ts(20, 0)))
        .await
        .unwrap();
    assert_eq!(all.sessions().len(), 1);
    let count = store
        .revoke_all_count(&revoke_all_input("u-1", ts(21, 0)))
        .await
        .unwrap();
    assert_eq!(count.count, 0);
    assert_eq!(store.count_active_by_user_id(&u1).await.unwrap(), 0);

    // The clock moves past every revocation's retention: the next create
    // removes the expired sessions (record and index entries).
    acl.set_now(100_000);
    store
        .create(&active("s-4", "u-1", ts(50_000, 0)))
        .await
        .unwrap();
    assert_eq!(
        store.get(&id("s-1")).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    let listed = store.list_by_user_id(&u1).await.unwrap();
    assert!(listed.len() < 4 && listed.iter().any(|s| s.id() == &id("s-4")));
}

#[tokio::test]
async fn the_service_user_runs_every_operation_in_both_layouts() {
    let acl = Acl::start().await;
    let names =
        |calls: &BTreeMap<String, u64>| -> BTreeSet<String> { calls.keys().cloned().collect() };
    for layout in [Layout::Reference, Layout::Tagged] {
        acl.flush_scripts().await; // the first mutation takes the SCRIPT LOAD path
        let _: () = acl.raw.query(redis::cmd("CONFIG").arg("RESETSTAT")).await;
        acl.reset_log().await;
        let store = acl.store(SERVICE, keys(layout)).await;
        every_service_operation(&acl, &store).await;
        assert_eq!(acl.refusals().await, 0, "{layout:?}: nothing was refused");

        // What the server ran (the store's commands and the script's
        // calls), minus the raw connection's own and the handshake.
        // Redis 6.2 counts a subcommand under its command (`script`, not
        // `script|load`): compare at the grain the server counts.
        let info = acl.server.info().await;
        let coarse = info.kind() == ServerKind::Redis && info.version() < (7, 0, 0);
        let grain = |c: &String| match c.split_once('|') {
            Some((command, _)) if coarse => command.to_owned(),
            _ => c.clone(),
        };
        let mut used: BTreeSet<String> = names(&acl.raw.command_calls().await)
            .iter()
            .map(grain)
            .collect();
        for own in ["config|resetstat", "info", "acl|log", "auth", "hello"] {
            used.remove(&grain(&own.to_owned()));
        }
        used.retain(|c| !c.starts_with("client"));
        let granted: BTreeSet<String> = granted(&acl.rules(SERVICE)).iter().map(grain).collect();
        assert!(
            used.is_subset(&granted),
            "{layout:?}: used outside the rules: {:?}",
            used.difference(&granted).collect::<Vec<_>>()
        );
        // Least privilege: every command granted is one the operations use
        // (in the tagged layout too, where the owner key adds no command).
        assert_eq!(
            granted.difference(&used).collect::<Vec<_>>(),
            Vec::<&String>::new(),
            "{layout:?}: granted but never used"
        );

        // Every key written is under the rules' patterns.
        for key in acl.keys().await {
            assert!(key.starts_with(BASE), "{key}");
        }
        let _: () = acl.raw.query(&redis::cmd("FLUSHALL")).await;
    }
}

#[tokio::test]
async fn the_service_user_is_refused_everything_else() {
    let acl = Acl::start().await;
    let store = acl.store(SERVICE, keys(Layout::Reference)).await;
    store.create(&active("s-1", "u-1", ts(1, 0))).await.unwrap();

    // Maintenance is the admin's.
    denied(
        store.check(CheckMode::Report).await,
        "check as the service user",
    );
    denied(
        store.check(CheckMode::Repair).await,
        "repair as the service user",
    );
    denied(store.purge().await, "purge as the service user");

    // Keys outside the prefixes: refused on the call, nothing written.
    let before = acl.keys().await;
    for layout in [Layout::Reference, Layout::Tagged] {
        let foreign = KeySpace::with_base_and_layout("other:", layout).unwrap();
        let outside = acl.store(SERVICE, foreign).await;
        outside.ping().await.unwrap();
        denied(
            outside.create(&active("s-9", "u-9", ts(1, 0))).await,
            "create outside",
        );
        denied(outside.get(&id("s-9")).await, "get outside");
        denied(
            outside.get_for_user(&user("u-9"), &id("s-9")).await,
            "get_for_user outside",
        );
        denied(outside.list_by_user_id(&user("u-9")).await, "list outside");
        denied(
            outside.count_active_by_user_id(&user("u-9")).await,
            "count outside",
        );
        denied(
            outside.revoke(&revoke_input("s-9", ts(2, 0))).await,
            "revoke outside",
        );
    }
    assert_eq!(acl.keys().await, before, "nothing written outside");

    // Raw commands outside the rules (through the same credentials).
    let client = redis::Client::open(format!(
        "redis://{SERVICE}:{}@{}",
        password(&acl.rules(SERVICE)),
        acl.server.addr()
    ))
    .unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    for cmd in [
        redis::cmd("KEYS").arg("*").to_owned(),
        redis::cmd("FLUSHDB").to_owned(),
        redis::cmd("EVAL").arg("return 1").arg(0).to_owned(),
        redis::cmd("SCAN").arg(0).to_owned(),
        redis::cmd("GET").arg("other:session:x").to_owned(),
    ] {
        let err = cmd
            .query_async::<redis::Value>(&mut conn)
            .await
            .expect_err("refused");
        assert_eq!(err.code(), Some("NOPERM"), "{err}");
    }
    assert!(acl.refusals().await > 0);
}

#[tokio::test]
async fn a_refusal_inside_the_script_is_permission_denied() {
    let acl = Acl::start().await;
    // Without TYPE the script's first call is refused (Redis 7.0 says
    // `ERR The user executing the script can't …`, later ones `NOPERM`).
    let name = acl.variant("no-type", &["-type"]).await;
    let store = acl.store(&name, keys(Layout::Reference)).await;
    denied(
        store.create(&active("s-1", "u-1", ts(1, 0))).await,
        "create without TYPE",
    );
    assert_eq!(acl.keys().await, Vec::<String>::new(), "nothing written");
    // Reads do not need it.
    assert_eq!(
        store.get(&id("s-1")).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );

    // Without SCRIPT LOAD the driver cannot install the script on a server
    // that does not know it; once it is loaded, EVALSHA alone is enough.
    // (Redis 6.2 cannot take a single subcommand away: SCRIPT goes whole,
    // which the store only ever sends as SCRIPT LOAD.)
    let info = acl.server.info().await;
    let subcommand_rules = info.kind() == ServerKind::Valkey || info.version() >= (7, 0, 0);
    let rule = if subcommand_rules {
        "-script|load"
    } else {
        "-script"
    };
    let name = acl.variant("no-load", &[rule]).await;
    let store = acl.store(&name, keys(Layout::Reference)).await;
    acl.flush_scripts().await;
    denied(
        store.create(&active("s-2", "u-2", ts(1, 0))).await,
        "create without SCRIPT LOAD",
    );
    let full = acl.store(SERVICE, keys(Layout::Reference)).await;
    full.create(&active("s-3", "u-3", ts(1, 0))).await.unwrap();
    store.create(&active("s-2", "u-2", ts(1, 0))).await.unwrap();
}

/// Waits (bounded) until `master` reports `replicas` online replicas.
async fn replicas_online(raw: &RedisRaw, replicas: usize) {
    let started = Instant::now();
    loop {
        let info: String = raw.query(redis::cmd("INFO").arg("replication")).await;
        let online = info
            .lines()
            .filter(|l| l.starts_with("slave") && l.contains("state=online"))
            .count();
        if online >= replicas {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "replica never came online: {info}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn wait_replicas_needs_wait() {
    let acl = Acl::start().await;
    let port = acl.server.port().to_string();
    let _replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &port]);
    replicas_online(&acl.raw, 1).await;
    let connect = |name: &str| {
        let config = {
            let mut config = acl.config(name, keys(Layout::Reference));
            config.settings.wait_replicas = 1;
            config
        };
        async move { RedisSessionStore::connect(config).await.unwrap() }
    };
    // Refused after the write: the write was made, its replication unconfirmed.
    let store = connect(SERVICE).await;
    denied(
        store.create(&active("s-1", "u-1", ts(1, 0))).await,
        "WAIT refused",
    );
    assert!(store.get(&id("s-1")).await.is_ok());
    let name = acl.variant("with-wait", &["+wait"]).await;
    let store = connect(&name).await;
    store.create(&active("s-2", "u-1", ts(2, 0))).await.unwrap();
}

#[tokio::test]
async fn the_admin_user_runs_check_repair_and_purge() {
    let acl = Acl::start().await;
    for layout in [Layout::Reference, Layout::Tagged] {
        let keys = keys(layout);
        let service = acl.store(SERVICE, keys.clone()).await;
        for (n, t) in [("s-1", 1), ("s-2", 2)] {
            service.create(&active(n, "u-1", ts(t, 0))).await.unwrap();
        }
        let admin = acl.store(ADMIN, keys.clone()).await;
        let report = admin.check(CheckMode::Report).await.unwrap();
        {
            assert!(report.is_clean(), "{layout:?}: {report:?}");
            // Index drift, planted: repair fixes it through the script.
            acl.raw
                .zrem(&keys.user_active_sessions_key(&user("u-1")), "s-1")
                .await;
            assert!(!admin.check(CheckMode::Report).await.unwrap().is_clean());
            let repair = admin.check(CheckMode::Repair).await.unwrap();
            assert_eq!(repair.repaired.len(), 1, "{repair:?}");
            assert_eq!(repair.remaining(), 0, "{repair:?}");
            let after = admin.check(CheckMode::Report).await.unwrap();
            assert!(after.is_clean(), "{after:?}");
        }

        assert!(admin.purge().await.unwrap() > 0);
        assert_eq!(acl.keys().await, Vec::<String>::new(), "{layout:?}: purged");
    }
    // The admin's extra commands, and no more.
    let extra: Vec<String> = granted(&acl.rules(ADMIN))
        .difference(&granted(&acl.rules(SERVICE)))
        .cloned()
        .collect();
    assert_eq!(extra, ["scan", "unlink"]);
}
