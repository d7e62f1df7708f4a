//! Maintenance, apart from the service-facing operations: `check` (and
//! repair), `sweep`, `purge`. Each is a bounded walk: the key space page
//! by page and every index window by window, so no command of ours holds
//! the server for long at any size; there is no overall deadline, only
//! the operation timeout on every round trip.

use authsession_core::op::{Check, Sweep, SweepReport};
use authsession_core::plan::{KeyType, Read, Reply, ScanCursor};

use crate::backend::Backend;
use crate::check::CheckReport;
use crate::error::Error;
use crate::store::Store;

pub use authsession_core::audit::CheckMode;

/// Keys per scan page and per batch of deletes.
const SCAN_BATCH: usize = 512;

impl<B: Backend> Store<B> {
    /// One page of the keys under `prefix` holding `key_type`, and where
    /// to continue (`None`: done).
    async fn scan_page(
        &self,
        cursor: ScanCursor,
        prefix: &str,
        key_type: KeyType,
    ) -> Result<(Vec<String>, Option<ScanCursor>), Error> {
        let read = Read::Scan {
            cursor,
            prefix: prefix.to_owned(),
            key_type,
            count: SCAN_BATCH,
        };
        match self
            .backend
            .read(self.timeout, &[read])
            .await?
            .into_iter()
            .next()
        {
            Some(Reply::Keys(page, next)) => Ok((page, next)),
            _ => Err(Error::unsupported("scan reply".to_owned())),
        }
    }

    /// Every key under `prefix` holding `key_type`, page by page (held in
    /// memory: for callers that need the whole list).
    pub(crate) async fn scan_all(
        &self,
        prefix: &str,
        key_type: KeyType,
    ) -> Result<Vec<String>, Error> {
        let mut cursor = ScanCursor::start();
        let mut keys = Vec::new();
        loop {
            let (page, next) = self.scan_page(cursor, prefix, key_type).await?;
            keys.extend(page);
            match next {
                Some(next) => cursor = next,
                None => break,
            }
        }
        keys.sort();
        keys.dedup();
        Ok(keys)
    }
}

/// Maintenance of a store's key space (not for request paths).
pub trait SessionAdmin: Send + Sync {
    /// Audits the key space in bounded batches: every record strictly
    /// decoded and its index memberships (and owner key) checked, every
    /// index member's record read, every owner key's record looked for.
    /// With [`CheckMode::Repair`], fixes the derived data batch by batch
    /// (each plan guarded by what it was derived from) and reports what it
    /// fixed and what it did not. Owner keys seen without their record are
    /// looked at again the policy's `owner_grace` after the walk (this
    /// call waits that long when there are any): only those still dangling
    /// are reported, and removed by a repair.
    fn check(
        &self,
        mode: CheckMode,
    ) -> impl std::future::Future<Output = Result<CheckReport, Error>> + Send {
        self.check_with_progress(mode, &no_progress)
    }

    /// [`SessionAdmin::check`], telling `progress` how many keys the walk
    /// has visited so far, now and then (it runs on the walk's task:
    /// keep it cheap).
    fn check_with_progress(
        &self,
        mode: CheckMode,
        progress: &(dyn Fn(u64) + Sync),
    ) -> impl std::future::Future<Output = Result<CheckReport, Error>> + Send;

    /// Removes every revoked session past the configured retention, for
    /// every user, in bounded atomic batches (record and index entries
    /// together, then the owner key in the tagged layout). Resumable:
    /// running it again finishes what an interrupted run left. Without a
    /// retention, removes no session (the report says so). In the tagged
    /// layout it also removes owner keys still without their record the
    /// policy's `owner_grace` after the walk saw them (and waits that
    /// long when there are any).
    fn sweep(&self) -> impl std::future::Future<Output = Result<SweepReport, Error>> + Send {
        self.sweep_with_progress(&no_progress)
    }

    /// [`SessionAdmin::sweep`], telling `progress` how many keys the walk
    /// has visited so far, now and then.
    fn sweep_with_progress(
        &self,
        progress: &(dyn Fn(u64) + Sync),
    ) -> impl std::future::Future<Output = Result<SweepReport, Error>> + Send;

    /// Deletes every key of this store's key space, page by page; returns
    /// how many.
    fn purge(&self) -> impl std::future::Future<Output = Result<u64, Error>> + Send;
}

/// The progress of a caller that wants none.
pub(crate) fn no_progress(_: u64) {}

impl<B: Backend> SessionAdmin for Store<B> {
    async fn check_with_progress(
        &self,
        mode: CheckMode,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<CheckReport, Error> {
        let batch = self.policy.batch_size;
        let check = Check::new(&self.keys, mode, batch);
        let mut report = self.drive_walk(check, progress).await?;
        let repair = mode == CheckMode::Repair;
        if let Some(recheck) = report.owner_recheck(&self.keys, repair, batch) {
            // Every first look is over: the second comes a grace later.
            tracing::info!(
                grace_ms = self.policy.owner_grace.as_millis(),
                "authsession.check: owner keys without their record; looking again after the grace"
            );
            tokio::time::sleep(self.policy.owner_grace).await;
            let outcome = self.drive_walk(recheck, progress).await?;
            report.absorb_owner_recheck(&self.keys, outcome, repair);
        }
        Ok(report)
    }

    async fn sweep_with_progress(
        &self,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<SweepReport, Error> {
        let sweep = Sweep::new(&self.keys, self.policy, self.now());
        let mut report = self.drive_walk(sweep, progress).await?;
        if let Some(recheck) = report.owner_recheck(&self.keys, self.policy.batch_size) {
            tracing::info!(
                grace_ms = self.policy.owner_grace.as_millis(),
                "authsession.sweep: owner keys without their record; looking again after the grace"
            );
            tokio::time::sleep(self.policy.owner_grace).await;
            let outcome = self.drive_walk(recheck, progress).await?;
            report.absorb_owner_recheck(&outcome);
        }
        Ok(report)
    }

    async fn purge(&self) -> Result<u64, Error> {
        let mut deleted = 0;
        for (_, prefix) in self.keys.prefixes() {
            for key_type in [KeyType::String, KeyType::SortedSet] {
                // Deleting what a page returned does not disturb the scan:
                // every key present throughout is still returned once.
                let mut cursor = ScanCursor::start();
                loop {
                    let (page, next) = self.scan_page(cursor, prefix, key_type).await?;
                    for chunk in page.chunks(SCAN_BATCH) {
                        deleted += self.delete(self.timeout, chunk).await?;
                    }
                    match next {
                        Some(next) => cursor = next,
                        None => break,
                    }
                }
            }
        }
        Ok(deleted)
    }
}
