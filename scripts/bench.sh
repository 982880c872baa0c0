#!/usr/bin/env bash
# The benchmark (README, "Performance"): builds everything in release mode, then measures plain Envoy,
# Envoy with the filter (four configurations) and LiteLLM's proxy on the same upstream, interleaved,
# and prints the table with ratios. The first run installs its tools into .bench/: the oha load
# generator (from crates.io, a few minutes to compile) and LiteLLM (from PyPI).
# Settings (environment): BENCH_ROUNDS, BENCH_SECONDS, BENCH_CONNECTIONS, BENCH_RATE, BENCH_ONLY.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh

step() { printf '\n==> %s\n' "$*" >&2; }

if [ ! -x .bench/bin/oha ]; then
    step "Installing the oha load generator into .bench/ (compiles from crates.io)"
    cargo install --quiet --locked --root .bench oha@1.16.0
fi
if [ ! -x .bench/venv/bin/litellm ]; then
    step "Installing LiteLLM's proxy into .bench/venv (from PyPI)"
    python3 -m venv .bench/venv
    .bench/venv/bin/pip install --quiet --disable-pip-version-check 'litellm[proxy]==1.106.2'
fi

step "Building the benchmark driver (release)"
cargo build --release -p ai-gateway-integration --bin bench

step "Running (about 4 minutes with the default settings)"
exec target/release/bench
