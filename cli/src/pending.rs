//! The CLI's side of library work that is not in this build yet: the Redis
//! Cluster store (`--cluster-node`, `migrate --to-cluster-node`) and
//! `sweep`. The commands are written in full against the types below; each
//! item here is the one place that changes when the library provides the
//! real thing.

use std::time::Duration;

use authsession_core::plan::{Applied, Plan, Read, Reply};
use authsession_core::{KeySpace, Layout};
use authsession_driver::{Backend, BackendInfo, Error, SessionAdmin, Store};
use serde::Serialize;

use crate::error::CliError;
use crate::store::StoreOptions;

/// The store `--cluster-node` selects. Until the library's cluster store
/// exists this names a store on a backend that cannot be built, so every
/// command is already written (and type-checked) for it.
pub(crate) type ClusterStore = Store<NoCluster>;

/// Connects to the Redis Cluster reached through the seed `nodes`
/// (`redis://` / `rediss://` URLs) with `options` (tagged key space,
/// policy, `WAIT` replicas).
pub(crate) async fn connect_cluster(
    nodes: &[String],
    options: &StoreOptions,
) -> Result<ClusterStore, CliError> {
    let _ = (nodes, options);
    Err(CliError::new(
        "unsupported",
        "--cluster-node: this authsession is not built with cluster support yet",
    ))
}

/// A backend with no values: stands in for the cluster backend until it
/// is part of the library (see [`ClusterStore`]).
#[derive(Debug)]
pub(crate) enum NoCluster {}

impl Backend for NoCluster {
    fn info(&self) -> &BackendInfo {
        match *self {}
    }

    async fn ping(&self, _: Duration) -> Result<(), Error> {
        match *self {}
    }

    async fn read(&self, _: Duration, _: &[Read]) -> Result<Vec<Reply>, Error> {
        match *self {}
    }

    async fn apply(&self, _: Duration, _: &Plan) -> Result<Applied, Error> {
        match *self {}
    }

    async fn delete(&self, _: Duration, _: &[String]) -> Result<u64, Error> {
        match *self {}
    }
}

/// What `sweep` prints: users visited, expired revoked sessions removed,
/// atomic batches applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct SweepOut {
    pub(crate) users: u64,
    pub(crate) sessions_removed: u64,
    pub(crate) batches: u64,
}

/// Removes every revoked session past its retention, in bounded batches,
/// on every primary (the library's `SessionAdmin::sweep`, not in this
/// build yet).
pub(crate) async fn sweep<S: SessionAdmin>(store: &S) -> Result<SweepOut, CliError> {
    let _ = store;
    Err(CliError::new(
        "unsupported",
        "sweep: this authsession is not built with sweep support yet",
    ))
}

/// Whether `check` can audit `keys`: this build's check knows the
/// reference layout only, and in the tagged one it would report every
/// record as unparsable and every index entry as stray — and `--repair`
/// would delete those entries. The bounded, layout-aware check lifts this.
pub(crate) fn check_supported(keys: &KeySpace) -> Result<(), CliError> {
    if keys.layout() == Layout::Reference {
        Ok(())
    } else {
        Err(CliError::new(
            "unsupported",
            "check: this authsession cannot check the tagged layout yet",
        ))
    }
}
