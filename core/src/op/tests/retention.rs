//! Retention: the revoked index exists for it, expired sessions answer as
//! gone and are removed lazily, by whoever sees them, in bounded batches.

use super::*;

/// "gone" revoked at 100 s, "kept" revoked at 200 s, "live" active; the
/// retention is one hour.
fn retained() -> (MemoryKv, KeySpace, Policy) {
    let keys = KeySpace::default();
    let mut kv = MemoryKv::new();
    let policy = retention(3600);
    create_under(&mut kv, &keys, policy, &session("gone", "user-1", t(0, 0)));
    create_under(&mut kv, &keys, policy, &session("kept", "user-1", t(1, 0)));
    create_under(&mut kv, &keys, policy, &session("live", "user-1", t(2, 0)));
    revoke_under(&mut kv, &keys, policy, "gone", t(100, 0));
    revoke_under(&mut kv, &keys, policy, "kept", t(200, 0));
    (kv, keys, policy)
}

/// One nanosecond past "gone"'s retention.
fn past_gone() -> Timestamp {
    t(3700, 1)
}

fn assert_gone_removed(kv: &MemoryKv, keys: &KeySpace) {
    let u = user("user-1");
    assert_eq!(kv.get(&keys.reference_record_key(&id("gone"))), None);
    assert_eq!(members(kv, &keys.user_sessions_key(&u)), ["kept", "live"]);
    assert_eq!(members(kv, &keys.user_revoked_sessions_key(&u)), ["kept"]);
    assert_eq!(members(kv, &keys.user_active_sessions_key(&u)), ["live"]);
}

/// The revoked index exists for retention alone: every way a session
/// becomes revoked (revoke, revoke all, an eviction, a create of a revoked
/// session) enters it under a retention and leaves it alone without one.
#[test]
fn the_revoked_index_is_kept_only_under_a_retention() {
    for keys in spaces() {
        for (policy, indexed) in [
            (limit(2, OnLimit::RevokeOldest), false),
            (
                Policy {
                    revoked_retention: Some(Duration::from_secs(3600)),
                    ..limit(2, OnLimit::RevokeOldest)
                },
                true,
            ),
        ] {
            let u = user("user-1");
            let mut kv = MemoryKv::new();
            for (i, name) in ["a", "b", "c", "d"].iter().enumerate() {
                let s = session(name, "user-1", t(i64::try_from(i).unwrap(), 0));
                run(&mut kv, Create::new(&keys, policy, t(10, 0), s), ATTEMPTS).unwrap();
            }
            // "a" and "b" evicted by the limit; "c" revoked; "d" by
            // revoke all; "e" created revoked.
            revoke_under(&mut kv, &keys, policy, "c", t(20, 0));
            revoke_all(&mut kv, &keys, policy, revoke_all_input("user-1", t(30, 0)));
            let e = session("e", "user-1", t(4, 0))
                .revoked(revocation(t(5, 0)))
                .unwrap();
            create_under(&mut kv, &keys, policy, &e);
            let revoked_index = keys.user_revoked_sessions_key(&u);
            if indexed {
                let mut found = members(&kv, &revoked_index);
                found.sort();
                assert_eq!(found, ["a", "b", "c", "d", "e"]);
            } else {
                assert_eq!(kv.key_type(&revoked_index), None);
            }
            assert_eq!(kv.index_len(&keys.user_active_sessions_key(&u)), 0);
            assert_eq!(kv.index_len(&keys.user_sessions_key(&u)), 5);
        }
    }
}

#[test]
fn retention_is_exclusive_at_the_instant() {
    let (mut kv, keys, policy) = retained();
    // revocation.at + retention == now: still there.
    let got = run(&mut kv, Get::new(&keys, policy, t(3700, 0), id("gone")), 1).unwrap();
    assert_eq!(got.id().as_str(), "gone");
    assert!(policy.is_expired(&got, past_gone()));
    assert!(!policy.is_expired(&got, t(3700, 0)));
    assert!(!Policy::default().is_expired(&got, t(999_999, 0)));
}

#[test]
fn retention_get_and_revoke_answer_not_found_and_remove() {
    let (kv0, keys, policy) = retained();
    let record_key = keys.reference_record_key(&id("gone"));
    for op in 0..3 {
        let mut kv = kv0.clone();
        let err = match op {
            0 => run(&mut kv, Get::new(&keys, policy, past_gone(), id("gone")), 1).unwrap_err(),
            1 => run(
                &mut kv,
                Get::for_user(&keys, policy, past_gone(), user("user-1"), id("gone")),
                1,
            )
            .unwrap_err(),
            _ => run(
                &mut kv,
                Revoke::new(
                    &keys,
                    policy,
                    past_gone(),
                    revoke_input("gone", past_gone()),
                ),
                1,
            )
            .unwrap_err(),
        };
        assert_eq!(
            (err.kind(), err.key()),
            ("not_found", Some(record_key.as_str()))
        );
        assert!(!err.is_corruption());
        assert_gone_removed(&kv, &keys);
        // Not expired: found as usual.
        assert_eq!(
            run(&mut kv, Get::new(&keys, policy, past_gone(), id("kept")), 1)
                .unwrap()
                .id()
                .as_str(),
            "kept"
        );
    }
}

#[test]
fn retention_list_and_pages_omit_and_remove() {
    let (kv0, keys, policy) = retained();
    let mut kv = kv0.clone();
    let listed = run(
        &mut kv,
        List::new(&keys, policy, past_gone(), user("user-1")),
        1,
    )
    .unwrap();
    assert_eq!(ids(&listed), ["live", "kept"]);
    assert_gone_removed(&kv, &keys);

    for limit in 1..=3 {
        let mut kv = kv0.clone();
        let walked = walk(
            &mut kv,
            &keys,
            policy,
            past_gone(),
            "user-1",
            limit,
            StatusFilter::All,
        );
        assert_eq!(ids(&walked), ["live", "kept"], "limit {limit}");
        assert_gone_removed(&kv, &keys);
    }
}

/// In the tagged layout every lazy removal (get, get for user, revoke,
/// list, a page) takes the session's owner key too, and leaves every other
/// owner key alone.
#[test]
fn retention_removes_the_owner_key_with_the_session_in_the_tagged_layout() {
    let keys = KeySpace::default().in_layout(Layout::Tagged).unwrap();
    let policy = retention(3600);
    let u = user("user-1");
    let owner = |name: &str| keys.owner_key(&id(name)).unwrap();
    for how in 0..5 {
        let mut kv = MemoryKv::new();
        for (name, at) in [("gone", 0), ("kept", 1), ("live", 2)] {
            create_under(&mut kv, &keys, policy, &session(name, "user-1", t(at, 0)));
        }
        revoke_under(&mut kv, &keys, policy, "gone", t(100, 0));
        revoke_under(&mut kv, &keys, policy, "kept", t(200, 0));
        assert!(kv.get(&owner("gone")).is_some());
        match how {
            0 => drop(run(
                &mut kv,
                Get::new(&keys, policy, past_gone(), id("gone")),
                1,
            )),
            1 => drop(run(
                &mut kv,
                Get::for_user(&keys, policy, past_gone(), u.clone(), id("gone")),
                1,
            )),
            2 => drop(run(
                &mut kv,
                Revoke::new(
                    &keys,
                    policy,
                    past_gone(),
                    revoke_input("gone", past_gone()),
                ),
                1,
            )),
            3 => drop(run(
                &mut kv,
                List::new(&keys, policy, past_gone(), u.clone()),
                1,
            )),
            _ => drop(walk(
                &mut kv,
                &keys,
                policy,
                past_gone(),
                "user-1",
                2,
                StatusFilter::All,
            )),
        }
        assert_eq!(kv.get(&keys.record_key(&u, &id("gone"))), None, "{how}");
        assert_eq!(
            kv.get(&owner("gone")),
            None,
            "{how}: the owner key went too"
        );
        for name in ["kept", "live"] {
            assert_eq!(kv.get(&owner(name)), Some(&b"user-1"[..]), "{how}");
        }
    }
}

#[test]
fn retention_list_removes_a_bounded_batch_per_call() {
    let keys = KeySpace::default();
    let u = user("user-1");
    let mut kv = MemoryKv::new();
    let policy = Policy {
        revoked_retention: Some(Duration::from_secs(60)),
        batch_size: BatchSize::new(10).unwrap(),
        ..Policy::default()
    };
    for i in 0..25 {
        let s = session(&format!("r{i:02}"), "user-1", t(i, 0))
            .revoked(revocation(t(100, 0)))
            .unwrap();
        create_under(&mut kv, &keys, policy, &s);
    }
    create(&mut kv, &keys, &session("live", "user-1", t(50, 0)));
    for left in [15, 5, 0] {
        let listed = run(&mut kv, List::new(&keys, policy, t(1000, 0), u.clone()), 1).unwrap();
        assert_eq!(ids(&listed), ["live"], "every expired session is omitted");
        assert_eq!(kv.index_len(&keys.user_revoked_sessions_key(&u)), left);
        assert_eq!(kv.index_len(&keys.user_sessions_key(&u)), left + 1);
    }
}

#[test]
fn retention_removal_by_someone_else_is_never_corruption() {
    let (mut kv, keys, policy) = retained();
    // Between the index read and the record read, another client removes
    // the expired session (its record and entries, atomically).
    let mut reads = 0;
    let listed = run_with(
        &mut kv,
        List::new(&keys, policy, past_gone(), user("user-1")),
        ATTEMPTS,
        |kv, at| {
            if at == Between::Read {
                reads += 1;
                if reads == 1 {
                    let err =
                        run(kv, Get::new(&keys, policy, past_gone(), id("gone")), 1).unwrap_err();
                    assert_eq!(err.kind(), "not_found");
                }
            }
        },
    )
    .unwrap();
    assert_eq!(ids(&listed), ["live", "kept"]);
    assert_gone_removed(&kv, &keys);

    // And between the record read and the removal plan.
    let (mut kv, keys, policy) = retained();
    let mut reads = 0;
    let got = run_with(
        &mut kv,
        Get::new(&keys, policy, past_gone(), id("gone")),
        ATTEMPTS,
        |kv, at| {
            if at == Between::Read {
                reads += 1;
                if reads == 1 {
                    run(kv, List::new(&keys, policy, past_gone(), user("user-1")), 1).unwrap();
                }
            }
        },
    );
    assert_eq!(got.unwrap_err().kind(), "not_found");
    assert_gone_removed(&kv, &keys);
}

#[test]
fn retention_create_removes_a_few_expired_sessions_via_the_revoked_index() {
    for keys in spaces() {
        let policy = retention(3600);
        let u = user("user-1");
        let mut kv = MemoryKv::new();
        for i in 0..20 {
            let s = session(&format!("r{i:02}"), "user-1", t(i, 0))
                .revoked(revocation(t(100 + i, 0)))
                .unwrap();
            create_under(&mut kv, &keys, policy, &s);
        }
        // Revoked exactly one retention before now: not expired.
        let edge = session("edge", "user-1", t(0, 0))
            .revoked(revocation(t(7200, 0)))
            .unwrap();
        create_under(&mut kv, &keys, policy, &edge);
        let now = t(10_800, 0);

        let created = run(
            &mut kv,
            Create::new(&keys, policy, now, session("n1", "user-1", now)),
            1,
        )
        .unwrap();
        assert!(created.evicted.is_empty());
        // The oldest revocations are gone, with their entries: 16 per
        // create, 4 in the tagged layout (each owner key costs a plan).
        let per_create = if keys.layout() == Layout::Tagged {
            4
        } else {
            16
        };
        let revoked = members(&kv, &keys.user_revoked_sessions_key(&u));
        let mut expect: Vec<String> = (per_create..20).map(|i| format!("r{i:02}")).collect();
        expect.push("edge".into());
        assert_eq!(revoked, expect);
        for i in 0..per_create {
            let gone = id(&format!("r{i:02}"));
            assert_eq!(kv.get(&keys.record_key(&u, &gone)), None);
            // Its owner key went with it.
            if let Some(owner) = keys.owner_key(&gone) {
                assert_eq!(kv.get(&owner), None);
            }
        }
        let all = members(&kv, &keys.user_sessions_key(&u));
        assert_eq!(all.len(), 20 - per_create + 1 + 1);
        // The next creates take the rest (the edge stays).
        let mut n = 1;
        while members(&kv, &keys.user_revoked_sessions_key(&u)).len() > 1 {
            n += 1;
            run(
                &mut kv,
                Create::new(&keys, policy, now, session(&format!("n{n}"), "user-1", now)),
                1,
            )
            .unwrap();
        }
        assert_eq!(n, 20_usize.div_ceil(per_create));
        assert_eq!(members(&kv, &keys.user_revoked_sessions_key(&u)), ["edge"]);
        let all = members(&kv, &keys.user_sessions_key(&u));
        assert_eq!(all.len(), n + 1);
        // Every remaining index entry has its record, and every owner key
        // its session.
        for member in all {
            assert!(kv.get(&keys.record_key(&u, &id(&member))).is_some());
        }
        if keys.layout() == Layout::Tagged {
            let owners = kv
                .keys()
                .filter(|k| k.starts_with(keys.prefix(KeyKind::Owner)))
                .count();
            assert_eq!(owners, n + 1);
        }
    }
}

#[test]
fn retention_create_retries_when_an_expired_session_is_removed_concurrently() {
    let (mut kv, keys, policy) = retained();
    let mut reads = 0;
    run_with(
        &mut kv,
        Create::new(
            &keys,
            policy,
            t(3800, 0),
            session("n", "user-1", t(3800, 0)),
        ),
        ATTEMPTS,
        |kv, at| {
            if at == Between::Read {
                reads += 1;
                if reads == 1 {
                    run(kv, Get::new(&keys, policy, t(3800, 0), id("gone")), 1).unwrap_err();
                }
            }
        },
    )
    .unwrap();
    assert!(
        reads >= 2,
        "the plan's revoked-index precondition failed once"
    );
    let u = user("user-1");
    assert_eq!(
        members(&kv, &keys.user_sessions_key(&u)),
        ["kept", "live", "n"]
    );
}

#[test]
fn retention_with_limit_together() {
    let keys = KeySpace::default();
    let policy = Policy {
        revoked_retention: Some(Duration::from_secs(60)),
        session_limit: SessionLimit::new(2, OnLimit::RevokeOldest),
        ..Policy::default()
    };
    let u = user("user-1");
    let mut kv = MemoryKv::new();
    // Churn: every create past the limit revokes the oldest; revoked ones
    // expire a minute later and are removed by later creates.
    for i in 0..50 {
        let now = t(i * 10, 0);
        run(
            &mut kv,
            Create::new(
                &keys,
                policy,
                now,
                session(&format!("s{i:02}"), "user-1", now),
            ),
            ATTEMPTS,
        )
        .unwrap();
        assert!(kv.index_len(&keys.user_active_sessions_key(&u)) <= 2);
        // Bounded: ≤ 2 active + the revoked within a minute (+ the one
        // just revoked in this microsecond's window).
        assert!(kv.index_len(&keys.user_sessions_key(&u)) <= 2 + 8, "{i}");
    }
    assert_eq!(
        members(&kv, &keys.user_active_sessions_key(&u)),
        ["s48", "s49"]
    );
}
