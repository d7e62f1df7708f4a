#!/usr/bin/env bash
# Everything the WASM build must pass; called by scripts/test after the Rust
# tests. Idempotent: build.sh installs only what is missing (wasm32 target,
# the wasm-bindgen CLI of Cargo.lock's version, wasm/node_modules from
# package-lock.json), then
#   1. build.sh: both packages, optimised, imports checked, size budget;
#   2. wasm-bindgen-test under Node (wasm/tests/*.rs);
#   3. node --test: golden vectors, API, TypeScript declarations, and the
#      workerd end-to-end suite.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
cd "$root"

step() { printf '\n--> wasm: %s\n' "$*"; }

step "build packages (build.sh installs the wasm32 target, the wasm-bindgen CLI and wasm/node_modules when missing)"
bash "$here/build.sh"

step "wasm-bindgen-test under Node"
CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
  cargo test -p authsession-wasm --target wasm32-unknown-unknown --locked

step "node --test (vectors, API, TypeScript declarations, workerd end to end)"
cd "$here"
node --test test/*.test.mjs
