//! End-to-end quotas on a real Envoy with two workers: exact admission under concurrent bursts,
//! token limits from streamed and JSON usage in both API formats, rate-limit headers.

mod common;

use common::*;
use futures::StreamExt;
use serde_json::{json, Value};

fn header(headers: &reqwest::header::HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// Sends a request and reads the whole response (stream or not); returns status, headers, body.
async fn exchange(
    gateway: &TestGateway,
    request: reqwest::RequestBuilder,
) -> (u16, reqwest::header::HeaderMap, String) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let mut body = String::new();
    let mut chunks = response.bytes_stream();
    while let Some(chunk) = chunks.next().await {
        body.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    let _ = gateway;
    (status, headers, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_64_admits_exactly_the_request_limit() {
    // Per hour: one request refills every 6 minutes, so a slow machine cannot admit an eleventh.
    let gateway = TestGateway::start_with(Gateway::config_with_limits(json!({ "requests_per_hour": 10 }))).await;
    let request = json!({ "model": "gpt-4o", "messages": [] });
    // Separate clients: separate connections, spread over both Envoy workers.
    let results: Vec<(u16, reqwest::header::HeaderMap, Value)> = futures::stream::iter(0..64)
        .map(|_| {
            let url = gateway.url("/v1/chat/completions");
            let request = request.clone();
            async move {
                let response = reqwest::Client::new().post(url).bearer_auth(ALPHA).json(&request).send().await.unwrap();
                let status = response.status().as_u16();
                let headers = response.headers().clone();
                (status, headers, response.json().await.unwrap())
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let admitted = results.iter().filter(|(status, _, _)| *status == 200).count();
    let refused: Vec<_> = results.iter().filter(|(status, _, _)| *status == 429).collect();
    assert_eq!((admitted, refused.len()), (10, 54));
    assert_eq!(gateway.openai.requests().len(), 10);
    for (_, headers, body) in refused {
        assert!(header(headers, "retry-after").is_some_and(|s| s.parse::<u64>().unwrap() >= 1));
        assert_eq!(header(headers, "x-ratelimit-remaining-requests").as_deref(), Some("0"));
        assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_headers_count_down() {
    let gateway = TestGateway::start_with(Gateway::config_with_limits(json!({ "requests_per_hour": 5 }))).await;
    let request = json!({ "model": "gpt-4o", "messages": [] });
    for expected in ["4", "3", "2", "1", "0"] {
        let (status, headers, _) = gateway.post("/v1/chat/completions", ALPHA, &request).await;
        assert_eq!(status, 200);
        assert_eq!(header(&headers, "x-ratelimit-limit-requests").as_deref(), Some("5"));
        assert_eq!(header(&headers, "x-ratelimit-remaining-requests").as_deref(), Some(expected));
        assert!(header(&headers, "x-ratelimit-reset-requests").is_some());
    }
    let (status, headers, body) = gateway.post("/v1/chat/completions", ALPHA, &request).await;
    assert_eq!((status, body["error"]["type"].as_str()), (429, Some("requests")));
    // One request refills every 12 minutes.
    let retry_after: u64 = header(&headers, "retry-after").unwrap().parse().unwrap();
    assert!((600..=720).contains(&retry_after), "{retry_after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_openai_usage_exhausts_a_token_limit() {
    // Per day, so that refill during the test is negligible (200 tokens a day).
    let gateway = TestGateway::start_with(Gateway::config_with_limits(json!({ "tokens_per_day": 200 }))).await;
    let request = json!({ "model": "gpt-4o", "stream": true, "max_tokens": 50, "messages": [] });
    let reserved = prompt_estimate(&request) + 50;
    let used_each = 10 + 50; // the mock's usage: 10 prompt tokens, max_tokens completion tokens
    let mut settled = 0;
    while settled + reserved <= 200 {
        let call = gateway.http.post(gateway.url("/v1/chat/completions")).bearer_auth(ALPHA).json(&request);
        let (status, headers, body) = exchange(&gateway, call).await;
        assert_eq!(status, 200);
        assert!(body.contains("\"usage\":{") && body.ends_with("data: [DONE]\n\n"), "{body}");
        // Remaining = limit - everything settled so far - this request's reservation.
        assert_eq!(header(&headers, "x-ratelimit-remaining-tokens"), Some((200 - settled - reserved).to_string()));
        settled += used_each;
    }
    let sent = gateway.openai.last_request().unwrap().json();
    assert_eq!(sent["stream_options"]["include_usage"], true, "the filter asks for streamed usage");
    let (status, headers, body) = gateway.post("/v1/chat/completions", ALPHA, &request).await;
    assert_eq!((status, body["error"]["type"].as_str()), (429, Some("tokens")));
    assert!(header(&headers, "retry-after").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_usage_is_counted_from_streams_and_json() {
    let gateway = TestGateway::start_with(Gateway::config_with_limits(json!({ "tokens_per_day": 1000 }))).await;
    let streamed = json!({ "model": "claude-haiku", "max_tokens": 7, "stream": true, "messages": [] });
    let plain = json!({ "model": "claude-haiku", "max_tokens": 7, "messages": [] });
    let send = |body: &Value| {
        gateway
            .http
            .post(gateway.url("/v1/messages"))
            .header("x-api-key", BETA)
            .header("anthropic-version", "2023-06-01")
            .json(body)
    };
    let (status, _, body) = exchange(&gateway, send(&streamed)).await;
    assert_eq!(status, 200);
    assert!(body.contains("message_delta"));
    // The stream reported 10 input tokens, then output 1 (message_start) and 7 (message_delta,
    // cumulative): 17 in all, not 18.
    let (_, headers, _) = exchange(&gateway, send(&plain)).await;
    assert_eq!(
        header(&headers, "x-ratelimit-remaining-tokens"),
        Some((1000 - 17 - prompt_estimate(&plain) - 7).to_string())
    );
    let (_, headers, _) = exchange(&gateway, send(&streamed)).await;
    assert_eq!(
        header(&headers, "x-ratelimit-remaining-tokens"),
        Some((1000 - 34 - prompt_estimate(&streamed) - 7).to_string())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrent_burst_declaring_max_tokens_never_passes_the_token_limit() {
    let limit = 2000;
    let gateway = TestGateway::start_with(Gateway::config_with_limits(json!({ "tokens_per_day": limit }))).await;
    let request = json!({ "model": "gpt-4o", "max_tokens": 100, "messages": [ { "role": "user", "content": "hi" } ] });
    let statuses: Vec<u16> = futures::stream::iter(0..64)
        .map(|_| {
            let call =
                reqwest::Client::new().post(gateway.url("/v1/chat/completions")).bearer_auth(ALPHA).json(&request);
            async move { call.send().await.unwrap().status().as_u16() }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let admitted = statuses.iter().filter(|s| **s == 200).count() as u64;
    assert_eq!(statuses.iter().filter(|s| **s == 429).count() as u64, 64 - admitted);
    // Every admitted request used its whole max_tokens (the mock answers with max_tokens tokens).
    let real_usage = admitted * (10 + 100);
    assert!(admitted > 0 && real_usage <= limit, "{admitted} admitted, {real_usage} tokens used of {limit}");
    assert_eq!(gateway.openai.requests().len() as u64, admitted);
}
