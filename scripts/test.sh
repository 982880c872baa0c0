#!/usr/bin/env bash
# Runs every check and test: format, lints (host and wasm), unit and flow tests, end-to-end tests
# against a real Envoy (Rust harness and the official Python SDKs). Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh

step() { printf '\n==> %s\n' "$*" >&2; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (host, all targets; and the wasm build)"
cargo clippy --workspace --all-targets --all-features -- -D warnings
cargo clippy --release --target wasm32-wasip1 -p ai-gateway -- -D warnings

step "Unit, flow and end-to-end tests (cargo test)"
cargo test --workspace

step "End-to-end tests with the official OpenAI and Anthropic Python SDKs (pytest)"
cargo build -p ai-gateway-integration --bin gateway-fixture
.venv/bin/python -m pytest -q integration/python
