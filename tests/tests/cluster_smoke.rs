//! The cluster guard works, and how redis-rs 1.8's async cluster client
//! behaves for what a cluster store needs (SPEC §15): client options,
//! scripts, pipelines, commands on every primary, `WAIT`, and failover.
//!
//! Each test starts its own six-node cluster. Assertions are on what the
//! server and the client guarantee; times are printed (`--nocapture`),
//! never asserted.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use authsession_tests::cluster::{RedisCluster, Topology};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{
    MultipleNodeRoutingInfo, ResponsePolicy, Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr,
};
use redis::{cmd, ErrorKind, RedisError, Script, ServerErrorKind, Value};

/// Node arguments for an ACL cluster: the default user off, `app` with a
/// password, replication as `app`.
const ACL: &[&str] = &[
    "--user",
    "default",
    "off",
    "--user",
    "app",
    "on",
    ">s3cret",
    "~*",
    "&*",
    "+@all",
    "--masteruser",
    "app",
    "--masterauth",
    "s3cret",
];

/// The set-and-read script the tests invoke.
const SET_GET: &str = "redis.call('SET', KEYS[1], ARGV[1]); return redis.call('GET', KEYS[1])";

/// A client with the options a store would set (1 s per request and
/// overall, the library's default of 16 retries).
fn client(c: &RedisCluster) -> ClusterClient {
    ClusterClient::builder(c.seed_urls())
        .connection_timeout(Duration::from_secs(1))
        .response_timeout(Duration::from_secs(1))
        .build()
        .unwrap()
}

async fn connect(c: &RedisCluster) -> ClusterConnection {
    client(c).get_async_connection().await.unwrap()
}

/// One key per primary, ordered by primary port: `(key, primary)`.
fn key_per_primary(c: &RedisCluster, prefix: &str) -> Vec<(String, u16)> {
    let topo = c.topology();
    let mut found = BTreeMap::new();
    for i in 0.. {
        let key = format!("{prefix}{i}");
        let port = topo.owner_of(c.slot_for_key(&key)).unwrap();
        found.entry(port).or_insert(key);
        if found.len() == topo.primaries().len() {
            break;
        }
    }
    found.into_iter().map(|(port, key)| (key, port)).collect()
}

/// Two keys in different slots served by the same primary.
fn two_slots_one_node(c: &RedisCluster) -> (String, String) {
    let topo = c.topology();
    let first = "same0".to_owned();
    let (slot, port) = {
        let s = c.slot_for_key(&first);
        (s, topo.owner_of(s).unwrap())
    };
    for i in 1.. {
        let key = format!("same{i}");
        let s = c.slot_for_key(&key);
        if s != slot && topo.owner_of(s) == Some(port) {
            return (first, key);
        }
    }
    unreachable!()
}

/// `INFO commandstats` calls of `command` (`evalsha`, `script|load`) on
/// the node on `port`.
fn calls(c: &RedisCluster, port: u16, command: &str) -> u64 {
    let info: String = c
        .query(port, cmd("INFO").arg("commandstats"))
        .expect("INFO commandstats");
    let prefix = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |rest| {
            rest.split(',').next().unwrap().parse().expect("calls")
        })
}

fn script_exists(c: &RedisCluster, port: u16, sha: &str) -> bool {
    let v: Vec<bool> = c
        .query(port, cmd("SCRIPT").arg("EXISTS").arg(sha))
        .expect("SCRIPT EXISTS");
    v == [true]
}

/// Client connections on the node on `port`, other than the one asking
/// and replication links: `(name, count)`.
fn client_names(c: &RedisCluster, port: u16) -> BTreeMap<String, usize> {
    let list: String = c
        .query(port, cmd("CLIENT").arg("LIST"))
        .expect("CLIENT LIST");
    let mut names = BTreeMap::new();
    for line in list.lines() {
        let field = |name: &str| {
            line.split(' ')
                .find_map(|f| f.strip_prefix(name).and_then(|f| f.strip_prefix('=')))
                .unwrap_or_default()
        };
        if field("cmd") == "client|list" || field("flags").contains(['S', 'M']) {
            continue;
        }
        *names.entry(field("name").to_owned()).or_insert(0) += 1;
    }
    names
}

fn describe(e: &RedisError) -> String {
    format!(
        "kind={:?} code={:?} io={} timeout={} dropped={} refused={} retry={:?}",
        e.kind(),
        e.code(),
        e.is_io_error(),
        e.is_timeout(),
        e.is_connection_dropped(),
        e.is_connection_refusal(),
        e.retry_method(),
    )
}

#[test]
fn guard_starts_a_healthy_cluster_and_stops_it() {
    let c = RedisCluster::start();
    eprintln!("cluster start-up: {:?}", c.startup_time());
    let primaries = c.primaries();
    let replicas = c.replicas();
    assert_eq!(primaries.len(), 3);
    assert_eq!(replicas.len(), 3);
    assert_eq!(c.seed_urls().len(), 6);
    assert!(c.seed_urls()[0].starts_with("redis://127.0.0.1:"));
    for port in c.ports() {
        assert!(port < 32768 - 10000, "port {port} and its bus below 32768");
    }
    // Every node agrees: each primary has exactly one replica.
    for port in c.ports() {
        let t = c.topology_from(port).unwrap();
        assert!(t.covers_all_slots());
        let followed: BTreeSet<u16> = t
            .replicas()
            .iter()
            .map(|&r| t.primary_of(r).unwrap())
            .collect();
        assert_eq!(followed, primaries.iter().map(|p| p.port).collect());
    }
    // primary_for_key agrees with a MOVED answer from a wrong node.
    let key = "guard-key";
    let owner = c.primary_for_key(key);
    let other = primaries.iter().find(|p| p.port != owner).unwrap().port;
    let err = c.query::<Value>(other, cmd("GET").arg(key)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Server(ServerErrorKind::Moved));
    assert_eq!(err.redirect_node().unwrap().0, format!("127.0.0.1:{owner}"));

    let pids: Vec<u32> = primaries.iter().chain(&replicas).map(|n| n.pid).collect();
    let ports = c.ports();
    drop(c);
    for pid in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "pid {pid} reaped"
        );
    }
    for port in ports {
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    }
}

/// a. Builder options, ACL credentials, timeouts; clones share one
/// multiplexed connection per node.
#[tokio::test]
async fn a_client_options_credentials_and_shared_connections() {
    let c = RedisCluster::start_with(ACL);
    let client = ClusterClient::builder(c.seed_urls())
        .username("app")
        .password("s3cret")
        .connection_timeout(Duration::from_secs(1))
        .response_timeout(Duration::from_millis(300))
        .retries(3)
        .build()
        .unwrap();
    let mut conn = client.get_async_connection().await.unwrap();
    cmd("SET")
        .arg("a")
        .arg("1")
        .exec_async(&mut conn)
        .await
        .unwrap();
    let v: String = cmd("GET").arg("a").query_async(&mut conn).await.unwrap();
    assert_eq!(v, "1");

    // No credentials / a wrong password: connecting fails.
    let anon = ClusterClient::builder(c.seed_urls()).build().unwrap();
    let e = anon
        .get_async_connection()
        .await
        .err()
        .expect("no credentials refused");
    eprintln!("no credentials: {} | {e}", describe(&e));
    assert_eq!(e.code(), Some("NOAUTH"), "{e}");
    let wrong = ClusterClient::builder(c.seed_urls())
        .username("app")
        .password("nope")
        .build()
        .unwrap();
    let e = wrong
        .get_async_connection()
        .await
        .err()
        .expect("wrong password refused");
    eprintln!("wrong password: {} | {e}", describe(&e));
    assert_eq!(e.kind(), ErrorKind::Io, "{e}");
    assert!(e.to_string().contains("AuthenticationFailed"), "{e}");

    // CLIENT SETNAME goes to every node (AllNodes): one connection each,
    // replicas included.
    cmd("CLIENT")
        .arg("SETNAME")
        .arg("smoke-a")
        .exec_async(&mut conn)
        .await
        .unwrap();
    let one_each: BTreeMap<String, usize> = [("smoke-a".to_owned(), 1)].into();
    for port in c.ports() {
        assert_eq!(client_names(&c, port), one_each, "node {port}");
    }
    // Clones used concurrently open no further connections.
    let keys = key_per_primary(&c, "shared");
    let mut tasks = Vec::new();
    for i in 0..8 {
        let mut clone = conn.clone();
        let keys = keys.clone();
        tasks.push(tokio::spawn(async move {
            for j in 0..50 {
                let (k, _) = &keys[(i + j) % keys.len()];
                let _: i64 = cmd("INCR").arg(k).query_async(&mut clone).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let total: i64 = {
        let mut sum = 0;
        for (k, _) in &keys {
            let n: i64 = cmd("GET").arg(k).query_async(&mut conn).await.unwrap();
            sum += n;
        }
        sum
    };
    assert_eq!(total, 400);
    for port in c.ports() {
        assert_eq!(client_names(&c, port), one_each, "node {port} after clones");
    }
    // A second connection from the same client is a second set.
    let mut second = client.get_async_connection().await.unwrap();
    cmd("CLIENT")
        .arg("SETNAME")
        .arg("smoke-b")
        .exec_async(&mut second)
        .await
        .unwrap();
    let two_each: BTreeMap<String, usize> =
        [("smoke-a".to_owned(), 1), ("smoke-b".to_owned(), 1)].into();
    for port in c.ports() {
        assert_eq!(client_names(&c, port), two_each, "node {port}");
    }

    // The response timeout bounds a request: a BLPOP that outlives it.
    let (k, _) = &keys[0];
    let started = Instant::now();
    let e = cmd("BLPOP")
        .arg(format!("{{{k}}}empty"))
        .arg(2)
        .query_async::<Value>(&mut conn)
        .await
        .unwrap_err();
    eprintln!(
        "response timeout after {:?}: {} | {e}",
        started.elapsed(),
        describe(&e)
    );
    assert!(e.is_timeout(), "{}", describe(&e));
    // The BLPOP still occupies that node's multiplexed connection: what
    // comes next on it waits behind it (printed, not asserted).
    let started = Instant::now();
    let next = cmd("GET").arg(k).query_async::<Value>(&mut conn).await;
    eprintln!(
        "next command on that node: {:?} after {:?}",
        next.map_err(|e| describe(&e)),
        started.elapsed()
    );
    let started = Instant::now();
    loop {
        if cmd("GET")
            .arg(k)
            .query_async::<Value>(&mut conn)
            .await
            .is_ok()
        {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30));
    }
    eprintln!("that node answers again after {:?}", started.elapsed());
}

/// b. `Script::invoke_async`: EVALSHA on the key's primary; NOSCRIPT →
/// SCRIPT LOAD on *every* node (AllNodes, replicas too) → EVALSHA again.
#[tokio::test]
async fn b_scripts_load_on_every_node() {
    let c = RedisCluster::start();
    let mut conn = connect(&c).await;
    let script = Script::new(SET_GET);
    let sha = script.get_hash().to_owned();
    for port in c.ports() {
        assert!(!script_exists(&c, port, &sha));
    }
    let keys = key_per_primary(&c, "script");
    for (i, (key, _)) in keys.iter().enumerate() {
        let v: String = script
            .key(key)
            .arg(format!("v{i}"))
            .invoke_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(v, format!("v{i}"));
    }
    // The first invocation's NOSCRIPT loaded it everywhere, once.
    for port in c.ports() {
        assert!(script_exists(&c, port, &sha), "node {port}");
        assert_eq!(calls(&c, port, "script|load"), 1, "node {port}");
    }
    for (key, port) in &keys {
        eprintln!(
            "{key} on {port}: evalsha calls {}",
            calls(&c, *port, "evalsha")
        );
    }

    // SCRIPT FLUSH through the cluster connection reaches every node too.
    cmd("SCRIPT")
        .arg("FLUSH")
        .exec_async(&mut conn)
        .await
        .unwrap();
    for port in c.ports() {
        assert!(!script_exists(&c, port, &sha), "node {port} flushed");
    }
    for (key, _) in &keys {
        let v: String = script
            .key(key)
            .arg("again")
            .invoke_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(v, "again");
    }
    for port in c.ports() {
        assert!(script_exists(&c, port, &sha));
        assert_eq!(calls(&c, port, "script|load"), 2, "node {port}");
    }
    // SCRIPT EXISTS through the connection: every primary, ANDed.
    let exists: Vec<bool> = cmd("SCRIPT")
        .arg("EXISTS")
        .arg(&sha)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(exists, [true]);

    // A node that never saw it (a script loaded by hand on one primary
    // only): the invocation on another primary still works.
    let other = Script::new("return redis.call('INCR', KEYS[1])");
    let (_, p0) = &keys[0];
    let counter = format!("{}:n", keys[1].0);
    let _: String = c
        .query(
            *p0,
            cmd("SCRIPT")
                .arg("LOAD")
                .arg("return redis.call('INCR', KEYS[1])"),
        )
        .unwrap();
    let n: i64 = other.key(&counter).invoke_async(&mut conn).await.unwrap();
    assert_eq!(n, 1);
    let n: i64 = other.key(&counter).invoke_async(&mut conn).await.unwrap();
    assert_eq!(n, 2);

    // Keys of two slots in one script: the server refuses (CROSSSLOT).
    let e = script
        .key(&keys[0].0)
        .key(&keys[1].0)
        .arg("x")
        .invoke_async::<Value>(&mut conn)
        .await
        .unwrap_err();
    assert_eq!(
        e.kind(),
        ErrorKind::Server(ServerErrorKind::CrossSlot),
        "{e}"
    );
}

/// The script pattern a store should use: EVALSHA routed by its first key
/// (the slot's primary); on NOSCRIPT, SCRIPT LOAD on *that* primary only,
/// then EVALSHA again. Unlike `Script::invoke_async` it needs no other node.
async fn invoke_on_primary(
    conn: &mut ClusterConnection,
    code: &str,
    keys: &[&str],
    args: &[&str],
) -> redis::RedisResult<Value> {
    let script = Script::new(code);
    let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::with_key(
        keys[0],
        SlotAddr::Master,
    )));
    let mut evalsha = cmd("EVALSHA");
    evalsha
        .arg(script.get_hash())
        .arg(keys.len())
        .arg(keys)
        .arg(args);
    match conn
        .route_command(evalsha.clone(), route.clone())
        .await
        .and_then(Value::extract_error)
    {
        Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
            conn.route_command(cmd("SCRIPT").arg("LOAD").arg(code).clone(), route.clone())
                .await
                .and_then(Value::extract_error)?;
            conn.route_command(evalsha, route)
                .await
                .and_then(Value::extract_error)
        }
        other => other,
    }
}

/// b2. `Script::invoke_async`'s fallback needs an answer from every node
/// the client is connected to: a stopped (SIGSTOP) replica of another
/// shard makes it time out, while loading on the key's primary only does
/// not care. A dead (killed) replica is skipped by the fan-out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b2_script_fallback_with_a_stopped_or_dead_replica() {
    let mut c = RedisCluster::start();
    let mut conn = ClusterClient::builder(c.seed_urls())
        .connection_timeout(Duration::from_secs(1))
        .response_timeout(Duration::from_millis(300))
        .build()
        .unwrap()
        .get_async_connection()
        .await
        .unwrap();
    let keys = key_per_primary(&c, "replica-down");
    let (key, primary) = keys[0].clone();
    let topo = c.topology();
    let replica = topo
        .replicas()
        .into_iter()
        .find(|&r| topo.primary_of(r) != Some(primary))
        .unwrap();

    // Stopped: connected but silent (kept shorter than the node timeout).
    c.signal(replica, "STOP");
    let fresh = Script::new("return redis.call('INCRBY', KEYS[1], 2)");
    let stalled = fresh.key(&key).invoke_async::<i64>(&mut conn).await;
    let code = "return redis.call('INCR', KEYS[1])";
    let routed = invoke_on_primary(&mut conn, code, &[key.as_str()], &[]).await;
    c.signal(replica, "CONT");
    let e = stalled.unwrap_err();
    eprintln!(
        "invoke_async with a stopped replica: {} | {e}",
        describe(&e)
    );
    assert!(e.is_timeout(), "{}", describe(&e));
    assert_eq!(routed.unwrap(), Value::Int(1));
    assert!(script_exists(&c, primary, Script::new(code).get_hash()));
    assert!(!script_exists(&c, replica, Script::new(code).get_hash()));

    // Killed: the fan-out skips a node whose connection is gone.
    tokio::task::block_in_place(|| c.wait_healthy());
    c.kill_node(replica);
    let killed = Instant::now();
    let mut failures = 0;
    loop {
        let r = Script::new("return redis.call('INCRBY', KEYS[1], 3)")
            .key(&key)
            .invoke_async::<i64>(&mut conn)
            .await;
        match r {
            Ok(_) => break,
            Err(e) => {
                failures += 1;
                assert!(retryable(&describe(&e)), "{}", describe(&e));
                assert!(killed.elapsed() < Duration::from_secs(60), "no recovery");
            }
        }
    }
    eprintln!(
        "invoke_async with a dead replica: ok at +{:?} after {failures} failures",
        killed.elapsed()
    );
}

/// c. Pipelines go to one node and must stay in one slot; replies keep
/// their order. MGET across slots is split per node and reassembled.
#[tokio::test]
async fn c_pipelines_and_mget() {
    let c = RedisCluster::start();
    let mut conn = connect(&c).await;
    let keys = key_per_primary(&c, "pipe");

    // Keys of different primaries: refused by the client, nothing sent.
    let e = redis::pipe()
        .set(&keys[0].0, "x")
        .set(&keys[1].0, "y")
        .exec_async(&mut conn)
        .await
        .unwrap_err();
    eprintln!("cross-node pipeline: {} | {e}", describe(&e));
    assert_eq!(e.kind(), ErrorKind::Server(ServerErrorKind::CrossSlot));
    for (key, port) in &keys[..2] {
        let v: Option<String> = c.query(*port, cmd("GET").arg(key)).unwrap();
        assert_eq!(v, None, "{key} not written");
    }
    // Two slots on the same node: refused as well (checked per slot).
    let (s1, s2) = two_slots_one_node(&c);
    let e = redis::pipe()
        .set(&s1, "x")
        .set(&s2, "y")
        .exec_async(&mut conn)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Server(ServerErrorKind::CrossSlot));

    // One hash tag: one node, replies in order; keyless commands ride along.
    let (a, b) = ("{tag}a", "{tag}b");
    let (pong, n, got_a, got_b): (String, i64, String, String) = redis::pipe()
        .cmd("PING")
        .set(a, 1)
        .ignore()
        .incr(a, 1)
        .get(a)
        .set(b, "x")
        .ignore()
        .get(b)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        (pong.as_str(), n, got_a.as_str(), got_b.as_str()),
        ("PONG", 2, "2", "x")
    );
    // MULTI/EXEC in one slot.
    let (x, y): (i64, i64) = redis::pipe()
        .atomic()
        .incr(a, 10)
        .incr(b.replace('b', "c"), 1)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!((x, y), (12, 1));
    // MGET in one tag, and across all primaries (split, order kept).
    let v: Vec<Option<String>> = cmd("MGET")
        .arg(a)
        .arg(b)
        .arg("{tag}none")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(v, [Some("12".to_owned()), Some("x".to_owned()), None]);
    for (i, (key, _)) in keys.iter().enumerate() {
        cmd("SET")
            .arg(key)
            .arg(i)
            .exec_async(&mut conn)
            .await
            .unwrap();
    }
    let names: Vec<&str> = keys.iter().rev().map(|(k, _)| k.as_str()).collect();
    let v: Vec<i64> = cmd("MGET")
        .arg(&names)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(v, [2, 1, 0]);
    // DEL across slots: split too, counts summed.
    let n: i64 = cmd("DEL").arg(&names).query_async(&mut conn).await.unwrap();
    assert_eq!(n, 3);
}

/// The primaries from `CLUSTER SHARDS` (RESP2 maps are flat arrays).
fn shards_primaries(v: &Value) -> BTreeSet<(String, u16)> {
    fn field<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
        match v {
            Value::Array(items) => items.chunks(2).find_map(|kv| match kv {
                [Value::BulkString(k), v] if k == name.as_bytes() => Some(v),
                _ => None,
            }),
            Value::Map(items) => items.iter().find_map(|(k, v)| match k {
                Value::BulkString(k) if k == name.as_bytes() => Some(v),
                _ => None,
            }),
            _ => None,
        }
    }
    fn text(v: &Value) -> String {
        match v {
            Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
            Value::SimpleString(s) => s.clone(),
            other => panic!("not text: {other:?}"),
        }
    }
    let Value::Array(shards) = v else {
        panic!("CLUSTER SHARDS: {v:?}")
    };
    let mut out = BTreeSet::new();
    for shard in shards {
        let Some(Value::Array(nodes)) = field(shard, "nodes") else {
            panic!("shard without nodes: {shard:?}")
        };
        for node in nodes {
            let role = text(field(node, "role").unwrap());
            let health = text(field(node, "health").unwrap());
            if role == "master" && health == "online" {
                let ip = text(field(node, "ip").unwrap());
                let Some(Value::Int(port)) = field(node, "port") else {
                    panic!("no port: {node:?}")
                };
                out.insert((ip, u16::try_from(*port).unwrap()));
            }
        }
    }
    out
}

/// d. Commands on every primary: list them, SCAN each by address, DBSIZE.
#[tokio::test]
async fn d_every_primary() {
    let c = RedisCluster::start();
    let mut conn = connect(&c).await;
    let expected: BTreeSet<(String, u16)> = c
        .primaries()
        .iter()
        .map(|p| ("127.0.0.1".to_owned(), p.port))
        .collect();

    // List the primaries through the connection.
    let shards = conn
        .route_command(
            cmd("CLUSTER").arg("SHARDS").clone(),
            RoutingInfo::SingleNode(SingleNodeRoutingInfo::RandomPrimary),
        )
        .await
        .unwrap();
    assert_eq!(shards_primaries(&shards), expected);
    let nodes = conn
        .route_command(
            cmd("CLUSTER").arg("NODES").clone(),
            RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
        )
        .await
        .unwrap();
    let Value::BulkString(text) = nodes else {
        panic!("CLUSTER NODES: {nodes:?}")
    };
    let topo = Topology::parse(&String::from_utf8(text).unwrap()).unwrap();
    assert_eq!(
        topo.primaries().into_iter().collect::<BTreeSet<_>>(),
        expected.iter().map(|(_, p)| *p).collect()
    );

    // 300 keys everywhere; SCAN each primary by address with its cursor.
    let written: BTreeSet<String> = (0..300).map(|i| format!("scan:{i}")).collect();
    for k in &written {
        cmd("SET")
            .arg(k)
            .arg(1)
            .exec_async(&mut conn)
            .await
            .unwrap();
    }
    let mut seen = BTreeSet::new();
    for (host, port) in &expected {
        let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
            host: host.clone(),
            port: *port,
        });
        let mut cursor = 0u64;
        let mut on_node = 0usize;
        loop {
            let v = conn
                .route_command(
                    cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg("scan:*")
                        .arg("COUNT")
                        .arg(50)
                        .clone(),
                    route.clone(),
                )
                .await
                .unwrap();
            let (next, batch): (u64, Vec<String>) = redis::from_redis_value(v).unwrap();
            for k in batch {
                on_node += 1;
                assert_eq!(c.primary_for_key(&k), *port, "{k} scanned on its primary");
                seen.insert(k);
            }
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        let dbsize: i64 = redis::from_redis_value(
            conn.route_command(cmd("DBSIZE").clone(), route.clone())
                .await
                .unwrap(),
        )
        .unwrap();
        assert_eq!(usize::try_from(dbsize).unwrap(), on_node, "node {port}");
        assert!(on_node > 0);
    }
    assert_eq!(seen, written);

    // DBSIZE's default routing: every primary, summed.
    let n: i64 = cmd("DBSIZE").query_async(&mut conn).await.unwrap();
    assert_eq!(n, 300);
    // AllMasters with no response policy: one reply per primary, keyed by
    // address.
    let v = conn
        .route_command(
            cmd("DBSIZE").clone(),
            RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None)),
        )
        .await
        .unwrap();
    let Value::Map(per_node) = v else {
        panic!("per-node replies: {v:?}")
    };
    let addrs: BTreeSet<String> = per_node
        .iter()
        .map(|(k, _)| redis::from_redis_value::<String>(k.clone()).unwrap())
        .collect();
    assert_eq!(
        addrs,
        expected.iter().map(|(h, p)| format!("{h}:{p}")).collect()
    );
    // An explicit aggregate policy works as well.
    let v = conn
        .route_command(
            cmd("DBSIZE").clone(),
            RoutingInfo::MultiNode((
                MultipleNodeRoutingInfo::AllMasters,
                Some(ResponsePolicy::Aggregate(
                    redis::cluster_routing::AggregateOp::Sum,
                )),
            )),
        )
        .await
        .unwrap();
    assert_eq!(v, Value::Int(300));
    // An address the connection does not know: ClusterConnectionNotFound.
    let e = conn
        .route_command(
            cmd("PING").clone(),
            RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                host: "localhost".to_owned(),
                port: expected.first().unwrap().1,
            }),
        )
        .await
        .unwrap_err();
    eprintln!("unknown address: {} | {e}", describe(&e));
    assert_eq!(e.kind(), ErrorKind::ClusterConnectionNotFound);
}

/// e. `WAIT` on the write's primary (same multiplexed connection).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e_wait_on_the_writes_primary() {
    let c = RedisCluster::start();
    let mut conn = connect(&c).await;
    let key = "wait-key";
    let slot = c.slot_for_key(key);
    let to_primary = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::new(
        slot,
        SlotAddr::Master,
    )));
    cmd("SET")
        .arg(key)
        .arg(1)
        .exec_async(&mut conn)
        .await
        .unwrap();
    let acked = conn
        .route_command(cmd("WAIT").arg(1).arg(2000).clone(), to_primary.clone())
        .await
        .unwrap();
    assert_eq!(acked, Value::Int(1));
    // Write and WAIT in one pipeline (one round trip): WAIT is keyless, so
    // the pipeline goes to the key's primary.
    let (_, acked): (Value, i64) = redis::pipe()
        .set(key, 2)
        .cmd("WAIT")
        .arg(1)
        .arg(2000)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(acked, 1);
    // EVALSHA + WAIT in one pipeline: NOSCRIPT comes back as the
    // pipeline's error (no fallback), then load and go again.
    let script = Script::new(SET_GET);
    let pipe = {
        let mut p = redis::pipe();
        p.cmd("EVALSHA")
            .arg(script.get_hash())
            .arg(1)
            .arg(key)
            .arg("3")
            .cmd("WAIT")
            .arg(1)
            .arg(2000);
        p
    };
    let e = pipe
        .query_async::<(String, i64)>(&mut conn)
        .await
        .unwrap_err();
    assert_eq!(
        e.kind(),
        ErrorKind::Server(ServerErrorKind::NoScript),
        "{e}"
    );
    script.prepare_invoke().load_async(&mut conn).await.unwrap();
    let (v, acked): (String, i64) = pipe.query_async(&mut conn).await.unwrap();
    assert_eq!((v.as_str(), acked), ("3", 1));
    // WAIT's default routing is every primary, the minimum reply.
    let n: i64 = cmd("WAIT")
        .arg(1)
        .arg(2000)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 1);

    // A stopped replica acknowledges nothing: WAIT times out with 0.
    let primary = c.primary_for_key(key);
    let topo = c.topology();
    let replica = topo
        .replicas()
        .into_iter()
        .find(|&r| topo.primary_of(r) == Some(primary))
        .unwrap();
    c.signal(replica, "STOP");
    cmd("SET")
        .arg(key)
        .arg(4)
        .exec_async(&mut conn)
        .await
        .unwrap();
    let acked = conn
        .route_command(cmd("WAIT").arg(1).arg(100).clone(), to_primary.clone())
        .await;
    c.signal(replica, "CONT");
    assert_eq!(acked.unwrap(), Value::Int(0));
    // It catches up once it runs again.
    let acked = conn
        .route_command(cmd("WAIT").arg(1).arg(5000).clone(), to_primary)
        .await
        .unwrap();
    assert_eq!(acked, Value::Int(1));
    tokio::task::block_in_place(|| c.wait_healthy());
}

/// What a writer saw: every outcome with its time.
#[derive(Default)]
struct Record {
    events: Vec<(Instant, &'static str, Result<Duration, String>)>,
}

struct Writer {
    stop: Arc<AtomicBool>,
    record: Arc<Mutex<Record>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Three writers on clones of `conn`: SET and the script on a key of the
/// primary that will die, SET on a key of a healthy one.
fn start_writers(conn: &ClusterConnection, doomed_key: &str, healthy_key: &str) -> Writer {
    let stop = Arc::new(AtomicBool::new(false));
    let record = Arc::new(Mutex::new(Record::default()));
    let mut tasks = Vec::new();
    for (op, key) in [
        ("set", doomed_key.to_owned()),
        ("script", doomed_key.to_owned()),
        ("healthy", healthy_key.to_owned()),
    ] {
        let mut conn = conn.clone();
        let stop = stop.clone();
        let record = record.clone();
        tasks.push(tokio::spawn(async move {
            let script = Script::new(SET_GET);
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let started = Instant::now();
                let result = if op == "script" {
                    script
                        .key(format!("{{{key}}}:s"))
                        .arg(i)
                        .invoke_async::<String>(&mut conn)
                        .await
                        .map(drop)
                } else {
                    cmd("SET").arg(&key).arg(i).exec_async(&mut conn).await
                };
                let outcome = result.map(|()| started.elapsed()).map_err(|e| {
                    format!("{} | {}", describe(&e), e.to_string().replace('\n', " "))
                });
                record.lock().unwrap().events.push((started, op, outcome));
                // Pacing, not synchronisation: ~500 ops/s per writer.
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }));
    }
    Writer {
        stop,
        record,
        tasks,
    }
}

/// Whether a failover-time error is of the retryable sort.
fn retryable(desc: &str) -> bool {
    [
        "kind=Io",
        "kind=ClusterConnectionNotFound",
        "kind=Server(ClusterDown)",
        "kind=Server(TryAgain)",
        "kind=Server(MasterDown)",
        "kind=Server(Moved)",
        "kind=Server(Ask)",
        "kind=Server(ReadOnly)",
        "kind=Server(BusyLoading)",
    ]
    .iter()
    .any(|k| desc.starts_with(k))
}

/// Kills a primary under load, waits for the failover and for every
/// writer to succeed again, prints the report and checks every error is
/// retryable; returns the errors (descriptions) per writer.
async fn failover_round(
    c: &mut RedisCluster,
    conn: &ClusterConnection,
    label: &str,
) -> BTreeMap<&'static str, Vec<String>> {
    let keys = key_per_primary(c, &format!("fo-{label}-"));
    let (doomed_key, doomed) = keys[0].clone();
    let (healthy_key, _) = keys[1].clone();
    let writer = start_writers(conn, &doomed_key, &healthy_key);
    // Load runs before the kill: wait until each writer succeeded.
    wait_for(&writer, "warm-up", |r| {
        ["set", "script", "healthy"]
            .iter()
            .all(|op| r.events.iter().any(|(_, o, res)| o == op && res.is_ok()))
    })
    .await;
    let killed_at = Instant::now();
    c.kill_primary(doomed);
    let failover = tokio::task::block_in_place(|| c.wait_failover_of(doomed));
    // Recovered: every writer succeeds 20 times in a row after the
    // failover finished.
    let done_at = Instant::now();
    wait_for(&writer, "recovery", |r| {
        ["set", "script", "healthy"].iter().all(|op| {
            r.events
                .iter()
                .filter(|(t, o, _)| o == op && *t > done_at)
                .filter(|(_, _, res)| res.is_ok())
                .count()
                >= 20
        })
    })
    .await;
    writer.stop.store(true, Ordering::Relaxed);
    for t in writer.tasks {
        t.await.unwrap();
    }
    let record = writer.record.lock().unwrap();
    let mut report = BTreeMap::new();

    eprintln!(
        "[{label}] killed primary {doomed}; replica {} took over after {:?}",
        failover.new_primary, failover.elapsed
    );
    for op in ["set", "script", "healthy"] {
        let events: Vec<_> = record
            .events
            .iter()
            .filter(|(t, o, _)| *o == op && *t >= killed_at)
            .collect();
        let errors: Vec<_> = events.iter().filter(|(_, _, r)| r.is_err()).collect();
        let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
        for (_, _, r) in &errors {
            let d = r.as_ref().unwrap_err();
            *by_kind
                .entry(d.split(" | ").next().unwrap().to_owned())
                .or_default() += 1;
        }
        let window = match (errors.first(), errors.last()) {
            (Some((first, ..)), Some((last, ..))) => format!(
                "errors from +{:?} to +{:?}",
                first.duration_since(killed_at),
                last.duration_since(killed_at)
            ),
            _ => "no errors".to_owned(),
        };
        let slowest = events
            .iter()
            .filter_map(|(_, _, r)| r.as_ref().ok())
            .max()
            .copied()
            .unwrap_or_default();
        let first_ok_after_error = errors.last().and_then(|(last, ..)| {
            events
                .iter()
                .find(|(t, _, r)| t > last && r.is_ok())
                .map(|(t, ..)| t.duration_since(killed_at))
        });
        eprintln!(
            "[{label}] {op}: {} ops since kill, {} errors ({window}), first ok after them at +{:?}, slowest ok {:?}",
            events.len(),
            errors.len(),
            first_ok_after_error,
            slowest
        );
        for (kind, n) in &by_kind {
            eprintln!("[{label}]   {n:>5} × {kind}");
        }
        if let Some((_, _, Err(e))) = errors.first() {
            eprintln!("[{label}]   first: {e}");
        }
        for (_, _, r) in &errors {
            let d = r.as_ref().unwrap_err();
            assert!(retryable(d), "[{label}] {op}: non-retryable error: {d}");
        }
        report.insert(
            op,
            errors
                .iter()
                .map(|(_, _, r)| r.clone().unwrap_err())
                .collect(),
        );
    }
    report
}

async fn wait_for(writer: &Writer, what: &str, cond: impl Fn(&Record) -> bool) {
    let give_up = Instant::now() + Duration::from_secs(60);
    while !cond(&writer.record.lock().unwrap()) {
        assert!(Instant::now() < give_up, "{what}: not reached in 60 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// f. SIGKILL of a primary under load through one connection: errors only
/// of the retryable sort, then success again without a new client. One
/// round per client configuration (the killed node rejoins in between).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f_failover_under_load() {
    let mut c = RedisCluster::start();
    let builder =
        || ClusterClient::builder(c.seed_urls()).connection_timeout(Duration::from_secs(1));
    let rounds = [
        // As a store would set it: 1 s per request and overall.
        (
            "timeout-1s",
            builder().response_timeout(Duration::from_secs(1)),
        ),
        // The library's retries alone, unbounded.
        ("no-timeout", builder()),
        // No retries: the raw errors.
        (
            "no-retries",
            builder()
                .response_timeout(Duration::from_secs(1))
                .retries(0),
        ),
        // Short retry sleeps (the default sleeps >= 1.28 s between retries).
        (
            "fast-retries",
            builder()
                .response_timeout(Duration::from_secs(1))
                .min_retry_wait(10)
                .max_retry_wait(100),
        ),
    ];
    let mut first_conn = None;
    for (label, builder) in rounds {
        let conn = builder
            .build()
            .unwrap()
            .get_async_connection()
            .await
            .unwrap();
        let _ = failover_round(&mut c, &conn, label).await;
        first_conn.get_or_insert(conn);
        // The killed node comes back as a replica; the cluster heals.
        let killed: Vec<u16> = c
            .ports()
            .into_iter()
            .filter(|p| !c.live_ports().contains(p))
            .collect();
        let healing = Instant::now();
        for port in killed {
            c.restart_node(port);
        }
        tokio::task::block_in_place(|| c.wait_healthy());
        eprintln!("[{label}] rejoin and resync: {:?}", healing.elapsed());
    }
    // The first connection still works after all the failovers.
    let mut conn = first_conn.unwrap();
    cmd("SET")
        .arg("after")
        .arg(1)
        .exec_async(&mut conn)
        .await
        .unwrap();
}

/// g. With `cluster-require-full-coverage no` the healthy shards never
/// answer CLUSTERDOWN while one shard fails over (with the default `yes`
/// every node refuses every key from the FAIL flag until the promotion).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g_partial_coverage_keeps_healthy_shards_serving() {
    let mut c = RedisCluster::start_with(&["--cluster-require-full-coverage", "no"]);
    let conn = ClusterClient::builder(c.seed_urls())
        .connection_timeout(Duration::from_secs(1))
        .response_timeout(Duration::from_secs(1))
        .retries(0)
        .build()
        .unwrap()
        .get_async_connection()
        .await
        .unwrap();
    let report = failover_round(&mut c, &conn, "partial-coverage").await;
    let clusterdown: Vec<_> = report["healthy"]
        .iter()
        .filter(|d| d.contains("CLUSTERDOWN"))
        .collect();
    assert!(clusterdown.is_empty(), "{clusterdown:?}");
}
