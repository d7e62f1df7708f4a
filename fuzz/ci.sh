#!/usr/bin/env bash
# Short fuzz runs of every target, for the root test command (scripts/test).
# Needs a nightly toolchain (cargo-fuzz's sanitizer build); without one this
# says so and exits 0 — the committed corpus and regressions are still
# replayed on stable by tests/tests/fuzz_replay.rs in `cargo test`.
# FUZZ_SECONDS sets the time per target (default 40: ~2 min of fuzzing plus
# the build, under ~3 min warm).
set -euo pipefail
cd "$(dirname "$0")"

seconds=${FUZZ_SECONDS:-40}
targets=(decode_record encode_roundtrip transitions)

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  echo "fuzz: no nightly toolchain; skipping the fuzz runs (the corpus replay runs in cargo test)"
  exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz"
  cargo install --locked cargo-fuzz
fi

cargo +nightly fuzz build
# Fuzz into a scratch copy so the committed corpus only changes on purpose;
# crashes land in artifacts/<target>/ and fail the run.
for target in "${targets[@]}"; do
  work="corpus-work/ci/$target"
  mkdir -p "$work"
  echo "fuzz: $target for ${seconds}s"
  log="corpus-work/ci/$target.log"
  if ! cargo +nightly fuzz run "$target" "$work" "corpus/$target" -- \
    -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
    tail -n 80 "$log" >&2
    echo "fuzz: $target FAILED; the crashing input is in fuzz/artifacts/$target/" >&2
    exit 1
  fi
  grep -E '^(Done|stat::number_of_executed_units|stat::average_exec_per_sec)' "$log" || true
  grep -E 'DONE' "$log" | tail -n 1 || true
done
echo "fuzz: all targets ran ${seconds}s without a crash"
