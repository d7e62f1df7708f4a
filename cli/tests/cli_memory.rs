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
use cli_support::{cmd, run, run_env, Run};
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
        json!({"outcome": "no_active_sessions", "sessions": [], "revoked": 0, "batches": 0, "drift_repaired": 0, "unrevocable": []})
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
        json!({"outcome": "no_active_sessions", "sessions": [], "revoked": 0, "batches": 0, "drift_repaired": 0, "unrevocable": []})
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
    // Global flags may follow the subcommand.
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

#[test]
fn policy_flags_are_validated_with_typed_kinds() {
    let get = |flags: &[&str]| {
        let mut args = vec!["--memory"];
        args.extend_from_slice(flags);
        args.extend(["get", "dev-1"]);
        run(&args)
    };
    for duration in ["1y", "0s", "1m1h", "1.5h", "30"] {
        get(&["--revoked-retention", duration]).assert_error("invalid_duration");
    }
    // Valid values reach the store (which then finds nothing).
    for duration in ["30d", "12h", "15m", "1s", "1h30m"] {
        get(&["--revoked-retention", duration]).assert_error("not_found");
    }
    get(&["--max-active-sessions", "0"]).assert_error("out_of_range");
    get(&["--batch-size", "0"]).assert_error("out_of_range");
    get(&["--batch-size", "1001"]).assert_error("out_of_range");
    get(&["--batch-size", "1000"]).assert_error("not_found");
    get(&["--on-limit", "revoke-oldest"]).assert_error("usage");
    assert_eq!(get(&["--on-limit", "later"]).code, Some(2));
    assert_eq!(get(&["--layout", "sideways"]).code, Some(2));
    get(&["--wait-replicas", "1"]).assert_error("usage");
    // The environment in the same style.
    for (var, value, kind) in [
        ("AUTHSESSION_REVOKED_RETENTION", "soon", "invalid_duration"),
        ("AUTHSESSION_MAX_ACTIVE_SESSIONS", "0", "out_of_range"),
        ("AUTHSESSION_BATCH_SIZE", "5000", "out_of_range"),
        ("AUTHSESSION_ON_LIMIT", "reject", "usage"),
        ("AUTHSESSION_REVOKED_RETENTION", "2d12h", "not_found"),
    ] {
        run_env(&["--memory", "get", "dev-1"], &[(var, value)]).assert_error(kind);
    }
}

#[test]
fn cluster_nodes_select_the_cluster_store() {
    // Nothing listens there: the cluster store's connect error, naming the
    // flag.
    let out = run(&["--cluster-node", "redis://127.0.0.1:7000", "get", "dev-1"]);
    out.assert_error("backend");
    assert!(out.stderr.contains("--cluster-node"), "{out:?}");
    run(&[
        "--cluster-node",
        "redis://127.0.0.1:7000",
        "--cluster-node",
        "redis://127.0.0.1:7001",
        "count",
        "u",
    ])
    .assert_error("backend");
    run_env(
        &["count", "u"],
        &[(
            "AUTHSESSION_CLUSTER_NODES",
            "redis://127.0.0.1:7000,redis://127.0.0.1:7001",
        )],
    )
    .assert_error("backend");
    for args in [
        &[
            "--cluster-node",
            "redis://a:1",
            "--redis-url",
            "redis://b:2",
            "get",
            "d",
        ][..],
        &["--cluster-node", "redis://a:1", "--memory", "get", "d"],
    ] {
        run(args).assert_error("usage");
    }
    // A cluster takes the tagged layout only.
    run(&[
        "--cluster-node",
        "redis://a:1",
        "--layout",
        "reference",
        "get",
        "d",
    ])
    .assert_error("usage");
    run(&[
        "--memory",
        "migrate",
        "--to-cluster-node",
        "redis://127.0.0.1:7000",
    ])
    .assert_error("backend");
    run(&[
        "--memory",
        "migrate",
        "--to-cluster-node",
        "redis://127.0.0.1:7000",
        "--to-layout",
        "reference",
    ])
    .assert_error("usage");
    assert_eq!(run(&["--memory", "migrate"]).code, Some(2));
}

#[test]
fn new_command_forms_on_an_empty_store() {
    assert_eq!(
        run(&["--memory", "list", "u", "--limit", "10"]).json(),
        json!({"sessions": [], "next_cursor": null})
    );
    assert_eq!(
        run(&["--memory", "list", "u", "--active"]).json(),
        json!({"sessions": [], "next_cursor": null})
    );
    run(&["--memory", "list", "u", "--limit", "0"]).assert_error("out_of_range");
    run(&["--memory", "list", "u", "--limit", "1001"]).assert_error("out_of_range");
    run(&["--memory", "list", "u", "--cursor", "not a cursor"]).assert_error("invalid_cursor");
    run(&["--memory", "list", "u", "--cursor", "AAAA"]).assert_error("invalid_cursor");
    run(&["--memory", "get", "d", "--user", "u"]).assert_error("not_found");
    run(&["--memory", "get", "d", "--user", ""]).assert_error("invalid_id");
    assert_eq!(
        run(&[
            "--memory",
            "revoke-all",
            "u",
            "--reason",
            "x",
            "--actor-type",
            "y",
            "--count",
        ])
        .json(),
        json!({"outcome": "no_active_sessions", "revoked": 0, "batches": 0, "drift_repaired": 0, "unrevocable": []})
    );
    // Nothing to sweep in an empty store.
    let swept = run(&["--memory", "--revoked-retention", "1d", "sweep"]).json();
    assert_eq!(swept["sessions_removed"], 0, "{swept}");
    assert_eq!(swept["retention_seconds"], 86400.0, "{swept}");
}

#[test]
fn create_reports_evictions_whenever_the_limit_may_evict() {
    let args = |limit: &[&str]| {
        let mut all = vec!["--memory"];
        all.extend_from_slice(limit);
        all.extend([
            "create",
            "--id",
            "d",
            "--user",
            "u",
            "--public-key",
            KEY,
            "--created-at",
            "2026-11-27T10:00:00Z",
        ]);
        run(&all).json()
    };
    let bare = args(&[]);
    assert_eq!(bare["id"], "d");
    assert_eq!(args(&["--max-active-sessions", "1"]), bare);
    assert_eq!(
        args(&["--max-active-sessions", "1", "--on-limit", "revoke-oldest"]),
        json!({"session": bare, "evicted": []})
    );
}

#[test]
fn verbose_prints_the_operation_span_and_no_key_material() {
    let out = run(&[
        "--memory",
        "-v",
        "create",
        "--id",
        "dev-1",
        "--user",
        "user-1",
        "--public-key",
        KEY,
    ]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stderr.contains("authsession.create{"), "{out:?}");
    assert!(out.stderr.contains(r#"db.system.name="memory""#), "{out:?}");
    assert!(out.stderr.contains(r#"outcome="ok""#), "{out:?}");
    assert!(!out.stderr.contains(KEY), "{out:?}");
    // Without -v (and RUST_LOG) stderr stays empty.
    let quiet = create("dev-1", "user-1", KEY, "2026-11-27T10:00:00Z");
    assert_eq!(quiet.stderr, "", "{quiet:?}");
}

#[test]
fn bench_churn_and_reference_workloads_on_memory() {
    let churn = bench(
        "churn",
        &[
            "--users",
            "20",
            "--sessions-per-user",
            "3",
            "--max-active-sessions",
            "2",
            "--on-limit",
            "revoke-oldest",
            "--revoked-retention",
            "1s",
        ],
    );
    // The preload stops at the limit; nothing to measure in memory.
    assert_eq!(churn["preloaded_sessions"], 40, "{churn}");
    assert!(
        churn["outcomes"]["created"].as_u64().unwrap() > 0,
        "{churn}"
    );
    assert!(churn.get("keys_start").is_none(), "{churn}");
    // A reject limit is an expected answer, not an error.
    let rejecting = bench(
        "churn",
        &[
            "--users",
            "2",
            "--sessions-per-user",
            "1",
            "--max-active-sessions",
            "1",
        ],
    );
    assert!(
        rejecting["outcomes"]["rejected_by_limit"].as_u64().unwrap() > 0,
        "{rejecting}"
    );
    // The tagged layout runs everything, check included.
    assert!(run(&["--memory", "--layout", "tagged", "demo"]).code == Some(0));
    let check = run(&["--memory", "--layout", "tagged", "check"]).json();
    assert_eq!(check["problems"], json!([]), "{check}");
    let contention = run(&[
        "--memory",
        "--layout",
        "tagged",
        "bench",
        "--op",
        "contention",
        "--duration",
        "0.1",
    ])
    .json();
    assert_eq!(contention["invariants"]["consistent"], true, "{contention}");
    // The Go adapter's command sequences need a Redis server.
    run(&[
        "--memory",
        "bench",
        "--op",
        "revoke_all_reference",
        "--duration",
        "0.1",
    ])
    .assert_error("usage");
}
