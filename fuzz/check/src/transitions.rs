//! `transitions`: arbitrary operation sequences on the pure state machine.

use std::collections::BTreeMap;

use arbitrary::{Arbitrary, Unstructured};
use authsession_core::audit::audit;
use authsession_core::model::{MemoryKv, Violation};
use authsession_core::plan::{OnViolation, Plan};
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

#[derive(Debug, Clone, Arbitrary)]
enum Op {
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
    Get {
        id: u8,
    },
    List {
        user: u8,
    },
    Count {
        user: u8,
    },
}

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

/// Most operations per input; longer sequences add little but time.
const MAX_OPS: usize = 48;

/// `transitions`: the input is shaped by `arbitrary` into up to 48 create /
/// revoke / revoke-all / get / list / count operations over the ids and
/// users above, run against [`MemoryKv`] through the core's transitions and
/// plans (read → plan → apply, following [`Step::Confirm`]).
///
/// Every outcome must match a simple reference model (a map of sessions):
/// creating an existing id is a `Conflict` violation that writes nothing,
/// revoking a revoked session is `AlreadyRevoked`, revoking before creation
/// is `revoked_before_created`, "revoke all" revokes exactly the user's
/// active sessions created at or before its instant, reads return the
/// model's sessions. After every step the stored state must be consistent:
/// records decode to the model; each record is in its user's index with
/// its score, and in the active index exactly when active; every index
/// member has a record of that user; lists are strictly newest first;
/// counts equal active sessions; [`audit`] finds no problem.
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
    /// The reference model: what the store must hold, by id.
    model: BTreeMap<String, Session>,
}

impl World {
    fn step(&mut self, op: &Op) {
        match *op {
            Op::Create {
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
                    // Go's zero time: not a valid session, nothing to create.
                    return;
                };
                let session = match revoked {
                    None => session,
                    Some((at, reason)) => {
                        let at = at.timestamp().max(session.created_at());
                        let revocation = revocation(at, reason).expect("after a valid created_at");
                        session.revoked(revocation).expect("not before creation")
                    }
                };
                self.create(session);
            }
            Op::Revoke { id: i, at, reason } => {
                let Ok(revocation) = revocation(at.timestamp(), reason) else {
                    return;
                };
                self.revoke(RevokeSessionInput {
                    device_session_id: id(i),
                    revocation,
                });
            }
            Op::RevokeAll {
                user: w,
                at,
                reason,
            } => {
                let Ok(revocation) = revocation(at.timestamp(), reason) else {
                    return;
                };
                self.revoke_all(RevokeUserSessionsInput {
                    user_id: user(w),
                    revocation,
                });
            }
            Op::Get { id: i } => {
                let id = id(i);
                let stored = self.kv.get(&self.keys.session_key(&id));
                let got = transition::get(&self.keys, &id, stored);
                match self.model.get(id.as_str()) {
                    None => assert_eq!(got.map_err(|e| e.kind()), Err("not_found")),
                    Some(expected) => assert_eq!(got.as_ref(), Ok(expected)),
                }
            }
            Op::List { user: w } => {
                let user = user(w);
                assert_eq!(self.list(&user), self.expected_list(&user));
            }
            Op::Count { user: w } => {
                let user = user(w);
                let count = self
                    .kv
                    .index_len(&self.keys.user_active_sessions_key(&user));
                assert_eq!(count, self.expected_active_count(&user));
            }
        }
    }

    fn create(&mut self, session: Session) {
        let before = self.kv.clone();
        let planned = transition::create(&self.keys, &session);
        assert_eq!(planned.outcome, session);
        let applied = self.kv.apply(&planned.plan);
        if self.model.contains_key(session.id().as_str()) {
            let violation = applied.expect_err("created an existing id");
            assert_eq!(violation.on_violation, OnViolation::Conflict);
            assert_eq!(self.kv, before, "a violated plan wrote something");
        } else {
            applied.expect("creating a new id");
            self.model.insert(session.id().as_str().to_owned(), session);
        }
    }

    fn revoke(&mut self, input: RevokeSessionInput) {
        let id = input.device_session_id.clone();
        let before = self.kv.clone();
        let result = retrying(&mut self.kv, |kv| {
            let stored = kv.get(&self.keys.session_key(&id));
            transition::revoke(&self.keys, &input, stored).map(Step::Done)
        });
        let Some(current) = self.model.get(id.as_str()) else {
            assert_eq!(result.map_err(|e| e.kind()), Err("not_found"));
            return;
        };
        if !current.is_active() {
            assert_eq!(
                result,
                Ok(RevokeSessionOutcome::AlreadyRevoked(current.clone()))
            );
            assert_eq!(self.kv, before, "already revoked, yet written");
            return;
        }
        if input.revocation.at() < current.created_at() {
            assert_eq!(result.map_err(|e| e.kind()), Err("revoked_before_created"));
            assert_eq!(self.kv, before, "rejected, yet written");
            return;
        }
        let next = current
            .clone()
            .revoked(input.revocation)
            .expect("checked above");
        assert_eq!(result, Ok(RevokeSessionOutcome::Revoked(next.clone())));
        self.model.insert(id.as_str().to_owned(), next);
    }

    fn revoke_all(&mut self, input: RevokeUserSessionsInput) {
        let before = self.kv.clone();
        let result = retrying(&mut self.kv, |kv| {
            let scan = transition::revoke_all_scan(&self.keys, &input);
            let members = index_members(kv, &scan.key, Some(scan.max_score));
            let records = records_of(kv, &self.keys, &members);
            transition::revoke_all(&self.keys, &input, &members, &records)
        })
        .expect("revoke all on a consistent state");

        let at = input.revocation.at();
        let mut expected: Vec<Session> = self
            .model
            .values()
            .filter(|s| s.user_id() == &input.user_id && s.is_active() && s.created_at() <= at)
            .map(|s| {
                s.clone()
                    .revoked(input.revocation.clone())
                    .expect("at or after creation")
            })
            .collect();
        sort_newest_first(&mut expected);
        if expected.is_empty() {
            assert_eq!(result, RevokeUserSessionsOutcome::NoActiveSessions);
            assert_eq!(self.kv, before, "nothing to revoke, yet written");
        } else {
            assert!(result.is_consistent_for(&input.user_id));
            assert_eq!(result, RevokeUserSessionsOutcome::Revoked(expected.clone()));
        }
        for session in expected {
            self.model.insert(session.id().as_str().to_owned(), session);
        }
    }

    fn list(&mut self, user: &UserId) -> Vec<Session> {
        let keys = self.keys.clone();
        let sessions = retrying(&mut self.kv, |kv| {
            let index_key = keys.user_sessions_key(user);
            let members = index_members(kv, &index_key, None);
            let records = records_of(kv, &keys, &members);
            transition::list(&keys, user, &members, &records)
        })
        .expect("list on a consistent state");
        assert!(
            sessions.windows(2).all(|pair| match pair {
                [a, b] => newest_first(a, b).is_lt(),
                _ => true,
            }),
            "list is not strictly newest first: {sessions:?}"
        );
        sessions
    }

    fn expected_list(&self, user: &UserId) -> Vec<Session> {
        let mut sessions: Vec<Session> = self
            .model
            .values()
            .filter(|s| s.user_id() == user)
            .cloned()
            .collect();
        sort_newest_first(&mut sessions);
        sessions
    }

    fn expected_active_count(&self, user: &UserId) -> usize {
        self.model
            .values()
            .filter(|s| s.user_id() == user && s.is_active())
            .count()
    }

    /// The stored state agrees with the model and with itself.
    fn assert_consistent(&mut self) {
        // Records: exactly the model's sessions, stored under their keys.
        let records: Vec<(String, Vec<u8>)> = self
            .kv
            .value_keys()
            .map(|k| (k.to_owned(), self.kv.get(k).unwrap_or_default().to_vec()))
            .collect();
        assert_eq!(records.len(), self.model.len());
        for (key, bytes) in &records {
            let id = self
                .keys
                .parse_session_key(key)
                .expect("record key names an id");
            let session = authsession_core::decode(&id, bytes).expect("stored record decodes");
            assert_eq!(self.model.get(id.as_str()), Some(&session));
        }

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
        let report = audit(&self.keys, records, indexes);
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert!(report.repair.is_empty(), "{:?}", report.repair);
        assert_eq!(report.records, self.model.len());

        // Every user's list and count match the model.
        for w in 0..USERS.len() {
            let user = user(u8::try_from(w).expect("few users"));
            assert_eq!(self.list(&user), self.expected_list(&user));
            let count = self
                .kv
                .index_len(&self.keys.user_active_sessions_key(&user));
            assert_eq!(count, self.expected_active_count(&user));
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

/// The driver's side of the conversation, as the stores do it: read and
/// plan (`attempt`), then apply; a `Confirm` step is applied and, if it
/// holds, its error reported; a `Retry` violation means "read again".
/// The state is not shared, so a retry would mean the transitions planned
/// against something other than what they read: that fails the check.
fn retrying<A: Applicable>(
    kv: &mut MemoryKv,
    mut attempt: impl FnMut(&MemoryKv) -> Result<Step<A>, TransitionError>,
) -> Result<A::Outcome, TransitionError> {
    let step = attempt(kv)?;
    let (plan, outcome) = match step {
        Step::Done(planned) => planned.into_parts(),
        Step::Confirm { plan, error } => {
            assert!(plan.writes().is_empty(), "a Confirm plan writes");
            let confirmed: Result<(), Violation> = kv.apply(&plan);
            confirmed.unwrap_or_else(|v| panic!("Confirm violated on an unshared state: {v}"));
            return Err(error);
        }
    };
    if let Some(plan) = plan {
        kv.apply(&plan)
            .unwrap_or_else(|v| panic!("plan violated on an unshared state: {v}: {plan:?}"));
    }
    Ok(outcome)
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

fn records_of(kv: &MemoryKv, keys: &KeySpace, members: &[String]) -> Vec<Option<Vec<u8>>> {
    members
        .iter()
        .map(|m| {
            DeviceSessionId::parse(m.as_str())
                .ok()
                .and_then(|id| kv.get(&keys.session_key(&id)).map(<[u8]>::to_vec))
        })
        .collect()
}
