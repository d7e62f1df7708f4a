#!/usr/bin/env bash
# Builds the JS packages of authsession-wasm:
#   wasm/pkg/node/  (wasm-bindgen --target nodejs, CommonJS)
#   wasm/pkg/web/   (wasm-bindgen --target web, ES module: workers, browsers)
# with the wasm-bindgen CLI of exactly the version Cargo.lock pins (installed
# when missing), optimised by npm binaryen's wasm-opt when `npm ci` has run
# (Debian's binaryen 108 produces modules that crash in Node), and checked to
# import nothing but wasm-bindgen's own glue.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
cd "$root"

wb_version="$(awk '$0 == "name = \"wasm-bindgen\"" { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)"
[ -n "$wb_version" ] || { echo "build.sh: wasm-bindgen not found in Cargo.lock" >&2; exit 1; }

rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown

if [ "$(wasm-bindgen --version 2>/dev/null || true)" != "wasm-bindgen $wb_version" ]; then
  echo "build.sh: installing wasm-bindgen-cli $wb_version" >&2
  # --locked can fail when the registry lacks a version the CLI's own lock
  # names; the unlocked build of the same CLI version is the fallback.
  cargo install wasm-bindgen-cli --version "$wb_version" --locked ||
    cargo install wasm-bindgen-cli --version "$wb_version"
fi
[ "$(wasm-bindgen --version)" = "wasm-bindgen $wb_version" ] || {
  echo "build.sh: wasm-bindgen $(wasm-bindgen --version) does not match Cargo.lock's $wb_version" >&2
  exit 1
}

# Size matters more than peak speed for an edge module: for this one build
# only, optimise for size with fat LTO and no debug info. (The workspace's
# release profile is shared with the driver, so it is not changed.)
# AUTHSESSION_WASM_OPT_LEVEL=3 trades the 150 KB budget for speed (see the
# WASM section of BENCHMARKS.md).
# Panic messages embed source paths: strip the build machine's registry and
# checkout directories from them, so the module neither leaks them nor
# changes size with where CARGO_HOME or the checkout happen to be.
cargo_home="${CARGO_HOME:-$HOME/.cargo}"
rustflags="${RUSTFLAGS:-} --remap-path-prefix=$root/="
for registry in "$cargo_home"/registry/src/*/; do
  [ -d "$registry" ] && rustflags="$rustflags --remap-path-prefix=$registry="
done
RUSTFLAGS="$rustflags" \
CARGO_PROFILE_RELEASE_OPT_LEVEL="${AUTHSESSION_WASM_OPT_LEVEL:-s}" \
CARGO_PROFILE_RELEASE_LTO=fat \
CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 \
CARGO_PROFILE_RELEASE_DEBUG=0 \
  cargo build -p authsession-wasm --release --target wasm32-unknown-unknown --locked

target_dir="$(cargo metadata --format-version 1 --no-deps --locked |
  node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))')"
wasm_in="$target_dir/wasm32-unknown-unknown/release/authsession_wasm.wasm"

wasm_opt="$here/node_modules/.bin/wasm-opt"
# The features rustc enables by default for wasm32-unknown-unknown.
features=(--enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext
  --enable-reference-types --enable-multivalue --enable-mutable-globals)

for target in nodejs web; do
  case "$target" in
    nodejs) out="$here/pkg/node"; type=commonjs ;;
    web) out="$here/pkg/web"; type=module ;;
  esac
  rm -rf "$out"
  wasm-bindgen --target "$target" --out-dir "$out" "$wasm_in"
  # Each directory declares its module system, so Node resolves either one
  # correctly whatever the enclosing package says.
  printf '{ "type": "%s" }\n' "$type" >"$out/package.json"
  if [ -x "$wasm_opt" ]; then
    # --converge: repeat -Oz while it still shrinks the module.
    # --low-memory-unused (folds constant address offsets, ~1 KB): rustc
    # links wasm32 with the stack first, [0, 1 MiB) growing down and data
    # above it, so the low 1 KiB is only reached by a stack already about
    # to overflow (serde_json bounds the decoder's recursion far from it).
    # The producers and target-features sections are for toolchains, not
    # for the runtimes that load the module.
    "$wasm_opt" -Oz --converge --low-memory-unused --strip-producers --strip-target-features \
      "${features[@]}" \
      "$out/authsession_wasm_bg.wasm" -o "$out/authsession_wasm_bg.wasm.opt"
    mv "$out/authsession_wasm_bg.wasm.opt" "$out/authsession_wasm_bg.wasm"
  else
    echo "build.sh: $wasm_opt missing (run npm ci in wasm/): not optimised" >&2
  fi
  node "$here/scripts/check-imports.mjs" "$out/authsession_wasm_bg.wasm"
done

ls -l "$here"/pkg/*/authsession_wasm_bg.wasm

# The size budget of the default (size-optimised, wasm-opt'd) build is part
# of the contract: fail the build rather than drift past it unnoticed.
budget=150000
if [ -z "${AUTHSESSION_WASM_OPT_LEVEL:-}" ] && [ -x "$wasm_opt" ]; then
  size=$(stat -c %s "$here/pkg/web/authsession_wasm_bg.wasm")
  if [ "$size" -gt "$budget" ]; then
    echo "build.sh: module is $size B, over the $budget B budget (see BENCHMARKS.md, WASM)" >&2
    exit 1
  fi
  echo "build.sh: module $size B (budget $budget B)"
fi
