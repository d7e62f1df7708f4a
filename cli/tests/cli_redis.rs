//! The store commands of the `authsession` binary against a real, private
//! `redis-server` (started per test on a free loopback port, killed by
//! pid): create/get/list/count/revoke/revoke-all, check and repair of
//! planted corruption, demo and bench.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

mod cli_support;

use cli_support::{client, run, RedisServer, Run};
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

fn create(server: &RedisServer, prefix: &str, id: &str, user: &str, key: &str, at: &str) -> Value {
    on(
        server,
        prefix,
        &[
            "create",
            "--id",
            id,
            "--user",
            user,
            "--public-key",
            key,
            "--created-at",
            at,
        ],
    )
    .json()
}

fn keys(conn: &mut redis::Connection, pattern: &str) -> Vec<String> {
    let mut keys: Vec<String> = redis::cmd("KEYS").arg(pattern).query(conn).unwrap();
    keys.sort();
    keys
}

#[test]
fn lifecycle_through_the_cli() {
    let server = RedisServer::start();
    let p = "t1:";
    let s1 = create(&server, p, "dev-1", "user-1", KEY_A, "2026-11-27T10:00:00Z");
    let s2 = create(
        &server,
        p,
        "dev-2",
        "user-1",
        KEY_B,
        "2026-11-27T11:00:00.25Z",
    );
    let s3 = create(
        &server,
        p,
        "dev-3",
        "user-1",
        KEY_A,
        "2026-11-27T11:00:00.25Z",
    );
    assert_eq!(s1["status"], "active");

    // The record is the reference's byte-exact encoding, under its key.
    let mut conn = client(&server);
    let raw: String = redis::cmd("GET")
        .arg("t1:session:ZGV2LTE")
        .query(&mut conn)
        .unwrap();
    assert_eq!(
        raw,
        format!(
            r#"{{"device_session_id":"dev-1","user_id":"user-1","client_public_key_base64":"{KEY_A}","status":"active","created_at":"2026-11-27T10:00:00Z"}}"#
        )
    );

    on(
        &server,
        p,
        &[
            "create",
            "--id",
            "dev-1",
            "--user",
            "user-2",
            "--public-key",
            KEY_B,
        ],
    )
    .assert_error("conflict");
    assert_eq!(on(&server, p, &["get", "dev-2"]).json(), s2);
    on(&server, p, &["get", "dev-9"]).assert_error("not_found");
    // Another prefix is another key space.
    on(&server, "other:", &["get", "dev-2"]).assert_error("not_found");

    // Newest first; ties by id bytes.
    assert_eq!(
        on(&server, p, &["list", "user-1"]).json(),
        json!([s2, s3, s1])
    );
    assert_eq!(on(&server, p, &["list", "user-2"]).json(), json!([]));
    assert_eq!(
        on(&server, p, &["count", "user-1"]).json(),
        json!({"user_id": "user-1", "active": 3})
    );

    let revoke = |at: &str| {
        on(
            &server,
            p,
            &[
                "revoke",
                "dev-2",
                "--reason",
                "user_logout",
                "--actor-type",
                "user",
                "--actor-id",
                "user-1",
                "--at",
                at,
            ],
        )
    };
    // Before creation: invalid, nothing written.
    revoke("2026-11-27T11:00:00.249999999Z").assert_error("invalid_input");
    let revoked = revoke("2026-11-27T12:00:00Z").json();
    assert_eq!(revoked["outcome"], "revoked");
    assert_eq!(revoked["session"]["status"], "revoked");
    assert_eq!(
        revoked["session"]["revocation"],
        json!({"at": "2026-11-27T12:00:00Z", "reason_code": "user_logout", "actor_type": "user", "actor_id": "user-1"})
    );
    let again = revoke("2026-11-27T13:00:00Z").json();
    assert_eq!(again["outcome"], "already_revoked");
    assert_eq!(again["session"], revoked["session"]);
    assert_eq!(on(&server, p, &["count", "user-1"]).json()["active"], 2);

    // revoke-all at a time between dev-1 and dev-3: both are revoked
    // (existence decides, not clocks), dev-3 at its own creation time.
    let all = |at: &str| {
        on(
            &server,
            p,
            &[
                "revoke-all",
                "user-1",
                "--reason",
                "security_event",
                "--actor-type",
                "admin",
                "--at",
                at,
            ],
        )
        .json()
    };
    let first = all("2026-11-27T10:30:00Z");
    assert_eq!(first["outcome"], "revoked");
    let ids: Vec<&str> = first["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["dev-3", "dev-1"]);
    assert_eq!(
        first["sessions"][0]["revocation"]["at"],
        "2026-11-27T11:00:00.25Z"
    );
    assert_eq!(
        first["sessions"][1]["revocation"]["at"],
        "2026-11-27T10:30:00Z"
    );
    assert_eq!(first["sessions"][0]["revocation"]["actor_id"], "");
    assert_eq!(
        all("2026-11-28T00:00:00Z"),
        json!({"outcome": "no_active_sessions", "sessions": [], "revoked": 0, "batches": 0, "drift_repaired": 0, "unrevocable": []})
    );
    assert_eq!(on(&server, p, &["count", "user-1"]).json()["active"], 0);

    let report = on(&server, p, &["check"]).json();
    assert_eq!(report["problems"], json!([]));
    assert_eq!(report["records"], 3);
}

#[test]
fn lenient_timestamps_are_stored_canonical_and_line_separators_stay_escaped() {
    let server = RedisServer::start();
    let p = "t3:";
    let mut conn = client(&server);
    let raw = |conn: &mut redis::Connection, id: &str| -> String {
        let key = on(&server, p, &["keys", "--id", id]).json()["session_key"]
            .as_str()
            .unwrap()
            .to_owned();
        redis::cmd("GET").arg(key).query(conn).unwrap()
    };

    // Any RFC 3339 form in, the canonical UTC form stored and read back.
    create(&server, p, "a", "u", KEY_A, "2025-03-01T10:00:00.100Z");
    let b = create(&server, p, "b", "u", KEY_A, "2025-03-01T10:00:00.100+02:00");
    assert_eq!(b["created_at"], "2025-03-01T08:00:00.1Z");
    assert_eq!(
        on(&server, p, &["get", "a"]).json()["created_at"],
        "2025-03-01T10:00:00.1Z"
    );
    assert_eq!(on(&server, p, &["get", "b"]).json(), b);
    assert!(raw(&mut conn, "a").ends_with(r#""created_at":"2025-03-01T10:00:00.1Z"}"#));
    assert!(raw(&mut conn, "b").ends_with(r#""created_at":"2025-03-01T08:00:00.1Z"}"#));
    let revoked = on(
        &server,
        p,
        &[
            "revoke",
            "b",
            "--reason",
            "logout",
            "--actor-type",
            "user",
            "--at",
            "2025-03-01t09:30:00.000000000-00:30",
        ],
    )
    .json();
    assert_eq!(
        revoked["session"]["revocation"]["at"],
        "2025-03-01T10:00:00Z"
    );
    assert!(raw(&mut conn, "b").contains(r#""revoked_at":"2025-03-01T10:00:00Z""#));

    // Bad input: a typed error and nothing written.
    let before = (keys(&mut conn, "t3:*"), raw(&mut conn, "a"));
    on(
        &server,
        p,
        &[
            "create",
            "--id",
            "c",
            "--user",
            "u",
            "--public-key",
            KEY_A,
            "--created-at",
            "2025-03-01T10:00:00+2:00",
        ],
    )
    .assert_error("invalid_timestamp");
    on(
        &server,
        p,
        &[
            "revoke",
            "a",
            "--reason",
            "logout",
            "--actor-type",
            "user",
            "--at",
            "2025-03-01T10:00:00.1234567891Z",
        ],
    )
    .assert_error("invalid_timestamp");
    assert_eq!((keys(&mut conn, "t3:*"), raw(&mut conn, "a")), before);

    // An id with U+2028/U+2029: one output line per value, the same id
    // parsed back, and the stored record escaped like the Go adapter's.
    let id = "dev\u{2028}x\u{2029}y";
    let created = on(
        &server,
        p,
        &[
            "create",
            "--id",
            id,
            "--user",
            "u",
            "--public-key",
            KEY_B,
            "--created-at",
            "2025-03-02T00:00:00Z",
        ],
    );
    for out in [
        &created,
        &on(&server, p, &["get", id]),
        &on(&server, p, &["list", "u"]),
    ] {
        assert_eq!(out.code, Some(0), "{out:?}");
        assert_eq!(out.stdout.matches('\n').count(), 1, "{out:?}");
        assert!(!out.stdout.contains(['\u{2028}', '\u{2029}']), "{out:?}");
    }
    assert_eq!(created.json()["id"], id);
    assert_eq!(on(&server, p, &["get", id]).json()["id"], id);
    assert_eq!(on(&server, p, &["list", "u"]).json()[0]["id"], id);
    assert!(raw(&mut conn, id).starts_with(r#"{"device_session_id":"dev\u2028x\u2029y","#));
}

#[test]
fn check_reports_planted_corruption_and_repair_fixes_index_drift() {
    let server = RedisServer::start();
    let p = "t2:";
    create(&server, p, "dev-1", "user-1", KEY_A, "2026-11-27T10:00:00Z");
    create(&server, p, "dev-2", "user-1", KEY_B, "2026-11-27T10:00:01Z");
    assert_eq!(on(&server, p, &["check"]).json()["problems"], json!([]));

    let mut conn = client(&server);
    let active = "t2:user_active_sessions:dXNlci0x";
    // Index drift: dev-2 dropped from the active index; a member with no record.
    let _: i64 = redis::cmd("ZREM")
        .arg(active)
        .arg("dev-2")
        .query(&mut conn)
        .unwrap();
    let _: i64 = redis::cmd("ZADD")
        .arg(active)
        .arg(1)
        .arg("ghost")
        .query(&mut conn)
        .unwrap();
    let out = on(&server, p, &["check"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("kind: check_failed"), "{out:?}");
    let report: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    let mut kinds: Vec<&str> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["kind"].as_str().unwrap())
        .collect();
    kinds.sort_unstable();
    assert_eq!(
        kinds,
        ["missing_index_entry", "stray_index_entry"],
        "{report}"
    );
    assert!(report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["key"] == active));
    let repaired = on(&server, p, &["check", "--repair"]).json();
    // `repaired` counts the problems fixed; none is left.
    assert_eq!(repaired["repaired"], 2, "{repaired}");
    assert_eq!(repaired["unrepaired"], json!([]), "{repaired}");
    assert_eq!(repaired["problems"].as_array().unwrap().len(), 2);
    assert_eq!(on(&server, p, &["check"]).json()["problems"], json!([]));
    assert_eq!(on(&server, p, &["count", "user-1"]).json()["active"], 2);

    // A corrupt record shields nothing: revoke-all revokes every valid
    // session and names it — the outcome first on stdout, then kind
    // partially_revoked.
    let _: () = redis::cmd("SET")
        .arg("t2:session:ZGV2LTE")
        .arg("{garbage")
        .query(&mut conn)
        .unwrap();
    let out = on(
        &server,
        p,
        &["revoke-all", "user-1", "--reason", "x", "--actor-type", "y"],
    );
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stderr.contains("(kind: partially_revoked)"), "{out:?}");
    let outcome: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(outcome["outcome"], "partially_revoked", "{outcome}");
    assert_eq!(outcome["revoked"], 1, "{outcome}");
    assert_eq!(outcome["sessions"][0]["id"], "dev-2", "{outcome}");
    let unrevocable = outcome["unrevocable"].as_array().unwrap();
    assert_eq!(unrevocable.len(), 1, "{outcome}");
    assert_eq!(unrevocable[0]["key"], "t2:session:ZGV2LTE");
    assert_eq!(unrevocable[0]["member"], "dev-1");
    assert_eq!(unrevocable[0]["reason"], "corrupt_record");
    assert_eq!(on(&server, p, &["count", "user-1"]).json()["active"], 1);

    // check --repair takes the member out of the indexes and leaves the
    // bad bytes for inspection: check still fails (the record is still
    // corrupt), get names the key, and the user is fully revocable again.
    let out = on(&server, p, &["check", "--repair"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    let report: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert!(
        report["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["kind"] == "corrupt_record" && p["key"] == "t2:session:ZGV2LTE"),
        "{report}"
    );
    let out = on(&server, p, &["get", "dev-1"]);
    out.assert_error("corrupt");
    assert!(out.stderr.contains("t2:session:ZGV2LTE"), "{out:?}");
    let raw: String = redis::cmd("GET")
        .arg("t2:session:ZGV2LTE")
        .query(&mut conn)
        .unwrap();
    assert_eq!(raw, "{garbage");
    assert_eq!(on(&server, p, &["count", "user-1"]).json()["active"], 0);
    let outcome = on(
        &server,
        p,
        &["revoke-all", "user-1", "--reason", "x", "--actor-type", "y"],
    )
    .json();
    assert_eq!(outcome["outcome"], "no_active_sessions", "{outcome}");
}

#[test]
fn revoke_all_never_fails_open_through_the_cli() {
    let server = RedisServer::start();
    let p = "t9:";
    // Clock skew: sessions dated minutes and years ahead of this clock.
    create(&server, p, "past", "u", KEY_A, "2026-01-01T00:00:00Z");
    create(&server, p, "ahead", "u", KEY_B, "2099-01-01T00:05:00Z");
    create(&server, p, "lost", "u", KEY_A, "2026-01-02T00:00:00Z");
    create(&server, p, "single", "u", KEY_A, "2099-06-01T00:00:00Z");
    // Drift: "lost" is active but gone from the active index.
    let mut conn = client(&server);
    let _: i64 = redis::cmd("ZREM")
        .arg("t9:user_active_sessions:dQ")
        .arg("lost")
        .query(&mut conn)
        .unwrap();

    // revoke without --at: the now form revokes a session dated ahead, at
    // its own creation time; an explicit earlier time stays invalid.
    let revoke = |at: Option<&str>| {
        let mut args = vec!["revoke", "single", "--reason", "x", "--actor-type", "y"];
        if let Some(at) = at {
            args.extend(["--at", at]);
        }
        on(&server, p, &args)
    };
    revoke(Some("2026-12-01T00:00:00Z")).assert_error("invalid_input");
    let single = revoke(None).json();
    assert_eq!(single["outcome"], "revoked");
    assert_eq!(
        single["session"]["revocation"]["at"],
        "2099-06-01T00:00:00Z"
    );

    let out = on(
        &server,
        p,
        &[
            "revoke-all",
            "u",
            "--reason",
            "admin_revoke",
            "--actor-type",
            "admin",
            "--max-failures",
            "3",
            "--deadline",
            "10m",
        ],
    );
    let outcome = out.json();
    assert_eq!(outcome["outcome"], "revoked", "{outcome}");
    assert_eq!(outcome["revoked"], 3, "{outcome}");
    assert_eq!(outcome["drift_repaired"], 1, "{outcome}");
    assert_eq!(outcome["unrevocable"], json!([]));
    let ahead = outcome["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "ahead")
        .unwrap();
    assert_eq!(ahead["revocation"]["at"], "2099-01-01T00:05:00Z");
    // Progress and a summary on stderr.
    assert!(
        out.stderr.contains("revoke-all: revoked 3 session(s)"),
        "{out:?}"
    );
    for id in ["past", "ahead", "lost"] {
        assert_eq!(
            on(&server, p, &["get", id]).json()["status"],
            "revoked",
            "{id}"
        );
    }
    assert_eq!(on(&server, p, &["count", "u"]).json()["active"], 0);
    on(
        &server,
        p,
        &[
            "revoke-all",
            "u",
            "--reason",
            "x",
            "--actor-type",
            "y",
            "--deadline",
            "soon",
        ],
    )
    .assert_error("invalid_duration");
    let usage = on(
        &server,
        p,
        &[
            "revoke-all",
            "u",
            "--reason",
            "x",
            "--actor-type",
            "y",
            "--max-failures",
            "0",
        ],
    );
    assert_eq!(usage.code, Some(2), "{usage:?}");
}

#[test]
fn demo_on_redis_uses_a_fresh_prefix_and_leaves_nothing() {
    let server = RedisServer::start();
    let lines = on(&server, "demo-base:", &["demo"]).json_lines();
    assert_eq!(lines.len(), 13, "{lines:?}");
    assert_eq!(lines[0]["backend"], "redis");
    let prefixes = lines[0]["key_prefixes"].as_array().unwrap();
    let session_prefix = prefixes[0].as_str().unwrap();
    assert!(
        session_prefix.starts_with("demo-base:demo:"),
        "{session_prefix}"
    );
    assert!(session_prefix.ends_with(":session:"), "{session_prefix}");
    let steps: Vec<&str> = lines.iter().map(|l| l["step"].as_str().unwrap()).collect();
    assert_eq!(steps[11], "check");
    assert_eq!(lines[11]["report"]["problems"], json!([]));
    assert_eq!(steps[12], "purge");
    // 3 records + the all-sessions index (the active index is gone once
    // empty; no retention, so no revoked index).
    assert_eq!(lines[12]["keys_deleted"], 4, "{lines:?}");
    assert_eq!(keys(&mut client(&server), "*"), Vec::<String>::new());
    // Twice in a row: fresh prefixes never collide.
    on(&server, "demo-base:", &["demo"]).json_lines();
}

#[test]
fn bench_on_redis_cleans_up_and_contention_keeps_the_indexes_consistent() {
    let server = RedisServer::start();
    for (op, extra) in [
        ("get", vec!["--users", "20", "--sessions-per-user", "2"]),
        ("create", vec![]),
        ("revoke_all", vec!["--sessions-per-user", "3"]),
        ("contention", vec![]),
    ] {
        let mut args = vec![
            "bench",
            "--op",
            op,
            "--concurrency",
            "8",
            "--duration",
            "0.3",
        ];
        args.extend(extra);
        let report = on(&server, "b:", &args).json();
        assert_eq!(report["backend"], "redis");
        assert_eq!(report["errors"], json!({}), "{report}");
        assert!(report["ops"].as_u64().unwrap() > 0, "{report}");
        if op == "contention" {
            assert_eq!(report["invariants"]["consistent"], true, "{report}");
        }
        assert_eq!(
            keys(&mut client(&server), "*"),
            Vec::<String>::new(),
            "{op} left keys"
        );
    }
}

#[test]
fn an_interrupted_bench_still_reports_and_purges_its_keys() {
    let server = RedisServer::start();
    let url = server.url();
    let child = cli_support::cmd(&[
        "--redis-url",
        &url,
        "bench",
        "--op",
        "get",
        "--concurrency",
        "4",
        "--duration",
        "600",
    ])
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    // Interrupt once the bench has written keys (its preload is under way).
    let mut conn = client(&server);
    let started = std::time::Instant::now();
    loop {
        let size: u64 = redis::cmd("DBSIZE").query(&mut conn).unwrap();
        if size > 0 {
            break;
        }
        assert!(
            started.elapsed().as_secs() < 60,
            "the bench never wrote a key"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("kind: interrupted"), "{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["interrupted"], true, "{report}");
    assert_eq!(keys(&mut conn, "*"), Vec::<String>::new());
}

/// The long commands print one summary line on stderr (stderr is not a
/// terminal here, so no live line) while stdout stays their one JSON
/// value.
#[test]
fn long_commands_summarise_on_stderr_and_keep_stdout_json() {
    let server = RedisServer::start();
    let p = "prog:";
    for (i, user) in ["user-1", "user-1", "user-2"].iter().enumerate() {
        create(
            &server,
            p,
            &format!("dev-{i}"),
            user,
            KEY_A,
            "2026-11-27T10:00:00Z",
        );
    }
    let to = server.url();
    let commands: [(&str, &[&str]); 4] = [
        ("check", &["check"]),
        ("check", &["check", "--repair"]),
        ("sweep", &["--revoked-retention", "1d", "sweep"]),
        (
            "migrate",
            &["migrate", "--to-url", &to, "--to-prefix", "copy:"],
        ),
    ];
    for (name, args) in commands {
        let out = on(&server, p, args);
        let value: Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: stdout is not one JSON value ({e}): {out:?}"));
        assert!(value.is_object(), "{args:?}: {value}");
        let lines: Vec<&str> = out.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{args:?}: {out:?}");
        let summary = lines[0];
        assert!(
            summary.starts_with(&format!("authsession: {name}: ")) && summary.ends_with("/s)"),
            "{args:?}: {summary}"
        );
        assert!(
            !summary.contains('\r'),
            "no live line off a terminal: {summary:?}"
        );
    }
    let check = on(&server, p, &["check"]);
    assert!(check.stderr.contains("3 records"), "{check:?}");
    let migrate = on(
        &server,
        p,
        &["migrate", "--to-url", &to, "--to-prefix", "copy2:"],
    );
    // 3 sessions copied, then 3 verified.
    assert!(migrate.stderr.contains("(6 in "), "{migrate:?}");
}
