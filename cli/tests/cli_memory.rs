//! Every store command of the `authsession` binary on the in-memory store
//! (`--memory`; each run starts empty), plus `demo` and `bench`, driven
//! through the built executable.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

mod cli_support;

use authsession_core::Timestamp;
use cli_support::{cmd, run, Run};
use serde_json::{json, Value};

const KEY: &str = "6CNOOq9vU5hNuRjuSnPSuoYdvt6iZpSYfEDOihlBz8I=";

/// `create` with every flag, on a fresh in-memory store.
fn create(id: &str, user: &str, key: &str, at: &str) -> Run {
    run(&[
        "--memory",
        "create",
        "--id",
        id,
        "--user",
        user,
        "--public-key",
        key,
        "--created-at",
        at,
    ])
}

#[test]
fn create_prints_the_session_with_the_given_or_current_time() {
    let session = create("dev-1", "user-1", KEY, "2026-11-27T10:00:00.5Z").json();
    assert_eq!(
        session,
        json!({
            "id": "dev-1",
            "user_id": "user-1",
            "client_public_key_b64": KEY,
            "status": "active",
            "created_at": "2026-11-27T10:00:00.5Z",
            "revocation": null,
        })
    );
    // Default: the CLI's clock, in canonical form.
    let session = run(&[
        "create",
        "--memory",
        "--id",
        "d",
        "--user",
        "u",
        "--public-key",
        KEY,
    ])
    .json();
    let created_at = session["created_at"].as_str().unwrap();
    let parsed = Timestamp::parse(created_at).unwrap();
    assert!(
        parsed.unix_nanos()
            > Timestamp::parse("2024-01-01T00:00:00Z")
                .unwrap()
                .unix_nanos()
    );
}

#[test]
fn timestamps_take_any_rfc3339_form_and_print_in_canonical_utc() {
    let created_at = |at: &str| create("d", "u", KEY, at).json()["created_at"].clone();
    for (given, stored) in [
        ("2025-03-01T10:00:00.100Z", "2025-03-01T10:00:00.1Z"),
        ("2025-03-01T10:00:00.100+02:00", "2025-03-01T08:00:00.1Z"),
        (
            "2025-03-01t10:00:00.000000001z",
            "2025-03-01T10:00:00.000000001Z",
        ),
        ("2025-03-01T00:00:00-05:30", "2025-03-01T05:30:00Z"),
        ("2025-03-01T10:00:00Z", "2025-03-01T10:00:00Z"),
    ] {
        assert_eq!(created_at(given), json!(stored), "{given}");
    }
    let revoked = run(&[
        "--memory",
        "revoke-all",
        "u",
        "--reason",
        "logout",
        "--actor-type",
        "user",
        "--at",
        "2025-03-01T12:00:00.5+02:00",
    ]);
    assert_eq!(
        revoked.json(),
        json!({"outcome": "no_active_sessions", "sessions": []})
    );
}

#[test]
fn output_escapes_line_separators_so_one_value_stays_one_line() {
    let id = "dev\u{2028}1\u{2029}<&>";
    let out = create(id, "user\u{2028}1", KEY, "2025-03-01T10:00:00Z");
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(!out.stdout.contains(['\u{2028}', '\u{2029}']), "{out:?}");
    assert_eq!(out.stdout.matches('\n').count(), 1, "{out:?}");
    assert!(out.stdout.ends_with('\n'));
    assert!(
        out.stdout
            .contains(r#""id":"dev\u20281\u2029\u003c\u0026\u003e""#),
        "{out:?}"
    );
    let session = out.json();
    assert_eq!(session["id"], id);
    assert_eq!(session["user_id"], "user\u{2028}1");

    let keys = run(&["keys", "--id", id, "--user", "user\u{2028}1"]);
    assert_eq!(keys.stdout.lines().count(), 1, "{keys:?}");
    assert!(!keys.stdout.contains(['\u{2028}', '\u{2029}']), "{keys:?}");
}

#[test]
fn create_rejects_invalid_values_with_their_kind() {
    let at = "2026-11-27T10:00:00Z";
    create("", "u", KEY, at).assert_error("invalid_id");
    create(" d", "u", KEY, at).assert_error("invalid_id");
    create("d", &"u".repeat(257), KEY, at).assert_error("invalid_id");
    create("d", "u", "AAAA", at).assert_error("invalid_public_key");
    create("d", "u", &KEY.replace('=', ""), at).assert_error("invalid_public_key");
    create("d", "u", KEY, "yesterday").assert_error("invalid_timestamp");
    create("d", "u", KEY, "2026-11-27T10:00:00+0100").assert_error("invalid_timestamp");
    create("d", "u", KEY, "2026-11-27T10:00:00.1234567891Z").assert_error("invalid_timestamp");
    create("d", "u", KEY, "2016-12-31T23:59:60Z").assert_error("invalid_timestamp");
    create("d", "u", KEY, "0000-01-01T00:30:00+01:00").assert_error("timestamp_out_of_range");
    create("d", "u", KEY, "0001-01-01T00:00:00Z").assert_error("zero_timestamp");
}

#[test]
fn reads_on_an_empty_store() {
    run(&["--memory", "get", "dev-1"]).assert_error("not_found");
    assert_eq!(run(&["--memory", "list", "user-1"]).json(), json!([]));
    assert_eq!(
        run(&["--memory", "count", "user-1"]).json(),
        json!({"user_id": "user-1", "active": 0})
    );
    run(&["--memory", "get", ""]).assert_error("invalid_id");
    run(&["--memory", "list", "a\tb"]).assert_error("invalid_id");
    run(&["--memory", "count", " u"]).assert_error("invalid_id");
}

#[test]
fn revocations_on_an_empty_store() {
    run(&[
        "--memory",
        "revoke",
        "dev-1",
        "--reason",
        "user_logout",
        "--actor-type",
        "user",
    ])
    .assert_error("not_found");
    assert_eq!(
        run(&[
            "--memory",
            "revoke-all",
            "user-1",
            "--reason",
            "security_event",
            "--actor-type",
            "admin",
            "--actor-id",
            "ops-7",
            "--at",
            "2026-11-27T10:00:00Z",
        ])
        .json(),
        json!({"outcome": "no_active_sessions", "sessions": []})
    );
    // Invalid flags are rejected before the store is touched.
    let revoke = |reason: &str, actor_type: &str, actor_id: &str, at: &str| {
        run(&[
            "--memory",
            "revoke",
            "dev-1",
            "--reason",
            reason,
            "--actor-type",
            actor_type,
            "--actor-id",
            actor_id,
            "--at",
            at,
        ])
    };
    let at = "2026-11-27T10:00:00Z";
    revoke("Logout", "user", "", at).assert_error("invalid_reason_code");
    revoke(&"r".repeat(65), "user", "", at).assert_error("invalid_reason_code");
    revoke("logout", "9user", "", at).assert_error("invalid_actor_type");
    revoke("logout", "user", " a", at).assert_error("invalid_actor_id");
    revoke("logout", "user", "", "2026-11-27").assert_error("invalid_timestamp");
    revoke("logout", "user", "", "0001-01-01T00:00:00Z").assert_error("zero_timestamp");
    run(&[
        "--memory",
        "revoke-all",
        "",
        "--reason",
        "x",
        "--actor-type",
        "y",
    ])
    .assert_error("invalid_id");
}

#[test]
fn check_of_an_empty_store_is_clean() {
    let report = run(&["--memory", "check"]).json();
    assert_eq!(
        report,
        json!({
            "records": 0,
            "index_entries": 0,
            "batches": 0,
            "problems": [],
            "repaired": 0,
            "unrepaired": [],
        })
    );
    assert_eq!(
        run(&["--memory", "check", "--repair"]).json()["problems"],
        json!([])
    );
}

/// The demo's narration, checked step by step.
pub fn assert_demo(lines: &[Value], backend: &str) {
    let steps: Vec<&str> = lines.iter().map(|l| l["step"].as_str().unwrap()).collect();
    assert_eq!(
        &steps[..11],
        [
            "start",
            "create",
            "create",
            "create",
            "get",
            "list",
            "count",
            "revoke",
            "revoke_again",
            "revoke_all",
            "count_after",
        ]
    );
    assert_eq!(steps[11], "check");
    assert_eq!(lines[0]["backend"], backend);
    let created: Vec<&Value> = lines[1..4].iter().map(|l| &l["session"]).collect();
    assert!(created
        .iter()
        .all(|s| s["status"] == "active" && s["user_id"] == "demo-user"));
    assert_eq!(&lines[4]["session"], created[1]);
    let listed = lines[5]["sessions"].as_array().unwrap();
    let newest_first: Vec<&Value> = created.iter().rev().copied().collect();
    assert_eq!(listed.iter().collect::<Vec<_>>(), newest_first);
    assert_eq!(lines[6]["active"], 3);
    assert_eq!(lines[7]["outcome"], "revoked");
    assert_eq!(lines[7]["session"]["status"], "revoked");
    assert_eq!(
        lines[7]["session"]["revocation"]["reason_code"],
        "user_logout"
    );
    assert_eq!(lines[8]["outcome"], "already_revoked");
    assert_eq!(lines[8]["session"], lines[7]["session"]);
    assert_eq!(lines[9]["outcome"], "revoked");
    let revoked: Vec<&str> = lines[9]["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(revoked, ["demo-session-3", "demo-session-2"]);
    assert_eq!(lines[10]["active"], 0);
    assert_eq!(lines[11]["report"]["problems"], json!([]));
    assert_eq!(lines[11]["report"]["records"], 3);
}

#[test]
fn demo_runs_in_memory_by_default() {
    let lines = run(&["demo"]).json_lines();
    assert_eq!(lines.len(), 12);
    assert_demo(&lines, "memory");
}

#[test]
fn memory_and_an_explicit_redis_url_exclude_each_other() {
    run(&["--memory", "--redis-url", "redis://127.0.0.1:1", "get", "x"]).assert_error("usage");
    // The environment's URL yields to an explicit --memory.
    let out = cmd(&["--memory", "count", "u"])
        .env("AUTHSESSION_REDIS_URL", "redis://127.0.0.1:1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn an_unreachable_server_is_a_backend_or_timeout_error() {
    // Port 1 on loopback: nothing listens there.
    let out = run(&["--redis-url", "redis://127.0.0.1:1", "get", "dev-1"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr.contains("(kind: backend)") || out.stderr.contains("(kind: timeout)"),
        "{out:?}"
    );
    run(&["--redis-url", "http://127.0.0.1:1", "get", "dev-1"]).assert_error("config");
}

fn bench(op: &str, extra: &[&str]) -> Value {
    let mut args = vec![
        "--memory",
        "bench",
        "--op",
        op,
        "--concurrency",
        "4",
        "--duration",
        "0.3",
    ];
    args.extend_from_slice(extra);
    let report = run(&args).json();
    assert_eq!(report["op"], op, "{report}");
    assert_eq!(report["backend"], "memory");
    assert_eq!(report["concurrency"], 4);
    assert_eq!(report["errors"], json!({}), "{report}");
    assert!(report["ops"].as_u64().unwrap() > 0, "{report}");
    assert!(report["ops_per_sec"].as_f64().unwrap() > 0.0, "{report}");
    let p50 = report["p50_us"].as_f64().unwrap();
    let p99 = report["p99_us"].as_f64().unwrap();
    let p999 = report["p999_us"].as_f64().unwrap();
    let max = report["max_us"].as_f64().unwrap();
    assert!(p50 <= p99 && p99 <= p999 && p999 <= max, "{report}");
    report
}

#[test]
fn bench_runs_every_workload_on_the_memory_store() {
    let get = bench("get", &["--users", "50", "--sessions-per-user", "2"]);
    assert_eq!(get["preloaded_sessions"], 100);
    bench("count", &["--users", "50"]);
    bench("list", &["--users", "20", "--sessions-per-user", "20"]);
    bench("create", &[]);
    let revoke = bench("revoke", &[]);
    // Every revoke hit a distinct active session.
    assert_eq!(
        revoke["outcomes"],
        json!({"revoked": revoke["ops"]}),
        "{revoke}"
    );
    let all = bench("revoke_all", &["--sessions-per-user", "5"]);
    assert_eq!(all["outcomes"], json!({"revoked": all["ops"]}), "{all}");
    let mixed = bench("mixed", &["--users", "100"]);
    assert!(
        mixed["outcomes"]["revoked"].as_u64().unwrap() > 0,
        "{mixed}"
    );
    let contention = bench("contention", &[]);
    assert_eq!(contention["invariants"]["consistent"], true, "{contention}");
    assert!(
        contention["outcomes"]["created"].as_u64().unwrap() > 0,
        "{contention}"
    );
}

#[test]
fn bench_rejects_bad_parameters() {
    let bad = |args: &[&str]| {
        let mut all = vec!["--memory", "bench"];
        all.extend_from_slice(args);
        run(&all)
    };
    bad(&["--op", "get", "--concurrency", "0"]).assert_error("usage");
    bad(&["--op", "get", "--duration", "0"]).assert_error("usage");
    bad(&["--op", "get", "--duration", "NaN"]).assert_error("usage");
    bad(&["--op", "list", "--sessions-per-user", "0"]).assert_error("usage");
    bad(&["--op", "get", "--users", "0"]).assert_error("usage");
    bad(&[
        "--op",
        "contention",
        "--concurrency",
        "2",
        "--creators",
        "3",
    ])
    .assert_error("usage");
    assert_eq!(bad(&["--op", "nope"]).code, Some(2));
}
