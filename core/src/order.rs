//! The one ordering of sessions: newest `created_at` first, ties by device
//! session id, byte-wise ascending.

use std::cmp::Ordering;

use crate::session::Session;

/// Compares two sessions: newest `created_at` first, then id bytes
/// ascending. Two distinct sessions never compare equal.
pub fn newest_first(a: &Session, b: &Session) -> Ordering {
    b.created_at()
        .cmp(&a.created_at())
        .then_with(|| a.id().as_str().as_bytes().cmp(b.id().as_str().as_bytes()))
}

/// Sorts sessions in place, newest first.
pub fn sort_newest_first(sessions: &mut [Session]) {
    sessions.sort_unstable_by(newest_first);
}
