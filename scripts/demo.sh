#!/usr/bin/env bash
# Starts the demo: a mock model provider on 127.0.0.1:18080 and Envoy with the filter on
# 127.0.0.1:10000 (admin on 9901), using envoy/demo.yaml. Ctrl-C stops both.
#
# Usage: ./scripts/demo.sh [--live-reload] [-h|--help]
#   --live-reload  run envoy/live-reload.yaml instead (same as ./scripts/live-reload.sh)
#   -h, --help     print this and exit
#
# Before building anything it checks that its ports are free (10000, 9901 and 18080 on
# 127.0.0.1) and refuses to start if one is taken. Then it runs ./scripts/setup.sh (which installs
# what is missing: the wasm32-wasip1 Rust target, and .venv with Envoy and the Python SDKs; and
# builds the filter), builds the mock provider (target/debug/mock-upstream), starts both and prints
# the demo keys and example requests. The first run takes a few minutes (downloads and builds).
# Logs: .run/envoy.log and .run/mock.log (the previous run's are kept as .run/*.log.1).
# Environment settings: none.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p;}' scripts/demo.sh; }

mode=demo
for arg in "$@"; do
    case "$arg" in
        -h | --help) usage; exit 0 ;;
        --live-reload) mode=live-reload ;;
        *) printf 'demo.sh: unknown option: %s\n\n' "$arg" >&2; usage >&2; exit 2 ;;
    esac
done

# The ports are those of the Envoy configuration (listener, admin) and of the mock provider.
if [ "$mode" = demo ]; then
    me=demo.sh what="the demo" config=envoy/demo.yaml listener=10000 admin=9901 log_prefix=
else
    me=live-reload.sh what="the live-reload setup" config=envoy/live-reload.yaml listener=10001 admin=9902
    log_prefix=live-reload-
fi
mock_port=18080
envoy_log=.run/${log_prefix}envoy.log
mock_log=.run/${log_prefix}mock.log
pidfile=.run/$mode.pid

say() { printf '%s: %s\n' "$me" "$*" >&2; }
step() { printf '\n==> %s\n' "$*" >&2; }

# Whether something accepts connections on 127.0.0.1:PORT.
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# "pid 123, envoy" for the process listening on PORT, when ss can tell.
holder() {
    command -v ss >/dev/null 2>&1 || return 0
    ss -Hltnp "sport = :$1" 2>/dev/null |
        sed -n 's/.*users:(("\([^"]*\)",pid=\([0-9]*\),.*/pid \2, \1/p' | head -n 1
}

# The pid in .run/NAME.pid, if that process is still one of these scripts.
script_pid() {
    local pid
    pid=$(cat ".run/$1.pid" 2>/dev/null) || return 1
    [[ $pid =~ ^[0-9]+$ ]] && [ "$pid" != $$ ] && kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'demo\.sh\|live-reload\.sh' || return 1
    echo "$pid"
}

# Whether the mock model provider answers on PORT (the live-reload setup can share the demo's).
is_mock() {
    python3 -c 'import json, sys, urllib.request
with urllib.request.urlopen("http://127.0.0.1:%s/_mock/requests" % sys.argv[1], timeout=2) as r:
    sys.exit(0 if isinstance(json.load(r), list) else 1)' "$1" 2>/dev/null
}

# Refuses (exit 1, on stderr) if a port is taken or another run of this mode is still starting.
reuse_mock=false
check_ports() {
    local ports=("$listener" "$admin") port who busy=()
    reuse_mock=false
    if listening "$mock_port"; then
        if [ "$mode" = live-reload ] && is_mock "$mock_port"; then
            reuse_mock=true
        else
            ports+=("$mock_port")
        fi
    fi
    for port in "${ports[@]}"; do
        listening "$port" || continue
        busy+=("$port")
        who=$(holder "$port")
        say "cannot start $what: port $port on 127.0.0.1 is already in use${who:+ ($who)}."
    done
    local other script
    other=$(script_pid "$mode" || true)
    if [ ${#busy[@]} -eq 0 ] && [ -z "$other" ]; then
        return 0
    fi
    [ ${#busy[@]} -gt 0 ] || say "cannot start $what: another ./scripts/$me is still starting (pid $other)."
    for script in demo live-reload; do
        other=$(script_pid "$script" || true)
        if [ -n "$other" ]; then
            say "Another demo running? ./scripts/$script.sh runs as pid $other: stop it with Ctrl-C in its terminal, or: kill $other"
            exit 1
        fi
    done
    who=$(holder "${busy[0]}")
    if [[ $who =~ ^pid\ ([0-9]+) ]]; then
        say "Another demo running? Stop it with Ctrl-C in its terminal, or stop what holds the port: kill ${BASH_REMATCH[1]}"
    else
        say "Another demo running? Stop it with Ctrl-C in its terminal; ss -ltnp 'sport = :${busy[0]}' shows what holds the port."
    fi
    exit 1
}

# Prints the end of a log on stderr.
show_log() {
    say "$2; $1 ends with:"
    tail -n 25 "$1" | sed 's/^/    /' >&2
}

check_ports

mkdir -p .run
pids=()
# shellcheck disable=SC2317 # (called by the EXIT trap)
cleanup() {
    local pid
    for pid in ${pids[@]+"${pids[@]}"}; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [ "$(cat "$pidfile" 2>/dev/null)" != $$ ] || rm -f "$pidfile"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
echo $$ >"$pidfile"

./scripts/setup.sh
step "Building the mock model provider (target/debug/mock-upstream)"
cargo build -p ai-gateway-integration --bin mock-upstream

# The build can take minutes: check again that nothing took the ports meanwhile.
check_ports

logs=("$envoy_log")
$reuse_mock || logs+=("$mock_log")
step "Starting $what (logs: ${logs[*]})"
# Keep the previous run's logs (as *.log.1); only now, once no other run can be writing them.
for log in "${logs[@]}"; do
    if [ -f "$log" ]; then mv -f "$log" "$log.1"; fi
done
mock_pid=
if ! $reuse_mock; then
    target/debug/mock-upstream "127.0.0.1:$mock_port" mock >"$mock_log" 2>&1 &
    mock_pid=$!
    pids+=("$mock_pid")
fi
.venv/bin/envoy -c "$config" --concurrency 2 --disable-hot-restart >"$envoy_log" 2>&1 &
envoy_pid=$!
pids+=("$envoy_pid")

# Whether PID has exited; if so, prints its log's end and exits 1.
fail_if_exited() {
    local status=0
    kill -0 "$1" 2>/dev/null && return 0
    wait "$1" || status=$?
    show_log "$3" "$2 exited during startup (status $status)"
    exit 1
}

deadline=$((SECONDS + 60))
until curl -fsS -o /dev/null "http://127.0.0.1:$admin/ready" 2>/dev/null &&
    { $reuse_mock || curl -fsS -o /dev/null "http://127.0.0.1:$mock_port/_mock/requests" 2>/dev/null; }; do
    [ -z "$mock_pid" ] || fail_if_exited "$mock_pid" "the mock provider" "$mock_log"
    fail_if_exited "$envoy_pid" "Envoy" "$envoy_log"
    if [ $SECONDS -ge $deadline ]; then
        show_log "$envoy_log" "Envoy is not ready after 60 s (http://127.0.0.1:$admin/ready)"
        exit 1
    fi
    sleep 0.2
done

if [ "$mode" = demo ]; then
    cat <<'INFO'

The AI gateway demo is running: Envoy with the filter on http://127.0.0.1:10000, a mock provider
behind it. Logs: .run/envoy.log and .run/mock.log. Press Ctrl-C to stop.

Demo keys:  sk-demo-alpha  (every model, 60 requests/minute)
            sk-demo-beta   (claude-* models only)
Models:     gpt-4o-mini (OpenAI API), claude-haiku (Anthropic API), smart (90% gpt-4o, 10% claude-sonnet-4-0)
            Either SDK reaches every model: a request in the other API is translated both ways.
            resilient: its primary provider always answers 503; Envoy retries on the fallbacks
            (the access log in .run/envoy.log says which provider answered, after how many attempts).

Try it:

  curl -s http://127.0.0.1:10000/v1/chat/completions \
    -H 'Authorization: Bearer sk-demo-alpha' -H 'content-type: application/json' \
    -d '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]}'

  curl -s http://127.0.0.1:10000/v1/messages \
    -H 'x-api-key: sk-demo-beta' -H 'anthropic-version: 2023-06-01' -H 'content-type: application/json' \
    -d '{"model": "claude-haiku", "max_tokens": 100, "messages": [{"role": "user", "content": "Hello"}]}'

  curl -s http://127.0.0.1:10000/v1/models -H 'Authorization: Bearer sk-demo-beta'

From Python: run .venv/bin/python (the openai and anthropic SDKs are installed there) and paste

  from openai import OpenAI
  client = OpenAI(base_url="http://127.0.0.1:10000/v1", api_key="sk-demo-alpha")
  print(client.chat.completions.create(model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Hello"}]).choices[0].message.content)

  from anthropic import Anthropic
  client = Anthropic(base_url="http://127.0.0.1:10000", api_key="sk-demo-beta")
  print(client.messages.create(model="claude-haiku", max_tokens=100,
        messages=[{"role": "user", "content": "Hello"}]).content[0].text)

What the mock provider received: curl -s http://127.0.0.1:18080/_mock/requests
Envoy's stats (Prometheus format): curl -s http://127.0.0.1:9901/stats/prometheus | grep '^ai_gateway_'
INFO
else
    if $reuse_mock; then
        mock_note="the demo's mock provider on 127.0.0.1:18080 behind it (requests fail once the
demo stops). Log: $envoy_log."
    else
        mock_note="a mock provider on 127.0.0.1:18080 behind it.
Logs: $envoy_log and $mock_log."
    fi
    cat <<INFO

The live-reload setup is running: Envoy with the filter on http://127.0.0.1:10001 (admin on 9902),
$mock_note Press Ctrl-C to stop.

The filter's configuration is envoy/live-reload/ai_gateway.yaml, which Envoy watches (key
sk-demo-alpha, model gpt-4o-mini).

Try it:

  curl -s http://127.0.0.1:10001/v1/chat/completions \\
    -H 'Authorization: Bearer sk-demo-alpha' -H 'content-type: application/json' \\
    -d '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]}'

Change it without a restart: write the new version beside it and rename it over the old one.

  cp envoy/live-reload/ai_gateway.yaml envoy/live-reload/next.tmp && \${EDITOR:-vi} envoy/live-reload/next.tmp
  mv envoy/live-reload/next.tmp envoy/live-reload/ai_gateway.yaml
  curl -s http://127.0.0.1:9902/stats | grep -E 'ai_gateway.update_(success|rejected)'
INFO
fi

# Runs until Ctrl-C, or until Envoy or the mock provider stops on its own.
wait -n "${pids[@]}" || true
for pid in "${pids[@]}"; do
    kill -0 "$pid" 2>/dev/null && continue
    if [ "$pid" = "$envoy_pid" ]; then show_log "$envoy_log" "Envoy stopped"; else show_log "$mock_log" "the mock provider stopped"; fi
done
exit 1
