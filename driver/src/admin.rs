//! Maintenance, apart from the service-facing operations: `check` (and
//! repair), `purge`.

use authsession_core::audit;
use authsession_core::plan::{Applied, KeyType, Read, Reply, ScanCursor};
use authsession_core::KeySpace;

use crate::backend::Backend;
use crate::check::CheckReport;
use crate::error::Error;
use crate::store::Store;

/// Keys per scan page and per batch of reads.
const SCAN_BATCH: usize = 512;

/// What `check` does about what it finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CheckMode {
    /// Report only; write nothing.
    Report,
    /// Also repair index drift (indexes are derived from records), and
    /// report what was fixed and what was not.
    Repair,
}

impl<B: Backend> Store<B> {
    /// Every key under `prefix` holding `key_type`, page by page.
    pub(crate) async fn scan_all(
        &self,
        prefix: &str,
        key_type: KeyType,
    ) -> Result<Vec<String>, Error> {
        let mut cursor = ScanCursor::start();
        let mut keys = Vec::new();
        loop {
            let read = Read::Scan {
                cursor,
                prefix: prefix.to_owned(),
                key_type,
                count: SCAN_BATCH,
            };
            let reply = self.backend.read(self.timeout, &[read]).await?;
            let Some(Reply::Keys(page, next)) = reply.into_iter().next() else {
                return Err(Error::unsupported("scan reply".to_owned()));
            };
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
    /// Audits the key space: every record strictly decoded, every index
    /// compared with the records; with [`CheckMode::Repair`], fixes the
    /// index drift and says what it fixed.
    fn check(
        &self,
        mode: CheckMode,
    ) -> impl std::future::Future<Output = Result<CheckReport, Error>> + Send;

    /// Deletes every key of this store's key space; returns how many.
    fn purge(&self) -> impl std::future::Future<Output = Result<u64, Error>> + Send;
}

impl<B: Backend> SessionAdmin for Store<B> {
    async fn check(&self, mode: CheckMode) -> Result<CheckReport, Error> {
        let keys: &KeySpace = &self.keys;
        let [session_prefix, all_prefix, active_prefix] = keys.prefixes();
        for _ in 0..self.retry.max_attempts {
            let record_keys = self.scan_all(session_prefix, KeyType::String).await?;
            let mut records = Vec::with_capacity(record_keys.len());
            for chunk in record_keys.chunks(SCAN_BATCH) {
                let read = Read::Values {
                    keys: chunk.to_vec(),
                };
                if let Some(Reply::Values(values)) = self
                    .backend
                    .read(self.timeout, &[read])
                    .await?
                    .into_iter()
                    .next()
                {
                    records.extend(
                        chunk
                            .iter()
                            .zip(values)
                            .filter_map(|(k, v)| v.map(|v| (k.clone(), v))),
                    );
                }
            }
            let mut indexes = Vec::new();
            for prefix in [all_prefix, active_prefix] {
                for index_key in self.scan_all(prefix, KeyType::SortedSet).await? {
                    let read = Read::IndexRange(authsession_core::plan::IndexRange {
                        key: index_key.clone(),
                        min: authsession_core::plan::ScoreBound::Unbounded,
                        max: authsession_core::plan::ScoreBound::Unbounded,
                        newest_first: false,
                        limit: None,
                    });
                    if let Some(Reply::Members(members)) = self
                        .backend
                        .read(self.timeout, &[read])
                        .await?
                        .into_iter()
                        .next()
                    {
                        indexes.push((index_key, members));
                    }
                }
            }
            let report = audit::audit(keys, records, indexes);
            if mode == CheckMode::Report || report.repair.is_empty() {
                return Ok(CheckReport::from_audit(report, false));
            }
            match self.backend.apply(self.timeout, &report.repair).await? {
                Applied::Done => return Ok(CheckReport::from_audit(report, true)),
                _ => continue,
            }
        }
        Err(Error::from(
            authsession_core::TransitionError::ContentionExhausted {
                attempts: self.retry.max_attempts,
                key: session_prefix.to_owned(),
            },
        ))
    }

    async fn purge(&self) -> Result<u64, Error> {
        let mut deleted = 0;
        for prefix in self.keys.all_prefixes() {
            for key_type in [KeyType::String, KeyType::SortedSet] {
                let keys = self.scan_all(prefix, key_type).await?;
                for chunk in keys.chunks(SCAN_BATCH) {
                    deleted += self.backend.delete(self.timeout, chunk).await?;
                }
            }
        }
        Ok(deleted)
    }
}
