//! Reads and deletes over several slots: each step's reads grouped by
//! slot, one pipeline per slot's primary, all at once; `Values` over keys
//! of several slots split per slot and put back in order.

use std::collections::BTreeMap;
use std::time::Duration;

use authsession_core::plan::{Read, Reply};
use futures_util::future::{try_join, try_join_all};
use redis::{RedisError, Value};
use tokio::time::Instant;

use super::send::Resend;
use super::slots::{key_slot, slot_route};
use super::ClusterBackend;
use crate::backend::{bounded, script};
use crate::error::Error;

/// How one read is answered: whole by one command, or (`Values` over
/// several slots) in slices.
#[derive(Debug)]
enum Part {
    Whole(usize),
    Slice {
        read: usize,
        positions: Vec<usize>,
        sub: Read,
    },
}

/// The reads of one step grouped by slot.
#[derive(Debug, Default)]
struct ReadPlan {
    by_slot: BTreeMap<u16, (Vec<redis::Cmd>, Vec<Part>)>,
    scans: Vec<usize>,
    empty: Vec<usize>,
}

impl ReadPlan {
    fn new(reads: &[Read]) -> Result<Self, Error> {
        let mut plan = Self::default();
        for (i, read) in reads.iter().enumerate() {
            match read {
                Read::Scan { .. } => plan.scans.push(i),
                Read::Values { keys } if keys.is_empty() => plan.empty.push(i),
                Read::Values { keys } => {
                    let mut slots: BTreeMap<u16, (Vec<usize>, Vec<String>)> = BTreeMap::new();
                    for (position, key) in keys.iter().enumerate() {
                        let slice = slots.entry(key_slot(key.as_bytes())).or_default();
                        slice.0.push(position);
                        slice.1.push(key.clone());
                    }
                    if slots.len() == 1 {
                        if let Some(&slot) = slots.keys().next() {
                            plan.add(slot, read, Part::Whole(i));
                        }
                    } else {
                        for (slot, (positions, keys)) in slots {
                            let sub = Read::Values { keys };
                            let cmd = script::command(&sub, "");
                            plan.add_cmd(
                                slot,
                                cmd,
                                Part::Slice {
                                    read: i,
                                    positions,
                                    sub,
                                },
                            );
                        }
                    }
                }
                other => {
                    let (key, _) = other
                        .typed_key()
                        .ok_or_else(|| Error::unsupported(format!("{other:?}")))?;
                    plan.add(key_slot(key.as_bytes()), other, Part::Whole(i));
                }
            }
        }
        Ok(plan)
    }

    fn add(&mut self, slot: u16, read: &Read, part: Part) {
        self.add_cmd(slot, script::command(read, ""), part);
    }

    fn add_cmd(&mut self, slot: u16, cmd: redis::Cmd, part: Part) {
        let group = self.by_slot.entry(slot).or_default();
        group.0.push(cmd);
        group.1.push(part);
    }
}

impl ClusterBackend {
    pub(super) async fn read_plain(
        &self,
        budget: Duration,
        reads: &[Read],
    ) -> Result<Vec<Reply>, Error> {
        let plan = ReadPlan::new(reads)?;
        let deadline = Instant::now() + budget;
        let groups = plan.by_slot.iter().map(|(slot, (cmds, _))| async move {
            let values = self
                .send(deadline, &slot_route(*slot), cmds, Resend::IfUnanswered)
                .await?;
            Ok::<_, RedisError>(values)
        });
        let scans = plan
            .scans
            .iter()
            .filter_map(|&i| match reads.get(i) {
                Some(read @ Read::Scan { cursor, .. }) => Some((read, cursor)),
                _ => None,
            })
            .map(|(read, cursor)| self.scan(deadline, read, cursor));
        let (groups, scans) = bounded(
            budget,
            "read",
            try_join(try_join_all(groups), try_join_all(scans)),
        )
        .await?;

        let mut replies: Vec<Option<Reply>> = vec![None; reads.len()];
        let mut slices: BTreeMap<usize, Vec<Option<Vec<u8>>>> = BTreeMap::new();
        for ((_, (_, parts)), values) in plan.by_slot.iter().zip(groups) {
            if values.len() != parts.len() {
                return Err(Error::unsupported("pipeline reply count".to_owned()));
            }
            for (part, value) in parts.iter().zip(values) {
                match part {
                    Part::Whole(i) => {
                        let read = reads.get(*i).ok_or_else(read_mismatch)?;
                        let reply = script::reply(read, value, "read", |_| None)?;
                        if let Some(slot) = replies.get_mut(*i) {
                            *slot = Some(reply);
                        }
                    }
                    Part::Slice {
                        read,
                        positions,
                        sub,
                    } => {
                        let Reply::Values(values) = script::reply(sub, value, "read", |_| None)?
                        else {
                            return Err(read_mismatch());
                        };
                        let len = match reads.get(*read) {
                            Some(Read::Values { keys }) => keys.len(),
                            _ => return Err(read_mismatch()),
                        };
                        let whole = slices.entry(*read).or_insert_with(|| vec![None; len]);
                        for (&position, value) in positions.iter().zip(values) {
                            if let Some(slot) = whole.get_mut(position) {
                                *slot = value;
                            }
                        }
                    }
                }
            }
        }
        for (i, values) in slices {
            if let Some(slot) = replies.get_mut(i) {
                *slot = Some(Reply::Values(values));
            }
        }
        for i in plan.empty {
            if let Some(slot) = replies.get_mut(i) {
                *slot = Some(Reply::Values(Vec::new()));
            }
        }
        for (&i, (value, next)) in plan.scans.iter().zip(scans) {
            let read = reads.get(i).ok_or_else(read_mismatch)?;
            let reply = script::reply(read, value, "read", |_| next)?;
            if let Some(slot) = replies.get_mut(i) {
                *slot = Some(reply);
            }
        }
        replies
            .into_iter()
            .map(|r| r.ok_or_else(read_mismatch))
            .collect()
    }

    pub(super) async fn delete_plain(
        &self,
        budget: Duration,
        keys: &[String],
    ) -> Result<u64, Error> {
        let mut by_slot: BTreeMap<u16, Vec<&str>> = BTreeMap::new();
        for key in keys {
            by_slot
                .entry(key_slot(key.as_bytes()))
                .or_default()
                .push(key);
        }
        let deadline = Instant::now() + budget;
        let deletes = by_slot.iter().map(|(slot, keys)| async move {
            let unlink = redis::cmd("UNLINK").arg(keys).to_owned();
            let values = self
                .send(deadline, &slot_route(*slot), &[unlink], Resend::IfRefused)
                .await?;
            let value = values.into_iter().next().unwrap_or(Value::Nil);
            redis::from_redis_value::<u64>(value.extract_error()?).map_err(RedisError::from)
        });
        let counts = bounded(budget, "unlink", try_join_all(deletes)).await?;
        Ok(counts.into_iter().sum())
    }
}

fn read_mismatch() -> Error {
    Error::unsupported("a reply that does not match its read".to_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reads_group_by_slot_and_split_values() {
        let a = "{a}x".to_owned();
        let b = "{b}y".to_owned();
        let plan = ReadPlan::new(&[
            Read::Value { key: a.clone() },
            Read::Values {
                keys: vec![a.clone(), b.clone(), a.clone()],
            },
            Read::IndexLen { key: b.clone() },
            Read::Values { keys: vec![] },
        ])
        .unwrap();
        assert_eq!(plan.by_slot.len(), 2);
        let (cmds, parts) = &plan.by_slot[&key_slot(b"a")];
        assert_eq!(cmds.len(), 2);
        assert!(
            matches!(&parts[1], Part::Slice { read: 1, positions, .. } if *positions == [0, 2])
        );
        assert_eq!(plan.empty, [3]);
    }
}
