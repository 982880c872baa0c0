//! Offline checks of what ships for deployment: the Istio manifests (kinds, API versions, and the Envoy fragments
//! they carry, rendered into a bootstrap and validated by the real Envoy; global limits wired to the rate limit
//! service they deploy, configured with what `rls-config` generates), the docker-compose demo and fleet (parses,
//! mounts exist, ports match the Envoy configs they run and each other) and the OCI image's Dockerfile.

use ai_gateway_integration::envoy::{validate, CLUSTER_HEADER};
use ai_gateway_integration::paths::{filter_wasm, repo_root};
use ai_gateway_integration::rls::service_config_of;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

const WASM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
const HTTP_CONNECTION_MANAGER_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const RATE_LIMIT_FILTER: &str = "envoy.filters.http.ratelimit";
/// The standalone Envoy config of global limits, whose rate limit filter the other deployments copy.
const GLOBAL_QUOTA: &str = "envoy/global-quota.yaml";

/// The (apiVersion, kind) pairs the Istio manifests may use.
const KNOWN_KINDS: [(&str, &str); 9] = [
    ("networking.istio.io/v1alpha3", "EnvoyFilter"),
    ("networking.istio.io/v1", "Gateway"),
    ("networking.istio.io/v1", "VirtualService"),
    ("networking.istio.io/v1", "ServiceEntry"),
    ("networking.istio.io/v1", "DestinationRule"),
    ("v1", "Namespace"),
    ("v1", "ConfigMap"),
    ("v1", "Service"),
    ("apps/v1", "Deployment"),
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
        if kind.1 != "Namespace" {
            assert!(document["metadata"]["namespace"].is_string(), "{file}: {name} has no metadata.namespace");
        }
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

/// The EnvoyFilters that add the Wasm filter (an extension config), with the name of their file; the
/// others (global limits) add Envoy's own filters around it.
fn wasm_envoy_filters() -> Vec<(String, Value)> {
    let adds_extension = |f: &Value| {
        f["spec"]["configPatches"].as_array().into_iter().flatten().any(|p| p["applyTo"] == "EXTENSION_CONFIG")
    };
    envoy_filters().into_iter().filter(|(_, envoy_filter)| adds_extension(envoy_filter)).collect()
}

/// Each EnvoyFilter that adds the Wasm filter adds it as an extension config (fail closed, allowed to
/// stop header iteration, a digest-checked OCI module), used by an HTTP filter (or a chain cluster's
/// upstream filter) that waits for it over ADS. Rendered into a bootstrap the way istio-agent hands it
/// to Envoy (the module downloaded to a local file), the real Envoy validates it, which also runs the
/// filter's own configuration checks.
#[test]
fn envoy_filters_carry_a_valid_fail_closed_wasm_filter() {
    let dir = tempfile::tempdir().unwrap();
    let envoy_filters = wasm_envoy_filters();
    assert!(envoy_filters.len() >= 3, "only {} EnvoyFilters add the Wasm filter", envoy_filters.len());
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
/// `docker compose up` runs all of it: the demo and the fleet (no service hides behind a profile).
#[test]
fn compose_parses_mounts_exist_and_ports_match_the_demo_config() {
    let compose_dir = repo_root().join("integration");
    let compose = yaml("integration/docker-compose.yaml");
    let services = compose["services"].as_object().unwrap();
    let names: BTreeSet<&str> = services.keys().map(String::as_str).collect();
    let mut expected = BTreeSet::from(["envoy", "mock", "prometheus", "grafana"]);
    expected.extend(FLEET_SERVICES);
    assert_eq!(names, expected, "compose services outside the demo and the fleet");
    for (name, service) in services {
        assert!(service["profiles"].is_null(), "{name} needs a profile: docker compose up would not start it");
    }
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

// Limits across a fleet.

/// The compose fleet's services: two replicas of `envoy/global-quota.yaml`, the rate limit service
/// and Redis.
const FLEET_SERVICES: [&str; 4] = ["fleet-envoy-1", "fleet-envoy-2", "ratelimit", "redis"];
/// Where the compose fleet's rate limit service reads its configuration (rls-config's output).
const COMPOSE_RLS_CONFIG: &str = "integration/ratelimit/config/ai-gateway.yaml";
/// Its directory, as the compose file (in `integration/`) mounts it.
const COMPOSE_RLS_CONFIG_DIR: &str = "./ratelimit/config";

/// What the other deployments copy from `envoy/global-quota.yaml`: its rate limit filter, the
/// cluster of the rate limit service, the route (its header removals) and the local reply mappers.
struct GlobalQuota {
    filter: Value,
    cluster: Value,
    route: Value,
    local_reply_config: Value,
}

fn global_quota() -> GlobalQuota {
    let config = yaml(GLOBAL_QUOTA);
    let manager = &config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
    let filters = manager["http_filters"].as_array().unwrap();
    let filter = filters.iter().find(|f| f["name"] == RATE_LIMIT_FILTER).expect("its rate limit filter").clone();
    let cluster_name = &filter["typed_config"]["rate_limit_service"]["grpc_service"]["envoy_grpc"]["cluster_name"];
    let clusters = config["static_resources"]["clusters"].as_array().unwrap();
    let cluster = clusters.iter().find(|c| c["name"] == *cluster_name).expect("its rate limit cluster").clone();
    GlobalQuota {
        filter,
        cluster,
        route: manager["route_config"]["virtual_hosts"][0]["routes"][0].clone(),
        local_reply_config: manager["local_reply_config"].clone(),
    }
}

/// The port of an `address:port`.
fn port_of(address: &str) -> u64 {
    address.rsplit(':').next().and_then(|port| port.parse().ok()).unwrap_or_else(|| panic!("no port in {address:?}"))
}

/// An image reference pinned to a version or digest: a tag that is not `latest` or `master`.
fn assert_pinned(owner: &str, image: &str) {
    let tag = image.rsplit('/').next().and_then(|last| last.split_once(':')).map(|(_, tag)| tag);
    let pinned = image.contains("@sha256:") || tag.is_some_and(|tag| !["latest", "master", ""].contains(&tag));
    assert!(pinned, "{owner}: the image {image:?} is not pinned");
}

/// Proto merge, as Istio's MERGE patches do: messages field by field, repeated fields appended,
/// anything else replaced.
fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                merge(target.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
        (Value::Array(target), Value::Array(patch)) => target.extend(patch.iter().cloned()),
        (target, patch) => *target = patch.clone(),
    }
}

/// The Istio pieces of global limits: the EnvoyFilter adding the rate limit filter, the Wasm
/// EnvoyFilter whose filter it follows (and its file), and every document of the rate limit
/// filter's file.
struct IstioGlobalQuota {
    file: String,
    envoy_filter: Value,
    wasm_file: String,
    wasm_envoy_filter: Value,
    documents: Vec<Value>,
}

impl IstioGlobalQuota {
    fn find() -> IstioGlobalQuota {
        let adds_rate_limit_filter = |f: &Value| {
            f["spec"]["configPatches"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| p["applyTo"] == "HTTP_FILTER" && p["patch"]["value"]["name"] == RATE_LIMIT_FILTER)
        };
        let mut found = envoy_filters().into_iter().filter(|(_, f)| adds_rate_limit_filter(f));
        let (file, envoy_filter) = found.next().expect("no EnvoyFilter in istio/*.yaml adds the rate limit filter");
        assert!(found.next().is_none(), "more than one EnvoyFilter adds the rate limit filter");
        let after = &config_patch(&file, &envoy_filter, "HTTP_FILTER")["match"]["listener"]["filterChain"]["filter"]
            ["subFilter"]["name"];
        let inserts = |f: &Value| {
            f["spec"]["configPatches"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| p["applyTo"] == "HTTP_FILTER" && p["patch"]["value"]["name"] == *after)
        };
        let (wasm_file, wasm_envoy_filter) = wasm_envoy_filters()
            .into_iter()
            .find(|(_, f)| inserts(f))
            .unwrap_or_else(|| panic!("{file}: no EnvoyFilter adds the filter {after} it inserts after"));
        let documents = istio_documents().into_iter().filter(|(f, _)| *f == file).map(|(_, d)| d).collect();
        IstioGlobalQuota { file, envoy_filter, wasm_file, wasm_envoy_filter, documents }
    }

    fn patch(&self, apply_to: &str) -> &Value {
        config_patch(&self.file, &self.envoy_filter, apply_to)
    }

    /// The gateway filter's configuration (the Wasm extension config's JSON).
    fn gateway_config(&self) -> Value {
        let extension = &config_patch(&self.wasm_file, &self.wasm_envoy_filter, "EXTENSION_CONFIG")["patch"]["value"];
        let text = extension["typed_config"]["config"]["configuration"]["value"].as_str().unwrap();
        serde_json::from_str(text).unwrap()
    }

    fn document(&self, kind: &str, name: &str) -> &Value {
        let found = self.documents.iter().find(|d| d["kind"] == kind && d["metadata"]["name"] == name);
        found.unwrap_or_else(|| panic!("{}: no {kind} {name}", self.file))
    }

    /// The Deployment a Service selects, and its container serving `port` (by number or name).
    fn backend(&self, service: &Value, port: &Value) -> (&Value, &Value) {
        let selector = &service["spec"]["selector"];
        let deployment = self
            .documents
            .iter()
            .find(|d| d["kind"] == "Deployment" && d["spec"]["template"]["metadata"]["labels"] == *selector)
            .unwrap_or_else(|| panic!("{}: no Deployment for the Service {}", self.file, service["metadata"]["name"]));
        assert_eq!(deployment["metadata"]["namespace"], service["metadata"]["namespace"], "{}", self.file);
        assert_eq!(deployment["spec"]["selector"]["matchLabels"], *selector, "{}", self.file);
        let containers = deployment["spec"]["template"]["spec"]["containers"].as_array().unwrap();
        let container = containers
            .iter()
            .find(|c| {
                c["ports"].as_array().into_iter().flatten().any(|p| p["containerPort"] == *port || p["name"] == *port)
            })
            .unwrap_or_else(|| {
                panic!("{}: no container of {} serves {port}", self.file, deployment["metadata"]["name"])
            });
        (deployment, container)
    }
}

/// A container's environment variable.
fn env<'a>(container: &'a Value, name: &str) -> &'a str {
    let variable = container["env"].as_array().into_iter().flatten().find(|v| v["name"] == name);
    variable.and_then(|v| v["value"].as_str()).unwrap_or_else(|| panic!("{}: no {name}", container["name"]))
}

/// On Istio, the rate limit filter follows the ai-gateway filter on the same gateways, with the
/// settings of `envoy/global-quota.yaml` (only the service's cluster differs), and the local reply
/// mappers and header removals of that file reach the gateway's connection manager and the AI
/// gateway's virtual host; the filter's configuration is in global mode, in the filter's domain.
#[test]
fn istio_global_limits_follow_the_ai_gateway_filter_with_the_standalone_settings() {
    let istio = IstioGlobalQuota::find();
    let shipped = global_quota();
    let (file, wasm_file) = (&istio.file, &istio.wasm_file);

    // Order: inserted right after the ai-gateway filter (itself before the router), by a patch
    // applied after the one adding that filter (higher priority), on the same gateways.
    let insert = istio.patch("HTTP_FILTER");
    assert_eq!(insert["patch"]["operation"], "INSERT_AFTER", "{file}");
    let wasm_insert = config_patch(wasm_file, &istio.wasm_envoy_filter, "HTTP_FILTER");
    assert_eq!(insert["match"]["context"], wasm_insert["match"]["context"], "{file}");
    assert_eq!(wasm_insert["patch"]["operation"], "INSERT_BEFORE", "{wasm_file}");
    let before = &wasm_insert["match"]["listener"]["filterChain"]["filter"]["subFilter"]["name"];
    assert_eq!(before, "envoy.filters.http.router", "{wasm_file}");
    assert_eq!(istio.envoy_filter["spec"]["workloadSelector"], istio.wasm_envoy_filter["spec"]["workloadSelector"]);
    assert_eq!(istio.envoy_filter["metadata"]["namespace"], istio.wasm_envoy_filter["metadata"]["namespace"]);
    let priority = |f: &Value| f["spec"]["priority"].as_i64().unwrap_or(0);
    assert!(
        priority(&istio.envoy_filter) > priority(&istio.wasm_envoy_filter),
        "{file}: its priority must be above {wasm_file}'s, or the ai-gateway filter may not be there to insert after"
    );

    // The standalone settings, but for the service's cluster.
    let filter = &insert["patch"]["value"];
    let mut expected = shipped.filter.clone();
    expected["typed_config"]["rate_limit_service"]["grpc_service"]["envoy_grpc"]["cluster_name"] =
        filter["typed_config"]["rate_limit_service"]["grpc_service"]["envoy_grpc"]["cluster_name"].clone();
    assert_eq!(*filter, expected, "{file}: the rate limit filter differs from {GLOBAL_QUOTA}'s");
    let merged = &istio.patch("NETWORK_FILTER")["patch"];
    assert_eq!(merged["operation"], "MERGE", "{file}");
    assert_eq!(merged["value"]["typed_config"]["@type"], HTTP_CONNECTION_MANAGER_TYPE, "{file}");
    assert_eq!(merged["value"]["typed_config"]["local_reply_config"], shipped.local_reply_config, "{file}");
    let virtual_host = istio.patch("VIRTUAL_HOST");
    assert_eq!(virtual_host["patch"]["operation"], "MERGE", "{file}");
    assert_eq!(
        virtual_host["patch"]["value"]["response_headers_to_remove"], shipped.route["response_headers_to_remove"],
        "{file}"
    );
    // The virtual host Istio names after the AI gateway's Gateway server (`host:port`).
    let gateway = istio_documents().into_iter().find(|(_, d)| d["kind"] == "Gateway").expect("a Gateway").1;
    let server = &gateway["spec"]["servers"][0];
    let vhost = format!("{}:{}", server["hosts"][0].as_str().unwrap(), server["port"]["number"]);
    assert_eq!(virtual_host["match"]["routeConfiguration"]["vhost"]["name"], vhost, "{file}");

    let config = istio.gateway_config();
    assert_eq!(config["quota"]["mode"], "global", "{wasm_file}: the filter must count its limits globally");
    assert_eq!(config["quota"]["domain"], filter["typed_config"]["domain"], "{wasm_file}: the domains differ");
}

/// The Istio gateway's chain with global limits, rendered into a bootstrap the way Istio applies the
/// patches (the rate limit filter inserted after the ai-gateway filter, the connection manager and the
/// virtual host merged), with a stub of the service's Istio cluster, validates with the real Envoy.
/// (Validation does not look the gRPC cluster up: the next test checks that name.)
#[test]
fn istio_global_limits_validate_with_envoy() {
    let istio = IstioGlobalQuota::find();
    let extension = &config_patch(&istio.wasm_file, &istio.wasm_envoy_filter, "EXTENSION_CONFIG")["patch"]["value"];
    let mut wasm = extension["typed_config"].clone();
    wasm["config"]["vm_config"]["code"] = json!({ "local": { "filename": filter_wasm() } });
    let mut manager = json!({
        "@type": HTTP_CONNECTION_MANAGER_TYPE,
        "stat_prefix": "gateway",
        "route_config": { "virtual_hosts": [ { "name": "all", "domains": ["*"], "routes": [
            { "match": { "prefix": "/" }, "route": { "cluster_header": CLUSTER_HEADER } } ] } ] },
        "http_filters": [
            { "name": extension["name"], "typed_config": wasm },
            { "name": "envoy.filters.http.router", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" } }
        ]
    });
    let insert = istio.patch("HTTP_FILTER");
    let after = &insert["match"]["listener"]["filterChain"]["filter"]["subFilter"]["name"];
    let filters = manager["http_filters"].as_array_mut().unwrap();
    let position = filters.iter().position(|f| f["name"] == *after).expect("the filter to insert after");
    filters.insert(position + 1, insert["patch"]["value"].clone());
    let names: Vec<&str> = filters.iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(names, [extension["name"].as_str().unwrap(), RATE_LIMIT_FILTER, "envoy.filters.http.router"]);
    let mut network_patch = istio.patch("NETWORK_FILTER")["patch"]["value"]["typed_config"].clone();
    network_patch.as_object_mut().unwrap().remove("@type");
    merge(&mut manager, &network_patch);
    merge(&mut manager["route_config"]["virtual_hosts"][0], &istio.patch("VIRTUAL_HOST")["patch"]["value"]);

    let grpc = &insert["patch"]["value"]["typed_config"]["rate_limit_service"]["grpc_service"]["envoy_grpc"];
    let mut cluster = global_quota().cluster;
    cluster["name"] = grpc["cluster_name"].clone();
    cluster["load_assignment"]["cluster_name"] = grpc["cluster_name"].clone();
    let bootstrap = json!({ "static_resources": {
        "listeners": [ {
            "name": "gateway",
            "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } },
            "filter_chains": [ { "filters": [ {
                "name": "envoy.filters.network.http_connection_manager", "typed_config": manager } ] } ]
        } ],
        "clusters": [cluster]
    } });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("global-quota.json");
    std::fs::write(&path, bootstrap.to_string()).unwrap();
    validate(&path).unwrap_or_else(|log| panic!("{}: rendered into a bootstrap, it fails:\n{log}", istio.file));
}

/// The rate limit service the Istio filter asks is the one the file deploys: its Service's gRPC port
/// (named `grpc`, so Istio speaks HTTP/2) is the Istio cluster the filter names, and reaches the
/// service's gRPC port; the service counts in the Redis the file deploys and reads the ConfigMap,
/// which is exactly `rls-config`'s output for the ai-gateway filter's configuration; images are pinned.
#[test]
fn istio_rate_limit_service_is_deployed_and_configured_by_rls_config() {
    let istio = IstioGlobalQuota::find();
    let file = &istio.file;
    let typed_config = &istio.patch("HTTP_FILTER")["patch"]["value"]["typed_config"];
    let cluster = typed_config["rate_limit_service"]["grpc_service"]["envoy_grpc"]["cluster_name"].as_str().unwrap();
    // outbound|PORT||NAME.NAMESPACE.svc.cluster.local
    let parts: Vec<&str> = cluster.split('|').collect();
    let [direction, port, "", host] = parts[..] else { panic!("{file}: {cluster:?} is not an Istio cluster name") };
    assert_eq!(direction, "outbound", "{file}");
    let host: Vec<&str> = host.splitn(3, '.').collect();
    let [name, namespace, "svc.cluster.local"] = host[..] else { panic!("{file}: {cluster:?} names no Service") };
    let service = istio.document("Service", name);
    assert_eq!(service["metadata"]["namespace"], namespace, "{file}: the Service {name}");
    let service_ports = service["spec"]["ports"].as_array().unwrap();
    let port: u64 = port.parse().unwrap_or_else(|_| panic!("{file}: {cluster:?} has no port"));
    let grpc = service_ports.iter().find(|p| p["port"] == port).expect("the Service port of the cluster");
    assert_eq!(grpc["name"], "grpc", "{file}: the Service port {port} must be named grpc, for HTTP/2");
    let (ratelimit, container) = istio.backend(service, &grpc["targetPort"]);
    assert_eq!(ratelimit["metadata"]["name"], name, "{file}");
    let container_port = container["ports"].as_array().unwrap().iter().find(|p| p["name"] == "grpc").unwrap();
    assert_eq!(container_port["containerPort"].to_string(), env(container, "GRPC_PORT"), "{file}: GRPC_PORT");
    assert_eq!(grpc["targetPort"], container_port["containerPort"], "{file}: the Service's targetPort");
    assert_eq!(container["command"], json!(["/bin/ratelimit"]), "{file}");
    assert_eq!(env(container, "REDIS_SOCKET_TYPE"), "tcp", "{file}");
    assert_eq!(env(container, "USE_STATSD"), "false", "{file}");

    // Redis: the Service REDIS_URL names, in the same namespace, reaching Redis's port.
    let redis_url = env(container, "REDIS_URL");
    let (redis_name, redis_port) = redis_url.split_once(':').expect("REDIS_URL is host:port");
    let redis = istio.document("Service", redis_name);
    assert_eq!(redis["metadata"]["namespace"], namespace, "{file}: the Service {redis_name}");
    let redis_service_port =
        redis["spec"]["ports"].as_array().unwrap().iter().find(|p| p["port"] == port_of(redis_url));
    let redis_service_port =
        redis_service_port.unwrap_or_else(|| panic!("{file}: {redis_name} has no port {redis_port}"));
    let (_, redis_container) = istio.backend(redis, &redis_service_port["targetPort"]);
    let args = strings(&redis_container["args"]);
    let listens = args.windows(2).find(|pair| pair[0] == "--port").map(|pair| pair[1]).unwrap_or("6379");
    assert_eq!(redis_service_port["targetPort"].to_string(), listens, "{file}: Redis listens on {listens}");

    // The configuration: the ConfigMap mounted where the service reads (RUNTIME_ROOT/RUNTIME_SUBDIRECTORY/config),
    // with rls-config's output for the configuration of the filter the rate limit filter follows.
    let config_dir = format!("{}/{}/config", env(container, "RUNTIME_ROOT"), env(container, "RUNTIME_SUBDIRECTORY"));
    let pod = &ratelimit["spec"]["template"]["spec"];
    let mount = container["volumeMounts"].as_array().unwrap().iter().find(|m| m["mountPath"] == config_dir.as_str());
    let mount = mount.unwrap_or_else(|| panic!("{file}: nothing mounted at {config_dir}"));
    let volume = pod["volumes"].as_array().unwrap().iter().find(|v| v["name"] == mount["name"]).unwrap();
    let config_map = istio.document("ConfigMap", volume["configMap"]["name"].as_str().unwrap());
    assert_eq!(config_map["metadata"]["namespace"], namespace, "{file}: the ConfigMap");
    let data = config_map["data"].as_object().unwrap();
    assert_eq!(data.len(), 1, "{file}: the ConfigMap holds one file");
    let (key, text) = data.iter().next().unwrap();
    assert!(key.ends_with(".yaml"), "{file}: {key}");
    let (generated, global) = service_config_of(&read(&format!("istio/{}", istio.wasm_file)), None).unwrap();
    assert!(global, "{}: the filter's quota mode is not global", istio.wasm_file);
    assert_eq!(
        text.as_str().unwrap(),
        generated,
        "{file}: the ConfigMap is not rls-config's output for {}; regenerate it:\n  \
         cargo run -p ai-gateway-integration --bin rls-config -- istio/{}",
        istio.wasm_file,
        istio.wasm_file
    );
    let service_domain = serde_yaml::from_str::<Value>(text.as_str().unwrap()).unwrap()["domain"].clone();
    assert_eq!(service_domain, typed_config["domain"], "{file}: the service's domain is not the filter's");

    for deployment in istio.documents.iter().filter(|d| d["kind"] == "Deployment") {
        for container in deployment["spec"]["template"]["spec"]["containers"].as_array().unwrap() {
            assert_pinned(file, container["image"].as_str().unwrap_or(""));
        }
    }
    assert_eq!(container["image"], "docker.io/envoyproxy/ratelimit:ff287602", "{file}");
    assert_eq!(redis_container["image"], "docker.io/library/redis:7.4.2-alpine", "{file}");
}

/// The compose fleet's rate limit service configuration is `rls-config`'s output for
/// `envoy/global-quota.yaml`, as it is now: it cannot drift from the limits the replicas run with.
#[test]
fn compose_rate_limit_config_is_what_rls_config_generates() {
    let (generated, global) = service_config_of(&read(GLOBAL_QUOTA), None).unwrap();
    assert!(global, "{GLOBAL_QUOTA}: the filter's quota mode is not global");
    assert_eq!(
        read(COMPOSE_RLS_CONFIG),
        generated,
        "{COMPOSE_RLS_CONFIG} is not rls-config's output for {GLOBAL_QUOTA}; regenerate it:\n  \
         cargo run -p ai-gateway-integration --bin rls-config -- {GLOBAL_QUOTA} > {COMPOSE_RLS_CONFIG}"
    );
}

/// Splits a shell command into words, with single quotes (all the compose commands use).
fn shell_words(script: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut quoted = false;
    for c in script.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                word.get_or_insert_with(String::new);
            }
            c if c.is_whitespace() && !quoted => words.extend(word.take()),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    assert!(!quoted, "unbalanced quotes in {script:?}");
    words.extend(word);
    words
}

/// What a fleet replica runs: the Envoy config (after the `sed` rewrite of its `sh -c` command, if
/// any) and Envoy's arguments.
fn replica(name: &str, service: &Value) -> (String, Vec<String>) {
    let command: Vec<String> = strings(&service["command"]).into_iter().map(str::to_owned).collect();
    let (config, arguments) = match command.first().map(String::as_str) {
        Some("envoy") => {
            let file = command.windows(2).find(|pair| pair[0] == "-c").map(|pair| pair[1].clone()).unwrap();
            (read(&file), command)
        }
        Some("sh") => {
            assert_eq!(command.get(1).map(String::as_str), Some("-c"), "{name}");
            let (sed, envoy) =
                command[2].split_once(" && exec ").unwrap_or_else(|| panic!("{name}: not `sed ... && exec envoy ...`"));
            let sed = shell_words(sed);
            let arguments = shell_words(envoy);
            let [program, expressions @ .., source, redirect, target] = &sed[..] else { panic!("{name}: {sed:?}") };
            assert_eq!((program.as_str(), redirect.as_str()), ("sed", ">"), "{name}");
            let rewritten = arguments.windows(2).find(|pair| pair[0] == "-c").map(|pair| &pair[1]);
            assert_eq!(rewritten, Some(target), "{name}: Envoy does not run the rewritten file");
            let mut config = read(source);
            for pair in expressions.chunks(2) {
                let ["-e", expression] = [pair[0].as_str(), pair[1].as_str()] else { panic!("{name}: {pair:?}") };
                let parts: Vec<&str> = expression.split('/').collect();
                let ["s", from, to, ""] = parts[..] else { panic!("{name}: {expression:?} is not s/FROM/TO/") };
                assert!(!from.contains(['.', '*', '[', '^', '$', '\\']), "{name}: {from:?} is a pattern, not text");
                assert_eq!(config.matches(from).count(), 1, "{name}: {from:?} must occur once in {source}");
                config = config.replace(from, to);
            }
            (config, arguments)
        }
        _ => panic!("{name}: runs neither envoy nor sh -c"),
    };
    assert_eq!(arguments.first().map(String::as_str), Some("envoy"), "{name}");
    (config, arguments)
}

/// The compose fleet: two replicas of `envoy/global-quota.yaml` on their own ports (the second one's
/// rewritten config validates with the real Envoy), the rate limit service on the config's
/// `rate_limit_service` address counting in the Redis it names, reading rls-config's output; every
/// host port of the demo and the fleet distinct; every image pinned.
#[test]
fn compose_fleet_replicas_share_one_rate_limit_service() {
    let compose = yaml("integration/docker-compose.yaml");
    let services = compose["services"].as_object().unwrap();
    let mut ports: BTreeMap<u64, String> = BTreeMap::new();
    let mut claim = |port: u64, owner: String| {
        if let Some(other) = ports.insert(port, owner.clone()) {
            panic!("port {port} is used by both {other} and {owner}");
        }
    };
    let socket_port = |address: &Value| address["socket_address"]["port_value"].as_u64().unwrap();

    // The demo's ports.
    let demo = yaml("envoy/demo.yaml");
    claim(socket_port(&demo["static_resources"]["listeners"][0]["address"]), "envoy (listener)".into());
    claim(socket_port(&demo["admin"]["address"]), "envoy (admin)".into());
    let mock = services["mock"]["command"][0].as_str().unwrap();
    claim(port_of(mock), "mock".into());
    let prometheus = strings(&services["prometheus"]["command"]);
    let listen = prometheus.iter().find_map(|arg| arg.strip_prefix("--web.listen-address=")).unwrap();
    claim(port_of(listen), "prometheus".into());
    claim(
        services["grafana"]["environment"]["GF_SERVER_HTTP_PORT"].as_str().unwrap().parse().unwrap(),
        "grafana".into(),
    );

    // The replicas.
    let shipped = global_quota();
    let dir = tempfile::tempdir().unwrap();
    let replicas: Vec<(&str, &Value)> =
        services.iter().filter(|(name, _)| name.starts_with("fleet-envoy-")).map(|(n, s)| (n.as_str(), s)).collect();
    assert_eq!(replicas.len(), 2, "the fleet runs two gateway replicas");
    for (name, service) in &replicas {
        let image = service["image"].as_str().unwrap_or("");
        assert!(image.starts_with("envoyproxy/envoy:v1.40."), "{name} is {image:?}, not Envoy 1.40");
        assert_eq!(service["network_mode"], "host", "{name}");
        assert_eq!(service["working_dir"], "/repo", "{name}");
        assert!(strings(&service["volumes"]).contains(&"..:/repo:ro"), "{name} does not mount the repository");
        let (text, arguments) = replica(name, service);
        let arguments = arguments.join(" ");
        assert!(arguments.contains(" --concurrency 2"), "{name}: {arguments}");
        assert!(
            arguments.contains(" --disable-hot-restart"),
            "{name}: shares the host's network namespace: {arguments}"
        );
        let config: Value = serde_yaml::from_str(&text).unwrap();
        claim(socket_port(&config["static_resources"]["listeners"][0]["address"]), format!("{name} (listener)"));
        claim(socket_port(&config["admin"]["address"]), format!("{name} (admin)"));
        // The same gateway apart from its ports: the filter, the rate limit filter and service, the mock.
        let mut expected = yaml(GLOBAL_QUOTA);
        expected["static_resources"]["listeners"][0]["address"] =
            config["static_resources"]["listeners"][0]["address"].clone();
        expected["admin"] = config["admin"].clone();
        assert_eq!(config, expected, "{name} runs more than {GLOBAL_QUOTA} on other ports");
        let upstream =
            config["static_resources"]["clusters"].as_array().unwrap().iter().find(|c| c["name"] == "mock_openai");
        let upstream = &upstream.expect("the mock cluster")["load_assignment"]["endpoints"][0]["lb_endpoints"][0];
        assert_eq!(socket_port(&upstream["endpoint"]["address"]), port_of(mock), "{name}: the mock is elsewhere");
        if strings(&service["command"]).first() == Some(&"sh") {
            let path = dir.path().join(format!("{name}.yaml"));
            std::fs::write(&path, &text).unwrap();
            validate(&path).unwrap_or_else(|log| panic!("{name}: its rewritten config fails:\n{log}"));
        }
    }

    // The rate limit service, where the replicas' rate_limit_service cluster points.
    let ratelimit = &services["ratelimit"];
    let environment = &ratelimit["environment"];
    let variable = |name: &str| environment[name].as_str().unwrap_or_else(|| panic!("ratelimit: no {name}"));
    let endpoint = &shipped.cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"];
    assert_eq!(variable("GRPC_HOST"), endpoint["socket_address"]["address"], "ratelimit: GRPC_HOST");
    assert_eq!(variable("GRPC_PORT"), endpoint["socket_address"]["port_value"].to_string(), "ratelimit: GRPC_PORT");
    for (name, port) in [("GRPC_PORT", "gRPC"), ("PORT", "HTTP"), ("DEBUG_PORT", "debug")] {
        claim(variable(name).parse().unwrap(), format!("ratelimit ({port})"));
    }
    assert_eq!(ratelimit["command"], json!(["/bin/ratelimit"]));
    assert_eq!(variable("REDIS_SOCKET_TYPE"), "tcp");
    let config_dir = format!("{}/{}/config", variable("RUNTIME_ROOT"), variable("RUNTIME_SUBDIRECTORY"));
    let mounted = format!("{COMPOSE_RLS_CONFIG_DIR}:{config_dir}:ro");
    assert_eq!(strings(&ratelimit["volumes"]), [mounted.as_str()], "ratelimit must read {COMPOSE_RLS_CONFIG}");
    let in_compose_dir = format!("integration/{}/", COMPOSE_RLS_CONFIG_DIR.trim_start_matches("./"));
    assert!(COMPOSE_RLS_CONFIG.starts_with(&in_compose_dir), "{COMPOSE_RLS_CONFIG} is not in {in_compose_dir}");
    let service_config: Value = serde_yaml::from_str(&read(COMPOSE_RLS_CONFIG)).unwrap();
    assert_eq!(service_config["domain"], shipped.filter["typed_config"]["domain"], "{COMPOSE_RLS_CONFIG}: the domain");

    // Redis, where REDIS_URL points.
    let redis = strings(&services["redis"]["command"]);
    let option = |name: &str| redis.windows(2).find(|pair| pair[0] == name).map(|pair| pair[1]);
    assert_eq!(option("--bind"), Some("127.0.0.1"), "redis");
    let redis_port = option("--port").unwrap_or("6379");
    assert_eq!(variable("REDIS_URL"), format!("127.0.0.1:{redis_port}"), "ratelimit: REDIS_URL");
    claim(redis_port.parse().unwrap(), "redis".into());

    for (name, service) in services {
        if let Some(image) = service["image"].as_str() {
            assert_pinned(name, image);
        }
    }
    assert_eq!(services["ratelimit"]["image"], "envoyproxy/ratelimit:ff287602");
    assert_eq!(services["redis"]["image"], "redis:7.4.2-alpine");
}
