#!/usr/bin/env bash
# Part of `make bench`: projects (a user's own database registered by URL)
# against the instance's own data API, and the cost of request logging.
# Hosts of this build serve the `selfdb dev` cluster of run.sh
# (DATABASE_URL): one logging every request, one with `--request-log false`,
# and, where clickhouse-server is installed (`make test` installs it), one
# logging to a ClickHouse server of its own (`--logs-clickhouse-url`).
# The project's database is another database of the same cluster, so both
# paths cross the same loopback to the same PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench/out
DURATION=${BENCH_DURATION:-10s}
CONNECTIONS=${BENCH_CONNECTIONS:-32}
BIN=${SELFDB_BIN:-./target/dist/selfdb}
ROUNDS=${BENCH_ROUNDS:-2}

project_db=bench_project_$$
project_url=${DATABASE_URL%/*}/$project_db
psql -q "$DATABASE_URL" -c "create database $project_db"
rows_sql="create table if not exists public.items (id int primary key, title text not null, category int not null, score int not null);
truncate public.items;
insert into public.items select i, 'item ' || i, i % 50, (i * 7919) % 10007 from generate_series(1, 10000) i;
analyze public.items;"
psql -q "$project_url" -c "$rows_sql"
# The instance's own copy (run.sh's crud part may have made `items` with a
# row rule; the service key reads past it either way).
psql -q "$DATABASE_URL" -c "drop table if exists public.items cascade" -c "$rows_sql"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
start_host() { # name logging [more arguments]
  local name=$1 logging=$2 port dir
  shift 2
  port=$(free_port)
  dir=$(mktemp -d "$out/projects-$name.XXXXXX")
  env -u RUST_BACKTRACE "$BIN" serve --listen "127.0.0.1:$port" --database-url "$DATABASE_URL" \
    --data-dir "$dir" --cache-dir "$out/cache" --functions-dir "$dir" --s3-port 0 \
    --secrets-key "bench projects key" \
    --request-log "$logging" "$@" >"$out/projects-$name.out" 2>"$out/projects-$name.err" &
  eval "${name}_pid=$!"
  for _ in $(seq 1 600); do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
    sleep 0.1
  done
  eval "${name}_url=http://127.0.0.1:$port"
}
start_host logged true
start_host quiet false
clickhouse_pid= ch_pid=
trap 'kill $logged_pid $quiet_pid $clickhouse_pid $ch_pid 2>/dev/null || true; wait 2>/dev/null || true; psql -q "$DATABASE_URL" -c "drop database if exists $project_db" || true' EXIT

registered=$(curl -sf "$logged_url/api/v1/projects" -H "apikey: $SELFDB_SERVICE_KEY" \
  -H "authorization: Bearer $SELFDB_SERVICE_KEY" -H 'content-type: application/json' \
  -d "{\"name\": \"bench-$$\", \"database_url\": \"$project_url?sslmode=disable\", \"pool_size\": 16}")
project=$(node -e 'console.log(JSON.parse(process.argv[1]).projectId)' "$registered")
project_key=$(node -e 'console.log(JSON.parse(process.argv[1]).apiKey)' "$registered")
# The other hosts learn of the project through the database.
for url in "$quiet_url"; do
  for _ in $(seq 1 100); do
    curl -sf "$url/projects/$project/rest/v1/items?id=eq.1" -H "apikey: $project_key" >/dev/null && break
    sleep 0.1
  done
done

measure() { # label base style key
  local label=$1 base=$2 style=$3 key=$4
  BASE=$base STYLE=$style PROJECT=$project KEY=$key \
    wrk -t2 -c"$CONNECTIONS" -d2s -s bench/project_rows.lua "$base" >/dev/null
  BASE=$base STYLE=$style PROJECT=$project KEY=$key \
    wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency -s bench/project_rows.lua "$base" >"$out/$label.wrk"
  local rps p99 errors
  rps=$(awk '/^Requests\/sec/ {printf "%.0f", $2}' "$out/$label.wrk")
  p99=$(awk '$1=="99%" {print $2}' "$out/$label.wrk")
  errors=$(grep -E 'Non-2xx|Socket errors' "$out/$label.wrk" || true)
  printf '  %-26s %8s req/s   p99 %9s  %s\n' "$label" "$rps" "$p99" "$errors"
  eval "sum_${label//[-]/_}=\$(( \${sum_${label//[-]/_}:-0} + rps ))"
}

echo
echo "Projects: one row by primary key, 10,000 rows (wrk -c$CONNECTIONS -d$DURATION, $ROUNDS rounds interleaved)"
for round in $(seq 1 "$ROUNDS"); do
  echo " round $round"
  measure main-logged "$logged_url" main "$SELFDB_SERVICE_KEY"
  measure project-logged "$logged_url" project "$project_key"
  measure dbify-logged "$logged_url" dbify "$project_key"
  measure main-quiet "$quiet_url" main "$SELFDB_SERVICE_KEY"
  measure project-quiet "$quiet_url" project "$project_key"
  measure dbify-quiet "$quiet_url" dbify "$project_key"
done
awk -v ml="$sum_main_logged" -v pl="$sum_project_logged" -v dl="$sum_dbify_logged" \
    -v mq="$sum_main_quiet" -v pq="$sum_project_quiet" -v dq="$sum_dbify_quiet" 'BEGIN {
  printf "project data API / main data API: %.1f%% logged, %.1f%% not (target >= 90%%)\n", 100 * pl / ml, 100 * pq / mq
  printf "Dbify read / main data API:       %.1f%% logged, %.1f%% not\n", 100 * dl / ml, 100 * dq / mq
  printf "request logging costs:            main %.1f%%, project %.1f%%, dbify %.1f%% of throughput (target < 5%%)\n", 100 * (1 - ml / mq), 100 * (1 - pl / pq), 100 * (1 - dl / dq)
}'
logged_rows=$(psql -tA "$DATABASE_URL" -c "select count(*) from selfdb.request_logs")
echo "  request log rows written: $logged_rows"

# ClickHouse as the sink, against the quiet host: a host logging to
# PostgreSQL stops first (a fourth host's pools would pass the cluster's
# 100 connections).
kill "$logged_pid" 2>/dev/null || true
wait "$logged_pid" 2>/dev/null || true
if command -v clickhouse-server >/dev/null 2>&1; then
  # A fresh directory, as for every data directory of the bench.
  ch_dir=$(mktemp -d "$out/clickhouse.XXXXXX")
  ch_port=$(free_port)
  cat >"$ch_dir/config.xml" <<XML
<yandex><logger><level>warning</level><log>$PWD/$ch_dir/server.log</log><errorlog>$PWD/$ch_dir/error.log</errorlog></logger>
<http_port>$ch_port</http_port><tcp_port>$(free_port)</tcp_port><listen_host>127.0.0.1</listen_host>
<path>$PWD/$ch_dir/data/</path><tmp_path>$PWD/$ch_dir/tmp/</tmp_path><user_files_path>$PWD/$ch_dir/files/</user_files_path>
<format_schema_path>$PWD/$ch_dir/schemas/</format_schema_path><users_config>users.xml</users_config>
<default_profile>default</default_profile><default_database>default</default_database><mark_cache_size>268435456</mark_cache_size></yandex>
XML
  cat >"$ch_dir/users.xml" <<XML
<yandex><profiles><default></default></profiles><users><logs><password>bench</password>
<networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></logs></users>
<quotas><default></default></quotas></yandex>
XML
  clickhouse-server --config-file="$PWD/$ch_dir/config.xml" >/dev/null 2>&1 &
  ch_pid=$!
  for _ in $(seq 1 600); do
    curl -sf -u logs:bench "http://127.0.0.1:$ch_port/?query=select%201" >/dev/null && break
    sleep 0.1
  done
  start_host clickhouse true --logs-clickhouse-url "http://logs:bench@127.0.0.1:$ch_port/default"
fi
if [ -n "$clickhouse_pid" ]; then
  for _ in $(seq 1 100); do
    curl -sf "$clickhouse_url/projects/$project/rest/v1/items?id=eq.1" -H "apikey: $project_key" >/dev/null && break
    sleep 0.1
  done
  echo
  echo "Projects with request logs in ClickHouse 18.16 (its own server on this machine)"
  sum_project_quiet=0
  for round in $(seq 1 "$ROUNDS"); do
    echo " round $round"
    measure project-quiet "$quiet_url" project "$project_key"
    measure project-clickhouse "$clickhouse_url" project "$project_key"
  done
  awk -v pc="$sum_project_clickhouse" -v pq="$sum_project_quiet" 'BEGIN {
    printf "request logging to ClickHouse costs: project %.1f%% of throughput\n", 100 * (1 - pc / pq)
  }'
  ch_rows=$(curl -sf -u logs:bench "http://127.0.0.1:$ch_port/?query=select%20count()%20from%20request_logs")
  echo "  request log rows written to ClickHouse: $ch_rows"
fi
