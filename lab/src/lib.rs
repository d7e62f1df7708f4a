//! The authsession lab: what measures the store rather than operates it.
//!
//! - [`bench`](mod@bench): the load generator behind `authsession bench` and the
//!   figures in BENCHMARKS.md.
//! - [`reference`](mod@reference): the Go adapter's command sequences, re-implemented
//!   command for command: the baseline the `*_reference` workloads run.
//!
//! Not published: the operator binary links it behind its default `bench`
//! feature, and a service never needs it.

pub mod bench;
mod error;
pub mod reference;

pub use error::LabError;
