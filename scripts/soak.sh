#!/usr/bin/env bash
# A bounded soak (docs/security.md, "Hardening"): a few minutes of traffic over many keys, models and distinct
# prompts through a real Envoy with the filter, sampling Envoy's memory every 10 s.
# Settings (environment): SOAK_SECONDS (180), SOAK_CONCURRENCY (16). Report: target/soak/report.md.
#
# Usage: ./scripts/soak.sh [-h|--help]
#
# Runs ./scripts/setup.sh first (installs what is missing: the wasm32-wasip1 target, and .venv with
# Envoy; builds the filter; see its --help), then builds the soak driver in release mode
# (target/release/soak). Also read: ENVOY_BIN (default .venv/bin/envoy) and AI_GATEWAY_WASM
# (default target/wasm32-wasip1/release/ai_gateway.wasm).
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/options.sh
only_help_option "$@"

./scripts/setup.sh
printf '\n==> %s\n' "Building the soak driver (release)" >&2
cargo build --release -p ai-gateway-integration --bin soak
printf '\n==> %s\n' "Soaking for ${SOAK_SECONDS:-180} s" >&2
exec target/release/soak
