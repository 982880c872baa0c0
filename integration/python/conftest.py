"""Starts the Rust end-to-end fixture (mock providers + real Envoy with the filter) once per session."""

import json
import pathlib
import subprocess
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


def upstream_requests(gateway, mock):
    """What a mock provider received, oldest first."""
    with urllib.request.urlopen(gateway["mocks"][mock]) as response:
        return json.load(response)

