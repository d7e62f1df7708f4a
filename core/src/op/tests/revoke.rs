//! `revoke`: its outcomes, the creation instant, and a record that changes
//! between the read and the apply.

use super::*;

#[test]
fn revoke_outcomes() {
    for keys in spaces() {
        let mut kv = MemoryKv::new();
        let s = session("dev-1", "user-1", t(9, 0));
        create(&mut kv, &keys, &s);
        let key = keys.record_key(s.user_id(), s.id());
        let active_key = keys.user_active_sessions_key(s.user_id());
        let revoke_op = |input| Revoke::new(&keys, Policy::default(), t(0, 0), input);

        let err = run(&mut kv, revoke_op(revoke_input("dev-2", t(10, 0))), 1).unwrap_err();
        assert_eq!(err.kind(), "not_found");

        let before = kv.clone();
        let early = run(
            &mut kv,
            revoke_op(revoke_input("dev-1", t(8, 999_999_999))),
            1,
        )
        .unwrap_err();
        assert_eq!(
            early,
            TransitionError::Invalid(ValidationError::RevokedBeforeCreated)
        );
        assert_eq!(early.kind(), "revoked_before_created");
        assert_eq!(kv, before, "an invalid revocation writes nothing");

        // The plan is guarded by the record bytes read.
        let mut op = revoke_op(revoke_input("dev-1", t(3600, 0)));
        let mut step = op.resume(Input::Start).unwrap();
        let plan = loop {
            match step {
                Step::Read(reads) => step = op.resume(Input::Replies(kv.read_all(&reads))).unwrap(),
                Step::Apply(plan) => break plan,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(
            plan.preconditions().cloned().collect::<Vec<_>>(),
            [Precondition::ValueEquals {
                key: key.clone(),
                value: kv.get(&key).unwrap().to_vec()
            }]
        );

        let (outcome, trace) = run_traced(&mut kv, revoke_op(revoke_input("dev-1", t(3600, 0))));
        let RevokeSessionOutcome::Revoked(revoked) = outcome.unwrap() else {
            panic!("revoked")
        };
        assert_eq!(trace.applies, 1);
        assert_eq!(kv.get(&key), Some(codec::encode(&revoked).as_slice()));
        assert_eq!(kv.index_len(&active_key), 0);
        assert_eq!(kv.index_len(&keys.user_sessions_key(s.user_id())), 1);
        // No retention: no revoked index (see
        // `the_revoked_index_is_kept_only_under_a_retention`).
        assert_eq!(
            kv.key_type(&keys.user_revoked_sessions_key(s.user_id())),
            None
        );

        // The stale plan computed before does not apply twice.
        assert_eq!(kv.apply(&plan), Applied::Violated { index: 0 });
        assert_eq!(plan.on_violation(0), OnViolation::Retry);

        let before = kv.clone();
        let (again, trace) = run_traced(&mut kv, revoke_op(revoke_input("dev-1", t(7200, 0))));
        assert_eq!(
            again.unwrap(),
            RevokeSessionOutcome::AlreadyRevoked(revoked.clone())
        );
        assert_eq!(trace.applies, 0, "already revoked: nothing to apply");
        assert_eq!(kv, before);
    }
}

#[test]
fn revoke_at_the_creation_instant_is_valid() {
    let keys = KeySpace::default();
    let mut kv = MemoryKv::new();
    create(&mut kv, &keys, &session("dev-1", "user-1", t(9, 0)));
    let op = Revoke::new(
        &keys,
        Policy::default(),
        t(9, 0),
        revoke_input("dev-1", t(9, 0)),
    );
    assert!(matches!(
        run(&mut kv, op, 1).unwrap(),
        RevokeSessionOutcome::Revoked(_)
    ));
}

#[test]
fn revoke_retries_when_the_record_changes_between_read_and_apply() {
    let keys = KeySpace::default();
    let mut kv = MemoryKv::new();
    create(&mut kv, &keys, &session("dev-1", "user-1", t(0, 0)));
    let mut injected = false;
    let op = Revoke::new(
        &keys,
        Policy::default(),
        t(0, 0),
        revoke_input("dev-1", t(20, 0)),
    );
    let outcome = run_with(&mut kv, op, ATTEMPTS, |kv, at| {
        if at == Between::Read && !injected {
            injected = true;
            // Another client revokes it first.
            let other = Revoke::new(
                &KeySpace::default(),
                Policy::default(),
                t(0, 0),
                revoke_input("dev-1", t(10, 0)),
            );
            run(kv, other, 1).unwrap();
        }
    })
    .unwrap();
    let RevokeSessionOutcome::AlreadyRevoked(s) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(s.revocation().unwrap().at(), t(10, 0), "the first one wins");
}
