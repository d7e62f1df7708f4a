//! Placeholder; the driver issue fills this in.
