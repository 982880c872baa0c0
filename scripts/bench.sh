#!/usr/bin/env bash
# The benchmark (docs/performance.md): builds everything in release mode, then measures plain Envoy,
# Envoy with the filter and LiteLLM's proxy on the same upstream, interleaved, and prints the table
# with ratios and the filter's host calls per request; then prompts of real sizes, a 1,000-event
# stream, Envoy's memory per request in flight and the cache key's hash in V8. The first run
# installs its tools into .bench/: the oha load generator (from crates.io, a few minutes to compile)
# and LiteLLM (from PyPI); Node.js (V8, for the hash measurement) from Debian if it is missing.
#
# Usage: ./scripts/bench.sh [-h|--help]
#
# Configurations: (a) Envoy, no filter (the baseline, always measured); (b) filter: auth + routing;
# (c) (b) + request and token limits; (d) filter: cache hit; (e) (c), streamed response;
# (f) LiteLLM's proxy; (g) (b) with an OpenAI client translated to an Anthropic provider; (h) (g)
# with a 200-event stream translated event by event; (i) a fallback chain whose primary fails;
# (j) (c) with the limits counted by a global rate limit service; a-1k/b-1k, a-32k/b-32k,
# a-256k/b-256k: plain Envoy and (b) with prompts of those sizes; a-sse/e-sse: plain Envoy and (c)
# with a 1,000-event stream; m: memory per request in flight; k: the cache key's hash in V8.
# Report: target/bench/report.md.
# Environment settings:
#   BENCH_ROUNDS       interleaved rounds (3)
#   BENCH_SECONDS      seconds per measurement (5)
#   BENCH_CONNECTIONS  connections at saturation (32)
#   BENCH_RATE         requests/s of the fixed-rate latency runs (20)
#   BENCH_ONLY         a subset of the configurations, e.g. a,b,d (default: all). LiteLLM is
#                      installed only when (f) is selected.
#   BENCH_CONCURRENCY  Envoy's worker threads in the proxies under test (1); 2 shows contention
#                      on shared data between workers
#   OHA, LITELLM       use these binaries instead of installing oha / LiteLLM into .bench/
# Installs: what ./scripts/setup.sh installs (see its --help); oha 1.16.0 into .bench/bin (cargo
# install); LiteLLM's proxy 1.106.2 into .bench/venv (pip); nodejs (apt) when missing. About 15
# minutes with the defaults, after the first run's installs and builds.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/options.sh
only_help_option "$@"

# As target/release/bench reads BENCH_ONLY (integration/src/bin/bench.rs): empty means every
# configuration, else a comma-separated list of letters; (a) is always measured.
selected() {
    local label labels
    [ -n "${BENCH_ONLY:-}" ] || return 0
    IFS=, read -ra labels <<<"$BENCH_ONLY"
    for label in "${labels[@]}"; do
        label=${label#"${label%%[![:space:]]*}"}
        label=${label%"${label##*[![:space:]]}"}
        [ "$label" != "$1" ] || return 0
    done
    return 1
}

./scripts/setup.sh

step() { printf '\n==> %s\n' "$*" >&2; }

# oha drives every configuration, the baseline (a) included.
if [ -z "${OHA:-}" ] && [ ! -x .bench/bin/oha ]; then
    step "Installing the oha load generator into .bench/ (compiles from crates.io, a few minutes)"
    cargo install --locked --root .bench oha@1.16.0
fi
if selected f && [ -z "${LITELLM:-}" ] && [ ! -x .bench/venv/bin/litellm ]; then
    step "Installing LiteLLM's proxy into .bench/venv (from PyPI)"
    python3 -m venv .bench/venv
    .bench/venv/bin/pip install --disable-pip-version-check 'litellm[proxy]==1.106.2'
fi

if selected k && ! command -v node >/dev/null; then
    step "Installing Node.js from Debian (V8, to time the cache key's hash)"
    if [ "$(id -u)" = 0 ]; then apt-get install -y nodejs; else sudo apt-get install -y nodejs; fi
fi

step "Building the benchmark driver (release) and the cache key's hash timer (wasm32-wasip1)"
cargo build --release -p ai-gateway-integration --bin bench
cargo build --release --target wasm32-wasip1 -p ai-gateway-core --example cache_key_hash

if [ -z "${BENCH_ONLY:-}" ]; then
    step "Running (about 15 minutes with the default settings)"
else
    step "Running the configurations in BENCH_ONLY=$BENCH_ONLY (and a, the baseline)"
fi
exec target/release/bench
