#!/usr/bin/env bash
# Fuzzes a parser: `fuzz/run.sh [SECONDS] [TARGET]` (default 600 s, target hl7v2_parse; the
# other target is jahis_parse). The HL7 corpus is seeded from the SS-MIX2 sample storage in
# the repository's fixtures/ and fuzz/seeds/; the JAHIS corpus from the medication-notebook fixtures.
# Needs cargo-fuzz (`cargo install cargo-fuzz`); the toolchain is stable, so RUSTC_BOOTSTRAP
# lets cargo-fuzz pass its sanitizer-coverage flags.
set -euo pipefail
cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")"
seconds=${1:-600}
target=${2:-hl7v2_parse}
corpus=corpus/$target
mkdir -p "$corpus"
if [ "$target" = jahis_parse ]; then
  fixtures=../fixtures/jahis-rx-parser/fixtures
  [ -d "$fixtures" ] && find "$fixtures" -name 'tc-*' -type f | while read -r f; do cp -n "$f" "$corpus/fixture-$(basename "$f")"; done
  dict=()
else
  fixtures=../fixtures/nho-ssmix2-testing-tool/sampleData
  if [ -d "$fixtures" ]; then
    find "$fixtures" -type f | while read -r f; do cp -n "$f" "$corpus/fixture-$(basename "$f")"; done
  fi
  cp -n seeds/* "$corpus/"
  dict=(-dict=hl7.dict)
fi
RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" "$corpus" -s none -- \
  "${dict[@]}" -max_total_time="$seconds" -max_len=65536 -timeout=10 -print_final_stats=1
