"""Offline checks of what ships for deployment: the Istio manifests (kinds, API versions, and the Envoy
fragments they carry, rendered into a bootstrap and validated by the real Envoy), the docker-compose
demo (parses, mounts exist, ports match the Envoy config it runs) and the OCI image's Dockerfile."""

import copy
import json
import pathlib
import subprocess

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
ENVOY = ROOT / ".venv" / "bin" / "envoy"
WASM = ROOT / "target" / "wasm32-wasip1" / "release" / "ai_gateway.wasm"
WASM_TYPE = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"

KNOWN_KINDS = {
    ("networking.istio.io/v1alpha3", "EnvoyFilter"),
    ("networking.istio.io/v1", "Gateway"),
    ("networking.istio.io/v1", "VirtualService"),
    ("networking.istio.io/v1", "ServiceEntry"),
    ("networking.istio.io/v1", "DestinationRule"),
}


def istio_documents():
    for path in sorted((ROOT / "istio").glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                yield path.name, document


def envoy_validate(bootstrap, tmp_path):
    config = tmp_path / "bootstrap.json"
    config.write_text(json.dumps(bootstrap))
    result = subprocess.run([str(ENVOY), "--mode", "validate", "-c", str(config)], capture_output=True, text=True,
                            cwd=ROOT, timeout=120)
    return result.returncode, result.stdout + result.stderr


def test_istio_manifests_parse_with_known_kinds_and_api_versions():
    documents = list(istio_documents())
    assert len(documents) >= 8
    for name, document in documents:
        assert (document["apiVersion"], document["kind"]) in KNOWN_KINDS, name
        assert document["metadata"]["name"], name


def envoy_filters():
    return [(name, d) for name, d in istio_documents() if d["kind"] == "EnvoyFilter"]


@pytest.mark.parametrize("name,envoy_filter", envoy_filters(), ids=lambda v: v if isinstance(v, str) else "")
def test_envoy_filters_carry_a_valid_fail_closed_wasm_filter(name, envoy_filter, tmp_path):
    patches = envoy_filter["spec"]["configPatches"]
    extension = next(p for p in patches if p["applyTo"] == "EXTENSION_CONFIG")["patch"]["value"]
    http_filter = next(p for p in patches if p["applyTo"] == "HTTP_FILTER")["patch"]
    # The HTTP filter takes its configuration from the extension config, over ADS, and waits for it.
    discovery = http_filter["value"]["config_discovery"]
    assert http_filter["operation"] == "INSERT_BEFORE"
    assert http_filter["value"]["name"] == extension["name"]
    assert discovery["type_urls"] == [WASM_TYPE]
    assert discovery["config_source"] == {"ads": {}, "initial_fetch_timeout": "0s"}
    wasm = extension["typed_config"]
    assert wasm["@type"] == WASM_TYPE
    assert wasm["config"]["allow_on_headers_stop_iteration"] is True
    assert wasm["config"]["failure_policy"] == "FAIL_CLOSED"
    remote = wasm["config"]["vm_config"]["code"]["remote"]
    assert remote["http_uri"]["uri"].startswith("oci://") and "sha256" in remote

    # Render the filter into a bootstrap the way istio-agent hands it to Envoy (the module downloaded
    # to a local file) and let the real Envoy validate it, which also runs the filter's own
    # configuration checks.
    local = copy.deepcopy(wasm)
    local["config"]["vm_config"]["code"] = {"local": {"filename": str(WASM)}}
    bootstrap = {
        "static_resources": {
            "listeners": [{
                "name": "gateway",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "gateway",
                        "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
                            {"match": {"prefix": "/"}, "route": {"cluster_header": "x-ai-gateway-cluster"}}]}]},
                        "http_filters": [
                            {"name": extension["name"], "typed_config": local},
                            {"name": "envoy.filters.http.router", "typed_config": {
                                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}},
                        ],
                    },
                }]}],
            }],
        }
    }
    code, output = envoy_validate(bootstrap, tmp_path)
    assert code == 0 and " OK" in output, output


def test_routes_match_every_cluster_the_filter_can_choose():
    clusters = set()
    for _, envoy_filter in envoy_filters():
        for patch in envoy_filter["spec"]["configPatches"]:
            if patch["applyTo"] == "EXTENSION_CONFIG":
                config = json.loads(patch["patch"]["value"]["typed_config"]["config"]["configuration"]["value"])
                clusters |= {upstream["cluster"] for upstream in config["upstreams"].values()}
                assert all("authority" not in u for u in config["upstreams"].values()), \
                    "in Istio the VirtualService rewrites the authority, after routing"
    routed = set()
    for _, document in istio_documents():
        if document["kind"] == "VirtualService":
            for route in document["spec"]["http"]:
                for match in route.get("match", []):
                    routed.add(match["headers"]["x-ai-gateway-cluster"]["exact"])
    assert clusters <= routed, f"clusters without a route: {clusters - routed}"


def test_compose_parses_mounts_exist_and_ports_match_the_demo_config():
    compose_path = ROOT / "integration" / "docker-compose.yaml"
    compose = yaml.safe_load(compose_path.read_text())
    services = compose["services"]
    assert set(services) == {"envoy", "mock", "prometheus", "grafana"}
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert (compose_path.parent / source).exists(), f"{name} mounts {source}, which does not exist"
        if "build" in service:
            context = compose_path.parent / service["build"]["context"]
            assert (context / service["build"]["dockerfile"]).exists(), name
    envoy = services["envoy"]
    assert envoy["image"].startswith("envoyproxy/envoy:v1.40."), envoy["image"]
    assert "envoy/demo.yaml" in envoy["command"], "compose must run the demo's own Envoy config"

    demo = yaml.safe_load((ROOT / "envoy" / "demo.yaml").read_text())
    admin_port = demo["admin"]["address"]["socket_address"]["port_value"]
    upstream_ports = {
        endpoint["endpoint"]["address"]["socket_address"]["port_value"]
        for cluster in demo["static_resources"]["clusters"]
        for group in cluster["load_assignment"]["endpoints"]
        for endpoint in group["lb_endpoints"]
    }
    assert services["mock"]["command"][0] == f"127.0.0.1:{upstream_ports.pop()}" and not upstream_ports
    prometheus = yaml.safe_load((ROOT / "integration" / "prometheus.yml").read_text())
    targets = prometheus["scrape_configs"][0]["static_configs"][0]["targets"]
    assert targets == [f"127.0.0.1:{admin_port}"]
    assert prometheus["scrape_configs"][0]["metrics_path"] == "/stats/prometheus"
    datasource = yaml.safe_load(
        (ROOT / "integration" / "grafana" / "provisioning" / "datasources" / "prometheus.yaml").read_text())
    assert datasource["datasources"][0]["uid"] == "prometheus"
    assert "--web.listen-address=127.0.0.1:9090" in services["prometheus"]["command"]
    assert datasource["datasources"][0]["url"] == "http://127.0.0.1:9090"


def test_the_oci_image_holds_the_built_module_as_plugin_wasm():
    dockerfile = (ROOT / "Dockerfile").read_text().splitlines()
    instructions = [line for line in dockerfile if line and not line.startswith("#")]
    assert instructions[0] == "FROM scratch"
    source, target = instructions[1].split()[1:]
    assert (ROOT / source).exists() and target == "./plugin.wasm"
    ignore = (ROOT / "Dockerfile.dockerignore").read_text()
    assert f"!{source}" in ignore
