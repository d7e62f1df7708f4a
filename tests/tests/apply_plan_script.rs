//! The generic plan-applying Lua script, run directly on a real server
//! with hand-encoded arguments (the encoding of its header; the driver's
//! encoder is unit-tested against the same encoding): every precondition
//! holding and failing, write order, atomicity.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use authsession_tests::{RawKv, RedisRaw, RedisServer};

const SCRIPT: &str = include_str!("../../driver/src/backend/apply_plan.lua");

async fn apply(raw: &RedisRaw, keys: &[&str], argv: &[&str]) -> i64 {
    let script = redis::Script::new(SCRIPT);
    let mut invocation = script.prepare_invoke();
    for key in keys {
        invocation.key(*key);
    }
    for arg in argv {
        invocation.arg(*arg);
    }
    let mut conn = raw.connection();
    invocation.invoke_async(&mut conn).await.unwrap()
}

async fn members(raw: &RedisRaw, key: &str) -> Vec<String> {
    raw.zrange(key).await.into_iter().map(|(m, _)| m).collect()
}

#[tokio::test]
async fn preconditions_hold_or_fail_by_position() {
    let server = RedisServer::start();
    let raw = server.raw().await;
    raw.set("v", b"old").await;
    for (m, score) in [("a", 1.0), ("b", 2.0), ("c", 3.0), ("late", 10.0)] {
        raw.zadd("z", m, score).await;
    }

    // Absent / ValueEquals / IndexRangeEquals all holding: writes happen.
    let keys = ["new", "v", "z"];
    let ok = apply(
        &raw,
        &keys,
        &[
            "3", "A", "1", "V", "2", "old", "R", "3", "3", "3", "c", "a", "b", "S", "1", "x",
        ],
    )
    .await;
    assert_eq!(ok, 0);
    assert_eq!(raw.get("new").await.as_deref(), Some(&b"x"[..]));

    // Each failing precondition is reported by its 1-based position, and
    // nothing is written.
    let cases: [(&[&str], i64); 7] = [
        (&["1", "A", "2"], 1),                             // v exists
        (&["2", "A", "1", "A", "2"], 1),                   // new exists now
        (&["1", "V", "2", "other"], 1),                    // different bytes
        (&["1", "V", "1", "y"], 1),                        // different bytes
        (&["1", "R", "3", "3", "3", "a", "b", "late"], 1), // same count, other member
        (&["1", "R", "3", "3", "2", "a", "b"], 1),         // a member missing from the read
        (&["1", "R", "3", "+inf", "3", "a", "b", "c"], 1), // unbounded: late counts
    ];
    for (argv, failed) in cases {
        let mut with_write = argv.to_vec();
        with_write.extend(["S", "2", "clobbered"]);
        assert_eq!(apply(&raw, &keys, &with_write).await, failed, "{argv:?}");
        assert_eq!(raw.get("v").await.as_deref(), Some(&b"old"[..]), "{argv:?}");
    }
    // The second of two preconditions failing is reported as 2.
    assert_eq!(
        apply(&raw, &keys, &["2", "V", "2", "old", "V", "2", "nope"]).await,
        2
    );
    // Missing key: ValueEquals fails, an empty range read holds.
    assert_eq!(apply(&raw, &["missing"], &["1", "V", "1", ""]).await, 1);
    assert_eq!(
        apply(&raw, &["missing"], &["1", "R", "1", "+inf", "0"]).await,
        0
    );
    assert_eq!(
        apply(
            &raw,
            &keys,
            &["1", "R", "3", "+inf", "4", "a", "b", "c", "late"]
        )
        .await,
        0
    );
}

#[tokio::test]
async fn writes_keep_plan_order_per_key() {
    let server = RedisServer::start();
    let raw = server.raw().await;
    // Revoke-all shape: record writes interleaved with removals from one
    // index; then add-after-remove and remove-after-add on one key.
    for m in ["m1", "m2", "m3"] {
        raw.zadd("act", m, 1.0).await;
    }
    let keys = ["r1", "act", "r2", "r3"];
    let argv = [
        "0", "S", "1", "one", "X", "2", "m1", "S", "3", "two", "X", "2", "m2", "Z", "2", "5", "m9",
        "X", "2", "m9", "X", "2", "m3", "Z", "2", "7", "m3", "S", "4", "three",
    ];
    assert_eq!(apply(&raw, &keys, &argv).await, 0);
    assert_eq!(raw.zrange("act").await, vec![("m3".to_owned(), 7.0)]);
    assert_eq!(raw.get("r3").await.as_deref(), Some(&b"three"[..]));

    // More removals than one unpack() may take.
    let many: Vec<String> = (0..2500).map(|i| format!("m{i:04}")).collect();
    for m in &many {
        raw.zadd("big", m, 1.0).await;
    }
    let mut argv = vec!["0".to_owned()];
    for m in &many {
        argv.extend(["X".to_owned(), "1".to_owned(), m.clone()]);
    }
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    assert_eq!(apply(&raw, &["big"], &argv).await, 0);
    assert!(members(&raw, "big").await.is_empty());
}

#[tokio::test]
async fn wrong_types_and_unknown_ops_write_nothing() {
    let server = RedisServer::start();
    let raw = server.raw().await;
    raw.set("not-a-zset", b"s").await;
    // A SET first, then a ZADD on a string: refused as -2 before any write.
    let result = apply(
        &raw,
        &["rec", "not-a-zset"],
        &["0", "S", "1", "x", "Z", "2", "1", "m"],
    )
    .await;
    assert_eq!(result, -2);
    assert_eq!(raw.get("rec").await, None);

    // A precondition on a key of the wrong type: -k, before any write.
    raw.zadd("a-zset", "m", 1.0).await;
    let keys = ["a-zset", "not-a-zset", "rec"];
    for (argv, expected) in [
        (&["1", "A", "1"][..], -1),
        (&["1", "V", "1", "x"][..], -1),
        (&["1", "R", "2", "+inf", "0"][..], -2),
        (&["2", "A", "3", "R", "2", "+inf", "0"][..], -2),
    ] {
        let mut with_write = argv.to_vec();
        with_write.extend(["S", "3", "written"]);
        assert_eq!(apply(&raw, &keys, &with_write).await, expected, "{argv:?}");
        assert_eq!(raw.get("rec").await, None, "{argv:?}");
    }

    let script = redis::Script::new(SCRIPT);
    let mut conn = raw.connection();
    let err = script
        .prepare_invoke()
        .key("rec")
        .arg("0")
        .arg("S")
        .arg("1")
        .arg("x")
        .arg("Q")
        .arg("1")
        .invoke_async::<i64>(&mut conn)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unknown write"), "{err}");
    assert_eq!(raw.get("rec").await, None);
}
