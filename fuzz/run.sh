#!/usr/bin/env bash
# Fuzzes a parser: `fuzz/run.sh [SECONDS] [TARGET]` (default 600 s, target hl7v2_parse; the
# others are jahis_parse and dicom_parse). The HL7 corpus is seeded from the SS-MIX2 sample
# storage in the repository's fixtures/ and fuzz/seeds/*.hl7; the JAHIS corpus from the
# medication-notebook fixtures; the DICOM corpus from fuzz/seeds/dicom/ (small synthetic files
# made with renkei_dicom::synthetic_ct and the crate's test builders: explicit and implicit VR
# little endian, big endian, nested sequences of defined and undefined length, a JPEG baseline
# frame) with fuzz/dicom.dict. dicom_parse runs under memory limits: an input that makes the
# reader reserve what it merely declares (huge lengths, deep nesting, bogus transfer syntaxes,
# frame sizes) is a crash, not a slow run.
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
  extra=()
elif [ "$target" = dicom_parse ]; then
  cp -n seeds/dicom/* "$corpus/"
  extra=(-dict=dicom.dict -rss_limit_mb=2048 -malloc_limit_mb=600)
else
  fixtures=../fixtures/nho-ssmix2-testing-tool/sampleData
  if [ -d "$fixtures" ]; then
    find "$fixtures" -type f | while read -r f; do cp -n "$f" "$corpus/fixture-$(basename "$f")"; done
  fi
  cp -n seeds/*.hl7 "$corpus/"
  extra=(-dict=hl7.dict)
fi
RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" "$corpus" -s none -- \
  "${extra[@]}" -max_total_time="$seconds" -max_len=65536 -timeout=10 -print_final_stats=1
