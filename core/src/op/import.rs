//! `import`: copy a batch of one user's sessions into a key space as they
//! are (migration), idempotently.

use crate::codec;
use crate::ids::UserId;
use crate::keys::KeySpace;
use crate::op::create::create_writes;
use crate::op::replies::{values, violated_key, wrong_type};
use crate::op::{
    applied, out_of_sequence, replies, Input, Operation, Policy, Step, TransitionError,
};
use crate::plan::{Applied, OnViolation, Plan, Precondition, Read, Write};
use crate::session::Session;

/// Why an imported session was not copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ImportConflict {
    /// The target holds another record under this id.
    Differs,
    /// The id belongs to another user in the target (tagged layout).
    OwnedByAnotherUser,
}

impl ImportConflict {
    /// `differs` or `owned_by_another_user`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ImportConflict::Differs => "differs",
            ImportConflict::OwnedByAnotherUser => "owned_by_another_user",
        }
    }
}

/// What one import batch did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ImportReport {
    /// Sessions written.
    pub created: u64,
    /// Sessions already present with exactly these bytes (nothing written).
    pub present: u64,
    /// Sessions not copied, and why.
    pub conflicts: Vec<(Session, ImportConflict)>,
}

/// Copies `sessions` (all of one user) into `keys` exactly as they are —
/// status, revocation and timestamps included, no limit applied — in one
/// atomic plan (plus, in the tagged layout, one owner-key plan per
/// session, each in its id's slot). Idempotent: a session already stored
/// with the same bytes is counted as present; one stored differently is a
/// conflict, never overwritten. Round trips: 1 read + 1 plan (+ 1 per
/// owner key in the tagged layout).
#[derive(Debug)]
pub struct Import {
    keys: KeySpace,
    policy: Policy,
    user: UserId,
    sessions: Vec<Session>,
    report: ImportReport,
    owners_done: usize,
    state: ImportState,
}

#[derive(Debug)]
enum ImportState {
    Owners,
    Owner,
    Read,
    Records,
    Applying(Plan, u64),
    Finished,
}

impl Import {
    /// Imports `sessions` into `keys` under the target's `policy` (which
    /// decides whether revoked sessions enter the revoked index). They
    /// must all belong to `user` (others are reported as conflicts).
    pub fn new(keys: &KeySpace, policy: Policy, user: UserId, sessions: Vec<Session>) -> Self {
        let (mine, foreign): (Vec<_>, Vec<_>) =
            sessions.into_iter().partition(|s| s.user_id() == &user);
        Self {
            keys: keys.clone(),
            policy,
            user,
            sessions: mine,
            report: ImportReport {
                conflicts: foreign
                    .into_iter()
                    .map(|s| (s, ImportConflict::OwnedByAnotherUser))
                    .collect(),
                ..ImportReport::default()
            },
            owners_done: 0,
            state: ImportState::Owners,
        }
    }

    fn next_owner(&mut self) -> Step<ImportReport> {
        let owner = self
            .sessions
            .get(self.owners_done)
            .and_then(|session| self.keys.owner_key(session.id()));
        let Some(owner) = owner else {
            return self.read();
        };
        let user = self.user.as_str().as_bytes().to_vec();
        self.state = ImportState::Owner;
        Step::Apply(Plan::new(
            vec![Precondition::AbsentOrEquals {
                key: owner.clone(),
                value: user.clone(),
            }],
            vec![Write::Set {
                key: owner,
                value: user,
            }],
            OnViolation::Conflict,
        ))
    }

    fn read(&mut self) -> Step<ImportReport> {
        if self.sessions.is_empty() {
            return Step::Done(std::mem::take(&mut self.report));
        }
        let keys = self
            .sessions
            .iter()
            .map(|s| self.keys.record_key(&self.user, s.id()))
            .collect();
        self.state = ImportState::Records;
        Step::Read(vec![Read::Values { keys }])
    }
}

impl Operation for Import {
    type Output = ImportReport;

    fn name(&self) -> &'static str {
        "import"
    }

    fn resume(&mut self, input: Input) -> Result<Step<ImportReport>, TransitionError> {
        match std::mem::replace(&mut self.state, ImportState::Finished) {
            ImportState::Owners => Ok(self.next_owner()),
            ImportState::Owner => {
                match applied(input, "import")? {
                    Applied::Done => self.owners_done += 1,
                    Applied::Violated { .. } => {
                        let session = self.sessions.remove(self.owners_done);
                        self.report
                            .conflicts
                            .push((session, ImportConflict::OwnedByAnotherUser));
                    }
                    Applied::WrongType { key } => {
                        return Err(TransitionError::WrongType {
                            key,
                            expected: crate::plan::KeyType::String,
                        })
                    }
                }
                if self.owners_done < self.sessions.len() {
                    Ok(self.next_owner())
                } else {
                    Ok(self.read())
                }
            }
            ImportState::Read => Ok(self.read()),
            ImportState::Records => {
                let stored = values(replies(input, "import")?.into_iter().next(), "import")?;
                let mut plan = Plan::empty();
                let mut writes = Vec::new();
                let mut creating = 0;
                let mut keep = Vec::with_capacity(self.sessions.len());
                let mut present = 0;
                let mut stored = stored.into_iter();
                for session in std::mem::take(&mut self.sessions) {
                    let key = self.keys.record_key(&self.user, session.id());
                    match stored.next().flatten() {
                        Some(bytes) if bytes == codec::encode(&session) => present += 1,
                        Some(_) => self
                            .report
                            .conflicts
                            .push((session, ImportConflict::Differs)),
                        None => {
                            plan = plan.require(Precondition::Absent { key }, OnViolation::Retry);
                            writes.extend(create_writes(&self.keys, &self.policy, &session));
                            creating += 1;
                            keep.push(session);
                        }
                    }
                }
                self.report.present += present;
                self.sessions = keep;
                if creating == 0 {
                    return Ok(Step::Done(std::mem::take(&mut self.report)));
                }
                let plan = plan.with_writes(writes);
                self.state = ImportState::Applying(plan.clone(), creating);
                Ok(Step::Apply(plan))
            }
            ImportState::Applying(plan, creating) => match applied(input, "import")? {
                Applied::Done => {
                    self.report.created += creating;
                    Ok(Step::Done(std::mem::take(&mut self.report)))
                }
                Applied::Violated { index } => {
                    // Someone wrote one of them meanwhile: read again.
                    self.state = ImportState::Read;
                    Ok(Step::Backoff {
                        key: violated_key(&plan, index),
                    })
                }
                Applied::WrongType { key } => Err(wrong_type(&plan, key)),
            },
            ImportState::Finished => out_of_sequence("import"),
        }
    }
}
