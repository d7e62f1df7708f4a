//! The maintenance walks over a whole key space: [`Check`] (and `check
//! --repair`), [`Sweep`], and the owner keys' second look
//! ([`RecheckOwners`]).
//!
//! They share one machine, so each rule of it is stated once:
//! - [`walk`]: the bounded walks themselves — the keys under a prefix page
//!   by page, one index window by window (also `revoke all`'s walk);
//! - [`batch`]: which indexes one read covers — a continuing walk alone
//!   with a full window, or several fresh ones with small windows — and
//!   what their windows handed out;
//! - [`settle`]: a batch's writes as guarded plans applied one by one,
//!   the batch read again when one met a changed store, its walks moved on
//!   past what the applied plans removed;
//! - [`owners`]: owner keys without their record, first look and second.
//!
//! What each operation judges is its own: [`check`] judges records and
//! index members and plans repairs; [`sweep`] finds expired sessions and
//! removes them as retention states it ([`crate::op::expiry`]).

mod batch;
mod check;
mod owners;
mod settle;
mod sweep;
pub(crate) mod walk;

pub use check::Check;
pub use owners::{OwnerRecheck, OwnerSighting, RecheckOwners};
pub use sweep::{Sweep, SweepReport};
