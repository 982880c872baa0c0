//! Test-side helpers over the shared fixture: an HTTP client and request shortcuts.

#![allow(dead_code)]

use ai_gateway_integration::envoy::Envoy;
pub use ai_gateway_integration::fixture::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The prompt part of the tokens the gateway reserves for this request body (the reservation rule
/// lives in `ai_gateway_core::quota::reservation`).
pub fn prompt_estimate(body: &Value) -> u64 {
    ai_gateway_core::quota::reservation::prompt_estimate(body.to_string().len())
}

/// What one [`TestGateway::tokens_left`] probe spends: the mock's usage for it.
pub const PROBE_TOKENS: u64 = ai_gateway_integration::mock_upstream::PROMPT_TOKENS + 1;

/// A counter or gauge from Envoy's `/stats`, 0 when absent.
pub fn stat(envoy: &Envoy, name: &str) -> u64 {
    let stats = envoy.admin("/stats");
    stats.lines().find_map(|l| l.strip_prefix(&format!("{name}: ")).and_then(|v| v.trim().parse().ok())).unwrap_or(0)
}

/// Waits until Envoy has no request in flight (settlement of aborted requests happens then).
pub async fn drained(envoy: &Envoy) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while stat(envoy, "http.ai_gateway.downstream_rq_active") > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(stat(envoy, "http.ai_gateway.downstream_rq_active"), 0, "requests left in flight");
}

/// Envoy's `/stats/prometheus`, once the filter's workers have flushed what they gathered: each
/// flushes its metrics every second, so this waits a little over two periods first.
pub fn prometheus(envoy: &Envoy) -> String {
    std::thread::sleep(Duration::from_millis(2_500));
    envoy.admin("/stats/prometheus")
}

/// The sum of a Prometheus counter's series whose labels contain every `label="value"` given.
pub fn metric_sum(envoy: &Envoy, name: &str, labels: &[&str]) -> f64 {
    let metrics = prometheus(envoy);
    metrics
        .lines()
        .filter(|line| line.starts_with(&format!("{name}{{")) && labels.iter().all(|label| line.contains(label)))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The shared fixture plus an HTTP client.
pub struct TestGateway {
    pub gateway: Gateway,
    pub http: reqwest::Client,
}

impl std::ops::Deref for TestGateway {
    type Target = Gateway;
    fn deref(&self) -> &Gateway {
        &self.gateway
    }
}

impl TestGateway {
    pub async fn start() -> TestGateway {
        TestGateway::start_with(filter_config()).await
    }

    pub async fn start_with(config: Value) -> TestGateway {
        let gateway = Gateway::start_with(config).await.unwrap_or_else(|e| panic!("{e}"));
        TestGateway { gateway, http: reqwest::Client::new() }
    }

    /// POSTs JSON with an OpenAI-style bearer key; returns status, headers and body.
    pub async fn post(&self, path: &str, key: &str, body: &Value) -> (u16, reqwest::header::HeaderMap, Value) {
        let response = self.http.post(self.url(path)).bearer_auth(key).json(body).send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        (status, headers, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// The tokens `key` had left before this call: a small probe request's
    /// `x-ratelimit-remaining-tokens` plus the probe's own reservation (the key needs a token limit).
    /// The probe bypasses the cache, and itself spends [`PROBE_TOKENS`] once settled.
    pub async fn tokens_left(&self, key: &str) -> u64 {
        drained(&self.envoy).await;
        let probe = json!({ "model": "gpt-4o", "max_tokens": 1, "messages": [] });
        let response = self
            .http
            .post(self.url("/v1/chat/completions"))
            .bearer_auth(key)
            .header("cache-control", "no-store")
            .json(&probe)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "the probe must be admitted");
        let remaining: u64 = response.headers()["x-ratelimit-remaining-tokens"].to_str().unwrap().parse().unwrap();
        let _ = response.bytes().await;
        let probe_reservation = prompt_estimate(&probe) + 1;
        drained(&self.envoy).await;
        remaining + probe_reservation
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
