//! A pure in-memory key-value state that applies [`Plan`]s exactly as the
//! Redis driver's script does: string values plus sorted sets, all
//! preconditions checked before any write. The in-memory store wraps it in
//! a lock; tests and fuzzers drive it directly.

use std::collections::{BTreeMap, HashMap};

use crate::keys::IndexScore;
use crate::plan::{OnViolation, Plan, Precondition, Write};

/// A plan's precondition did not hold; nothing was written.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("precondition {index} on {key} does not hold")]
pub struct Violation {
    /// Position of the failed precondition in the plan.
    pub index: usize,
    /// The key it was about.
    pub key: String,
    /// What the plan says this means.
    pub on_violation: OnViolation,
}

/// String values and sorted sets, like the subset of Redis the store uses.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MemoryKv {
    values: BTreeMap<String, Vec<u8>>,
    indexes: BTreeMap<String, HashMap<String, f64>>,
}

impl MemoryKv {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value at `key`.
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.values.get(key).map(Vec::as_slice)
    }

    /// Members of the sorted set at `key` with score at most `max_score`
    /// (all when `None`), ordered by score then member bytes, ascending
    /// (Redis `ZRANGEBYSCORE` order).
    pub fn index_range(&self, key: &str, max_score: Option<IndexScore>) -> Vec<(String, f64)> {
        let Some(set) = self.indexes.get(key) else {
            return Vec::new();
        };
        let mut members: Vec<(String, f64)> = set
            .iter()
            .filter(|(_, score)| max_score.is_none_or(|max| **score <= max.as_f64()))
            .map(|(m, s)| (m.clone(), *s))
            .collect();
        members.sort_by(|a, b| {
            a.1.total_cmp(&b.1)
                .then_with(|| a.0.as_bytes().cmp(b.0.as_bytes()))
        });
        members
    }

    /// Number of members of the sorted set at `key`.
    pub fn index_len(&self, key: &str) -> usize {
        self.indexes.get(key).map_or(0, HashMap::len)
    }

    /// Every string key, sorted.
    pub fn value_keys(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }

    /// Every sorted-set key, sorted.
    pub fn index_keys(&self) -> impl Iterator<Item = &str> {
        self.indexes.keys().map(String::as_str)
    }

    /// Writes a raw value, bypassing plans (tests plant corruption with it).
    pub fn set_raw(&mut self, key: impl Into<String>, value: impl Into<Vec<u8>>) {
        self.values.insert(key.into(), value.into());
    }

    /// Deletes a value or sorted set, bypassing plans.
    pub fn delete_raw(&mut self, key: &str) {
        self.values.remove(key);
        self.indexes.remove(key);
    }

    /// Adds a raw sorted-set member, bypassing plans.
    pub fn index_add_raw(&mut self, key: impl Into<String>, member: impl Into<String>, score: f64) {
        self.indexes
            .entry(key.into())
            .or_default()
            .insert(member.into(), score);
    }

    /// Checks every precondition of `plan`; if all hold, makes every write.
    pub fn apply(&mut self, plan: &Plan) -> Result<(), Violation> {
        for (index, precondition) in plan.preconditions().iter().enumerate() {
            if !self.holds(precondition) {
                return Err(Violation {
                    index,
                    key: precondition.key().to_owned(),
                    on_violation: plan.on_violation(),
                });
            }
        }
        for write in plan.writes() {
            match write {
                Write::Set { key, value } => {
                    self.values.insert(key.clone(), value.clone());
                }
                Write::IndexAdd { key, score, member } => {
                    self.indexes
                        .entry(key.clone())
                        .or_default()
                        .insert(member.clone(), score.as_f64());
                }
                Write::IndexRemove { key, member } => {
                    if let Some(set) = self.indexes.get_mut(key) {
                        set.remove(member);
                        // Redis deletes an emptied sorted set.
                        if set.is_empty() {
                            self.indexes.remove(key);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn holds(&self, precondition: &Precondition) -> bool {
        match precondition {
            Precondition::Absent { key } => {
                !self.values.contains_key(key) && !self.indexes.contains_key(key)
            }
            Precondition::ValueEquals { key, value } => self.values.get(key) == Some(value),
            Precondition::IndexRangeEquals {
                key,
                max_score,
                members,
            } => {
                let in_range = |score: f64| max_score.is_none_or(|max| score <= max.as_f64());
                let set = self.indexes.get(key);
                let count = set.map_or(0, |s| s.values().filter(|score| in_range(**score)).count());
                count == members.len()
                    && members.iter().all(|m| {
                        set.and_then(|s| s.get(m))
                            .is_some_and(|score| in_range(*score))
                    })
            }
        }
    }
}
