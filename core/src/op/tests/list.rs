//! `list`: order, anomalies confirmed before they are reported, and a
//! session removed between the index read and the records.

use super::*;

#[test]
fn list_is_newest_first_with_ties_by_id_bytes() {
    for keys in spaces() {
        let mut kv = MemoryKv::new();
        for (id_text, created) in [
            ("b", t(9, 0)),
            ("a", t(9, 0)),
            ("c", t(10, 0)),
            ("d", t(9, 100)),
            ("é", t(9, 0)),
            ("Z", t(9, 0)),
        ] {
            create(&mut kv, &keys, &session(id_text, "user-1", created));
        }
        create(&mut kv, &keys, &session("x", "user-2", t(99, 0)));
        let list = run(
            &mut kv,
            List::new(&keys, Policy::default(), t(0, 0), user("user-1")),
            1,
        )
        .unwrap();
        assert_eq!(ids(&list), ["c", "d", "Z", "a", "b", "é"]);
    }
}

#[test]
fn list_anomalies_need_confirmation_and_corruption_does_not() {
    let keys = KeySpace::default();
    let u = user("user-1");
    let index = keys.user_sessions_key(&u);
    let list = || {
        List::new(
            &KeySpace::default(),
            Policy::default(),
            t(0, 0),
            user("user-1"),
        )
    };
    let mut kv = MemoryKv::new();
    create(&mut kv, &keys, &session("dev-1", "user-1", t(0, 0)));
    create(&mut kv, &keys, &session("dev-9", "user-9", t(0, 0)));

    // Dangling member: confirmed on the unchanged state (a plan with no
    // writes), then reported.
    kv.index_add_raw(&index, b"ghost".to_vec(), 1.0);
    let before = kv.clone();
    let (result, trace) = run_traced(&mut kv, list());
    let err = result.unwrap_err();
    assert_eq!(err.kind(), "dangling_index_member");
    assert_eq!(err.key(), Some(index.as_str()));
    assert!(err.is_corruption());
    assert_eq!(
        trace,
        Trace {
            reads: 2,
            applies: 1
        }
    );
    assert_eq!(kv, before, "the confirmation writes nothing");

    // …but a concurrent change (the ghost's record appears between the
    // record read and the confirmation) is a retry, not an error.
    let mut reads = 0;
    let listed = run_with(&mut kv, list(), ATTEMPTS, |kv, at| {
        if at == Between::Read {
            reads += 1;
            if reads == 2 {
                kv.set_raw(
                    KeySpace::default().reference_record_key(&id("ghost")),
                    codec::encode(&session("ghost", "user-1", t(0, 0))),
                );
            }
        }
    })
    .unwrap();
    assert_eq!(ids(&listed), ["dev-1", "ghost"]);
    assert_eq!(reads, 4, "read again after the violated confirmation");

    // Foreign member.
    kv.index_add_raw(&index, b"dev-9".to_vec(), 1.0);
    let err = run(&mut kv, list(), ATTEMPTS).unwrap_err();
    assert!(
        matches!(&err, TransitionError::ForeignIndexMember { owner, .. } if owner == "user-9"),
        "{err:?}"
    );

    // Corrupt record and invalid member: errors straight away, no confirm.
    let mut kv2 = MemoryKv::new();
    kv2.index_add_raw(&index, b"dev-1".to_vec(), 1.0);
    kv2.set_raw(keys.reference_record_key(&id("dev-1")), "{}");
    let (result, trace) = run_traced(&mut kv2, list());
    assert_eq!(result.unwrap_err().kind(), "corrupt_record");
    assert_eq!(trace.applies, 0);
    let mut kv3 = MemoryKv::new();
    kv3.index_add_raw(&index, b" bad".to_vec(), 1.0);
    assert_eq!(
        run(&mut kv3, list(), 1).unwrap_err().kind(),
        "invalid_index_member"
    );
    let mut kv4 = MemoryKv::new();
    kv4.index_add_raw(&index, vec![0xff, 0xfe], 1.0);
    assert_eq!(
        run(&mut kv4, list(), 1).unwrap_err().kind(),
        "invalid_index_member"
    );
}

#[test]
fn list_retries_a_session_removed_between_index_and_records() {
    let keys = KeySpace::default();
    let mut kv = MemoryKv::new();
    create(&mut kv, &keys, &session("a", "user-1", t(0, 0)));
    create(&mut kv, &keys, &session("b", "user-1", t(1, 0)));
    let mut reads = 0;
    let list = List::new(&keys, Policy::default(), t(0, 0), user("user-1"));
    let listed = run_with(&mut kv, list, ATTEMPTS, |kv, at| {
        if at == Between::Read {
            reads += 1;
            if reads == 1 {
                // After the index read: "a" disappears with its entries
                // (as retention removes it).
                kv.delete_raw(&keys.reference_record_key(&id("a")));
                kv.apply(&Plan::new(
                    Vec::new(),
                    vec![
                        Write::IndexRemove {
                            key: keys.user_sessions_key(&user("user-1")),
                            member: b"a".to_vec(),
                        },
                        Write::IndexRemove {
                            key: keys.user_active_sessions_key(&user("user-1")),
                            member: b"a".to_vec(),
                        },
                    ],
                    OnViolation::Retry,
                ));
            }
        }
    })
    .unwrap();
    assert_eq!(ids(&listed), ["b"]);
    assert!(reads >= 4, "read again after the confirmation failed");
}
