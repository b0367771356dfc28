#!/usr/bin/env bash
# Runs every fuzz target for a bounded time: fuzz/run.sh [SECONDS per target, default 60].
# Coverage-guided (libFuzzer through cargo-fuzz), on the stable toolchain: no sanitizer, which
# needs nightly; Rust's own checks (bounds, overflow with debug assertions on) still panic,
# and a panic is a crash. A crash leaves its input in fuzz/artifacts/<target>/ and fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
targets=(sio_payloads ticket_params tokens cluster_toml server_api_bodies ws_frames)
cargo fuzz build --sanitizer none
# The example config is the richest seed of the config target (ignored by git: a copy).
mkdir -p fuzz/corpus/cluster_toml
cp cluster.toml fuzz/corpus/cluster_toml/example-cluster.toml
for target in "${targets[@]}"; do
  echo "fuzzing $target for ${seconds}s"
  mkdir -p "fuzz/corpus/$target"
  cargo fuzz run --sanitizer none "$target" -- -max_total_time="$seconds" -print_final_stats=1 2>&1 \
    | grep -E '^(#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units|==|SUMMARY|thread|.*panicked)' || true
  if ls "fuzz/artifacts/$target"/crash-* >/dev/null 2>&1; then
    echo "fuzz target $target crashed: see fuzz/artifacts/$target/" >&2
    exit 1
  fi
done
