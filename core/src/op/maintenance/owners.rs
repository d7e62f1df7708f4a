//! Dangling owner keys (tagged layout): owner keys whose record is absent.
//!
//! `create` writes the owner key (id → user, in the id's own slot) one
//! round trip before the record (in the user's slot), so for a moment
//! every create in flight looks like a dangling owner key; a crash between
//! the two, or one between a retention removal and its owner key's, leaves
//! one for good. It reads as `not_found` but blocks its id for every other
//! user, so `check --repair` and `sweep` remove it — only when it is still
//! dangling, with the same value, at a **second look at least the grace
//! after the first**.
//!
//! Why a grace and two looks: the owner key and the record live in
//! different slots, so no single plan can guard the owner key's removal by
//! the record's absence. A create in flight that wrote the owner key
//! writes its record within its own bounded duration; a grace longer than
//! that (a policy value, 1 minute by default) means any such create has
//! either written its record by the second look (the key is then left
//! alone) or will never write it. Removing the owner key of a create still
//! in flight would let the same id be created under another user; the
//! grace is what prevents it. What remains is a create of the *same* id
//! by the *same* user that begins during the second look and writes its
//! record after it: that record then has no owner key, which `check`
//! reports (`missing_owner_key`) and `--repair` restores.
//!
//! The first look is part of the [`Check`](crate::op::Check) and
//! [`Sweep`](crate::op::Sweep) walks ([`OwnerPass`]); the second is
//! [`RecheckOwners`], which the driver runs once the grace has passed
//! since the walk ended (every first look happened before then).

use std::collections::VecDeque;

use crate::audit::{CheckReport, Problem, Unrepaired, UnrepairedReason};
use crate::ids::{DeviceSessionId, UserId};
use crate::keys::{KeyKind, KeySpace, Layout};
use crate::op::decode::user_id as parse_user;
use crate::op::expiry::OwnerRemovals;
use crate::op::maintenance::walk::KeyScan;
use crate::op::replies::values;
use crate::op::{out_of_sequence, replies, Input, Operation, Step, SweepReport, TransitionError};
use crate::plan::{KeyType, Read, Reply};

const OP: &str = "recheck_owners";

/// An owner key seen without its record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerSighting {
    owner_key: String,
    id: DeviceSessionId,
    user: UserId,
}

impl OwnerSighting {
    /// The owner key.
    pub fn owner_key(&self) -> &str {
        &self.owner_key
    }

    /// The record it names.
    fn record_key(&self, keys: &KeySpace) -> String {
        keys.record_key(&self.user, &self.id)
    }

    fn problem(&self, keys: &KeySpace) -> Problem {
        Problem::DanglingOwnerKey {
            owner_key: self.owner_key.clone(),
            record_key: self.record_key(keys),
        }
    }
}

/// What the first look at a batch of owner keys found.
#[derive(Debug)]
pub(crate) enum OwnerFinding {
    /// A key under the owner prefix naming no valid id.
    Unparsable(String),
    /// An owner key holding no valid user id.
    Corrupt(String),
    /// An owner key whose record is absent.
    Dangling(OwnerSighting),
}

#[derive(Debug, Clone)]
enum PassState {
    Idle,
    Scan,
    Values(Vec<(String, DeviceSessionId)>),
    Records(Vec<(String, DeviceSessionId, UserId)>),
}

/// The first look, inside a walk: every owner key page by page, each batch
/// of at most `batch` keys read (one round trip), then the records they
/// name (one more). Empty in the reference layout.
#[derive(Debug, Clone)]
pub(crate) struct OwnerPass {
    keys: KeySpace,
    batch: usize,
    scan: Option<KeyScan>,
    pending: VecDeque<String>,
    state: PassState,
    /// Owner keys examined.
    pub(crate) seen: usize,
}

impl OwnerPass {
    pub(crate) fn new(keys: &KeySpace, batch: usize) -> Self {
        let scan = (keys.layout() == Layout::Tagged)
            .then(|| KeyScan::new(keys.prefix(KeyKind::Owner), KeyType::String));
        Self {
            keys: keys.clone(),
            batch: batch.max(1),
            scan,
            pending: VecDeque::new(),
            state: PassState::Idle,
            seen: 0,
        }
    }

    /// The next reads, with what they found so far; `None` reads: the
    /// pass is over.
    pub(crate) fn next(&mut self, findings: &mut Vec<OwnerFinding>) -> Option<Vec<Read>> {
        loop {
            if !self.pending.is_empty() {
                let take = self.pending.len().min(self.batch);
                let mut entries = Vec::with_capacity(take);
                for key in self.pending.drain(..take) {
                    match self.keys.parse_owner_key(&key) {
                        Some(id) => entries.push((key, id)),
                        None => findings.push(OwnerFinding::Unparsable(key)),
                    }
                }
                if entries.is_empty() {
                    continue;
                }
                let read = Read::Values {
                    keys: entries.iter().map(|(k, _)| k.clone()).collect(),
                };
                self.state = PassState::Values(entries);
                return Some(vec![read]);
            }
            let scan = self.scan.as_ref()?;
            if scan.is_done() {
                self.scan = None;
                return None;
            }
            let read = scan.read(self.batch);
            self.state = PassState::Scan;
            return Some(vec![read]);
        }
    }

    /// Takes the replies to the last reads; then call [`Self::next`].
    pub(crate) fn resume(
        &mut self,
        replies: Vec<Reply>,
        findings: &mut Vec<OwnerFinding>,
        op: &'static str,
    ) -> Result<Option<Vec<Read>>, TransitionError> {
        let mut replies = replies.into_iter();
        match std::mem::replace(&mut self.state, PassState::Idle) {
            PassState::Idle => out_of_sequence(op),
            PassState::Scan => {
                let Some(scan) = self.scan.as_mut() else {
                    return out_of_sequence(op);
                };
                let keys = scan.advance(replies.next(), op)?;
                self.pending.extend(keys);
                Ok(self.next(findings))
            }
            PassState::Values(entries) => {
                let values = values(replies.next(), op)?;
                let mut named = Vec::new();
                for ((key, id), value) in entries.into_iter().zip(values) {
                    // Gone since the scan: nothing to judge.
                    let Some(value) = value else { continue };
                    self.seen += 1;
                    match parse_user(&value) {
                        Some(user) => named.push((key, id, user)),
                        None => findings.push(OwnerFinding::Corrupt(key)),
                    }
                }
                if named.is_empty() {
                    return Ok(self.next(findings));
                }
                let read = Read::Values {
                    keys: named
                        .iter()
                        .map(|(_, id, user)| self.keys.record_key(user, id))
                        .collect(),
                };
                self.state = PassState::Records(named);
                Ok(Some(vec![read]))
            }
            PassState::Records(named) => {
                let records = values(replies.next(), op)?;
                for ((owner_key, id, user), record) in named.into_iter().zip(records) {
                    if record.is_none() {
                        findings.push(OwnerFinding::Dangling(OwnerSighting {
                            owner_key,
                            id,
                            user,
                        }));
                    }
                }
                Ok(self.next(findings))
            }
        }
    }
}

/// What the second look found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OwnerRecheck {
    /// Still dangling, and removed.
    pub removed: Vec<OwnerSighting>,
    /// Still dangling, left in place (a look without repair).
    pub dangling: Vec<OwnerSighting>,
    /// No longer dangling: the record arrived (a create in flight at the
    /// first look), or the owner key went or changed.
    pub resolved: Vec<OwnerSighting>,
}

#[derive(Debug)]
enum RecheckState {
    Next,
    Read(Vec<OwnerSighting>),
    Removing {
        batch: Vec<OwnerSighting>,
        owners: Box<OwnerRemovals>,
    },
    Finished,
}

/// The second look at owner keys seen without their record: each one read
/// again with its record (a batch per round trip) and, when `remove` is
/// set and it is still dangling with the same value, removed by a plan
/// guarded by that value (the record is in another slot: see the module
/// documentation for why the grace, not a guard, covers it), then the
/// records read once more and any that came back given its owner key
/// back, as retention's removals do. Run it only once the grace has
/// passed since the first look.
#[derive(Debug)]
pub struct RecheckOwners {
    keys: KeySpace,
    remove: bool,
    batch: usize,
    queue: VecDeque<OwnerSighting>,
    out: OwnerRecheck,
    state: RecheckState,
}

impl RecheckOwners {
    /// Looks again at `sightings`, `batch` keys per read; removes those
    /// still dangling when `remove`.
    pub fn new(
        keys: &KeySpace,
        sightings: Vec<OwnerSighting>,
        remove: bool,
        batch: crate::op::BatchSize,
    ) -> Self {
        Self {
            keys: keys.clone(),
            remove,
            batch: batch.get(),
            queue: sightings.into(),
            out: OwnerRecheck::default(),
            state: RecheckState::Next,
        }
    }

    fn next(&mut self) -> Step<OwnerRecheck> {
        let take = self.queue.len().min(self.batch);
        if take == 0 {
            self.state = RecheckState::Finished;
            return Step::Done(std::mem::take(&mut self.out));
        }
        let batch: Vec<OwnerSighting> = self.queue.drain(..take).collect();
        let reads = vec![
            Read::Values {
                keys: batch.iter().map(|s| s.owner_key.clone()).collect(),
            },
            Read::Values {
                keys: batch.iter().map(|s| s.record_key(&self.keys)).collect(),
            },
        ];
        self.state = RecheckState::Read(batch);
        Step::Read(reads)
    }

    /// Removes the owner keys of `batch` still dangling, as retention
    /// removes them (guarded by their value, then a look that their
    /// records are still gone, any that came back getting its key back).
    fn remove(
        &mut self,
        batch: Vec<OwnerSighting>,
        mut owners: Box<OwnerRemovals>,
        input: Option<Input>,
    ) -> Result<Step<OwnerRecheck>, TransitionError> {
        if let Some(step) = owners.step(input, OP)?.into_step() {
            self.state = RecheckState::Removing { batch, owners };
            return Ok(step);
        }
        let removed: Vec<DeviceSessionId> = owners.removed_ids().cloned().collect();
        for sighting in batch {
            if removed.contains(&sighting.id) {
                self.out.removed.push(sighting);
            } else {
                // Changed since the read (a create took it up again), or
                // put back: its record came back.
                self.out.resolved.push(sighting);
            }
        }
        Ok(self.next())
    }
}

impl Operation for RecheckOwners {
    type Output = OwnerRecheck;

    fn name(&self) -> &'static str {
        OP
    }

    fn resume(&mut self, input: Input) -> Result<Step<OwnerRecheck>, TransitionError> {
        match std::mem::replace(&mut self.state, RecheckState::Finished) {
            RecheckState::Next => match input {
                Input::Start => Ok(self.next()),
                _ => out_of_sequence(OP),
            },
            RecheckState::Read(batch) => {
                let mut replies = replies(input, OP)?.into_iter();
                let owners = values(replies.next(), OP)?;
                let records = values(replies.next(), OP)?;
                let mut still = Vec::new();
                for ((sighting, owner), record) in batch.into_iter().zip(owners).zip(records) {
                    let same = owner.as_deref() == Some(sighting.user.as_str().as_bytes());
                    if !same || record.is_some() {
                        self.out.resolved.push(sighting);
                    } else if self.remove {
                        still.push(sighting);
                    } else {
                        self.out.dangling.push(sighting);
                    }
                }
                let owners = OwnerRemovals::of(&self.keys, still.iter().map(|s| (&s.user, &s.id)));
                self.remove(still, Box::new(owners), None)
            }
            RecheckState::Removing { batch, owners } => self.remove(batch, owners, Some(input)),
            RecheckState::Finished => out_of_sequence(OP),
        }
    }
}

impl CheckReport {
    /// The owner keys this check saw without their record, to look at
    /// again once the grace has passed (removing those still dangling when
    /// `remove`); `None` when there are none.
    pub fn owner_recheck(
        &mut self,
        keys: &KeySpace,
        remove: bool,
        batch: crate::op::BatchSize,
    ) -> Option<RecheckOwners> {
        let sightings = std::mem::take(&mut self.owner_sightings);
        (!sightings.is_empty()).then(|| RecheckOwners::new(keys, sightings, remove, batch))
    }

    /// Takes in the second look: removed keys are repaired, keys still
    /// dangling stay unrepaired (why: a look without repair, or the wrong
    /// type), and keys no longer dangling were no problem (a create in
    /// flight) and leave the report.
    pub fn absorb_owner_recheck(&mut self, keys: &KeySpace, recheck: OwnerRecheck, repair: bool) {
        let OwnerRecheck {
            removed,
            dangling,
            resolved,
        } = recheck;
        // Every sighting's first-look entry is replaced by its outcome.
        let looked: Vec<Problem> = resolved
            .iter()
            .chain(&removed)
            .chain(&dangling)
            .map(|s| s.problem(keys))
            .collect();
        self.unrepaired.retain(|u| !looked.contains(&u.problem));
        self.problems.retain(|p| !looked.contains(p));
        for s in removed {
            let problem = s.problem(keys);
            self.problems.push(problem.clone());
            self.repaired.push(problem);
        }
        for s in dangling {
            let problem = s.problem(keys);
            self.problems.push(problem.clone());
            let reason = if repair {
                UnrepairedReason::WrongType {
                    key: s.owner_key.clone(),
                }
            } else {
                UnrepairedReason::ReportOnly
            };
            self.unrepaired.push(Unrepaired { problem, reason });
        }
        self.finish();
    }
}

impl SweepReport {
    /// The owner keys this sweep saw without their record, to remove once
    /// the grace has passed if still dangling; `None` when there are none.
    pub fn owner_recheck(
        &mut self,
        keys: &KeySpace,
        batch: crate::op::BatchSize,
    ) -> Option<RecheckOwners> {
        let sightings = std::mem::take(&mut self.owner_sightings);
        (!sightings.is_empty()).then(|| RecheckOwners::new(keys, sightings, true, batch))
    }

    /// Counts the owner keys the second look removed (the others were
    /// creates in flight, or are `check`'s to report).
    pub fn absorb_owner_recheck(&mut self, recheck: &OwnerRecheck) {
        self.owner_keys_removed += u64::try_from(recheck.removed.len()).unwrap_or(u64::MAX);
    }
}

/// The problem a first look reports for `finding`, with why it is not
/// (yet) repaired.
pub(crate) fn first_look(keys: &KeySpace, finding: OwnerFinding) -> Unrepaired {
    match finding {
        OwnerFinding::Unparsable(key) => Unrepaired {
            problem: Problem::UnparsableKey { key },
            reason: UnrepairedReason::NotRepairable,
        },
        OwnerFinding::Corrupt(owner_key) => Unrepaired {
            problem: Problem::CorruptOwnerKey { owner_key },
            reason: UnrepairedReason::NotRepairable,
        },
        OwnerFinding::Dangling(sighting) => Unrepaired {
            problem: sighting.problem(keys),
            reason: UnrepairedReason::AwaitingGrace,
        },
    }
}
