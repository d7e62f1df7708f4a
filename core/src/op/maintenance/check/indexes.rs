//! The index pass: every index walked in windows ([`super::super::batch`]),
//! the members' records read, and each member judged against its record.
//! A member is stray when it names no valid id, its record is missing,
//! undecodable or another user's (a repair takes it out of the index and
//! leaves the record's bytes alone, so the user can be revoked whole
//! again), or it is revoked in the active index, active in the revoked
//! one. What a record lacks is the records pass's to find.

use crate::audit::{CheckReport, Problem, StrayReason};
use crate::codec;
use crate::ids::DeviceSessionId;
use crate::keys::Index;
use crate::op::decode::session_id;
use crate::op::maintenance::batch::{IndexBatch, Round, Walker};
use crate::op::maintenance::check::repair::{Finding, Redo, Repair, Seen};
use crate::op::maintenance::check::{Check, State};
use crate::op::maintenance::settle::user_group;
use crate::op::{Step, TransitionError};
use crate::plan::{Member, Precondition, Read};

/// A member read in an index batch.
#[derive(Debug)]
struct MemberRead {
    /// The walk (its place in the batch) that handed it out.
    walker: usize,
    member: Member,
    /// Its id and record key when it is a valid id.
    record: Option<(DeviceSessionId, String)>,
}

/// An index batch waiting for its members' records.
#[derive(Debug)]
pub(super) struct MemberBatch {
    round: Round,
    members: Vec<MemberRead>,
}

impl Check {
    /// Reads an index batch's windows (its `reads`th read).
    pub(super) fn read_windows(&mut self, batch: IndexBatch, reads: u32) -> Step<CheckReport> {
        let plan_reads = batch.reads();
        self.state = State::IndexWindows { batch, reads };
        Step::Read(plan_reads)
    }

    /// Index batch, first reply: what the windows handed out, each walk's
    /// members in batch order; then the members' records.
    pub(super) fn on_windows(
        &mut self,
        round: Round,
        windows: Vec<Vec<Member>>,
    ) -> Result<Step<CheckReport>, TransitionError> {
        let mut members = Vec::new();
        for ((i, window), walker) in windows.into_iter().enumerate().zip(round.batch.walkers()) {
            for member in window {
                let record = session_id(&member).map(|id| {
                    let key = self.keys.record_key(&walker.user, &id);
                    (id, key)
                });
                members.push(MemberRead {
                    walker: i,
                    member,
                    record,
                });
            }
        }
        let record_keys: Vec<String> = members
            .iter()
            .filter_map(|m| m.record.as_ref().map(|(_, key)| key.clone()))
            .collect();
        let batch = MemberBatch { round, members };
        if record_keys.is_empty() {
            return self.on_member_records(batch, Vec::new());
        }
        self.state = State::IndexRecords(batch);
        Ok(Step::Read(vec![Read::Values { keys: record_keys }]))
    }

    /// Index batch, second reply: the stray entries.
    pub(super) fn on_member_records(
        &mut self,
        batch: MemberBatch,
        records: Vec<Option<Vec<u8>>>,
    ) -> Result<Step<CheckReport>, TransitionError> {
        let MemberBatch { round, members } = batch;
        let mut records = records.into_iter();
        let mut findings = Vec::new();
        let entries = members.len();
        for m in members {
            let Some(walker) = round.batch.walkers().get(m.walker) else {
                continue;
            };
            let stray = match &m.record {
                // Nothing can make an invalid member valid: removed
                // unconditionally.
                None => Some((StrayReason::InvalidMember, None)),
                Some((id, record_key)) => {
                    stray_reason(walker, id, record_key, records.next().flatten())
                }
            };
            if let Some((reason, guard)) = stray {
                let index_key = walker.walk.key().to_owned();
                let group = user_group(&self.keys, &walker.user);
                let repair = Repair::remove_entry(group, &index_key, &m.member, guard, m.walker);
                let problem = Problem::StrayIndexEntry {
                    index_key,
                    member: m.member,
                    reason,
                };
                findings.push(Finding::repairable(problem, repair));
            }
        }
        let Round {
            batch,
            reads,
            advanced,
        } = round;
        let seen = Seen::index_entries(entries);
        self.settle(findings, Redo::Index(batch), reads, advanced, seen)
    }
}

/// Why a member with a valid id is stray in `walker`'s index, given its
/// record's bytes, with the guard its removal is derived from (the
/// record's bytes, or its absence); `None`: it belongs there.
fn stray_reason(
    walker: &Walker,
    id: &DeviceSessionId,
    record_key: &str,
    record: Option<Vec<u8>>,
) -> Option<(StrayReason, Option<Precondition>)> {
    let Some(bytes) = record else {
        let absent = Precondition::Absent {
            key: record_key.to_owned(),
        };
        return Some((StrayReason::NoRecord, Some(absent)));
    };
    // A record that does not decode, or is another user's: the member
    // leaves the index (so the user can be revoked whole again), the
    // record's bytes stay where they are for a human (the records pass
    // reports them).
    let session = codec::decode(id, &bytes);
    let guard = Some(Precondition::ValueEquals {
        key: record_key.to_owned(),
        value: bytes,
    });
    let Ok(session) = session else {
        return Some((StrayReason::CorruptRecord, guard));
    };
    let reason = if session.user_id() != &walker.user {
        StrayReason::OtherUser
    } else {
        match (walker.kind, session.is_active()) {
            (Index::Active, false) => StrayReason::Revoked,
            (Index::Revoked, true) => StrayReason::NotRevoked,
            _ => return None,
        }
    };
    Some((reason, guard))
}
