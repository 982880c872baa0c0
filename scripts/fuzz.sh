#!/usr/bin/env bash
# Runs the fuzz targets, each for a bounded time: ./scripts/fuzz.sh [SECONDS per target, default 60] [TARGET...]
# Targets: config, request_body, usage_scan, cache_entry, request_flow, attempt_flow (default: all). Seeds are in
# fuzz/seeds/TARGET; what the fuzzer learns goes to fuzz/corpus/TARGET (not committed); a crash is
# saved under fuzz/artifacts/TARGET and makes this command fail.
#
# Usage: ./scripts/fuzz.sh [SECONDS] [TARGET...]     e.g. ./scripts/fuzz.sh 600 request_body
#        ./scripts/fuzz.sh -h|--help
#
# Installs cargo-fuzz 0.13.2 into .bench/bin (cargo install, from crates.io) on the first run, and
# builds the targets with sanitizers (fuzz/target). Runs on stable Rust (it sets RUSTC_BOOTSTRAP=1
# for the compiler flags cargo-fuzz passes). Environment settings: none.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p;}' scripts/fuzz.sh; }
fail() { printf 'fuzz.sh: %s\n\n' "$*" >&2; usage >&2; exit 2; }

all_targets=()
for file in fuzz/fuzz_targets/*.rs; do
    file=${file##*/}
    all_targets+=("${file%.rs}")
done
for arg in "$@"; do
    case "$arg" in
        -h | --help) usage; exit 0 ;;
        -*) fail "unknown option: $arg" ;;
    esac
done

seconds=${1:-60}
shift || true
[[ $seconds =~ ^[1-9][0-9]*$ ]] || fail "SECONDS must be a positive whole number, not '$seconds'"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")
for target in "${targets[@]}"; do
    [ -f "fuzz/fuzz_targets/$target.rs" ] || fail "unknown target '$target' (targets: ${all_targets[*]})"
done

if [ ! -x .bench/bin/cargo-fuzz ]; then
    printf '\n==> Installing cargo-fuzz into .bench/ (compiles from crates.io)\n' >&2
    cargo install --locked --root .bench cargo-fuzz@0.13.2
fi

# cargo-fuzz passes compiler flags that only nightly Rust accepts (sanitizer coverage); the one
# stable toolchain on these machines accepts them with RUSTC_BOOTSTRAP=1.
export RUSTC_BOOTSTRAP=1
for target in "${targets[@]}"; do
    printf '\n==> Fuzzing %s for %s s (the first run builds the target first)\n' "$target" "$seconds" >&2
    mkdir -p "fuzz/corpus/$target"
    .bench/bin/cargo-fuzz run "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536
done
printf '\nNo crash in %s.\n' "${targets[*]}" >&2
