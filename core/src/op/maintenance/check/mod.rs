//! `check` (and `check --repair`): the consistency walk, in bounded
//! batches.
//!
//! Passes, in order, each a scan of one prefix page by page:
//! 1. **Records** (`KeyType::String` under the session prefix): each batch
//!    of at most [`BatchSize`] record keys is read (`Values`; in the
//!    tagged layout with the owner keys), strictly decoded, and its index
//!    memberships read (`IndexScores` per user and index): the
//!    all-sessions index always, the active index when active, the revoked
//!    index when revoked, each with the score the record implies. This
//!    pass finds corrupt records, missing or misscored entries and owner
//!    key problems.
//! 2. **Indexes** (`KeyType::SortedSet` under each index prefix): each
//!    index is walked in windows of ranks ([`IndexWalk`], which never
//!    repeats a member nor skips one that stays), small indexes several to
//!    a batch ([`super::batch`]), and the members' records read. This pass finds stray
//!    entries: members whose record is missing, undecodable or another
//!    user's (a repair takes them out of the index and leaves the record's
//!    bytes alone, so the user can be revoked whole again), revoked ones
//!    in the active index, active ones in the revoked index.
//! 3. **Owner keys** (tagged layout): each one read with the record it
//!    names; one without it is the first look of [`super::owners`] (the
//!    second, after the grace, is [`super::RecheckOwners`]).
//! 4. **Types**: keys of the wrong type under each prefix, reported only:
//!    the store cannot read them, so a repair never deletes them.
//!
//! With [`CheckMode::Repair`], each batch's findings become repair plans —
//! one per user in the tagged layout (a user's keys share a cluster
//! slot), one per batch in the reference layout — each guarded by exactly
//! the stored state its writes were derived from (the record's bytes, or
//! its absence) and applied atomically. A violated guard means the batch
//! changed while it was examined: the batch is read again and judged
//! afresh (at most four reads in all); what still cannot be applied is
//! reported as unrepaired. A plan writes for at most 128 sessions (a
//! batch with more to fix is applied as several plans). So a repair may
//! miss a concurrent change, but never writes on the strength of a stale
//! read: that machinery is [`super::settle`], shared with `sweep`.
//!
//! This file holds the walk (its passes, its states); judging records is
//! [`records`], judging index members [`indexes`], and turning what they
//! find into guarded plans [`repair`].
//!
//! [`IndexWalk`]: super::walk::IndexWalk

mod indexes;
mod records;
mod repair;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;

use crate::audit::{CheckMode, CheckReport, Problem, Unrepaired, UnrepairedReason};
use crate::keys::{Index, KeyKind, KeySpace};
use crate::op::maintenance::batch::{IndexBatch, Walkers};
use crate::op::maintenance::owners::{first_look, OwnerFinding, OwnerPass};
use crate::op::maintenance::walk::KeyScan;
use crate::op::replies::values;
use crate::op::{
    applied, out_of_sequence, replies, BatchSize, Input, Operation, Step, TransitionError,
};
use crate::plan::{KeyType, Read};

use indexes::MemberBatch;
use records::{RecordEntry, RecordScores};
use repair::Repairs;

const OP: &str = "check";

/// One scan of the walk.
#[derive(Debug, Clone)]
enum Pass {
    Records,
    Index(Index),
    /// Owner keys without their record (tagged layout).
    Owners,
    /// Keys under `prefix` of type `found` are of the wrong type.
    WrongType {
        prefix: String,
        found: KeyType,
        expected: KeyType,
    },
}

impl Pass {
    fn scan(&self, keys: &KeySpace) -> Option<KeyScan> {
        Some(match self {
            Pass::Records => KeyScan::new(keys.prefix(KeyKind::Record), KeyType::String),
            Pass::Index(kind) => {
                KeyScan::new(keys.prefix(KeyKind::Index(*kind)), KeyType::SortedSet)
            }
            Pass::WrongType { prefix, found, .. } => KeyScan::new(prefix, *found),
            // Its own walk.
            Pass::Owners => return None,
        })
    }
}

#[derive(Debug)]
enum State {
    Next,
    Scan,
    RecordValues {
        entries: Vec<RecordEntry>,
        reads: u32,
    },
    RecordScores(RecordScores),
    IndexWindows {
        batch: IndexBatch,
        reads: u32,
    },
    IndexRecords(MemberBatch),
    Settling(Repairs),
    Owners,
    Finished,
}

/// The consistency check of a whole key space, as one bounded walk (see
/// the module documentation): no read or plan covers more than one batch
/// ([`BatchSize`] records or index members; a scan page asks for as many
/// keys), so no single command holds the server for long at any size.
/// Without repair it writes nothing.
#[derive(Debug)]
pub struct Check {
    keys: KeySpace,
    mode: CheckMode,
    batch: usize,
    passes: VecDeque<Pass>,
    pass: Option<Pass>,
    scan: Option<KeyScan>,
    /// Keys of the current scan page not yet examined.
    pending: VecDeque<String>,
    /// Indexes being walked.
    walkers: Walkers,
    /// The first look at the owner keys.
    owners: OwnerPass,
    report: CheckReport,
    state: State,
}

impl Check {
    /// Checks (and with [`CheckMode::Repair`] repairs) `keys`' key space
    /// in batches of `batch`.
    pub fn new(keys: &KeySpace, mode: CheckMode, batch: BatchSize) -> Self {
        let mut passes = VecDeque::from([
            Pass::Records,
            Pass::Index(Index::All),
            Pass::Index(Index::Active),
            Pass::Index(Index::Revoked),
            Pass::Owners,
        ]);
        // Records and owner keys are strings, indexes sorted sets: a key
        // of the other type under a prefix is one the store cannot read.
        for (kind, prefix) in keys.prefixes() {
            let (expected, found) = match kind {
                KeyKind::Index(_) => (KeyType::SortedSet, KeyType::String),
                _ => (KeyType::String, KeyType::SortedSet),
            };
            passes.push_back(Pass::WrongType {
                prefix: prefix.to_owned(),
                found,
                expected,
            });
        }
        Self {
            keys: keys.clone(),
            mode,
            batch: batch.get(),
            passes,
            pass: None,
            scan: None,
            pending: VecDeque::new(),
            walkers: Walkers::new(batch.get()),
            owners: OwnerPass::new(keys, batch.get()),
            report: CheckReport::default(),
            state: State::Next,
        }
    }

    /// What the first look at owner keys found, and its next reads (or
    /// the next pass).
    fn owner_step(
        &mut self,
        found: Vec<OwnerFinding>,
        reads: Option<Vec<Read>>,
    ) -> Result<Step<CheckReport>, TransitionError> {
        for finding in found {
            if let OwnerFinding::Dangling(sighting) = &finding {
                self.report.owner_sightings.push(sighting.clone());
            }
            let Unrepaired { problem, reason } = first_look(&self.keys, finding);
            self.unrepaired(problem, reason);
        }
        match reads {
            Some(reads) => {
                self.state = State::Owners;
                Ok(Step::Read(reads))
            }
            None => {
                self.pass = None;
                self.next()
            }
        }
    }

    /// Records a problem left as it is, and why.
    fn unrepaired(&mut self, problem: Problem, reason: UnrepairedReason) {
        self.report.unrepaired.push(Unrepaired {
            problem: problem.clone(),
            reason,
        });
        self.report.problems.push(problem);
    }

    /// Records a problem no repair is attempted for.
    fn unrepairable(&mut self, problem: Problem) {
        self.unrepaired(problem, UnrepairedReason::NotRepairable);
    }

    /// Decides what to do next, until a step needs the driver.
    fn next(&mut self) -> Result<Step<CheckReport>, TransitionError> {
        loop {
            let Some(pass) = self.pass.clone() else {
                let Some(pass) = self.passes.pop_front() else {
                    let mut report = std::mem::take(&mut self.report);
                    report.finish();
                    self.state = State::Finished;
                    return Ok(Step::Done(report));
                };
                self.scan = pass.scan(&self.keys);
                self.pass = Some(pass);
                continue;
            };
            match pass {
                Pass::Owners => {
                    let mut found = Vec::new();
                    let reads = self.owners.next(&mut found);
                    return self.owner_step(found, reads);
                }
                Pass::Records => {
                    if !self.pending.is_empty() {
                        let take = self.pending.len().min(self.batch);
                        let keys: Vec<String> = self.pending.drain(..take).collect();
                        let entries = self.record_entries(keys);
                        if !entries.is_empty() {
                            return Ok(self.read_records(entries, 1));
                        }
                        continue;
                    }
                }
                Pass::Index(kind) => {
                    let mut unparsable = Vec::new();
                    self.walkers
                        .start(&mut self.pending, &self.keys, kind, |key| {
                            unparsable.push(key);
                        });
                    for key in unparsable {
                        self.unrepairable(Problem::UnparsableKey { key });
                    }
                    if let Some(batch) = self.walkers.next_batch() {
                        return Ok(self.read_windows(batch, 1));
                    }
                }
                Pass::WrongType { expected, .. } => {
                    while let Some(key) = self.pending.pop_front() {
                        self.unrepairable(Problem::WrongType { key, expected });
                    }
                }
            }
            // The page is done: the next one, or the next pass.
            match &self.scan {
                Some(scan) if !scan.is_done() => {
                    let read = scan.read(self.batch);
                    self.state = State::Scan;
                    return Ok(Step::Read(vec![read]));
                }
                _ => {
                    self.pass = None;
                    self.scan = None;
                }
            }
        }
    }
}

impl Operation for Check {
    type Output = CheckReport;

    fn name(&self) -> &'static str {
        OP
    }

    fn resume(&mut self, input: Input) -> Result<Step<CheckReport>, TransitionError> {
        match std::mem::replace(&mut self.state, State::Finished) {
            State::Next => match input {
                Input::Start => self.next(),
                _ => out_of_sequence(OP),
            },
            State::Scan => {
                let reply = replies(input, OP)?.into_iter().next();
                let Some(scan) = self.scan.as_mut() else {
                    return out_of_sequence(OP);
                };
                let keys = scan.advance(reply, OP)?;
                self.pending.extend(keys);
                self.next()
            }
            State::RecordValues { entries, reads } => {
                self.on_record_values(entries, reads, replies(input, OP)?)
            }
            State::RecordScores(batch) => self.on_record_scores(batch, replies(input, OP)?),
            State::IndexWindows { batch, reads } => {
                let (round, windows) = batch.advance(reads, replies(input, OP)?, OP)?;
                self.on_windows(round, windows)
            }
            State::IndexRecords(batch) => {
                let records = values(replies(input, OP)?.into_iter().next(), OP)?;
                self.on_member_records(batch, records)
            }
            State::Settling(mut settle) => {
                let outcome = settle.applied(applied(input, OP)?, OP)?;
                self.on_applied(settle, outcome)
            }
            State::Owners => {
                let mut found = Vec::new();
                let reads = self.owners.resume(replies(input, OP)?, &mut found, OP)?;
                self.owner_step(found, reads)
            }
            State::Finished => out_of_sequence(OP),
        }
    }
}
