#!/usr/bin/env bash
# Part of `make bench`: realtime under load, driven by
# tests/benches/realtime_load.rs (tokio-tungstenite, realtime-js's
# protocol) on the same machine: broadcast fan-out to 1,000 and 10,000
# subscribers (send-to-receipt latency), postgres_changes under an RLS
# policy to 100 and 1,000 subscribers who are distinct users (messages
# delivered per second, commit-to-receipt latency), and the host's memory
# per idle connection. Starts its own host (a fresh data dir, a known JWT
# secret for the subscribers' tokens, file limits raised for 10,000
# sockets). SELFDB_BIN picks the build.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${SELFDB_BIN:-./target/dist/selfdb}
out=bench/out
mkdir -p "$out"
# As many files as the hard limit allows (10,000 sockets each side).
ulimit -n "$(ulimit -Hn)"
cargo build -q --release -p selfdb-tests --bench realtime_load
client=$(ls -t target/release/deps/realtime_load-* | grep -v '\.d$' | head -1)

data=$(mktemp -d "$out/realtime.XXXXXX")
chmod 755 "$data"
secret="bench-secret-bench-secret-bench-secret-0"
env -u RUST_BACKTRACE "$BIN" dev --data-dir "$data" --port 0 --s3-port 0 \
  --cache-dir "$out/cache" --jwt-secret "$secret" \
  >"$out/realtime.out" 2>"$out/realtime.err" &
host=$!
trap 'kill -TERM $host 2>/dev/null; wait $host 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do
  grep -q '^SELFDB_ENV_FILE=' "$out/realtime.out" 2>/dev/null && break
  kill -0 $host 2>/dev/null || { cat "$out/realtime.err"; exit 1; }
  sleep 0.1
done
for _ in $(seq 1 300); do
  grep -q 'capturing database changes' "$out/realtime.err" && break
  sleep 0.1
done
set -a
# shellcheck disable=SC1091
source "$data/selfdb.env"
set +a
export BENCH_JWT_SECRET=$secret HOST_PID=$host

"$client" idle 1000
for n in ${BENCH_BROADCAST_SUBSCRIBERS:-1000 10000}; do
  "$client" broadcast "$n"
done
# One fan-out at a time: latency without queueing behind the last one.
BENCH_BROADCAST_RATE=1 "$client" broadcast 10000
# Rates chosen so each run offers about 5,000 messages a second: 50
# changes/s to 100 subscribers, 5 changes/s to 1,000.
"$client" changes 100 50
"$client" changes 1000 5
"$client" changes 1000 20
