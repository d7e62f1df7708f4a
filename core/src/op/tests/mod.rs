//! The operations, run through the reference loop over the pure model:
//! plans, outcomes, confirmation of anomalies, concurrent changes injected
//! between a read and an apply, the session limit, retention, batched
//! revoke-all and pages.
//!
//! One file per operation or concern; this one holds what they share: the
//! fixtures (times, ids, policies) and the runners that count or cut short
//! a run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod count;
mod create;
mod get;
mod limit;
mod list;
mod pages;
mod retention;
mod revoke;
mod revoke_all;
mod sequencing;

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

fn revoke_all(
    kv: &mut MemoryKv,
    keys: &KeySpace,
    policy: Policy,
    input: RevokeUserSessionsInput,
) -> RevokeAllReport {
    run(kv, RevokeAll::new(keys, policy, input, true), ATTEMPTS).unwrap()
}

/// s0..s9 created one second apart, plus one created later.
fn ten_sessions(kv: &mut MemoryKv, keys: &KeySpace) {
    for i in 0..10 {
        create(kv, keys, &session(&format!("s{i}"), "user-1", t(i, 0)));
    }
    create(kv, keys, &session("later", "user-1", t(100, 0)));
}

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
