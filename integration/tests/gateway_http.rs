//! End-to-end over raw HTTP through a real Envoy: Anthropic format, spoofed headers, weighted
//! routing, every client error, large and chunked bodies.

mod common;

use common::*;
use futures::StreamExt;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_messages_json_and_stream() {
    let gateway = TestGateway::start().await;
    let request =
        json!({ "model": "claude-haiku", "max_tokens": 7, "messages": [ { "role": "user", "content": "hi" } ] });
    let response = gateway.post_messages(BETA, &request).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["content"][0]["text"], "Hello from anthropic");
    let seen = gateway.anthropic.last_request().unwrap();
    assert_eq!(seen.json()["model"], "claude-3-5-haiku-latest");
    assert_eq!(seen.header("x-api-key"), Some(ANTHROPIC_PROVIDER_KEY));
    assert_eq!(seen.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(seen.header("x-ai-gateway-key-id"), Some("beta"));
    assert_eq!(seen.header("host"), Some("api.anthropic.test"));

    let mut streamed = request.clone();
    streamed["stream"] = json!(true);
    let response = gateway.post_messages(BETA, &streamed).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut text = String::new();
    let mut chunks = response.bytes_stream();
    while let Some(chunk) = chunks.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    assert!(text.starts_with("event: message_start\n"), "{text}");
    assert!(
        text.contains("\"output_tokens\":7")
            && text.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_errors_use_anthropics_format() {
    let gateway = TestGateway::start().await;
    let request = json!({ "model": "claude-haiku", "max_tokens": 5, "messages": [] });
    let cases = [
        ("sk-wrong", request.clone(), 401, "authentication_error"),
        (ALPHA, json!({ "model": "nope", "max_tokens": 5, "messages": [] }), 404, "not_found_error"),
        (BETA, json!({ "model": "gpt-4o", "max_tokens": 5, "messages": [] }), 403, "permission_error"),
        (BETA, json!({ "max_tokens": 5, "messages": [] }), 400, "invalid_request_error"),
    ];
    for (key, body, status, error_type) in cases {
        let response = gateway.post_messages(key, &body).await;
        assert_eq!(response.status(), status, "{body}");
        let body: Value = response.json().await.unwrap();
        assert_eq!((body["type"].as_str(), body["error"]["type"].as_str()), (Some("error"), Some(error_type)));
    }
    assert!(gateway.anthropic.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_sent_gateway_headers_and_keys_never_reach_the_upstream() {
    let gateway = TestGateway::start().await;
    let response = gateway
        .http
        .post(gateway.url("/v1/chat/completions"))
        .header("authorization", format!("Bearer {ALPHA}"))
        .header("x-api-key", ALPHA)
        .header("x-ai-gateway-key-id", "admin")
        .header("X-AI-Gateway-Cluster", "anthropic")
        .header("x-ai-gateway-anything", "1")
        .json(&json!({ "model": "gpt-4o", "messages": [] }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(gateway.anthropic.requests().is_empty(), "a client must not pick the cluster");
    let seen = gateway.openai.last_request().unwrap();
    let gateway_headers: Vec<_> = seen.headers.iter().filter(|(n, _)| n.starts_with("x-ai-gateway-")).collect();
    assert_eq!(gateway_headers, [&("x-ai-gateway-key-id".to_owned(), "alpha".to_owned())]);
    assert_eq!(seen.header("x-api-key"), None);
    assert_eq!(seen.header("authorization"), Some(OPENAI_PROVIDER_KEY));
    assert!(seen.headers.iter().all(|(_, v)| !v.contains(ALPHA)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_targets_split_traffic_in_proportion() {
    let gateway = TestGateway::start().await;
    let requests = 400;
    let request = json!({ "model": "split", "messages": [] });
    let results = futures::stream::iter(0..requests)
        .map(|_| gateway.post("/v1/chat/completions", ALPHA, &request))
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    assert!(results.iter().all(|(status, _, _)| *status == 200));
    let (a, b) = (gateway.openai.requests(), gateway.openai_b.requests());
    assert_eq!(a.len() + b.len(), requests);
    // Weights 3:1, so 300 expected; a binomial spread of sd 8.7 makes 240..=360 a 7-sigma band.
    assert!((240..=360).contains(&a.len()), "openai-a got {} of {requests}", a.len());
    assert!(a.iter().all(|r| r.json()["model"] == "split-a") && b.iter().all(|r| r.json()["model"] == "split-b"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_openai_errors() {
    let gateway = TestGateway::start().await;
    let send = |method: reqwest::Method, path: &'static str, body: &'static str| {
        let request = gateway.http.request(method, gateway.url(path)).bearer_auth(ALPHA).body(body);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap();
            (status, body["error"]["code"].as_str().unwrap_or_default().to_owned())
        }
    };
    use reqwest::Method;
    let cases = [
        (Method::POST, "/v1/chat/completions", "{\"model\": ", 400, "invalid_json"),
        (Method::POST, "/v1/chat/completions", "[]", 400, "invalid_json"),
        (Method::POST, "/v1/chat/completions", "{\"messages\": []}", 400, "missing_model"),
        (Method::POST, "/v1/chat/completions", "{\"model\": 4}", 400, "invalid_model"),
        (Method::POST, "/v1/chat/completions", "{\"model\":\"gpt-4o\",\"model\":\"split\"}", 400, "invalid_json"),
        (Method::POST, "/v1/chat/completions", "", 400, "invalid_json"),
        (Method::GET, "/v1/chat/completions", "", 405, "method_not_allowed"),
        (Method::POST, "/v1/files", "{}", 404, "unknown_url"),
        (Method::GET, "/", "", 404, "unknown_url"),
    ];
    for (method, path, body, status, code) in cases {
        assert_eq!(send(method.clone(), path, body).await, (status, code.to_owned()), "{method} {path} {body}");
    }
    assert!(gateway.openai.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_and_chunked_bodies_are_rewritten_with_a_correct_length() {
    let gateway = TestGateway::start().await;
    let prompt = "x".repeat(3 * 1024 * 1024);
    let body = json!({ "model": "gpt-mini", "messages": [ { "role": "user", "content": prompt } ] }).to_string();
    let (status, _, _) = gateway.post("/v1/chat/completions", ALPHA, &serde_json::from_str(&body).unwrap()).await;
    assert_eq!(status, 200);
    let seen = gateway.openai.last_request().unwrap();
    assert_eq!(seen.json()["messages"][0]["content"].as_str().map(str::len), Some(prompt.len()));
    assert_eq!(seen.header("content-length"), Some(seen.body.len().to_string().as_str()));

    // Chunked upload without content-length, split mid-`model`.
    let parts: Vec<Result<Vec<u8>, std::io::Error>> =
        vec![Ok(b"{\"mod".to_vec()), Ok(b"el\": \"gpt-m".to_vec()), Ok(b"ini\", \"messages\": []}".to_vec())];
    let response = gateway
        .http
        .post(gateway.url("/v1/chat/completions"))
        .bearer_auth(ALPHA)
        .body(reqwest::Body::wrap_stream(futures::stream::iter(parts)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let seen = gateway.openai.last_request().unwrap();
    assert_eq!(seen.json()["model"], "gpt-4o-mini-2024-07-18");
    assert_eq!(seen.header("content-length"), Some(seen.body.len().to_string().as_str()));
}
