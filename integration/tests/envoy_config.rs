//! The shipped Envoy configs validate and serve; Envoy refuses a filter config with a typo.

mod common;

use ai_gateway_integration::envoy::{validate, Envoy, EnvoySetup};
use ai_gateway_integration::mock_upstream::MockUpstream;
use ai_gateway_integration::paths::repo_root;
use common::*;
use serde_json::{json, Value};

/// Every Envoy config in `envoy/` validates with Envoy 1.40, which also runs the filter's own
/// configuration checks. Configs that load the module from where an operator installs it
/// (`/etc/envoy/ai_gateway.wasm`) are checked with the built module in its place.
#[test]
fn every_shipped_envoy_config_validates() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = ai_gateway_integration::paths::filter_wasm();
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(repo_root().join("envoy")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let localized = dir.path().join(path.file_name().unwrap());
            std::fs::write(&localized, text.replace("/etc/envoy/ai_gateway.wasm", &wasm.display().to_string()))
                .unwrap();
            validate(&localized).unwrap_or_else(|log| panic!("{} does not validate:\n{log}", path.display()));
            checked.push(path.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    checked.sort();
    assert_eq!(checked, ["demo.yaml", "global-quota.yaml", "live-reload.yaml", "production.yaml"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_refuses_a_config_with_a_typo_and_names_the_field() {
    let cases = [
        ("/keys/0/limts", json!({ "requests_per_minute": 5 }), "keys[0].limts"),
        ("/models/gpt-4o/upstream", json!("nowhere"), "models.gpt-4o.upstream"),
        ("/keys/1/sha256", json!("not-a-digest"), "keys[1].sha256[0]"),
    ];
    for (pointer, value, field) in cases {
        let mut config = filter_config();
        let (parent, last) = pointer.rsplit_once('/').unwrap();
        config.pointer_mut(parent).unwrap().as_object_mut().unwrap().insert(last.to_owned(), value);
        let setup = EnvoySetup::new(config, &[("openai_a", 9), ("openai_b", 9), ("anthropic", 9)]);
        let error = match tokio::task::block_in_place(|| Envoy::start(&setup)) {
            Ok(_) => panic!("Envoy started with a bad config at {pointer}"),
            Err(error) => error,
        };
        assert!(error.contains("Envoy exited"), "{error}");
        assert!(error.contains(&format!("invalid ai-gateway configuration at `{field}`")), "{field}: {error}");
    }
}

/// The demo config itself (the file `./scripts/demo.sh` runs), on free ports, with its documented key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_config_serves_with_its_documented_key() {
    let mock = MockUpstream::start("demo-mock").await.unwrap();
    let demo = std::fs::read_to_string(repo_root().join("envoy/demo.yaml")).unwrap();
    let wasm = ai_gateway_integration::paths::filter_wasm();
    let patched = demo
        .replace("port_value: 10000", "port_value: 0")
        .replace("port_value: 9901", "port_value: 0")
        .replace("port_value: 18080", &format!("port_value: {}", mock.port()))
        .replace("filename: target/wasm32-wasip1/release/ai_gateway.wasm", &format!("filename: {}", wasm.display()));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("demo.yaml");
    std::fs::write(&path, patched).unwrap();
    let envoy = tokio::task::block_in_place(|| Envoy::start_with(&path, 2, dir)).unwrap_or_else(|e| panic!("{e}"));
    let http = reqwest::Client::new();
    let chat = |key: &'static str, body: Value| {
        http.post(envoy.url("/v1/chat/completions")).bearer_auth(key).json(&body).send()
    };
    let response = chat("sk-demo-alpha", json!({ "model": "gpt-4o-mini", "messages": [] })).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(mock.last_request().unwrap().json()["model"], "gpt-4o-mini-2024-07-18");
    let response = chat("sk-demo-beta", json!({ "model": "gpt-4o-mini", "messages": [] })).await.unwrap();
    assert_eq!(response.status(), 403);

    // Over the 8 MiB buffer limit: Envoy's own 413, in OpenAI's error format.
    let huge = json!({ "model": "gpt-4o-mini", "messages": [ { "role": "user", "content": "x".repeat(9 << 20) } ] });
    let response = chat("sk-demo-alpha", huge).await.unwrap();
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "request_too_large");
}

/// The Grafana dashboard parses, and every series it queries is one the filter emits.
#[test]
fn the_dashboard_queries_only_metrics_the_filter_emits() {
    let emitted = [
        "ai_gateway_requests_total",
        "ai_gateway_input_tokens_total",
        "ai_gateway_output_tokens_total",
        "ai_gateway_cache_lookups_total",
        "ai_gateway_cache_stores_total",
        "ai_gateway_rate_limited_total",
        "ai_gateway_upstream_duration_ms_bucket",
        "ai_gateway_upstream_first_byte_ms_bucket",
    ];
    let text = std::fs::read_to_string(repo_root().join("integration/grafana/ai-gateway.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).unwrap();
    let mut queried = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let names: Vec<&str> = expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|word| word.starts_with("ai_gateway_"))
                .collect();
            assert!(!names.is_empty(), "{expr}");
            for name in names {
                assert!(emitted.contains(&name), "the dashboard queries {name}, which the filter does not emit");
                queried += 1;
            }
        }
    }
    assert!(queried >= emitted.len());
}

/// The listener filter's configuration and the chain cluster's upstream filter agree in every
/// shipped config: each chain's aggregate cluster lists its providers' clusters in order, each of
/// those clusters' endpoints names its upstream, and the upstream role knows the same upstreams and
/// chained models.
#[test]
fn shipped_fallback_chains_agree_between_the_two_filters_and_the_clusters() {
    let mut chains_checked = 0;
    for file in ["envoy/demo.yaml", "envoy/production.yaml"] {
        let text = std::fs::read_to_string(repo_root().join(file)).unwrap();
        let bootstrap: Value = serde_yaml::from_str(&text).unwrap();
        let manager = &bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
        let listener_filter =
            manager["http_filters"].as_array().unwrap().iter().find(|f| f["name"] == "ai_gateway").unwrap();
        let listener: Value =
            serde_json::from_str(listener_filter["typed_config"]["config"]["configuration"]["value"].as_str().unwrap())
                .unwrap();
        let clusters = bootstrap["static_resources"]["clusters"].as_array().unwrap();
        let cluster = |name: &str| {
            clusters.iter().find(|c| c["name"] == name).unwrap_or_else(|| panic!("{file}: no cluster {name}"))
        };
        let upstream_cluster = |upstream: &str| -> String {
            let config = &listener["upstreams"][upstream];
            config["cluster"].as_str().unwrap_or(upstream).to_owned()
        };
        for (model, route) in listener["models"].as_object().unwrap() {
            let Some(chain) = route["fallback_cluster"].as_str() else { continue };
            chains_checked += 1;
            let aggregate = cluster(chain);
            let mut expected = vec![upstream_cluster(route["upstream"].as_str().unwrap())];
            for fallback in route["fallbacks"].as_array().unwrap() {
                expected.push(upstream_cluster(fallback["upstream"].as_str().unwrap()));
            }
            let listed: Vec<String> =
                serde_json::from_value(aggregate["cluster_type"]["typed_config"]["clusters"].clone()).unwrap();
            assert_eq!(listed, expected, "{file}: {chain} must list the chain of {model} in order");
            let options = &aggregate["typed_extension_protocol_options"]
                ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"];
            let filter = &options["http_filters"][0]["typed_config"]["config"];
            assert_eq!(filter["allow_on_headers_stop_iteration"], true, "{file}: {chain}");
            let upstream_role: Value =
                serde_json::from_str(filter["configuration"]["value"].as_str().unwrap()).unwrap();
            assert_eq!(upstream_role["role"], "upstream", "{file}: {chain}");
            assert_eq!(upstream_role["upstreams"], listener["upstreams"], "{file}: {chain}: the same upstreams");
            assert_eq!(upstream_role["models"][model], *route, "{file}: {chain}: the same route for {model}");
            for (upstream, provider_cluster) in std::iter::once(route["upstream"].as_str().unwrap())
                .chain(route["fallbacks"].as_array().unwrap().iter().map(|f| f["upstream"].as_str().unwrap()))
                .zip(&expected)
            {
                let endpoints = &cluster(provider_cluster)["load_assignment"]["endpoints"][0]["lb_endpoints"];
                for endpoint in endpoints.as_array().unwrap() {
                    assert_eq!(
                        endpoint["metadata"]["filter_metadata"]["ai_gw"]["provider"], upstream,
                        "{file}: the endpoints of {provider_cluster} must name the upstream {upstream}"
                    );
                }
            }
        }
    }
    assert!(chains_checked >= 2, "the shipped configs show a fallback chain each");
}

/// `envoy/global-quota.yaml` gives Envoy's own replies a body (the rate limit filter's 429 and its
/// fail-closed 500 have none, and an empty body cannot be rewritten into the client's format), and
/// removes a provider's own RateLimit headers before the rate limit filter adds the service's.
#[test]
fn the_global_quota_config_gives_refusals_a_body_and_trusts_only_the_services_headers() {
    let text = std::fs::read_to_string(repo_root().join("envoy/global-quota.yaml")).unwrap();
    let config: Value = serde_yaml::from_str(&text).unwrap();
    let manager = &config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
    let mappers = manager["local_reply_config"]["mappers"].as_array().expect("local_reply_config mappers");
    assert!(
        mappers.iter().any(|m| m["filter"]["response_flag_filter"].is_object()),
        "a mapper for Envoy's flagged replies"
    );
    let removed = &manager["route_config"]["virtual_hosts"][0]["routes"][0]["response_headers_to_remove"];
    for name in ["x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset", "x-envoy-ratelimited"] {
        assert!(removed.as_array().unwrap().iter().any(|h| h == name), "{name} from providers must be removed");
    }
    let filters = manager["http_filters"].as_array().unwrap();
    let names: Vec<&str> = filters.iter().filter_map(|f| f["name"].as_str()).collect();
    assert_eq!(
        names,
        ["ai_gateway", "envoy.filters.http.ratelimit", "envoy.filters.http.router"],
        "the rate limit filter after the gateway's"
    );
}
