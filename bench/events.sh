#!/usr/bin/env bash
# Part of `make bench`: functions that run on their own, driven by
# tests/benches/events_load.rs on the same machine. Commit-to-handler
# latency (p50/p99, one change or event at a time) for a database trigger
# and a custom event, to a Rust and a JavaScript handler; sustained
# deliveries per second of a burst of inserts, with the host's peak RSS;
# and, as the floor in the same run, Postgres's bare NOTIFY from commit to
# listener. Starts its own host (fresh data dir). SELFDB_BIN picks the
# build; BENCH_EVENT_CONCURRENCY the deliveries in flight (default 16).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${SELFDB_BIN:-./target/dist/selfdb}
out=bench/out
mkdir -p "$out"
cargo build -q --release -p selfdb-tests --bench events_load
client=$(ls -t target/release/deps/events_load-* | grep -v '\.d$' | head -1)
export BENCH_SINK_WASM=components/target/wasm32-wasip2/release/event_sink.wasm

data=$(mktemp -d "$out/events.XXXXXX")
chmod 755 "$data"
env -u RUST_BACKTRACE "$BIN" dev --data-dir "$data" --port 0 --s3-port 0 \
  --cache-dir "$out/cache" --event-concurrency "${BENCH_EVENT_CONCURRENCY:-16}" \
  >"$out/events.out" 2>"$out/events.err" &
host=$!
trap 'kill -TERM $host 2>/dev/null; wait $host 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do
  grep -q '^SELFDB_ENV_FILE=' "$out/events.out" 2>/dev/null && break
  kill -0 $host 2>/dev/null || { cat "$out/events.err"; exit 1; }
  sleep 0.1
done
set -a
# shellcheck disable=SC1091
source "$data/selfdb.env"
set +a
export HOST_PID=$host
# The JavaScript engine builds at start-up: not inside a measurement.
if [ -d toolchain/js/node_modules ]; then
  for _ in $(seq 1 6000); do
    grep -q 'function="js-engine"' "$out/events.err" 2>/dev/null && break
    grep -qE 'JavaScript engine is not ready|no JavaScript toolchain' "$out/events.err" 2>/dev/null && break
    sleep 0.1
  done
fi

n=${BENCH_EVENTS_SAMPLES:-300}
rows=${BENCH_EVENTS_ROWS:-20000}
"$client" floor "$n"
"$client" latency trigger rust "$n"
"$client" latency event rust "$n"
"$client" throughput rust "$rows"
if [ -d toolchain/js/node_modules ]; then
  # Measured on the version's own component, as it serves once built (a
  # build running beside the measurement would skew it).
  "$client" deploy js
  for _ in $(seq 1 6000); do
    grep -q 'own component; it serves now function=bench-sink-js' "$out/events.err" && break
    sleep 0.1
  done
  "$client" latency trigger js "$n"
  "$client" latency event js "$n"
  "$client" throughput js "$rows"
fi
