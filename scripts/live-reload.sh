#!/usr/bin/env bash
# Starts the live-reload setup (docs/deploy.md, "Changing keys without a restart"): Envoy with
# envoy/live-reload.yaml on 127.0.0.1:10001 (admin on 9902), whose filter configuration is
# envoy/live-reload/ai_gateway.yaml, a file Envoy watches, in front of the mock model provider on
# 127.0.0.1:18080. If ./scripts/demo.sh is running, it shares the demo's mock provider; otherwise it
# starts its own. Ctrl-C stops what it started.
#
# Usage: ./scripts/live-reload.sh [-h|--help]
#
# It is ./scripts/demo.sh --live-reload: the same port checks (10001 and 9902 must be free), and the
# same installs and builds (./scripts/setup.sh, then target/debug/mock-upstream; see
# ./scripts/demo.sh --help). Logs: .run/live-reload-envoy.log and .run/live-reload-mock.log.
# Environment settings: none.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p;}' scripts/live-reload.sh; }

for arg in "$@"; do
    case "$arg" in
        -h | --help) usage; exit 0 ;;
        *) printf 'live-reload.sh: unknown option: %s\n\n' "$arg" >&2; usage >&2; exit 2 ;;
    esac
done

exec ./scripts/demo.sh --live-reload
