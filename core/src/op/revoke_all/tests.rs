//! `revoke all` never fails open: clock skew, index drift, bad records and
//! wrong-type keys, lost answers — every session that existed at the start
//! ends revoked, and whatever could not be is named.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::BTreeSet;

use crate::codec;
use crate::keys::{IndexScore, KeySpace, Layout};
use crate::model::MemoryKv;
use crate::op::{
    run, run_with, BatchSize, Between, Create, Input, Operation, Policy, Revoke, RevokeAll,
    RevokeAllReport, Step, TransitionError,
};
use crate::plan::{Plan, Write};
use crate::{
    ClientPublicKey, DeviceSessionId, Revocation, RevokeActorId, RevokeActorType, RevokeReasonCode,
    RevokeSessionInput, RevokeSessionOutcome, RevokeUserSessionsInput, Session, Timestamp, UserId,
};

const ATTEMPTS: u32 = 16;
/// 2024-05-06T07:00:00Z: "now", the revoker's clock.
const NOW_SECS: i128 = 1_714_978_800;

fn t(secs: i64) -> Timestamp {
    Timestamp::from_unix_nanos((NOW_SECS + i128::from(secs)) * 1_000_000_000).unwrap()
}

fn user(text: &str) -> UserId {
    UserId::parse(text).unwrap()
}

fn id(text: &str) -> DeviceSessionId {
    DeviceSessionId::parse(text).unwrap()
}

fn session(id_text: &str, user_text: &str, created: Timestamp) -> Session {
    Session::active(
        id(id_text),
        user(user_text),
        ClientPublicKey::from_bytes(&[3; 32]).unwrap(),
        created,
    )
    .unwrap()
}

fn revocation(at: Timestamp) -> Revocation {
    Revocation::new(
        at,
        RevokeReasonCode::parse("compromised").unwrap(),
        RevokeActorType::parse("admin").unwrap(),
        RevokeActorId::empty(),
    )
    .unwrap()
}

fn input(user_text: &str) -> RevokeUserSessionsInput {
    RevokeUserSessionsInput {
        user_id: user(user_text),
        revocation: revocation(t(0)),
    }
}

fn batches_of(n: usize) -> Policy {
    Policy {
        batch_size: BatchSize::new(n).unwrap(),
        ..Policy::default()
    }
}

fn spaces() -> [KeySpace; 2] {
    [
        KeySpace::default(),
        KeySpace::default().in_layout(Layout::Tagged).unwrap(),
    ]
}

fn create(kv: &mut MemoryKv, keys: &KeySpace, s: &Session) {
    run(kv, Create::new(keys, Policy::default(), t(0), s.clone()), 1).unwrap();
}

/// `n` sessions of user-1, `s0`.. one minute apart, all in the past.
fn sessions(kv: &mut MemoryKv, keys: &KeySpace, n: usize) -> Vec<Session> {
    (0..n)
        .map(|i| {
            let s = session(&format!("s{i}"), "user-1", t(-3600 + 60 * i as i64));
            create(kv, keys, &s);
            s
        })
        .collect()
}

fn remove_member(kv: &mut MemoryKv, key: &str, member: &str) {
    let plan = Plan::empty().with_writes([Write::IndexRemove {
        key: key.to_owned(),
        member: member.as_bytes().to_vec(),
    }]);
    kv.apply(&plan);
}

fn revoke_all(kv: &mut MemoryKv, keys: &KeySpace, policy: Policy) -> RevokeAllReport {
    run(
        kv,
        RevokeAll::new(keys, policy, input("user-1"), true),
        ATTEMPTS,
    )
    .unwrap()
}

/// The report of a call that must end `partially_revoked`.
fn partial(kv: &mut MemoryKv, keys: &KeySpace, policy: Policy) -> RevokeAllReport {
    match run(
        kv,
        RevokeAll::new(keys, policy, input("user-1"), true),
        ATTEMPTS,
    ) {
        Err(TransitionError::PartiallyRevoked(report)) => {
            assert!(!report.unrevocable.is_empty());
            *report
        }
        other => panic!("expected partially_revoked, got {other:?}"),
    }
}

/// The stored state of `s` (by id, under user-1's keys).
fn stored(kv: &MemoryKv, keys: &KeySpace, s: &Session) -> Option<Session> {
    let bytes = kv.get(&keys.record_key(s.user_id(), s.id()))?;
    codec::decode(s.id(), bytes).ok()
}

fn assert_revoked(kv: &MemoryKv, keys: &KeySpace, s: &Session) {
    let now = stored(kv, keys, s).unwrap();
    let revocation = now
        .revocation()
        .unwrap_or_else(|| panic!("{} active", s.id()));
    assert_eq!(revocation.at(), s.created_at().max(t(0)), "{}", s.id());
    assert!(revocation.at() >= now.created_at());
}

fn active_members(kv: &MemoryKv, keys: &KeySpace) -> Vec<String> {
    kv.index_range(&keys.user_active_sessions_key(&user("user-1")), None)
        .into_iter()
        .map(|(m, _)| String::from_utf8_lossy(&m).into_owned())
        .collect()
}

fn named(report: &RevokeAllReport) -> Vec<(Option<&str>, &str)> {
    report
        .unrevocable
        .iter()
        .map(|u| (u.member.as_deref(), u.reason))
        .collect()
}

#[test]
fn future_dated_sessions_are_revoked_at_their_own_creation_time() {
    for keys in spaces() {
        for batch in [1, 2, 100] {
            let mut kv = MemoryKv::new();
            let mut all = sessions(&mut kv, &keys, 3);
            // Another service's clock five minutes, then days, ahead; one
            // in the revocation's own microsecond, 100 ns after it.
            for (name, at) in [
                ("minutes", t(300)),
                ("days", t(3 * 86_400)),
                ("far", t(400 * 86_400)),
            ] {
                let s = session(name, "user-1", at);
                create(&mut kv, &keys, &s);
                all.push(s);
            }
            let just_after =
                Timestamp::from_unix_nanos(t(0).unix_nanos().saturating_add(100)).unwrap();
            let s = session("just-after", "user-1", just_after);
            create(&mut kv, &keys, &s);
            all.push(s);
            let report = revoke_all(&mut kv, &keys, batches_of(batch));
            assert_eq!(report.count, 7, "batch {batch}");
            assert!(report.unrevocable.is_empty());
            assert_eq!(report.drift_repaired, 0);
            for s in &all {
                assert_revoked(&kv, &keys, s);
            }
            assert!(active_members(&kv, &keys).is_empty());
            // Newest first, as always.
            assert_eq!(report.revoked[0].id().as_str(), "far");
        }
    }
}

#[test]
fn revoke_now_form_revokes_a_future_dated_session_and_an_explicit_time_stays_invalid() {
    for keys in spaces() {
        let mut kv = MemoryKv::new();
        let s = session("ahead", "user-1", t(300));
        create(&mut kv, &keys, &s);
        let request = RevokeSessionInput {
            device_session_id: id("ahead"),
            revocation: revocation(t(0)),
        };
        let before = kv.clone();
        let err = run(
            &mut kv,
            Revoke::new(&keys, Policy::default(), t(0), request.clone()),
            ATTEMPTS,
        )
        .unwrap_err();
        assert_eq!(err.kind(), "revoked_before_created");
        assert_eq!(kv, before, "nothing written");
        let outcome = run(
            &mut kv,
            Revoke::now(&keys, Policy::default(), t(0), request.clone()),
            ATTEMPTS,
        )
        .unwrap();
        let RevokeSessionOutcome::Revoked(revoked) = outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(revoked.revocation().unwrap().at(), t(300));
        assert_eq!(stored(&kv, &keys, &s), Some(revoked));
        // An ordinary session keeps the caller's time in the now form.
        let old = session("old", "user-1", t(-10));
        create(&mut kv, &keys, &old);
        let request = RevokeSessionInput {
            device_session_id: id("old"),
            ..request
        };
        run(
            &mut kv,
            Revoke::now(&keys, Policy::default(), t(0), request),
            ATTEMPTS,
        )
        .unwrap();
        assert_eq!(
            stored(&kv, &keys, &old).unwrap().revocation().unwrap().at(),
            t(0)
        );
    }
}

#[test]
fn drift_cannot_hide_a_session_whichever_index_entry_is_gone() {
    for keys in spaces() {
        let u = user("user-1");
        for (index, key) in [
            ("active", keys.user_active_sessions_key(&u)),
            ("all", keys.user_sessions_key(&u)),
        ] {
            for gone in 0..5 {
                let mut kv = MemoryKv::new();
                let all = sessions(&mut kv, &keys, 5);
                remove_member(&mut kv, &key, &format!("s{gone}"));
                let report = revoke_all(&mut kv, &keys, batches_of(2));
                for s in &all {
                    assert_revoked(&kv, &keys, s);
                }
                assert_eq!(report.count, 5, "{index} {gone}");
                // Missing from the active index: found through the other
                // one, repaired and counted. Missing from the all-sessions
                // index: the active walk had it anyway.
                let drift = u64::from(index == "active");
                assert_eq!(report.drift_repaired, drift, "{index} {gone}");
                assert!(report.unrevocable.is_empty());
                assert!(active_members(&kv, &keys).is_empty());
            }
        }
    }
}

#[test]
fn a_corrupt_record_at_any_batch_position_is_named_and_shields_nothing() {
    for keys in spaces() {
        for batch in [2, 3] {
            for bad in [0usize, 3, 6] {
                let mut kv = MemoryKv::new();
                let all = sessions(&mut kv, &keys, 7);
                let bad_key = keys.record_key(all[bad].user_id(), all[bad].id());
                kv.set_raw(bad_key.clone(), "{not json");
                let report = partial(&mut kv, &keys, batches_of(batch));
                assert_eq!(report.count, 6, "batch {batch} bad {bad}");
                let bad_id = format!("s{bad}");
                assert_eq!(named(&report), [(Some(bad_id.as_str()), "corrupt_record")]);
                assert_eq!(report.unrevocable[0].key, bad_key);
                assert!(!report.unrevocable[0].message.contains('\n'));
                for (i, s) in all.iter().enumerate() {
                    if i != bad {
                        assert_revoked(&kv, &keys, s);
                    }
                }
                // Left for inspection, in place.
                assert_eq!(kv.get(&bad_key), Some(&b"{not json"[..]));
                assert_eq!(active_members(&kv, &keys), [bad_id]);
            }
        }
    }
}

#[test]
fn many_bad_members_never_fill_a_batch() {
    let keys = KeySpace::default();
    let mut kv = MemoryKv::new();
    let all = sessions(&mut kv, &keys, 9);
    for i in [0usize, 1, 2, 4, 5] {
        kv.set_raw(keys.record_key(all[i].user_id(), all[i].id()), "x");
    }
    let report = partial(&mut kv, &keys, batches_of(2));
    assert_eq!(report.unrevocable.len(), 5);
    assert_eq!(report.count, 4);
    for i in [3usize, 6, 7, 8] {
        assert_revoked(&kv, &keys, &all[i]);
    }
}

#[test]
fn another_users_member_and_a_missing_record_are_named() {
    for keys in spaces() {
        let mut kv = MemoryKv::new();
        let all = sessions(&mut kv, &keys, 4);
        let theirs = session("theirs", "user-2", t(-100));
        create(&mut kv, &keys, &theirs);
        let u = user("user-1");
        let score = IndexScore::of(t(-100)).as_f64();
        for key in [
            keys.user_active_sessions_key(&u),
            keys.user_sessions_key(&u),
        ] {
            kv.index_add_raw(key.clone(), b"theirs".to_vec(), score);
            kv.index_add_raw(key, b"ghost".to_vec(), score);
        }
        let report = partial(&mut kv, &keys, batches_of(2));
        for s in &all {
            assert_revoked(&kv, &keys, s);
        }
        assert_eq!(report.count, 4);
        let mut got = named(&report);
        got.sort();
        // In the tagged layout a record key carries its user: another
        // user's id under user-1's tag names no record at all.
        let theirs_reason = match keys.layout() {
            Layout::Reference => "foreign_index_member",
            _ => "dangling_index_member",
        };
        assert_eq!(
            got,
            [
                (Some("ghost"), "dangling_index_member"),
                (Some("theirs"), theirs_reason)
            ]
        );
        // The other user's session is not ours to revoke.
        assert!(stored(&kv, &keys, &theirs).unwrap().is_active());
    }
}

#[test]
fn a_race_is_retried_not_named() {
    // The active index names a session whose record is removed between
    // the index read and the record read, then the entry goes too: a
    // concurrent change, confirmed as such.
    let keys = KeySpace::default();
    let mut kv = MemoryKv::new();
    let all = sessions(&mut kv, &keys, 3);
    let u = user("user-1");
    let mut reads = 0;
    let report = run_with(
        &mut kv,
        RevokeAll::new(&keys, batches_of(10), input("user-1"), true),
        ATTEMPTS,
        |kv, at| {
            if at == Between::Read {
                reads += 1;
                if reads == 2 {
                    // Deleted whole by someone else (index entries too).
                    kv.delete_raw(&keys.reference_record_key(&id("s1")));
                    remove_member(kv, &keys.user_active_sessions_key(&u), "s1");
                    remove_member(kv, &keys.user_sessions_key(&u), "s1");
                }
            }
        },
    )
    .unwrap();
    assert!(report.unrevocable.is_empty());
    assert_eq!(report.count, 2);
    assert_revoked(&kv, &keys, &all[0]);
    assert_revoked(&kv, &keys, &all[2]);
}

#[test]
fn a_wrong_type_index_is_named_and_the_other_one_still_reaches_every_session() {
    for keys in spaces() {
        let u = user("user-1");
        for (which, key) in [
            ("active", keys.user_active_sessions_key(&u)),
            ("all", keys.user_sessions_key(&u)),
        ] {
            let mut kv = MemoryKv::new();
            let all = sessions(&mut kv, &keys, 5);
            kv.set_raw(key.clone(), "oops");
            let report = partial(&mut kv, &keys, batches_of(2));
            assert_eq!(named(&report), [(None, "wrong_type")], "{which}");
            assert_eq!(report.unrevocable[0].key, key);
            assert_eq!(report.count, 5, "{which}");
            for s in &all {
                assert_revoked(&kv, &keys, s);
            }
            // Nothing written over the bad key.
            assert_eq!(kv.get(&key), Some(&b"oops"[..]));
        }
    }
}

#[test]
fn a_wrong_type_record_key_and_an_invalid_member_are_named() {
    let keys = KeySpace::default();
    let mut kv = MemoryKv::new();
    let all = sessions(&mut kv, &keys, 4);
    let record = keys.record_key(all[1].user_id(), all[1].id());
    kv.delete_raw(&record);
    kv.index_add_raw(record.clone(), b"x".to_vec(), 1.0);
    let active = keys.user_active_sessions_key(&user("user-1"));
    kv.index_add_raw(active, vec![0xff, 0xfe], 1.0);
    let report = partial(&mut kv, &keys, batches_of(2));
    let mut got = named(&report);
    got.sort();
    assert_eq!(
        got,
        [
            (Some("s1"), "wrong_type"),
            (Some("\u{fffd}\u{fffd}"), "invalid_index_member")
        ]
    );
    assert_eq!(report.count, 3);
    for i in [0usize, 2, 3] {
        assert_revoked(&kv, &keys, &all[i]);
    }
}

#[test]
fn a_wrong_type_revoked_index_under_retention_stops_nothing() {
    let keys = KeySpace::default();
    let mut kv = MemoryKv::new();
    let all = sessions(&mut kv, &keys, 3);
    let revoked = keys.user_revoked_sessions_key(&user("user-1"));
    kv.set_raw(revoked.clone(), "oops");
    let policy = Policy {
        revoked_retention: Some(std::time::Duration::from_secs(3600)),
        ..batches_of(2)
    };
    let report = partial(&mut kv, &keys, policy);
    assert_eq!(named(&report), [(None, "wrong_type")]);
    assert_eq!(report.unrevocable[0].key, revoked);
    for s in &all {
        assert_revoked(&kv, &keys, s);
    }
}

#[test]
fn sessions_created_while_it_runs_do_not_keep_it_going() {
    // Every applied batch, a new session appears, newer than everything:
    // the walk ends at the bound read first, and those may stay active.
    let keys = KeySpace::default();
    let mut kv = MemoryKv::new();
    let all = sessions(&mut kv, &keys, 6);
    let mut created = 0;
    let report = run_with(
        &mut kv,
        RevokeAll::new(&keys, batches_of(1), input("user-1"), false),
        ATTEMPTS,
        |kv, at| {
            if at == Between::Apply {
                created += 1;
                let s = session(&format!("new{created}"), "user-1", t(created));
                create(kv, &KeySpace::default(), &s);
            }
        },
    )
    .unwrap();
    assert!(report.count >= 6 && report.count < 6 + u64::try_from(created).unwrap());
    for s in &all {
        assert_revoked(&kv, &keys, s);
    }
}

// ------------------------------------------------------------ invariant

/// Deterministic pseudo-random numbers.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A user with tampered data: sessions in the past and the future,
/// dropped index entries, undecodable records, foreign and dangling
/// members, wrong-type keys.
fn tampered(rng: &mut Rng, keys: &KeySpace) -> MemoryKv {
    let mut kv = MemoryKv::new();
    let u = user("user-1");
    let n = 1 + rng.below(12);
    for i in 0..n {
        let offset = match rng.below(4) {
            0 => 60 * 60 * 24 * (1 + rng.below(30)) as i64,
            1 => rng.below(600) as i64,
            _ => -(rng.below(86_400) as i64),
        };
        let s = session(&format!("s{i}"), "user-1", t(offset));
        create(&mut kv, keys, &s);
        if rng.below(4) == 0 {
            // Some already revoked.
            let request = RevokeSessionInput {
                device_session_id: s.id().clone(),
                revocation: revocation(t(offset.max(0) + 1)),
            };
            run(
                &mut kv,
                Revoke::new(keys, Policy::default(), t(0), request),
                4,
            )
            .unwrap();
        }
    }
    let theirs = session("theirs", "user-2", t(-5));
    create(&mut kv, keys, &theirs);
    for _ in 0..rng.below(5) {
        let victim = format!("s{}", rng.below(n));
        let record = keys.record_key(&u, &id(&victim));
        match rng.below(7) {
            0 => remove_member(&mut kv, &keys.user_active_sessions_key(&u), &victim),
            1 => remove_member(&mut kv, &keys.user_sessions_key(&u), &victim),
            2 => kv.set_raw(record, "{garbage"),
            3 => {
                let score = IndexScore::of(t(-5)).as_f64();
                kv.index_add_raw(keys.user_active_sessions_key(&u), b"theirs".to_vec(), score);
            }
            4 => {
                kv.delete_raw(&record);
                kv.index_add_raw(record, b"z".to_vec(), 1.0);
            }
            5 => kv.delete_raw(&record),
            _ => {
                let key = if rng.below(2) == 0 {
                    keys.user_active_sessions_key(&u)
                } else {
                    keys.user_sessions_key(&u)
                };
                if rng.below(3) == 0 {
                    kv.set_raw(key, "wrong");
                }
            }
        }
    }
    kv
}

/// Every member of user-1's indexes at the start whose record is a
/// decodable, active session of user-1.
fn revocable(kv: &MemoryKv, keys: &KeySpace) -> BTreeSet<String> {
    let u = user("user-1");
    let mut found = BTreeSet::new();
    for key in [
        keys.user_active_sessions_key(&u),
        keys.user_sessions_key(&u),
    ] {
        for (member, _) in kv.index_range(&key, None) {
            let Ok(text) = String::from_utf8(member) else {
                continue;
            };
            let Ok(sid) = DeviceSessionId::parse(&text) else {
                continue;
            };
            let Some(bytes) = kv.get(&keys.record_key(&u, &sid)) else {
                continue;
            };
            if let Ok(s) = codec::decode(&sid, bytes) {
                if s.user_id() == &u && s.is_active() {
                    found.insert(text);
                }
            }
        }
    }
    found
}

/// After the call: nothing revocable at the start is still active, and
/// every active-index member left from the start is named (or its index
/// is).
fn check_invariant(
    before: &MemoryKv,
    after: &MemoryKv,
    keys: &KeySpace,
    report: &RevokeAllReport,
    context: &str,
) {
    let u = user("user-1");
    for text in revocable(before, keys) {
        let sid = id(&text);
        let bytes = after.get(&keys.record_key(&u, &sid)).unwrap();
        let s = codec::decode(&sid, bytes).unwrap();
        assert!(!s.is_active(), "{context}: {text} still active");
        let revocation = s.revocation().unwrap();
        assert!(revocation.at() >= s.created_at());
    }
    let active_key = keys.user_active_sessions_key(&u);
    let index_named = report.unrevocable.iter().any(|x| x.key == active_key);
    let start: BTreeSet<Vec<u8>> = before
        .index_range(&active_key, None)
        .into_iter()
        .map(|(m, _)| m)
        .collect();
    for (member, _) in after.index_range(&active_key, None) {
        if !start.contains(&member) {
            continue;
        }
        let text = String::from_utf8_lossy(&member).into_owned();
        let named = report
            .unrevocable
            .iter()
            .any(|x| x.member.as_deref() == Some(text.as_str()));
        assert!(named || index_named, "{context}: {text} left and not named");
    }
}

fn outcome_report(result: Result<RevokeAllReport, TransitionError>) -> RevokeAllReport {
    match result {
        Ok(report) => {
            assert!(report.unrevocable.is_empty());
            report
        }
        Err(TransitionError::PartiallyRevoked(report)) => *report,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn after_revoke_all_no_session_that_existed_stays_active_and_the_rest_is_named() {
    for seed in 1..400u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        for keys in spaces() {
            let before = tampered(&mut rng, &keys);
            let mut kv = before.clone();
            let batch = 1 + rng.below(4) as usize;
            let result = run(
                &mut kv,
                RevokeAll::new(&keys, batches_of(batch), input("user-1"), true),
                ATTEMPTS,
            );
            let report = outcome_report(result);
            check_invariant(&before, &kv, &keys, &report, &format!("seed {seed}"));
        }
    }
}

#[test]
fn lost_answers_restart_from_where_the_walk_stands() {
    // A driver whose connection drops: some reads and plans are lost
    // (a plan may have been applied all the same); it restarts the
    // operation, which reads again and finishes.
    for seed in 1..200u64 {
        let mut rng = Rng(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1);
        for keys in spaces() {
            let before = tampered(&mut rng, &keys);
            let mut kv = before.clone();
            let batch = 1 + rng.below(3) as usize;
            let mut op = RevokeAll::new(&keys, batches_of(batch), input("user-1"), false);
            let mut input = Input::Start;
            let mut steps = 0;
            let result = loop {
                steps += 1;
                assert!(steps < 10_000, "seed {seed}: no end");
                let step = match op.resume(input) {
                    Ok(step) => step,
                    Err(e) => break Err(e),
                };
                let lost = rng.below(4) == 0;
                input = match step {
                    Step::Read(reads) => {
                        let replies = kv.read_all(&reads);
                        if lost {
                            op.restart();
                            Input::Start
                        } else {
                            Input::Replies(replies)
                        }
                    }
                    Step::Apply(plan) => {
                        let applied = kv.apply(&plan);
                        if lost {
                            op.restart();
                            Input::Resumed
                        } else {
                            Input::Applied(applied)
                        }
                    }
                    Step::Backoff { .. } => Input::Resumed,
                    Step::Done(report) => break Ok(report),
                };
            };
            let report = outcome_report(result);
            check_invariant(&before, &kv, &keys, &report, &format!("seed {seed}"));
        }
    }
}
