//! Limits shared by a fleet of Envoys: two Envoys (two workers each) with the filter in
//! `quota.mode: global` and Envoy's rate limit filter, one test rate limit service on a real Redis,
//! configured by what `rls-config` generates from the same gateway configuration.

mod common;

use ai_gateway_integration::envoy::{Envoy, EnvoySetup};
use ai_gateway_integration::mock_upstream::MockUpstream;
use ai_gateway_integration::rls::{RateLimitService, Redis};
use common::*;
use serde_json::{json, Value};
use std::path::Path;

const BURSTY: &str = "sk-test-bursty";
const THRIFTY: &str = "sk-test-thrifty";
const FREE: &str = "sk-test-free";

fn gateway_config() -> Value {
    json!({
        "keys": [
            { "id": "bursty", "sha256": sha256_hex(BURSTY), "limits": { "requests_per_hour": 10 } },
            { "id": "thrifty", "sha256": sha256_hex(THRIFTY), "limits": { "tokens_per_hour": 200 } },
            { "id": "free", "sha256": sha256_hex(FREE) }
        ],
        "upstreams": { "openai": { "cluster": "openai_a", "headers": { "authorization": OPENAI_PROVIDER_KEY },
                                "forward_headers": [MOCK_BEHAVIOR] } },
        "models": { "gpt-4o": { "upstream": "openai" } },
        "quota": { "mode": "global" }
    })
}

/// The rate limit service's configuration, as `rls-config` writes it for `config`.
fn service_config(dir: &Path, config: &Value) -> std::path::PathBuf {
    let gateway = dir.join("gateway.json");
    std::fs::write(&gateway, config.to_string()).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_rls-config")).arg(&gateway).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let path = dir.join("ratelimit.yaml");
    std::fs::write(&path, &output.stdout).unwrap();
    path
}

struct Fleet {
    envoys: Vec<Envoy>,
    _openai: MockUpstream,
    http: reqwest::Client,
}

impl Fleet {
    async fn start(rls_port: u16, failure_mode_deny: bool) -> Fleet {
        let openai = MockUpstream::start("openai-a").await.unwrap();
        let mut envoys = Vec::new();
        for _ in 0..2 {
            let mut setup = EnvoySetup::new(gateway_config(), &[("openai_a", openai.port())]);
            setup.rate_limit_service = Some((rls_port, failure_mode_deny));
            envoys.push(tokio::task::block_in_place(|| Envoy::start(&setup)).unwrap_or_else(|e| panic!("{e}")));
        }
        Fleet { envoys, _openai: openai, http: reqwest::Client::new() }
    }

    async fn chat(&self, envoy: usize, key: &str, max_tokens: u64) -> (u16, reqwest::header::HeaderMap, Value) {
        let body =
            json!({ "model": "gpt-4o", "max_tokens": max_tokens, "messages": [ { "role": "user", "content": "hi" } ] });
        let response = self
            .http
            .post(self.envoys[envoy].url("/v1/chat/completions"))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap();
        let (status, headers) = (response.status().as_u16(), response.headers().clone());
        (status, headers, response.json().await.unwrap_or(Value::Null))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_over_two_envoys_admits_exactly_the_limit_and_tokens_trip_across_them() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start().unwrap();
    let _service = RateLimitService::start(&service_config(dir.path(), &gateway_config()), redis.port, 0).unwrap();
    let fleet = Fleet::start(_service.port, false).await;

    // 30 concurrent requests spread over both Envoys, against 10 requests per hour (the service
    // counts in fixed windows: hour-long ones keep a test from straddling two).
    let burst = (0..30).map(|i| fleet.chat(i % 2, BURSTY, 5));
    let results = futures::future::join_all(burst).await;
    let admitted = results.iter().filter(|(status, _, _)| *status == 200).count();
    assert_eq!(admitted, 10, "{:?}", results.iter().map(|r| r.0).collect::<Vec<_>>());
    // Each answer carries the service's count in OpenAI's headers: 9, 8, ... 0 remaining.
    let mut remaining: Vec<u64> = results
        .iter()
        .filter(|(status, _, _)| *status == 200)
        .map(|(_, headers, _)| headers["x-ratelimit-remaining-requests"].to_str().unwrap().parse().unwrap())
        .collect();
    remaining.sort();
    assert_eq!(remaining, (0..10).collect::<Vec<u64>>());
    for (status, headers, body) in results.iter().filter(|(status, _, _)| *status != 200) {
        assert_eq!(*status, 429);
        assert_eq!(body["error"]["code"], "rate_limit_exceeded", "{body}");
        let retry_after: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=3600).contains(&retry_after));
        assert!(headers.get("x-envoy-ratelimited").is_none());
        assert_eq!(headers["x-ratelimit-remaining-requests"], "0");
        assert_eq!(headers["x-ratelimit-limit-requests"], "10");
        assert!(headers.get("x-ratelimit-limit").is_none());
    }

    // Tokens, 200 per hour: 110 charged through each Envoy (10 prompt + 100 completion), each
    // within its own replica's reservation; then the first Envoy refuses, because of what the
    // second charged.
    for envoy in [0, 1] {
        let (status, _, body) = fleet.chat(envoy, THRIFTY, 100).await;
        assert_eq!((status, body["usage"]["total_tokens"].as_u64()), (200, Some(110)), "{body}");
        drained(&fleet.envoys[envoy]).await;
    }
    // Charges travel at the end of each stream: wait until the service has both.
    assert_eq!(redis.wait_for_count("thrifty_limit_tokens_per_hour", 220), 220);
    let (status, _, body) = fleet.chat(0, THRIFTY, 1).await;
    assert_eq!(status, 429, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("every gateway replica"), "{body}");
    for envoy in &fleet.envoys {
        drained(envoy).await;
    }
    let refused: f64 =
        fleet.envoys.iter().map(|e| metric_sum(e, "ai_gateway_requests_total", &["outcome=\"rate_limited\""])).sum();
    assert_eq!(refused, 21.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_down_fails_open_or_closed_as_configured_and_redis_keeps_the_counts() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start().unwrap();
    let config = service_config(dir.path(), &gateway_config());
    let mut service = RateLimitService::start(&config, redis.port, 0).unwrap();
    let port = service.port;
    let open = Fleet::start(port, false).await;
    let closed = Fleet::start(port, true).await;
    for _ in 0..4 {
        assert_eq!(open.chat(0, BURSTY, 5).await.0, 200);
    }
    service.kill();
    // Fail open: admitted (counted by no one while the service is down); fail closed: refused.
    assert_eq!(open.chat(1, BURSTY, 5).await.0, 200);
    let (status, _, body) = closed.chat(0, BURSTY, 5).await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["error"]["code"], "rate_limit_service_unavailable", "an error in the client's format: {body}");
    // A key without limits never asks the service: the outage cannot refuse it.
    assert_eq!(closed.chat(0, FREE, 5).await.0, 200);
    assert!(stat(&open.envoys[1], "cluster.openai_a.ratelimit.failure_mode_allowed") >= 1);
    // Both behaviours are counted by the gateway too, per key (and logged).
    let errors = |envoy: &Envoy, result: &str| {
        let labels = ["key_id=\"bursty\"".to_owned(), format!("result=\"{result}\"")];
        metric_sum(envoy, "ai_gateway_rate_limit_service_errors_total", &[&labels[0], &labels[1]])
    };
    assert_eq!(errors(&open.envoys[1], "allowed"), 1.0);
    assert_eq!(errors(&closed.envoys[0], "refused"), 1.0);
    assert_eq!(errors(&open.envoys[0], "allowed"), 0.0, "requests the service counted are not reported");
    // The service comes back on the same port: Redis kept the 4 counted requests.
    let _service = RateLimitService::start(&config, redis.port, port).unwrap();
    let statuses = futures::future::join_all((0..8).map(|i| open.chat(i % 2, BURSTY, 5))).await;
    assert_eq!(statuses.iter().filter(|(status, _, _)| *status == 200).count(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_hangs_up_mid_stream_is_still_charged_globally() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start().unwrap();
    let service = RateLimitService::start(&service_config(dir.path(), &gateway_config()), redis.port, 0).unwrap();
    let fleet = Fleet::start(service.port, false).await;
    // 110 charged through the second Envoy; then a slow stream through the first, abandoned after
    // its first event: its whole reservation (about 175) is charged, locally and in the service.
    assert_eq!(fleet.chat(1, THRIFTY, 100).await.0, 200);
    drained(&fleet.envoys[1]).await;
    let body = json!({ "model": "gpt-4o", "max_tokens": 150, "stream": true,
                       "messages": [ { "role": "user", "content": "hi" } ] });
    let response = fleet
        .http
        .post(fleet.envoys[0].url("/v1/chat/completions"))
        .bearer_auth(THRIFTY)
        .header("x-mock-behavior", "slow-stream")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut chunks = futures::StreamExt::boxed(response.bytes_stream());
    assert!(futures::StreamExt::next(&mut chunks).await.is_some());
    drop(chunks);
    drained(&fleet.envoys[0]).await;
    // Without that charge the service would count 110 of 200; with it (it travels when the stream
    // is done), more than 200, and the next request is refused.
    let charged = redis.wait_for_count("thrifty_limit_tokens_per_hour", 201);
    assert!(charged > 200, "the abandoned stream's charge must reach the service: {charged}");
    let (status, _, body) = fleet.chat(1, THRIFTY, 1).await;
    assert_eq!(status, 429, "the abandoned stream's charge must reach the service: {body}");
}
