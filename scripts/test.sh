#!/usr/bin/env bash
# Runs every check and test: format, lints (host and wasm), unit and flow tests, end-to-end tests
# against a real Envoy (Rust harness and the official Python SDKs). Installs what it needs first.
#
# Usage: ./scripts/test.sh [-h|--help]        (CI, .ci/run, runs exactly this)
#
# Steps: ./scripts/setup.sh (installs what is missing: the wasm32-wasip1 target, and .venv with
# Envoy, the openai and anthropic SDKs and pytest; builds the filter; see its --help), then
# cargo fmt --check; cargo clippy -D warnings (host, all targets; and the wasm build);
# cargo test --workspace; pytest integration/python (the official SDKs against a real Envoy);
# pytest integration/rls (the test rate limit service on a real Redis).
# A few minutes on a fresh clone (it compiles everything), less afterwards.
# Environment settings (read by the end-to-end harness): ENVOY_BIN, the Envoy binary (default
# .venv/bin/envoy); AI_GATEWAY_WASM, the filter (default target/wasm32-wasip1/release/ai_gateway.wasm).
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/options.sh
only_help_option "$@"

./scripts/setup.sh

step() { printf '\n==> %s\n' "$*" >&2; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (host, all targets; and the wasm build)"
cargo clippy --workspace --all-targets --all-features -- -D warnings
cargo clippy --release --target wasm32-wasip1 -p ai-gateway -p ai-gateway-core -- -D warnings

step "Unit, flow and end-to-end tests (cargo test)"
cargo test --workspace

step "End-to-end tests with the official OpenAI and Anthropic Python SDKs (pytest)"
cargo build -p ai-gateway-integration --bin gateway-fixture
.venv/bin/python -m pytest -q integration/python

step "The test rate limit service on a real Redis, with the config rls-config generates (pytest)"
cargo build -p ai-gateway-integration --bin rls-config
.rls/venv/bin/python -m pytest -q integration/rls
