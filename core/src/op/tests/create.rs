//! `create`: the plan of a new session — its record, both indexes and, in
//! the tagged layout, its owner key.

use super::*;

#[test]
fn create_plans_record_and_both_indexes() {
    let keys = KeySpace::default();
    let s = session("dev-1", "user-1", t(9, 123_456_789));
    let mut op = Create::new(&keys, Policy::default(), t(10, 0), s.clone());
    let Step::Apply(plan) = op.resume(Input::Start).unwrap() else {
        panic!("create applies at once without limit or retention")
    };
    let record_key = keys.record_key(s.user_id(), s.id());
    assert_eq!(record_key, "authsession:session:ZGV2LTE");
    assert_eq!(
        plan.preconditions().cloned().collect::<Vec<_>>(),
        [Precondition::Absent {
            key: record_key.clone()
        }]
    );
    assert_eq!(plan.on_violation(0), OnViolation::Conflict);
    let score = IndexScore::of(s.created_at());
    assert_eq!(
        plan.writes(),
        [
            Write::Set {
                key: record_key.clone(),
                value: codec::encode(&s)
            },
            Write::IndexAdd {
                key: keys.user_sessions_key(s.user_id()),
                score,
                member: "dev-1".into()
            },
            Write::IndexAdd {
                key: keys.user_active_sessions_key(s.user_id()),
                score,
                member: "dev-1".into()
            },
        ]
    );

    drop(op);
    let mut kv = MemoryKv::new();
    let created = run(
        &mut kv,
        Create::new(&keys, Policy::default(), t(10, 0), s.clone()),
        1,
    )
    .unwrap();
    assert_eq!(created.session, s);
    assert!(created.evicted.is_empty());
    let before = kv.clone();
    let err = run(
        &mut kv,
        Create::new(&keys, Policy::default(), t(10, 0), s.clone()),
        ATTEMPTS,
    )
    .unwrap_err();
    assert_eq!(
        (err.kind(), err.key()),
        ("conflict", Some(record_key.as_str()))
    );
    assert_eq!(kv, before, "a conflict writes nothing");
}

#[test]
fn create_in_both_layouts_and_the_owner_key() {
    for keys in spaces() {
        let mut kv = MemoryKv::new();
        let s = session("dev-1", "user-1", t(0, 0));
        create(&mut kv, &keys, &s);
        assert_eq!(
            kv.get(&keys.record_key(s.user_id(), s.id())),
            Some(codec::encode(&s).as_slice())
        );
        assert_eq!(
            members(&kv, &keys.user_sessions_key(s.user_id())),
            ["dev-1"]
        );
        assert_eq!(
            members(&kv, &keys.user_active_sessions_key(s.user_id())),
            ["dev-1"]
        );
        if let Some(owner) = keys.owner_key(s.id()) {
            assert_eq!(kv.get(&owner), Some(b"user-1".as_slice()));
            // The id belongs to user-1 across the cluster: user-2 conflicts
            // on the owner key and writes nothing under its own tag.
            let before = kv.clone();
            let other = session("dev-1", "user-2", t(1, 0));
            let err = run(
                &mut kv,
                Create::new(&keys, Policy::default(), t(1, 0), other),
                ATTEMPTS,
            )
            .unwrap_err();
            assert_eq!((err.kind(), err.key()), ("conflict", Some(owner.as_str())));
            assert_eq!(kv, before);
        }
        let got = run(
            &mut kv,
            Get::new(&keys, Policy::default(), t(1, 0), id("dev-1")),
            1,
        )
        .unwrap();
        assert_eq!(got, s);
    }
}

#[test]
fn creating_a_revoked_session_skips_the_active_index() {
    for keys in spaces() {
        let s = session("dev-1", "user-1", t(0, 0))
            .revoked(revocation(t(3600, 0)))
            .unwrap();
        let mut kv = MemoryKv::new();
        create(&mut kv, &keys, &s);
        let u = s.user_id();
        assert_eq!(kv.key_type(&keys.user_active_sessions_key(u)), None);
        assert_eq!(members(&kv, &keys.user_sessions_key(u)), ["dev-1"]);
        // No retention: no revoked index.
        assert_eq!(kv.key_type(&keys.user_revoked_sessions_key(u)), None);
        // Under a retention revoked sessions are indexed by revocation
        // time.
        let mut kv = MemoryKv::new();
        create_under(&mut kv, &keys, retention(3600), &s);
        assert_eq!(
            kv.index_range(&keys.user_revoked_sessions_key(u), None),
            [(b"dev-1".to_vec(), IndexScore::of(t(3600, 0)).as_f64())]
        );
    }
}
