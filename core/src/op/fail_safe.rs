//! Every prefix of every plan the operations make fails safe: applied in
//! [`Plan::write_phases`] order and cut after any write (a server that
//! refused the next one), no active record lies outside its user's active
//! or all-sessions index, no revoked-index member names an active record,
//! and no index entry lacks its record unless the plan was about to write
//! that record. And a skipped best-effort plan answers as if applied.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::time::Duration;

use super::fixtures::{id, revocation, session, ts, user};
use super::*;
use crate::codec;
use crate::keys::{Index, KeySpace, Layout};
use crate::model::MemoryKv;
use crate::plan::{Write, WritePhase};
use crate::{RevokeSessionInput, RevokeUserSessionsInput};

fn policy() -> Policy {
    Policy {
        revoked_retention: Some(Duration::from_secs(60)),
        session_limit: SessionLimit::new(2, OnLimit::RevokeOldest),
        ..Policy::default()
    }
}

/// What is unsafe in `kv` (empty: nothing). `writing`: record keys the
/// plan sets, whose index entries may exist before them.
fn unsafe_state(keys: &KeySpace, kv: &MemoryKv, writing: &[&str]) -> Vec<String> {
    let mut problems = Vec::new();
    let has = |index: &str, member: &str| {
        kv.index_range(index, None)
            .iter()
            .any(|(m, _)| m == member.as_bytes())
    };
    for key in kv.value_keys() {
        let Some((_, sid)) = keys.parse_record_key(key) else {
            continue;
        };
        let session = codec::decode(&sid, kv.get(key).unwrap()).unwrap();
        let u = session.user_id();
        if session.is_active() {
            for index in [keys.user_active_sessions_key(u), keys.user_sessions_key(u)] {
                if !has(&index, sid.as_str()) {
                    problems.push(format!("active {key} outside {index}"));
                }
            }
        }
    }
    for index in kv.index_keys() {
        let user_of = keys.parse_any_index_key(index).map(|(_, user)| user);
        let Some(u) = user_of else { continue };
        for (member, _) in kv.index_range(index, None) {
            let sid = id(std::str::from_utf8(&member).unwrap());
            let record_key = keys.record_key(&u, &sid);
            match kv.get(&record_key) {
                None if writing.contains(&record_key.as_str()) => {}
                None => problems.push(format!("{index} names missing {record_key}")),
                Some(bytes) => {
                    let s = codec::decode(&sid, bytes).unwrap();
                    if keys.parse_index_key(Index::Revoked, index).is_some() && s.is_active() {
                        problems.push(format!("{index} names active {record_key}"));
                    }
                }
            }
        }
    }
    problems
}

/// Runs `op` over `kv` like [`run`], checking before each plan with
/// writes that every prefix of it is safe. Returns the output and how many
/// plans (with writes) it checked.
fn run_checking_prefixes<O: Operation>(
    keys: &KeySpace,
    kv: &mut MemoryKv,
    mut op: O,
) -> (Result<O::Output, TransitionError>, usize) {
    let mut plans = 0;
    let mut input = Input::Start;
    for _ in 0..1000 {
        let step = match op.resume(input) {
            Ok(step) => step,
            Err(e) => return (Err(e), plans),
        };
        input = match step {
            Step::Read(reads) => Input::Replies(kv.read_all(&reads)),
            Step::Apply(plan) => {
                let mut probe = kv.clone();
                if !plan.writes().is_empty() && probe.apply(&plan) == Applied::Done {
                    plans += 1;
                    let writing: Vec<&str> = plan
                        .writes()
                        .iter()
                        .filter_map(|w| match w {
                            Write::Set { key, .. } if kv.get(key).is_none() => Some(key.as_str()),
                            _ => None,
                        })
                        .collect();
                    // Only what the plan adds counts (drift planted
                    // before it is the test's own).
                    let before = unsafe_state(keys, kv, &writing);
                    for n in 0..=plan.writes().len() {
                        let mut cut = kv.clone();
                        cut.apply_prefix(&plan, n);
                        let mut problems = unsafe_state(keys, &cut, &writing);
                        problems.retain(|p| !before.contains(p));
                        assert!(
                            problems.is_empty(),
                            "{}: after {n} writes of {plan:?}: {problems:?}",
                            op.name()
                        );
                    }
                }
                Input::Applied(kv.apply(&plan))
            }
            Step::Backoff { .. } => Input::Resumed,
            Step::Done(output) => return (Ok(output), plans),
        };
    }
    panic!("{} did not finish", op.name());
}

fn revoke(keys: &KeySpace, i: &str, at: i64) -> Revoke {
    Revoke::new(
        keys,
        policy(),
        ts(at),
        RevokeSessionInput {
            device_session_id: id(i),
            revocation: revocation(at),
        },
    )
}

#[test]
fn every_prefix_of_every_mutation_fails_safe_in_both_layouts() {
    for layout in [Layout::Reference, Layout::Tagged] {
        let keys = KeySpace::with_base_and_layout("a:", layout).unwrap();
        let mut kv = MemoryKv::new();
        let mut checked = 0;
        let mut go = |_: &mut MemoryKv, plans: usize| checked += plans;
        for (i, at) in [("s-1", 1), ("s-2", 2)] {
            let create = Create::new(&keys, policy(), ts(at), session(i, "u", at));
            let (out, n) = run_checking_prefixes(&keys, &mut kv, create);
            out.unwrap();
            go(&mut kv, n);
        }
        // At the limit: s-1 is revoked to make room (a move between
        // indexes in the same plan as the create).
        let create = Create::new(&keys, policy(), ts(3), session("s-3", "u", 3));
        let (out, n) = run_checking_prefixes(&keys, &mut kv, create);
        assert_eq!(out.unwrap().evicted.len(), 1);
        go(&mut kv, n);
        let (out, n) = run_checking_prefixes(&keys, &mut kv, revoke(&keys, "s-2", 4));
        out.unwrap();
        go(&mut kv, n);
        // Past retention: the next create removes the expired sessions.
        let create = Create::new(&keys, policy(), ts(500), session("s-4", "u", 500));
        let (out, n) = run_checking_prefixes(&keys, &mut kv, create);
        out.unwrap();
        go(&mut kv, n);
        let input = RevokeUserSessionsInput {
            user_id: user("u"),
            revocation: revocation(501),
        };
        let (out, n) =
            run_checking_prefixes(&keys, &mut kv, RevokeAll::new(&keys, policy(), input, true));
        out.unwrap();
        go(&mut kv, n);
        // The lazy removals of reads, then sweep.
        let (out, n) = run_checking_prefixes(
            &keys,
            &mut kv,
            Get::new(&keys, policy(), ts(1000), id("s-3")),
        );
        assert!(matches!(out, Err(TransitionError::NotFound { .. })));
        go(&mut kv, n);
        let (out, n) = run_checking_prefixes(
            &keys,
            &mut kv,
            List::new(&keys, policy(), ts(1000), user("u")),
        );
        assert!(out.unwrap().is_empty());
        go(&mut kv, n);
        for (i, at) in [("s-5", 600), ("s-6", 601)] {
            let create = Create::new(&keys, policy(), ts(at), session(i, "v", at));
            run_checking_prefixes(&keys, &mut kv, create).0.unwrap();
            let (out, n) = run_checking_prefixes(&keys, &mut kv, revoke(&keys, i, at + 1));
            out.unwrap();
            go(&mut kv, n);
        }
        let (out, n) = run_checking_prefixes(&keys, &mut kv, Sweep::new(&keys, policy(), ts(5000)));
        out.unwrap();
        go(&mut kv, n);
        // Only s-4 (revoked at 501, past retention by then too) may be
        // left for want of a read; the rest were removed on the way.
        let records: Vec<_> = kv
            .value_keys()
            .filter_map(|k| keys.parse_record_key(k))
            .map(|(_, i)| i)
            .collect();
        assert!(
            records.iter().all(|i| i.as_str() == "s-4"),
            "{layout:?}: {records:?}"
        );
        assert!(checked >= 10, "{layout:?}: {checked} plans checked");
    }
}

#[test]
fn phases_put_covering_entries_first_and_deletes_last() {
    let keys = KeySpace::with_base("a:").unwrap();
    let mut kv = MemoryKv::new();
    // A create: index entries, then the record.
    let create = Create::new(&keys, Policy::default(), ts(1), session("s-1", "u", 1));
    let mut op = create;
    let Step::Apply(plan) = op.resume(Input::Start).unwrap() else {
        panic!("a plain create applies at once")
    };
    let phases: Vec<(WritePhase, &str)> = plan
        .write_phases()
        .into_iter()
        .zip(plan.writes().iter().map(Write::key))
        .collect();
    assert_eq!(
        phases,
        [
            (
                WritePhase::Record,
                keys.reference_record_key(&id("s-1")).as_str()
            ),
            (
                WritePhase::Cover,
                keys.user_sessions_key(&user("u")).as_str()
            ),
            (
                WritePhase::Cover,
                keys.user_active_sessions_key(&user("u")).as_str()
            ),
        ]
    );
    assert_eq!(kv.apply(&plan), Applied::Done);
    // A revoke: the record, then out of the active index and into the
    // revoked one (a move).
    let mut op = revoke(&keys, "s-1", 2);
    let Step::Read(reads) = op.resume(Input::Start).unwrap() else {
        panic!("revoke reads first")
    };
    let Step::Apply(plan) = op.resume(Input::Replies(kv.read_all(&reads))).unwrap() else {
        panic!("then applies")
    };
    assert_eq!(
        plan.write_phases(),
        [WritePhase::Record, WritePhase::Follow, WritePhase::Follow]
    );
    assert_eq!(kv.apply(&plan), Applied::Done);
    // An expiry: entries first, the record last.
    let mut op = Get::new(&keys, policy(), ts(1000), id("s-1"));
    let Step::Read(reads) = op.resume(Input::Start).unwrap() else {
        panic!("get reads first")
    };
    let Step::Apply(plan) = op.resume(Input::Replies(kv.read_all(&reads))).unwrap() else {
        panic!("then removes the expired session")
    };
    assert!(plan.is_best_effort());
    assert_eq!(
        plan.write_phases(),
        [WritePhase::Delete, WritePhase::Follow, WritePhase::Follow]
    );
}

#[test]
fn a_key_never_goes_back_to_an_earlier_phase() {
    let plan = Plan::empty().with_writes([
        Write::IndexRemove {
            key: "z".into(),
            member: b"m".to_vec(),
        },
        Write::IndexAdd {
            key: "z".into(),
            score: crate::keys::IndexScore::of(ts(1)),
            member: "m".into(),
        },
        Write::Delete { key: "k".into() },
        Write::Set {
            key: "k".into(),
            value: b"v".to_vec(),
        },
    ]);
    assert_eq!(
        plan.write_phases(),
        [
            WritePhase::Follow,
            WritePhase::Follow,
            WritePhase::Delete,
            WritePhase::Delete
        ]
    );
    // Applied phase by phase, the final state is the plan's.
    let (mut whole, mut phased) = (MemoryKv::new(), MemoryKv::new());
    assert_eq!(whole.apply(&plan), Applied::Done);
    phased.apply_prefix(&plan, plan.writes().len());
    assert_eq!(whole, phased);
}

/// A skipped lazy removal: the read answers as if it had been made.
#[test]
fn reads_answer_alike_when_their_removal_is_skipped() {
    let keys = KeySpace::with_base("a:").unwrap();
    let mut kv = MemoryKv::new();
    run(
        &mut kv,
        Create::new(&keys, policy(), ts(1), session("s-1", "u", 1)),
        4,
    )
    .unwrap();
    run(&mut kv, revoke(&keys, "s-1", 2), 4).unwrap();
    let before = kv.clone();
    // get, list, a page and revoke of the expired session, each skipping
    // its best-effort plan.
    fn skip_all<O: Operation>(kv: &MemoryKv, mut op: O) -> Result<O::Output, TransitionError> {
        let mut input = Input::Start;
        loop {
            input = match op.resume(input)? {
                Step::Read(reads) => Input::Replies(kv.read_all(&reads)),
                Step::Apply(plan) => {
                    assert!(plan.is_best_effort(), "only lazy removals here: {plan:?}");
                    Input::Skipped
                }
                Step::Backoff { .. } => Input::Resumed,
                Step::Done(out) => return Ok(out),
            };
        }
    }
    let now = ts(1000);
    assert!(matches!(
        skip_all(&kv, Get::new(&keys, policy(), now, id("s-1"))),
        Err(TransitionError::NotFound { .. })
    ));
    assert!(matches!(
        skip_all(&kv, revoke(&keys, "s-1", 1000)),
        Err(TransitionError::NotFound { .. })
    ));
    assert!(skip_all(&kv, List::new(&keys, policy(), now, user("u")))
        .unwrap()
        .is_empty());
    let page = skip_all(
        &kv,
        ListPage::new(&keys, policy(), now, user("u"), PageRequest::default()),
    )
    .unwrap();
    assert!(page.sessions.is_empty());
    assert_eq!(kv, before, "nothing written");
    // A plan that is not best-effort never takes a skip.
    let mut op = Create::new(&keys, policy(), now, session("s-2", "u", 999));
    let mut input = Input::Start;
    loop {
        match op.resume(input).unwrap() {
            Step::Read(reads) => input = Input::Replies(kv.read_all(&reads)),
            Step::Apply(plan) => {
                assert!(!plan.is_best_effort());
                break;
            }
            other => panic!("{other:?}"),
        }
    }
}

/// Revoke-all's own repairs (drift found through the all-sessions index,
/// future-dated sessions, a bad record skipped) fail safe prefix by prefix
/// too.
#[test]
fn every_prefix_of_revoke_all_with_drift_fails_safe() {
    for layout in [Layout::Reference, Layout::Tagged] {
        let keys = KeySpace::with_base_and_layout("w:", layout).unwrap();
        let policy = Policy {
            revoked_retention: Some(Duration::from_secs(60)),
            batch_size: BatchSize::new(2).unwrap(),
            ..Policy::default()
        };
        let mut kv = MemoryKv::new();
        for (i, at) in [("w-1", 1), ("w-2", 2), ("w-3", 3), ("w-4", 10_000)] {
            run(
                &mut kv,
                Create::new(&keys, policy, ts(at), session(i, "w", at)),
                4,
            )
            .unwrap();
        }
        // Drift: w-1 active but out of its active index.
        let drift = Plan::empty().with_writes([Write::IndexRemove {
            key: keys.user_active_sessions_key(&user("w")),
            member: b"w-1".to_vec(),
        }]);
        assert_eq!(kv.apply(&drift), Applied::Done);
        let input = RevokeUserSessionsInput {
            user_id: user("w"),
            revocation: revocation(100),
        };
        let (out, plans) =
            run_checking_prefixes(&keys, &mut kv, RevokeAll::new(&keys, policy, input, true));
        let report = out.unwrap();
        assert!(plans >= 2, "{layout:?}: {plans} plans");
        assert_eq!(report.count, 4, "{layout:?}: {report:?}");
        assert!(unsafe_state(&keys, &kv, &[]).is_empty(), "{layout:?}");
    }
}
