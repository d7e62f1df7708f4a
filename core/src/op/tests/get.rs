//! `get` and `get for user`: not found, corruption, another user's session,
//! the owner read of the tagged layout and a remembered session.

use super::*;

#[test]
fn get_reports_not_found_and_corruption_with_the_key() {
    let keys = KeySpace::default();
    let mut kv = MemoryKv::new();
    let get = |kv: &mut MemoryKv| {
        run(
            kv,
            Get::new(&keys, Policy::default(), t(0, 0), id("dev-1")),
            1,
        )
    };
    let err = get(&mut kv).unwrap_err();
    assert_eq!(
        (err.kind(), err.key()),
        ("not_found", Some("authsession:session:ZGV2LTE"))
    );
    assert!(!err.is_corruption());

    kv.set_raw("authsession:session:ZGV2LTE", "{garbage");
    let err = get(&mut kv).unwrap_err();
    assert_eq!(
        (err.kind(), err.key()),
        ("corrupt_record", Some("authsession:session:ZGV2LTE"))
    );
    assert!(err.is_corruption());

    // A valid record of another id under this key is corruption too.
    let other = codec::encode(&session("dev-2", "user-1", t(0, 0)));
    kv.set_raw("authsession:session:ZGV2LTE", other);
    assert!(matches!(
        get(&mut kv).unwrap_err(),
        TransitionError::CorruptRecord {
            source: DecodeError::IdMismatch { .. },
            ..
        }
    ));

    // An index key where the record should be.
    kv.delete_raw("authsession:session:ZGV2LTE");
    kv.index_add_raw("authsession:session:ZGV2LTE", b"x".to_vec(), 1.0);
    assert_eq!(get(&mut kv).unwrap_err().kind(), "wrong_type");
}

#[test]
fn get_for_user_hides_another_users_session() {
    for keys in spaces() {
        let mut kv = MemoryKv::new();
        create(&mut kv, &keys, &session("dev-1", "user-1", t(0, 0)));
        let get_for = |kv: &mut MemoryKv, u: &str| {
            run(
                kv,
                Get::for_user(&keys, Policy::default(), t(0, 0), user(u), id("dev-1")),
                1,
            )
        };
        assert_eq!(get_for(&mut kv, "user-1").unwrap().id().as_str(), "dev-1");
        assert_eq!(get_for(&mut kv, "user-2").unwrap_err().kind(), "not_found");
    }
}

#[test]
fn get_in_the_tagged_layout_reads_the_owner_then_the_record() {
    let keys = KeySpace::default().in_layout(Layout::Tagged).unwrap();
    let mut kv = MemoryKv::new();
    let s = session("dev-1", "user-1", t(0, 0));
    create(&mut kv, &keys, &s);
    let (got, trace) = run_traced(
        &mut kv,
        Get::new(&keys, Policy::default(), t(0, 0), id("dev-1")),
    );
    assert_eq!(got.unwrap(), s);
    assert_eq!(
        trace,
        Trace {
            reads: 2,
            applies: 0
        }
    );

    let owner = keys.owner_key(s.id()).unwrap();
    // A dangling owner key (a crash between owner and record) is not found.
    let record = keys.record_key(s.user_id(), s.id());
    let mut dangling = kv.clone();
    dangling.delete_raw(&record);
    let err = run(
        &mut dangling,
        Get::new(&keys, Policy::default(), t(0, 0), id("dev-1")),
        1,
    )
    .unwrap_err();
    assert_eq!(err.kind(), "not_found");
    // An owner key that is not a user id is corruption.
    kv.set_raw(&owner, " bad ");
    let err = run(
        &mut kv,
        Get::new(&keys, Policy::default(), t(0, 0), id("dev-1")),
        1,
    )
    .unwrap_err();
    assert_eq!(
        (err.kind(), err.key()),
        ("corrupt_owner", Some(owner.as_str()))
    );
}

#[test]
fn get_with_a_known_owner_reads_the_record_at_once_and_the_owner_after_a_miss() {
    let keys = KeySpace::default().in_layout(Layout::Tagged).unwrap();
    let mut kv = MemoryKv::new();
    let s = session("dev-1", "user-1", t(0, 0));
    create(&mut kv, &keys, &s);
    let known = |owner: &str| {
        Get::new(&keys, Policy::default(), t(0, 0), id("dev-1")).with_known_owner(user(owner))
    };
    let (got, trace) = run_traced(&mut kv, known("user-1"));
    assert_eq!(got.unwrap(), s);
    assert_eq!(trace.reads, 1, "a remembered owner: the record only");

    // The id was removed and created again for another user: the miss
    // under the remembered owner reads the owner key, then the record.
    let mut moved = MemoryKv::new();
    let other = session("dev-1", "user-2", t(0, 0));
    create(&mut moved, &keys, &other);
    let (got, trace) = run_traced(&mut moved, known("user-1"));
    assert_eq!(got.unwrap(), other);
    assert_eq!(trace.reads, 3);

    // Gone altogether: not found at the owner key, as without the hint.
    let owner = keys.owner_key(s.id()).unwrap();
    let err = run(&mut MemoryKv::new(), known("user-1"), 1).unwrap_err();
    assert_eq!((err.kind(), err.key()), ("not_found", Some(owner.as_str())));

    // A record under the remembered owner that is not that owner's (or not
    // readable) is not trusted: the owner key decides.
    let mut planted = kv.clone();
    planted.set_raw(keys.record_key(&user("user-3"), s.id()), codec::encode(&s));
    let (got, trace) = run_traced(&mut planted, known("user-3"));
    assert_eq!(got.unwrap(), s);
    assert_eq!(trace.reads, 3);
    let mut garbage = kv.clone();
    garbage.set_raw(keys.record_key(s.user_id(), s.id()), "{garbage");
    let err = run(&mut garbage, known("user-1"), 1).unwrap_err();
    assert_eq!(err.kind(), "corrupt_record");

    // The hint means nothing in the reference layout.
    let reference = KeySpace::default();
    let mut kv = MemoryKv::new();
    create(&mut kv, &reference, &s);
    let get = Get::new(&reference, Policy::default(), t(0, 0), id("dev-1"))
        .with_known_owner(user("user-9"));
    let (got, trace) = run_traced(&mut kv, get);
    assert_eq!((got.unwrap(), trace.reads), (s, 1));
}

#[test]
fn get_with_a_remembered_session_applies_the_rules_without_a_read() {
    for keys in spaces() {
        let s = session("dev-1", "user-1", t(0, 0));
        let mut kv = MemoryKv::new();
        create(&mut kv, &keys, &s);
        let get = || {
            let op = Get::new(&keys, Policy::default(), t(0, 0), id("dev-1"));
            if keys.layout() == Layout::Tagged {
                op.with_known_owner(user("user-1"))
            } else {
                op
            }
        };
        assert_eq!(
            get().first_record_key(),
            Some(keys.record_key(s.user_id(), s.id()))
        );
        // Remembered: no read at all, even where the store now holds
        // nothing (the caller vouches the record is unchanged).
        let (got, trace) = run_traced(&mut MemoryKv::new(), get().with_remembered(s.clone()));
        assert_eq!((got.unwrap(), trace.reads), (s.clone(), 0));
        // Another user's session is not found for get_for_user.
        let for_user = Get::for_user(
            &keys,
            Policy::default(),
            t(0, 0),
            user("user-2"),
            id("dev-1"),
        )
        .with_remembered(s.clone());
        let (got, trace) = run_traced(&mut kv, for_user);
        assert_eq!((got.unwrap_err().kind(), trace.reads), ("not_found", 0));
        // A session of another id is ignored: the record is read.
        let other = session("dev-2", "user-1", t(0, 0));
        let (got, trace) = run_traced(&mut kv, get().with_remembered(other));
        assert_eq!((got.unwrap(), trace.reads), (s.clone(), 1));
        // Past its retention: read again, then removed and not found.
        let revoked = s.clone().revoked(revocation(t(10, 0))).unwrap();
        let mut expired = MemoryKv::new();
        create_under(&mut expired, &keys, retention(1), &revoked);
        let op = Get::new(&keys, retention(1), t(3600, 0), id("dev-1"));
        let op = if keys.layout() == Layout::Tagged {
            op.with_known_owner(user("user-1"))
        } else {
            op
        };
        let (got, trace) = run_traced(&mut expired, op.with_remembered(revoked));
        // The removal, then (tagged) its owner key's and a look that the
        // record is still gone.
        let tagged = usize::from(keys.layout() == Layout::Tagged);
        assert_eq!(
            (got.unwrap_err().kind(), trace.reads),
            ("not_found", 1 + tagged)
        );
        assert_eq!(trace.applies, 1 + tagged);
    }
    // Tagged: a remembered session that is not the known owner's is not
    // trusted.
    let keys = KeySpace::default().in_layout(Layout::Tagged).unwrap();
    let s = session("dev-1", "user-1", t(0, 0));
    let mut kv = MemoryKv::new();
    create(&mut kv, &keys, &s);
    let op = Get::new(&keys, Policy::default(), t(0, 0), id("dev-1"))
        .with_known_owner(user("user-1"))
        .with_remembered(session("dev-1", "user-2", t(0, 0)));
    let (got, trace) = run_traced(&mut kv, op);
    assert_eq!((got.unwrap(), trace.reads), (s, 1));
    // Without a known owner there is no first record key.
    assert_eq!(
        Get::new(&keys, Policy::default(), t(0, 0), id("dev-1")).first_record_key(),
        None
    );
}
