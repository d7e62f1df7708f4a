//! Every command of the `authsession` binary against a real six-node Redis
//! Cluster (three primaries, one replica each) through `--cluster-node`
//! seeds: the tagged layout, maintenance visiting every primary, `demo`,
//! `bench`, and `migrate` of Go-layout data from a standalone server.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

mod cli_support;

use authsession_tests::RedisCluster;
use cli_support::{run, RedisServer, Run};
use serde_json::{json, Value};

const KEY_A: &str = "6CNOOq9vU5hNuRjuSnPSuoYdvt6iZpSYfEDOihlBz8I=";

/// Runs the binary against the cluster (every seed given) under `prefix`.
fn on(cluster: &RedisCluster, prefix: &str, args: &[&str]) -> Run {
    let seeds = cluster.seed_urls();
    let mut all: Vec<&str> = Vec::new();
    for seed in &seeds {
        all.extend(["--cluster-node", seed.as_str()]);
    }
    all.extend(["--prefix", prefix]);
    all.extend_from_slice(args);
    run(&all)
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn every_command_runs_against_a_six_node_cluster() {
    let cluster = RedisCluster::start();
    let p = "cl:";
    for (id, user, at) in [
        ("d-1", "u-1", "2025-03-01T10:00:00Z"),
        ("d-2", "u-1", "2025-03-01T10:00:01.5+02:00"),
        ("d-3", "u-1", "2025-03-01T10:00:02Z"),
        ("e-1", "u-2", "2025-03-01T10:00:00Z"),
    ] {
        let created = on(
            &cluster,
            p,
            &[
                "create",
                "--id",
                id,
                "--user",
                user,
                "--public-key",
                KEY_A,
                "--created-at",
                at,
            ],
        )
        .json();
        assert_eq!(created["id"], id, "{created}");
    }
    // The same id under another user: the owner key refuses it.
    on(
        &cluster,
        p,
        &[
            "create",
            "--id",
            "d-1",
            "--user",
            "u-9",
            "--public-key",
            KEY_A,
        ],
    )
    .assert_error("conflict");
    assert_eq!(
        on(&cluster, p, &["get", "d-2"]).json()["created_at"],
        "2025-03-01T08:00:01.5Z"
    );
    assert_eq!(
        on(&cluster, p, &["get", "d-2", "--user", "u-1"]).json()["id"],
        "d-2"
    );
    on(&cluster, p, &["get", "d-2", "--user", "u-2"]).assert_error("not_found");
    assert_eq!(
        ids(&on(&cluster, p, &["list", "u-1"]).json()),
        ["d-3", "d-1", "d-2"]
    );
    let page = on(&cluster, p, &["list", "u-1", "--limit", "2"]).json();
    assert_eq!(ids(&page["sessions"]), ["d-3", "d-1"]);
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let rest = on(
        &cluster,
        p,
        &["list", "u-1", "--limit", "2", "--cursor", &cursor],
    )
    .json();
    assert_eq!(ids(&rest["sessions"]), ["d-2"]);
    assert_eq!(rest["next_cursor"], Value::Null);
    assert_eq!(on(&cluster, p, &["count", "u-1"]).json()["active"], 3);
    let revoked = on(
        &cluster,
        p,
        &[
            "revoke",
            "d-1",
            "--reason",
            "user_logout",
            "--actor-type",
            "user",
            "--at",
            "2025-03-02T00:00:00Z",
        ],
    )
    .json();
    assert_eq!(revoked["outcome"], "revoked");
    let all = on(
        &cluster,
        p,
        &[
            "revoke-all",
            "u-1",
            "--reason",
            "admin_revoke",
            "--actor-type",
            "admin",
            "--at",
            "2025-03-02T00:00:00Z",
            "--count",
        ],
    )
    .json();
    assert_eq!(all["revoked"], 2, "{all}");
    let keys = on(&cluster, p, &["keys", "--id", "d-1", "--user", "u-1"]).json();
    assert!(
        keys["session_key"].as_str().unwrap().contains("{dS0x}"),
        "{keys}"
    );
    // Maintenance visits every primary.
    let check = on(&cluster, p, &["check"]).json();
    assert_eq!(check["problems"], json!([]), "{check}");
    assert_eq!(check["records"], 4, "{check}");
    assert_eq!(
        on(&cluster, p, &["check", "--repair"]).json()["repaired"],
        0
    );
    let swept = on(&cluster, p, &["--revoked-retention", "1s", "sweep"]).json();
    assert_eq!(swept["sessions_removed"], 3, "{swept}");
    assert_eq!(
        ids(&on(&cluster, p, &["list", "u-1"]).json()),
        Vec::<String>::new()
    );
    // demo and bench run on the cluster too (fresh prefixes, purged).
    assert_eq!(on(&cluster, "demo:", &["demo"]).code, Some(0));
    let bench = on(
        &cluster,
        "bench:",
        &[
            "bench",
            "--op",
            "mixed",
            "--concurrency",
            "4",
            "--duration",
            "0.5",
            "--users",
            "20",
        ],
    )
    .json();
    assert!(bench["ops"].as_u64().unwrap() > 0, "{bench}");
    assert_eq!(bench["errors"], json!({}), "{bench}");

    // migrate: Go-layout data from a standalone server into the cluster.
    let server = RedisServer::start();
    let url = server.url();
    for (id, user) in [("m-1", "mu"), ("m-2", "mu"), ("m-3", "mv")] {
        let out = run(&[
            "--redis-url",
            &url,
            "--prefix",
            "mig:",
            "create",
            "--id",
            id,
            "--user",
            user,
            "--public-key",
            KEY_A,
        ]);
        assert_eq!(out.code, Some(0), "{out:?}");
    }
    let seeds = cluster.seed_urls();
    let mut args = vec!["--redis-url", url.as_str(), "--prefix", "mig:", "migrate"];
    for seed in &seeds {
        args.extend(["--to-cluster-node", seed.as_str()]);
    }
    let report = run(&args).json();
    assert_eq!(report["sessions"], 3, "{report}");
    assert_eq!(report["copied"], 3, "{report}");
    assert_eq!(report["differences"], json!([]), "{report}");
    assert_eq!(ids(&on(&cluster, "mig:", &["list", "mu"]).json()).len(), 2);
}
