//! Assertions the unit tests of several modules share.

use std::fmt::Debug;

use crate::error::ValidationError;

/// Every one of `inputs` is refused by `parse` with exactly `expected`.
pub(crate) fn rejects_each<T: Debug>(
    parse: impl Fn(&str) -> Result<T, ValidationError>,
    inputs: &[&str],
    expected: &ValidationError,
) {
    for input in inputs {
        assert_eq!(parse(input).unwrap_err(), *expected, "{input:?}");
    }
}
