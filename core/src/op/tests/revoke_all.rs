//! `revoke all` through the reference loop: every session that existed at
//! the start, concurrent changes caught by the plan, batches, a crash
//! part-way. (The fail-safe cases live beside the operation.)

use super::*;

#[test]
fn revoke_all_revokes_every_session_that_existed_at_the_start() {
    for keys in spaces() {
        let mut kv = MemoryKv::new();
        create(&mut kv, &keys, &session("old", "user-1", t(0, 0)));
        create(&mut kv, &keys, &session("same", "user-1", t(3600, 500)));
        create(&mut kv, &keys, &session("exact", "user-1", t(3600, 400)));
        create(&mut kv, &keys, &session("later", "user-1", t(7200, 0)));
        create(&mut kv, &keys, &session("other", "user-2", t(0, 0)));
        let input = revoke_all_input("user-1", t(3600, 400));
        let report = revoke_all(&mut kv, &keys, Policy::default(), input.clone());
        // Existence decides, not clocks: "same" (100 ns after the instant)
        // and "later" are revoked too, at their own creation times.
        assert_eq!(ids(&report.revoked), ["later", "same", "exact", "old"]);
        assert_eq!((report.count, report.batches), (4, 1));
        for s in &report.revoked {
            let at = s.revocation().unwrap().at();
            assert_eq!(at, s.created_at().max(t(3600, 400)), "{}", s.id());
        }
        let outcome = report.into_outcome();
        assert!(outcome.is_consistent_for(&input.user_id));
        assert!(members(&kv, &keys.user_active_sessions_key(&user("user-1"))).is_empty());
        assert_eq!(
            kv.key_type(&keys.user_revoked_sessions_key(&user("user-1"))),
            None
        );
        assert_eq!(
            kv.index_len(&keys.user_active_sessions_key(&user("user-2"))),
            1
        );
        for s in outcome.sessions() {
            assert_eq!(
                kv.get(&keys.record_key(s.user_id(), s.id())),
                Some(codec::encode(s).as_slice())
            );
        }

        // Nothing left at or before the instant: nothing applied.
        let before = kv.clone();
        let (none, trace) = run_traced(
            &mut kv,
            RevokeAll::new(&keys, Policy::default(), input, true),
        );
        assert_eq!(
            none.unwrap().into_outcome(),
            RevokeUserSessionsOutcome::NoActiveSessions
        );
        assert_eq!(trace.applies, 0);
        assert_eq!(kv, before);
    }
}

#[test]
fn revoke_all_plan_detects_a_concurrent_create_in_range() {
    let keys = KeySpace::default();
    for (late, expect_retry) in [(t(9000, 0), false), (t(1800, 0), true)] {
        let mut kv = MemoryKv::new();
        create(&mut kv, &keys, &session("a", "user-1", t(0, 0)));
        let input = revoke_all_input("user-1", t(3600, 0));
        let mut reads = 0;
        let mut trace = Trace::default();
        let report = run_with(
            &mut kv,
            RevokeAll::new(&keys, Policy::default(), input, true),
            ATTEMPTS,
            |kv, at| match at {
                Between::Read => {
                    reads += 1;
                    trace.reads += 1;
                    if reads == 2 {
                        // Between the record read and the apply.
                        create(kv, &KeySpace::default(), &session("b", "user-1", late));
                    }
                }
                Between::Apply => trace.applies += 1,
            },
        )
        .unwrap();
        if expect_retry {
            // Created before the instant: it must be revoked too, so the
            // (last) batch is read again.
            assert_eq!(ids(&report.revoked), ["b", "a"]);
            assert_eq!(trace.applies, 2);
        } else {
            // A session created later does not disturb the plan.
            assert_eq!(ids(&report.revoked), ["a"]);
            assert_eq!(trace.applies, 1);
            assert_eq!(
                members(&kv, &keys.user_active_sessions_key(&user("user-1"))),
                ["b"]
            );
        }
    }
}

#[test]
fn revoke_all_plan_detects_a_later_session_swapped_for_an_earlier_one() {
    // Between the read and the apply of the last batch, a session created
    // just after the instant (same microsecond score, so in range) is
    // revoked and one created before the instant appears: the range holds
    // as many members as were read, but not the same ones.
    let keys = KeySpace::default();
    let mut kv = MemoryKv::new();
    create(&mut kv, &keys, &session("a", "user-1", t(0, 0)));
    create(&mut kv, &keys, &session("same", "user-1", t(3600, 500)));
    let mut reads = 0;
    let report = run_with(
        &mut kv,
        RevokeAll::new(
            &keys,
            Policy::default(),
            revoke_all_input("user-1", t(3600, 400)),
            true,
        ),
        ATTEMPTS,
        |kv, at| {
            if at == Between::Read {
                reads += 1;
                if reads == 2 {
                    revoke(kv, &KeySpace::default(), "same", t(3600, 600));
                    create(
                        kv,
                        &KeySpace::default(),
                        &session("b", "user-1", t(1800, 0)),
                    );
                }
            }
        },
    )
    .unwrap();
    assert_eq!(ids(&report.revoked), ["b", "a"]);
    assert!(members(&kv, &keys.user_active_sessions_key(&user("user-1"))).is_empty());
}

#[test]
fn revoke_all_confirms_a_revoked_member_of_the_active_index() {
    let keys = KeySpace::default();
    let mut kv = MemoryKv::new();
    let s = session("a", "user-1", t(0, 0));
    create(&mut kv, &keys, &s);
    let active_key = keys.user_active_sessions_key(s.user_id());
    let input = revoke_all_input("user-1", t(3600, 0));
    // A concurrent revoke lands between the index read and the record
    // read: a race, not drift.
    let mut reads = 0;
    let report = run_with(
        &mut kv,
        RevokeAll::new(&keys, Policy::default(), input.clone(), true),
        ATTEMPTS,
        |kv, at| {
            if at == Between::Read {
                reads += 1;
                if reads == 2 {
                    revoke(kv, &KeySpace::default(), "a", t(1800, 0));
                }
            }
        },
    )
    .unwrap();
    assert_eq!(report.drift_repaired, 0);
    assert_eq!(
        report.into_outcome(),
        RevokeUserSessionsOutcome::NoActiveSessions
    );

    // Planted for real: the revoked record stays as it is, its stray
    // active-index entry goes, and the repair is counted.
    kv.index_add_raw(
        &active_key,
        b"a".to_vec(),
        IndexScore::of(s.created_at()).as_f64(),
    );
    let record_key = keys.reference_record_key(s.id());
    let record = kv.get(&record_key).unwrap().to_vec();
    let report = run(
        &mut kv,
        RevokeAll::new(&keys, Policy::default(), input, true),
        ATTEMPTS,
    )
    .unwrap();
    assert_eq!((report.count, report.drift_repaired), (0, 1));
    assert!(report.unrevocable.is_empty());
    assert_eq!(kv.get(&record_key), Some(record.as_slice()));
    assert_eq!(kv.key_type(&active_key), None);
}

#[test]
fn revoke_all_in_batches() {
    for keys in spaces() {
        let mut kv = MemoryKv::new();
        ten_sessions(&mut kv, &keys);
        // In the instant's microsecond, before and after it.
        create(
            &mut kv,
            &keys,
            &session("edge-before", "user-1", t(50, 100)),
        );
        create(&mut kv, &keys, &session("edge-after", "user-1", t(50, 900)));
        let input = revoke_all_input("user-1", t(50, 500));
        let (report, trace) =
            run_traced(&mut kv, RevokeAll::new(&keys, batches_of(3), input, true));
        let report = report.unwrap();
        assert_eq!(report.count, 13);
        assert_eq!(report.batches, 5);
        assert_eq!(trace.applies, 5);
        assert_eq!(
            ids(&report.revoked),
            [
                "later",
                "edge-after",
                "edge-before",
                "s9",
                "s8",
                "s7",
                "s6",
                "s5",
                "s4",
                "s3",
                "s2",
                "s1",
                "s0"
            ]
        );
        assert!(members(&kv, &keys.user_active_sessions_key(&user("user-1"))).is_empty());
    }
}

#[test]
fn revoke_all_revokes_a_batch_of_sessions_created_just_after_the_instant() {
    // One microsecond holds sessions created before and after the instant;
    // in index order (id bytes) the "after" ones fill a whole batch.
    let keys = KeySpace::default();
    let mut kv = MemoryKv::new();
    for (id_text, nanos) in [
        ("a", 900),
        ("b", 100),
        ("c", 900),
        ("d", 900),
        ("e", 100),
        ("f", 900),
    ] {
        create(&mut kv, &keys, &session(id_text, "user-1", t(10, nanos)));
    }
    let report = revoke_all(
        &mut kv,
        &keys,
        batches_of(3),
        revoke_all_input("user-1", t(10, 500)),
    );
    assert_eq!(ids(&report.revoked), ["a", "c", "d", "f", "b", "e"]);
    for s in &report.revoked {
        assert_eq!(s.revocation().unwrap().at(), s.created_at().max(t(10, 500)));
    }
    assert!(members(&kv, &keys.user_active_sessions_key(&user("user-1"))).is_empty());
}

#[test]
fn revoke_all_sees_sessions_created_between_batches() {
    let keys = KeySpace::default();
    let mut kv = MemoryKv::new();
    ten_sessions(&mut kv, &keys);
    let mut applies = 0;
    let report = run_with(
        &mut kv,
        RevokeAll::new(
            &keys,
            batches_of(3),
            revoke_all_input("user-1", t(50, 0)),
            true,
        ),
        ATTEMPTS,
        |kv, at| {
            if at == Between::Apply {
                applies += 1;
                if applies == 1 {
                    // Backdated, older than everything already revoked.
                    create(
                        kv,
                        &KeySpace::default(),
                        &session("backdated", "user-1", t(-5, 0)),
                    );
                }
            }
        },
    )
    .unwrap();
    assert_eq!(report.count, 12);
    assert!(ids(&report.revoked).contains(&"backdated"));
    assert!(members(&kv, &keys.user_active_sessions_key(&user("user-1"))).is_empty());
}

#[test]
fn revoke_all_retries_only_the_batch_whose_plan_was_violated() {
    let keys = KeySpace::default();
    let mut kv = MemoryKv::new();
    ten_sessions(&mut kv, &keys);
    let mut reads = 0;
    let mut applies = 0;
    let mut after_first = None;
    let report = run_with(
        &mut kv,
        RevokeAll::new(
            &keys,
            batches_of(3),
            revoke_all_input("user-1", t(50, 0)),
            true,
        ),
        ATTEMPTS,
        |kv, at| match at {
            Between::Read => {
                reads += 1;
                // The second batch's record read (the first read also
                // takes the bounds): s4 is revoked elsewhere.
                if reads == 4 {
                    revoke(kv, &KeySpace::default(), "s4", t(20, 0));
                }
            }
            Between::Apply => {
                applies += 1;
                if applies == 1 {
                    after_first = Some(kv.clone());
                }
            }
        },
    )
    .unwrap();
    assert_eq!(report.count, 10, "s4 was revoked by the other client");
    assert_eq!(report.batches, 4);
    // 4 applied batches + the violated one.
    assert_eq!(applies, 5);
    // The first batch was not redone: its records are as it wrote them.
    let after_first = after_first.unwrap();
    for i in 0..3 {
        let key = keys.reference_record_key(&id(&format!("s{i}")));
        assert_eq!(kv.get(&key), after_first.get(&key));
    }
    let s4 = codec::decode(
        &id("s4"),
        kv.get(&keys.reference_record_key(&id("s4"))).unwrap(),
    )
    .unwrap();
    assert_eq!(s4.revocation().unwrap().at(), t(20, 0));
    assert!(members(&kv, &keys.user_active_sessions_key(&user("user-1"))).is_empty());
}

#[test]
fn revoke_all_resumes_after_a_crash_without_rewriting_revoked_sessions() {
    for keys in spaces() {
        let mut kv = MemoryKv::new();
        ten_sessions(&mut kv, &keys);
        let first = RevokeAll::new(
            &keys,
            batches_of(3),
            revoke_all_input("user-1", t(50, 0)),
            true,
        );
        assert!(run_until(&mut kv, first, 2).is_none(), "stopped part-way");
        // Every batch whole: 6 revoked, 4 + later active, indexes agree.
        let active = members(&kv, &keys.user_active_sessions_key(&user("user-1")));
        assert_eq!(active, ["s6", "s7", "s8", "s9", "later"]);
        for i in 0..6 {
            let s = id(&format!("s{i}"));
            let bytes = kv.get(&keys.record_key(&user("user-1"), &s)).unwrap();
            assert!(
                !codec::decode(&s, bytes).unwrap().is_active(),
                "s{i} revoked"
            );
        }
        let snapshot = kv.clone();

        // Called again (another revocation): finishes the rest only.
        let mut input = revoke_all_input("user-1", t(60, 0));
        input.revocation = revocation_by(t(60, 0), "compromised");
        let report = revoke_all(&mut kv, &keys, batches_of(3), input);
        assert_eq!(ids(&report.revoked), ["later", "s9", "s8", "s7", "s6"]);
        for i in 0..6 {
            let key = keys.record_key(&user("user-1"), &id(&format!("s{i}")));
            assert_eq!(kv.get(&key), snapshot.get(&key), "s{i} not rewritten");
        }
        for s in &report.revoked {
            assert_eq!(
                s.revocation().unwrap().reason_code().as_str(),
                "compromised"
            );
        }
    }
}

#[test]
fn revoke_all_count_form_keeps_no_sessions() {
    let keys = KeySpace::default();
    let mut kv = MemoryKv::new();
    ten_sessions(&mut kv, &keys);
    let report = run(
        &mut kv,
        RevokeAll::new(
            &keys,
            batches_of(4),
            revoke_all_input("user-1", t(50, 0)),
            false,
        ),
        ATTEMPTS,
    )
    .unwrap();
    assert!(report.revoked.is_empty());
    assert_eq!((report.count, report.batches), (11, 3));
    assert_eq!(
        run(&mut kv, Count::new(&keys, &user("user-1")), 1).unwrap(),
        0
    );
}
