#!/usr/bin/env bash
# Installs the RocketMQ name server and broker the RocketMQ relay's tests and benchmark run
# (the Rust implementation of Apache RocketMQ, from crates.io: the Java distribution needs Maven
# Central), into a cache outside the clone that later runs reuse:
#   ${GRU_ROCKETMQ_ROOT:-~/.cache/gru/rocketmq-1.0.0}/bin/{rocketmq-namesrv-rust,rocketmq-broker-rust}
# The test kit looks there (and in $GRU_ROCKETMQ_BIN and on PATH). Needs Rust >= 1.95; cargo
# shows its progress.
#
# The broker is a fixture of the tests, so it is built at opt-level 1 without debug info: about
# half the build time of a full release (which took 31 minutes on 2 cores beside other work).
# GRU_ROCKETMQ_OPT_LEVEL=3 builds a fully optimised one (for benchmarks of the broker itself).
set -euo pipefail

version=1.0.0
root="${GRU_ROCKETMQ_ROOT:-$HOME/.cache/gru/rocketmq-$version}"
if [ -x "$root/bin/rocketmq-namesrv-rust" ] && [ -x "$root/bin/rocketmq-broker-rust" ]; then
  echo "RocketMQ $version: reusing $root/bin"
  exit 0
fi

opt_level="${GRU_ROCKETMQ_OPT_LEVEL:-1}"
echo "RocketMQ $version: building rocketmq-namesrv and rocketmq-broker at opt-level $opt_level into $root"
# Its own target dir, removed afterwards: 1.2 GB that nothing reuses once the binaries exist.
build="$(dirname "$root")/rocketmq-$version-build"
CARGO_TARGET_DIR="$build" \
  CARGO_PROFILE_RELEASE_OPT_LEVEL="$opt_level" \
  CARGO_PROFILE_RELEASE_DEBUG=false \
  CARGO_PROFILE_RELEASE_INCREMENTAL=false \
  cargo install --locked --root "$root" \
  "rocketmq-namesrv@$version" "rocketmq-broker@$version"
rm -rf "$build"
echo "RocketMQ $version: installed in $root/bin"
