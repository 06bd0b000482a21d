#!/bin/sh
# tristore and Miniflare under the same HTTP load, in one run (see docs/benchmarks.md).
# usage: bench/http_vs_miniflare.sh [tristore bench http options, e.g. --seconds 10]
set -eu
cd "$(dirname "$0")/.."
if [ ! -d bench/node/node_modules/miniflare ]; then
  npm install --prefix bench/node --no-audit --no-fund miniflare@4.20260730.0
fi
node bench/miniflare_http.mjs 8787 > target/miniflare-bench.log 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null' EXIT
for _ in $(seq 60); do
  grep -q "ready at" target/miniflare-bench.log 2>/dev/null && break
  sleep 1
done
head -1 target/miniflare-bench.log
cargo run --release -- bench http --miniflare http://127.0.0.1:8787 "$@"
