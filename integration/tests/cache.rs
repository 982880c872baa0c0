//! End-to-end response cache on a real Envoy with two workers: hits, tenant isolation, canonical
//! keys, streamed replay parsed by async-openai, cache-control, no tokens on hits, bounded memory.

mod common;

use async_openai::config::OpenAIConfig;
use async_openai::types::{ChatCompletionRequestUserMessageArgs, CreateChatCompletionRequestArgs};
use common::*;
use futures::StreamExt;
use serde_json::{json, Value};

fn header(headers: &reqwest::header::HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

async fn post_raw(
    gateway: &TestGateway,
    key: &str,
    body: &str,
    extra: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut request = gateway
        .http
        .post(gateway.url("/v1/chat/completions"))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(body.to_owned());
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

const BODY: &str = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"cache me"}],"temperature":0}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_requests_hit_with_the_upstreams_body_and_other_keys_miss() {
    let gateway = TestGateway::start_with(Gateway::config_with_cache(json!({ "ttl_seconds": 300 }))).await;
    let (status, headers, first) = post_raw(&gateway, ALPHA, BODY, &[]).await;
    assert_eq!((status, header(&headers, "x-ai-gateway-cache").as_deref()), (200, Some("miss")));
    let (status, headers, second) = post_raw(&gateway, ALPHA, BODY, &[]).await;
    assert_eq!((status, header(&headers, "x-ai-gateway-cache").as_deref()), (200, Some("hit")));
    assert!(header(&headers, "age").is_some());
    assert_eq!(second, first, "a hit returns the body the upstream gave");
    assert_eq!(gateway.openai.requests().len(), 1);

    // The body is keyed byte for byte: the same fields written differently are another entry.
    let reordered =
        r#"{ "temperature" : 0, "messages" : [ { "content" : "cache me", "role" : "user" } ], "model" : "gpt-4o" }"#;
    let (_, headers, _) = post_raw(&gateway, ALPHA, reordered, &[]).await;
    assert_eq!(header(&headers, "x-ai-gateway-cache").as_deref(), Some("miss"));

    // Another key never gets alpha's entry (scope "key", the default).
    let (_, headers, _) = post_raw(&gateway, ROTATED_NEW, BODY, &[]).await;
    assert_eq!(header(&headers, "x-ai-gateway-cache").as_deref(), Some("miss"));
    assert_eq!(gateway.openai.requests().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_store_and_no_cache_behave() {
    let gateway = TestGateway::start_with(Gateway::config_with_cache(json!({}))).await;
    let (_, headers, _) = post_raw(&gateway, ALPHA, BODY, &[("cache-control", "no-store")]).await;
    assert_eq!(header(&headers, "x-ai-gateway-cache").as_deref(), Some("bypass"));
    let (_, headers, _) = post_raw(&gateway, ALPHA, BODY, &[]).await;
    assert_eq!(header(&headers, "x-ai-gateway-cache").as_deref(), Some("miss"), "no-store must not have written");
    let (_, headers, _) = post_raw(&gateway, ALPHA, BODY, &[("cache-control", "no-cache")]).await;
    assert_eq!(header(&headers, "x-ai-gateway-cache").as_deref(), Some("bypass"));
    let (_, headers, _) = post_raw(&gateway, ALPHA, BODY, &[]).await;
    assert_eq!(header(&headers, "x-ai-gateway-cache").as_deref(), Some("hit"));
    assert_eq!(gateway.openai.requests().len(), 3, "no-store and no-cache went upstream, the hit did not");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_hit_is_a_stream_async_openai_parses() {
    let gateway = TestGateway::start_with(Gateway::config_with_cache(json!({}))).await;
    let client =
        async_openai::Client::with_config(OpenAIConfig::new().with_api_base(gateway.url("/v1")).with_api_key(ALPHA));
    let request = CreateChatCompletionRequestArgs::default()
        .model("gpt-4o")
        .stream(true)
        .messages([ChatCompletionRequestUserMessageArgs::default().content("stream me").build().unwrap().into()])
        .build()
        .unwrap();
    for attempt in 0..2 {
        let mut stream = client.chat().create_stream(request.clone()).await.unwrap();
        let mut text = String::new();
        while let Some(chunk) = stream.next().await {
            if let Some(content) = chunk.unwrap().choices.first().and_then(|c| c.delta.content.clone()) {
                text.push_str(&content);
            }
        }
        assert_eq!(text, "Hello from openai-a", "attempt {attempt}");
    }
    assert_eq!(gateway.openai.requests().len(), 1, "the second stream came from the cache");
    // A non-streaming request for the same prompt is never answered with the stream.
    let body = json!({ "model": "gpt-4o", "messages": [ { "role": "user", "content": "stream me" } ] }).to_string();
    let (_, headers, text) = post_raw(&gateway, ALPHA, &body, &[]).await;
    assert_eq!(header(&headers, "content-type").as_deref(), Some("application/json"));
    assert!(serde_json::from_str::<Value>(&text).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hits_count_as_requests_but_spend_no_tokens() {
    let mut config = Gateway::config_with_limits(json!({ "requests_per_hour": 100, "tokens_per_day": 10_000 }));
    config["cache"] = json!({});
    let gateway = TestGateway::start_with(config).await;
    let (_, headers, _) = post_raw(&gateway, ALPHA, BODY, &[]).await;
    let after_miss = header(&headers, "x-ratelimit-remaining-requests").unwrap();
    for _ in 0..3 {
        let (_, headers, _) = post_raw(&gateway, ALPHA, BODY, &[]).await;
        assert_eq!(header(&headers, "x-ai-gateway-cache").as_deref(), Some("hit"));
        // The miss used 10 prompt + 5 completion tokens (the mock's usage); hits add nothing.
        assert_eq!(header(&headers, "x-ratelimit-remaining-tokens").as_deref(), Some("9985"));
    }
    assert_eq!(after_miss, "99");
    let (_, headers, _) = post_raw(&gateway, ALPHA, BODY, &[]).await;
    assert_eq!(header(&headers, "x-ratelimit-remaining-requests").as_deref(), Some("95"));
}

fn allocated_bytes(gateway: &TestGateway) -> u64 {
    let memory: Value = serde_json::from_str(&gateway.envoy.admin("/memory")).unwrap();
    memory["allocated"].as_str().and_then(|v| v.parse().ok()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_flat_under_ten_times_max_entries_distinct_requests() {
    let max_entries = 100;
    let gateway = TestGateway::start_with(Gateway::config_with_cache(
        json!({ "max_entries": max_entries, "max_entry_bytes": 4096 }),
    ))
    .await;
    let send_distinct = |range: std::ops::Range<usize>| {
        let gateway = &gateway;
        async move {
            futures::stream::iter(range)
                .map(|i| async move {
                    let body = json!({ "model": "gpt-4o", "messages": [ { "role": "user", "content": format!("prompt {i}") } ] });
                    let (status, _, _) = post_raw(gateway, ALPHA, &body.to_string(), &[]).await;
                    assert_eq!(status, 200);
                })
                .buffer_unordered(8)
                .collect::<Vec<_>>()
                .await;
        }
    };
    let before = allocated_bytes(&gateway);
    send_distinct(0..2 * max_entries).await; // fill the table (and warm both workers' VMs)
    let full = allocated_bytes(&gateway);
    send_distinct(2 * max_entries..10 * max_entries).await;
    let after = allocated_bytes(&gateway);
    eprintln!(
        "Envoy allocated bytes: {before} at start, {full} after {} requests, {after} after {} (table: {max_entries} x 4096 B)",
        2 * max_entries,
        10 * max_entries
    );
    // The table holds at most max_entries x max_entry_bytes = 400 KiB; 800 more distinct entries
    // must not add anything like their own size (800 x ~300 B of body and key at least).
    assert!(after < full + 1024 * 1024, "memory grew from {full} to {after} bytes");
    assert!(gateway.openai.requests().len() >= 10 * max_entries - 5);
}
