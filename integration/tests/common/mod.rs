//! Shared fixture for the end-to-end tests: three mock providers behind a real Envoy with the filter.

#![allow(dead_code)]

use ai_gateway::auth::digest;
use ai_gateway_integration::envoy::{Envoy, EnvoySetup};
use ai_gateway_integration::mock_upstream::MockUpstream;
use serde_json::{json, Value};

pub const ALPHA: &str = "sk-test-alpha-0123456789";
pub const BETA: &str = "sk-test-beta-0123456789";
pub const ROTATED_OLD: &str = "sk-test-rotated-old";
pub const ROTATED_NEW: &str = "sk-test-rotated-new";
pub const OPENAI_PROVIDER_KEY: &str = "Bearer sk-provider-openai";
pub const ANTHROPIC_PROVIDER_KEY: &str = "provider-anthropic-key";

pub fn sha256_hex(key: &str) -> String {
    digest(key).iter().map(|b| format!("{b:02x}")).collect()
}

/// The filter configuration the tests run with, written to CONTRACT.md.
pub fn filter_config() -> Value {
    json!({
        "keys": [
            { "id": "alpha", "sha256": sha256_hex(ALPHA) },
            { "id": "beta", "sha256": [sha256_hex(BETA)], "models": ["claude-*"] },
            { "id": "rotated", "sha256": [sha256_hex(ROTATED_OLD), sha256_hex(ROTATED_NEW)], "models": ["gpt-4o"] }
        ],
        "upstreams": {
            "openai": { "cluster": "openai_a", "api": "openai", "authority": "api.openai.test",
                        "headers": { "authorization": OPENAI_PROVIDER_KEY } },
            "openai_b": { "headers": { "authorization": "Bearer sk-provider-b" } },
            "anthropic": { "api": "anthropic", "authority": "api.anthropic.test",
                           "headers": { "x-api-key": ANTHROPIC_PROVIDER_KEY, "anthropic-version": "2023-06-01" } }
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

pub struct Gateway {
    pub envoy: Envoy,
    pub openai: MockUpstream,
    pub openai_b: MockUpstream,
    pub anthropic: MockUpstream,
    pub http: reqwest::Client,
}

impl Gateway {
    pub async fn start() -> Gateway {
        Gateway::start_with(filter_config()).await
    }

    pub async fn start_with(config: Value) -> Gateway {
        let openai = MockUpstream::start("openai-a").await.unwrap();
        let openai_b = MockUpstream::start("openai-b").await.unwrap();
        let anthropic = MockUpstream::start("anthropic").await.unwrap();
        let setup = EnvoySetup::new(
            config,
            &[("openai_a", openai.port()), ("openai_b", openai_b.port()), ("anthropic", anthropic.port())],
        );
        let envoy = tokio::task::block_in_place(|| Envoy::start(&setup)).unwrap_or_else(|e| panic!("{e}"));
        Gateway { envoy, openai, openai_b, anthropic, http: reqwest::Client::new() }
    }

    pub fn url(&self, path: &str) -> String {
        self.envoy.url(path)
    }

    /// POSTs JSON with an OpenAI-style bearer key; returns status, headers and body.
    pub async fn post(&self, path: &str, key: &str, body: &Value) -> (u16, reqwest::header::HeaderMap, Value) {
        let response = self.http.post(self.url(path)).bearer_auth(key).json(body).send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        (status, headers, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// POSTs an Anthropic Messages request the way the Anthropic SDK does.
    pub async fn post_messages(&self, key: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(self.url("/v1/messages"))
            .header("x-api-key", key)
            .header("anthropic-version", "2023-06-01")
            .json(body)
            .send()
            .await
            .unwrap()
    }
}
