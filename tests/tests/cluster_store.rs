//! The cluster backend on a real six-node cluster (SPEC §15): routing per
//! slot, scans over every primary, plans refused across slots, scripts
//! loaded only where needed, `WAIT` on the key's primary, a user's slot
//! moving between primaries (`ASK`, then `MOVED`), credentials.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use authsession_driver::backend::{Backend, BackendInfo};
use authsession_driver::core::plan::{
    Applied, KeyType, OnViolation, Plan, Read, Reply, ScanCursor, Write,
};
use authsession_driver::core::{KeyKind, KeySpace, Layout};
use authsession_driver::{ClusterConfig, ClusterSessionStore, ErrorKind, SessionStore};
use authsession_tests::fixtures::{active, fresh_key_space, revoke_input, ts, user};
use authsession_tests::monitor::Monitor;
use authsession_tests::{RawKv, RedisCluster, RedisRaw};
use redis::cmd;

const BUDGET: Duration = Duration::from_secs(2);

fn tagged(tag: &str) -> KeySpace {
    fresh_key_space(tag).in_layout(Layout::Tagged).unwrap()
}

fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// `INFO commandstats` calls of `command` on the node on `port`.
fn calls(c: &RedisCluster, port: u16, command: &str) -> u64 {
    let info: String = c
        .query(port, cmd("INFO").arg("commandstats"))
        .expect("INFO commandstats");
    let prefix = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |rest| rest.split(',').next().unwrap().parse().unwrap())
}

/// Reads go per slot (one pipeline per slot, all at once), `Values` over
/// many slots comes back in order, a scan visits every primary, deletes
/// split per slot, and a plan across slots is refused before anything is
/// sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_route_per_slot_and_scans_visit_every_primary() {
    let c = blocking(RedisCluster::shared);
    let keys = tagged("cluster-reads");
    let store = c.store(keys.clone()).await;
    let raw = c.raw().await;
    let backend = store.backend();

    let info = backend.info();
    assert_eq!(info.system, "redis");
    assert_eq!(info.port, Some(c.ports()[0]));
    assert_eq!(info.namespace.as_deref(), Some("0"));
    backend.ping(BUDGET).await.unwrap();

    // Untagged keys: spread over every slot range.
    let prefix = format!("{}raw:", keys.prefix(KeyKind::Record));
    let strings: Vec<String> = (0..300).map(|i| format!("{prefix}s{i}")).collect();
    let sets: Vec<String> = (0..20).map(|i| format!("{prefix}z{i}")).collect();
    for (i, k) in strings.iter().enumerate() {
        raw.set(k, format!("v{i}").as_bytes()).await;
    }
    for k in &sets {
        raw.zadd(k, "m", 1.0).await;
    }
    let topology = blocking(|| c.topology());
    let mut per_primary: BTreeMap<u16, usize> = BTreeMap::new();
    for k in &strings {
        let slot = raw.key_slot(k).await.unwrap();
        *per_primary
            .entry(topology.owner_of(slot).unwrap())
            .or_default() += 1;
    }
    assert_eq!(per_primary.len(), 3, "{per_primary:?}");

    // A scan over every primary, page by page.
    let mut cursor = ScanCursor::start();
    let mut found = BTreeSet::new();
    let mut visited = BTreeSet::new();
    let mut pages = 0;
    loop {
        let read = Read::Scan {
            cursor,
            prefix: prefix.clone(),
            key_type: KeyType::String,
            count: 50,
        };
        let replies = backend.read(BUDGET, &[read]).await.unwrap();
        let [Reply::Keys(page, next)] = replies.as_slice() else {
            panic!("{replies:?}")
        };
        found.extend(page.iter().cloned());
        pages += 1;
        match next {
            Some(next) => {
                let port: u16 = next.as_str().rsplit(':').next().unwrap().parse().unwrap();
                visited.insert(port);
                cursor = next.clone();
            }
            None => break,
        }
        assert!(pages < 1000, "the scan ends");
    }
    assert_eq!(found, strings.iter().cloned().collect::<BTreeSet<_>>());
    let primaries: BTreeSet<u16> = topology.primaries().into_iter().collect();
    assert!(visited.is_subset(&primaries), "{visited:?} ⊆ {primaries:?}");
    assert!(
        visited.len() >= 2,
        "cursors name the primaries: {visited:?}"
    );
    let garbage = Read::Scan {
        cursor: ScanCursor::from_backend("not a cursor".into()),
        prefix: prefix.clone(),
        key_type: KeyType::String,
        count: 50,
    };
    let err = backend.read(BUDGET, &[garbage]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Backend, "{err}");

    // Values over every slot, in order; absent and wrong-typed keys read
    // as nothing.
    let mut asked = strings.clone();
    asked.insert(7, format!("{prefix}missing"));
    asked.insert(3, sets[0].clone());
    let replies = backend
        .read(
            BUDGET,
            &[Read::Values {
                keys: asked.clone(),
            }],
        )
        .await
        .unwrap();
    let [Reply::Values(values)] = replies.as_slice() else {
        panic!("{replies:?}")
    };
    assert_eq!(values.len(), asked.len());
    for (k, v) in asked.iter().zip(values) {
        let expected = strings
            .iter()
            .position(|s| s == k)
            .map(|i| format!("v{i}").into_bytes());
        assert_eq!(v, &expected, "{k}");
    }

    // One step of mixed reads, several slots at once.
    let step = [
        Read::Value {
            key: strings[0].clone(),
        },
        Read::Values {
            keys: vec![strings[1].clone(), strings[2].clone()],
        },
        Read::IndexLen {
            key: sets[0].clone(),
        },
        Read::Value {
            key: sets[1].clone(),
        },
        Read::Scan {
            cursor: ScanCursor::start(),
            prefix: format!("{prefix}z"),
            key_type: KeyType::SortedSet,
            count: 10,
        },
        Read::Values { keys: Vec::new() },
    ];
    let replies = backend.read(BUDGET, &step).await.unwrap();
    assert_eq!(replies.len(), step.len());
    assert_eq!(replies[0], Reply::Value(Some(b"v0".to_vec())));
    assert_eq!(
        replies[1],
        Reply::Values(vec![Some(b"v1".to_vec()), Some(b"v2".to_vec())])
    );
    assert_eq!(replies[2], Reply::Len(1));
    assert_eq!(replies[3], Reply::WrongType);
    assert!(matches!(replies[4], Reply::Keys(_, _)), "{:?}", replies[4]);
    assert_eq!(replies[5], Reply::Values(Vec::new()));

    // A plan over two slots: refused before anything is sent.
    let (a, b) = (strings[0].clone(), strings[1].clone());
    let (slot_a, slot_b) = (raw.key_slot(&a).await, raw.key_slot(&b).await);
    assert_ne!(slot_a, slot_b);
    let plan = Plan::new(
        Vec::new(),
        vec![
            Write::Set {
                key: a.clone(),
                value: b"new".to_vec(),
            },
            Write::Set {
                key: b.clone(),
                value: b"new".to_vec(),
            },
        ],
        OnViolation::Retry,
    );
    let err = backend.apply(BUDGET, &plan).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Backend);
    assert!(!err.is_retryable());
    let text = err.to_string();
    assert!(
        text.contains("one hash slot") && text.contains(&a) && text.contains(&b),
        "{text}"
    );
    assert_eq!(raw.get(&a).await.as_deref(), Some(&b"v0"[..]));
    // One slot: applied.
    let plan = Plan::new(
        Vec::new(),
        vec![Write::Set {
            key: a.clone(),
            value: b"new".to_vec(),
        }],
        OnViolation::Retry,
    );
    assert_eq!(backend.apply(BUDGET, &plan).await.unwrap(), Applied::Done);
    assert_eq!(raw.get(&a).await.as_deref(), Some(&b"new"[..]));

    // Deletes split per slot.
    let all: Vec<String> = strings.iter().chain(&sets).cloned().collect();
    assert_eq!(backend.delete(BUDGET, &all).await.unwrap(), 320);
    assert_eq!(backend.delete(BUDGET, &all).await.unwrap(), 0);
    assert_eq!(raw.get(&strings[5]).await, None);
}

/// A store on the service's own cluster connection works the same; in the
/// reference layout (a user's keys over many slots) every plan is refused
/// with a clear error, nothing written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_on_the_services_own_connection() {
    let c = blocking(RedisCluster::shared);
    let connect = || async {
        redis::cluster::ClusterClient::builder(c.seed_urls())
            .response_timeout(Duration::from_secs(1))
            .retries(0)
            .build()
            .unwrap()
            .get_async_connection()
            .await
            .unwrap()
    };
    let info = BackendInfo::redis("127.0.0.1".into(), c.ports()[0], 0);
    let store = ClusterSessionStore::on_connection(connect().await, info.clone())
        .with_key_space(tagged("own-conn"));
    let s = active("own-1", "own-user", ts(0, 0));
    store.create(&s).await.unwrap();
    assert_eq!(store.get(s.id()).await.unwrap(), s);
    assert_eq!(store.list_by_user_id(&user("own-user")).await.unwrap(), [s]);

    let reference = ClusterSessionStore::on_connection(connect().await, info)
        .with_key_space(fresh_key_space("own-conn-reference"));
    let s = active("ref-1", "ref-user", ts(0, 0));
    let err = reference.create(&s).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Backend, "{err}");
    assert!(err.to_string().contains("tagged layout"), "{err}");
    let raw = c.raw().await;
    let keys = reference.key_space();
    assert_eq!(raw.get(&keys.record_key(s.user_id(), s.id())).await, None);
    // And the connect path refuses it as configuration.
    let err = ClusterSessionStore::connect(c.config(fresh_key_space("own-conn-config")))
        .await
        .unwrap_err();
    assert_eq!(err.config_field(), Some("key_space"));
}

/// Scripts are loaded on the primary that needs them only (not on every
/// node), and `WAIT` runs on the key's primary: a create is acknowledged
/// once its replica has it, and reported `write_unconfirmed` (retryable)
/// while that replica is stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_load_where_needed_and_wait_confirms_the_replica() {
    let c = blocking(RedisCluster::start);
    for port in c.ports() {
        let () = c.query(port, cmd("CONFIG").arg("RESETSTAT")).unwrap();
    }
    let keys = tagged("cluster-wait");
    let config = {
        let mut config = c.config(keys.clone());
        config.settings.wait_replicas = 1;
        config
    };
    let store = ClusterSessionStore::connect(config).await.unwrap();
    let u = user("waiting-user");
    let s = active("w-1", "waiting-user", ts(0, 0));
    store.create(&s).await.unwrap();

    let owner_primary = blocking(|| c.primary_for_key(&keys.owner_key(s.id()).unwrap()));
    let user_primary = blocking(|| c.primary_for_key(&keys.user_sessions_key(&u)));
    let needed: BTreeSet<u16> = [owner_primary, user_primary].into();
    for port in c.ports() {
        let (loads, waits) = blocking(|| (calls(&c, port, "script|load"), calls(&c, port, "wait")));
        if needed.contains(&port) {
            assert_eq!(loads, 1, "{port}: loaded once where needed");
            assert!(waits >= 1, "{port}: WAIT after the write");
        } else {
            assert_eq!((loads, waits), (0, 0), "{port}: untouched");
        }
    }
    // Loaded now: the next create runs EVALSHA directly.
    store
        .create(&active("w-2", "waiting-user", ts(1, 0)))
        .await
        .unwrap();
    for &port in &needed {
        assert_eq!(blocking(|| calls(&c, port, "script|load")), 1, "{port}");
    }

    // The user's replica stopped: the write is applied on the primary but
    // not confirmed.
    let topology = blocking(|| c.topology());
    let replica = topology
        .replicas()
        .into_iter()
        .find(|&r| topology.primary_of(r) == Some(user_primary))
        .unwrap();
    c.signal(replica, "STOP");
    let unconfirmed = active("w-3", "waiting-user", ts(2, 0));
    let result = store.create(&unconfirmed).await;
    c.signal(replica, "CONT");
    let err = result.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WriteUnconfirmed, "{err}");
    assert!(err.is_retryable());
    // Applied on the primary all the same.
    assert_eq!(
        store.get_for_user(&u, unconfirmed.id()).await.unwrap(),
        unconfirmed
    );
    blocking(|| c.wait_healthy());
    let outcome = store.revoke(&revoke_input("w-1", ts(5, 0))).await.unwrap();
    assert_eq!(outcome.as_str(), "revoked");

    // Commands the store sent, over all primaries (MONITOR on each, script
    // internals left out), without WAIT: what each operation costs on a
    // cluster — as many as on a standalone server in this layout.
    let store = c.store(tagged("cluster-trips")).await;
    let u = user("counted");
    for i in 0..5 {
        store
            .create(&active(&format!("c-{i}"), "counted", ts(i, 0)))
            .await
            .unwrap();
    }
    let primaries = blocking(|| c.topology().primaries());
    let mut probes = Vec::new();
    for &port in &primaries {
        let conn = redis::Client::open(format!("redis://127.0.0.1:{port}"))
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        probes.push((Monitor::start(port), RedisRaw::new(conn)));
    }
    async fn sent(probes: &mut [(Monitor, RedisRaw)]) -> BTreeMap<String, u64> {
        let mut total = BTreeMap::new();
        for (monitor, raw) in probes.iter_mut() {
            for c in monitor.since_last_mark(raw).await {
                if !c.from_script() && !["replconf", "ping"].contains(&c.name.as_str()) {
                    *total.entry(c.name).or_default() += 1;
                }
            }
        }
        total
    }
    let expect = |pairs: &[(&str, u64)]| -> BTreeMap<String, u64> {
        pairs.iter().map(|(n, c)| ((*n).to_owned(), *c)).collect()
    };
    // Warm up: the first single-key read connects to its primary (and
    // lists the slots); steady state is what is counted.
    store
        .get_for_user(&u, &authsession_tests::fixtures::id("c-0"))
        .await
        .unwrap();
    sent(&mut probes).await;
    let last = active("c-4", "counted", ts(4, 0));
    store.get_for_user(&u, last.id()).await.unwrap();
    assert_eq!(
        sent(&mut probes).await,
        expect(&[("get", 1)]),
        "get_for_user"
    );
    // This store created it: the owner is known, the record is read at
    // once.
    store.get(last.id()).await.unwrap();
    assert_eq!(sent(&mut probes).await, expect(&[("get", 1)]), "get");
    store.count_active_by_user_id(&u).await.unwrap();
    assert_eq!(sent(&mut probes).await, expect(&[("zcard", 1)]), "count");
    store
        .create(&active("c-5", "counted", ts(5, 0)))
        .await
        .unwrap();
    assert_eq!(sent(&mut probes).await, expect(&[("evalsha", 2)]), "create");
    store.list_by_user_id(&u).await.unwrap();
    assert_eq!(
        sent(&mut probes).await,
        expect(&[("zrange", 1), ("mget", 1)]),
        "list"
    );
    store.revoke(&revoke_input("c-5", ts(9, 0))).await.unwrap();
    assert_eq!(
        sent(&mut probes).await,
        expect(&[("get", 2), ("evalsha", 1)]),
        "revoke"
    );
}

/// A user's slot moves to another primary while the store works: during
/// the move a record already moved is read through `ASK` (`ASKING` on
/// the importing node), one not moved yet on the old primary, and a
/// request over both halves is refused with a retryable error
/// (`TRYAGAIN`); once the slot is assigned, every operation follows
/// `MOVED` to the new primary without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_slot_moves_to_another_primary() {
    use authsession_tests::fixtures::id;
    let c = blocking(RedisCluster::start);
    let keys = tagged("cluster-migrate");
    let store = c.store(keys.clone()).await;
    let u = user("moving-user");
    let sessions: Vec<_> = (0..10)
        .map(|i| active(&format!("m-{i}"), "moving-user", ts(i, 0)))
        .collect();
    for s in &sessions {
        store.create(s).await.unwrap();
    }
    let index = keys.user_sessions_key(&u);
    let slot = blocking(|| c.slot_for_key(&index));
    let topology = blocking(|| c.topology());
    let source = topology.owner_of(slot).unwrap();
    let target = topology
        .primaries()
        .into_iter()
        .find(|&p| p != source)
        .unwrap();
    let node_id = |port: u16| topology.nodes[&port].id.clone();
    let admin = |port: u16, command: &redis::Cmd| {
        blocking(|| c.query::<redis::Value>(port, command))
            .unwrap_or_else(|e| panic!("{port}: {e}"))
    };
    let setslot = |how: &str, node: u16| {
        cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg(how)
            .arg(node_id(node))
            .to_owned()
    };
    let migrate = |moving: &[String]| {
        cmd("MIGRATE")
            .arg("127.0.0.1")
            .arg(target)
            .arg("")
            .arg(0)
            .arg(5000)
            .arg("KEYS")
            .arg(moving)
            .to_owned()
    };
    admin(target, &setslot("IMPORTING", source));
    admin(source, &setslot("MIGRATING", target));
    // Half the records move first.
    let moved: Vec<String> = sessions[..5]
        .iter()
        .map(|s| keys.record_key(&u, s.id()))
        .collect();
    admin(source, &migrate(&moved));

    // Mid-move: one key at a time works on either side.
    assert_eq!(
        store.get_for_user(&u, sessions[0].id()).await.unwrap(),
        sessions[0],
        "moved record, through ASK"
    );
    assert_eq!(
        store.get_for_user(&u, sessions[9].id()).await.unwrap(),
        sessions[9],
        "record still on the old primary"
    );
    assert_eq!(store.count_active_by_user_id(&u).await.unwrap(), 10);
    // Keys on both sides in one request: refused, retryable.
    let err = store.list_by_user_id(&u).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    let err = store
        .create(&active("m-new", "moving-user", ts(20, 0)))
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");

    // The rest of the slot moves; the slot is the target's.
    let rest: Vec<String> = match admin(
        source,
        cmd("CLUSTER").arg("GETKEYSINSLOT").arg(slot).arg(10_000),
    ) {
        redis::Value::Array(items) => items
            .into_iter()
            .map(|v| redis::from_redis_value(v).unwrap())
            .collect(),
        other => panic!("{other:?}"),
    };
    assert!(!rest.is_empty());
    admin(source, &migrate(&rest));
    for port in topology.primaries() {
        admin(port, &setslot("NODE", target));
    }
    blocking(|| c.wait_healthy());

    // Every operation follows MOVED to the new primary.
    assert_eq!(
        store.get_for_user(&u, sessions[9].id()).await.unwrap(),
        sessions[9]
    );
    let listed = store.list_by_user_id(&u).await.unwrap();
    assert_eq!(listed.len(), 10);
    let late = active("m-new", "moving-user", ts(20, 0));
    store.create(&late).await.unwrap();
    assert_eq!(store.get(late.id()).await.unwrap(), late);
    assert_eq!(
        store
            .revoke(&revoke_input("m-3", ts(30, 0)))
            .await
            .unwrap()
            .as_str(),
        "revoked"
    );
    assert_eq!(store.count_active_by_user_id(&u).await.unwrap(), 10);
    assert_eq!(blocking(|| c.primary_for_key(&index)), target);
    let raw = c.raw().await;
    assert!(raw.get(&keys.record_key(&u, &id("m-new"))).await.is_some());
}

/// ACL credentials from the config or the seed URLs; a wrong or missing
/// password is an authentication error at connect that never shows the
/// password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_from_the_config_or_the_urls() {
    let c = blocking(|| {
        RedisCluster::start_with(&[
            "--user",
            "default",
            "off",
            "--user",
            "app",
            "on",
            ">s3cret-pw",
            "~*",
            "&*",
            "+@all",
            "--masteruser",
            "app",
            "--masterauth",
            "s3cret-pw",
        ])
    });
    let keys = tagged("cluster-acl");
    let config = c.config(keys.clone());
    assert_eq!(config.settings.username.as_deref(), Some("app"));
    assert!(!format!("{config:?}").contains("s3cret-pw"));
    let store = ClusterSessionStore::connect(config.clone()).await.unwrap();
    let s = active("acl-1", "acl-user", ts(0, 0));
    store.create(&s).await.unwrap();

    let urls: Vec<String> = c
        .ports()
        .iter()
        .map(|p| format!("redis://app:s3cret-pw@127.0.0.1:{p}"))
        .collect();
    let from_urls = {
        let mut config = ClusterConfig::from_urls(&urls).unwrap();
        config.settings.key_space = keys.clone();
        config
    };
    let store = ClusterSessionStore::connect(from_urls).await.unwrap();
    assert_eq!(store.get(s.id()).await.unwrap(), s);

    for (what, username, password) in [
        ("wrong password", Some("app"), Some("not-the-password")),
        ("no credentials", None, None),
    ] {
        let bad = {
            let mut config = config.clone();
            config.settings.username = username.map(str::to_owned);
            config.settings.password = password.map(str::to_owned);
            config
        };
        let err = ClusterSessionStore::connect(bad).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AuthenticationFailed, "{what}: {err}");
        assert!(!err.is_retryable(), "{what}: {err}");
        let text = format!("{err} {err:?}");
        assert!(text.contains("authentication"), "{what}: {text}");
        assert!(!text.contains("not-the-password"), "{what}: {text}");
    }
}
