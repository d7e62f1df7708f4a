//! A pure in-memory key-value state that answers [`Read`]s and applies
//! [`Plan`]s exactly as the Redis backends do: one map of keys to a string
//! or a sorted set, every precondition (and every key's type) checked
//! before any write. The in-memory store wraps it in a lock; tests and
//! fuzzers drive it directly, through [`crate::op::run`].

use std::collections::{BTreeMap, HashMap};

use crate::keys::IndexScore;
use crate::plan::{
    Applied, IndexRange, KeyType, Member, Plan, Precondition, Read, Reply, ScanCursor, Write,
};

/// One stored value.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    String(Vec<u8>),
    SortedSet(HashMap<Member, f64>),
}

impl Value {
    fn key_type(&self) -> KeyType {
        match self {
            Value::String(_) => KeyType::String,
            Value::SortedSet(_) => KeyType::SortedSet,
        }
    }
}

/// String values and sorted sets, like the subset of Redis the store uses.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MemoryKv {
    values: BTreeMap<String, Value>,
}

impl MemoryKv {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }

    /// The string value at `key` (`None` when absent or of another type).
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        match self.values.get(key) {
            Some(Value::String(v)) => Some(v),
            _ => None,
        }
    }

    /// What `key` holds, if anything.
    pub fn key_type(&self, key: &str) -> Option<KeyType> {
        self.values.get(key).map(Value::key_type)
    }

    fn set(&self, key: &str) -> Option<&HashMap<Member, f64>> {
        match self.values.get(key) {
            Some(Value::SortedSet(s)) => Some(s),
            _ => None,
        }
    }

    /// Members of the sorted set at `key` with score at most `max_score`
    /// (all when `None`), ordered by score then member bytes, ascending
    /// (Redis `ZRANGEBYSCORE` order).
    pub fn index_range(&self, key: &str, max_score: Option<IndexScore>) -> Vec<(Member, f64)> {
        let Some(set) = self.set(key) else {
            return Vec::new();
        };
        let mut members: Vec<(Member, f64)> = set
            .iter()
            .filter(|(_, score)| max_score.is_none_or(|max| **score <= max.as_f64()))
            .map(|(m, s)| (m.clone(), *s))
            .collect();
        members.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        members
    }

    /// Number of members of the sorted set at `key`.
    pub fn index_len(&self, key: &str) -> usize {
        self.set(key).map_or(0, HashMap::len)
    }

    /// Every string key, sorted.
    pub fn value_keys(&self) -> impl Iterator<Item = &str> {
        self.values
            .iter()
            .filter(|(_, v)| matches!(v, Value::String(_)))
            .map(|(k, _)| k.as_str())
    }

    /// Every sorted-set key, sorted.
    pub fn index_keys(&self) -> impl Iterator<Item = &str> {
        self.values
            .iter()
            .filter(|(_, v)| matches!(v, Value::SortedSet(_)))
            .map(|(k, _)| k.as_str())
    }

    /// Every key, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether no key exists.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Writes a raw value, bypassing plans (tests plant corruption with it).
    pub fn set_raw(&mut self, key: impl Into<String>, value: impl Into<Vec<u8>>) {
        self.values.insert(key.into(), Value::String(value.into()));
    }

    /// Deletes a key of any type, bypassing plans.
    pub fn delete_raw(&mut self, key: &str) {
        self.values.remove(key);
    }

    /// Adds a raw sorted-set member, bypassing plans (replaces a string
    /// at `key`).
    pub fn index_add_raw(&mut self, key: impl Into<String>, member: impl Into<Member>, score: f64) {
        let entry = self
            .values
            .entry(key.into())
            .or_insert_with(|| Value::SortedSet(HashMap::new()));
        if let Value::String(_) = entry {
            *entry = Value::SortedSet(HashMap::new());
        }
        if let Value::SortedSet(set) = entry {
            set.insert(member.into(), score);
        }
    }

    /// Answers `reads` in order, as one round trip would.
    pub fn read_all(&self, reads: &[Read]) -> Vec<Reply> {
        reads.iter().map(|r| self.read(r)).collect()
    }

    /// Answers one read.
    pub fn read(&self, read: &Read) -> Reply {
        if let Some((key, wanted)) = read.typed_key() {
            if self.key_type(key).is_some_and(|t| t != wanted) {
                return Reply::WrongType;
            }
        }
        match read {
            Read::Value { key } => Reply::Value(self.get(key).map(<[u8]>::to_vec)),
            Read::Values { keys } => Reply::Values(
                keys.iter()
                    .map(|k| self.get(k).map(<[u8]>::to_vec))
                    .collect(),
            ),
            Read::IndexLen { key } => {
                Reply::Len(u64::try_from(self.index_len(key)).unwrap_or(u64::MAX))
            }
            Read::IndexRange(range) if range.with_scores => Reply::Members(self.range(range)),
            Read::IndexRange(range) => {
                Reply::Names(self.range(range).into_iter().map(|(m, _)| m).collect())
            }
            Read::IndexRanks { key, start, limit } => {
                let start = usize::try_from(*start).unwrap_or(usize::MAX);
                Reply::Members(
                    self.index_range(key, None)
                        .into_iter()
                        .skip(start)
                        .take((*limit).max(1))
                        .collect(),
                )
            }
            Read::IndexScores { key, members } => {
                let set = self.set(key);
                Reply::Scores(
                    members
                        .iter()
                        .map(|m| set.and_then(|s| s.get(m)).copied())
                        .collect(),
                )
            }
            Read::Scan {
                cursor,
                prefix,
                key_type,
                count,
            } => {
                // The cursor is the last key returned: keys are sorted, so
                // a scan visits each key that exists throughout exactly once.
                let after = cursor.as_str();
                let page: Vec<String> = self
                    .values
                    .range::<str, _>((
                        if after.is_empty() {
                            std::ops::Bound::Unbounded
                        } else {
                            std::ops::Bound::Excluded(after)
                        },
                        std::ops::Bound::Unbounded,
                    ))
                    .filter(|(k, _)| k.starts_with(prefix.as_str()))
                    .filter(|(_, v)| v.key_type() == *key_type)
                    .take((*count).max(1))
                    .map(|(k, _)| k.clone())
                    .collect();
                let next = match page.last() {
                    Some(last) if page.len() >= (*count).max(1) => {
                        Some(ScanCursor::from_backend(last.clone()))
                    }
                    _ => None,
                };
                Reply::Keys(page, next)
            }
        }
    }

    fn range(&self, range: &IndexRange) -> Vec<(Member, f64)> {
        let Some(set) = self.set(&range.key) else {
            return Vec::new();
        };
        let mut members: Vec<(Member, f64)> = set
            .iter()
            .filter(|(_, s)| range.min.admits_from_below(**s) && range.max.admits_from_above(**s))
            .map(|(m, s)| (m.clone(), *s))
            .collect();
        members.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        if range.newest_first {
            members.reverse();
        }
        if let Some(limit) = range.limit {
            members.truncate(limit);
        }
        members
    }

    /// Checks every key's type (each checked key must hold what the plan
    /// needs there, or nothing: [`crate::plan::KeyTable`]) and then every
    /// precondition of `plan`; if all hold, makes every write.
    pub fn apply(&mut self, plan: &Plan) -> Applied {
        let table = plan.key_table();
        for (position, (key, needs)) in table.keys().iter().enumerate() {
            let wrong = match (needs, self.key_type(key)) {
                (Some(needs), Some(found)) => found != *needs,
                _ => false,
            };
            if wrong || table.is_mixed(position) {
                return Applied::WrongType {
                    key: (*key).to_owned(),
                };
            }
        }
        for (index, precondition) in plan.preconditions().enumerate() {
            if !self.holds(precondition) {
                return Applied::Violated { index };
            }
        }
        for write in plan.writes() {
            self.write(write);
        }
        Applied::Done
    }

    /// What a server that cannot check a plan's writes up front leaves
    /// when the plan's preconditions held and the write after the first
    /// `n` (in [`Plan::write_phases`] order) was refused: those `n` writes
    /// made, no others. For testing that every prefix fails safe.
    pub fn apply_prefix(&mut self, plan: &Plan, n: usize) {
        let phases = plan.write_phases();
        let mut order: Vec<usize> = (0..plan.writes().len()).collect();
        order.sort_by_key(|&i| phases.get(i).copied());
        for i in order.into_iter().take(n) {
            if let Some(write) = plan.writes().get(i) {
                self.write(write);
            }
        }
    }

    fn write(&mut self, write: &Write) {
        match write {
            Write::Set { key, value } => {
                self.values
                    .insert(key.clone(), Value::String(value.clone()));
            }
            Write::Delete { key } => {
                self.values.remove(key);
            }
            Write::IndexAdd { key, score, member } => {
                self.index_add_raw(key.clone(), member.as_bytes().to_vec(), score.as_f64());
            }
            Write::IndexRemove { key, member } => {
                if let Some(Value::SortedSet(set)) = self.values.get_mut(key) {
                    set.remove(member);
                    // Redis deletes an emptied sorted set.
                    if set.is_empty() {
                        self.values.remove(key);
                    }
                }
            }
        }
    }

    fn holds(&self, precondition: &Precondition) -> bool {
        match precondition {
            Precondition::Absent { key } => !self.values.contains_key(key),
            Precondition::ValueEquals { key, value } => self.get(key) == Some(value),
            Precondition::AbsentOrEquals { key, value } => {
                self.get(key).is_none_or(|v| v == value.as_slice())
            }
            Precondition::IndexRangeEquals {
                key,
                max_score,
                members,
            } => {
                let in_range = |score: f64| max_score.is_none_or(|max| score <= max.as_f64());
                let set = self.set(key);
                let count = set.map_or(0, |s| s.values().filter(|score| in_range(**score)).count());
                count == members.len()
                    && members.iter().all(|m| {
                        set.and_then(|s| s.get(m))
                            .is_some_and(|score| in_range(*score))
                    })
            }
            Precondition::IndexContains { key, members } => {
                let set = self.set(key);
                members
                    .iter()
                    .all(|m| set.is_some_and(|s| s.contains_key(m)))
            }
            Precondition::IndexCountAtMost {
                key,
                max_score,
                max,
            } => {
                let count = self.set(key).map_or(0, |s| {
                    s.values()
                        .filter(|score| max_score.is_none_or(|m| **score <= m.as_f64()))
                        .count()
                });
                u64::try_from(count).unwrap_or(u64::MAX) <= *max
            }
        }
    }
}
