#!/usr/bin/env bash
# Fuzzes the HL7 v2 parser: `fuzz/run.sh [SECONDS]` (default 600).
# The corpus is seeded from the SS-MIX2 sample storage in ../shared/fixtures and fuzz/seeds/.
# Needs cargo-fuzz (`cargo install cargo-fuzz`); the toolchain is stable, so RUSTC_BOOTSTRAP
# lets cargo-fuzz pass its sanitizer-coverage flags.
set -euo pipefail
cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")"
seconds=${1:-600}
corpus=corpus/hl7v2_parse
mkdir -p "$corpus"
fixtures=../../shared/fixtures/nho-ssmix2-testing-tool/sampleData
if [ -d "$fixtures" ]; then
  find "$fixtures" -type f | while read -r f; do cp -n "$f" "$corpus/fixture-$(basename "$f")"; done
fi
cp -n seeds/* "$corpus/"
RUSTC_BOOTSTRAP=1 cargo fuzz run hl7v2_parse "$corpus" -s none -- \
  -dict=hl7.dict -max_total_time="$seconds" -max_len=65536 -timeout=10 -print_final_stats=1
