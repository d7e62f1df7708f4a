//! `transitions`: arbitrary operation sequences on the pure state machine.

use std::collections::BTreeMap;

use arbitrary::{Arbitrary, Unstructured};

use crate::is_snake_case;
use authsession_core::audit::{audit, Problem, Report};
use authsession_core::model::{MemoryKv, Violation};
use authsession_core::plan::{OnViolation, Plan, Write};
use authsession_core::transition::{self, Step, TransitionError};
use authsession_core::{
    newest_first, sort_newest_first, ClientPublicKey, DeviceSessionId, IndexScore, KeySpace,
    Revocation, RevokeActorId, RevokeActorType, RevokeReasonCode, RevokeSessionInput,
    RevokeSessionOutcome, RevokeUserSessionsInput, RevokeUserSessionsOutcome, Session, Timestamp,
    UserId, ValidationError,
};

/// A few ids and users, so operations collide. They include characters the
/// codec escapes and multi-byte text, which also reach the keys.
const IDS: &[&str] = &["dev-1", "dev-2", "d<3>&", "dév-4", "a\u{2028}5", "dev-6"];
const USERS: &[&str] = &["user-1", "user<&>2", "ユーザー3"];
const REASONS: &[&str] = &["user_logout", "admin_revoke", "compromised"];

/// Instants clustered so that `created_at` values tie, differ by less than
/// the index's microsecond resolution, and land where an `f64` score can
/// no longer tell microseconds apart (year 9999) or is negative (1969).
/// One era starts at Go's zero time, which is not a valid `created_at`.
const ERAS_UNIX_SECONDS: &[i128] = &[
    1_714_979_289,   // 2024-05-06T07:08:09Z
    -2,              // 1969-12-31T23:59:58Z
    253_402_300_790, // 9999-12-31T23:59:50Z
    -62_135_596_800, // 0001-01-01T00:00:00Z
];
const SUB_SECOND_NANOS: &[i128] = &[0, 1, 999, 1_000, 1_001, 500_000, 999_999_999];

/// An instant from a small grid (see [`ERAS_UNIX_SECONDS`]).
#[derive(Debug, Clone, Copy, Arbitrary)]
struct When {
    era: u8,
    second: u8,
    sub: u8,
}

impl When {
    fn timestamp(self) -> Timestamp {
        let era = pick(ERAS_UNIX_SECONDS, self.era);
        let sub = pick(SUB_SECOND_NANOS, self.sub);
        let nanos = (era + i128::from(self.second % 4)) * 1_000_000_000 + sub;
        Timestamp::from_unix_nanos(nanos).expect("grid instants are in range")
    }
}

/// A state-changing operation (or a list, which reads in two steps).
#[derive(Debug, Clone, Arbitrary)]
enum Action {
    /// Create a session; `revoked` creates it already revoked (at the later
    /// of its instant and `created`).
    Create {
        id: u8,
        user: u8,
        key: u8,
        created: When,
        revoked: Option<(When, u8)>,
    },
    Revoke {
        id: u8,
        at: When,
        reason: u8,
    },
    RevokeAll {
        user: u8,
        at: When,
        reason: u8,
    },
    List {
        user: u8,
    },
}

#[derive(Debug, Clone, Arbitrary)]
enum Op {
    Do(Action),
    Get {
        id: u8,
    },
    Count {
        user: u8,
    },
    /// `other` runs to completion in the middle of `main`: after `main`'s
    /// first read (the index, or the record for a single revoke), before
    /// its further reads and its apply — the race the `Confirm` step and
    /// `Retry` violations exist for. The result must equal one of the two
    /// serial orders.
    Concurrent {
        main: Action,
        other: Action,
    },
    /// Damage the stored state behind the transitions' back, then repair it
    /// as an operator would with `authsession check --repair`.
    Tamper(Tamper),
}

/// Raw damage to the key space (what a bug, a partial write or a human
/// with `redis-cli` could leave behind).
#[derive(Debug, Clone, Arbitrary)]
enum Tamper {
    /// Remove a member from one of a user's indexes.
    DropIndexEntry { user: u8, id: u8, active: bool },
    /// Add (or re-score) a member in one of a user's indexes.
    AddIndexEntry {
        user: u8,
        id: u8,
        active: bool,
        at: When,
    },
    /// Delete a record, leaving its index entries behind.
    DeleteRecord { id: u8 },
    /// Overwrite (or plant) a record with bytes that do not decode as the
    /// record of its key.
    CorruptRecord { id: u8, payload: u8 },
}

/// Record bytes that must be rejected under any id in [`IDS`].
const CORRUPT_PAYLOADS: &[&[u8]] = &[
    b"",
    b"{",
    b"null",
    b"{}",
    br#"{"device_session_id":"someone-else","user_id":"user-1","client_public_key_base64":"6CNOOq9vU5hNuRjuSnPSuoYdvt6iZpSYfEDOihlBz8I=","status":"active","created_at":"2024-05-06T07:08:09Z"}"#,
    br#"{"device_session_id":"dev-1","user_id":"user-1","client_public_key_base64":"6CNOOq9vU5hNuRjuSnPSuoYdvt6iZpSYfEDOihlBz8I=","status":"paused","created_at":"2024-05-06T07:08:09Z"}"#,
];

fn pick<T: Copy>(items: &[T], index: u8) -> T {
    let at = usize::from(index) % items.len();
    *items.get(at).expect("index is reduced modulo the length")
}

fn id(index: u8) -> DeviceSessionId {
    DeviceSessionId::parse(pick(IDS, index)).expect("listed ids are valid")
}

fn user(index: u8) -> UserId {
    UserId::parse(pick(USERS, index)).expect("listed users are valid")
}

fn revocation(at: Timestamp, reason: u8) -> Result<Revocation, ValidationError> {
    let actor_id = if reason.is_multiple_of(2) {
        ""
    } else {
        "admin<1>"
    };
    Revocation::new(
        at,
        RevokeReasonCode::parse(pick(REASONS, reason)).expect("listed codes are valid"),
        RevokeActorType::parse("user").expect("literal code is valid"),
        RevokeActorId::parse(actor_id).expect("literal actor id is valid"),
    )
}

/// An [`Action`] with its domain values built.
#[derive(Debug, Clone)]
enum Prepared {
    Create(Session),
    Revoke(RevokeSessionInput),
    RevokeAll(RevokeUserSessionsInput),
    List(UserId),
    /// The action names Go's zero time, so no valid value exists for it.
    Nothing,
}

fn prepare(action: &Action) -> Prepared {
    match *action {
        Action::Create {
            id: i,
            user: w,
            key,
            created,
            revoked,
        } => {
            let Ok(session) = Session::active(
                id(i),
                user(w),
                ClientPublicKey::from([key; 32]),
                created.timestamp(),
            ) else {
                return Prepared::Nothing;
            };
            match revoked {
                None => Prepared::Create(session),
                Some((at, reason)) => {
                    let at = at.timestamp().max(session.created_at());
                    let revocation = revocation(at, reason).expect("after a valid created_at");
                    Prepared::Create(session.revoked(revocation).expect("not before creation"))
                }
            }
        }
        Action::Revoke { id: i, at, reason } => match revocation(at.timestamp(), reason) {
            Ok(revocation) => Prepared::Revoke(RevokeSessionInput {
                device_session_id: id(i),
                revocation,
            }),
            Err(_) => Prepared::Nothing,
        },
        Action::RevokeAll {
            user: w,
            at,
            reason,
        } => match revocation(at.timestamp(), reason) {
            Ok(revocation) => Prepared::RevokeAll(RevokeUserSessionsInput {
                user_id: user(w),
                revocation,
            }),
            Err(_) => Prepared::Nothing,
        },
        Action::List { user: w } => Prepared::List(user(w)),
    }
}

/// What an action reported, comparable between the store and the model.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Nothing,
    /// The created session, or what the violated plan said.
    Created(Result<Session, OnViolation>),
    /// The outcome, or the error's kind.
    Revoked(Result<RevokeSessionOutcome, &'static str>),
    RevokedAll(RevokeUserSessionsOutcome),
    Listed(Vec<Session>),
}

/// The reference model: every session, by id.
type Model = BTreeMap<String, Session>;

/// What `prepared` must report on `model`, and the model afterwards.
fn predict(prepared: &Prepared, model: &Model) -> (Outcome, Model) {
    let mut next = model.clone();
    let outcome = match prepared {
        Prepared::Nothing => Outcome::Nothing,
        Prepared::Create(session) => {
            if model.contains_key(session.id().as_str()) {
                Outcome::Created(Err(OnViolation::Conflict))
            } else {
                next.insert(session.id().as_str().to_owned(), session.clone());
                Outcome::Created(Ok(session.clone()))
            }
        }
        Prepared::Revoke(input) => {
            Outcome::Revoked(match model.get(input.device_session_id.as_str()) {
                None => Err("not_found"),
                Some(current) if !current.is_active() => {
                    Ok(RevokeSessionOutcome::AlreadyRevoked(current.clone()))
                }
                Some(current) => match current.clone().revoked(input.revocation.clone()) {
                    Err(e) => Err(e.kind()),
                    Ok(revoked) => {
                        next.insert(revoked.id().as_str().to_owned(), revoked.clone());
                        Ok(RevokeSessionOutcome::Revoked(revoked))
                    }
                },
            })
        }
        Prepared::RevokeAll(input) => {
            let at = input.revocation.at();
            let mut revoked: Vec<Session> = model
                .values()
                .filter(|s| s.user_id() == &input.user_id && s.is_active() && s.created_at() <= at)
                .map(|s| {
                    s.clone()
                        .revoked(input.revocation.clone())
                        .expect("at or after creation")
                })
                .collect();
            sort_newest_first(&mut revoked);
            for session in &revoked {
                next.insert(session.id().as_str().to_owned(), session.clone());
            }
            Outcome::RevokedAll(if revoked.is_empty() {
                RevokeUserSessionsOutcome::NoActiveSessions
            } else {
                RevokeUserSessionsOutcome::Revoked(revoked)
            })
        }
        Prepared::List(user) => {
            let mut sessions: Vec<Session> = model
                .values()
                .filter(|s| s.user_id() == user)
                .cloned()
                .collect();
            sort_newest_first(&mut sessions);
            Outcome::Listed(sessions)
        }
    };
    (outcome, next)
}

/// Called once, at the point where another client may change the state
/// in the middle of an operation.
type Hook<'h> = &'h mut dyn FnMut(&mut MemoryKv);

fn no_interruption(_: &mut MemoryKv) {}

/// Runs `prepared` against the store as a driver does, calling `hook`
/// between its reads (or before its apply, when it reads nothing).
fn execute(keys: &KeySpace, kv: &mut MemoryKv, prepared: &Prepared, hook: Hook<'_>) -> Outcome {
    match prepared {
        Prepared::Nothing => {
            hook(kv);
            Outcome::Nothing
        }
        Prepared::Create(session) => {
            let planned = transition::create(keys, session);
            assert_eq!(&planned.outcome, session);
            hook(kv);
            Outcome::Created(
                kv.apply(&planned.plan)
                    .map(|()| planned.outcome)
                    .map_err(|v| v.on_violation),
            )
        }
        Prepared::Revoke(input) => {
            let key = keys.session_key(&input.device_session_id);
            let result = drive(kv, hook, |kv, hook| {
                let stored = kv.get(&key).map(<[u8]>::to_vec);
                hook(kv);
                transition::revoke(keys, input, stored.as_deref()).map(Step::Done)
            });
            if let Ok(outcome) = &result {
                assert!(outcome.is_consistent());
            }
            Outcome::Revoked(result.map_err(|e| {
                assert!(!e.is_corruption(), "corruption on a consistent state: {e}");
                e.kind()
            }))
        }
        Prepared::RevokeAll(input) => {
            let outcome = drive(kv, hook, |kv, hook| {
                let scan = transition::revoke_all_scan(keys, input);
                let members = index_members(kv, &scan.key, Some(scan.max_score));
                hook(kv);
                let records = records_of(kv, keys, &scan.key, &members)?;
                transition::revoke_all(keys, input, &members, &records)
            })
            .unwrap_or_else(|e| panic!("revoke all on a consistent state: {e}"));
            assert!(outcome.is_consistent_for(&input.user_id));
            Outcome::RevokedAll(outcome)
        }
        Prepared::List(user) => {
            let index_key = keys.user_sessions_key(user);
            let sessions = drive(kv, hook, |kv, hook| {
                let members = index_members(kv, &index_key, None);
                hook(kv);
                let records = records_of(kv, keys, &index_key, &members)?;
                transition::list(keys, user, &members, &records)
            })
            .unwrap_or_else(|e| panic!("list on a consistent state: {e}"));
            assert!(
                sessions.windows(2).all(|pair| match pair {
                    [a, b] => newest_first(a, b).is_lt(),
                    _ => true,
                }),
                "list is not strictly newest first: {sessions:?}"
            );
            Outcome::Listed(sessions)
        }
    }
}

/// Plans that reach the apply stage: something with a plan and an outcome.
trait Applicable {
    type Outcome;
    fn into_parts(self) -> (Option<Plan>, Self::Outcome);
}

impl<T> Applicable for authsession_core::plan::Planned<T> {
    type Outcome = T;
    fn into_parts(self) -> (Option<Plan>, T) {
        (Some(self.plan), self.outcome)
    }
}

impl Applicable for Vec<Session> {
    type Outcome = Vec<Session>;
    fn into_parts(self) -> (Option<Plan>, Vec<Session>) {
        (None, self)
    }
}

/// A store makes a few attempts; with at most one concurrent change, the
/// second attempt must succeed.
const MAX_ATTEMPTS: usize = 2;

/// The driver's side of the conversation, as the stores do it: read and
/// plan (`attempt`), then apply. A `Confirm` step's plan is applied: if it
/// holds, its error is reported; if violated, the state changed between
/// the reads, so read again. A `Retry` violation also means read again.
fn drive<A: Applicable>(
    kv: &mut MemoryKv,
    hook: Hook<'_>,
    mut attempt: impl FnMut(&mut MemoryKv, Hook<'_>) -> Result<Step<A>, TransitionError>,
) -> Result<A::Outcome, TransitionError> {
    for _ in 0..MAX_ATTEMPTS {
        let violation: Violation = match attempt(kv, &mut *hook)? {
            Step::Confirm { plan, error } => {
                assert!(plan.writes().is_empty(), "a Confirm plan writes: {plan:?}");
                match kv.apply(&plan) {
                    Ok(()) => return Err(error),
                    Err(violation) => violation,
                }
            }
            Step::Done(planned) => match planned.into_parts() {
                (None, outcome) => return Ok(outcome),
                (Some(plan), outcome) => match kv.apply(&plan) {
                    Ok(()) => return Ok(outcome),
                    Err(violation) => violation,
                },
            },
        };
        assert_eq!(violation.on_violation, OnViolation::Retry, "{violation}");
    }
    panic!("no progress in {MAX_ATTEMPTS} attempts with at most one concurrent change")
}

/// Most operations per input; longer sequences add little but time.
const MAX_OPS: usize = 48;

/// `transitions`: the input is shaped by `arbitrary` into up to 48
/// operations — create / revoke / revoke-all / list / get / count over the
/// ids and users above, and pairs of actions where one runs in the middle
/// of the other — run against [`MemoryKv`] through the core's transitions
/// and plans (read → plan → apply, following [`Step::Confirm`] and retrying
/// on `Retry` violations as a driver does).
///
/// Every outcome must match a simple reference model (a map of sessions):
/// creating an existing id is a `Conflict` violation that writes nothing,
/// revoking a revoked session is `AlreadyRevoked`, revoking before creation
/// is `revoked_before_created`, "revoke all" revokes exactly the user's
/// active sessions created at or before its instant, reads return the
/// model's sessions; an interrupted pair must match one of its two serial
/// orders. After every step the stored state must be consistent: records
/// decode to the model; each record is in its user's index with its score,
/// and in the active index exactly when active; every index member has a
/// record of that user; lists are strictly newest first; counts equal
/// active sessions; [`audit`] finds no problem.
pub fn check_transitions(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let mut world = World::default();
    let Ok(ops) = u.arbitrary_iter::<Op>() else {
        return;
    };
    for op in ops.take(MAX_OPS) {
        let Ok(op) = op else { break };
        world.step(&op);
        world.assert_consistent();
    }
}

#[derive(Default)]
struct World {
    keys: KeySpace,
    kv: MemoryKv,
    model: Model,
}

impl World {
    fn step(&mut self, op: &Op) {
        match op {
            Op::Do(action) => {
                let prepared = prepare(action);
                let outcome = execute(&self.keys, &mut self.kv, &prepared, &mut no_interruption);
                let (expected, next) = predict(&prepared, &self.model);
                assert_eq!(outcome, expected, "{prepared:?}");
                self.model = next;
            }
            Op::Get { id: i } => {
                let id = id(*i);
                let stored = self.kv.get(&self.keys.session_key(&id));
                let got = transition::get(&self.keys, &id, stored);
                match self.model.get(id.as_str()) {
                    None => assert_eq!(got.map_err(|e| e.kind()), Err("not_found")),
                    Some(expected) => assert_eq!(got.as_ref(), Ok(expected)),
                }
            }
            Op::Count { user: w } => {
                let user = user(*w);
                let count = self
                    .kv
                    .index_len(&self.keys.user_active_sessions_key(&user));
                assert_eq!(count, self.expected_active_count(&user));
            }
            Op::Concurrent { main, other } => self.concurrent(&prepare(main), &prepare(other)),
            Op::Tamper(tamper) => self.tamper(tamper),
        }
    }

    fn concurrent(&mut self, main: &Prepared, other: &Prepared) {
        let keys = self.keys.clone();
        let mut other_outcome = None;
        let mut interrupt = |kv: &mut MemoryKv| {
            if other_outcome.is_none() {
                other_outcome = Some(execute(&keys, kv, other, &mut no_interruption));
            }
        };
        let main_outcome = execute(&self.keys, &mut self.kv, main, &mut interrupt);
        let other_outcome = other_outcome.expect("every action reaches its interruption point");

        let (main_first, after_main) = predict(main, &self.model);
        let (other_second, main_then_other) = predict(other, &after_main);
        let (other_first, after_other) = predict(other, &self.model);
        let (main_second, other_then_main) = predict(main, &after_other);
        let stored = self.stored_sessions();
        let serial = [
            (main_first, other_second, main_then_other),
            (main_second, other_first, other_then_main),
        ];
        let Some((_, _, model)) = serial
            .into_iter()
            .find(|(m, o, model)| *m == main_outcome && *o == other_outcome && *model == stored)
        else {
            panic!(
                "not linearizable: main {main:?} -> {main_outcome:?}, \
                 other {other:?} -> {other_outcome:?}, stored {stored:?}"
            );
        };
        self.model = model;
    }

    /// Applies `tamper`, checks that reads report corruption rather than
    /// misbehave and that the audit notices, then repairs like an operator:
    /// apply the audit's repair plan, delete the records it cannot repair,
    /// repair again. Afterwards the state must be consistent again (checked
    /// by the caller), with deleted and corrupted sessions gone.
    fn tamper(&mut self, tamper: &Tamper) {
        let before = self.kv.clone();
        match *tamper {
            Tamper::DropIndexEntry {
                user: w,
                id: i,
                active,
            } => {
                let key = self.index_key(w, active);
                let remove = Plan::new(
                    Vec::new(),
                    vec![Write::IndexRemove {
                        key,
                        member: id(i).into_string(),
                    }],
                    OnViolation::Retry,
                );
                self.kv.apply(&remove).expect("no preconditions");
            }
            Tamper::AddIndexEntry {
                user: w,
                id: i,
                active,
                at,
            } => {
                let key = self.index_key(w, active);
                let score = IndexScore::of(at.timestamp()).as_f64();
                self.kv.index_add_raw(key, id(i).into_string(), score);
            }
            Tamper::DeleteRecord { id: i } => {
                self.kv.delete_raw(&self.keys.session_key(&id(i)));
                self.model.remove(id(i).as_str());
            }
            Tamper::CorruptRecord { id: i, payload } => {
                self.kv.set_raw(
                    self.keys.session_key(&id(i)),
                    pick(CORRUPT_PAYLOADS, payload),
                );
                self.model.remove(id(i).as_str());
            }
        }

        self.assert_reads_survive_damage();

        let report = self.audit();
        if self.kv == before {
            assert!(report.problems.is_empty(), "{:?}", report.problems);
        } else {
            assert!(!report.problems.is_empty(), "audit missed {tamper:?}");
        }
        self.kv
            .apply(&report.repair)
            .unwrap_or_else(|v| panic!("repair plan violated on an unchanged state: {v}"));
        // What the repair leaves for a human: undecodable records.
        let report = self.audit();
        for problem in &report.problems {
            match problem {
                Problem::CorruptRecord { key, .. } | Problem::UnparsableKey { key } => {
                    assert!(!problem.is_repairable());
                    self.kv.delete_raw(key);
                }
                // Index entries of a corrupt record stay until the record
                // is dealt with.
                Problem::StrayIndexEntry { member, .. }
                    if report.problems.iter().any(|p| {
                        matches!(p, Problem::CorruptRecord { key, .. }
                            if self.keys.parse_session_key(key).is_some_and(|id| id.as_str() == member))
                    }) => {}
                other => panic!("the repair left {other:?}"),
            }
        }
        let report = self.audit();
        self.kv
            .apply(&report.repair)
            .unwrap_or_else(|v| panic!("second repair violated on an unchanged state: {v}"));
        let report = self.audit();
        assert!(
            report.problems.is_empty(),
            "after repair: {:?}",
            report.problems
        );
        assert!(
            report.repair.is_empty(),
            "after repair: {:?}",
            report.repair
        );
    }

    /// On a damaged store, every read either answers or reports corruption
    /// (never a panic or a non-corruption error), following `Confirm`
    /// steps; "revoke all" is tried on a copy so the damage stays as is.
    fn assert_reads_survive_damage(&mut self) {
        let keys = self.keys.clone();
        for w in 0..USERS.len() {
            let user = user(u8::try_from(w).expect("few users"));
            let index_key = keys.user_sessions_key(&user);
            let listed = drive(&mut self.kv, &mut no_interruption, |kv, _| {
                let members = index_members(kv, &index_key, None);
                let records = records_of(kv, &keys, &index_key, &members)?;
                transition::list(&keys, &user, &members, &records)
            });
            if let Err(e) = listed {
                assert!(e.is_corruption(), "list on damage: {e}");
                assert!(is_snake_case(e.kind()));
            }
            let input = RevokeUserSessionsInput {
                user_id: user.clone(),
                revocation: revocation(
                    When {
                        era: 2,
                        second: 3,
                        sub: 6,
                    }
                    .timestamp(),
                    0,
                )
                .expect("valid instant"),
            };
            let mut copy = self.kv.clone();
            let revoked = drive(&mut copy, &mut no_interruption, |kv, _| {
                let scan = transition::revoke_all_scan(&keys, &input);
                let members = index_members(kv, &scan.key, Some(scan.max_score));
                let records = records_of(kv, &keys, &scan.key, &members)?;
                transition::revoke_all(&keys, &input, &members, &records)
            });
            if let Err(e) = revoked {
                assert!(e.is_corruption(), "revoke all on damage: {e}");
            }
        }
        for i in 0..IDS.len() {
            let id = id(u8::try_from(i).expect("few ids"));
            let got = transition::get(&keys, &id, self.kv.get(&keys.session_key(&id)));
            if let Err(e) = got {
                assert!(
                    e.kind() == "not_found" || e.is_corruption(),
                    "get on damage: {e}"
                );
            }
        }
    }

    fn index_key(&self, user_index: u8, active: bool) -> String {
        let user = user(user_index);
        if active {
            self.keys.user_active_sessions_key(&user)
        } else {
            self.keys.user_sessions_key(&user)
        }
    }

    fn audit(&self) -> Report {
        let records: Vec<(String, Vec<u8>)> = self
            .kv
            .value_keys()
            .map(|k| (k.to_owned(), self.kv.get(k).unwrap_or_default().to_vec()))
            .collect();
        let indexes: Vec<(String, Vec<(String, f64)>)> = self
            .kv
            .index_keys()
            .map(|k| (k.to_owned(), self.kv.index_range(k, None)))
            .collect();
        audit(&self.keys, records, indexes)
    }

    fn expected_active_count(&self, user: &UserId) -> usize {
        self.model
            .values()
            .filter(|s| s.user_id() == user && s.is_active())
            .count()
    }

    /// Every stored record, decoded (which must succeed) and keyed by id.
    fn stored_sessions(&self) -> Model {
        self.kv
            .value_keys()
            .map(|key| {
                let id = self
                    .keys
                    .parse_session_key(key)
                    .expect("record key names an id");
                let bytes = self.kv.get(key).unwrap_or_default();
                let session = authsession_core::decode(&id, bytes).expect("stored record decodes");
                (id.into_string(), session)
            })
            .collect()
    }

    /// The stored state agrees with the model and with itself.
    fn assert_consistent(&mut self) {
        // Records: exactly the model's sessions, stored under their keys.
        assert_eq!(self.stored_sessions(), self.model);

        // Each session is in its user's index with its score, and in the
        // active index exactly when active.
        for session in self.model.values() {
            let score = IndexScore::of(session.created_at()).as_f64();
            let member = session.id().as_str();
            let all =
                index_members_scored(&self.kv, &self.keys.user_sessions_key(session.user_id()));
            assert_eq!(
                all.get(member),
                Some(&score),
                "{member} in its user's index"
            );
            let active = index_members_scored(
                &self.kv,
                &self.keys.user_active_sessions_key(session.user_id()),
            );
            assert_eq!(
                active.contains_key(member),
                session.is_active(),
                "{member} ({}) vs active index",
                session.status()
            );
            if session.is_active() {
                assert_eq!(active.get(member), Some(&score));
            }
        }

        // Every index member has a record of the index's user (and an
        // active one in the active index).
        let indexes: Vec<(String, Vec<(String, f64)>)> = self
            .kv
            .index_keys()
            .map(|k| (k.to_owned(), self.kv.index_range(k, None)))
            .collect();
        for (index_key, members) in &indexes {
            let (owner, active_only) = match self.keys.parse_user_sessions_key(index_key) {
                Some(user) => (user, false),
                None => (
                    self.keys
                        .parse_user_active_sessions_key(index_key)
                        .expect("index key names a user"),
                    true,
                ),
            };
            assert!(!members.is_empty(), "empty sorted set {index_key} kept");
            for (member, _) in members {
                let session = self
                    .model
                    .get(member)
                    .unwrap_or_else(|| panic!("{index_key} member {member:?} has no record"));
                assert_eq!(session.user_id(), &owner, "{index_key} member {member:?}");
                if active_only {
                    assert!(session.is_active(), "{index_key} member {member:?} revoked");
                }
            }
        }

        // The audit agrees that nothing is wrong and nothing needs repair.
        let records: Vec<(String, Vec<u8>)> = self
            .kv
            .value_keys()
            .map(|k| (k.to_owned(), self.kv.get(k).unwrap_or_default().to_vec()))
            .collect();
        let report = audit(&self.keys, records, indexes);
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert!(report.repair.is_empty(), "{:?}", report.repair);
        assert_eq!(report.records, self.model.len());

        // Every user's list and count match the model.
        for w in 0..USERS.len() {
            let user = user(u8::try_from(w).expect("few users"));
            let list = Prepared::List(user.clone());
            let outcome = execute(&self.keys, &mut self.kv, &list, &mut no_interruption);
            assert_eq!(outcome, predict(&list, &self.model).0);
            let count = self
                .kv
                .index_len(&self.keys.user_active_sessions_key(&user));
            assert_eq!(count, self.expected_active_count(&user));
        }
    }
}

fn index_members(kv: &MemoryKv, key: &str, max_score: Option<IndexScore>) -> Vec<String> {
    kv.index_range(key, max_score)
        .into_iter()
        .map(|(member, _)| member)
        .collect()
}

fn index_members_scored(kv: &MemoryKv, key: &str) -> BTreeMap<String, f64> {
    kv.index_range(key, None).into_iter().collect()
}

/// The second read of `list` and "revoke all", as the driver does it: the
/// records [`transition::record_keys`] names, in member order.
fn records_of(
    kv: &MemoryKv,
    keys: &KeySpace,
    index_key: &str,
    members: &[String],
) -> Result<Vec<Option<Vec<u8>>>, TransitionError> {
    Ok(transition::record_keys(keys, index_key, members)?
        .iter()
        .map(|key| kv.get(key).map(<[u8]>::to_vec))
        .collect())
}
