#!/usr/bin/env bash
# Part of `make bench`: the data API through one host and through two, as the
# README's "Several hosts" topology runs them: hosts A and B are two `selfdb
# serve` processes, started alike, on one PostgreSQL and one Redis of this
# script's own (Debian's packages, as scripts/bootstrap.sh installs them;
# the PostgreSQL with the embedded cluster's settings but the default CPU
# scheduling policy, as a server of its own runs: see below). One host:
# wrk -t2 -c32 on A. Two hosts: wrk -t1 -c16 on A and on B at once, summed.
# Reads fetch one row by id and writes insert one row, both as anon under a
# row rule. On this 2-core machine the hosts, PostgreSQL and wrk share the
# cores: the two-host figure shows what spreading requests over two
# processes costs, not how more machines scale.
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench/out
DURATION=${BENCH_DURATION:-10s}
BIN=${SELFDB_BIN:-./target/dist/selfdb}
# shellcheck source=bench/idle.sh
source bench/idle.sh

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
pids=()
pg_ctl=
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "$pg_ctl" ] && $pg_ctl stop -m fast >/dev/null 2>&1 || true
}
trap cleanup EXIT

# PostgreSQL, not `selfdb dev`'s embedded cluster: that one runs its
# backends under SCHED_BATCH (see embedded_pg.rs), which suits one host
# sharing the cores with its database, but with two hosts and wrk keeping
# both cores busy the batch backends were starved for seconds at a time
# (p99 1.06 s, requests past the 5 s time limit) in this part's first run.
# A fresh directory each run (never a deleted one; see run.sh).
pg_bin=$(find /usr/lib/postgresql -maxdepth 2 -name bin -type d | sort -V | tail -1)
pg_dir=$(realpath "$(mktemp -d "$out/hosts-pg.XXXXXX")")
chmod 755 "$pg_dir"
as_postgres=()
if [ "$(id -u)" = 0 ]; then
  # PostgreSQL refuses to run as root.
  chown postgres "$pg_dir"
  as_postgres=(runuser -u postgres --)
fi
pg_port=$(free_port)
"${as_postgres[@]}" "$pg_bin/initdb" -D "$pg_dir/data" -U postgres -A trust -E UTF8 --no-locale >"$pg_dir/initdb.log"
pg_ctl="${as_postgres[*]} $pg_bin/pg_ctl -D $pg_dir/data"
$pg_ctl -l "$pg_dir/server.log" -w start -o "-p $pg_port -c listen_addresses=127.0.0.1 \
  -c unix_socket_directories=$pg_dir -c wal_level=logical -c max_replication_slots=200 \
  -c max_wal_senders=200 -c max_slot_wal_keep_size=1024 -c track_commit_timestamp=on" >/dev/null
psql -q "postgres://postgres@127.0.0.1:$pg_port/postgres" -c 'create database selfdb'
DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/selfdb"
redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no >"$pg_dir/redis.log" 2>&1 &
pids+=("$!")
secrets_key=$(head -c 32 /dev/urandom | base64)

# Starts a serve host on a fresh data directory and writes its
# `KEY=value` lines to $out/hosts-<label>.env. No JavaScript toolchain:
# these hosts run no functions, and building the engine would land in the
# measurements.
start_serve() { # label
  local dir
  dir=$(mktemp -d "$out/hosts-$1.XXXXXX")
  chmod 755 "$dir"
  env -u RUST_BACKTRACE "$BIN" serve --listen 127.0.0.1:0 --s3-port 0 \
    --database-url "$DATABASE_URL" --redis-url "redis://127.0.0.1:$redis_port" \
    --data-dir "$dir" --cache-dir "$out/cache" --secrets-key "$secrets_key" \
    --js-toolchain /nonexistent/toolchain >"$dir/out" 2>"$dir/err" &
  local pid=$!
  pids+=("$pid")
  for _ in $(seq 1 600); do
    grep -q '^SELFDB_ENV_FILE=' "$dir/out" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || { cat "$dir/err" >&2; exit 1; }
    sleep 0.1
  done
  grep -q '^SELFDB_ENV_FILE=' "$dir/out" || { echo "host $1 did not start" >&2; exit 1; }
  cp "$dir/out" "$out/hosts-$1.env"
}
start_serve a
start_serve b
a_url=$(awk -F= '$1=="SELFDB_URL" {print $2}' "$out/hosts-a.env")
b_url=$(awk -F= '$1=="SELFDB_URL" {print $2}' "$out/hosts-b.env")
# The same key on both: the JWT secret is in the database.
SELFDB_ANON_KEY=$(awk -F= '$1=="SELFDB_ANON_KEY" {print $2}' "$out/hosts-a.env")

psql -q "$DATABASE_URL" -f bench/items.sql
psql -q "$DATABASE_URL" <<'SQL'
create table public.entries (id bigint generated always as identity primary key, item int not null, note text not null);
alter table public.entries enable row level security;
create policy anon_entries on public.entries for insert to anon with check (note <> '');
SQL
# Measured once both schema caches have the tables.
for url in "$a_url" "$b_url"; do
  for _ in $(seq 1 600); do
    curl -sf "$url/rest/v1/items?id=eq.1" -H "apikey: $SELFDB_ANON_KEY" >/dev/null && break
    sleep 0.05
  done
done

cpu_ticks() { # busy idle
  awk '$1=="cpu" {print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat
}
wrk_run() { # file connections threads url script
  BASE=$4 wrk -t"$3" -c"$2" -d"$DURATION" --latency -s "bench/$5" \
    -H "apikey: $SELFDB_ANON_KEY" "$4" >"$1"
}
report() { # label rps p99 file...
  local label=$1 rps=$2 p99=$3 errors
  shift 3
  errors=$(grep -hE 'Non-2xx|Socket errors' "$@" | tr -s ' \n' ' ' || true)
  printf '  %-26s %9.0f req/s   p99 %9s   CPU busy %3d%%  %s\n' "$label" "$rps" "$p99" "$busy" "$errors"
}
busy=0
# One host, then two, for one script; sets <kind>_one and <kind>_two.
compare() { # kind script
  local kind=$1 script=$2 before after
  wait_idle
  BASE=$a_url wrk -t2 -c32 -d2s -s "bench/$script" -H "apikey: $SELFDB_ANON_KEY" "$a_url" >/dev/null
  read -r b0 i0 < <(cpu_ticks)
  wrk_run "$out/hosts-$kind-one.wrk" 32 2 "$a_url" "$script"
  read -r b1 i1 < <(cpu_ticks)
  busy=$((100 * (b1 - b0) / (b1 - b0 + i1 - i0 + 1)))
  local one p99
  one=$(awk '/^Requests\/sec/ {print $2}' "$out/hosts-$kind-one.wrk")
  p99=$(awk '$1=="99%" {print $2}' "$out/hosts-$kind-one.wrk")
  report "$kind, one host" "$one" "$p99" "$out/hosts-$kind-one.wrk"

  wait_idle
  BASE=$b_url wrk -t2 -c32 -d2s -s "bench/$script" -H "apikey: $SELFDB_ANON_KEY" "$b_url" >/dev/null
  read -r b0 i0 < <(cpu_ticks)
  wrk_run "$out/hosts-$kind-two-a.wrk" 16 1 "$a_url" "$script" &
  local wa=$!
  wrk_run "$out/hosts-$kind-two-b.wrk" 16 1 "$b_url" "$script" &
  local wb=$!
  wait "$wa" "$wb"
  read -r b1 i1 < <(cpu_ticks)
  busy=$((100 * (b1 - b0) / (b1 - b0 + i1 - i0 + 1)))
  local two
  two=$(awk '/^Requests\/sec/ {s += $2} END {print s}' "$out/hosts-$kind-two-a.wrk" "$out/hosts-$kind-two-b.wrk")
  # The worse of the two hosts' p99s.
  p99=$(awk '$1=="99%" {print $2}' "$out/hosts-$kind-two-a.wrk" "$out/hosts-$kind-two-b.wrk" | tr '\n' ' ')
  report "$kind, two hosts" "$two" "$p99" "$out/hosts-$kind-two-a.wrk" "$out/hosts-$kind-two-b.wrk"
  eval "${kind}_one=$one; ${kind}_two=$two"
}

echo
echo "Several hosts: the data API through one host and through two, on one PostgreSQL $("$pg_bin/postgres" --version | awk '{print $3}') and one Redis (wrk -d$DURATION, 32 connections in all; $(nproc) cores shared by the hosts, PostgreSQL and wrk)"
compare read one_row.lua
compare write insert_row.lua
written=$(psql -qtA "$DATABASE_URL" -c 'select count(*) from public.entries')
echo "  rows written: $written"
awk -v r1="$read_one" -v r2="$read_two" -v w1="$write_one" -v w2="$write_two" 'BEGIN {
  printf "two hosts / one host: reads %.2fx, writes %.2fx (same cores: overhead, not scaling)\n", r2 / r1, w2 / w1 }'
