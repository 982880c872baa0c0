#!/usr/bin/env bash
# A bounded soak (README, "Hardening"): a few minutes of traffic over many keys, models and distinct
# prompts through a real Envoy with the filter, sampling Envoy's memory every 10 s.
# Settings (environment): SOAK_SECONDS (180), SOAK_CONCURRENCY (16). Report: target/soak/report.md.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo build --release -p ai-gateway-integration --bin soak
exec target/release/soak
