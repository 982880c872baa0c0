//! Fallback chains on a real Envoy with two workers: a primary that fails (503), throttles (429 with
//! `retry-after`), refuses connections or hangs past the per-attempt timeout is invisible to the
//! client, who gets the first answer of the chain, in its own API, billed and labelled to the
//! provider that gave it. When every provider fails, the last one's error in the client's format.
//! Limits: a stream broken after its first byte, and a body over the retry buffer, are not retried.

mod common;

use ai_gateway_integration::mock_upstream::{MockUpstream, PROMPT_TOKENS};
use common::*;
use futures::StreamExt;
use serde_json::{json, Value};

async fn start(retry_buffer_limit_bytes: Option<u32>) -> TestGateway {
    let limits = json!({ "tokens_per_day": TOKENS_PER_DAY });
    let config = Gateway::config_with_fallbacks(Gateway::config_with_limits(limits));
    let gateway =
        Gateway::start_with_fallbacks(config, retry_buffer_limit_bytes).await.unwrap_or_else(|e| panic!("{e}"));
    TestGateway { gateway, http: reqwest::Client::new() }
}

/// The daily token budget of these tests: small, so that it refills by under a token meanwhile.
const TOKENS_PER_DAY: u64 = 5_000;

/// `charged` is `expected`, less at most what the budget refilled since `started` (it refills
/// continuously).
fn assert_charged(charged: u64, expected: u64, started: std::time::Instant) {
    let refill = (TOKENS_PER_DAY as f64 * started.elapsed().as_secs_f64() / 86_400.0).ceil() as u64;
    assert!(
        (expected.saturating_sub(refill)..=expected).contains(&charged),
        "charged {charged}, the providers that answered reported {expected} (refill tolerance {refill})"
    );
}

/// The access-log line of the last request for `model` (the log is flushed every 100 ms).
async fn access_log_line(gateway: &TestGateway, model: &str) -> Value {
    for _ in 0..100 {
        if let Some(line) = gateway.envoy.access_log().into_iter().rev().find(|line| line["model"] == model) {
            return line;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no access-log line for {model}");
}

fn chat(model: &str, max_tokens: u64) -> Value {
    json!({ "model": model, "max_tokens": max_tokens, "messages": [ { "role": "user", "content": "hi" } ] })
}

/// What the answering provider received: the fallback's own model, credentials and path only.
fn assert_sent_to_openai(mock: &MockUpstream, model: &str) {
    let request = mock.last_request().expect("the fallback provider was called");
    assert_eq!(request.path, "/v1/chat/completions");
    assert_eq!(request.json()["model"], model);
    assert_eq!(request.header("authorization"), Some(OPENAI_PROVIDER_KEY));
    for foreign in ["x-api-key", "x-ai-gateway-cluster", "x-envoy-retry-on", "x-envoy-max-retries"] {
        assert_eq!(request.header(foreign), None, "{foreign} must not reach the fallback");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_primary_is_invisible_and_the_answering_provider_is_billed_and_labelled() {
    let gateway = start(None).await;
    let (started, before) = (std::time::Instant::now(), gateway.tokens_left(ALPHA).await);
    let mut charged = PROBE_TOKENS;
    for (model, max_tokens) in [("fb-503", 7), ("fb-429", 8), ("fb-refused", 9), ("fb-hang", 11)] {
        let (status, headers, body) = gateway.post("/v1/chat/completions", ALPHA, &chat(model, max_tokens)).await;
        assert_eq!(status, 200, "{model}: {body}");
        assert_eq!(headers["x-mock-upstream"], "openai-a", "{model}: the fallback answered");
        assert_eq!(body["choices"][0]["message"]["content"], "Hello from openai-a");
        assert_eq!(body["usage"]["completion_tokens"], max_tokens);
        for internal in ["x-ai-gateway-upstream", "x-envoy-attempt-count"] {
            assert!(headers.get(internal).is_none(), "{model}: {internal} reached the client");
        }
        assert_sent_to_openai(&gateway.openai, "fallback-model");
        charged += PROMPT_TOKENS + max_tokens;
        drained(&gateway.envoy).await;
        let labels = [format!("model=\"{model}\""), "upstream=\"openai\"".to_owned(), "outcome=\"ok\"".to_owned()];
        let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
        assert_eq!(metric_sum(&gateway.envoy, "ai_gateway_requests_total", &labels), 1.0, "{model}");
        assert_eq!(
            metric_sum(&gateway.envoy, "ai_gateway_upstream_attempts_total", &[labels[0], "upstream=\"openai\""]),
            2.0,
            "{model}: two attempts"
        );
        let line = access_log_line(&gateway, model).await;
        assert_eq!((line["upstream"].as_str(), line["attempts"].as_str()), (Some("openai"), Some("2")), "{model}");
    }
    // The primaries were tried: the misbehaving mock saw the 503, 429 and hanging attempts.
    let tried: Vec<String> = gateway.openai_b.requests().iter().map(|r| r.json()["model"].to_string()).collect();
    assert_eq!(tried.len(), 3, "{tried:?}");
    // Tokens: only the answers that reached the client, at the usage they reported.
    assert_charged(before - gateway.tokens_left(ALPHA).await, charged, started);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fallback_of_the_other_api_answers_in_the_clients_api_streamed_or_not() {
    let gateway = start(None).await;
    let (started, before) = (std::time::Instant::now(), gateway.tokens_left(ALPHA).await);
    // An OpenAI client, an Anthropic fallback.
    let (status, headers, body) = gateway.post("/v1/chat/completions", ALPHA, &chat("fb-cross", 12)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["x-mock-upstream"], "anthropic");
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "fb-cross");
    assert_eq!(body["usage"]["completion_tokens"], 12);
    let sent = gateway.anthropic.last_request().unwrap();
    assert_eq!((sent.path.as_str(), sent.json()["model"].as_str()), ("/v1/messages", Some("claude-fallback")));
    assert_eq!(sent.header("x-api-key"), Some(ANTHROPIC_PROVIDER_KEY));
    assert_eq!(sent.header("authorization"), None, "the primary's credential must not follow the request");

    // Streamed, without asking for usage: the stream is translated, and usage is still counted.
    let mut streamed = chat("fb-cross", 13);
    streamed["stream"] = json!(true);
    let response =
        gateway.http.post(gateway.url("/v1/chat/completions")).bearer_auth(ALPHA).json(&streamed).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(text.contains("chat.completion.chunk") && text.trim_end().ends_with("data: [DONE]"), "{text}");

    // An Anthropic client, through a chain whose providers both speak OpenAI.
    let response = gateway.post_messages(ALPHA, &chat("fb-503", 14)).await;
    assert_eq!(response.status(), 200);
    let message: Value = response.json().await.unwrap();
    assert_eq!((message["type"].as_str(), message["usage"]["output_tokens"].as_u64()), (Some("message"), Some(14)));
    drained(&gateway.envoy).await;
    let charged = PROBE_TOKENS + 3 * PROMPT_TOKENS + 12 + 13 + 14;
    assert_charged(before - gateway.tokens_left(ALPHA).await, charged, started);
    assert_eq!(
        metric_sum(&gateway.envoy, "ai_gateway_requests_total", &["model=\"fb-cross\"", "upstream=\"anthropic\""]),
        2.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_stop_before_a_provider_that_cannot_take_the_request() {
    let gateway = start(None).await;
    // Embeddings: the Anthropic fallback has no such endpoint, so only the primary is tried, and
    // the client gets its error (not a 400 about a provider it never chose).
    let (status, _, body) = gateway.post("/v1/embeddings", ALPHA, &json!({ "model": "fb-embed", "input": "hi" })).await;
    assert_eq!((status, body["error"]["type"].as_str()), (503, Some("overloaded_error")), "{body}");
    // `n: 2` cannot be translated for the Anthropic fallback: the same.
    let mut two = chat("fb-cross", 5);
    two["n"] = json!(2);
    let (status, _, body) = gateway.post("/v1/chat/completions", ALPHA, &two).await;
    assert_eq!((status, body["error"]["type"].as_str()), (503, Some("overloaded_error")), "{body}");
    assert!(gateway.anthropic.requests().is_empty() && gateway.openai.requests().is_empty());
    // What the first provider itself cannot take is refused as a direct request to it would be.
    let mut message = chat("fb-cross", 5);
    message["top_k"] = json!(3);
    let response = gateway.post_messages(ALPHA, &message).await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert!(error["error"]["message"].as_str().unwrap().contains("top_k"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_every_provider_fails_the_client_gets_the_last_error_in_its_format() {
    let gateway = start(None).await;
    // 503 then 429: the 429 reaches the client with the provider's retry-after, as an OpenAI error.
    let (status, headers, body) = gateway.post("/v1/chat/completions", ALPHA, &chat("fb-all", 5)).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(headers["retry-after"], "7");
    assert_eq!(body["error"]["type"], "rate_limit_error");
    // The same for an Anthropic client: Anthropic's error shape.
    let response = gateway.post_messages(ALPHA, &chat("fb-all", 5)).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "7");
    let error: Value = response.json().await.unwrap();
    assert_eq!((error["type"].as_str(), error["error"]["type"].as_str()), (Some("error"), Some("rate_limit_error")));
    // Nobody could be reached: Envoy's 503 in the client's format, never plain text.
    let (status, _, body) = gateway.post("/v1/chat/completions", ALPHA, &chat("fb-all-refused", 5)).await;
    assert_eq!(status, 503);
    assert_eq!(body["error"]["type"], "server_error", "{body}");
    let response = gateway.post_messages(ALPHA, &chat("fb-all-refused", 5)).await;
    assert_eq!(response.status(), 503);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["type"], "error", "{error}");
    drained(&gateway.envoy).await;
    let failed = metric_sum(&gateway.envoy, "ai_gateway_requests_total", &["outcome=\"upstream_error\""]);
    assert_eq!(failed, 4.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_targets_keep_working_with_their_own_fallbacks() {
    let gateway = start(None).await;
    let mut answered_by = std::collections::BTreeMap::new();
    for _ in 0..40 {
        let (status, headers, body) = gateway.post("/v1/chat/completions", ALPHA, &chat("fb-weighted", 5)).await;
        assert_eq!(status, 200, "{body}");
        let model = body["model"].as_str().unwrap().to_owned();
        *answered_by.entry((headers["x-mock-upstream"].to_str().unwrap().to_owned(), model)).or_insert(0) += 1;
    }
    // Both targets were chosen; the failing one's requests were answered by its fallback.
    let keys: Vec<_> = answered_by.keys().cloned().collect();
    assert_eq!(
        keys,
        [("openai-a".to_owned(), "fallback-model".to_owned()), ("openai-b".to_owned(), "direct-model".to_owned())],
        "{answered_by:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_broken_after_its_first_byte_and_a_body_over_the_retry_buffer_are_not_retried() {
    let gateway = start(Some(64 * 1024)).await;
    // The primary's stream breaks after two events: the client sees it break; no fallback.
    let mut streamed = chat("fb-reset", 5);
    streamed["stream"] = json!(true);
    let response =
        gateway.http.post(gateway.url("/v1/chat/completions")).bearer_auth(ALPHA).json(&streamed).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let mut chunks = response.bytes_stream();
    let mut broke = false;
    while let Some(chunk) = chunks.next().await {
        broke |= chunk.is_err();
    }
    assert!(broke, "the stream must break, not end cleanly");
    assert!(gateway.openai.requests().is_empty(), "a started stream is never replayed elsewhere");

    // A body larger than the route's retry buffer: the primary's 503 reaches the client.
    let mut big = chat("fb-503", 5);
    big["messages"][0]["content"] = json!("x".repeat(100 * 1024));
    // (A key with room for its 25k-token prompt estimate.)
    let (status, _, body) = gateway.post("/v1/chat/completions", LIMITED_OPENAI, &big).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["type"], "overloaded_error", "the primary's own error: {body}");
    assert!(gateway.openai.requests().is_empty());
    // A small body on the same chain is retried.
    let (status, _, _) = gateway.post("/v1/chat/completions", ALPHA, &chat("fb-503", 5)).await;
    assert_eq!(status, 200);
}
