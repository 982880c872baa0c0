//! Offline checks of what ships for deployment: the Istio manifests (kinds, API versions, and the Envoy fragments
//! they carry, rendered into a bootstrap and validated by the real Envoy), the docker-compose demo (parses, mounts
//! exist, ports match the Envoy config it runs) and the OCI image's Dockerfile.

use ai_gateway_integration::envoy::{validate, CLUSTER_HEADER};
use ai_gateway_integration::paths::{filter_wasm, repo_root};
use serde_json::{json, Value};
use std::collections::BTreeSet;

const WASM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
const HTTP_CONNECTION_MANAGER_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";

/// The (apiVersion, kind) pairs the Istio manifests may use.
const KNOWN_KINDS: [(&str, &str); 5] = [
    ("networking.istio.io/v1alpha3", "EnvoyFilter"),
    ("networking.istio.io/v1", "Gateway"),
    ("networking.istio.io/v1", "VirtualService"),
    ("networking.istio.io/v1", "ServiceEntry"),
    ("networking.istio.io/v1", "DestinationRule"),
];

/// A file of the repository, as text.
fn read(relative: &str) -> String {
    let path = repo_root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A single-document YAML file of the repository, as JSON.
fn yaml(relative: &str) -> Value {
    serde_yaml::from_str(&read(relative)).unwrap_or_else(|e| panic!("{relative} does not parse: {e}"))
}

/// Every non-empty document of a multi-document YAML text, as JSON.
fn yaml_documents(file: &str, text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|document| {
            // `Value::deserialize(document)` needs serde's `Deserialize` trait in scope, and serde is
            // not a dependency of this crate; this generic function calls it for us. Its wrapper only
            // changes how enums are read, so a `Value` comes out exactly as the document has it.
            serde_yaml::with::singleton_map::deserialize::<Value, _>(document)
                .unwrap_or_else(|e| panic!("{file} does not parse: {e}"))
        })
        .filter(|document| !document.is_null())
        .collect()
}

/// Every document of `istio/*.yaml`, with the name of its file, in file name order.
fn istio_documents() -> Vec<(String, Value)> {
    let mut files: Vec<String> = std::fs::read_dir(repo_root().join("istio"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".yaml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .flat_map(|file| {
            let text = read(&format!("istio/{file}"));
            yaml_documents(&file, &text).into_iter().map(move |document| (file.clone(), document))
        })
        .collect()
}

/// The EnvoyFilter documents of `istio/`, with the name of their file.
fn envoy_filters() -> Vec<(String, Value)> {
    istio_documents().into_iter().filter(|(_, document)| document["kind"] == "EnvoyFilter").collect()
}

/// The first of an EnvoyFilter's `configPatches` that applies to `apply_to`.
fn config_patch<'a>(file: &str, envoy_filter: &'a Value, apply_to: &str) -> &'a Value {
    let patches = envoy_filter["spec"]["configPatches"].as_array();
    let patch = patches.and_then(|patches| patches.iter().find(|patch| patch["applyTo"] == apply_to));
    patch.unwrap_or_else(|| panic!("{file}: no {apply_to} config patch"))
}

/// A YAML list of strings (a compose `command`, `volumes`, ...); empty when absent.
fn strings(value: &Value) -> Vec<&str> {
    value.as_array().map(|list| list.iter().filter_map(Value::as_str).collect()).unwrap_or_default()
}

#[test]
fn istio_manifests_parse_with_known_kinds_and_api_versions() {
    let documents = istio_documents();
    assert!(documents.len() >= 8, "only {} documents in istio/*.yaml", documents.len());
    for (file, document) in &documents {
        let kind = (document["apiVersion"].as_str().unwrap_or(""), document["kind"].as_str().unwrap_or(""));
        assert!(KNOWN_KINDS.contains(&kind), "{file}: unknown apiVersion and kind {kind:?}");
        let name = document["metadata"]["name"].as_str().unwrap_or("");
        assert!(!name.is_empty(), "{file}: a {} without metadata.name", kind.1);
    }
}

/// The filters that take their configuration from an extension config over ADS: the HTTP filters
/// patched into listeners, and the upstream HTTP filters of clusters an EnvoyFilter adds (fallback
/// chains). `(name, operation of the patch, config_discovery)`.
fn discovered_filters(envoy_filter: &Value) -> Vec<(String, Value, Value)> {
    let mut found = Vec::new();
    for patch in envoy_filter["spec"]["configPatches"].as_array().into_iter().flatten() {
        let value = &patch["patch"]["value"];
        if patch["applyTo"] == "HTTP_FILTER" {
            found.push((
                value["name"].as_str().unwrap_or("").to_owned(),
                patch["patch"]["operation"].clone(),
                value["config_discovery"].clone(),
            ));
        }
        let options =
            &value["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"];
        for filter in options["http_filters"].as_array().into_iter().flatten() {
            if filter.get("config_discovery").is_some() {
                found.push((
                    filter["name"].as_str().unwrap_or("").to_owned(),
                    json!("INSERT_BEFORE"),
                    filter["config_discovery"].clone(),
                ));
            }
        }
    }
    found
}

/// Each EnvoyFilter adds the Wasm filter as an extension config (fail closed, allowed to stop header
/// iteration, a digest-checked OCI module), used by an HTTP filter (or a chain cluster's upstream
/// filter) that waits for it over ADS. Rendered into a bootstrap the way istio-agent hands it to Envoy
/// (the module downloaded to a local file), the real Envoy validates it, which also runs the filter's
/// own configuration checks.
#[test]
fn envoy_filters_carry_a_valid_fail_closed_wasm_filter() {
    let dir = tempfile::tempdir().unwrap();
    let envoy_filters = envoy_filters();
    assert!(!envoy_filters.is_empty(), "no EnvoyFilter in istio/*.yaml");
    for (file, envoy_filter) in &envoy_filters {
        let extension = &config_patch(file, envoy_filter, "EXTENSION_CONFIG")["patch"]["value"];
        let users = discovered_filters(envoy_filter);
        let (_, operation, discovery) = users
            .iter()
            .find(|(name, _, _)| extension["name"] == name.as_str())
            .unwrap_or_else(|| panic!("{file}: no filter takes its configuration from {}", extension["name"]));
        // The filter takes its configuration from the extension config, over ADS, and waits for it.
        assert_eq!(operation, "INSERT_BEFORE", "{file}");
        assert_eq!(discovery["type_urls"], json!([WASM_TYPE]), "{file}");
        assert_eq!(discovery["config_source"], json!({ "ads": {}, "initial_fetch_timeout": "0s" }), "{file}");
        let wasm = &extension["typed_config"];
        assert_eq!(wasm["@type"], WASM_TYPE, "{file}");
        assert_eq!(wasm["config"]["allow_on_headers_stop_iteration"], true, "{file}");
        assert_eq!(wasm["config"]["failure_policy"], "FAIL_CLOSED", "{file}");
        let remote = &wasm["config"]["vm_config"]["code"]["remote"];
        let uri = remote["http_uri"]["uri"].as_str().unwrap_or("");
        assert!(uri.starts_with("oci://"), "{file}: the module comes from {uri:?}, not an oci:// image");
        assert!(remote.get("sha256").is_some(), "{file}: the remote module has no sha256");

        let mut local = wasm.clone();
        local["config"]["vm_config"]["code"] = json!({ "local": { "filename": filter_wasm() } });
        let bootstrap = json!({ "static_resources": { "listeners": [ {
            "name": "gateway",
            "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } },
            "filter_chains": [ { "filters": [ {
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                    "@type": HTTP_CONNECTION_MANAGER_TYPE,
                    "stat_prefix": "gateway",
                    "route_config": { "virtual_hosts": [ { "name": "all", "domains": ["*"], "routes": [
                        { "match": { "prefix": "/" }, "route": { "cluster_header": CLUSTER_HEADER } } ] } ] },
                    "http_filters": [
                        { "name": extension["name"], "typed_config": local },
                        { "name": "envoy.filters.http.router", "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" } }
                    ]
                }
            } ] } ]
        } ] } });
        let path = dir.path().join(file).with_extension("json");
        std::fs::write(&path, bootstrap.to_string()).unwrap();
        validate(&path).unwrap_or_else(|log| panic!("{file}: its filter, rendered into a bootstrap, fails:\n{log}"));
    }
}

/// Every cluster an EnvoyFilter's upstreams name has a VirtualService route matching it in the cluster
/// header, and no upstream sets an authority (in Istio the VirtualService rewrites it, after routing).
#[test]
fn routes_match_every_cluster_the_filter_can_choose() {
    let mut clusters = BTreeSet::new();
    for (file, envoy_filter) in envoy_filters() {
        for patch in envoy_filter["spec"]["configPatches"].as_array().unwrap() {
            if patch["applyTo"] != "EXTENSION_CONFIG" {
                continue;
            }
            let text = patch["patch"]["value"]["typed_config"]["config"]["configuration"]["value"].as_str();
            let config: Value = serde_json::from_str(text.unwrap_or_else(|| panic!("{file}: no filter configuration")))
                .unwrap_or_else(|e| panic!("{file}: the filter configuration is not JSON: {e}"));
            if config["role"] == "upstream" {
                continue; // An attempt is routed already: its upstreams set their authority.
            }
            for (name, upstream) in config["upstreams"].as_object().unwrap() {
                let cluster = upstream["cluster"].as_str().unwrap_or_else(|| panic!("{file}: {name} has no cluster"));
                clusters.insert(cluster.to_owned());
                assert!(
                    upstream.get("authority").is_none(),
                    "{file}: upstream {name} sets an authority; in Istio the VirtualService rewrites the authority, \
                     after routing"
                );
            }
        }
    }
    let mut routed = BTreeSet::new();
    for (file, document) in istio_documents() {
        if document["kind"] != "VirtualService" {
            continue;
        }
        for route in document["spec"]["http"].as_array().unwrap() {
            for matched in route["match"].as_array().into_iter().flatten() {
                let cluster = matched["headers"][CLUSTER_HEADER]["exact"].as_str();
                routed.insert(cluster.unwrap_or_else(|| panic!("{file}: a match without {CLUSTER_HEADER}")).to_owned());
            }
        }
    }
    assert!(!clusters.is_empty(), "no EnvoyFilter in istio/*.yaml names a cluster");
    let unrouted: Vec<_> = clusters.difference(&routed).collect();
    assert!(unrouted.is_empty(), "clusters without a route: {unrouted:?}");
}

/// The compose demo parses, everything it mounts or builds exists, it runs the demo's own Envoy
/// config, and its mock, Prometheus and Grafana addresses are the ones that config and each other use.
#[test]
fn compose_parses_mounts_exist_and_ports_match_the_demo_config() {
    let compose_dir = repo_root().join("integration");
    let compose = yaml("integration/docker-compose.yaml");
    let services = compose["services"].as_object().unwrap();
    let names: BTreeSet<&str> = services.keys().map(String::as_str).collect();
    assert_eq!(names, BTreeSet::from(["envoy", "mock", "prometheus", "grafana"]));
    for (name, service) in services {
        for volume in strings(&service["volumes"]) {
            let source = volume.split(':').next().unwrap();
            assert!(compose_dir.join(source).exists(), "{name} mounts {source}, which does not exist");
        }
        if let Some(build) = service.get("build") {
            let dockerfile =
                compose_dir.join(build["context"].as_str().unwrap()).join(build["dockerfile"].as_str().unwrap());
            assert!(dockerfile.exists(), "{name} builds from {}, which does not exist", dockerfile.display());
        }
    }
    let envoy = &services["envoy"];
    let image = envoy["image"].as_str().unwrap_or("");
    assert!(image.starts_with("envoyproxy/envoy:v1.40."), "the compose Envoy is {image:?}, not 1.40");
    assert!(strings(&envoy["command"]).contains(&"envoy/demo.yaml"), "compose must run the demo's own Envoy config");

    let demo = yaml("envoy/demo.yaml");
    let port = |address: &Value| address["socket_address"]["port_value"].as_u64().expect("envoy/demo.yaml: a port");
    let admin_port = port(&demo["admin"]["address"]);
    let mut upstream_ports = BTreeSet::new();
    for cluster in demo["static_resources"]["clusters"].as_array().unwrap() {
        // (An aggregate cluster has no endpoints of its own.)
        for group in cluster["load_assignment"]["endpoints"].as_array().into_iter().flatten() {
            for endpoint in group["lb_endpoints"].as_array().unwrap() {
                upstream_ports.insert(port(&endpoint["endpoint"]["address"]));
            }
        }
    }
    let upstream_ports: Vec<_> = upstream_ports.into_iter().collect();
    assert_eq!(upstream_ports.len(), 1, "envoy/demo.yaml has upstreams on ports {upstream_ports:?}, not just the mock");
    assert_eq!(
        services["mock"]["command"][0],
        format!("127.0.0.1:{}", upstream_ports[0]),
        "the compose mock is not where the demo sends requests"
    );

    let prometheus = yaml("integration/prometheus.yml");
    let scrape = &prometheus["scrape_configs"][0];
    assert_eq!(scrape["static_configs"][0]["targets"], json!([format!("127.0.0.1:{admin_port}")]), "prometheus.yml");
    assert_eq!(scrape["metrics_path"], "/stats/prometheus", "prometheus.yml");
    let datasource = &yaml("integration/grafana/provisioning/datasources/prometheus.yaml")["datasources"][0];
    assert_eq!(datasource["uid"], "prometheus", "the Grafana datasource");
    let listen = "--web.listen-address=127.0.0.1:9090";
    assert!(strings(&services["prometheus"]["command"]).contains(&listen), "compose Prometheus lacks {listen}");
    assert_eq!(datasource["url"], "http://127.0.0.1:9090", "the Grafana datasource");
}

/// The Dockerfile builds an image from scratch holding the built module as `plugin.wasm`, and its
/// .dockerignore lets that module into the build context.
#[test]
fn the_oci_image_holds_the_built_module_as_plugin_wasm() {
    let dockerfile = read("Dockerfile");
    let instructions: Vec<&str> =
        dockerfile.lines().filter(|line| !line.is_empty() && !line.starts_with('#')).collect();
    assert_eq!(instructions.first(), Some(&"FROM scratch"), "Dockerfile");
    let copy: Vec<&str> = instructions.get(1).map(|line| line.split_whitespace().skip(1).collect()).unwrap_or_default();
    let [source, target] = copy[..] else { panic!("Dockerfile: the second instruction is not `COPY SOURCE TARGET`") };
    assert!(repo_root().join(source).exists(), "Dockerfile copies {source}, which does not exist");
    assert_eq!(target, "./plugin.wasm", "Dockerfile");
    let ignore = read("Dockerfile.dockerignore");
    assert!(ignore.contains(&format!("!{source}")), "Dockerfile.dockerignore does not let {source} into the context");
}

/// Every fallback chain of the Istio listener filter is wired: its aggregate cluster is added and
/// lists clusters (also added) whose endpoints name the chain's upstreams in order; a VirtualService
/// route matches it in the cluster header and is pointed at the aggregate cluster with the retry
/// priority; the upstream role's configuration holds the same chain.
#[test]
fn istio_fallback_chains_are_wired_end_to_end() {
    let envoy_filters = envoy_filters();
    let patches: Vec<&Value> =
        envoy_filters.iter().flat_map(|(_, f)| f["spec"]["configPatches"].as_array().unwrap().iter()).collect();
    let configs: Vec<Value> = patches
        .iter()
        .filter(|p| p["applyTo"] == "EXTENSION_CONFIG")
        .map(|p| {
            serde_json::from_str(
                p["patch"]["value"]["typed_config"]["config"]["configuration"]["value"].as_str().unwrap(),
            )
            .unwrap()
        })
        .collect();
    let added = |name: &str| {
        patches
            .iter()
            .find(|p| p["applyTo"] == "CLUSTER" && p["patch"]["value"]["name"] == name)
            .map(|p| &p["patch"]["value"])
            .unwrap_or_else(|| panic!("no EnvoyFilter adds the cluster {name}"))
    };
    let routes: Vec<Value> = istio_documents()
        .into_iter()
        .filter(|(_, d)| d["kind"] == "VirtualService")
        .flat_map(|(_, d)| d["spec"]["http"].as_array().cloned().unwrap_or_default())
        .collect();
    let mut chains = 0;
    for listener in configs.iter().filter(|c| c["role"] != "upstream") {
        for (model, route) in listener["models"].as_object().unwrap() {
            let Some(chain) = route["fallback_cluster"].as_str() else { continue };
            chains += 1;
            let upstream_role = configs.iter().find(|c| c["role"] == "upstream").expect("an upstream-role config");
            assert_eq!(upstream_role["models"][model], *route, "{model}: the upstream role has the same chain");
            let members: Vec<String> =
                serde_json::from_value(added(chain)["cluster_type"]["typed_config"]["clusters"].clone()).unwrap();
            let upstreams: Vec<&str> = std::iter::once(route["upstream"].as_str().unwrap())
                .chain(route["fallbacks"].as_array().unwrap().iter().map(|f| f["upstream"].as_str().unwrap()))
                .collect();
            assert_eq!(members.len(), upstreams.len(), "{chain}");
            for (member, upstream) in members.iter().zip(&upstreams) {
                let endpoint = &added(member)["load_assignment"]["endpoints"][0]["lb_endpoints"][0];
                assert_eq!(endpoint["metadata"]["filter_metadata"]["ai_gw"]["provider"], *upstream, "{member}");
            }
            let vs_route = routes
                .iter()
                .find(|r| r["match"][0]["headers"][CLUSTER_HEADER]["exact"] == chain)
                .unwrap_or_else(|| panic!("no VirtualService route for {chain}"));
            let route_patch = patches
                .iter()
                .find(|p| {
                    p["applyTo"] == "HTTP_ROUTE"
                        && p["match"]["routeConfiguration"]["vhost"]["route"]["name"] == vs_route["name"]
                })
                .unwrap_or_else(|| panic!("no HTTP_ROUTE patch for {}", vs_route["name"]));
            assert_eq!(route_patch["patch"]["value"]["route"]["cluster"], chain);
            let priority = &route_patch["patch"]["value"]["route"]["retry_policy"]["retry_priority"]["name"];
            assert_eq!(priority, "envoy.retry_priorities.previous_priorities");
        }
    }
    assert!(chains >= 1, "the Istio manifests show a fallback chain");
}
