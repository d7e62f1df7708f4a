//! What a `revoke all` reports: what it revoked and, apart, what it could
//! not — kept in its own file because callers and the driver read the
//! report without needing the walk that fills it.

use crate::op::TransitionError;
use crate::session::{RevokeUserSessionsOutcome, Session};

/// What a `revoke all` did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct RevokeAllReport {
    /// The sessions revoked, newest first (empty when not collected).
    pub revoked: Vec<Session>,
    /// How many sessions were revoked.
    pub count: u64,
    /// How many batches were applied.
    pub batches: u64,
    /// Index drift found and repaired on the way: active sessions missing
    /// from the active index (found through the all-sessions index and
    /// revoked; also counted in `count`), and revoked sessions left in the
    /// active index (taken out of it).
    pub drift_repaired: u64,
    /// What could not be revoked, each with why; empty when the call
    /// revoked everything ([`RevokeAllReport::into_result`]).
    pub unrevocable: Vec<Unrevocable>,
}

/// One index member or key that `revoke all` could not revoke.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Unrevocable {
    /// The key concerned: the record, or the index itself.
    pub key: String,
    /// The index member (a session id; lossily shown when not UTF-8), when
    /// the problem is one member's.
    pub member: Option<String>,
    /// Why, as a stable kind: `corrupt_record` (undecodable),
    /// `foreign_index_member` (another user's), `dangling_index_member`
    /// (no record), `wrong_type` (the key holds another type),
    /// `invalid_index_member` (not a session id).
    pub reason: &'static str,
    /// The same in words, one line.
    pub message: String,
}

impl Unrevocable {
    pub(super) fn of(error: &TransitionError, key: &str, member: Option<&[u8]>) -> Self {
        Self {
            key: key.to_owned(),
            member: member.map(|m| String::from_utf8_lossy(m).into_owned()),
            reason: error.kind(),
            // Messages are one line; keep it so whatever a member holds.
            message: error.to_string().replace(['\n', '\r'], " "),
        }
    }
}

impl RevokeAllReport {
    /// The outcome of the classic form (`Revoked` with every session, or
    /// `NoActiveSessions`).
    pub fn into_outcome(self) -> RevokeUserSessionsOutcome {
        if self.revoked.is_empty() {
            RevokeUserSessionsOutcome::NoActiveSessions
        } else {
            RevokeUserSessionsOutcome::Revoked(self.revoked)
        }
    }

    /// The one rule for the call's result: anything unrevocable makes it
    /// [`TransitionError::PartiallyRevoked`] (carrying this report), never
    /// a success.
    pub fn into_result(self) -> Result<Self, TransitionError> {
        if self.unrevocable.is_empty() {
            Ok(self)
        } else {
            Err(TransitionError::PartiallyRevoked(Box::new(self)))
        }
    }

    /// One line: what was revoked, what was not.
    pub fn summary(&self) -> String {
        let mut text = format!("revoked {} session(s)", self.count);
        if self.drift_repaired > 0 {
            text.push_str(&format!(
                " (repaired {} index drift entr{})",
                self.drift_repaired,
                if self.drift_repaired == 1 { "y" } else { "ies" }
            ));
        }
        if let Some(first) = self.unrevocable.first() {
            text.push_str(&format!(
                "; {} could not be revoked, first {} ({})",
                self.unrevocable.len(),
                first.member.as_deref().unwrap_or(&first.key),
                first.reason
            ));
        }
        text
    }

    /// Names `item`, once.
    pub(super) fn name(&mut self, item: Unrevocable) {
        if !self
            .unrevocable
            .iter()
            .any(|u| u.key == item.key && u.member == item.member)
        {
            self.unrevocable.push(item);
        }
    }
}
