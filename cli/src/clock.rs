//! The CLI's clock. Core never reads one; the CLI supplies "now" for
//! `create` and `revoke` when no timestamp is given.

use std::time::{SystemTime, UNIX_EPOCH};

use authsession_core::Timestamp;

use crate::error::CliError;

/// The current wall-clock time as a [`Timestamp`].
pub(crate) fn now() -> Result<Timestamp, CliError> {
    let nanos = match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(since) => i128::try_from(since.as_nanos()).unwrap_or(i128::MAX),
        Err(before) => -i128::try_from(before.duration().as_nanos()).unwrap_or(i128::MAX),
    };
    Timestamp::from_unix_nanos(nanos)
        .map_err(|e| CliError::new("clock", format!("the system clock is unusable: {e}")))
}

/// A value that differs between runs, for fresh key prefixes.
pub(crate) fn unique_suffix() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{}-{nanos}", std::process::id())
}
