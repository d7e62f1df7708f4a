//! Placeholder; the wasm issue fills this in.
