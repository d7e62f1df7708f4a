//! Turning what a batch found into guarded repair plans, and what became
//! of each: the repairs themselves (what each writes, guarded by exactly
//! the stored state it was derived from), the report-only and
//! unrepairable findings, and the settling of a batch's plans through
//! [`super::super::settle`] — repaired, blocked by a key of the wrong
//! type, or given up after the batch kept changing (contention).

use crate::audit::{CheckMode, CheckReport, Problem, UnrepairedReason};
use crate::ids::UserId;
use crate::keys::IndexScore;
use crate::keys::KeySpace;
use crate::op::maintenance::batch::{Advanced, IndexBatch};
use crate::op::maintenance::check::records::RecordEntry;
use crate::op::maintenance::check::{Check, State};
use crate::op::maintenance::settle::{Next, Outcome, PlanItem, Settle};
use crate::op::{Step, TransitionError};
use crate::plan::{Member, OnViolation, Plan, Precondition, Write};

/// What a repair of one problem writes, and the stored state it was
/// derived from.
#[derive(Debug, Clone)]
pub(super) struct Repair {
    /// Plans are per group: the user (tagged layout: one slot), an owner
    /// key (its own slot), or the whole batch (reference layout).
    group: String,
    guards: Vec<Precondition>,
    writes: Vec<Write>,
    /// The walk whose index loses a member when applied.
    removes_from: Option<usize>,
}

impl Repair {
    /// Sets a record's missing owner key to its `user`. The owner key
    /// lives in the id's own slot: its own plan, guarded by its absence
    /// only.
    pub(super) fn set_owner_key(owner_key: &str, user: &UserId) -> Self {
        Self {
            group: format!("o:{owner_key}"),
            guards: vec![Precondition::Absent {
                key: owner_key.to_owned(),
            }],
            writes: vec![Write::Set {
                key: owner_key.to_owned(),
                value: user.as_str().as_bytes().to_vec(),
            }],
            removes_from: None,
        }
    }

    /// Enters `member` in `index_key` with `score`, as the record read
    /// (its key and bytes) implies.
    pub(super) fn add_entry(
        group: String,
        (record_key, bytes): (&str, &[u8]),
        index_key: &str,
        score: IndexScore,
        member: String,
    ) -> Self {
        Self {
            group,
            guards: vec![Precondition::ValueEquals {
                key: record_key.to_owned(),
                value: bytes.to_vec(),
            }],
            writes: vec![Write::IndexAdd {
                key: index_key.to_owned(),
                score,
                member,
            }],
            removes_from: None,
        }
    }

    /// Takes a stray `member` out of the index the walk at `walker`
    /// walks, under `guard` (none for a member no record can ever make
    /// valid).
    pub(super) fn remove_entry(
        group: String,
        index_key: &str,
        member: &Member,
        guard: Option<Precondition>,
        walker: usize,
    ) -> Self {
        Self {
            group,
            guards: guard.into_iter().collect(),
            writes: vec![Write::IndexRemove {
                key: index_key.to_owned(),
                member: member.clone(),
            }],
            removes_from: Some(walker),
        }
    }

    fn touches(&self, key: &str) -> bool {
        self.guards.iter().any(|g| g.key() == key) || self.writes.iter().any(|w| w.key() == key)
    }
}

/// A problem a batch found, with its repair if it has one.
#[derive(Debug)]
pub(super) struct Finding {
    problem: Problem,
    repair: Option<Repair>,
}

impl Finding {
    pub(super) fn repairable(problem: Problem, repair: Repair) -> Self {
        Self {
            problem,
            repair: Some(repair),
        }
    }

    /// A problem for a human (a record's bytes, a foreign owner key).
    pub(super) fn unrepairable(problem: Problem) -> Self {
        Self {
            problem,
            repair: None,
        }
    }
}

/// A problem being repaired.
#[derive(Debug)]
pub(super) struct Fix {
    problem: Problem,
    repair: Repair,
}

impl PlanItem for Fix {
    /// One plan for the group's repairs: every guard once, every write.
    fn plan(group: &[Self], _: &KeySpace) -> Plan {
        let mut guards: Vec<Precondition> = Vec::new();
        let mut writes = Vec::new();
        for Fix { repair, .. } in group {
            for guard in &repair.guards {
                if !guards.contains(guard) {
                    guards.push(guard.clone());
                }
            }
            writes.extend(repair.writes.iter().cloned());
        }
        Plan::new(guards, writes, OnViolation::Retry)
    }

    fn removes_from(&self) -> Option<usize> {
        self.repair.removes_from
    }
}

/// How to read a batch again.
#[derive(Debug)]
pub(super) enum Redo {
    Records(Vec<RecordEntry>),
    Index(IndexBatch),
}

/// What a batch adds to the report's counts once settled.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Seen {
    records: usize,
    index_entries: usize,
}

impl Seen {
    pub(super) fn records(records: usize) -> Self {
        Self {
            records,
            ..Self::default()
        }
    }

    pub(super) fn index_entries(index_entries: usize) -> Self {
        Self {
            index_entries,
            ..Self::default()
        }
    }
}

/// A judged batch while its repairs are applied: how to read it again,
/// what it counts, and its problems no repair is attempted for (reported
/// once it settled, after its last read).
#[derive(Debug)]
pub(super) struct Judged {
    redo: Redo,
    seen: Seen,
    unrepairable: Vec<Problem>,
}

/// A batch's repairs being applied.
pub(super) type Repairs = Settle<Fix, Judged>;

impl Check {
    /// A batch's findings (its `reads`th read, its walks `advanced`):
    /// recorded (report only), or grouped into plans to apply.
    pub(super) fn settle(
        &mut self,
        findings: Vec<Finding>,
        redo: Redo,
        reads: u32,
        advanced: Vec<Advanced>,
        seen: Seen,
    ) -> Result<Step<CheckReport>, TransitionError> {
        let mut unrepairable = Vec::new();
        let mut fixes = Vec::new();
        for Finding { problem, repair } in findings {
            match (repair, self.mode) {
                (Some(repair), CheckMode::Repair) => {
                    fixes.push((repair.group.clone(), Fix { problem, repair }));
                }
                (Some(_), _) => self.unrepaired(problem, UnrepairedReason::ReportOnly),
                (None, _) => unrepairable.push(problem),
            }
        }
        let judged = Judged {
            redo,
            seen,
            unrepairable,
        };
        self.apply_next(Settle::new(judged, reads, advanced, fixes))
    }

    /// Applies the next plan of the batch, or reads it again when a guard
    /// failed (bounded), or records what it found and goes on.
    fn apply_next(&mut self, settle: Repairs) -> Result<Step<CheckReport>, TransitionError> {
        match settle.next(&self.keys, &mut self.walkers) {
            Next::Apply(plan, settle) => {
                self.state = State::Settling(settle);
                Ok(Step::Apply(plan))
            }
            // The batch changed: judge it afresh (its applied plans'
            // problems are recorded; everything else is read again).
            Next::Reread { batch, reads } => Ok(match batch.redo {
                Redo::Records(entries) => self.read_records(entries, reads),
                Redo::Index(batch) => self.read_windows(batch, reads),
            }),
            Next::Settled {
                batch,
                reads,
                failed,
            } => {
                for Fix { problem, .. } in failed.into_iter().flatten() {
                    let reason = UnrepairedReason::Contention { attempts: reads };
                    self.unrepaired(problem, reason);
                }
                for problem in batch.unrepairable {
                    self.unrepairable(problem);
                }
                self.report.batches += 1;
                self.report.records += batch.seen.records;
                self.report.index_entries += batch.seen.index_entries;
                self.next()
            }
        }
    }

    /// What became of a plan: its problems repaired, or (a key of the
    /// wrong type) those touching the key unrepaired and the rest applied
    /// next.
    pub(super) fn on_applied(
        &mut self,
        mut settle: Repairs,
        outcome: Outcome<Fix>,
    ) -> Result<Step<CheckReport>, TransitionError> {
        match outcome {
            Outcome::Done(group) => {
                for Fix { problem, .. } in group {
                    self.report.repaired.push(problem.clone());
                    self.report.problems.push(problem);
                }
            }
            Outcome::Violated => {}
            Outcome::WrongType { group, key } => {
                // What touches the key cannot be written; the rest of the
                // plan can.
                let (blocked, rest): (Vec<_>, Vec<_>) =
                    group.into_iter().partition(|f| f.repair.touches(&key));
                for Fix { problem, .. } in blocked {
                    let reason = UnrepairedReason::WrongType { key: key.clone() };
                    self.unrepaired(problem, reason);
                }
                if !rest.is_empty() {
                    settle.apply_first(rest);
                }
            }
        }
        self.apply_next(settle)
    }
}
