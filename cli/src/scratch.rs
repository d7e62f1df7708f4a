//! A key space of its own for `demo` and `bench` on a server: fresh under
//! the configured base, and purged afterwards whatever happened.

use authsession_driver::SessionAdmin;

use crate::args::GlobalArgs;
use crate::clock;
use crate::error::CliError;
use crate::target::StoreOptions;
use crate::target::StoreTarget;

/// A key-space base no one else uses, under the configured base.
pub(crate) fn fresh_options(
    global: &GlobalArgs,
    target: &StoreTarget,
    what: &str,
) -> Result<StoreOptions, CliError> {
    let base = format!("{}{what}:{}:", global.prefix, clock::unique_suffix());
    global.options_with_base(target, &base)
}

/// Deletes what a run left under its fresh key space, reporting (not
/// masking) the run's own error first.
pub(crate) async fn purge_after<S: SessionAdmin, T>(
    store: &S,
    result: Result<T, CliError>,
) -> Result<(T, u64), CliError> {
    let purged = store.purge().await;
    let value = result?;
    let deleted = purged.map_err(|e| CliError::from(e).context("purging the bench key space"))?;
    Ok((value, deleted))
}
