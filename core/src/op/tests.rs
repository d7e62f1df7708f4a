//! The operations, run through the reference loop over the pure model:
//! plans, outcomes, confirmation of anomalies, concurrent changes injected
//! between a read and an apply, the session limit, retention, batched
//! revoke-all and pages.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::time::Duration;

use super::*;
use crate::codec::{self, DecodeError};
use crate::error::ValidationError;
use crate::keys::{IndexScore, KeyKind, KeySpace, Layout};
use crate::model::MemoryKv;
use crate::plan::{OnViolation, Precondition, Write};
use crate::{
    ClientPublicKey, DeviceSessionId, Revocation, RevokeActorId, RevokeActorType, RevokeReasonCode,
    RevokeSessionInput, RevokeSessionOutcome, RevokeUserSessionsInput, RevokeUserSessionsOutcome,
    Session, UserId,
};

const ATTEMPTS: u32 = 16;

/// 2024-05-06T07:00:00Z.
const BASE_SECS: i128 = 1_714_978_800;

fn t(secs: i64, nanos: i64) -> Timestamp {
    Timestamp::from_unix_nanos((BASE_SECS + i128::from(secs)) * 1_000_000_000 + i128::from(nanos))
        .unwrap()
}

fn id(text: &str) -> DeviceSessionId {
    DeviceSessionId::parse(text).unwrap()
}

fn user(text: &str) -> UserId {
    UserId::parse(text).unwrap()
}

fn session(id_text: &str, user_text: &str, created: Timestamp) -> Session {
    Session::active(
        id(id_text),
        user(user_text),
        ClientPublicKey::from_bytes(&[9; 32]).unwrap(),
        created,
    )
    .unwrap()
}

fn revocation_by(at: Timestamp, reason: &str) -> Revocation {
    Revocation::new(
        at,
        RevokeReasonCode::parse(reason).unwrap(),
        RevokeActorType::parse("user").unwrap(),
        RevokeActorId::empty(),
    )
    .unwrap()
}

fn revocation(at: Timestamp) -> Revocation {
    revocation_by(at, "logout")
}

fn revoke_input(id_text: &str, at: Timestamp) -> RevokeSessionInput {
    RevokeSessionInput {
        device_session_id: id(id_text),
        revocation: revocation(at),
    }
}

fn revoke_all_input(user_text: &str, at: Timestamp) -> RevokeUserSessionsInput {
    RevokeUserSessionsInput {
        user_id: user(user_text),
        revocation: revocation(at),
    }
}

/// Both layouts, default prefixes.
fn spaces() -> [KeySpace; 2] {
    [
        KeySpace::default(),
        KeySpace::default().in_layout(Layout::Tagged).unwrap(),
    ]
}

fn retention(secs: u64) -> Policy {
    Policy {
        revoked_retention: Some(Duration::from_secs(secs)),
        ..Policy::default()
    }
}

fn limit(max: u32, on_limit: OnLimit) -> Policy {
    Policy {
        session_limit: SessionLimit::new(max, on_limit),
        ..Policy::default()
    }
}

fn batches_of(n: usize) -> Policy {
    Policy {
        batch_size: BatchSize::new(n).unwrap(),
        ..Policy::default()
    }
}

fn create(kv: &mut MemoryKv, keys: &KeySpace, s: &Session) {
    create_under(kv, keys, Policy::default(), s);
}

fn create_under(kv: &mut MemoryKv, keys: &KeySpace, policy: Policy, s: &Session) {
    run(kv, Create::new(keys, policy, t(0, 0), s.clone()), 1).unwrap();
}

fn revoke(kv: &mut MemoryKv, keys: &KeySpace, id_text: &str, at: Timestamp) {
    revoke_under(kv, keys, Policy::default(), id_text, at);
}

fn revoke_under(kv: &mut MemoryKv, keys: &KeySpace, policy: Policy, id_text: &str, at: Timestamp) {
    let op = Revoke::new(keys, policy, at, revoke_input(id_text, at));
    let outcome = run(kv, op, ATTEMPTS).unwrap();
    assert!(matches!(outcome, RevokeSessionOutcome::Revoked(_)));
}

fn ids(sessions: &[Session]) -> Vec<&str> {
    sessions.iter().map(|s| s.id().as_str()).collect()
}

fn members(kv: &MemoryKv, key: &str) -> Vec<String> {
    kv.index_range(key, None)
        .into_iter()
        .map(|(m, _)| String::from_utf8(m).unwrap())
        .collect()
}

/// Counts the steps of a run: reads answered, plans applied.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Trace {
    reads: usize,
    applies: usize,
}

fn run_traced<O: Operation>(
    kv: &mut MemoryKv,
    op: O,
) -> (Result<O::Output, TransitionError>, Trace) {
    let mut trace = Trace::default();
    let result = run_with(kv, op, ATTEMPTS, |_, at| match at {
        Between::Read => trace.reads += 1,
        Between::Apply => trace.applies += 1,
    });
    (result, trace)
}

/// [`run`] that stops (a crash, a timeout) before the plan with writes
/// after `applied` of them; `None` when it stopped.
fn run_until<O: Operation>(kv: &mut MemoryKv, mut op: O, applied: usize) -> Option<O::Output> {
    let mut done = 0;
    let mut input = Input::Start;
    loop {
        input = match op.resume(input).unwrap() {
            Step::Read(reads) => Input::Replies(kv.read_all(&reads)),
            Step::Apply(plan) => {
                if !plan.writes().is_empty() {
                    if done == applied {
                        return None;
                    }
                    done += 1;
                }
                Input::Applied(kv.apply(&plan))
            }
            Step::Backoff { .. } => Input::Resumed,
            Step::Done(output) => return Some(output),
        };
    }
}

// ---------------------------------------------------------------- create

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

// ------------------------------------------------------------------- get

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

// ---------------------------------------------------------------- revoke

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

// ------------------------------------------------------------------ list

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

// ------------------------------------------------------------ revoke all

fn revoke_all(
    kv: &mut MemoryKv,
    keys: &KeySpace,
    policy: Policy,
    input: RevokeUserSessionsInput,
) -> RevokeAllReport {
    run(kv, RevokeAll::new(keys, policy, input, true), ATTEMPTS).unwrap()
}

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

/// s0..s9 created one second apart, plus one created later.
fn ten_sessions(kv: &mut MemoryKv, keys: &KeySpace) {
    for i in 0..10 {
        create(kv, keys, &session(&format!("s{i}"), "user-1", t(i, 0)));
    }
    create(kv, keys, &session("later", "user-1", t(100, 0)));
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

#[test]
fn count_reads_the_active_index() {
    let keys = KeySpace::default();
    let mut kv = MemoryKv::new();
    ten_sessions(&mut kv, &keys);
    revoke(&mut kv, &keys, "s3", t(20, 0));
    let (count, trace) = run_traced(&mut kv, Count::new(&keys, &user("user-1")));
    assert_eq!(count.unwrap(), 10);
    assert_eq!(
        trace,
        Trace {
            reads: 1,
            applies: 0
        }
    );
    kv.set_raw(keys.user_active_sessions_key(&user("user-1")), "x");
    assert_eq!(
        run(&mut kv, Count::new(&keys, &user("user-1")), 1)
            .unwrap_err()
            .kind(),
        "wrong_type"
    );
}

// ---------------------------------------------------------------- limit

#[test]
fn limit_reject_refuses_and_writes_nothing() {
    for keys in spaces() {
        let policy = limit(2, OnLimit::Reject);
        let mut kv = MemoryKv::new();
        for (i, id_text) in ["a", "b"].into_iter().enumerate() {
            let s = session(id_text, "user-1", t(i as i64, 0));
            run(&mut kv, Create::new(&keys, policy, t(10, 0), s), 1).unwrap();
        }
        // Tagged layout: the owner key is written before the limit is
        // known; it is the only key the refused create leaves.
        let owner = keys.owner_key(&id("c"));
        let before = kv.clone();
        let err = run(
            &mut kv,
            Create::new(&keys, policy, t(10, 0), session("c", "user-1", t(5, 0))),
            ATTEMPTS,
        )
        .unwrap_err();
        assert_eq!(err.kind(), "session_limit");
        assert!(!err.is_corruption());
        assert_eq!(
            err,
            TransitionError::SessionLimit {
                user: "user-1".into(),
                max: 2
            }
        );
        if let Some(owner) = &owner {
            kv.delete_raw(owner);
        }
        assert_eq!(kv, before, "a refused create writes nothing");

        // Another user is not affected; a revoked session ignores the limit.
        run(
            &mut kv,
            Create::new(&keys, policy, t(10, 0), session("x", "user-2", t(5, 0))),
            1,
        )
        .unwrap();
        let revoked = session("r", "user-1", t(5, 0))
            .revoked(revocation(t(6, 0)))
            .unwrap();
        run(&mut kv, Create::new(&keys, policy, t(10, 0), revoked), 1).unwrap();

        // Room again after a revoke.
        revoke(&mut kv, &keys, "a", t(20, 0));
        run(
            &mut kv,
            Create::new(&keys, policy, t(30, 0), session("c", "user-1", t(30, 0))),
            ATTEMPTS,
        )
        .unwrap();
        assert_eq!(
            run(&mut kv, Count::new(&keys, &user("user-1")), 1).unwrap(),
            2
        );
    }
}

#[test]
fn limit_revoke_oldest_revokes_in_the_same_plan() {
    for keys in spaces() {
        let policy = limit(2, OnLimit::RevokeOldest);
        let mut kv = MemoryKv::new();
        for (i, id_text) in ["a", "b"].into_iter().enumerate() {
            let s = session(id_text, "user-1", t(i as i64, 0));
            let created = run(&mut kv, Create::new(&keys, policy, t(10, 0), s), ATTEMPTS).unwrap();
            assert!(created.evicted.is_empty());
        }
        let c = session("c", "user-1", t(5, 0));
        let mut applies_with_changes = 0;
        let created = run_with(
            &mut kv,
            Create::new(&keys, policy, t(40, 0), c.clone()),
            ATTEMPTS,
            |_, at| {
                if at == Between::Apply {
                    applies_with_changes += 1;
                }
            },
        )
        .unwrap();
        let owner_applies = usize::from(keys.owner_key(c.id()).is_some());
        assert_eq!(
            applies_with_changes,
            1 + owner_applies,
            "one plan revokes and creates"
        );
        assert_eq!(created.session, c);
        assert_eq!(ids(&created.evicted), ["a"]);
        let evicted = &created.evicted[0];
        let r = evicted.revocation().unwrap();
        assert_eq!(r.reason_code().as_str(), "session_limit");
        assert_eq!(r.actor_type().as_str(), "system");
        assert!(r.actor_id().is_empty());
        assert_eq!(r.at(), t(40, 0), "revoked at the create's now");
        let u = user("user-1");
        assert_eq!(
            kv.get(&keys.record_key(&u, &id("a"))),
            Some(codec::encode(evicted).as_slice())
        );
        assert_eq!(members(&kv, &keys.user_active_sessions_key(&u)), ["b", "c"]);
        assert_eq!(members(&kv, &keys.user_sessions_key(&u)), ["a", "b", "c"]);

        // A revoked session ignores the limit and evicts nobody.
        let r = session("r", "user-1", t(6, 0))
            .revoked(revocation(t(7, 0)))
            .unwrap();
        let created = run(&mut kv, Create::new(&keys, policy, t(40, 0), r), ATTEMPTS).unwrap();
        assert!(created.evicted.is_empty());
        assert_eq!(members(&kv, &keys.user_active_sessions_key(&u)), ["b", "c"]);
    }
}

#[test]
fn limit_revoke_oldest_retries_when_the_oldest_or_the_count_changes() {
    let keys = KeySpace::default();
    let policy = limit(2, OnLimit::RevokeOldest);
    let u = user("user-1");
    // The oldest is revoked elsewhere between the read and the apply.
    let mut kv = MemoryKv::new();
    for (i, id_text) in ["a", "b"].into_iter().enumerate() {
        run(
            &mut kv,
            Create::new(
                &keys,
                policy,
                t(10, 0),
                session(id_text, "user-1", t(i as i64, 0)),
            ),
            1,
        )
        .unwrap();
    }
    let mut reads = 0;
    let created = run_with(
        &mut kv,
        Create::new(&keys, policy, t(40, 0), session("c", "user-1", t(5, 0))),
        ATTEMPTS,
        |kv, at| {
            if at == Between::Read {
                reads += 1;
                if reads == 2 {
                    revoke(kv, &KeySpace::default(), "a", t(30, 0));
                }
            }
        },
    )
    .unwrap();
    assert!(created.evicted.is_empty(), "after the retry there is room");
    assert_eq!(members(&kv, &keys.user_active_sessions_key(&u)), ["b", "c"]);

    // A concurrent create fills the slot between the read and the apply.
    let mut kv = MemoryKv::new();
    run(
        &mut kv,
        Create::new(&keys, policy, t(10, 0), session("a", "user-1", t(0, 0))),
        1,
    )
    .unwrap();
    let mut injected = false;
    let created = run_with(
        &mut kv,
        Create::new(&keys, policy, t(40, 0), session("c", "user-1", t(5, 0))),
        ATTEMPTS,
        |kv, at| {
            if at == Between::Read && !injected {
                injected = true;
                create(kv, &KeySpace::default(), &session("b", "user-1", t(1, 0)));
            }
        },
    )
    .unwrap();
    assert_eq!(ids(&created.evicted), ["a"]);
    assert_eq!(members(&kv, &keys.user_active_sessions_key(&u)), ["b", "c"]);
}

#[test]
fn limit_revoke_oldest_never_exceeds_the_limit_on_a_torn_read() {
    // The count and the oldest member are two reads of one round trip; a
    // backend may answer them from different instants (a pipeline is not
    // atomic). Even then the plan must not let the count pass the limit.
    let keys = KeySpace::default();
    let policy = limit(2, OnLimit::RevokeOldest);
    let u = user("user-1");
    let mut kv = MemoryKv::new();
    for (i, id_text) in ["a", "b"].into_iter().enumerate() {
        run(
            &mut kv,
            Create::new(
                &keys,
                policy,
                t(10, 0),
                session(id_text, "user-1", t(i as i64, 0)),
            ),
            1,
        )
        .unwrap();
    }
    let mut op = Create::new(&keys, policy, t(40, 0), session("c", "user-1", t(5, 0)));
    // The first two range reads answer from an instant when the index was
    // momentarily empty; the count was read before, and is the same again
    // when the plan applies.
    let mut torn = 0;
    let mut input = Input::Start;
    let outcome = loop {
        match op.resume(input) {
            Ok(Step::Read(reads)) => {
                let mut replies = kv.read_all(&reads);
                for reply in &mut replies {
                    if let Reply::Names(m) = reply {
                        if torn < 2 {
                            torn += 1;
                            m.clear();
                        }
                    }
                }
                input = Input::Replies(replies);
            }
            Ok(Step::Apply(plan)) => input = Input::Applied(kv.apply(&plan)),
            Ok(Step::Backoff { .. }) => input = Input::Resumed,
            Ok(Step::Done(created)) => break Ok(created),
            Err(e) => break Err(e),
        }
    };
    assert_eq!(torn, 2);
    assert!(
        kv.index_len(&keys.user_active_sessions_key(&u)) <= 2,
        "{outcome:?}: {:?}",
        members(&kv, &keys.user_active_sessions_key(&u))
    );
    let created = outcome.unwrap();
    assert_eq!(ids(&created.evicted), ["a"]);
}

#[test]
fn limit_revoke_oldest_spreads_out_after_losing_its_eviction() {
    // Creators at the limit all want the oldest session; one that lost it
    // to another create picks among the oldest few next time, so 64 of
    // them do not all retry for the same one. The limit holds throughout.
    let keys = KeySpace::default();
    let policy = limit(3, OnLimit::RevokeOldest);
    let u = user("user-1");
    for creator in ["x", "x2", "x3", "x4"] {
        let mut kv = MemoryKv::new();
        for (i, id_text) in ["a", "b", "c"].into_iter().enumerate() {
            let s = session(id_text, "user-1", t(i as i64, 0));
            run(&mut kv, Create::new(&keys, policy, t(10, 0), s), ATTEMPTS).unwrap();
        }
        let mut reads = 0;
        let created = run_with(
            &mut kv,
            Create::new(
                &keys,
                policy,
                t(40, 0),
                session(creator, "user-1", t(30, 0)),
            ),
            ATTEMPTS,
            |kv, at| {
                if at == Between::Read {
                    reads += 1;
                    if reads == 2 {
                        // Another create evicts "a" first.
                        let other = Create::new(
                            &KeySpace::default(),
                            limit(3, OnLimit::RevokeOldest),
                            t(35, 0),
                            session("y", "user-1", t(20, 0)),
                        );
                        let evicted = run(kv, other, ATTEMPTS).unwrap().evicted;
                        assert_eq!(ids(&evicted), ["a"]);
                    }
                }
            },
        )
        .unwrap();
        // One of the two oldest then: b or c, never the newer y.
        let evicted = ids(&created.evicted);
        assert!(
            evicted == ["b"] || evicted == ["c"],
            "{creator}: {evicted:?}"
        );
        assert_eq!(kv.index_len(&keys.user_active_sessions_key(&u)), 3);
        let mut active = members(&kv, &keys.user_active_sessions_key(&u));
        active.sort();
        let mut expected = vec!["b", "c", "y", creator];
        expected.retain(|m| *m != evicted[0]);
        expected.sort_unstable();
        assert_eq!(active, expected);
    }
}

#[test]
fn limit_revoke_oldest_after_the_limit_was_lowered() {
    let keys = KeySpace::default();
    let u = user("user-1");
    for (batch, after_each) in [(500, &[2usize, 2][..]), (2, &[5, 4, 3, 2, 2][..])] {
        let mut kv = MemoryKv::new();
        for i in 0..6 {
            create(
                &mut kv,
                &keys,
                &session(&format!("s{i}"), "user-1", t(i, 0)),
            );
        }
        let policy = Policy {
            session_limit: SessionLimit::new(2, OnLimit::RevokeOldest),
            batch_size: BatchSize::new(batch).unwrap(),
            ..Policy::default()
        };
        for (n, expected) in after_each.iter().enumerate() {
            let s = session(&format!("n{n}"), "user-1", t(100 + n as i64, 0));
            run(&mut kv, Create::new(&keys, policy, t(200, 0), s), ATTEMPTS).unwrap();
            assert_eq!(
                kv.index_len(&keys.user_active_sessions_key(&u)),
                *expected,
                "batch {batch}"
            );
        }
    }
}

#[test]
fn limit_revoke_oldest_at_limit_one() {
    let keys = KeySpace::default();
    let policy = limit(1, OnLimit::RevokeOldest);
    let mut kv = MemoryKv::new();
    let mut evicted = Vec::new();
    for i in 0..5 {
        let s = session(&format!("s{i}"), "user-1", t(i, 0));
        let created = run(&mut kv, Create::new(&keys, policy, t(100, 0), s), ATTEMPTS).unwrap();
        evicted.extend(
            created
                .evicted
                .into_iter()
                .map(|s| s.id().as_str().to_owned()),
        );
        assert_eq!(
            kv.index_len(&keys.user_active_sessions_key(&user("user-1"))),
            1
        );
    }
    assert_eq!(evicted, ["s0", "s1", "s2", "s3"]);
}

/// "Now" at Go's zero time with sessions created before it: the eviction
/// cannot be revoked at the zero time (no revocation carries it), so it is
/// revoked one nanosecond later — never skipped, which would leave the user
/// above the limit (found by the fuzzer).
#[test]
fn limit_revoke_oldest_with_now_at_go_zero_time() {
    let keys = KeySpace::default();
    let policy = limit(1, OnLimit::RevokeOldest);
    let go_zero = Timestamp::parse("0001-01-01T00:00:00Z").unwrap();
    let earlier = Timestamp::parse("0000-12-31T23:59:59.999999Z").unwrap();
    let mut kv = MemoryKv::new();
    run(
        &mut kv,
        Create::new(&keys, policy, go_zero, session("old", "u", earlier)),
        ATTEMPTS,
    )
    .unwrap();
    let created = run(
        &mut kv,
        Create::new(&keys, policy, go_zero, session("new", "u", earlier)),
        ATTEMPTS,
    )
    .unwrap();
    let [evicted] = created.evicted.as_slice() else {
        panic!("one eviction: {:?}", created.evicted);
    };
    assert_eq!(evicted.id().as_str(), "old");
    let at = evicted.revocation().unwrap().at();
    assert!(!at.is_go_zero());
    assert_eq!(at, go_zero.checked_add_nanos(1).unwrap());
    assert_eq!(kv.index_len(&keys.user_active_sessions_key(&user("u"))), 1);
}

// ------------------------------------------------------------ retention

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

// ----------------------------------------------------------------- pages

fn page(
    kv: &mut MemoryKv,
    keys: &KeySpace,
    policy: Policy,
    now: Timestamp,
    user_text: &str,
    request: PageRequest,
) -> Result<(Page, Trace), TransitionError> {
    let (page, trace) = run_traced(
        kv,
        ListPage::new(keys, policy, now, user(user_text), request),
    );
    page.map(|p| (p, trace))
}

/// Every page from the first, concatenated.
fn walk(
    kv: &mut MemoryKv,
    keys: &KeySpace,
    policy: Policy,
    now: Timestamp,
    user_text: &str,
    limit: usize,
    status: StatusFilter,
) -> Vec<Session> {
    let mut all = Vec::new();
    let mut cursor = None;
    for _ in 0..10_000 {
        let request = PageRequest {
            limit: PageLimit::new(limit).unwrap(),
            cursor,
            status,
        };
        let (page, _) = page(kv, keys, policy, now, user_text, request).unwrap();
        assert!(page.sessions.len() <= limit);
        all.extend(page.sessions);
        match page.next_cursor {
            None => return all,
            Some(next) => cursor = Some(PageCursor::parse(next.as_str()).unwrap()),
        }
    }
    panic!("pages never end");
}

/// 23 sessions of user-1, many sharing a microsecond (different
/// nanoseconds, or the same instant with different ids), some revoked.
fn tied_sessions(kv: &mut MemoryKv, keys: &KeySpace) {
    let mut n = 0;
    for micro in 0..5i64 {
        for (id_text, nanos) in [("m", 0), ("a", 300), ("z", 300), ("b", 999), ("é", 0)] {
            if micro == 3 && id_text == "é" {
                continue;
            }
            let s = session(
                &format!("{id_text}{micro}"),
                "user-1",
                t(0, micro * 1000 + nanos),
            );
            create(kv, keys, &s);
            n += 1;
        }
    }
    for i in 0..4 {
        create(
            kv,
            keys,
            &session(&format!("solo{i}"), "user-1", t(10 + i, 0)),
        );
        n += 1;
    }
    create(kv, keys, &session("other", "user-2", t(5, 0)));
    assert_eq!(n, 28);
    for revoked in ["a1", "z1", "m4", "solo2"] {
        revoke(kv, keys, revoked, t(20, 0));
    }
}

#[test]
fn pages_concatenate_to_list() {
    for keys in spaces() {
        let mut kv = MemoryKv::new();
        tied_sessions(&mut kv, &keys);
        let list = run(
            &mut kv,
            List::new(&keys, Policy::default(), t(0, 0), user("user-1")),
            1,
        )
        .unwrap();
        assert_eq!(list.len(), 28);
        let active: Vec<Session> = list.iter().filter(|s| s.is_active()).cloned().collect();
        assert_eq!(active.len(), 24);
        for limit in [1, 2, 3, 4, 5, 6, 7, 10, 27, 28, 29, 50] {
            let walked = walk(
                &mut kv,
                &keys,
                Policy::default(),
                t(0, 0),
                "user-1",
                limit,
                StatusFilter::All,
            );
            assert_eq!(walked, list, "limit {limit}");
            let walked = walk(
                &mut kv,
                &keys,
                Policy::default(),
                t(0, 0),
                "user-1",
                limit,
                StatusFilter::Active,
            );
            assert_eq!(walked, active, "active, limit {limit}");
        }
    }
}

#[test]
fn pages_order_ties_within_a_microsecond_by_nanoseconds_then_id_bytes() {
    let keys = KeySpace::default();
    let mut kv = MemoryKv::new();
    for (id_text, nanos) in [("b", 100), ("a", 100), ("c", 900), ("Z", 100), ("d", 0)] {
        create(&mut kv, &keys, &session(id_text, "user-1", t(0, nanos)));
    }
    // One microsecond score, one group: c (900 ns), then Z, a, b (100 ns,
    // id bytes), then d (0 ns) — not the index's id order.
    for limit in 1..=5 {
        let walked = walk(
            &mut kv,
            &keys,
            Policy::default(),
            t(0, 0),
            "user-1",
            limit,
            StatusFilter::All,
        );
        assert_eq!(ids(&walked), ["c", "Z", "a", "b", "d"], "limit {limit}");
    }
}

#[test]
fn pages_cross_a_score_group_larger_than_the_limit() {
    let keys = KeySpace::default();
    let mut kv = MemoryKv::new();
    create(&mut kv, &keys, &session("newest", "user-1", t(1, 0)));
    for i in 0..12 {
        create(
            &mut kv,
            &keys,
            &session(&format!("g{i:02}"), "user-1", t(0, 500 + (i % 3))),
        );
    }
    create(&mut kv, &keys, &session("oldest", "user-1", t(-1, 0)));
    let list = run(
        &mut kv,
        List::new(&keys, Policy::default(), t(0, 0), user("user-1")),
        1,
    )
    .unwrap();
    for limit in [1, 2, 5, 11, 12, 13] {
        let walked = walk(
            &mut kv,
            &keys,
            Policy::default(),
            t(0, 0),
            "user-1",
            limit,
            StatusFilter::All,
        );
        assert_eq!(walked, list, "limit {limit}");
    }
    // The first page of 5 stops before the group (it cannot be cut in
    // index order); the next one is five of the group, in list order.
    let request = |cursor| PageRequest {
        limit: PageLimit::new(5).unwrap(),
        cursor,
        status: StatusFilter::All,
    };
    let (first, _) = page(
        &mut kv,
        &keys,
        Policy::default(),
        t(0, 0),
        "user-1",
        request(None),
    )
    .unwrap();
    assert_eq!(ids(&first.sessions), ["newest"]);
    let (second, _) = page(
        &mut kv,
        &keys,
        Policy::default(),
        t(0, 0),
        "user-1",
        request(first.next_cursor),
    )
    .unwrap();
    assert_eq!(second.sessions, list[1..6]);
}

#[test]
fn pages_take_at_most_two_round_trips_without_oversized_groups() {
    let keys = KeySpace::default();
    // Distinct microseconds, then pairs sharing one.
    for (pairs, limits) in [(false, &[1usize, 2, 3, 7][..]), (true, &[2, 3, 7][..])] {
        let mut kv = MemoryKv::new();
        for i in 0..40i64 {
            let created = if pairs { t(i / 2, i % 2) } else { t(i, 0) };
            create(
                &mut kv,
                &keys,
                &session(&format!("s{i:02}"), "user-1", created),
            );
        }
        let list = run(
            &mut kv,
            List::new(&keys, Policy::default(), t(0, 0), user("user-1")),
            1,
        )
        .unwrap();
        for &limit in limits {
            let mut cursor = None;
            let mut walked = Vec::new();
            let mut pages = 0;
            loop {
                let request = PageRequest {
                    limit: PageLimit::new(limit).unwrap(),
                    cursor,
                    status: StatusFilter::All,
                };
                let (p, trace) = page(
                    &mut kv,
                    &keys,
                    Policy::default(),
                    t(0, 0),
                    "user-1",
                    request,
                )
                .unwrap();
                assert!(trace.reads <= 2, "pairs {pairs}, limit {limit}: {trace:?}");
                assert_eq!(trace.applies, 0);
                pages += 1;
                walked.extend(p.sessions);
                match p.next_cursor {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
            assert_eq!(walked, list);
            // Full pages, except where a pair would be cut.
            assert!(
                pages <= 40 / (limit - usize::from(pairs)) + 1,
                "{pages} pages of {limit}"
            );
        }
    }
}

#[test]
fn page_cursor_round_trips_as_text_and_json() {
    let keys = KeySpace::default();
    let mut kv = MemoryKv::new();
    tied_sessions(&mut kv, &keys);
    let request = PageRequest {
        limit: PageLimit::new(3).unwrap(),
        ..PageRequest::default()
    };
    let (first, _) = page(
        &mut kv,
        &keys,
        Policy::default(),
        t(0, 0),
        "user-1",
        request,
    )
    .unwrap();
    let cursor = first.next_cursor.unwrap();
    let text = cursor.to_string();
    assert_eq!(text, cursor.as_str());
    assert!(text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    assert_eq!(PageCursor::parse(&text).unwrap(), cursor);
    let json = serde_json::to_string(&cursor).unwrap();
    assert_eq!(json, format!("\"{text}\""));
    assert_eq!(serde_json::from_str::<PageCursor>(&json).unwrap(), cursor);
    assert!(serde_json::from_str::<PageCursor>("\"!!\"").is_err());
    // The same position again gives the same next page.
    let next = |kv: &mut MemoryKv, c: PageCursor| {
        page(
            kv,
            &keys,
            Policy::default(),
            t(0, 0),
            "user-1",
            PageRequest {
                limit: PageLimit::new(3).unwrap(),
                cursor: Some(c),
                status: StatusFilter::All,
            },
        )
        .unwrap()
        .0
    };
    assert_eq!(
        next(&mut kv, cursor.clone()),
        next(&mut kv, PageCursor::parse(&text).unwrap())
    );
}

#[test]
fn page_cursor_of_garbage_or_another_user_or_status_is_invalid() {
    use base64::Engine as _;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let keys = KeySpace::default();
    let mut kv = MemoryKv::new();
    tied_sessions(&mut kv, &keys);
    let first = |kv: &mut MemoryKv, user_text: &str, status| {
        let request = PageRequest {
            limit: PageLimit::new(2).unwrap(),
            cursor: None,
            status,
        };
        page(kv, &keys, Policy::default(), t(0, 0), user_text, request)
            .unwrap()
            .0
    };
    let all_cursor = first(&mut kv, "user-1", StatusFilter::All)
        .next_cursor
        .unwrap();
    let active_cursor = first(&mut kv, "user-1", StatusFilter::Active)
        .next_cursor
        .unwrap();

    let text = all_cursor.as_str().to_owned();
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&text)
        .unwrap();
    let mut wrong_version = raw.clone();
    wrong_version[0] = 2;
    let mut wrong_status = raw.clone();
    wrong_status[1] = 7;
    let mut bad_id = raw[..26].to_vec();
    bad_id.extend_from_slice(b" padded ");
    let mut huge_time = raw.clone();
    huge_time[10..26].copy_from_slice(&i128::MAX.to_be_bytes());
    for garbage in [
        String::new(),
        "!!!".to_owned(),
        "a".to_owned(),
        format!("{text}="),
        b64(&raw[..20]),
        b64(&raw[..26]),
        b64(&wrong_version),
        b64(&wrong_status),
        b64(&bad_id),
        b64(&huge_time),
        b64(&[0xff; 40]),
    ] {
        let err = PageCursor::parse(&garbage).unwrap_err();
        assert_eq!(err.kind(), "invalid_cursor", "{garbage:?}");
        assert!(!err.is_corruption());
    }

    let with_cursor = |kv: &mut MemoryKv, user_text: &str, cursor: &PageCursor, status| {
        let request = PageRequest {
            limit: PageLimit::new(2).unwrap(),
            cursor: Some(cursor.clone()),
            status,
        };
        page(kv, &keys, Policy::default(), t(0, 0), user_text, request)
    };
    let before = kv.clone();
    for (user_text, cursor, status) in [
        ("user-2", &all_cursor, StatusFilter::All),
        ("user-1", &all_cursor, StatusFilter::Active),
        ("user-1", &active_cursor, StatusFilter::All),
        ("user-2", &active_cursor, StatusFilter::Active),
    ] {
        let err = with_cursor(&mut kv, user_text, cursor, status).unwrap_err();
        assert_eq!(err.kind(), "invalid_cursor", "{user_text} {status:?}");
    }
    assert_eq!(kv, before);
    assert!(with_cursor(&mut kv, "user-1", &all_cursor, StatusFilter::All).is_ok());
    assert!(with_cursor(&mut kv, "user-1", &active_cursor, StatusFilter::Active).is_ok());
}

#[test]
fn page_limit_bounds() {
    assert!(PageLimit::new(0).is_err());
    assert_eq!(PageLimit::new(1).unwrap().get(), 1);
    assert_eq!(PageLimit::new(1000).unwrap().get(), 1000);
    assert_eq!(PageLimit::new(1001).unwrap_err().kind(), "out_of_range");
    assert_eq!(PageLimit::default().get(), 50);
    assert!(BatchSize::new(0).is_none());
    assert!(BatchSize::new(1001).is_none());
    assert_eq!(BatchSize::default().get(), 100);
    assert!(SessionLimit::new(0, OnLimit::Reject).is_none());
    assert_eq!(
        "revoke-oldest".parse::<OnLimit>(),
        Ok(OnLimit::RevokeOldest)
    );
    assert_eq!("reject".parse::<OnLimit>(), Ok(OnLimit::Reject));
    assert!("drop".parse::<OnLimit>().is_err());
}

#[test]
fn pages_of_an_unknown_user_are_empty() {
    let keys = KeySpace::default();
    let mut kv = MemoryKv::new();
    let (p, trace) = page(
        &mut kv,
        &keys,
        Policy::default(),
        t(0, 0),
        "nobody",
        PageRequest::default(),
    )
    .unwrap();
    assert!(p.sessions.is_empty());
    assert_eq!(p.next_cursor, None);
    assert_eq!(trace.reads, 1);
}

#[test]
fn pages_report_index_corruption_after_confirming() {
    let keys = KeySpace::default();
    let mut kv = MemoryKv::new();
    tied_sessions(&mut kv, &keys);
    let index = keys.user_active_sessions_key(&user("user-1"));
    // A revoked session planted in the active index.
    kv.index_add_raw(&index, b"a1".to_vec(), IndexScore::of(t(0, 1300)).as_f64());
    let before = kv.clone();
    let err = run(
        &mut kv,
        ListPage::new(
            &keys,
            Policy::default(),
            t(0, 0),
            user("user-1"),
            PageRequest {
                limit: PageLimit::new(50).unwrap(),
                cursor: None,
                status: StatusFilter::Active,
            },
        ),
        ATTEMPTS,
    )
    .unwrap_err();
    assert_eq!(
        (err.kind(), err.key()),
        ("inactive_index_member", Some(index.as_str()))
    );
    assert_eq!(kv, before);
}

// ------------------------------------------------------------ sequencing

#[test]
fn an_input_out_of_sequence_is_a_bug_not_contention() {
    let keys = KeySpace::default();
    let mut op = List::new(&keys, Policy::default(), t(0, 0), user("user-1"));
    assert!(matches!(op.resume(Input::Start), Ok(Step::Read(_))));
    let error = op.resume(Input::Resumed).unwrap_err();
    assert_eq!(error, TransitionError::OutOfSequence { op: "list" });
    assert_eq!(error.kind(), "out_of_sequence");
    assert!(!error.is_corruption());
    assert_eq!(error.key(), None);
}
