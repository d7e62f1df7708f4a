//! The part-two surface of the `authsession` binary against real, private
//! `redis-server`s: `-v` spans, pages, `get --user`, the session limit and
//! retention, `revoke-all --count`, the tagged layout, `--wait-replicas`,
//! `migrate` of Go-written data, and the bench's `churn` and Go-adapter
//! reference workloads.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

mod cli_support;

use cli_support::{client, run, run_env, RedisServer, Run};
use serde_json::{json, Value};

const KEY_A: &str = "6CNOOq9vU5hNuRjuSnPSuoYdvt6iZpSYfEDOihlBz8I=";
const KEY_B: &str = "fCu1zv5wWmj76g0I5Y4+x9mvBXrTxFmWcl8g7a+3gSw=";

/// Runs the binary against `server` under key base `prefix`.
fn on(server: &RedisServer, prefix: &str, args: &[&str]) -> Run {
    let url = server.url();
    let mut all = vec!["--redis-url", url.as_str(), "--prefix", prefix];
    all.extend_from_slice(args);
    run(&all)
}

fn create_args<'a>(id: &'a str, user: &'a str, at: &'a str) -> Vec<&'a str> {
    vec![
        "create",
        "--id",
        id,
        "--user",
        user,
        "--public-key",
        KEY_A,
        "--created-at",
        at,
    ]
}

fn create(server: &RedisServer, prefix: &str, id: &str, user: &str, at: &str) -> Value {
    on(server, prefix, &create_args(id, user, at)).json()
}

fn revoke_args<'a>(id: &'a str, at: &'a str) -> Vec<&'a str> {
    vec![
        "revoke",
        id,
        "--reason",
        "user_logout",
        "--actor-type",
        "user",
        "--at",
        at,
    ]
}

fn keys(conn: &mut redis::Connection, pattern: &str) -> Vec<String> {
    let mut keys: Vec<String> = redis::cmd("KEYS").arg(pattern).query(conn).unwrap();
    keys.sort();
    keys
}

fn ids(sessions: &Value) -> Vec<&str> {
    sessions
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect()
}

#[test]
fn verbose_prints_each_operations_span_with_db_fields_and_no_key_material() {
    let server = RedisServer::start();
    let p = "v:";
    let url = server.url();
    let port = format!("server.port={}", server.port());
    let created = on(
        &server,
        p,
        &[
            "-v",
            "create",
            "--id",
            "dev-1",
            "--user",
            "user-1",
            "--public-key",
            KEY_A,
        ],
    );
    assert_eq!(created.code, Some(0), "{created:?}");
    let get = on(&server, p, &["-v", "get", "dev-1"]);
    assert_eq!(get.code, Some(0), "{get:?}");
    // RUST_LOG selects the same spans without -v.
    let via_env = run_env(
        &["--redis-url", &url, "--prefix", p, "get", "dev-1"],
        &[("RUST_LOG", "authsession_driver=info")],
    );
    for out in [&get, &via_env] {
        let span = out
            .stderr
            .lines()
            .find(|l| l.contains("authsession.get{"))
            .unwrap_or_else(|| panic!("no get span: {out:?}"));
        for field in [
            r#"db.system.name="redis""#,
            r#"db.operation.name="get""#,
            r#"db.namespace="0""#,
            r#"server.address="127.0.0.1""#,
            port.as_str(),
            "attempts=1",
            "round_trips=1",
            r#"outcome="ok""#,
        ] {
            assert!(span.contains(field), "{field} missing: {span}");
        }
    }
    assert!(
        created.stderr.contains("authsession.create{"),
        "{created:?}"
    );
    // The public key and the record bytes never reach stderr (stdout is
    // the command's answer and does carry the key).
    let mut conn = client(&server);
    let record: String = redis::cmd("GET")
        .arg("v:session:ZGV2LTE")
        .query(&mut conn)
        .unwrap();
    for out in [&created, &get, &via_env] {
        assert!(out.stdout.contains(KEY_A), "{out:?}");
        for secret in [
            KEY_A,
            record.as_str(),
            "client_public_key",
            "device_session_id",
        ] {
            assert!(!out.stderr.contains(secret), "{secret} on stderr: {out:?}");
        }
    }

    // -vv adds the debug events: a dangling index member makes list confirm
    // its view before it reports the corruption.
    let _: i64 = redis::cmd("ZADD")
        .arg("v:user_sessions:dXNlci0x")
        .arg(1)
        .arg("ghost")
        .query(&mut conn)
        .unwrap();
    let quiet = on(&server, p, &["-v", "list", "user-1"]);
    quiet.assert_error("corrupt");
    assert!(!quiet.stderr.contains("authsession.confirm"), "{quiet:?}");
    assert!(
        quiet.stderr.contains(r#"error.type="corrupt""#),
        "{quiet:?}"
    );
    let loud = on(&server, p, &["-vv", "list", "user-1"]);
    loud.assert_error("corrupt");
    assert!(loud.stderr.contains("authsession.confirm"), "{loud:?}");
    assert!(!loud.stderr.contains(KEY_A), "{loud:?}");
}

/// Follows `next_cursor` from the first page of `args`; returns every
/// session in page order and the cursors seen.
fn walk(server: &RedisServer, prefix: &str, args: &[&str]) -> (Value, Vec<String>) {
    let mut walked = Vec::new();
    let mut cursors: Vec<String> = Vec::new();
    loop {
        let mut page_args = args.to_vec();
        if let Some(c) = cursors.last() {
            page_args.extend(["--cursor", c.as_str()]);
        }
        let page = on(server, prefix, &page_args).json();
        let sessions = page["sessions"].as_array().unwrap();
        let limit: usize = args[args.iter().position(|a| *a == "--limit").unwrap() + 1]
            .parse()
            .unwrap();
        assert!(sessions.len() <= limit, "{page}");
        walked.extend(sessions.iter().cloned());
        match &page["next_cursor"] {
            Value::Null => return (Value::Array(walked), cursors),
            Value::String(next) => cursors.push(next.clone()),
            other => panic!("next_cursor {other}"),
        }
        assert!(cursors.len() < 20, "pages never end");
    }
}

#[test]
fn pages_walk_every_session_once_and_get_for_user_checks_the_owner() {
    let server = RedisServer::start();
    let p = "pg:";
    // b and c share their creation time (ties go by id bytes); c and x
    // share a microsecond score.
    for (id, at) in [
        ("a", "2026-11-27T10:00:00Z"),
        ("b", "2026-11-27T11:00:00.000000001Z"),
        ("c", "2026-11-27T11:00:00.000000001Z"),
        ("x", "2026-11-27T11:00:00.000000002Z"),
        ("d", "2026-11-27T12:00:00Z"),
        ("e", "2026-11-27T13:00:00Z"),
    ] {
        create(&server, p, id, "u", at);
    }
    create(&server, p, "other", "v", "2026-11-27T10:00:00Z");
    let all = on(&server, p, &["list", "u"]).json();
    assert_eq!(ids(&all), ["e", "d", "x", "b", "c", "a"]);

    // Pages of at most the limit (a page may stop short of a group of
    // sessions sharing one microsecond score), never repeating or skipping.
    let (walked, cursors) = walk(&server, p, &["list", "u", "--limit", "2"]);
    assert_eq!(walked, all);
    assert!(cursors.len() >= 2, "{cursors:?}");

    on(&server, p, &revoke_args("d", "2026-11-28T00:00:00Z")).json();
    let (active, cursors) = walk(&server, p, &["list", "u", "--active", "--limit", "3"]);
    assert_eq!(ids(&active), ["e", "x", "b", "c", "a"]);
    let next = cursors[0].clone();
    // A cursor is only valid for its own user and filter.
    on(&server, p, &["list", "v", "--cursor", &next]).assert_error("invalid_cursor");
    on(&server, p, &["list", "u", "--cursor", &next]).assert_error("invalid_cursor");

    assert_eq!(on(&server, p, &["get", "a", "--user", "u"]).json(), all[5]);
    on(&server, p, &["get", "a", "--user", "v"]).assert_error("not_found");
    on(&server, p, &["get", "other", "--user", "u"]).assert_error("not_found");
}

#[test]
fn the_session_limit_rejects_or_evicts_and_retention_hides_old_revocations() {
    let server = RedisServer::start();
    let p = "lim:";
    let limit = |on_limit: &str, id: &str, at: &str| {
        let mut args = vec!["--max-active-sessions", "2", "--on-limit", on_limit];
        args.extend(create_args(id, "u", at));
        on(&server, p, &args)
    };
    create(&server, p, "s1", "u", "2026-11-27T10:00:00Z");
    limit("reject", "s2", "2026-11-27T11:00:00Z").json();
    let mut conn = client(&server);
    let before = keys(&mut conn, "lim:*");
    limit("reject", "s3", "2026-11-27T12:00:00Z").assert_error("session_limit");
    assert_eq!(keys(&mut conn, "lim:*"), before, "a rejected create wrote");
    // The environment in the same style.
    run_env(
        &[
            &["--redis-url", &server.url(), "--prefix", p][..],
            &create_args("s3", "u", "2026-11-27T12:00:00Z"),
        ]
        .concat(),
        &[("AUTHSESSION_MAX_ACTIVE_SESSIONS", "2")],
    )
    .assert_error("session_limit");

    let created = limit("revoke-oldest", "s3", "2026-11-27T12:00:00Z").json();
    assert_eq!(created["session"]["id"], "s3");
    let evicted = created["evicted"].as_array().unwrap();
    assert_eq!(ids(&created["evicted"]), ["s1"]);
    assert_eq!(evicted[0]["status"], "revoked");
    assert_eq!(evicted[0]["revocation"]["reason_code"], "session_limit");
    assert_eq!(evicted[0]["revocation"]["actor_type"], "system");
    assert_eq!(on(&server, p, &["get", "s1"]).json(), evicted[0]);
    assert_eq!(on(&server, p, &["count", "u"]).json()["active"], 2);

    // A session revoked long ago: kept forever by default, gone for every
    // read once its retention has passed.
    create(&server, p, "old", "w", "2020-01-01T00:00:00Z");
    on(&server, p, &revoke_args("old", "2020-01-02T00:00:00Z")).json();
    assert_eq!(on(&server, p, &["get", "old"]).json()["status"], "revoked");
    let retained = |args: &[&str]| {
        let mut all = vec!["--revoked-retention", "30d"];
        all.extend_from_slice(args);
        on(&server, p, &all)
    };
    retained(&["get", "old"]).assert_error("not_found");
    assert_eq!(retained(&["list", "w"]).json(), json!([]));
    assert_eq!(
        retained(&["list", "w", "--limit", "5"]).json(),
        json!({"sessions": [], "next_cursor": null})
    );
    // A recent revocation is still within it.
    assert_eq!(retained(&["get", "s1"]).json(), evicted[0]);
    retained(&["check"]).json();
}

#[test]
fn revoke_all_count_prints_totals_in_batches() {
    let server = RedisServer::start();
    let p = "ra:";
    for (i, at) in [
        "2026-11-27T10:00:00Z",
        "2026-11-27T10:00:01Z",
        "2026-11-27T10:00:02Z",
        "2026-11-27T10:00:03Z",
        "2026-11-27T10:00:04Z",
    ]
    .iter()
    .enumerate()
    {
        create(&server, p, &format!("s{i}"), "u", at);
    }
    let count = |batch: &str| {
        on(
            &server,
            p,
            &[
                "--batch-size",
                batch,
                "revoke-all",
                "u",
                "--reason",
                "security_event",
                "--actor-type",
                "admin",
                "--at",
                "2026-11-28T00:00:00Z",
                "--count",
            ],
        )
        .json()
    };
    assert_eq!(
        count("2"),
        json!({"outcome": "revoked", "revoked": 5, "batches": 3, "drift_repaired": 0, "unrevocable": []})
    );
    assert_eq!(
        count("2"),
        json!({"outcome": "no_active_sessions", "revoked": 0, "batches": 0, "drift_repaired": 0, "unrevocable": []})
    );
    let listed = on(&server, p, &["list", "u"]).json();
    assert!(listed
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["revocation"]["reason_code"] == "security_event"));
    assert_eq!(on(&server, p, &["check"]).json()["problems"], json!([]));
}

#[test]
fn the_tagged_layout_on_a_standalone_server() {
    let server = RedisServer::start();
    let p = "tg:";
    let tagged = |args: &[&str]| {
        let mut all = vec!["--layout", "tagged"];
        all.extend_from_slice(args);
        on(&server, p, &all)
    };
    let session = tagged(&create_args("dev-1", "user-1", "2026-11-27T10:00:00Z")).json();
    let mut conn = client(&server);
    assert_eq!(
        keys(&mut conn, "tg:*"),
        [
            "tg:session:{dXNlci0x}ZGV2LTE",
            "tg:session_owner:{ZGV2LTE}",
            "tg:user_active_sessions:{dXNlci0x}",
            "tg:user_sessions:{dXNlci0x}",
        ]
    );
    assert_eq!(tagged(&["get", "dev-1"]).json(), session);
    assert_eq!(
        tagged(&["get", "dev-1", "--user", "user-1"]).json(),
        session
    );
    assert_eq!(tagged(&["list", "user-1"]).json(), json!([session]));
    // The same id for another user conflicts across the key space.
    tagged(&create_args("dev-1", "user-2", "2026-11-27T10:00:00Z")).assert_error("conflict");
    // The reference layout does not read tagged keys.
    on(&server, p, &["get", "dev-1"]).assert_error("not_found");
    run_env(
        &["--redis-url", &server.url(), "--prefix", p, "get", "dev-1"],
        &[("AUTHSESSION_LAYOUT", "tagged")],
    )
    .json();
    assert_eq!(
        tagged(&["keys", "--id", "dev-1", "--user", "user-1"]).json(),
        json!({
            "session_key": "tg:session:{dXNlci0x}ZGV2LTE",
            "owner_key": "tg:session_owner:{ZGV2LTE}",
            "user_sessions_key": "tg:user_sessions:{dXNlci0x}",
            "user_active_sessions_key": "tg:user_active_sessions:{dXNlci0x}",
        })
    );
    // check knows the tagged layout: clean, and a repair has nothing to do.
    assert_eq!(tagged(&["check"]).json()["problems"], json!([]));
    assert_eq!(tagged(&["check", "--repair"]).json()["repaired"], 0);
    assert_eq!(keys(&mut conn, "tg:*").len(), 4);
}

#[test]
fn wait_replicas_acknowledges_only_what_replicas_confirmed() {
    let primary = RedisServer::start();
    let port = primary.port().to_string();
    let _replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &port]);
    // The server itself says when the replica has caught up: WAIT blocks
    // until one replica acknowledged this write.
    let mut conn = client(&primary);
    let _: () = redis::cmd("SET")
        .arg("probe")
        .arg(1)
        .query(&mut conn)
        .unwrap();
    let acked: u64 = redis::cmd("WAIT")
        .arg(1)
        .arg(60_000)
        .query(&mut conn)
        .unwrap();
    assert_eq!(acked, 1, "the replica never connected");
    let p = "w:";
    let with = |replicas: &str, id: &str| {
        let mut args = vec!["--wait-replicas", replicas];
        args.extend(create_args(id, "u", "2026-11-27T10:00:00Z"));
        on(&primary, p, &args)
    };
    assert_eq!(with("1", "dev-1").json()["id"], "dev-1");
    run_env(
        &[
            &["--redis-url", &primary.url(), "--prefix", p][..],
            &create_args("dev-2", "u", "2026-11-27T10:00:00Z"),
        ]
        .concat(),
        &[("AUTHSESSION_WAIT_REPLICAS", "1")],
    )
    .json();
    // Two replicas cannot confirm: the write is not acknowledged.
    let out = with("2", "dev-3");
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr.contains("(kind: write_unconfirmed)") || out.stderr.contains("(kind: timeout)"),
        "{out:?}"
    );
}

/// Writes `session` as the Go adapter's `Create` does (`SET` record, `ZADD`
/// both indexes with the `created_at` Unix-microsecond score), and, when
/// `revoked` is given, its `Revoke` (`SET` the revoked record, `ZREM` the
/// active index): the exact keys and bytes the adapter leaves.
fn go_write(conn: &mut redis::Connection, prefix: &str, record: &GoRecord<'_>) {
    let b64 = |s: &str| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    };
    let active = format!(
        r#"{{"device_session_id":"{}","user_id":"{}","client_public_key_base64":"{}","status":"active","created_at":"{}"}}"#,
        record.id, record.user, record.key, record.created_at
    );
    let record_key = format!("{prefix}session:{}", b64(record.id));
    let all = format!("{prefix}user_sessions:{}", b64(record.user));
    let active_index = format!("{prefix}user_active_sessions:{}", b64(record.user));
    let _: () = redis::pipe()
        .atomic()
        .cmd("SET")
        .arg(&record_key)
        .arg(&active)
        .cmd("ZADD")
        .arg(&all)
        .arg(record.score)
        .arg(record.id)
        .cmd("ZADD")
        .arg(&active_index)
        .arg(record.score)
        .arg(record.id)
        .query(conn)
        .unwrap();
    if let Some(at) = record.revoked_at {
        let revoked = format!(
            r#"{{"device_session_id":"{}","user_id":"{}","client_public_key_base64":"{}","status":"revoked","created_at":"{}","revoked_at":"{at}","revoke_reason_code":"user_logout","revoke_actor_type":"user","revoke_actor_id":"{}"}}"#,
            record.id, record.user, record.key, record.created_at, record.user
        );
        let _: () = redis::pipe()
            .atomic()
            .cmd("SET")
            .arg(&record_key)
            .arg(&revoked)
            .cmd("ZREM")
            .arg(&active_index)
            .arg(record.id)
            .query(conn)
            .unwrap();
    }
}

struct GoRecord<'a> {
    id: &'a str,
    user: &'a str,
    key: &'a str,
    created_at: &'a str,
    /// `float64(created_at.UnixMicro())` as go-redis formats it.
    score: &'a str,
    revoked_at: Option<&'a str>,
}

#[test]
fn migrate_copies_go_written_data_into_the_tagged_layout_idempotently() {
    let source = RedisServer::start();
    let target = RedisServer::start();
    let p = "go:";
    let mut src = client(&source);
    let records = [
        GoRecord {
            id: "dev-1",
            user: "user-1",
            key: KEY_A,
            created_at: "2026-11-27T10:00:00Z",
            score: "1795773600000000",
            revoked_at: None,
        },
        GoRecord {
            id: "dev-2",
            user: "user-1",
            key: KEY_B,
            created_at: "2026-11-27T11:00:00.25Z",
            score: "1795777200250000",
            revoked_at: Some("2026-11-28T09:30:00Z"),
        },
        GoRecord {
            id: "dev-3",
            user: "user-2",
            key: KEY_A,
            created_at: "2026-11-26T08:00:00Z",
            score: "1795680000000000",
            revoked_at: None,
        },
    ];
    for record in &records {
        go_write(&mut src, p, record);
    }
    // Our reading of the Go adapter's data: clean, three sessions.
    assert_eq!(on(&source, p, &["check"]).json()["problems"], json!([]));
    let user1 = on(&source, p, &["list", "user-1"]).json();
    let user2 = on(&source, p, &["list", "user-2"]).json();
    assert_eq!(ids(&user1), ["dev-2", "dev-1"]);
    let source_keys = keys(&mut src, "*");

    let to = target.url();
    let migrate = || {
        on(
            &source,
            p,
            &["migrate", "--to-url", &to, "--to-layout", "tagged"],
        )
    };
    assert_eq!(
        migrate().json(),
        json!({"users": 2, "sessions": 3, "copied": 3, "already_present": 0, "differences": []})
    );
    // Idempotent: a second run copies nothing and finds everything.
    assert_eq!(
        migrate().json(),
        json!({"users": 2, "sessions": 3, "copied": 0, "already_present": 3, "differences": []})
    );
    // The source is untouched; the target holds the tagged layout (owner
    // keys, one hash tag per user) with the same sessions.
    assert_eq!(keys(&mut src, "*"), source_keys);
    let mut dst = client(&target);
    let target_keys = keys(&mut dst, "*");
    assert!(
        target_keys.contains(&"go:session:{dXNlci0x}ZGV2LTI".to_owned()),
        "{target_keys:?}"
    );
    assert!(
        target_keys.contains(&"go:session_owner:{ZGV2LTM}".to_owned()),
        "{target_keys:?}"
    );
    let tagged = |args: &[&str]| {
        let mut all = vec!["--layout", "tagged"];
        all.extend_from_slice(args);
        on(&target, p, &all)
    };
    assert_eq!(tagged(&["list", "user-1"]).json(), user1);
    assert_eq!(tagged(&["list", "user-2"]).json(), user2);
    // The record bytes are the Go adapter's, under the tagged key.
    let go_bytes: String = redis::cmd("GET")
        .arg("go:session:ZGV2LTI")
        .query(&mut src)
        .unwrap();
    let copied: String = redis::cmd("GET")
        .arg("go:session:{dXNlci0x}ZGV2LTI")
        .query(&mut dst)
        .unwrap();
    assert_eq!(copied, go_bytes);

    // A planted difference: the source changes after the copy (the Go
    // adapter revokes dev-1). The copy never overwrites; it reports.
    go_write(
        &mut src,
        p,
        &GoRecord {
            revoked_at: Some("2026-11-29T00:00:00Z"),
            ..records[0]
        },
    );
    let out = migrate();
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr.contains("(kind: migrate_differences)"),
        "{out:?}"
    );
    let report: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(
        report,
        json!({
            "users": 2, "sessions": 3, "copied": 0, "already_present": 2,
            "differences": [{"user_id": "user-1", "id": "dev-1", "kind": "differs"}],
        })
    );
    // An extra session in the target is a difference too.
    go_write(
        &mut src,
        p,
        &GoRecord {
            revoked_at: None,
            ..records[0]
        },
    );
    tagged(&create_args("dev-9", "user-2", "2026-11-30T00:00:00Z")).json();
    let out = migrate();
    assert_eq!(out.code, Some(1), "{out:?}");
    let report: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(
        report["differences"],
        json!([{"user_id": "user-2", "id": "dev-9", "kind": "extra_in_target"}]),
        "{report}"
    );

    // Defaults: the source's layout and prefix; never onto itself.
    on(&source, p, &["migrate", "--to-url", &source.url()]).assert_error("usage");
    let copy = on(
        &source,
        p,
        &["migrate", "--to-url", &source.url(), "--to-prefix", "copy:"],
    )
    .json();
    assert_eq!(copy["copied"], 3, "{copy}");
    assert_eq!(
        on(&source, "copy:", &["list", "user-1"]).json(),
        on(&source, p, &["list", "user-1"]).json()
    );
}

#[test]
fn bench_churn_reports_the_servers_footprint_and_reference_workloads_run() {
    let server = RedisServer::start();
    let bench = |op: &str, extra: &[&str]| {
        let mut args = vec![
            "bench",
            "--op",
            op,
            "--concurrency",
            "4",
            "--duration",
            "0.3",
        ];
        args.extend_from_slice(extra);
        let report = on(&server, "b:", &args).json();
        assert_eq!(report["op"], op, "{report}");
        assert_eq!(report["errors"], json!({}), "{report}");
        assert!(report["ops"].as_u64().unwrap() > 0, "{report}");
        assert_eq!(
            keys(&mut client(&server), "*"),
            Vec::<String>::new(),
            "{op} left keys"
        );
        report
    };
    let churn = bench(
        "churn",
        &[
            "--users",
            "50",
            "--sessions-per-user",
            "3",
            "--max-active-sessions",
            "3",
            "--on-limit",
            "revoke-oldest",
            "--revoked-retention",
            "1s",
        ],
    );
    assert_eq!(churn["preloaded_sessions"], 150, "{churn}");
    // 150 records, 50 all-sessions and 50 active indexes.
    assert_eq!(churn["keys_start"], 250, "{churn}");
    for field in ["keys_end", "used_memory_start", "used_memory_end"] {
        assert!(churn[field].as_u64().unwrap() > 0, "{field}: {churn}");
    }
    bench(
        "get_reference",
        &["--users", "20", "--sessions-per-user", "2"],
    );
    bench(
        "list_reference",
        &["--users", "20", "--sessions-per-user", "4"],
    );
    bench("create_reference", &[]);
    let revoke = bench("revoke_reference", &[]);
    assert_eq!(
        revoke["outcomes"],
        json!({"revoked": revoke["ops"]}),
        "{revoke}"
    );
    let all = bench("revoke_all_reference", &["--sessions-per-user", "5"]);
    assert_eq!(all["outcomes"], json!({"revoked": all["ops"]}), "{all}");
    // The adapter knows the reference layout only.
    on(
        &server,
        "b:",
        &[
            "--layout",
            "tagged",
            "bench",
            "--op",
            "get_reference",
            "--duration",
            "0.1",
        ],
    )
    .assert_error("usage");
}

#[test]
fn sweep_removes_expired_revocations_in_batches() {
    let server = RedisServer::start();
    let p = "sw:";
    for (id, user) in [("a", "u"), ("b", "u"), ("c", "u"), ("d", "w")] {
        create(&server, p, id, user, "2020-01-01T00:00:00Z");
    }
    for id in ["a", "b", "d"] {
        on(&server, p, &revoke_args(id, "2020-01-02T00:00:00Z")).json();
    }
    let sweep = |retention: Option<&str>| {
        let mut args = vec!["--batch-size", "1"];
        if let Some(r) = retention {
            args.extend(["--revoked-retention", r]);
        }
        args.push("sweep");
        on(&server, p, &args).json()
    };
    // Without retention nothing ever expires.
    assert_eq!(sweep(None)["sessions_removed"], 0);
    assert_eq!(ids(&on(&server, p, &["list", "u"]).json()), ["a", "b", "c"]);
    let report = sweep(Some("30d"));
    assert_eq!(report["sessions_removed"], 3, "{report}");
    assert!(report["batches"].as_u64().unwrap() >= 2, "{report}");
    assert!(report["users"].as_u64().unwrap() >= 2, "{report}");
    // Physically gone: the Go adapter's reads see only what is left.
    let mut conn = client(&server);
    for id in ["a", "b", "d"] {
        let key = on(&server, p, &["keys", "--id", id]).json()["session_key"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(keys(&mut conn, &key).is_empty(), "{id} still stored");
    }
    assert_eq!(ids(&on(&server, p, &["list", "u"]).json()), ["c"]);
    assert_eq!(on(&server, p, &["list", "w"]).json(), json!([]));
    assert_eq!(sweep(Some("30d"))["sessions_removed"], 0);
    assert_eq!(on(&server, p, &["check"]).json()["problems"], json!([]));
}
