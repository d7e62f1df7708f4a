//! The result of [`SessionStore::check`](crate::SessionStore::check).

use authsession_core::audit::{Problem, Report};
use serde::ser::{SerializeStruct as _, Serializer};
use serde::Serialize;

/// What a consistency check of a store's key space found.
///
/// Serializes (for the CLI) as
/// `{"records":N,"index_entries":N,"problems":[{"kind","key","message"}],"repaired":bool}`.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckReport {
    /// Records examined.
    pub records: usize,
    /// Index entries examined.
    pub index_entries: usize,
    /// Every problem found (before any repair), in key order.
    pub problems: Vec<Problem>,
    /// Whether a repair was applied (every repairable problem fixed).
    pub repaired: bool,
}

impl CheckReport {
    pub(crate) fn from_audit(report: Report, repaired: bool) -> Self {
        Self {
            records: report.records,
            index_entries: report.index_entries,
            problems: report.problems,
            repaired,
        }
    }

    /// Whether no problem was found.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

struct ProblemJson<'a>(&'a Problem);

impl Serialize for ProblemJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Problem", 3)?;
        s.serialize_field("kind", self.0.kind())?;
        s.serialize_field("key", self.0.key())?;
        s.serialize_field("message", &self.0.to_string())?;
        s.end()
    }
}

impl Serialize for CheckReport {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let problems: Vec<ProblemJson<'_>> = self.problems.iter().map(ProblemJson).collect();
        let mut s = serializer.serialize_struct("CheckReport", 4)?;
        s.serialize_field("records", &self.records)?;
        s.serialize_field("index_entries", &self.index_entries)?;
        s.serialize_field("problems", &problems)?;
        s.serialize_field("repaired", &self.repaired)?;
        s.end()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn serializes_problems_as_kind_key_message() {
        let report = CheckReport {
            records: 2,
            index_entries: 3,
            problems: vec![Problem::StrayIndexEntry {
                index_key: "i".into(),
                member: "m".into(),
                reason: "no record",
            }],
            repaired: true,
        };
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "records": 2,
                "index_entries": 3,
                "problems": [{
                    "kind": "stray_index_entry",
                    "key": "i",
                    "message": "i: stray member \"m\": no record",
                }],
                "repaired": true,
            })
        );
        assert!(!report.is_clean());
    }
}
