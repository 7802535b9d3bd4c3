#!/usr/bin/env bash
# End-to-end intake benchmarks (release build), printing their figures:
#   - `renkei import ssmix2` messages/s into SQLite and into PostgreSQL, first import and re-import,
#     on a generated storage (`renkei dev generate-ssmix2`, ISO-2022-JP);
#   - MLLP round trips/s (store, then ACK) over 1 and 8 connections.
# Usage: benches/intake/run.sh [PATIENTS] (default 500, about 33,000 messages).
# PostgreSQL: RENKEI_BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test); a
# fresh schema is created and dropped.
set -euo pipefail
cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.."
patients=${1:-500}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
cargo build --release --bin renkei >/dev/null
bin=$CARGO_TARGET_DIR/release/renkei
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export RENKEI_LOG=warn

"$bin" dev generate-ssmix2 "$work/storage" --patients "$patients" --years 2 --seed 7
files=$(find "$work/storage" -type f | wc -l)
code=3411234564

import() { # label, extra args...
  local label=$1; shift
  "$bin" "$@" admin create-facility --type hospital --name 広島中央総合病院 --code "$code" --discloses >/dev/null
  for run in first again; do
    local json seconds
    json=$("$bin" "$@" import ssmix2 "$work/storage" --facility "$code" --json)
    seconds=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["seconds"])' <<<"$json")
    python3 -c "import sys; print(f'import ssmix2 {sys.argv[1]:<10} {sys.argv[2]:<6} {int(sys.argv[3]):>7} files {float(sys.argv[4]):7.2f} s {int(sys.argv[3])/float(sys.argv[4]):>9.0f} files/s')" "$label" "$run" "$files" "$seconds"
  done
}

import sqlite --data-dir "$work/sqlite"

pg=${RENKEI_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
schema=renkei_bench_$$
if psql -w "$pg" -qAtc "CREATE SCHEMA $schema" >/dev/null 2>&1; then
  import postgres --data-dir "$work/pg" --database-url "$pg?options[search_path]=$schema"
  psql -w "$pg" -qAtc "DROP SCHEMA $schema CASCADE" >/dev/null 2>&1
else
  echo "import ssmix2 postgres   skipped: $pg not reachable"
fi

# MLLP round trips: a server with the MLLP listener on a free port, a Python client.
"$bin" --data-dir "$work/mllp" admin create-facility --type hospital --name 広島中央総合病院 --code "$code" --discloses >/dev/null
"$bin" --data-dir "$work/mllp" serve --listen 127.0.0.1:0 --mllp-listen 127.0.0.1:0 >"$work/serve.out" 2>"$work/serve.err" &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 100); do grep -q "MLLP listening" "$work/serve.out" && break; sleep 0.1; done
addr=$(grep -o 'mllp://[0-9.:]*' "$work/serve.out" | sed 's|mllp://||')
python3 "$(dirname "$0")/mllp_client.py" "$addr" "$code" 2000 1
python3 "$(dirname "$0")/mllp_client.py" "$addr" "$code" 4000 8
