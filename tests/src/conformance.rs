//! The store conformance suite (SPEC §6), written once and run against
//! every [`SessionStore`]: each scenario takes an empty store and raw
//! access to its data.
//!
//! Use [`conformance_suite!`](crate::conformance_suite) to instantiate
//! one test per scenario for a store factory; `conformance_suite!(make,
//! tagged)` adds the scenarios of the tagged layout.
//!
//! Scenarios are written for every layout: raw plantings go through the
//! key space (`record_key(user, id)`; in the tagged layout a planted
//! record gets its owner key too, as a store would have written it).

use std::collections::BTreeSet;

use authsession_driver::core::codec;
use authsession_driver::core::op::RevokeAllReport;
use authsession_driver::core::{
    DeviceSessionId, IndexScore, KeyKind, KeySpace, Layout, RevokeSessionOutcome,
    RevokeUserSessionsOutcome, UserId,
};
use authsession_driver::{CheckMode, ErrorKind, RevokeAllOptions, SessionAdmin, SessionStore};

use crate::fixtures::{
    active, id, revocation, revocation_with, revoke_all_input, revoke_input, ts, user,
};
use crate::raw::RawKv;

/// Expands to one `#[tokio::test]` per conformance scenario. `$make` is an
/// async fn returning `(guard, store, raw)`; the guard (e.g. a
/// [`RedisServer`](crate::RedisServer)) lives until the test ends.
#[macro_export]
macro_rules! conformance_suite {
    ($make:path) => {
        $crate::conformance_suite!(@common $make);
        $crate::conformance_suite!(@each $make;
            create_writes_record_and_indexes,
            revoke_all_revokes_every_session_active_at_the_start,
            check_finds_and_repairs_index_drift,
            check_reports_unrepairable_records
        );
    };
    ($make:path, tagged) => {
        $crate::conformance_suite!(@common $make);
        $crate::conformance_suite!(@each $make;
            create_writes_record_and_indexes,
            revoke_all_revokes_every_session_active_at_the_start,
            check_finds_and_repairs_index_drift,
            check_reports_unrepairable_records
        );
        $crate::conformance_suite!(@each $make;
            tagged_same_id_under_another_user_is_a_conflict,
            tagged_dangling_owner_key_reads_as_not_found,
            tagged_keys_of_a_user_share_its_slot
        );
    };
    (@common $make:path) => {
        $crate::conformance_suite!(@each $make;
            ping_answers,
            get_missing_is_not_found,
            create_existing_id_is_a_conflict,
            revoke_then_already_revoked,
            revoke_missing_is_not_found,
            revoke_before_creation_is_invalid_and_writes_nothing,
            list_newest_first_ties_by_id_bytes,
            corrupt_record_is_reported_with_its_key,
            record_under_another_ids_key_is_corrupt,
            list_reports_index_corruption,
            revoke_all_names_bad_members_and_revokes_the_rest,
            revoke_all_existence_decides_not_clocks,
            revoke_all_finds_sessions_the_active_index_lost,
            revoke_all_skips_corrupt_records_at_any_batch_position,
            revoke_all_reaches_every_session_past_a_wrong_type_index,
            purge_deletes_only_the_key_space,
            wrong_key_types_are_corrupt_and_write_nothing,
            get_for_user_of_another_users_session_is_not_found
        );
    };
    (@each $make:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let (_guard, store, raw) = $make().await;
                $crate::conformance::$name(&store, &raw).await;
            }
        )*
    };
}

/// The key `get(id)` reads first, which its `not_found` names: the record
/// (reference layout) or the owner key (tagged layout).
pub fn lookup_key(keys: &KeySpace, id: &DeviceSessionId) -> String {
    keys.record_key_of_id(id)
        .or_else(|| keys.owner_key(id))
        .expect("a layout names the record or the owner of an id")
}

/// Writes `bytes` where `user`'s record `id` belongs, behind the store's
/// back; in the tagged layout also the owner key (id → user), so the
/// planted record is what `get(id)` finds.
pub async fn plant_record<R: RawKv>(
    raw: &R,
    keys: &KeySpace,
    user: &UserId,
    id: &DeviceSessionId,
    bytes: &[u8],
) {
    if let Some(owner) = keys.owner_key(id) {
        raw.set(&owner, user.as_str().as_bytes()).await;
    }
    raw.set(&keys.record_key(user, id), bytes).await;
}

fn assert_error<T: std::fmt::Debug>(
    result: Result<T, authsession_driver::Error>,
    kind: ErrorKind,
    key: &str,
) -> authsession_driver::Error {
    let err = result.expect_err("operation should fail");
    assert_eq!(err.kind(), kind, "{err}");
    assert_eq!(err.key(), Some(key), "{err}");
    assert!(
        err.to_string().contains(key),
        "message names the key: {err}"
    );
    err
}

/// `ping` succeeds on a healthy store.
pub async fn ping_answers<S: SessionStore + SessionAdmin, R: RawKv>(store: &S, _raw: &R) {
    store.ping().await.expect("ping");
}

/// `get` of an unknown id: `not_found` naming the record key.
pub async fn get_missing_is_not_found<S: SessionStore + SessionAdmin, R: RawKv>(
    store: &S,
    _raw: &R,
) {
    let keys = store.key_space();
    let err = assert_error(
        store.get(&id("nope")).await,
        ErrorKind::NotFound,
        &lookup_key(keys, &id("nope")),
    );
    assert!(!err.is_retryable());
    assert_eq!(
        store
            .count_active_by_user_id(&user("nobody"))
            .await
            .unwrap(),
        0
    );
    assert!(store
        .list_by_user_id(&user("nobody"))
        .await
        .unwrap()
        .is_empty());
}

/// `create` writes the reference's exact bytes and both index entries
/// (the active one only for an active session).
pub async fn create_writes_record_and_indexes<S: SessionStore + SessionAdmin, R: RawKv>(
    store: &S,
    raw: &R,
) {
    let keys = store.key_space().clone();
    let u = user("u-1");
    let s1 = active("s-1", "u-1", ts(0, 123_456_789));
    store.create(&s1).await.unwrap();
    assert_eq!(store.get(s1.id()).await.unwrap(), s1);
    assert_eq!(
        raw.get(&keys.record_key(&u, s1.id())).await,
        Some(codec::encode(&s1))
    );
    if let Some(owner) = keys.owner_key(s1.id()) {
        assert_eq!(raw.get(&owner).await.as_deref(), Some(&b"u-1"[..]));
    }
    let score = IndexScore::of(s1.created_at()).as_f64();
    let entry = vec![("s-1".to_owned(), score)];
    assert_eq!(raw.zrange(&keys.user_sessions_key(&u)).await, entry);
    assert_eq!(raw.zrange(&keys.user_active_sessions_key(&u)).await, entry);
    assert_eq!(store.count_active_by_user_id(&u).await.unwrap(), 1);

    // A session created already revoked goes to the all-sessions index only.
    let s2 = active("s-2", "u-1", ts(5, 0))
        .revoked(revocation(ts(6, 0)))
        .unwrap();
    store.create(&s2).await.unwrap();
    assert_eq!(store.get(s2.id()).await.unwrap(), s2);
    assert_eq!(raw.zrange(&keys.user_active_sessions_key(&u)).await, entry);
    assert_eq!(raw.zrange(&keys.user_sessions_key(&u)).await.len(), 2);
    assert_eq!(store.count_active_by_user_id(&u).await.unwrap(), 1);
    assert_eq!(
        store.list_by_user_id(&u).await.unwrap(),
        vec![s2.clone(), s1.clone()]
    );
    let report = store.check(CheckMode::Report).await.unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.records, 2);
    // Both all-sessions entries and s1's active entry (no retention: no
    // revoked index).
    assert_eq!(report.index_entries, 3);
}

/// A second `create` with the same id is a conflict and writes nothing.
pub async fn create_existing_id_is_a_conflict<S: SessionStore + SessionAdmin, R: RawKv>(
    store: &S,
    raw: &R,
) {
    let keys = store.key_space().clone();
    let s1 = active("dup", "u-1", ts(0, 0));
    store.create(&s1).await.unwrap();
    let other = active("dup", "u-2", ts(9, 0));
    let err = assert_error(
        store.create(&other).await,
        ErrorKind::Conflict,
        &lookup_key(&keys, s1.id()),
    );
    assert!(!err.is_retryable());
    // The same user again: the record is there.
    let again = active("dup", "u-1", ts(9, 0));
    assert_error(
        store.create(&again).await,
        ErrorKind::Conflict,
        &keys.record_key(&user("u-1"), s1.id()),
    );
    assert_eq!(store.get(s1.id()).await.unwrap(), s1);
    assert!(raw
        .zrange(&keys.user_sessions_key(&user("u-2")))
        .await
        .is_empty());
    assert!(raw
        .zrange(&keys.user_active_sessions_key(&user("u-2")))
        .await
        .is_empty());
}

/// Revoking an active session, then revoking it again.
pub async fn revoke_then_already_revoked<S: SessionStore + SessionAdmin, R: RawKv>(
    store: &S,
    raw: &R,
) {
    let keys = store.key_space().clone();
    let u = user("u-1");
    let s1 = active("s-1", "u-1", ts(0, 0));
    let s2 = active("s-2", "u-1", ts(1, 0));
    store.create(&s1).await.unwrap();
    store.create(&s2).await.unwrap();

    let input = revoke_input("s-1", ts(10, 5));
    let expected = s1.clone().revoked(input.revocation.clone()).unwrap();
    match store.revoke(&input).await.unwrap() {
        RevokeSessionOutcome::Revoked(s) => assert_eq!(s, expected),
        other => panic!("expected revoked, got {other:?}"),
    }
    assert_eq!(store.get(s1.id()).await.unwrap(), expected);
    let record = raw.get(&keys.record_key(&u, s1.id())).await;
    assert_eq!(record, Some(codec::encode(&expected)));
    assert_eq!(store.count_active_by_user_id(&u).await.unwrap(), 1);
    let active_members: Vec<String> = raw
        .zrange(&keys.user_active_sessions_key(&u))
        .await
        .into_iter()
        .map(|(m, _)| m)
        .collect();
    assert_eq!(active_members, ["s-2"]);
    assert_eq!(raw.zrange(&keys.user_sessions_key(&u)).await.len(), 2);

    // Again, with another revocation: nothing changes.
    let again = RevokeSessionInputExt::with_reason("s-1", ts(20, 0), "compromised");
    match store.revoke(&again).await.unwrap() {
        RevokeSessionOutcome::AlreadyRevoked(s) => assert_eq!(s, expected),
        other => panic!("expected already revoked, got {other:?}"),
    }
    assert_eq!(raw.get(&keys.record_key(&u, s1.id())).await, record);
    assert_eq!(store.count_active_by_user_id(&u).await.unwrap(), 1);
}

struct RevokeSessionInputExt;
impl RevokeSessionInputExt {
    fn with_reason(
        id_text: &str,
        at: authsession_driver::core::Timestamp,
        reason: &str,
    ) -> authsession_driver::core::RevokeSessionInput {
        authsession_driver::core::RevokeSessionInput {
            device_session_id: id(id_text),
            revocation: revocation_with(at, reason, ""),
        }
    }
}

/// Revoking an unknown id: `not_found` naming the record key.
pub async fn revoke_missing_is_not_found<S: SessionStore + SessionAdmin, R: RawKv>(
    store: &S,
    _raw: &R,
) {
    let keys = store.key_space().clone();
    assert_error(
        store.revoke(&revoke_input("ghost", ts(1, 0))).await,
        ErrorKind::NotFound,
        &lookup_key(&keys, &id("ghost")),
    );
}

/// A revocation before the session's creation is invalid input; nothing
/// is written. Revoking exactly at creation is allowed.
pub async fn revoke_before_creation_is_invalid_and_writes_nothing<
    S: SessionStore + SessionAdmin,
    R: RawKv,
>(
    store: &S,
    raw: &R,
) {
    let keys = store.key_space().clone();
    let u = user("u-1");
    let s1 = active("s-1", "u-1", ts(10, 500));
    store.create(&s1).await.unwrap();
    let record_key = keys.record_key(&u, s1.id());
    let before = raw.get(&record_key).await;

    let err = store
        .revoke(&revoke_input("s-1", ts(10, 499)))
        .await
        .expect_err("revocation before creation");
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert_eq!(err.detail_kind(), Some("revoked_before_created"));
    assert!(!err.is_retryable());
    assert_eq!(raw.get(&record_key).await, before);
    assert_eq!(store.count_active_by_user_id(&u).await.unwrap(), 1);
    assert_eq!(store.get(s1.id()).await.unwrap(), s1);

    // Exactly at creation is fine.
    let outcome = store
        .revoke(&revoke_input("s-1", ts(10, 500)))
        .await
        .unwrap();
    assert_eq!(outcome.as_str(), "revoked");

    // The "now" form: a session dated after the caller's clock is revoked
    // at its own creation time.
    let s2 = active("s-2", "u-1", ts(20, 7));
    store.create(&s2).await.unwrap();
    let outcome = store
        .revoke_now(&revoke_input("s-2", ts(10, 0)))
        .await
        .unwrap();
    let expected = s2
        .clone()
        .revoked(revocation(ts(20, 7)))
        .expect("at creation");
    assert_eq!(outcome, RevokeSessionOutcome::Revoked(expected.clone()));
    assert_eq!(store.get(s2.id()).await.unwrap(), expected);
}

/// Revoke-all revokes every session of the user active when it begins,
/// newest first, whatever its creation time: one dated after the
/// revocation (in the same microsecond or hours later) is revoked at its
/// own creation time. Revoked sessions and other users' stay as they are.
pub async fn revoke_all_revokes_every_session_active_at_the_start<
    S: SessionStore + SessionAdmin,
    R: RawKv,
>(
    store: &S,
    raw: &R,
) {
    let keys = store.key_space().clone();
    let u = user("u-1");
    let at = ts(3, 1_000);
    let a = active("a", "u-1", ts(1, 0));
    let b = active("b", "u-1", ts(2, 0));
    let c = active("c", "u-1", at); // exactly at
    let d = active("d", "u-1", ts(3, 1_500)); // same µs score, 500 ns later
    let e = active("e", "u-1", ts(4, 0)); // later
    let r = active("r", "u-1", ts(0, 0))
        .revoked(revocation(ts(0, 1)))
        .unwrap(); // already revoked: untouched
    let o = active("o", "u-2", ts(1, 0)); // another user: untouched
    for s in [&a, &b, &c, &d, &e, &r, &o] {
        store.create(s).await.unwrap();
    }
    let r_bytes = raw.get(&keys.record_key(&u, r.id())).await;

    let input = revoke_all_input("u-1", at);
    let outcome = store.revoke_all_by_user_id(&input).await.unwrap();
    let expected: Vec<_> = [&e, &d, &c, &b, &a]
        .iter()
        .map(|s| {
            let mut revocation = input.revocation.clone();
            if s.created_at() > at {
                revocation = revocation_with(s.created_at(), "logout", "ops-1");
            }
            (*s).clone().revoked(revocation).unwrap()
        })
        .collect();
    assert_eq!(
        outcome,
        RevokeUserSessionsOutcome::Revoked(expected.clone())
    );
    assert!(outcome.is_consistent_for(&u));
    for s in &expected {
        assert_eq!(&store.get(s.id()).await.unwrap(), s);
    }
    assert_eq!(&store.get(o.id()).await.unwrap(), &o);
    assert_eq!(raw.get(&keys.record_key(&u, r.id())).await, r_bytes);
    assert_eq!(store.count_active_by_user_id(&u).await.unwrap(), 0);
    assert_eq!(
        store.count_active_by_user_id(&user("u-2")).await.unwrap(),
        1
    );
    assert!(raw
        .zrange(&keys.user_active_sessions_key(&u))
        .await
        .is_empty());

    assert_eq!(
        store.revoke_all_by_user_id(&input).await.unwrap(),
        RevokeUserSessionsOutcome::NoActiveSessions
    );
    assert_eq!(
        store
            .revoke_all_by_user_id(&revoke_all_input("nobody", at))
            .await
            .unwrap(),
        RevokeUserSessionsOutcome::NoActiveSessions
    );
    assert!(store.check(CheckMode::Report).await.unwrap().is_clean());
}

/// Clock skew: sessions dated minutes and days after the revocation (a
/// fleet's clocks disagree) are revoked all the same, each at its own
/// creation time, so every record stays valid for the reference.
pub async fn revoke_all_existence_decides_not_clocks<S: SessionStore + SessionAdmin, R: RawKv>(
    store: &S,
    _raw: &R,
) {
    let u = user("u-1");
    let at = ts(0, 0);
    let sessions = [
        active("past", "u-1", ts(-60, 0)),
        active("minutes", "u-1", ts(5 * 60, 0)),
        active("days", "u-1", ts(3 * 86_400, 123)),
        active("years", "u-1", ts(400 * 86_400, 0)),
    ];
    for s in &sessions {
        store.create(s).await.unwrap();
    }
    let report = store
        .revoke_all_with(&revoke_all_input("u-1", at), &RevokeAllOptions::new())
        .await
        .unwrap();
    assert_eq!((report.count, report.drift_repaired), (4, 0));
    for s in &sessions {
        let now = store.get(s.id()).await.unwrap();
        let revoked_at = now.revocation().expect("revoked").at();
        assert_eq!(revoked_at, s.created_at().max(at), "{}", s.id());
    }
    assert_eq!(store.count_active_by_user_id(&u).await.unwrap(), 0);
    assert!(store.check(CheckMode::Report).await.unwrap().is_clean());
}

/// Drift cannot hide a session: with any one entry gone from the active
/// index, revoke-all finds the record through the all-sessions index,
/// revokes it and counts the repair; with an entry gone from the
/// all-sessions index, the active walk has it anyway.
pub async fn revoke_all_finds_sessions_the_active_index_lost<
    S: SessionStore + SessionAdmin,
    R: RawKv,
>(
    store: &S,
    raw: &R,
) {
    let keys = store.key_space().clone();
    for (lost_from, drift) in [("active", 1), ("all", 0)] {
        for gone in 0..4 {
            let u_text = format!("u-{lost_from}-{gone}");
            let u = user(&u_text);
            let sessions: Vec<_> = (0..4)
                .map(|i| active(&format!("{u_text}-s{i}"), &u_text, ts(i, 0)))
                .collect();
            for s in &sessions {
                store.create(s).await.unwrap();
            }
            let index = if lost_from == "active" {
                keys.user_active_sessions_key(&u)
            } else {
                keys.user_sessions_key(&u)
            };
            raw.zrem(&index, sessions[gone as usize].id().as_str())
                .await;
            let report = store
                .revoke_all_with(
                    &revoke_all_input(&u_text, ts(10, 0)),
                    &RevokeAllOptions::new(),
                )
                .await
                .unwrap();
            assert_eq!(report.count, 4, "{u_text}");
            assert_eq!(report.drift_repaired, drift, "{u_text}");
            for s in &sessions {
                assert!(!store.get(s.id()).await.unwrap().is_active(), "{u_text}");
            }
            assert_eq!(store.count_active_by_user_id(&u).await.unwrap(), 0);
        }
    }
}

/// A corrupt record as the first of the first batch, the first of a
/// middle one and the only one of the last (default batch of 100) is
/// skipped and named; every valid session is revoked; the bad bytes stay.
pub async fn revoke_all_skips_corrupt_records_at_any_batch_position<
    S: SessionStore + SessionAdmin,
    R: RawKv,
>(
    store: &S,
    raw: &R,
) {
    let keys = store.key_space().clone();
    let u = user("u-1");
    let sessions: Vec<_> = (0..201)
        .map(|i| active(&format!("s{i:03}"), "u-1", ts(i, 0)))
        .collect();
    for s in &sessions {
        store.create(s).await.unwrap();
    }
    let bad = [0usize, 100, 200];
    for i in bad {
        raw.set(&keys.record_key(&u, sessions[i].id()), b"{not json")
            .await;
    }
    let err = store
        .revoke_all_with(&revoke_all_input("u-1", ts(0, 0)), &RevokeAllOptions::new())
        .await
        .expect_err("partially revoked");
    assert_eq!(err.kind(), ErrorKind::PartiallyRevoked, "{err}");
    assert!(!err.is_retryable());
    let report = err.revoke_all_report().expect("the report");
    assert_eq!(report.count, 198);
    let mut named: Vec<(&str, &str)> = report
        .unrevocable
        .iter()
        .map(|x| (x.member.as_deref().unwrap_or(""), x.reason))
        .collect();
    named.sort_unstable();
    assert_eq!(
        named,
        [
            ("s000", "corrupt_record"),
            ("s100", "corrupt_record"),
            ("s200", "corrupt_record")
        ]
    );
    for (i, s) in sessions.iter().enumerate() {
        let key = keys.record_key(&u, s.id());
        if bad.contains(&i) {
            assert_eq!(raw.get(&key).await.as_deref(), Some(&b"{not json"[..]));
        } else {
            assert!(!store.get(s.id()).await.unwrap().is_active(), "s{i}");
        }
    }
    assert_eq!(store.count_active_by_user_id(&u).await.unwrap(), 3);
}

/// An index of the wrong type is named (nothing written over it) and the
/// other index still reaches every session.
pub async fn revoke_all_reaches_every_session_past_a_wrong_type_index<
    S: SessionStore + SessionAdmin,
    R: RawKv,
>(
    store: &S,
    raw: &R,
) {
    let keys = store.key_space().clone();
    for which in ["active", "all"] {
        let u_text = format!("u-{which}");
        let u = user(&u_text);
        let sessions: Vec<_> = (0..3)
            .map(|i| active(&format!("{which}-s{i}"), &u_text, ts(i, 0)))
            .collect();
        for s in &sessions {
            store.create(s).await.unwrap();
        }
        let index = if which == "active" {
            keys.user_active_sessions_key(&u)
        } else {
            keys.user_sessions_key(&u)
        };
        raw.set(&index, b"not a sorted set").await;
        let err = store
            .revoke_all_by_user_id(&revoke_all_input(&u_text, ts(10, 0)))
            .await
            .expect_err("partially revoked");
        assert_eq!(err.kind(), ErrorKind::PartiallyRevoked, "{err}");
        let report: &RevokeAllReport = err.revoke_all_report().unwrap();
        assert_eq!(report.count, 3, "{which}");
        assert_eq!(report.unrevocable.len(), 1, "{which}");
        assert_eq!(report.unrevocable[0].key, index);
        assert_eq!(report.unrevocable[0].reason, "wrong_type");
        assert_eq!(
            raw.get(&index).await.as_deref(),
            Some(&b"not a sorted set"[..])
        );
        for s in &sessions {
            assert!(!store.get(s.id()).await.unwrap().is_active(), "{which}");
        }
    }
}

/// `list` is newest first by the records' nanosecond timestamps (not the
/// microsecond scores), ties by id bytes ascending, revoked included.
pub async fn list_newest_first_ties_by_id_bytes<S: SessionStore + SessionAdmin, R: RawKv>(
    store: &S,
    _raw: &R,
) {
    let u = user("u-1");
    let tie = ts(3, 0);
    let sessions = [
        active("y", "u-1", ts(1, 0)),
        active("b", "u-1", tie),
        active("é", "u-1", tie),
        active("a", "u-1", tie),
        active("B", "u-1", tie),
        active("z", "u-1", ts(3, 1)), // same µs as the tie, 1 ns later
        active("x", "u-1", ts(5, 0))
            .revoked(revocation(ts(6, 0)))
            .unwrap(),
        active("other-user", "u-2", ts(4, 0)),
    ];
    for s in &sessions {
        store.create(s).await.unwrap();
    }
    let listed = store.list_by_user_id(&u).await.unwrap();
    let ids: Vec<&str> = listed.iter().map(|s| s.id().as_str()).collect();
    assert_eq!(ids, ["x", "z", "B", "a", "b", "é", "y"]);
    assert_eq!(listed[0].status().as_str(), "revoked");
}

/// Garbage at a record key: `get` and `revoke` fail with `corrupt` naming
/// the key, and nothing is written.
pub async fn corrupt_record_is_reported_with_its_key<S: SessionStore + SessionAdmin, R: RawKv>(
    store: &S,
    raw: &R,
) {
    let keys = store.key_space().clone();
    let key = keys.record_key(&user("u-1"), &id("g"));
    plant_record(raw, &keys, &user("u-1"), &id("g"), b"{not json").await;
    let err = assert_error(store.get(&id("g")).await, ErrorKind::Corrupt, &key);
    assert_eq!(err.detail_kind(), Some("corrupt_record"));
    assert!(std::error::Error::source(&err).is_some());
    assert_error(
        store.revoke(&revoke_input("g", ts(1, 0))).await,
        ErrorKind::Corrupt,
        &key,
    );
    assert_eq!(raw.get(&key).await.as_deref(), Some(&b"{not json"[..]));

    // A record with an unknown field is just as corrupt.
    let mut json: serde_json::Value =
        serde_json::from_slice(&codec::encode(&active("h", "u-1", ts(0, 0)))).unwrap();
    json["extra"] = serde_json::json!(1);
    let key_h = keys.record_key(&user("u-1"), &id("h"));
    plant_record(
        raw,
        &keys,
        &user("u-1"),
        &id("h"),
        json.to_string().as_bytes(),
    )
    .await;
    assert_error(store.get(&id("h")).await, ErrorKind::Corrupt, &key_h);
}

/// A valid record stored under another id's key is corrupt.
pub async fn record_under_another_ids_key_is_corrupt<S: SessionStore + SessionAdmin, R: RawKv>(
    store: &S,
    raw: &R,
) {
    let keys = store.key_space().clone();
    let x = active("x", "u-1", ts(0, 0));
    let key_y = keys.record_key(&user("u-1"), &id("y"));
    plant_record(raw, &keys, &user("u-1"), &id("y"), &codec::encode(&x)).await;
    let err = assert_error(store.get(&id("y")).await, ErrorKind::Corrupt, &key_y);
    assert!(err.to_string().contains("id"), "{err}");
    assert_error(
        store.revoke(&revoke_input("y", ts(1, 0))).await,
        ErrorKind::Corrupt,
        &key_y,
    );
}

/// `list` reports an index naming a missing or foreign session (naming
/// the index) and an undecodable record (naming the record).
pub async fn list_reports_index_corruption<S: SessionStore + SessionAdmin, R: RawKv>(
    store: &S,
    raw: &R,
) {
    let keys = store.key_space().clone();
    let score = |s: &authsession_driver::core::Session| IndexScore::of(s.created_at()).as_f64();

    // Dangling member.
    let u1 = user("u-ghost");
    let a = active("a1", "u-ghost", ts(1, 0));
    store.create(&a).await.unwrap();
    raw.zadd(&keys.user_sessions_key(&u1), "ghost", 5.0).await;
    let err = assert_error(
        store.list_by_user_id(&u1).await,
        ErrorKind::Corrupt,
        &keys.user_sessions_key(&u1),
    );
    assert_eq!(err.detail_kind(), Some("dangling_index_member"));

    // Another user's session.
    let u2 = user("u-foreign");
    let o = active("o2", "u-owner", ts(1, 0));
    store.create(&o).await.unwrap();
    raw.zadd(&keys.user_sessions_key(&u2), "o2", score(&o))
        .await;
    let err = assert_error(
        store.list_by_user_id(&u2).await,
        ErrorKind::Corrupt,
        &keys.user_sessions_key(&u2),
    );
    // Tagged: the member names u-foreign's own record key, where nothing is.
    assert_eq!(err.detail_kind(), Some(foreign_member_detail(&keys)));
    assert_eq!(store.list_by_user_id(&user("u-owner")).await.unwrap(), [o]);

    // Undecodable record behind a valid member.
    let u3 = user("u-garbage");
    let g = active("g3", "u-garbage", ts(1, 0));
    store.create(&g).await.unwrap();
    raw.set(&keys.record_key(&u3, g.id()), b"[]").await;
    assert_error(
        store.list_by_user_id(&u3).await,
        ErrorKind::Corrupt,
        &keys.record_key(&u3, g.id()),
    );

    // A member that is not a valid id.
    let u4 = user("u-badmember");
    raw.zadd(&keys.user_sessions_key(&u4), " padded ", 1.0)
        .await;
    let err = assert_error(
        store.list_by_user_id(&u4).await,
        ErrorKind::Corrupt,
        &keys.user_sessions_key(&u4),
    );
    assert_eq!(err.detail_kind(), Some("invalid_index_member"));
}

/// `revoke_all` names a missing, foreign or undecodable session in the
/// active index (`partially_revoked`, the rest revoked), and takes a
/// revoked one out of the active index (drift, repaired and counted).
pub async fn revoke_all_names_bad_members_and_revokes_the_rest<
    S: SessionStore + SessionAdmin,
    R: RawKv,
>(
    store: &S,
    raw: &R,
) {
    let keys = store.key_space().clone();
    let at = ts(100, 0);

    // Each case: a healthy active session plus one planted problem.
    let cases: [(&str, &str, &str); 4] = [
        ("u-revoked", "", ""),
        ("u-ghost", "ghost", "dangling_index_member"),
        ("u-foreign", "fo", foreign_member_detail(&keys)),
        ("u-garbage", "ga", "corrupt_record"),
    ];
    for (n, (u_text, _, _)) in cases.iter().enumerate() {
        let healthy = active(&format!("healthy-{n}"), u_text, ts(1, 0));
        store.create(&healthy).await.unwrap();
    }
    let active_key = |u: &str| keys.user_active_sessions_key(&user(u));

    let r = active("rv", "u-revoked", ts(2, 0));
    store.create(&r).await.unwrap();
    store.revoke(&revoke_input("rv", ts(3, 0))).await.unwrap();
    let rv_bytes = raw.get(&keys.record_key(&user("u-revoked"), r.id())).await;
    raw.zadd(
        &active_key("u-revoked"),
        "rv",
        IndexScore::of(r.created_at()).as_f64(),
    )
    .await;

    raw.zadd(&active_key("u-ghost"), "ghost", 7.0).await;

    let o = active("fo", "u-elsewhere", ts(2, 0));
    store.create(&o).await.unwrap();
    raw.zadd(
        &active_key("u-foreign"),
        "fo",
        IndexScore::of(o.created_at()).as_f64(),
    )
    .await;

    let g = active("ga", "u-garbage", ts(2, 0));
    store.create(&g).await.unwrap();
    let garbage_key = keys.record_key(&user("u-garbage"), g.id());
    raw.set(&garbage_key, b"\xff\xfe").await;

    for (n, (u_text, member, reason)) in cases.iter().enumerate() {
        let result = store
            .revoke_all_by_user_id(&revoke_all_input(u_text, at))
            .await;
        if member.is_empty() {
            // A revoked record in the active index: drift, repaired.
            let outcome = result.unwrap();
            assert_eq!(outcome.sessions().len(), 1);
        } else {
            let err = result.expect_err("partially revoked");
            assert_eq!(err.kind(), ErrorKind::PartiallyRevoked, "{err}");
            assert_eq!(err.to_string().lines().count(), 1, "{err}");
            let report = err.revoke_all_report().unwrap();
            assert_eq!(report.count, 1, "{u_text}");
            assert_eq!(report.unrevocable.len(), 1, "{u_text}");
            let named = &report.unrevocable[0];
            assert_eq!(named.member.as_deref(), Some(*member), "{u_text}");
            assert_eq!(named.reason, *reason, "{u_text}");
            if *reason == "corrupt_record" {
                assert_eq!(named.key, garbage_key);
            }
        }
        let healthy = store.get(&id(&format!("healthy-{n}"))).await.unwrap();
        assert!(!healthy.is_active(), "{u_text}: the healthy one is revoked");
    }
    // Another user's session is not ours to revoke; the revoked one is
    // unchanged and out of the active index.
    assert!(store.get(o.id()).await.unwrap().is_active());
    assert_eq!(
        raw.get(&keys.record_key(&user("u-revoked"), r.id())).await,
        rv_bytes
    );
    assert_eq!(
        store
            .count_active_by_user_id(&user("u-revoked"))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        raw.get(&garbage_key).await.as_deref(),
        Some(&b"\xff\xfe"[..])
    );
}

fn kinds_and_keys(report: &authsession_driver::CheckReport) -> BTreeSet<(String, String)> {
    report
        .problems
        .iter()
        .map(|p| (p.kind().to_owned(), p.key().to_owned()))
        .collect()
}

/// `check` reports each kind of index drift; `check(true)` repairs it and
/// a second `check` is clean; the operations work again afterwards.
pub async fn check_finds_and_repairs_index_drift<S: SessionStore + SessionAdmin, R: RawKv>(
    store: &S,
    raw: &R,
) {
    let keys = store.key_space().clone();
    let u = user("u-1");
    let all = keys.user_sessions_key(&u);
    let act = keys.user_active_sessions_key(&u);

    let healthy = active("healthy", "u-1", ts(1, 0));
    store.create(&healthy).await.unwrap();
    // A record written without its index entries.
    let unindexed = active("unindexed", "u-1", ts(2, 0));
    plant_record(raw, &keys, &u, unindexed.id(), &codec::encode(&unindexed)).await;
    // A revoked session left in the active index.
    let revoked = active("revoked", "u-1", ts(3, 0));
    store.create(&revoked).await.unwrap();
    store
        .revoke(&revoke_input("revoked", ts(4, 0)))
        .await
        .unwrap();
    raw.zadd(
        &act,
        "revoked",
        IndexScore::of(revoked.created_at()).as_f64(),
    )
    .await;
    // A member without a record, and another user's session.
    raw.zadd(&all, "ghost", 1.0).await;
    let foreign = active("foreign", "u-2", ts(5, 0));
    store.create(&foreign).await.unwrap();
    raw.zadd(
        &all,
        "foreign",
        IndexScore::of(foreign.created_at()).as_f64(),
    )
    .await;
    // A misscored entry.
    raw.zadd(&all, "healthy", 12_345.0).await;

    let report = store.check(CheckMode::Report).await.unwrap();
    assert!(report.repaired.is_empty());
    assert_eq!(report.records, 4);
    let expected: BTreeSet<(String, String)> = [
        ("missing_index_entry", &all), // unindexed
        ("missing_index_entry", &act), // unindexed
        ("missing_index_entry", &all), // healthy misscored
        ("stray_index_entry", &act),   // revoked
        ("stray_index_entry", &all),   // ghost, foreign
    ]
    .into_iter()
    .map(|(k, key)| (k.to_owned(), key.clone()))
    .collect();
    assert_eq!(kinds_and_keys(&report), expected, "{report:#?}");
    assert_eq!(report.problems.len(), 6, "{report:#?}");
    assert!(report.problems.iter().all(|p| p.is_repairable()));
    // check without repair wrote nothing.
    assert_eq!(store.check(CheckMode::Report).await.unwrap(), report);

    let repaired = store.check(CheckMode::Repair).await.unwrap();
    assert_eq!(repaired.repaired, report.problems);
    assert!(repaired.is_resolved(), "{repaired:#?}");
    assert_eq!(repaired.problems, report.problems);
    let after = store.check(CheckMode::Report).await.unwrap();
    assert!(after.is_clean(), "{after:#?}");
    assert!(after.repaired.is_empty());

    let ids: Vec<String> = store
        .list_by_user_id(&u)
        .await
        .unwrap()
        .iter()
        .map(|s| s.id().as_str().to_owned())
        .collect();
    assert_eq!(ids, ["revoked", "unindexed", "healthy"]);
    let outcome = store
        .revoke_all_by_user_id(&revoke_all_input("u-1", ts(50, 0)))
        .await
        .unwrap();
    assert_eq!(outcome.sessions().len(), 2);
    assert!(store.check(CheckMode::Report).await.unwrap().is_clean());
}

/// Undecodable records and keys that name no id are reported and left for
/// a human; `check(true)` does not touch them.
pub async fn check_reports_unrepairable_records<S: SessionStore + SessionAdmin, R: RawKv>(
    store: &S,
    raw: &R,
) {
    let keys = store.key_space().clone();
    let session_prefix = keys.prefix(KeyKind::Record);
    let garbage_key = keys.record_key(&user("u-1"), &id("garbage"));
    plant_record(raw, &keys, &user("u-1"), &id("garbage"), b"not a record").await;
    let unparsable = format!("{session_prefix}!!not-base64!!");
    raw.set(&unparsable, b"{}").await;
    store
        .create(&active("fine", "u-1", ts(0, 0)))
        .await
        .unwrap();

    let report = store.check(CheckMode::Report).await.unwrap();
    assert_eq!(report.records, 3);
    let expected: BTreeSet<(String, String)> = [
        ("corrupt_record".to_owned(), garbage_key.clone()),
        ("unparsable_key".to_owned(), unparsable.clone()),
    ]
    .into_iter()
    .collect();
    assert_eq!(kinds_and_keys(&report), expected, "{report:#?}");
    assert!(report.problems.iter().all(|p| !p.is_repairable()));

    let repaired = store.check(CheckMode::Repair).await.unwrap();
    assert!(repaired.repaired.is_empty());
    assert_eq!(repaired.remaining(), 2);
    assert_eq!(kinds_and_keys(&repaired), expected);
    assert_eq!(
        raw.get(&garbage_key).await.as_deref(),
        Some(&b"not a record"[..])
    );
    let json = serde_json::to_value(&repaired).unwrap();
    assert_eq!(json["problems"].as_array().unwrap().len(), 2);
    assert!(json["problems"][0]["message"].as_str().unwrap().len() > 10);
}

/// `purge` deletes every key of the store's key space and nothing else.
pub async fn purge_deletes_only_the_key_space<S: SessionStore + SessionAdmin, R: RawKv>(
    store: &S,
    raw: &R,
) {
    let keys = store.key_space().clone();
    store.create(&active("p1", "u-1", ts(0, 0))).await.unwrap();
    store.create(&active("p2", "u-2", ts(0, 0))).await.unwrap();
    raw.set("outside:the:key:space", b"keep").await;
    // 2 records + 2 users x 2 indexes (+ 2 owner keys when tagged).
    let owners = if keys.layout() == Layout::Tagged {
        2
    } else {
        0
    };
    assert_eq!(store.purge().await.unwrap(), 6 + owners);
    assert_error(
        store.get(&id("p1")).await,
        ErrorKind::NotFound,
        &lookup_key(&keys, &id("p1")),
    );
    assert_eq!(store.check(CheckMode::Report).await.unwrap().records, 0);
    assert_eq!(
        raw.get("outside:the:key:space").await.as_deref(),
        Some(&b"keep"[..])
    );
    assert_eq!(store.purge().await.unwrap(), 0);
}

/// A key of the wrong type (a string where an index belongs, a sorted set
/// where a record belongs) is corrupt data naming the key, and a plan
/// touching one writes nothing at all.
pub async fn wrong_key_types_are_corrupt_and_write_nothing<
    S: SessionStore + SessionAdmin,
    R: RawKv,
>(
    store: &S,
    raw: &R,
) {
    let keys = store.key_space().clone();
    let u = user("u-1");
    let active_key = keys.user_active_sessions_key(&u);
    raw.set(&active_key, b"not a sorted set").await;

    let s = active("s-1", "u-1", ts(0, 0));
    let err = assert_error(store.create(&s).await, ErrorKind::Corrupt, &active_key);
    assert_eq!(err.detail_kind(), Some("wrong_type"));
    assert_eq!(raw.get(&keys.record_key(&u, s.id())).await, None);
    assert!(raw.zrange(&keys.user_sessions_key(&u)).await.is_empty());
    assert_error(
        store.count_active_by_user_id(&u).await,
        ErrorKind::Corrupt,
        &active_key,
    );
    let err = store
        .revoke_all_by_user_id(&revoke_all_input("u-1", ts(1, 0)))
        .await
        .expect_err("partially revoked");
    assert_eq!(err.kind(), ErrorKind::PartiallyRevoked, "{err}");
    let report = err.revoke_all_report().unwrap();
    assert_eq!(report.unrevocable[0].key, active_key);
    assert_eq!(
        raw.get(&active_key).await.as_deref(),
        Some(&b"not a sorted set"[..])
    );

    // A sorted set where a record belongs: get, create, and a list whose
    // index names it.
    let u2 = user("u-2");
    let record_key = keys.record_key(&u2, &id("z"));
    if let Some(owner) = keys.owner_key(&id("z")) {
        raw.set(&owner, b"u-2").await;
    }
    raw.zadd(&record_key, "m", 1.0).await;
    assert_error(store.get(&id("z")).await, ErrorKind::Corrupt, &record_key);
    assert_error(
        store.create(&active("z", "u-2", ts(0, 0))).await,
        ErrorKind::Corrupt,
        &record_key,
    );
    assert!(raw.zrange(&keys.user_sessions_key(&u2)).await.is_empty());
    raw.zadd(&keys.user_sessions_key(&u2), "z", 1.0).await;
    let err = assert_error(
        store.list_by_user_id(&u2).await,
        ErrorKind::Corrupt,
        &record_key,
    );
    assert_eq!(err.detail_kind(), Some("wrong_type"));
}

/// What `list`/`revoke_all` call an index member that names another
/// user's session: `foreign_index_member` where the record key depends on
/// the id alone; in the tagged layout the member names a record key of
/// the index's own user, where nothing is (`dangling_index_member`).
fn foreign_member_detail(keys: &KeySpace) -> &'static str {
    match keys.layout() {
        Layout::Tagged => "dangling_index_member",
        _ => "foreign_index_member",
    }
}

/// `get_for_user` finds a user's own session in one read and answers
/// `not_found` for another user's (naming the key it read).
pub async fn get_for_user_of_another_users_session_is_not_found<
    S: SessionStore + SessionAdmin,
    R: RawKv,
>(
    store: &S,
    _raw: &R,
) {
    let keys = store.key_space().clone();
    let s = active("mine", "u-1", ts(1, 0));
    store.create(&s).await.unwrap();
    assert_eq!(store.get_for_user(&user("u-1"), s.id()).await.unwrap(), s);
    let err = assert_error(
        store.get_for_user(&user("u-2"), s.id()).await,
        ErrorKind::NotFound,
        &keys.record_key(&user("u-2"), s.id()),
    );
    assert!(!err.is_retryable());
    assert_error(
        store.get_for_user(&user("u-1"), &id("other")).await,
        ErrorKind::NotFound,
        &keys.record_key(&user("u-1"), &id("other")),
    );
    // Revoked sessions are found too.
    let revoked = store.revoke(&revoke_input("mine", ts(2, 0))).await.unwrap();
    let RevokeSessionOutcome::Revoked(revoked) = revoked else {
        panic!("expected revoked, got {revoked:?}");
    };
    assert_eq!(
        store.get_for_user(&user("u-1"), s.id()).await.unwrap(),
        revoked
    );
}

/// Tagged layout: an id belongs to one user across the key space — the
/// same id under another user is a `conflict` naming the owner key, and
/// nothing of the second user is written.
pub async fn tagged_same_id_under_another_user_is_a_conflict<
    S: SessionStore + SessionAdmin,
    R: RawKv,
>(
    store: &S,
    raw: &R,
) {
    let keys = store.key_space().clone();
    assert_eq!(keys.layout(), Layout::Tagged);
    let first = active("shared-id", "u-1", ts(1, 0));
    store.create(&first).await.unwrap();
    let owner = keys.owner_key(first.id()).unwrap();
    let second = active("shared-id", "u-2", ts(2, 0));
    let err = assert_error(store.create(&second).await, ErrorKind::Conflict, &owner);
    assert!(!err.is_retryable());
    let u2 = user("u-2");
    assert_eq!(raw.get(&keys.record_key(&u2, second.id())).await, None);
    assert!(raw.zrange(&keys.user_sessions_key(&u2)).await.is_empty());
    assert!(raw
        .zrange(&keys.user_active_sessions_key(&u2))
        .await
        .is_empty());
    assert_eq!(raw.get(&owner).await.as_deref(), Some(&b"u-1"[..]));
    assert_eq!(store.get(first.id()).await.unwrap(), first);
    assert_error(
        store.get_for_user(&u2, first.id()).await,
        ErrorKind::NotFound,
        &keys.record_key(&u2, first.id()),
    );
    assert_eq!(store.count_active_by_user_id(&u2).await.unwrap(), 0);
    // Even once the first user's session is revoked, the id stays theirs.
    store
        .revoke(&revoke_input("shared-id", ts(3, 0)))
        .await
        .unwrap();
    assert_error(store.create(&second).await, ErrorKind::Conflict, &owner);
}

/// Tagged layout: an owner key without its record (a crash between the
/// two writes of `create`) reads as `not_found`, and blocks the id only
/// for another user: its own user can still create it.
pub async fn tagged_dangling_owner_key_reads_as_not_found<
    S: SessionStore + SessionAdmin,
    R: RawKv,
>(
    store: &S,
    raw: &R,
) {
    let keys = store.key_space().clone();
    assert_eq!(keys.layout(), Layout::Tagged);
    let (u1, u2) = (user("u-1"), user("u-2"));
    let dangling = id("half-created");
    let owner = keys.owner_key(&dangling).unwrap();
    raw.set(&owner, b"u-1").await;
    let record_key = keys.record_key(&u1, &dangling);

    assert_error(store.get(&dangling).await, ErrorKind::NotFound, &record_key);
    assert_error(
        store.get_for_user(&u1, &dangling).await,
        ErrorKind::NotFound,
        &record_key,
    );
    assert_error(
        store.revoke(&revoke_input("half-created", ts(5, 0))).await,
        ErrorKind::NotFound,
        &record_key,
    );
    assert!(store.list_by_user_id(&u1).await.unwrap().is_empty());

    // Another user: conflict, nothing written.
    let theirs = active("half-created", "u-2", ts(1, 0));
    assert_error(store.create(&theirs).await, ErrorKind::Conflict, &owner);
    assert_eq!(raw.get(&keys.record_key(&u2, &dangling)).await, None);
    assert!(raw.zrange(&keys.user_sessions_key(&u2)).await.is_empty());

    // The owner itself: the create completes.
    let mine = active("half-created", "u-1", ts(1, 0));
    store.create(&mine).await.unwrap();
    assert_eq!(store.get(&dangling).await.unwrap(), mine);
    assert_eq!(store.list_by_user_id(&u1).await.unwrap(), [mine]);
    assert_eq!(raw.get(&owner).await.as_deref(), Some(&b"u-1"[..]));
}

/// Tagged layout: every key of a user — records, the all, active and
/// revoked indexes — is in the user's hash slot (the slot of its tag), so
/// each mutation is one script in one slot; an owner key is in its id's
/// slot. Checked with the client's slot function and, where the server is
/// a cluster, `CLUSTER KEYSLOT`.
pub async fn tagged_keys_of_a_user_share_its_slot<S: SessionStore + SessionAdmin, R: RawKv>(
    store: &S,
    raw: &R,
) {
    use base64::Engine as _;
    use redis::cluster_routing::Slot;
    let keys = store.key_space().clone();
    assert_eq!(keys.layout(), Layout::Tagged);
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);

    for (n, u_text) in ["u-1", "someone@example.com", "ユーザー"]
        .iter()
        .enumerate()
    {
        let u = user(u_text);
        let a = active(&format!("a-{n}"), u_text, ts(1, 0));
        let b = active(&format!("b-{n}"), u_text, ts(2, 0));
        let c = active(&format!("c-{n}"), u_text, ts(3, 0))
            .revoked(revocation(ts(4, 0)))
            .unwrap();
        for s in [&a, &b, &c] {
            store.create(s).await.unwrap();
        }
        store
            .revoke(&revoke_input(b.id().as_str(), ts(5, 0)))
            .await
            .unwrap();

        let records: Vec<String> = [&a, &b, &c]
            .iter()
            .map(|s| keys.record_key(&u, s.id()))
            .collect();
        let indexes = [
            keys.user_sessions_key(&u),
            keys.user_active_sessions_key(&u),
            keys.user_revoked_sessions_key(&u),
        ];
        for (key, s) in records.iter().zip([&a, &b, &c]) {
            let stored = raw.get(key).await.expect("record written");
            let expected = store.get(s.id()).await.unwrap();
            assert_eq!(stored, codec::encode(&expected), "{key}");
        }
        // The revoked index is written only under a retention; its slot
        // is checked by name below.
        for key in indexes.iter().take(2) {
            assert!(!raw.zrange(key).await.is_empty(), "{key} was written");
        }
        let tag = format!("{{{}}}", b64(u_text));
        let slot = Slot::for_key(&tag);
        let server_slot = raw.key_slot(&tag).await;
        for key in records.iter().chain(&indexes) {
            assert!(key.contains(&tag), "{key} carries the user's tag {tag}");
            assert_eq!(Slot::for_key(key), slot, "{key}");
            assert_eq!(raw.key_slot(key).await, server_slot, "{key}");
        }
        for s in [&a, &b, &c] {
            let owner = keys.owner_key(s.id()).unwrap();
            let id_tag = format!("{{{}}}", b64(s.id().as_str()));
            assert_eq!(Slot::for_key(&owner), Slot::for_key(&id_tag), "{owner}");
            assert_eq!(raw.key_slot(&owner).await, raw.key_slot(&id_tag).await);
            assert_eq!(raw.get(&owner).await.as_deref(), Some(u_text.as_bytes()));
        }
    }
}
