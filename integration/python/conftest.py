"""Starts the Rust end-to-end fixture (mock providers + real Envoy with the filter) once per session."""

import json
import os
import pathlib
import socket
import subprocess
import time
import urllib.request

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "target" / "debug" / "gateway-fixture"


def run_fixture(*args):
    if not FIXTURE.exists():
        pytest.fail(f"{FIXTURE} is missing: run ./scripts/test.sh, which builds it")
    process = subprocess.Popen([str(FIXTURE), *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    if not line:
        process.wait(timeout=30)
        pytest.fail("the gateway fixture did not start (see its output above)")
    yield json.loads(line)
    process.stdin.close()
    process.wait(timeout=30)


@pytest.fixture(scope="session")
def gateway():
    yield from run_fixture()


@pytest.fixture(scope="session")
def cached_gateway():
    """The same fixture with a response cache (scope: key)."""
    yield from run_fixture("--cache")


@pytest.fixture(scope="session")
def fallback_gateway():
    """The same fixture with fallback chains whose primaries fail (see Gateway::config_with_fallbacks)."""
    yield from run_fixture("--fallback")


LITELLM = ROOT / ".bench" / "venv" / "bin" / "litellm"
LITELLM_CONFIG = """model_list:
  - model_name: mock-claude
    litellm_params: { model: anthropic/claude-3-5-haiku-latest, api_key: unused, mock_response: "Hello from LiteLLM" }
  - model_name: mock-gpt
    litellm_params: { model: openai/gpt-4o-mini, api_key: unused, mock_response: "Hello from LiteLLM" }
general_settings:
  master_key: sk-litellm-master
"""


@pytest.fixture(scope="session")
def litellm_port(tmp_path_factory):
    """LiteLLM's proxy (installed by scripts/setup.sh into .bench/venv) with mock answers, on a free port."""
    if not LITELLM.exists():
        pytest.fail(f"{LITELLM} is missing: run ./scripts/test.sh, which installs it")
    directory = tmp_path_factory.mktemp("litellm")
    (directory / "config.yaml").write_text(LITELLM_CONFIG)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = open(directory / "litellm.log", "w")
    process = subprocess.Popen([str(LITELLM), "--config", str(directory / "config.yaml"), "--host", "127.0.0.1",
                                "--port", str(port), "--num_workers", "1"], stdout=log, stderr=log,
                               env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"})
    deadline = time.monotonic() + 180
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health/liveliness", timeout=2)
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail("LiteLLM did not start: " + (directory / "litellm.log").read_text()[-3000:])
            time.sleep(0.5)
    yield port
    process.terminate()
    process.wait(timeout=30)
    log.close()


@pytest.fixture(scope="session")
def litellm_gateway(litellm_port):
    """The fixture with models served by LiteLLM: `ll-claude` (its Anthropic API), `ll-gpt` (its OpenAI API)."""
    yield from run_fixture("--litellm", str(litellm_port))


def upstream_requests(gateway, mock):
    """What a mock provider received, oldest first."""
    with urllib.request.urlopen(gateway["mocks"][mock]) as response:
        return json.load(response)

