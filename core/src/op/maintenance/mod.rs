//! The maintenance walks: `check` (and `check --repair`), `sweep`, and
//! the second look at owner keys.

mod batch;
mod check;
mod owners;
mod settle;
mod sweep;
pub(crate) mod walk;

pub use check::Check;
pub use owners::{OwnerRecheck, OwnerSighting, RecheckOwners};
pub use sweep::{Sweep, SweepReport};
