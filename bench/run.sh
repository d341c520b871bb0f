#!/usr/bin/env bash
# `make bench`: the wasm `hello` function against its native twin in the same
# binary, with wrk on the same machine. Prints throughput, p50/p99 latency,
# their ratio, and the per-invocation cost of the WebAssembly path; then the
# data API, storage and auth parts (BENCH_PARTS picks some; SELFDB_BIN runs
# another build, for A/B comparisons).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${BENCH_DURATION:-10s}
CONNECTIONS=${BENCH_CONNECTIONS:-32}
THREADS=${BENCH_THREADS:-2}
# The binary under test (an A/B run points it at another build) and the
# parts to run: any of hello, functions, crud, storage, auth, realtime,
# events, spin, projects, hosts.
BIN=${SELFDB_BIN:-./target/dist/selfdb}
PARTS=${BENCH_PARTS:-hello functions crud storage auth realtime events spin projects hosts}
part() { [[ " $PARTS " == *" $1 "* ]]; }
out=bench/out
# A fresh data directory each run, never a deleted and re-created one: on
# this machine's ext4 without a journal, file creation slows after large
# deletes, which would land in the storage figures.
mkdir -p "$out"
chmod 755 "$out"
data=$(mktemp -d "$out/data.XXXXXX")
chmod 755 "$data"

# A developer's RUST_BACKTRACE makes every internal error capture a
# backtrace; production hosts do not run with it.
# The compiled-component cache is kept across runs (`bench/out/cache`): a
# host builds and compiles the shared JavaScript engine at start-up, a
# minute of CPU that must not land in any measurement.
env -u RUST_BACKTRACE "$BIN" dev --data-dir "$data" --port 0 --s3-port 0 \
  --cache-dir "$out/cache" --functions-dir target/functions --bench-routes \
  >"$out/selfdb.out" 2>"$out/selfdb.err" &
host=$!
trap 'kill -TERM $host 2>/dev/null; wait $host 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do
  grep -q '^SELFDB_ENV_FILE=' "$out/selfdb.out" 2>/dev/null && break
  kill -0 $host 2>/dev/null || { cat "$out/selfdb.err"; exit 1; }
  sleep 0.1
done
# shellcheck disable=SC1091
set -a
source "$data/selfdb.env"
set +a
# Measure only once the JavaScript engine is ready (see above).
if [ -d toolchain/js/node_modules ]; then
  for _ in $(seq 1 6000); do
    grep -q 'function="js-engine"' "$out/selfdb.err" 2>/dev/null && break
    grep -qE 'JavaScript engine is not ready|no JavaScript toolchain' "$out/selfdb.err" 2>/dev/null && break
    sleep 0.1
  done
fi

run() { # name path
  local name=$1 path=$2
  # Warm up: pool connections, prepared statements, instance slots.
  wrk -t"$THREADS" -c"$CONNECTIONS" -d2s -H "apikey: $SELFDB_ANON_KEY" "$SELFDB_URL$path" >/dev/null
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -H "apikey: $SELFDB_ANON_KEY" \
    "$SELFDB_URL$path" >"$out/$name.wrk"
  local errors
  errors=$(grep -E 'Non-2xx|Socket errors' "$out/$name.wrk" || true)
  [ -n "$errors" ] && echo "$name: $errors" >&2
  rps=$(awk '/^Requests\/sec/ {print $2}' "$out/$name.wrk")
  p50=$(awk '$1=="50%" {print $2}' "$out/$name.wrk")
  p99=$(awk '$1=="99%" {print $2}' "$out/$name.wrk")
  printf '%-6s (round %s) %12s req/s   p50 %9s   p99 %9s\n' "$name" "$round" "$rps" "$p50" "$p99"
  eval "${name}_rps=$rps; ${name}_p50=$p50"
}

to_us() { # wrk latency (e.g. 1.23ms, 850.00us, 1.01s) -> microseconds
  awk -v v="$1" 'BEGIN {
    n = v + 0
    if (v ~ /us$/) print n; else if (v ~ /ms$/) print n * 1000; else if (v ~ /s$/) print n * 1000000; else print n }'
}

if part hello; then
echo "SelfDB /functions/v1/hello: wasm component vs native axum handler"
echo "(same query, same per-request transaction as anon; wrk -t$THREADS -c$CONNECTIONS -d$DURATION; $(nproc) cores)"
curl -sf "$SELFDB_URL/functions/v1/hello?name=bench" -H "apikey: $SELFDB_ANON_KEY" >/dev/null
curl -sf "$SELFDB_URL/bench/native/hello?name=bench" -H "apikey: $SELFDB_ANON_KEY" >/dev/null
# Interleaved rounds: both paths share the machine with wrk and PostgreSQL,
# so alternating them evens out drift between runs.
ROUNDS=${BENCH_ROUNDS:-2}
native_total=0
wasm_total=0
for round in $(seq 1 "$ROUNDS"); do
  run native "/bench/native/hello?name=bench"
  native_total=$(awk -v a="$native_total" -v b="$native_rps" 'BEGIN {print a + b}')
  run wasm "/functions/v1/hello?name=bench"
  wasm_total=$(awk -v a="$wasm_total" -v b="$wasm_rps" 'BEGIN {print a + b}')
done
native_rps=$(awk -v t="$native_total" -v n="$ROUNDS" 'BEGIN {print t / n}')
wasm_rps=$(awk -v t="$wasm_total" -v n="$ROUNDS" 'BEGIN {print t / n}')
printf 'mean of %s rounds:           native %.0f req/s, wasm %.0f req/s\n' "$ROUNDS" "$native_rps" "$wasm_rps"

metrics=$(curl -sf "$SELFDB_URL/metrics")
inst_count=$(awk '$1=="selfdb_instantiations_total" {print $2}' <<<"$metrics")
inst_secs=$(awk '$1=="selfdb_instantiate_seconds_total" {print $2}' <<<"$metrics")
native_p50_us=$(to_us "$native_p50")
wasm_p50_us=$(to_us "$wasm_p50")
awk -v w="$wasm_rps" -v n="$native_rps" -v c="$inst_count" -v s="$inst_secs" \
    -v wl="$wasm_p50_us" -v nl="$native_p50_us" -v cores="$(nproc)" 'BEGIN {
  printf "wasm/native throughput:     %.1f%% (target >= 60%%)\n", 100 * w / n
  printf "per-invocation overhead:    %.0f us of CPU (cores/rps difference), %.0f us at p50\n", 1e6 * cores * (1 / w - 1 / n), wl - nl
  printf "instantiation (mean):       %.1f us over %d instantiations (target < 50 us)\n", 1e6 * s / c, c
}'
peak_kb=$(awk '/VmHWM/ {print $2}' /proc/$host/status)
echo "host peak RSS so far:       $((peak_kb / 1024)) MiB"
fi

if part functions; then ./bench/functions.sh; fi

if part crud; then ./bench/crud.sh; fi

if part storage; then HOST_PID=$host DATA_DIR=$data SELFDB_BIN=$BIN ./bench/storage.sh; fi

if part auth; then
  echo
  echo "Auth (/auth/v1, the auth component; argon2id m=19456 KiB, t=2, p=1)"
  node bench/auth.mjs
  cargo bench -q -p selfdb --bench token_verify 2>/dev/null | grep 'token verification'
fi

# Its own host (a known JWT secret, raised file limits), after this one's
# measurements.
if part realtime; then
  echo
  echo "Realtime (/realtime/v1; load generator tests/benches/realtime_load.rs)"
  SELFDB_BIN=$BIN ./bench/realtime.sh
fi

if part events; then
  echo
  echo "Functions on their own: triggers and events (load generator tests/benches/events_load.rs)"
  SELFDB_BIN=$BIN ./bench/events.sh
fi

if part spin; then SELFDB_BIN=$BIN ./bench/spin.sh; fi

if part projects; then SELFDB_BIN=$BIN ./bench/projects.sh; fi

if part hosts; then SELFDB_BIN=$BIN ./bench/hosts.sh; fi
