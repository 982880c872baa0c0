#!/usr/bin/env bash
# Runs the fuzz targets, each for a bounded time: ./scripts/fuzz.sh [SECONDS per target, default 60] [TARGET...]
# Targets: config, request_body, usage_scan, cache_entry, request_flow (default: all). Seeds are in
# fuzz/seeds/TARGET; what the fuzzer learns goes to fuzz/corpus/TARGET (not committed); a crash is
# saved under fuzz/artifacts/TARGET and makes this command fail.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(config request_body usage_scan cache_entry request_flow)

if [ ! -x .bench/bin/cargo-fuzz ]; then
    printf '\n==> Installing cargo-fuzz into .bench/ (from crates.io)\n' >&2
    cargo install --quiet --locked --root .bench cargo-fuzz@0.13.2
fi

# cargo-fuzz passes compiler flags that only nightly Rust accepts (sanitizer coverage); the one
# stable toolchain on these machines accepts them with RUSTC_BOOTSTRAP=1.
export RUSTC_BOOTSTRAP=1
for target in "${targets[@]}"; do
    printf '\n==> Fuzzing %s for %s s\n' "$target" "$seconds" >&2
    mkdir -p "fuzz/corpus/$target"
    .bench/bin/cargo-fuzz run "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536
done
printf '\nNo crash in %s.\n' "${targets[*]}" >&2
