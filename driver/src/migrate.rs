//! `migrate`: copy a whole key space into another store or layout, in
//! bounded batches, idempotently, then verify both sides session by
//! session.

use std::cmp::Ordering;

use authsession_core::op::{Import, ImportConflict, Page, PageLimit, PageRequest, StatusFilter};
use authsession_core::plan::KeyType;
use authsession_core::{newest_first, Index, KeyKind, Session, UserId};
use serde::Serialize;

use crate::backend::Backend;
use crate::error::Error;
use crate::store::Store;
use crate::SessionStore as _;

/// One session that is not the same on both sides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MigrateDifference {
    /// The user.
    pub user_id: String,
    /// The device session id.
    pub id: String,
    /// `missing_in_target`, `extra_in_target`, `differs`,
    /// `owned_by_another_user`.
    pub kind: &'static str,
}

/// What a migration did and found.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[non_exhaustive]
pub struct MigrateReport {
    /// Users visited.
    pub users: u64,
    /// Sessions read from the source.
    pub sessions: u64,
    /// Sessions written to the target by this run.
    pub copied: u64,
    /// Sessions already in the target with the same bytes (a resumed run).
    pub already_present: u64,
    /// Every difference the verify pass found (empty: both sides equal).
    pub differences: Vec<MigrateDifference>,
}

impl MigrateReport {
    /// Whether both sides hold exactly the same sessions.
    pub fn is_identical(&self) -> bool {
        self.differences.is_empty()
    }
}

fn page_request(cursor: Option<authsession_core::op::PageCursor>, limit: PageLimit) -> PageRequest {
    PageRequest {
        limit,
        cursor,
        status: StatusFilter::All,
    }
}

impl<A: Backend> Store<A> {
    /// Every user with an all-sessions index in this key space.
    pub(crate) async fn users(&self) -> Result<Vec<UserId>, Error> {
        let prefix = self.keys.prefix(KeyKind::Index(Index::All));
        let keys = self.scan_all(prefix, KeyType::SortedSet).await?;
        Ok(keys
            .iter()
            .filter_map(|k| self.keys.parse_index_key(Index::All, k))
            .collect())
    }

    /// Copies every session of this store into `target` (its own key
    /// space and layout), user by user in pages of the batch size, then
    /// verifies every session on both sides. Idempotent and resumable: a
    /// session already in the target with the same bytes is left alone, a
    /// different one is reported, never overwritten. The target's session
    /// limit is not applied (sessions are copied as they are).
    pub async fn migrate_to<B: Backend>(&self, target: &Store<B>) -> Result<MigrateReport, Error> {
        self.migrate_to_with_progress(target, &crate::admin::no_progress)
            .await
    }

    /// [`Store::migrate_to`], telling `progress` how many sessions it has
    /// handled so far: copied (or found present), then verified — at the
    /// end twice the sessions read.
    pub async fn migrate_to_with_progress<B: Backend>(
        &self,
        target: &Store<B>,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<MigrateReport, Error> {
        let limit = PageLimit::new(self.policy.batch_size.get().min(PageLimit::MAX))
            .map_err(|e| Error::config("batch_size", e.to_string()))?;
        let users = self.users().await?;
        let mut report = MigrateReport {
            users: u64::try_from(users.len()).unwrap_or(u64::MAX),
            ..MigrateReport::default()
        };
        for user in &users {
            let mut cursor = None;
            loop {
                let page = self.list_page(user, &page_request(cursor, limit)).await?;
                report.sessions += u64::try_from(page.sessions.len()).unwrap_or(u64::MAX);
                progress(report.sessions);
                let import = Import::new(&target.keys, target.policy, user.clone(), page.sessions);
                let done = target.drive(import).await?;
                report.copied += done.created;
                report.already_present += done.present;
                for (session, conflict) in done.conflicts {
                    report.differences.push(MigrateDifference {
                        user_id: user.as_str().to_owned(),
                        id: session.id().as_str().to_owned(),
                        kind: conflict.as_str(),
                    });
                }
                match page.next_cursor {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
        }
        // Verify: both sides walked in list order, merged.
        let mut verified = Vec::new();
        let mut handled = report.sessions;
        for user in &users {
            handled += self.verify_user(target, user, limit, &mut verified).await?;
            progress(handled);
        }
        // A conflict found while copying shows up again in the verify pass
        // (as `differs`); report each session once, the copy's reason first.
        for difference in verified {
            if !report
                .differences
                .iter()
                .any(|d| d.user_id == difference.user_id && d.id == difference.id)
            {
                report.differences.push(difference);
            }
        }
        Ok(report)
    }

    async fn verify_user<B: Backend>(
        &self,
        target: &Store<B>,
        user: &UserId,
        limit: PageLimit,
        out: &mut Vec<MigrateDifference>,
    ) -> Result<u64, Error> {
        let mut source = PageWalk::default();
        let mut dest = PageWalk::default();
        let diff = |s: &Session, kind| MigrateDifference {
            user_id: user.as_str().to_owned(),
            id: s.id().as_str().to_owned(),
            kind,
        };
        // Source sessions compared, for progress.
        let mut compared = 0;
        loop {
            source.fill(self, user, limit).await?;
            dest.fill(target, user, limit).await?;
            match (source.peek(), dest.peek()) {
                (None, None) => return Ok(compared),
                (Some(s), None) => {
                    out.push(diff(s, "missing_in_target"));
                    source.pop();
                    compared += 1;
                }
                (None, Some(d)) => {
                    out.push(diff(d, ImportConflict::Differs.as_str()));
                    dest.pop();
                }
                (Some(s), Some(d)) => match newest_first(s, d) {
                    Ordering::Equal => {
                        if s != d {
                            out.push(diff(s, ImportConflict::Differs.as_str()));
                        }
                        source.pop();
                        compared += 1;
                        dest.pop();
                    }
                    Ordering::Less => {
                        out.push(diff(s, "missing_in_target"));
                        source.pop();
                        compared += 1;
                    }
                    Ordering::Greater => {
                        out.push(diff(d, "extra_in_target"));
                        dest.pop();
                    }
                },
            }
        }
    }
}

/// One side of the verify merge: the current page and where the next
/// starts.
#[derive(Default)]
struct PageWalk {
    buffer: std::collections::VecDeque<Session>,
    next: Option<authsession_core::op::PageCursor>,
    finished: bool,
}

impl PageWalk {
    async fn fill<B: Backend>(
        &mut self,
        store: &Store<B>,
        user: &UserId,
        limit: PageLimit,
    ) -> Result<(), Error> {
        while self.buffer.is_empty() && !self.finished {
            let page: Page = store
                .list_page(user, &page_request(self.next.take(), limit))
                .await?;
            self.buffer.extend(page.sessions);
            self.finished = page.next_cursor.is_none();
            self.next = page.next_cursor;
        }
        Ok(())
    }

    fn peek(&self) -> Option<&Session> {
        self.buffer.front()
    }

    fn pop(&mut self) {
        self.buffer.pop_front();
    }
}
