//! The end-to-end fixture: three mock providers behind a real Envoy with the filter, and the keys
//! and filter configuration the tests (Rust and Python) use.

use crate::envoy::{Envoy, EnvoySetup};
use crate::mock_upstream::MockUpstream;
use ai_gateway_core::auth::digest;
use serde_json::{json, Value};

pub const ALPHA: &str = "sk-test-alpha-0123456789";
pub const BETA: &str = "sk-test-beta-0123456789";
pub const ROTATED_OLD: &str = "sk-test-rotated-old";
pub const ROTATED_NEW: &str = "sk-test-rotated-new";
/// Keys with two requests per minute, for the SDKs' rate-limit errors.
pub const LIMITED_OPENAI: &str = "sk-test-limited-openai";
pub const LIMITED_ANTHROPIC: &str = "sk-test-limited-anthropic";
pub const OPENAI_PROVIDER_KEY: &str = "Bearer sk-provider-openai";
pub const ANTHROPIC_PROVIDER_KEY: &str = "provider-anthropic-key";

/// The request header that selects a mock provider's misbehaviour.
pub const MOCK_BEHAVIOR: &str = "x-mock-behavior";

pub fn sha256_hex(key: &str) -> String {
    digest(key).iter().map(|b| format!("{b:02x}")).collect()
}

/// The filter configuration the tests run with, written to the contract in docs/configuration.md.
pub fn filter_config() -> Value {
    json!({
        "keys": [
            { "id": "alpha", "sha256": sha256_hex(ALPHA) },
            { "id": "beta", "sha256": [sha256_hex(BETA)], "models": ["claude-*"] },
            { "id": "rotated", "sha256": [sha256_hex(ROTATED_OLD), sha256_hex(ROTATED_NEW)], "models": ["gpt-4o"] },
            { "id": "limited-openai", "sha256": sha256_hex(LIMITED_OPENAI),
              "limits": { "requests_per_minute": 2, "tokens_per_day": 100000 } },
            { "id": "limited-anthropic", "sha256": sha256_hex(LIMITED_ANTHROPIC),
              "limits": { "requests_per_minute": 2, "tokens_per_day": 100000 } }
        ],
        "upstreams": {
            // `x-mock-behavior` tells the mock provider how to misbehave: forwarded by name.
            "openai": { "cluster": "openai_a", "api": "openai", "authority": "api.openai.test",
                        "headers": { "authorization": OPENAI_PROVIDER_KEY }, "forward_headers": [MOCK_BEHAVIOR] },
            "openai_b": { "headers": { "authorization": "Bearer sk-provider-b" }, "forward_headers": [MOCK_BEHAVIOR] },
            "anthropic": { "api": "anthropic", "authority": "api.anthropic.test",
                           "headers": { "x-api-key": ANTHROPIC_PROVIDER_KEY, "anthropic-version": "2023-06-01" },
                           "forward_headers": [MOCK_BEHAVIOR] }
        },
        "models": {
            "gpt-mini": { "upstream": "openai", "model": "gpt-4o-mini-2024-07-18" },
            "gpt-4o": { "upstream": "openai" },
            "split": { "targets": [ { "upstream": "openai", "model": "split-a", "weight": 3 },
                                    { "upstream": "openai_b", "model": "split-b", "weight": 1 } ] },
            "claude-haiku": { "upstream": "anthropic", "model": "claude-3-5-haiku-latest" }
        }
    })
}

/// Providers that always misbehave (upstream name, mock behaviour), for fallback chains.
const FAILING_PROVIDERS: [(&str, &str); 4] =
    [("fail503", "status-503"), ("fail429", "status-429"), ("hang", "hang"), ("resetting", "reset-mid-stream")];

pub struct Gateway {
    pub envoy: Envoy,
    pub openai: MockUpstream,
    pub openai_b: MockUpstream,
    pub anthropic: MockUpstream,
}

impl Gateway {
    /// Starts the mocks and Envoy; call from a multi-threaded Tokio runtime.
    pub async fn start() -> Result<Gateway, String> {
        Gateway::start_with(filter_config()).await
    }

    pub async fn start_with(config: Value) -> Result<Gateway, String> {
        Gateway::start_with_setup(config, |_| {}).await
    }

    /// Like [`Gateway::start_with`], with a change to the Envoy setup (route, protocol options).
    pub async fn start_with_setup(config: Value, adjust: impl FnOnce(&mut EnvoySetup)) -> Result<Gateway, String> {
        let mock = |name: &'static str| async move { MockUpstream::start(name).await.map_err(|e| e.to_string()) };
        let openai = mock("openai-a").await?;
        let openai_b = mock("openai-b").await?;
        let anthropic = mock("anthropic").await?;
        let mut setup = EnvoySetup::new(
            config,
            &[("openai_a", openai.port()), ("openai_b", openai_b.port()), ("anthropic", anthropic.port())],
        );
        adjust(&mut setup);
        let envoy = tokio::task::block_in_place(|| Envoy::start(&setup))?;
        Ok(Gateway { envoy, openai, openai_b, anthropic })
    }

    /// The fixture's configuration with `limits` set on the `alpha` and `beta` keys.
    pub fn config_with_limits(limits: Value) -> Value {
        let mut config = filter_config();
        config["keys"][0]["limits"] = limits.clone();
        config["keys"][1]["limits"] = limits;
        config
    }

    /// The fixture's configuration with this `cache` section.
    pub fn config_with_cache(cache: Value) -> Value {
        let mut config = filter_config();
        config["cache"] = cache;
        config
    }

    /// `config` plus fallback chains: misbehaving providers (served by the `openai_b` mock, each
    /// through a `/behave/...` path prefix, or on a port nothing listens on) and models whose
    /// primary is one of them: `fb-503`, `fb-429`, `fb-refused`, `fb-hang` (the per-attempt timeout
    /// is 1 s), `fb-reset` (a stream reset after two events) fall back to `openai` (model
    /// `fallback-model`); `fb-cross` falls back to `anthropic`; `fb-all` (503 then 429) and
    /// `fb-all-refused` never succeed; `fb-weighted` has a chain on one of its two targets.
    pub fn config_with_fallbacks(mut config: Value) -> Value {
        for (name, behaviour) in FAILING_PROVIDERS {
            config["upstreams"][name] = json!({ "cluster": name, "path_prefix": format!("/behave/{behaviour}/v1"),
                                                "headers": { "authorization": format!("Bearer sk-{name}") } });
        }
        config["upstreams"]["refused"] =
            json!({ "cluster": "refused", "headers": { "authorization": "Bearer sk-refused" } });
        config["upstreams"]["refused_b"] = json!({ "cluster": "refused_b" });
        let chain = |primary: &str, fallbacks: Value, cluster: &str| json!({ "upstream": primary, "model": "primary-model", "fallbacks": fallbacks, "fallback_cluster": cluster });
        let to_openai = json!([ { "upstream": "openai", "model": "fallback-model" } ]);
        let models = &mut config["models"];
        models["fb-503"] = chain("fail503", to_openai.clone(), "chain_503");
        models["fb-429"] = chain("fail429", to_openai.clone(), "chain_429");
        models["fb-refused"] = chain("refused", to_openai.clone(), "chain_refused");
        models["fb-hang"] = chain("hang", to_openai.clone(), "chain_hang");
        models["fb-reset"] = chain("resetting", to_openai, "chain_reset");
        models["fb-cross"] =
            chain("fail503", json!([ { "upstream": "anthropic", "model": "claude-fallback" } ]), "chain_cross");
        models["fb-all"] = chain("fail503", json!([ { "upstream": "fail429" } ]), "chain_all");
        models["fb-all-refused"] = chain("refused", json!([ { "upstream": "refused_b" } ]), "chain_all_refused");
        // For embeddings only the primary can be tried: the Anthropic fallback has no such endpoint.
        models["fb-embed"] = chain(
            "fail503",
            json!([ { "upstream": "anthropic" }, { "upstream": "openai", "model": "fallback-model" } ]),
            "chain_embed",
        );
        models["fb-weighted"] = json!({ "targets": [
            { "upstream": "fail503", "weight": 1, "fallbacks": [ { "upstream": "openai", "model": "fallback-model" } ],
              "fallback_cluster": "chain_weighted" },
            { "upstream": "openai_b", "model": "direct-model", "weight": 1 } ] });
        config["retry"] = json!({ "per_attempt_timeout_ms": 1000 });
        config
    }

    /// Starts a configuration made by [`Gateway::config_with_fallbacks`], with its provider clusters;
    /// `retry_buffer_limit_bytes` sets the route's `per_request_buffer_limit_bytes`.
    pub async fn start_with_fallbacks(config: Value, retry_buffer_limit_bytes: Option<u32>) -> Result<Gateway, String> {
        Gateway::start_with_setup(config, |setup| {
            let misbehaving = setup.clusters[1].1; // the openai_b mock
            for (name, _) in FAILING_PROVIDERS {
                setup.clusters.push((name.to_owned(), misbehaving));
            }
            for name in ["refused", "refused_b"] {
                let port =
                    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_or(9, |a| a.port());
                setup.clusters.push((name.to_owned(), port));
            }
            setup.retry_buffer_limit_bytes = retry_buffer_limit_bytes;
        })
        .await
    }

    pub fn url(&self, path: &str) -> String {
        self.envoy.url(path)
    }
}
