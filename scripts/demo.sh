#!/usr/bin/env bash
# Starts the demo: a mock model provider on 127.0.0.1:18080 and Envoy with the filter on
# 127.0.0.1:10000 (admin on 9901), using envoy/demo.yaml. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh
cargo build --quiet -p ai-gateway-integration --bin mock-upstream

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

mkdir -p .run
target/debug/mock-upstream 127.0.0.1:18080 mock > .run/mock.log 2>&1 &
pids+=($!)
.venv/bin/envoy -c envoy/demo.yaml --concurrency 2 --disable-hot-restart > .run/envoy.log 2>&1 &
pids+=($!)

for _ in $(seq 1 100); do
    if curl -fsS http://127.0.0.1:9901/ready >/dev/null 2>&1; then break; fi
    if ! kill -0 "${pids[1]}" 2>/dev/null; then
        echo "Envoy did not start; its log (.run/envoy.log) ends with:" >&2
        tail -n 20 .run/envoy.log >&2
        exit 1
    fi
    sleep 0.2
done

cat <<'INFO'

The AI gateway demo is running: Envoy with the filter on http://127.0.0.1:10000, a mock provider
behind it. Logs: .run/envoy.log and .run/mock.log. Press Ctrl-C to stop.

Demo keys:  sk-demo-alpha  (every model, 60 requests/minute)
            sk-demo-beta   (claude-* models only)

Try it:

  curl -s http://127.0.0.1:10000/v1/chat/completions \
    -H 'Authorization: Bearer sk-demo-alpha' -H 'content-type: application/json' \
    -d '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]}'

  curl -s http://127.0.0.1:10000/v1/models -H 'Authorization: Bearer sk-demo-beta'

From the OpenAI Python SDK (pip install openai):

  from openai import OpenAI
  client = OpenAI(base_url="http://127.0.0.1:10000/v1", api_key="sk-demo-alpha")
  print(client.chat.completions.create(model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Hello"}]).choices[0].message.content)

What the mock provider received: curl -s http://127.0.0.1:18080/_mock/requests
INFO

wait -n "${pids[@]}"
