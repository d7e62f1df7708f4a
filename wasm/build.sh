#!/usr/bin/env bash
# Builds the JS packages of authsession-wasm:
#   wasm/pkg/node/  (wasm-bindgen --target nodejs, CommonJS)
#   wasm/pkg/web/   (wasm-bindgen --target web, ES module: workers, browsers)
# optimised by npm binaryen's wasm-opt (Debian's binaryen 108 produces
# modules that crash in Node) and checked to import nothing but
# wasm-bindgen's own glue and to fit the size budget.
#
# Works alone from a fresh clone: installs what is missing, idempotently —
# the wasm32 rustup target, the wasm-bindgen CLI of exactly the version
# Cargo.lock pins, and wasm/node_modules from package-lock.json (`npm ci`,
# again whenever the lock changed). A tool that is still missing is an
# error: it never ships an unoptimised module.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
cd "$root"

fail() { echo "build.sh: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || fail "$1 is required ($2)"; }
need cargo "https://rustup.rs"
need rustup "https://rustup.rs; it adds the wasm32-unknown-unknown target"
need node "Node 20 or later: the import check and npm run on it"
need npm "it installs binaryen's wasm-opt from wasm/package-lock.json"
# Where `cargo install` puts wasm-bindgen, in case this shell lacks it.
cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin"
case ":$PATH:" in *":$cargo_bin:"*) ;; *) PATH="$cargo_bin:$PATH" ;; esac

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  rustup target add wasm32-unknown-unknown || fail "cannot add the wasm32-unknown-unknown target"
fi

wb_version="$(awk '$0 == "name = \"wasm-bindgen\"" { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)"
[ -n "$wb_version" ] || fail "wasm-bindgen not found in Cargo.lock"
if [ "$(wasm-bindgen --version 2>/dev/null || true)" != "wasm-bindgen $wb_version" ]; then
  echo "build.sh: installing wasm-bindgen-cli $wb_version" >&2
  # --locked can fail when the registry lacks a version the CLI's own lock
  # names; the unlocked build of the same CLI version is the fallback.
  cargo install wasm-bindgen-cli --version "$wb_version" --locked ||
    cargo install wasm-bindgen-cli --version "$wb_version" ||
    fail "cannot install wasm-bindgen-cli $wb_version"
fi
found="$(wasm-bindgen --version 2>/dev/null || true)"
[ "$found" = "wasm-bindgen $wb_version" ] ||
  fail "wasm-bindgen is '${found:-missing}', Cargo.lock pins $wb_version (is $cargo_bin on PATH?)"

# npm ci again only when the lock changed since the last install (the stamp
# is a copy of the lock it installed) or wasm-opt is missing.
wasm_opt="$here/node_modules/.bin/wasm-opt"
stamp="$here/node_modules/.package-lock.json.ci"
if [ ! -x "$wasm_opt" ] || ! cmp -s "$here/package-lock.json" "$stamp"; then
  echo "build.sh: npm ci in wasm/ (binaryen, typescript, workerd as pinned in package-lock.json)" >&2
  (cd "$here" && npm ci --no-audit --no-fund) || fail "npm ci in wasm/ failed"
  cp "$here/package-lock.json" "$stamp"
fi
"$wasm_opt" --version >/dev/null 2>&1 ||
  fail "$wasm_opt does not run after npm ci (binaryen from wasm/package-lock.json)"

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

# The features rustc enables by default for wasm32-unknown-unknown.
features=(--enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext
  --enable-reference-types --enable-multivalue --enable-mutable-globals)

# Built in a scratch directory and moved into wasm/pkg only once every check
# passed: a failed build leaves no module behind.
rm -rf "$here/pkg"
staging="$(mktemp -d "$here/.pkg.XXXXXX")" && chmod 755 "$staging"
trap 'rm -rf "$staging"' EXIT
for target in nodejs web; do
  case "$target" in
    nodejs) out="$staging/node"; type=commonjs ;;
    web) out="$staging/web"; type=module ;;
  esac
  wasm-bindgen --target "$target" --out-dir "$out" "$wasm_in"
  # Each directory declares its module system, so Node resolves either one
  # correctly whatever the enclosing package says.
  printf '{ "type": "%s" }\n' "$type" >"$out/package.json"
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
  node "$here/scripts/check-imports.mjs" "$out/authsession_wasm_bg.wasm"
done

# The size budget of the default (size-optimised, wasm-opt'd) build is part
# of the contract: fail the build rather than drift past it unnoticed.
budget=150000
size=$(wc -c <"$staging/web/authsession_wasm_bg.wasm")
if [ -z "${AUTHSESSION_WASM_OPT_LEVEL:-}" ]; then
  [ "$size" -le "$budget" ] ||
    fail "module is $size B, over the $budget B budget (see BENCHMARKS.md, WASM)"
  verdict="budget $budget B"
else
  verdict="opt-level $AUTHSESSION_WASM_OPT_LEVEL: no budget"
fi
mv "$staging" "$here/pkg"
ls -l "$here"/pkg/*/authsession_wasm_bg.wasm
echo "build.sh: module $size B ($verdict)"
