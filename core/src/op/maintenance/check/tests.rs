//! `check`'s unit tests: every kind of problem planted and found, the
//! repairs' guards, owner keys' two looks, and repairs under concurrent
//! writers.

use super::*;
use crate::audit::StrayReason;
use crate::keys::Layout;
use crate::model::MemoryKv;
use crate::op::fixtures::{id, revocation, session, ts, user};
use crate::op::{self, Between, Create, Policy, Revoke};
use crate::plan::{Applied, Plan, Write};
use crate::session::Session;
use crate::RevokeSessionInput;

fn create(kv: &mut MemoryKv, keys: &KeySpace, s: &Session) {
    op::run(
        kv,
        Create::new(keys, Policy::default(), s.created_at(), s.clone()),
        4,
    )
    .unwrap();
}

fn revoke(kv: &mut MemoryKv, keys: &KeySpace, i: &str, at: i64) {
    let input = RevokeSessionInput {
        device_session_id: id(i),
        revocation: revocation(at),
    };
    op::run(kv, Revoke::new(keys, Policy::default(), ts(at), input), 4).unwrap();
}

fn check(kv: &mut MemoryKv, keys: &KeySpace, mode: CheckMode, batch: usize) -> CheckReport {
    let op = Check::new(keys, mode, BatchSize::new(batch).unwrap());
    op::run(kv, op, 8).unwrap()
}

/// A check with its owner keys' second look, as the driver runs it
/// once the grace has passed.
fn check_full(kv: &mut MemoryKv, keys: &KeySpace, mode: CheckMode, batch: usize) -> CheckReport {
    let mut report = check(kv, keys, mode, batch);
    let repair = mode == CheckMode::Repair;
    if let Some(recheck) = report.owner_recheck(keys, repair, BatchSize::new(batch).unwrap()) {
        let outcome = op::run(kv, recheck, 8).unwrap();
        report.absorb_owner_recheck(keys, outcome, repair);
    }
    report
}

fn kinds(report: &CheckReport) -> Vec<(String, String)> {
    let mut kinds: Vec<(String, String)> = report
        .problems
        .iter()
        .map(|p| {
            let kind = match p.stray_reason() {
                Some(reason) => format!("{}:{}", p.kind(), reason.kind()),
                None => p.kind().to_owned(),
            };
            (kind, p.key().to_owned())
        })
        .collect();
    kinds.sort();
    kinds
}

/// Every plan a run applies, in order.
fn plans_of(kv: &mut MemoryKv, mut op: Check) -> (CheckReport, Vec<Plan>) {
    let mut plans = Vec::new();
    let mut input = Input::Start;
    loop {
        input = match op.resume(input).unwrap() {
            Step::Read(reads) => Input::Replies(kv.read_all(&reads)),
            Step::Apply(plan) => {
                let applied = kv.apply(&plan);
                plans.push(plan);
                Input::Applied(applied)
            }
            Step::Backoff { .. } => panic!("check never backs off"),
            Step::Done(report) => return (report, plans),
        };
    }
}

/// A store of `n` users with three sessions each (one revoked).
fn populated(keys: &KeySpace, users: usize) -> MemoryKv {
    let mut kv = MemoryKv::new();
    for u in 0..users {
        for s in 0..3 {
            create(
                &mut kv,
                keys,
                &session(&format!("s{u}-{s}"), &format!("u{u}"), s),
            );
        }
        revoke(&mut kv, keys, &format!("s{u}-0"), 10);
    }
    kv
}

#[test]
fn a_consistent_store_is_clean_in_any_batch_size() {
    for layout in [Layout::Reference, Layout::Tagged] {
        let keys = KeySpace::default().in_layout(layout).unwrap();
        let mut kv = populated(&keys, 7);
        let before = kv.clone();
        for batch in [1, 2, 3, 5, 500] {
            let report = check(&mut kv, &keys, CheckMode::Repair, batch);
            assert!(report.is_clean(), "{layout:?} {batch}: {report:#?}");
            assert!(report.is_resolved());
            assert_eq!(report.records, 21);
            // 21 in the all-sessions indexes, 14 active (no retention:
            // no revoked index).
            assert_eq!(report.index_entries, 35, "{layout:?} {batch}");
            assert!(report.batches >= 2);
            assert_eq!(kv, before, "a clean repair writes nothing");
        }
    }
}

fn plant_everything(kv: &mut MemoryKv, keys: &KeySpace) {
    let u1 = user("u1");
    let all_u1 = keys.user_sessions_key(&u1);
    let active_u1 = keys.user_active_sessions_key(&u1);
    let revoked_u1 = keys.user_revoked_sessions_key(&u1);
    for (i, u, at) in [
        ("a", "u1", 1),
        ("b", "u1", 2),
        ("c", "u2", 3),
        ("d", "u1", 4),
    ] {
        create(kv, keys, &session(i, u, at));
    }
    create(kv, keys, &session("r", "u1", 5));
    revoke(kv, keys, "r", 6);
    create(kv, keys, &session("q", "u1", 7));
    revoke(kv, keys, "q", 8);
    // Garbage record, dangling member, foreign member (reference
    // layout only), revoked-in-active, misscored, missing revoked
    // entry, active in the revoked index, non-UTF-8 and invalid
    // members, a missing all-sessions index, unparsable keys, wrong
    // types.
    kv.set_raw(keys.record_key(&u1, &id("g")), "not json");
    kv.index_add_raw(&all_u1, b"ghost".to_vec(), 5.0);
    kv.index_add_raw(&active_u1, b"r".to_vec(), 1.0);
    kv.index_add_raw(&active_u1, b"b".to_vec(), 42.0);
    kv.apply(&Plan::empty().with_writes([Write::IndexRemove {
        key: revoked_u1.clone(),
        member: b"q".to_vec(),
    }]));
    kv.index_add_raw(&revoked_u1, b"a".to_vec(), 9.0);
    kv.index_add_raw(&all_u1, vec![0xff, 0xfe], 3.0);
    kv.index_add_raw(&active_u1, b"".to_vec(), 3.0);
    kv.delete_raw(&keys.user_sessions_key(&user("u2")));
    kv.set_raw(format!("{}!!!", keys.prefix(KeyKind::Record)), "x");
    kv.index_add_raw(
        format!("{}!!!", keys.prefix(KeyKind::Index(Index::All))),
        b"a".to_vec(),
        1.0,
    );
    kv.set_raw(keys.user_active_sessions_key(&user("u3")), "not an index");
    kv.index_add_raw(keys.record_key(&user("u3"), &id("z")), b"m".to_vec(), 1.0);
    if keys.layout() == Layout::Reference {
        kv.index_add_raw(&all_u1, b"c".to_vec(), 5.0);
    }
}

#[test]
fn finds_every_planted_problem_and_repairs_it_batch_by_batch() {
    for layout in [Layout::Reference, Layout::Tagged] {
        let keys = KeySpace::default().in_layout(layout).unwrap();
        let mut kv = MemoryKv::new();
        plant_everything(&mut kv, &keys);
        let u1 = user("u1");
        let all_u1 = keys.user_sessions_key(&u1);
        let active_u1 = keys.user_active_sessions_key(&u1);
        let revoked_u1 = keys.user_revoked_sessions_key(&u1);
        let u2_all = keys.user_sessions_key(&user("u2"));
        let g_key = keys.record_key(&u1, &id("g"));
        let session_prefix = keys.prefix(KeyKind::Record);
        let all_prefix = keys.prefix(KeyKind::Index(Index::All));
        let mut expected: Vec<(String, String)> = [
            ("corrupt_record", g_key.as_str()),
            ("missing_index_entry", active_u1.as_str()), // b misscored
            ("missing_index_entry", u2_all.as_str()),    // c
            // q, missing from the revoked index, is not a problem:
            // sessions the Go adapter revoked are never in it.
            (
                "stray_index_entry:inactive_index_member",
                active_u1.as_str(),
            ),
            ("stray_index_entry:invalid_index_member", active_u1.as_str()),
            ("stray_index_entry:dangling_index_member", all_u1.as_str()),
            ("stray_index_entry:invalid_index_member", all_u1.as_str()),
            (
                "stray_index_entry:unrevoked_index_member",
                revoked_u1.as_str(),
            ),
            ("unparsable_key", &format!("{session_prefix}!!!")),
            ("unparsable_key", &format!("{all_prefix}!!!")),
            ("wrong_type", &keys.user_active_sessions_key(&user("u3"))),
            ("wrong_type", &keys.record_key(&user("u3"), &id("z"))),
        ]
        .into_iter()
        .map(|(k, key)| (k.to_owned(), key.to_owned()))
        .collect();
        if layout == Layout::Reference {
            expected.push((
                "stray_index_entry:foreign_index_member".into(),
                all_u1.clone(),
            ));
        }
        expected.sort();

        let before = kv.clone();
        let report = check(&mut kv, &keys, CheckMode::Report, 3);
        assert_eq!(kinds(&report), expected, "{layout:?}: {report:#?}");
        assert_eq!(kv, before, "report only writes nothing");
        assert!(report.repaired.is_empty());
        assert_eq!(report.remaining(), expected.len());
        assert!(report.batches > 3, "several batches: {}", report.batches);

        let repaired = check(&mut kv, &keys, CheckMode::Repair, 3);
        assert_eq!(repaired.problems, report.problems, "{layout:?}");
        let mut left: Vec<&str> = repaired
            .unrepaired
            .iter()
            .map(|u| {
                assert_eq!(u.reason, UnrepairedReason::NotRepairable, "{u:?}");
                u.problem.kind()
            })
            .collect();
        left.sort_unstable();
        assert_eq!(
            left,
            [
                "corrupt_record",
                "unparsable_key",
                "unparsable_key",
                "wrong_type",
                "wrong_type"
            ]
        );
        assert_eq!(
            repaired.repaired.len() + repaired.unrepaired.len(),
            repaired.problems.len()
        );
        assert!(repaired.repaired.iter().all(Problem::is_repairable));

        // The next check finds only what a human must fix.
        let after = check(&mut kv, &keys, CheckMode::Report, 3);
        assert_eq!(after.problems.len(), 5, "{layout:?}: {after:#?}");
        assert!(after.problems.iter().all(|p| !p.is_repairable()));
        assert!(kv
            .index_range(&all_u1, None)
            .iter()
            .all(|(m, _)| std::str::from_utf8(m).is_ok()));
    }
}

/// Members whose record is missing, undecodable or another user's
/// leave every index they are in (the bad bytes stay under their key),
/// an active record reachable from neither index gets back into both,
/// a second check finds none of what the repair fixed, and the user's
/// revocation then goes through whole.
#[test]
fn a_repair_makes_every_user_revocable_whole() {
    for layout in [Layout::Reference, Layout::Tagged] {
        let keys = KeySpace::default().in_layout(layout).unwrap();
        let mut kv = populated(&keys, 2);
        let u1 = user("u1");
        let all = keys.user_sessions_key(&u1);
        let active = keys.user_active_sessions_key(&u1);
        let revoked_index = keys.user_revoked_sessions_key(&u1);
        // A member with no record, in every index.
        for key in [&all, &active, &revoked_index] {
            kv.index_add_raw(key, b"ghost".to_vec(), 1.0);
        }
        // A member whose record does not decode.
        let bad_key = keys.record_key(&u1, &id("bad"));
        kv.set_raw(&bad_key, "{not json");
        for key in [&all, &active, &revoked_index] {
            kv.index_add_raw(key, b"bad".to_vec(), 2.0);
        }
        // A member whose record is another user's: u0's session in the
        // reference layout; in the tagged layout, a record under u1's
        // tag naming u0.
        let theirs = session("theirs", "u0", 3);
        let theirs_key = keys.record_key(&u1, theirs.id());
        let theirs_bytes = crate::codec::encode(&theirs);
        kv.set_raw(&theirs_key, theirs_bytes.clone());
        for key in [&all, &active] {
            kv.index_add_raw(key, b"theirs".to_vec(), 3.0);
        }
        // An active session of u1 in neither index.
        let lost = session("lost", "u1", 4);
        create(&mut kv, &keys, &lost);
        for key in [&all, &active] {
            kv.apply(&Plan::empty().with_writes([Write::IndexRemove {
                key: key.clone(),
                member: b"lost".to_vec(),
            }]));
        }

        let found = check(&mut kv.clone(), &keys, CheckMode::Report, 2);
        let mut expected: Vec<(String, String)> = vec![
            ("corrupt_record".into(), bad_key.clone()),
            ("missing_index_entry".into(), all.clone()),
            ("missing_index_entry".into(), active.clone()),
            ("stray_index_entry:corrupt_record".into(), all.clone()),
            ("stray_index_entry:corrupt_record".into(), active.clone()),
            (
                "stray_index_entry:corrupt_record".into(),
                revoked_index.clone(),
            ),
            (
                "stray_index_entry:dangling_index_member".into(),
                all.clone(),
            ),
            (
                "stray_index_entry:dangling_index_member".into(),
                active.clone(),
            ),
            (
                "stray_index_entry:dangling_index_member".into(),
                revoked_index.clone(),
            ),
            ("stray_index_entry:foreign_index_member".into(), all.clone()),
            (
                "stray_index_entry:foreign_index_member".into(),
                active.clone(),
            ),
        ];
        if layout == Layout::Tagged {
            expected.push(("foreign_record".into(), theirs_key.clone()));
        } else {
            // u0's record, the truth, belongs in u0's indexes.
            let u0 = user("u0");
            for key in [
                keys.user_sessions_key(&u0),
                keys.user_active_sessions_key(&u0),
            ] {
                expected.push(("missing_index_entry".into(), key));
            }
        }
        expected.sort();
        assert_eq!(kinds(&found), expected, "{layout:?}: {found:#?}");

        let repaired = check(&mut kv, &keys, CheckMode::Repair, 2);
        let left: Vec<&str> = repaired
            .unrepaired
            .iter()
            .map(|u| u.problem.kind())
            .collect();
        let records_left = if layout == Layout::Tagged {
            vec!["corrupt_record", "foreign_record"]
        } else {
            vec!["corrupt_record"]
        };
        assert_eq!(left, records_left, "{layout:?}: {repaired:#?}");
        // The bad bytes stay where they were.
        assert_eq!(kv.get(&bad_key), Some(&b"{not json"[..]));
        assert_eq!(kv.get(&theirs_key), Some(&theirs_bytes[..]));
        // Back in both indexes.
        for key in [&all, &active] {
            assert!(kv.index_range(key, None).iter().any(|(m, _)| m == b"lost"));
        }

        // A second check finds none of what the repair fixed.
        let after = check(&mut kv, &keys, CheckMode::Report, 2);
        for problem in &after.problems {
            assert!(
                !repaired.repaired.contains(problem),
                "{layout:?}: {problem:?} again"
            );
        }
        assert_eq!(
            after.problems.iter().map(Problem::kind).collect::<Vec<_>>(),
            records_left
        );

        // And the user's revocation goes through whole.
        let input = crate::RevokeUserSessionsInput {
            user_id: u1.clone(),
            revocation: revocation(100),
        };
        let report = op::run(
            &mut kv,
            crate::op::RevokeAll::new(&keys, Policy::default(), input, true),
            8,
        )
        .unwrap();
        let mut revoked: Vec<&str> = report.revoked.iter().map(|s| s.id().as_str()).collect();
        revoked.sort_unstable();
        assert_eq!(revoked, ["lost", "s1-1", "s1-2"], "{layout:?}");
        assert_eq!(kv.index_len(&active), 0);
    }
}

#[test]
fn a_non_utf8_member_is_removed_and_reported_as_repaired() {
    let keys = KeySpace::default();
    let mut kv = populated(&keys, 2);
    let all = keys.user_sessions_key(&user("u1"));
    kv.index_add_raw(&all, vec![0xff, 0xfe], 1.0);
    let report = check(&mut kv, &keys, CheckMode::Repair, 3);
    assert_eq!(report.problems.len(), 1, "{report:#?}");
    assert_eq!(report.repaired, report.problems);
    assert!(report.is_resolved());
    assert_eq!(
        report.problems[0],
        Problem::StrayIndexEntry {
            index_key: all.clone(),
            member: vec![0xff, 0xfe],
            reason: StrayReason::InvalidMember,
        }
    );
    assert!(check(&mut kv, &keys, CheckMode::Report, 3).is_clean());
    assert_eq!(kv.index_len(&all), 3);
}

#[test]
fn repairs_are_guarded_only_by_what_they_write_from() {
    let keys = KeySpace::default();
    let mut kv = populated(&keys, 4);
    let u1 = user("u1");
    // One missing entry and one dangling member: the plan ships one
    // record's bytes and one absence, not the batch's other records.
    kv.apply(&Plan::empty().with_writes([Write::IndexRemove {
        key: keys.user_sessions_key(&u1),
        member: b"s1-1".to_vec(),
    }]));
    kv.index_add_raw(keys.user_sessions_key(&u1), b"ghost".to_vec(), 1.0);
    let op = Check::new(&keys, CheckMode::Repair, BatchSize::new(500).unwrap());
    let (report, plans) = plans_of(&mut kv, op);
    assert_eq!(report.repaired.len(), 2, "{report:#?}");
    let guards: Vec<String> = plans
        .iter()
        .flat_map(|p| p.preconditions().map(|g| g.key().to_owned()))
        .collect();
    assert_eq!(
        guards,
        [
            keys.reference_record_key(&id("s1-1")),
            keys.reference_record_key(&id("ghost"))
        ]
    );
    assert!(check(&mut kv, &keys, CheckMode::Report, 3).is_clean());
}

#[test]
fn tagged_owner_keys_missing_are_set_dangling_ones_removed_foreign_ones_reported() {
    let keys = KeySpace::default().in_layout(Layout::Tagged).unwrap();
    let mut kv = populated(&keys, 2);
    let missing = keys.owner_key(&id("s0-1")).unwrap();
    kv.delete_raw(&missing);
    // s1-2's owner key names u0, who has no such record: foreign to
    // the record, and dangling for u0.
    let foreign = keys.owner_key(&id("s1-2")).unwrap();
    kv.set_raw(&foreign, "u0");
    // An owner key without any record.
    let nobody = keys.owner_key(&id("nobody")).unwrap();
    kv.set_raw(&nobody, "u0");
    // One holding no user id: unreadable, left alone.
    let garbage = keys.owner_key(&id("garbage")).unwrap();
    kv.set_raw(&garbage, "");

    // The first look alone: dangling keys await their second look.
    let first = check(&mut kv.clone(), &keys, CheckMode::Repair, 3);
    let awaiting: Vec<&str> = first
        .unrepaired
        .iter()
        .filter(|u| u.reason == UnrepairedReason::AwaitingGrace)
        .map(|u| u.problem.key())
        .collect();
    assert_eq!(awaiting, [nobody.as_str(), foreign.as_str()]);
    assert_eq!(kv.get(&nobody), Some(&b"u0"[..]), "nothing removed yet");

    // With the second look (the grace passed).
    let report = check_full(&mut kv, &keys, CheckMode::Repair, 3);
    assert_eq!(
        kinds(&report),
        [
            ("corrupt_owner_key".to_owned(), garbage.clone()),
            ("dangling_owner_key".to_owned(), nobody.clone()),
            ("dangling_owner_key".to_owned(), foreign.clone()),
            ("foreign_owner_key".to_owned(), foreign.clone()),
            ("missing_owner_key".to_owned(), missing.clone()),
        ]
    );
    let mut repaired: Vec<&str> = report.repaired.iter().map(Problem::kind).collect();
    repaired.sort_unstable();
    assert_eq!(
        repaired,
        [
            "dangling_owner_key",
            "dangling_owner_key",
            "missing_owner_key"
        ]
    );
    assert_eq!(kv.get(&missing), Some(&b"u0"[..]));
    assert_eq!(kv.get(&nobody), None);
    assert_eq!(kv.get(&foreign), None);
    assert_eq!(kv.get(&garbage), Some(&b""[..]));
    // The record that lost its foreign owner key gets its own.
    let again = check_full(&mut kv, &keys, CheckMode::Repair, 3);
    assert_eq!(
        kinds(&again),
        [
            ("corrupt_owner_key".to_owned(), garbage.clone()),
            ("missing_owner_key".to_owned(), foreign.clone()),
        ]
    );
    assert_eq!(kv.get(&foreign), Some(&b"u1"[..]));
    let after = check_full(&mut kv, &keys, CheckMode::Report, 3);
    assert_eq!(kinds(&after), [("corrupt_owner_key".to_owned(), garbage)]);
}

#[test]
fn an_owner_key_whose_record_arrives_before_the_second_look_is_no_problem() {
    // A create in flight: its owner key written, its record not yet.
    let keys = KeySpace::default().in_layout(Layout::Tagged).unwrap();
    let mut kv = populated(&keys, 1);
    let s = session("late", "u0", 5);
    kv.set_raw(keys.owner_key(s.id()).unwrap(), "u0");
    let mut report = check(&mut kv, &keys, CheckMode::Repair, 3);
    assert_eq!(report.owner_sightings.len(), 1);
    // The create finishes during the grace.
    create(&mut kv, &keys, &s);
    let recheck = report
        .owner_recheck(&keys, true, BatchSize::new(3).unwrap())
        .unwrap();
    let outcome = op::run(&mut kv, recheck, 8).unwrap();
    assert_eq!(outcome.resolved.len(), 1);
    report.absorb_owner_recheck(&keys, outcome, true);
    assert!(report.is_clean(), "{report:#?}");
    assert_eq!(kv.get(&keys.owner_key(s.id()).unwrap()), Some(&b"u0"[..]));
}

#[test]
fn a_look_without_repair_removes_nothing_and_reports_what_stays_dangling() {
    let keys = KeySpace::default().in_layout(Layout::Tagged).unwrap();
    let mut kv = populated(&keys, 1);
    let nobody = keys.owner_key(&id("nobody")).unwrap();
    kv.set_raw(&nobody, "u0");
    let before = kv.clone();
    let report = check_full(&mut kv, &keys, CheckMode::Report, 3);
    assert_eq!(kv, before);
    assert_eq!(
        report
            .unrepaired
            .iter()
            .map(|u| (u.problem.kind(), u.reason.kind()))
            .collect::<Vec<_>>(),
        [("dangling_owner_key", "report_only")]
    );
}

#[test]
fn a_repair_blocked_by_a_wrong_type_key_fixes_the_rest() {
    let keys = KeySpace::default();
    let mut kv = populated(&keys, 1);
    let u0 = user("u0");
    // A member whose record key holds a sorted set: its removal guard
    // (the record's absence) cannot be checked; another stray in the
    // same batch is still removed.
    kv.index_add_raw(keys.reference_record_key(&id("zz")), b"m".to_vec(), 1.0);
    kv.index_add_raw(keys.user_sessions_key(&u0), b"zz".to_vec(), 1.0);
    kv.index_add_raw(keys.user_sessions_key(&u0), b"ghost".to_vec(), 1.0);
    let report = check(&mut kv, &keys, CheckMode::Repair, 500);
    let why: Vec<(&str, &str)> = report
        .unrepaired
        .iter()
        .map(|u| (u.problem.kind(), u.reason.kind()))
        .collect();
    assert_eq!(
        why,
        [
            ("wrong_type", "not_repairable"),
            ("stray_index_entry", "wrong_type")
        ]
    );
    assert_eq!(report.repaired.len(), 1, "{report:#?}");
}

#[test]
fn concurrent_writers_never_get_a_wrong_repair() {
    // After every read of the check, a concurrent client revokes,
    // removes or recreates sessions of the user being repaired (each
    // with a real atomic operation, so it adds no drift of its own).
    // Every repair write is guarded by what it was derived from, so
    // whatever the interleaving, the repair leaves only drift it
    // reported as unrepaired (contention), never drift it caused.
    for layout in [Layout::Reference, Layout::Tagged] {
        let keys = KeySpace::default().in_layout(layout).unwrap();
        for seed in 0..40u64 {
            let mut kv = populated(&keys, 4);
            let u1 = user("u1");
            let indexes = [
                keys.user_sessions_key(&u1),
                keys.user_active_sessions_key(&u1),
                keys.user_revoked_sessions_key(&u1),
            ];
            // Drift for the repair to fix: u1's sessions in no index.
            for s in 0..3 {
                for key in &indexes {
                    kv.apply(&Plan::empty().with_writes([Write::IndexRemove {
                        key: key.clone(),
                        member: format!("s1-{s}").into_bytes(),
                    }]));
                }
            }
            kv.index_add_raw(
                keys.user_active_sessions_key(&user("u2")),
                b"s2-0".to_vec(),
                1.0,
            );
            let mut step = seed.wrapping_add(1);
            let mut at = 20;
            let client_keys = keys.clone();
            let op = Check::new(&keys, CheckMode::Repair, BatchSize::new(3).unwrap());
            // The oracle: the problems of the state (a clean check
            // with nobody interfering) never gain one across an apply
            // of the repair; the client's own operations never add
            // any either.
            let problems_of = |kv: &MemoryKv| {
                let mut snapshot = kv.clone();
                check(&mut snapshot, &client_keys, CheckMode::Report, 500).problems
            };
            let mut known = problems_of(&kv);
            let mut applies = 0;
            let report = op::run_with(&mut kv, op, 8, |kv, between| {
                let now = problems_of(kv);
                let new: Vec<&Problem> = now.iter().filter(|p| !known.contains(p)).collect();
                assert!(
                    new.is_empty(),
                    "{layout:?} seed {seed}: after a {between:?} the state gained {new:?}"
                );
                known = now;
                if between != Between::Read {
                    applies += 1;
                    return;
                }
                step = step
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let target = format!("s1-{}", (step >> 33) % 3);
                at += 1;
                match (step >> 40) % 4 {
                    0 => {
                        let input = RevokeSessionInput {
                            device_session_id: id(&target),
                            revocation: revocation(at),
                        };
                        let revoke = Revoke::new(&client_keys, Policy::default(), ts(at), input);
                        let _ = op::run(kv, revoke, 4);
                    }
                    1 => {
                        // Remove the session whole (record, entries,
                        // owner key), as an expiry does.
                        let record_key = client_keys.record_key(&u1, &id(&target));
                        let mut writes = vec![Write::Delete { key: record_key }];
                        if let Some(owner) = client_keys.owner_key(&id(&target)) {
                            writes.push(Write::Delete { key: owner });
                        }
                        for key in [
                            client_keys.user_sessions_key(&u1),
                            client_keys.user_active_sessions_key(&u1),
                            client_keys.user_revoked_sessions_key(&u1),
                        ] {
                            writes.push(Write::IndexRemove {
                                key,
                                member: target.as_bytes().to_vec(),
                            });
                        }
                        assert_eq!(kv.apply(&Plan::empty().with_writes(writes)), Applied::Done);
                    }
                    2 => {
                        let _ = op::run(
                            kv,
                            Create::new(
                                &client_keys,
                                Policy::default(),
                                ts(at),
                                session(&target, "u1", at),
                            ),
                            4,
                        );
                    }
                    _ => {}
                }
                // The client's operations never add a problem.
                let now = problems_of(kv);
                assert!(
                    now.iter().all(|p| known.contains(p)),
                    "{layout:?} seed {seed}: the client added {now:?}"
                );
                known = now;
            })
            .unwrap();
            assert!(applies > 0);
            assert_eq!(
                report.repaired.len() + report.unrepaired.len(),
                report.problems.len()
            );
            let after = check(&mut kv, &keys, CheckMode::Report, 3);
            for problem in &after.problems {
                assert!(
                    report.unrepaired.iter().any(|u| &u.problem == problem
                        && matches!(u.reason, UnrepairedReason::Contention { .. })),
                    "{layout:?} seed {seed}: left {problem:?}; repair said {report:#?}"
                );
            }
        }
    }
}
