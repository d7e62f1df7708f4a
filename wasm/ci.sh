#!/usr/bin/env bash
# Everything the WASM build must pass; called by scripts/test after the Rust
# tests. Idempotent: installs only what is missing (wasm32 target, the
# wasm-bindgen CLI of Cargo.lock's version, wasm/node_modules from
# package-lock.json), then
#   1. build.sh: both packages, optimised, imports checked;
#   2. wasm-bindgen-test under Node (wasm/tests/*.rs);
#   3. node --test: golden vectors, API, TypeScript declarations, and the
#      workerd end-to-end suite.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
cd "$root"

step() { printf '\n--> wasm: %s\n' "$*"; }

command -v node >/dev/null || { echo "wasm/ci.sh: node is required" >&2; exit 1; }
command -v npm >/dev/null || { echo "wasm/ci.sh: npm is required" >&2; exit 1; }

step "npm ci (binaryen, typescript, workerd as pinned in package-lock.json)"
# Reinstall only when the lock changed since the last install.
if ! cmp -s "$here/package-lock.json" "$here/node_modules/.package-lock.json.ci" 2>/dev/null; then
  (cd "$here" && npm ci --no-audit --no-fund)
  cp "$here/package-lock.json" "$here/node_modules/.package-lock.json.ci"
fi

step "build packages (build.sh installs the wasm32 target and wasm-bindgen CLI when missing)"
bash "$here/build.sh"

step "wasm-bindgen-test under Node"
CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
  cargo test -p authsession-wasm --target wasm32-unknown-unknown --locked

step "node --test (vectors, API, TypeScript declarations, workerd end to end)"
cd "$here"
node --test test/*.test.mjs
