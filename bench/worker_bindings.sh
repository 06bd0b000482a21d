#!/bin/sh
# One Worker under Miniflare 4 calling its bindings in a loop: D1 and R2 through
# tristore's remote-bindings route and through Miniflare's own local D1 and R2, and
# Vectorize through tristore (Miniflare has none), in one run (see docs/benchmarks.md).
# usage: bench/worker_bindings.sh [--calls 2000] [--rounds 5] [--vectors 10000]
set -eu
cd "$(dirname "$0")/.."
if [ ! -d bench/node/node_modules/miniflare ]; then
  npm install --prefix bench/node --no-audit --no-fund miniflare@4.20260730.0
fi
cargo build --release --quiet
node bench/worker_bindings.mjs --tristore target/release/tristore "$@"
