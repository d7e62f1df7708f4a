//! `authsession watch` against a real server: the current state, then the
//! revoke another process makes, with no GET reaching the server while
//! nothing changes; `--timeout` ends it with kind `timeout`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs
)]

mod cli_support;

use std::io::{BufRead as _, BufReader};
use std::process::Stdio;

use cli_support::{client, cmd, run, RedisServer};
use serde_json::Value;

const KEY_A: &str = "6CNOOq9vU5hNuRjuSnPSuoYdvt6iZpSYfEDOihlBz8I=";

fn get_calls(conn: &mut redis::Connection) -> u64 {
    let info: String = redis::cmd("INFO").arg("commandstats").query(conn).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_get:calls="))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

#[test]
fn watch_reports_a_revoke_by_another_process_without_polling() {
    let server = RedisServer::start();
    let url = server.url();
    let base = ["--redis-url", url.as_str(), "--prefix", "watch:"];
    let with = |args: &[&str]| {
        let mut all = base.to_vec();
        all.extend_from_slice(args);
        all.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()
    };
    let created = run(&with(&[
        "create",
        "--id",
        "w1",
        "--user",
        "u1",
        "--public-key",
        KEY_A,
    ])
    .iter()
    .map(String::as_str)
    .collect::<Vec<_>>());
    assert!(created.code == Some(0), "{created:?}");

    let args = with(&["watch", "w1", "gone", "--timeout", "60s"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut child = cmd(&args).stdout(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = || -> Value { serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap() };
    let first = next();
    assert_eq!(
        (first["id"].as_str(), first["status"].as_str()),
        (Some("w1"), Some("active"))
    );
    let second = next();
    assert_eq!(second["status"], "not_found");
    assert!(second["session"].is_null());

    // Nothing changes: whatever the server runs meanwhile, no GET.
    let mut conn = client(&server);
    let before = get_calls(&mut conn);
    for _ in 0..500 {
        let _: String = redis::cmd("PING").query(&mut conn).unwrap();
    }
    let _: () = redis::cmd("SET")
        .arg("unrelated")
        .arg("x")
        .query(&mut conn)
        .unwrap();
    assert_eq!(get_calls(&mut conn), before, "the watcher polled");

    // Another process revokes it.
    let revoke = with(&["revoke", "w1", "--reason", "logout", "--actor-type", "user"]);
    let revoked = run(&revoke.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(revoked.code == Some(0), "{revoked:?}");
    let third = next();
    assert_eq!(
        (third["id"].as_str(), third["status"].as_str()),
        (Some("w1"), Some("revoked"))
    );
    assert_eq!(third["session"]["revocation"]["reason_code"], "logout");
    assert!(child.wait().unwrap().success());
    // Over the whole watch: the revoke's own GET and its script's guard,
    // then one re-read of each watched id after the one change, and
    // nothing else.
    assert_eq!(get_calls(&mut conn), before + 4);
}

#[test]
fn watch_times_out_with_its_kind() {
    let server = RedisServer::start();
    let url = server.url();
    let created = run(&[
        "--redis-url",
        &url,
        "create",
        "--id",
        "w2",
        "--user",
        "u1",
        "--public-key",
        KEY_A,
    ]);
    assert!(created.code == Some(0), "{created:?}");
    let out = run(&["--redis-url", &url, "watch", "w2", "--timeout", "1s"]);
    out.assert_error("timeout");
    // The current state was printed before giving up.
    let first: Value = serde_json::from_str(out.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(first["status"], "active", "{out:?}");
}
