#!/usr/bin/env bash
# HL7 v2 parser peer benchmark: Renkei's parser against python-hl7, the Rust HL7 crates on
# crates.io and @medplum/core, on the same generated corpus of 100,000 messages, doing the same
# work (see README.md beside this script). Prints one table.
#
# Usage: benches/hl7-peers/run.sh
#
# Needs cargo, python3 (with venv), node and npm, and the package registries crates.io, PyPI and
# npm. Everything it installs goes into a temporary directory (removed at exit), except the Rust
# peers' build directory, which is kept for reuse in $RENKEI_PEERS_TARGET_DIR
# (default /var/tmp/renkei-hl7-peers-target). Nothing is written inside the repository except
# what `cargo bench` writes to the workspace's own target/.
#
# Environment: PY_HL7_SPEC (default "hl7") and MEDPLUM_SPEC (default "@medplum/core") choose the
# Python and npm package versions, e.g. PY_HL7_SPEC=hl7==0.4.5 MEDPLUM_SPEC=@medplum/core@4.5.2.
#
# Exit status: 0 when every peer ran and matched Renkei's checksum; 1 on a setup error (a registry
# unreachable, the corpus not generated); 3 when a peer failed or its checksum did not match.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PEERS_TARGET="${RENKEI_PEERS_TARGET_DIR:-/var/tmp/renkei-hl7-peers-target}"
PY_HL7_SPEC="${PY_HL7_SPEC:-hl7}"
MEDPLUM_SPEC="${MEDPLUM_SPEC:-@medplum/core}"
MESSAGES=100000

die() {
    echo "run.sh: ERROR: $*" >&2
    exit 1
}
log() { echo "==> $*" >&2; }
# Prints the last lines of a log file to stderr (for a failure message).
show_log() {
    echo "---- last lines of $1 ----" >&2
    tail -n 25 "$1" >&2 || true
    echo "----" >&2
}
# True when a log file says a download or a registry could not be reached.
network_failure() {
    grep -Eqi 'failed to (download|get|fetch|query)|unable to update registry|could not resolve|couldn.t resolve|connection (refused|reset|timed out)|timed out|network is unreachable|ENOTFOUND|ECONNREFUSED|ETIMEDOUT|EAI_AGAIN|Temporary failure in name resolution|No matching distribution|Could not find a version' "$1"
}

for tool in cargo rustc python3 node npm git; do
    command -v "$tool" >/dev/null || die "'$tool' is not on PATH"
done

WORK="$(mktemp -d "${TMPDIR:-/tmp}/renkei-hl7-peers.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
CORPUS="$WORK/corpus-utf8.hl7"

# ---------------------------------------------------------------------------------------------
# 1. The corpus, and Renkei's own figures, from Renkei's benchmark.
log "cargo bench -p renkei-hl7v2 --bench parse (writes the corpus, measures Renkei)"
if ! (cd "$ROOT" && RENKEI_BENCH_CORPUS_DIR="$WORK" cargo bench -p renkei-hl7v2 --bench parse \
    >"$WORK/renkei.out" 2>"$WORK/renkei.log"); then
    show_log "$WORK/renkei.log"
    network_failure "$WORK/renkei.log" && die "cargo bench could not download crates: is crates.io reachable?"
    die "cargo bench -p renkei-hl7v2 --bench parse failed"
fi
cat "$WORK/renkei.out" >&2
[[ -s "$CORPUS" ]] || die "the benchmark did not write $CORPUS (does it still honour RENKEI_BENCH_CORPUS_DIR?)"
lines="$(tr -cd '\n' <"$CORPUS" | wc -c)"
[[ "$lines" -eq "$MESSAGES" ]] || die "corpus has $lines messages, expected $MESSAGES"
corpus_bytes=$(($(wc -c <"$CORPUS") - lines))

# Line format: renkei-hl7v2 UTF-8  601.3 MB/s  1127725 messages/s  (100000 messages, 53.3 MB, checksum 5888838)
renkei_line="$(grep -E '^renkei-hl7v2 +UTF-8 ' "$WORK/renkei.out" || true)"
[[ -n "$renkei_line" ]] || die "no 'renkei-hl7v2 UTF-8' line in the cargo bench output"
renkei_mbps="$(awk '{print $3}' <<<"$renkei_line")"
renkei_msgps="$(awk '{print $5}' <<<"$renkei_line")"
want="$(sed -E -n 's/.*checksum ([0-9]+).*/\1/p' <<<"$renkei_line")"
[[ "$want" =~ ^[0-9]+$ ]] || die "cannot read Renkei's checksum from: $renkei_line"
renkei_iso_line="$(grep -E '^renkei-hl7v2 +ISO-2022-JP ' "$WORK/renkei.out" || true)"

# ---------------------------------------------------------------------------------------------
# 2. Rust peers: one build per crate (cargo feature), so a crate that does not build is reported
#    as not available instead of taking the others down with it.
RUST_MANIFEST="$HERE/rust-peers/Cargo.toml"
RUST_LOCK="$HERE/rust-peers/Cargo.lock"
declare -A RUST_BIN=() # peer name -> binary
declare -A UNAVAILABLE=() # row label -> reason
UNAVAILABLE_ORDER=()
mark_unavailable() {
    UNAVAILABLE["$1"]="$2"
    UNAVAILABLE_ORDER+=("$1")
}
locked_version() { # crate -> version in rust-peers/Cargo.lock
    awk -v name="$1" '$1=="name" && $3=="\""name"\"" {getline; gsub(/"/,"",$3); print $3; exit}' "$RUST_LOCK"
}
for feature in hl7-parser hl7-2; do
    log "building the Rust peer for $feature (CARGO_TARGET_DIR=$PEERS_TARGET)"
    build_log="$WORK/build-$feature.log"
    if CARGO_TARGET_DIR="$PEERS_TARGET" cargo build --release --locked --quiet \
        --manifest-path "$RUST_MANIFEST" --no-default-features --features "$feature" \
        >"$build_log" 2>&1; then
        cp "$PEERS_TARGET/release/renkei-hl7-peers" "$WORK/rust-peer-$feature"
        case "$feature" in
        hl7-parser) RUST_BIN[hl7-parser]="$WORK/rust-peer-$feature" ;;
        hl7-2)
            RUST_BIN[hl7-2]="$WORK/rust-peer-$feature"
            RUST_BIN[er7]="$WORK/rust-peer-$feature"
            ;;
        esac
    else
        show_log "$build_log"
        network_failure "$build_log" && die "cargo could not download the crates for $feature: is crates.io reachable?"
        reason="$(grep -m1 -E '^error' "$build_log" | cut -c1-100 || true)"
        mark_unavailable "$feature" "does not build: ${reason:-see cargo output above}"
    fi
done
# Newer releases than the ones Cargo.lock pins: say why they are not measured (usually a
# rust-version above the toolchain's). A failing look-up only loses the note.
rustc_version="$(rustc --version | awk '{print $2}')"
for crate in hl7-parser hl7-2; do
    have="$(locked_version "$crate")"
    info="$(cd "$HERE/rust-peers" && cargo info --quiet "$crate" 2>/dev/null || true)"
    latest="$(sed -E -n 's/^version: .*\(latest ([^ ,)]+).*/\1/p' <<<"$info" | head -n1)"
    if [[ -n "$latest" && "$latest" != "$have" ]]; then
        needs="$(cd "$HERE/rust-peers" && cargo info --quiet "$crate@$latest" 2>/dev/null |
            sed -E -n 's/^rust-version: (.*)/\1/p' | head -n1 || true)"
        if [[ -n "$needs" ]] && [[ "$(printf '%s\n%s\n' "$needs" "$rustc_version" | sort -V | tail -n1)" != "$rustc_version" ]]; then
            mark_unavailable "$crate $latest" "needs Rust $needs, toolchain is $rustc_version (measured $have instead)"
        else
            mark_unavailable "$crate $latest" "newer than the $have pinned in rust-peers/Cargo.lock (cargo update to measure it)"
        fi
    fi
done

# ---------------------------------------------------------------------------------------------
# 3. python-hl7 from PyPI, in a venv in the temp dir.
log "python3 -m venv + pip install $PY_HL7_SPEC"
python3 -m venv "$WORK/venv" >"$WORK/venv.log" 2>&1 || {
    show_log "$WORK/venv.log"
    die "python3 -m venv failed (on Debian: apt-get install python3-venv)"
}
if ! "$WORK/venv/bin/pip" install --disable-pip-version-check --timeout 60 --retries 2 \
    "$PY_HL7_SPEC" >"$WORK/pip.log" 2>&1; then
    show_log "$WORK/pip.log"
    die "pip install $PY_HL7_SPEC failed: is PyPI reachable?"
fi
py_hl7_version="$("$WORK/venv/bin/python" -c 'import importlib.metadata as m; print(m.version("hl7"))')"

# ---------------------------------------------------------------------------------------------
# 4. @medplum/core from npm, into the temp dir (never the repository).
log "npm install $MEDPLUM_SPEC"
echo '{"name":"renkei-hl7-peers","private":true}' >"$WORK/package.json"
if ! (cd "$WORK" && npm install --prefix "$WORK" --no-audit --no-fund --no-package-lock \
    --fetch-retries 1 --fetch-timeout 60000 "$MEDPLUM_SPEC" >"$WORK/npm.log" 2>&1); then
    show_log "$WORK/npm.log"
    die "npm install $MEDPLUM_SPEC failed: is the npm registry reachable?"
fi
medplum_version="$(node -p "require('$WORK/node_modules/@medplum/core/package.json').version")"

# ---------------------------------------------------------------------------------------------
# 5. Run the peers, one after another. Each prints `NAME MBps MSGps CHECKSUM`.
ROWS=()    # "label|MB/s|messages/s|checksum column"
problems=0
add_row() { ROWS+=("$1|$2|$3|$4"); }
run_peer() { # label, command...
    local label="$1"
    shift
    log "running $label"
    local out rc=0
    out="$("$@" 2>"$WORK/peer.err")" || rc=$?
    if [[ "$rc" -ne 0 ]]; then
        cat "$WORK/peer.err" >&2
        add_row "$label" "FAILED" "-" "*** FAILED: exit status $rc, its stderr is above ***"
        problems=$((problems + 1))
        return 0
    fi
    local name mbps msgps check
    read -r name mbps msgps check <<<"$out"
    if ! [[ "$check" =~ ^[0-9]+$ ]]; then
        add_row "$label" "FAILED" "-" "*** unreadable output: $out ***"
        problems=$((problems + 1))
    elif [[ "$check" == "$want" ]]; then
        add_row "$label" "$mbps" "$msgps" "yes ($check)"
    else
        add_row "$label" "$mbps" "$msgps" "*** MISMATCH: $check, Renkei $want ***"
        problems=$((problems + 1))
    fi
}

renkei_rev="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [[ -n "$(git -C "$ROOT" status --porcelain -- crates/renkei-hl7v2 2>/dev/null)" ]]; then
    renkei_rev="$renkei_rev+uncommitted"
fi
renkei_version="$(sed -E -n 's/^version = "(.*)"/\1/p' "$ROOT/Cargo.toml" | head -n1)"
add_row "renkei-hl7v2 $renkei_version ($renkei_rev)" "$renkei_mbps" "$renkei_msgps" "reference ($want)"

for peer in hl7-parser hl7-2 er7; do
    [[ -n "${RUST_BIN[$peer]:-}" ]] || continue
    case "$peer" in
    er7) label="er7 $(locked_version er7) (hl7-2's parsing core)" ;;
    *) label="$peer $(locked_version "$peer")" ;;
    esac
    run_peer "$label" "${RUST_BIN[$peer]}" "$peer" "$CORPUS"
done
run_peer "python-hl7 $py_hl7_version" "$WORK/venv/bin/python" "$HERE/peer.py" "$CORPUS"
# Run from the temp dir: peer.mjs resolves @medplum/core from the working directory.
run_peer "@medplum/core $medplum_version" bash -c 'cd "$1" && exec node "$2" "$3"' _ "$WORK" "$HERE/peer.mjs" "$CORPUS"
for label in "${UNAVAILABLE_ORDER[@]}"; do
    add_row "$label" "n/a" "n/a" "not available: ${UNAVAILABLE[$label]}"
done

# ---------------------------------------------------------------------------------------------
# 6. The table.
cpu="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n1)"
echo
echo "HL7 v2 parse throughput, $(date -u +%Y-%m-%d), $(nproc) cores${cpu:+, $cpu}"
printf 'Corpus: %d messages, %.1f MB UTF-8 (generated by crates/renkei-hl7v2/benches/parse.rs); best of 3 passes.\n' \
    "$MESSAGES" "$(awk -v b="$corpus_bytes" 'BEGIN{print b/1e6}')"
echo "Work per message: parse, then PID-3.1, PID-5.1, every OBX-3.1 and OBX-5 (unescaped); checksum = sum of UTF-8 byte lengths."
echo
w1=6 w2=4 w3=10
for row in "${ROWS[@]}"; do
    IFS='|' read -r label mbps msgps _ <<<"$row"
    if ((${#label} > w1)); then w1=${#label}; fi
    if ((${#mbps} > w2)); then w2=${#mbps}; fi
    if ((${#msgps} > w3)); then w3=${#msgps}; fi
done
dashes() { printf -- '-%.0s' $(seq 1 "$1"); }
printf "| %-${w1}s | %${w2}s | %${w3}s | %s |\n" "parser" "MB/s" "messages/s" "checksum ok"
printf '|%s|%s:|%s:|%s|\n' "$(dashes $((w1 + 2)))" "$(dashes $((w2 + 1)))" "$(dashes $((w3 + 1)))" "$(dashes 13)"
for row in "${ROWS[@]}"; do
    IFS='|' read -r label mbps msgps ok <<<"$row"
    printf "| %-${w1}s | %${w2}s | %${w3}s | %s |\n" "$label" "$mbps" "$msgps" "$ok"
done
echo
[[ -z "$renkei_iso_line" ]] || echo "Renkei on the same messages as ISO-2022-JP (SS-MIX2 storage encoding): $(awk '{print $3" MB/s, "$5" messages/s"}' <<<"$renkei_iso_line")"
echo "Versions: rustc $rustc_version; $(python3 --version 2>&1 | sed 's/Python/CPython/') (venv); node $(node --version); hl7 (PyPI) $py_hl7_version; @medplum/core $medplum_version; hl7-parser $(locked_version hl7-parser), hl7-2 $(locked_version hl7-2), er7 $(locked_version er7) (crates.io, rust-peers/Cargo.lock)"

if [[ "$problems" -gt 0 ]]; then
    {
        echo
        echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
        echo "!!! $problems peer(s) FAILED or extracted different values than Renkei: their figures are not comparable."
        echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
    } >&2
    exit 3
fi
