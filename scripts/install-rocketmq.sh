#!/usr/bin/env bash
# Installs the RocketMQ name server and broker the RocketMQ relay's tests and benchmark run
# (the Rust implementation of Apache RocketMQ, from crates.io: the Java distribution needs Maven
# Central), into a cache outside the clone that later runs reuse:
#   ${GRU_ROCKETMQ_ROOT:-~/.cache/gru/rocketmq-1.0.0}/bin/{rocketmq-namesrv-rust,rocketmq-broker-rust}
# The test kit looks there (and in $GRU_ROCKETMQ_BIN and on PATH). Building both takes about
# 15 minutes on 2 cores; cargo shows its progress. Needs Rust >= 1.95.
set -euo pipefail

version=1.0.0
root="${GRU_ROCKETMQ_ROOT:-$HOME/.cache/gru/rocketmq-$version}"
if [ -x "$root/bin/rocketmq-namesrv-rust" ] && [ -x "$root/bin/rocketmq-broker-rust" ]; then
  echo "RocketMQ $version: reusing $root/bin"
  exit 0
fi

echo "RocketMQ $version: building rocketmq-namesrv and rocketmq-broker into $root (about 15 minutes)"
# Its own target dir, removed afterwards: 1.2 GB that nothing reuses once the binaries exist.
build="$(dirname "$root")/rocketmq-$version-build"
CARGO_TARGET_DIR="$build" cargo install --locked --root "$root" \
  "rocketmq-namesrv@$version" "rocketmq-broker@$version"
rm -rf "$build"
echo "RocketMQ $version: installed in $root/bin"
