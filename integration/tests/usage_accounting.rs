//! Tokens charged equal the usage the provider reported, however the response is split, sized or
//! ended, attacked on a real Envoy with two workers: a 200 KB final event in 16 KiB pieces, a
//! connection held open after `[DONE]`, a JSON answer over 64 KiB with a nested `usage` after the
//! real one, bare-CR SSE with multi-line `data`, a gzip-encoded answer. Also what the cache keys on.

mod common;

use ai_gateway_core::quota::reservation::DEFAULT_OUTPUT_ESTIMATE;
use ai_gateway_integration::mock_upstream::{DEFAULT_COMPLETION_TOKENS, PROMPT_TOKENS};
use common::*;
use futures::StreamExt;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The usage the mock reports for a request without `max_tokens`.
const MOCK_USAGE: u64 = PROMPT_TOKENS + DEFAULT_COMPLETION_TOKENS;

fn reservation(body: &Value) -> u64 {
    prompt_estimate(body) + DEFAULT_OUTPUT_ESTIMATE
}

/// What the token bucket may have refilled since `since` (100,000 a day).
fn refill_since(since: Instant) -> u64 {
    (100_000.0 * since.elapsed().as_secs_f64() / 86_400.0).ceil() as u64
}

async fn gateway_with_token_limit(cache: bool) -> TestGateway {
    let mut config = Gateway::config_with_limits(json!({ "tokens_per_day": 100_000 }));
    if cache {
        config["cache"] = json!({ "ttl_seconds": 60 });
    }
    TestGateway::start_with(config).await
}

/// Sends `body` to `path` with a mock behaviour and reads the response as an SDK does: a stream up to
/// its end marker and no further (then the connection is dropped), a JSON body whole.
async fn call(
    gateway: &TestGateway,
    path: &str,
    behavior: &str,
    body: &Value,
) -> (u16, reqwest::header::HeaderMap, String) {
    let response = gateway
        .http
        .post(gateway.url(path))
        .bearer_auth(ALPHA)
        .header(MOCK_BEHAVIOR, behavior)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let mut text = String::new();
    let mut chunks = response.bytes_stream();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(30), chunks.next()).await.unwrap() {
        text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        let at_marker = text.contains("data: [DONE]") || text.contains("\"type\":\"response.completed\"");
        if at_marker && text.ends_with("\n\n") {
            break;
        }
    }
    (status, headers, text)
}

/// Runs `scenario` and returns the tokens it charged, with the refill tolerance of its duration.
async fn charged<F: std::future::Future<Output = ()>>(gateway: &TestGateway, scenario: F) -> (u64, u64) {
    let started = Instant::now();
    let before = gateway.tokens_left(ALPHA).await;
    scenario.await;
    let after = gateway.tokens_left(ALPHA).await;
    (before.saturating_sub(after).saturating_sub(PROBE_TOKENS), refill_since(started))
}

fn assert_charged((charged, tolerance): (u64, u64), expected: u64, what: &str) {
    assert!(
        (expected.saturating_sub(tolerance)..=expected).contains(&charged),
        "{what}: charged {charged}, the provider reported {expected} (refill tolerance {tolerance})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_kb_final_event_in_16_kib_pieces_is_charged_its_usage() {
    let gateway = gateway_with_token_limit(false).await;
    let body = json!({ "model": "gpt-4o", "stream": true, "input": "write a lot" });
    let result = charged(&gateway, async {
        let (status, _, text) = call(&gateway, "/v1/responses", "big-final-event", &body).await;
        assert_eq!(status, 200);
        assert!(text.len() > 400_000, "the stream arrived whole: {} bytes", text.len());
    })
    .await;
    assert!(reservation(&body) > MOCK_USAGE + 100);
    assert_charged(result, MOCK_USAGE, "Responses stream with a 200 KB response.completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_is_complete_at_its_end_marker_even_if_the_connection_stays_open() {
    let gateway = gateway_with_token_limit(true).await;
    let cases = [
        (
            "/v1/chat/completions",
            json!({ "model": "gpt-4o", "stream": true, "messages": [ { "role": "user", "content": "hold" } ] }),
        ),
        ("/v1/responses", json!({ "model": "gpt-4o", "stream": true, "input": "hold" })),
    ];
    for (path, body) in &cases {
        let result = charged(&gateway, async {
            // The client stops reading at the end marker and hangs up while the provider holds on.
            let (status, headers, _) = call(&gateway, path, "hold-after-done", body).await;
            assert_eq!(status, 200);
            assert_eq!(headers["x-ai-gateway-cache"], "miss");
        })
        .await;
        assert_charged(result, MOCK_USAGE, path);
        // Complete by its protocol: stored in the cache (the same forwarded headers), counted as ok.
        let (status, headers, text) = call(&gateway, path, "hold-after-done", body).await;
        assert_eq!((status, headers["x-ai-gateway-cache"].to_str().unwrap()), (200, "hit"), "{path}");
        assert!(text.contains("openai-a"), "{path}: {text}");
    }
    drained(&gateway.envoy).await;
    assert_eq!(metric_sum(&gateway.envoy, "ai_gateway_requests_total", &["outcome=\"upstream_error\""]), 0.0);

    // The same stream cut before its marker is still an abort: the whole reservation.
    let body = json!({ "model": "gpt-4o", "stream": true, "messages": [ { "role": "user", "content": "cut" } ] });
    let result = charged(&gateway, async {
        let response = gateway
            .http
            .post(gateway.url("/v1/chat/completions"))
            .bearer_auth(ALPHA)
            .header(MOCK_BEHAVIOR, "slow-stream")
            .json(&body)
            .send()
            .await
            .unwrap();
        let mut chunks = response.bytes_stream();
        assert!(chunks.next().await.unwrap().is_ok());
    })
    .await;
    assert_charged(result, reservation(&body), "a stream cut before [DONE]");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_but_valid_bodies_are_charged_their_top_level_usage() {
    let gateway = gateway_with_token_limit(false).await;
    // JSON over 64 KiB: the real usage first, a nested `usage` object (99,999 tokens) after it.
    let body = json!({ "model": "gpt-4o", "messages": [ { "role": "user", "content": "nested" } ] });
    let result = charged(&gateway, async {
        let (status, _, text) = call(&gateway, "/v1/chat/completions", "nested-usage", &body).await;
        assert_eq!(status, 200);
        assert!(text.len() > 100 * 1024);
    })
    .await;
    assert_charged(result, MOCK_USAGE, "JSON with a nested usage after the top-level one");

    // SSE with bare-CR line ends and every `data` split over two lines, in both APIs.
    let cases = [
        (
            "/v1/chat/completions",
            json!({ "model": "gpt-4o", "stream": true, "messages": [ { "role": "user", "content": "cr" } ] }),
        ),
        ("/v1/responses", json!({ "model": "gpt-4o", "stream": true, "input": "cr" })),
    ];
    for (path, body) in cases {
        let result = charged(&gateway, async {
            let response = gateway
                .http
                .post(gateway.url(path))
                .bearer_auth(ALPHA)
                .header(MOCK_BEHAVIOR, "cr-multiline")
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            let text = response.text().await.unwrap();
            assert!(text.contains("\rdata: "), "{text:?}");
        })
        .await;
        assert_charged(result, MOCK_USAGE, path);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compressed_answer_passes_untouched_is_never_cached_and_is_charged_its_reservation() {
    let gateway = gateway_with_token_limit(true).await;
    let body = json!({ "model": "gpt-4o", "messages": [ { "role": "user", "content": "zip" } ] });
    let result = charged(&gateway, async {
        for _ in 0..2 {
            let response = gateway
                .http
                .post(gateway.url("/v1/chat/completions"))
                .bearer_auth(ALPHA)
                .header(MOCK_BEHAVIOR, "gzip")
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            assert_eq!(response.headers()["content-encoding"], "gzip");
            assert_eq!(response.headers()["x-ai-gateway-cache"], "miss", "a gzip answer was cached");
            let bytes = response.bytes().await.unwrap();
            assert_eq!(&bytes[..2], &[0x1f, 0x8b], "the gzip body reaches the client as sent");
        }
    })
    .await;
    assert_charged(result, 2 * reservation(&body), "two gzip answers");
    assert_eq!(gateway.openai.requests().iter().filter(|r| r.json()["messages"][0]["content"] == "zip").count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_whose_answers_can_differ_never_share_a_cache_entry() {
    let mut config = Gateway::config_with_cache(json!({ "ttl_seconds": 60 }));
    config["upstreams"]["openai"]["forward_headers"] = json!([MOCK_BEHAVIOR, "openai-organization"]);
    let gateway = TestGateway::start_with(config).await;
    let send = |path: &'static str, body: &'static str, organization: &'static str| {
        let mut request = gateway
            .http
            .post(gateway.url(path))
            .bearer_auth(ALPHA)
            .header("content-type", "application/json")
            .body(body);
        if !organization.is_empty() {
            request = request.header("openai-organization", organization);
        }
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200);
            response.headers()["x-ai-gateway-cache"].to_str().unwrap().to_owned()
        }
    };
    let plain = r#"{"model":"gpt-4o","messages":[],"seed":18446744073709551616}"#;
    let other_seed = r#"{"model":"gpt-4o","messages":[],"seed":18446744073709551617}"#;
    let duplicate = r#"{"model":"gpt-4o","messages":[],"seed":18446744073709551616,"temperature":0,"temperature":1}"#;
    let variants = [
        ("/v1/chat/completions", plain, ""),
        ("/v1/chat/completions", other_seed, ""),
        ("/v1/chat/completions?api-version=2024-10-21", plain, ""),
        ("/v1/chat/completions?api-version=2025-01-01", plain, ""),
        ("/v1/chat/completions", plain, "org-a"),
        ("/v1/chat/completions", plain, "org-b"),
    ];
    for (path, body, organization) in variants {
        assert_eq!(send(path, body, organization).await, "miss", "{path} {body} {organization}");
    }
    for (path, body, organization) in variants {
        assert_eq!(send(path, body, organization).await, "hit", "{path} {body} {organization}");
    }
    // A body that parsers read differently (a duplicated key) is its own entry too.
    let response =
        gateway.http.post(gateway.url("/v1/chat/completions")).bearer_auth(ALPHA).body(duplicate).send().await.unwrap();
    let status = response.status().as_u16();
    let cache = response.headers().get("x-ai-gateway-cache").map(|v| v.to_str().unwrap().to_owned());
    assert!(status == 400 || cache.as_deref() == Some("miss"), "{status} {cache:?}");
}
