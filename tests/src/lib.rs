//! Shared helpers for the integration tests: private `redis-server`
//! processes, raw key-value access for planting corruption, session
//! fixtures, and the store conformance suite.
//!
//! Every Redis test starts its own server on a free loopback port with no
//! persistence and stops it by pid when the guard drops. A missing
//! `redis-server` fails the test (it is never skipped).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    unreachable_pub
)]

pub mod cached;
pub mod cluster;
pub mod conformance;
pub mod counting;
pub mod fixtures;
pub mod growth;
pub mod maintenance;
pub mod monitor;
pub mod raw;
pub mod server;
pub mod server_info;

pub use cluster::RedisCluster;
pub use counting::CountingBackend;
pub use raw::{ClusterRaw, CommandStat, MemoryRaw, RawKv, RedisRaw, SlowEntry};
pub use server::RedisServer;
pub use server_info::{ServerInfo, ServerKind};
