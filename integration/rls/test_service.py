"""Checks the test rate limit service (test_rls.py) against a real Redis, with the configuration
`rls-config` generates from a gateway configuration: it must count the way envoyproxy/ratelimit
does before the end-to-end tests may rely on it."""

import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import grpc
import pytest
import yaml
from envoy.extensions.common.ratelimit.v3 import ratelimit_pb2
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc

ROOT = pathlib.Path(__file__).resolve().parents[2]
RLS_CONFIG = ROOT / "target" / "debug" / "rls-config"
GATEWAY_CONFIG = {
    "keys": [{"id": "alpha", "sha256": "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
              "limits": {"requests_per_hour": 10, "tokens_per_hour": 1000}}],
    "upstreams": {"u": {}},
    "models": {"m": {"upstream": "u"}},
}
OK, OVER_LIMIT = rls_pb2.RateLimitResponse.OK, rls_pb2.RateLimitResponse.OVER_LIMIT


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Redis:
    def __init__(self, directory):
        self.port = free_port()
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(directory)], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)


class Service:
    def __init__(self, config_path, redis_port):
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "integration" / "rls" / "test_rls.py"), "--config", str(config_path),
             "--redis-port", str(redis_port)], stdout=subprocess.PIPE, text=True)
        self.port = int(self.process.stdout.readline().split()[1])
        self.stub = rls_pb2_grpc.RateLimitServiceStub(grpc.insecure_channel(f"127.0.0.1:{self.port}"))

    def check(self, *descriptors, domain="ai-gateway"):
        return self.stub.ShouldRateLimit(rls_pb2.RateLimitRequest(domain=domain, descriptors=list(descriptors)))

    def kill(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)


def descriptor(limit, hits=None, key_id="alpha"):
    entry = ratelimit_pb2.RateLimitDescriptor.Entry
    result = ratelimit_pb2.RateLimitDescriptor(entries=[entry(key="key_id", value=key_id), entry(key="limit", value=limit)])
    if hits is not None:
        result.hits_addend.value = hits
    return result


@pytest.fixture
def world():
    if not RLS_CONFIG.exists():
        pytest.fail(f"{RLS_CONFIG} is missing: run ./scripts/test.sh, which builds it")
    directory = pathlib.Path(tempfile.mkdtemp())
    (directory / "gateway.json").write_text(json.dumps(GATEWAY_CONFIG))
    generated = subprocess.run([str(RLS_CONFIG), str(directory / "gateway.json")], check=True, capture_output=True,
                               text=True).stdout
    (directory / "rls.yaml").write_text(generated)
    redis = Redis(directory)
    world = {"redis": redis, "dir": directory, "config": yaml.safe_load(generated)}
    world["service"] = Service(directory / "rls.yaml", redis.port)
    yield world
    # A test may have replaced either: stop what is there now.
    world["service"].kill()
    world["redis"].stop()
    shutil.rmtree(directory, ignore_errors=True)


def test_the_generated_config_holds_every_limit_of_every_key(world):
    config = world["config"]
    assert config["domain"] == "ai-gateway"
    [key] = config["descriptors"]
    assert (key["key"], key["value"]) == ("key_id", "alpha")
    limits = {d["value"]: d["rate_limit"] for d in key["descriptors"]}
    assert limits == {"requests_per_hour": {"unit": "hour", "requests_per_unit": 10},
                      "tokens_per_hour": {"unit": "hour", "requests_per_unit": 1000}}


def test_a_concurrent_burst_admits_exactly_the_limit(world):
    service, results = world["service"], []
    def call():
        results.append(service.check(descriptor("requests_per_hour")).overall_code)
    threads = [threading.Thread(target=call) for _ in range(25)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(OK) == 10 and results.count(OVER_LIMIT) == 15


def test_a_zero_hits_check_spends_nothing_and_a_charge_spends_its_hits(world):
    service = world["service"]
    for _ in range(3):
        response = service.check(descriptor("tokens_per_hour", 0))
        assert (response.overall_code, response.statuses[0].limit_remaining) == (OK, 1000)
    assert service.check(descriptor("tokens_per_hour", 990)).statuses[0].limit_remaining == 10
    assert service.check(descriptor("tokens_per_hour", 0)).overall_code == OK
    assert service.check(descriptor("tokens_per_hour", 20)).overall_code == OVER_LIMIT
    status = service.check(descriptor("tokens_per_hour", 0)).statuses[0]
    assert (status.code, status.limit_remaining, status.current_limit.requests_per_unit) == (OVER_LIMIT, 0, 1000)
    assert 0 < status.duration_until_reset.seconds <= 3600


def test_unknown_descriptors_and_domains_are_not_limited(world):
    service = world["service"]
    assert service.check(descriptor("requests_per_hour", key_id="nobody")).overall_code == OK
    assert service.check(descriptor("requests_per_hour"), domain="other").overall_code == OK


def test_the_counters_live_in_redis_and_survive_the_service(world):
    for _ in range(10):
        assert world["service"].check(descriptor("requests_per_hour")).overall_code == OK
    world["service"].kill()
    world["service"] = Service(world["dir"] / "rls.yaml", world["redis"].port)
    assert world["service"].check(descriptor("requests_per_hour")).overall_code == OVER_LIMIT


def test_without_redis_the_call_fails_for_envoys_failure_mode_to_decide(world):
    world["redis"].stop()
    with pytest.raises(grpc.RpcError) as error:
        world["service"].check(descriptor("requests_per_hour"))
    assert error.value.code() == grpc.StatusCode.UNAVAILABLE
    world["redis"] = Redis(world["dir"])
