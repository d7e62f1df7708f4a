//! The records pass: each batch of record keys read (in the tagged layout
//! with their owner keys), every record strictly decoded and judged —
//! undecodable, another user's, its owner key missing or naming someone
//! else — then its index memberships read and judged: an entry missing
//! from an index the record belongs in, or there with another score than
//! the record implies. The record is the truth; the indexes follow it.

use std::collections::BTreeMap;

use crate::audit::{CheckReport, Problem};
use crate::codec;
use crate::ids::{DeviceSessionId, UserId};
use crate::keys::{Index, IndexScore};
use crate::op::maintenance::check::repair::{Finding, Redo, Repair, Seen};
use crate::op::maintenance::check::{Check, State, OP};
use crate::op::maintenance::settle::user_group;
use crate::op::replies::values;
use crate::op::{out_of_sequence, Step, TransitionError};
use crate::plan::{Read, Reply};
use crate::session::Session;

/// A record key to examine.
#[derive(Debug, Clone)]
pub(super) struct RecordEntry {
    key: String,
    id: DeviceSessionId,
    /// The user of the key (tagged layout).
    user: Option<UserId>,
    owner_key: Option<String>,
}

/// A decoded record whose index memberships are being read.
#[derive(Debug)]
struct Decoded {
    key: String,
    session: Session,
    bytes: Vec<u8>,
}

/// One `IndexScores` read of a records batch: `decoded` positions.
#[derive(Debug)]
struct ScoreRead {
    kind: Index,
    key: String,
    of: Vec<usize>,
}

/// A records batch waiting for its index memberships.
#[derive(Debug)]
pub(super) struct RecordScores {
    entries: Vec<RecordEntry>,
    reads: u32,
    records: usize,
    findings: Vec<Finding>,
    decoded: Vec<Decoded>,
    score_reads: Vec<ScoreRead>,
}

impl Check {
    /// The entries of a page's record keys; a key that is not the
    /// canonical key of an id is reported (and counted) here.
    pub(super) fn record_entries(&mut self, keys: Vec<String>) -> Vec<RecordEntry> {
        let mut entries = Vec::with_capacity(keys.len());
        for key in keys {
            let parsed = self.keys.parse_record_key(&key).filter(|(user, id)| {
                // Only the canonical key of an id names its record.
                let canonical = match user {
                    Some(user) => self.keys.record_key(user, id),
                    None => self.keys.reference_record_key(id),
                };
                canonical == key
            });
            match parsed {
                Some((user, id)) => {
                    let owner_key = self.keys.owner_key(&id);
                    entries.push(RecordEntry {
                        key,
                        id,
                        user,
                        owner_key,
                    });
                }
                None => {
                    self.report.records += 1;
                    self.unrepairable(Problem::UnparsableKey { key });
                }
            }
        }
        entries
    }

    /// Reads a records batch (its `reads`th read): the records, and in the
    /// tagged layout their owner keys.
    pub(super) fn read_records(
        &mut self,
        entries: Vec<RecordEntry>,
        reads: u32,
    ) -> Step<CheckReport> {
        let mut plan_reads = vec![Read::Values {
            keys: entries.iter().map(|e| e.key.clone()).collect(),
        }];
        let owners: Vec<String> = entries.iter().filter_map(|e| e.owner_key.clone()).collect();
        if !owners.is_empty() {
            plan_reads.push(Read::Values { keys: owners });
        }
        self.state = State::RecordValues { entries, reads };
        Step::Read(plan_reads)
    }

    /// Records batch, first reply: each record judged, then the index
    /// memberships of those that decoded to read.
    pub(super) fn on_record_values(
        &mut self,
        entries: Vec<RecordEntry>,
        reads: u32,
        replies: Vec<Reply>,
    ) -> Result<Step<CheckReport>, TransitionError> {
        let mut replies = replies.into_iter();
        let stored = values(replies.next(), OP)?;
        let owners = if entries.iter().any(|e| e.owner_key.is_some()) {
            values(replies.next(), OP)?
        } else {
            Vec::new()
        };
        let mut owners = owners.into_iter();
        let mut findings = Vec::new();
        let mut decoded = Vec::new();
        let mut records = 0;
        for (entry, value) in entries.iter().zip(stored) {
            let owner = match entry.owner_key {
                Some(_) => owners.next().flatten(),
                None => None,
            };
            // Gone since the scan: nothing to check.
            let Some(bytes) = value else { continue };
            records += 1;
            if let Some(record) = judge_record(entry, bytes, owner, &mut findings) {
                decoded.push(record);
            }
        }
        let score_reads = self.score_reads(&decoded);
        if score_reads.is_empty() {
            let seen = Seen::records(records);
            return self.settle(findings, Redo::Records(entries), reads, Vec::new(), seen);
        }
        let plan_reads = score_reads
            .iter()
            .map(|r| Read::IndexScores {
                key: r.key.clone(),
                members: r
                    .of
                    .iter()
                    .filter_map(|i| decoded.get(*i))
                    .map(|d| d.session.id().as_str().as_bytes().to_vec())
                    .collect(),
            })
            .collect();
        self.state = State::RecordScores(RecordScores {
            entries,
            reads,
            records,
            findings,
            decoded,
            score_reads,
        });
        Ok(Step::Read(plan_reads))
    }

    /// The memberships to read, per user and index: the all-sessions
    /// index always, the active index when active, the revoked index when
    /// revoked.
    fn score_reads(&self, decoded: &[Decoded]) -> Vec<ScoreRead> {
        let mut by_user: BTreeMap<&UserId, Vec<usize>> = BTreeMap::new();
        for (i, d) in decoded.iter().enumerate() {
            by_user.entry(d.session.user_id()).or_default().push(i);
        }
        let mut score_reads = Vec::new();
        for (user, of) in by_user {
            let (active, revoked): (Vec<usize>, Vec<usize>) = of
                .iter()
                .partition(|i| decoded.get(**i).is_some_and(|d| d.session.is_active()));
            for (kind, of) in [
                (Index::All, of),
                (Index::Active, active),
                (Index::Revoked, revoked),
            ] {
                if !of.is_empty() {
                    score_reads.push(ScoreRead {
                        kind,
                        key: self.keys.index_key(kind, user),
                        of,
                    });
                }
            }
        }
        score_reads
    }

    /// Records batch, second reply: the missing and misscored entries.
    pub(super) fn on_record_scores(
        &mut self,
        batch: RecordScores,
        replies: Vec<Reply>,
    ) -> Result<Step<CheckReport>, TransitionError> {
        let RecordScores {
            entries,
            reads,
            records,
            mut findings,
            decoded,
            score_reads,
        } = batch;
        let mut replies = replies.into_iter();
        for read in &score_reads {
            let scores = match replies.next() {
                Some(Reply::Scores(scores)) => scores,
                // The index is not a sorted set: the type pass reports it,
                // and nothing can be added to it.
                Some(Reply::WrongType) => continue,
                _ => return out_of_sequence(OP),
            };
            for (i, found) in read.of.iter().zip(scores) {
                let Some(d) = decoded.get(*i) else { continue };
                if let Some(finding) = self.judge_entry(read, d, found) {
                    findings.push(finding);
                }
            }
        }
        let seen = Seen::records(records);
        self.settle(findings, Redo::Records(entries), reads, Vec::new(), seen)
    }

    /// A record's entry in one index, `found` with that score (or not at
    /// all): a problem when it is not the score the record implies.
    fn judge_entry(&self, read: &ScoreRead, d: &Decoded, found: Option<f64>) -> Option<Finding> {
        let score = match read.kind {
            Index::All | Index::Active => IndexScore::of(d.session.created_at()),
            Index::Revoked => IndexScore::of(d.session.revocation()?.at()),
        };
        if found == Some(score.as_f64()) {
            return None;
        }
        // The revoked index only speeds up retention: sessions the Go
        // adapter revoked are never in it, and that is no problem (sweep
        // and the lists find them by their records). A wrong score there
        // still is.
        if read.kind == Index::Revoked && found.is_none() {
            return None;
        }
        let member = d.session.id().as_str().to_owned();
        let problem = Problem::MissingIndexEntry {
            index_key: read.key.clone(),
            member: member.clone(),
            record_key: d.key.clone(),
        };
        let group = user_group(&self.keys, d.session.user_id());
        let repair = Repair::add_entry(group, (&d.key, &d.bytes), &read.key, score, member);
        Some(Finding::repairable(problem, repair))
    }
}

/// A record read: undecodable or another user's (reported, never
/// repaired: the bytes are for a human), its owner key judged, and
/// the record decoded for its index memberships.
fn judge_record(
    entry: &RecordEntry,
    bytes: Vec<u8>,
    owner: Option<Vec<u8>>,
    findings: &mut Vec<Finding>,
) -> Option<Decoded> {
    let session = match codec::decode(&entry.id, &bytes) {
        Ok(session) => session,
        Err(error) => {
            findings.push(Finding::unrepairable(Problem::CorruptRecord {
                key: entry.key.clone(),
                error,
            }));
            return None;
        }
    };
    if entry.user.as_ref().is_some_and(|u| u != session.user_id()) {
        findings.push(Finding::unrepairable(Problem::ForeignRecord {
            key: entry.key.clone(),
            owner: session.user_id().as_str().to_owned(),
        }));
        return None;
    }
    if let Some(owner_key) = &entry.owner_key {
        findings.extend(judge_owner_key(entry, owner_key, session.user_id(), owner));
    }
    Some(Decoded {
        key: entry.key.clone(),
        session,
        bytes,
    })
}

/// A record's owner key (tagged layout), `found` holding that value (or
/// absent): missing is repaired, naming another user is reported.
fn judge_owner_key(
    entry: &RecordEntry,
    owner_key: &str,
    user: &UserId,
    found: Option<Vec<u8>>,
) -> Option<Finding> {
    let user_bytes = user.as_str().as_bytes();
    match found {
        None => Some(Finding::repairable(
            Problem::MissingOwnerKey {
                owner_key: owner_key.to_owned(),
                record_key: entry.key.clone(),
            },
            Repair::set_owner_key(owner_key, user),
        )),
        Some(found) if found != user_bytes => {
            Some(Finding::unrepairable(Problem::ForeignOwnerKey {
                owner_key: owner_key.to_owned(),
                record_key: entry.key.clone(),
                owner: String::from_utf8_lossy(&found).into_owned(),
            }))
        }
        Some(_) => None,
    }
}
