//! Routing through the flow: every phase and every error, rewrites, gateway-owned headers.

use super::*;
use crate::auth::CREDENTIAL_HEADERS;
use crate::fake::HeaderList;

fn config() -> Rc<Config> {
    TestConfig::new()
        .key("alpha", &["sk-alpha"], json!({}))
        .key("beta", &["sk-beta-old", "sk-beta"], json!({ "models": ["claude-*"] }))
        .build()
}

fn headers_phase(flow: &mut RequestFlow, headers: &mut FakeHeaders, store: &FakeStore, end: bool) -> HeadersAction {
    flow.on_request_headers(&mut Io { headers, store, clock: &NOW }, end)
}

fn body_phase(flow: &mut RequestFlow, headers: &mut FakeHeaders, store: &FakeStore, body: &str) -> BodyAction {
    flow.on_request_body(&mut Io { headers, store, clock: &NOW }, body.as_bytes())
}

fn reply_json(action: &HeadersAction) -> (u16, Value) {
    match action {
        HeadersAction::Respond(reply) => (reply.status, serde_json::from_slice(&reply.body).unwrap()),
        other => panic!("expected a local reply, got {other:?}"),
    }
}

fn body_reply_json(action: &BodyAction) -> (u16, Value) {
    match action {
        BodyAction::Respond(reply) => (reply.status, serde_json::from_slice(&reply.body).unwrap()),
        other => panic!("expected a local reply, got {other:?}"),
    }
}

/// Runs headers then body; returns the final headers and action.
fn post(path: &str, extra: &[(&str, &str)], body: &str) -> (FakeHeaders, BodyAction) {
    let mut flow = RequestFlow::new(Some(config()), 0);
    let store = FakeStore::default();
    let mut headers = request("POST", path, extra);
    assert_eq!(headers_phase(&mut flow, &mut headers, &store, false), HeadersAction::ReadBody);
    let action = body_phase(&mut flow, &mut headers, &store, body);
    (headers, action)
}

#[test]
fn routes_and_rewrites_an_openai_request() {
    let body = r#"{"model":"gpt-mini","messages":[{"role":"user","content":"hi"}]}"#;
    let (mut headers, action) = post(
        "/v1/chat/completions",
        &[("authorization", "Bearer sk-alpha"), ("content-length", &body.len().to_string())],
        body,
    );
    let BodyAction::Forward { new_body: Some(new_body) } = action else { panic!("{action:?}") };
    let sent: Value = serde_json::from_slice(&new_body).unwrap();
    assert_eq!(sent["model"], "gpt-4o-mini-2024-07-18");
    assert_eq!(sent["messages"][0]["content"], "hi");
    assert_eq!(headers.get("content-length"), Some(new_body.len().to_string()));
    assert_eq!(headers.get("x-ai-gateway-cluster").as_deref(), Some("openai_cluster"));
    assert_eq!(headers.get(":authority").as_deref(), Some("api.openai.com"));
    assert_eq!(headers.get("authorization").as_deref(), Some("Bearer sk-provider"));
    assert_eq!(headers.get(KEY_ID_HEADER).as_deref(), Some("alpha"));
}

#[test]
fn keeps_the_body_when_the_model_is_not_renamed() {
    let (mut headers, action) = post("/v1/chat/completions", &[("api-key", "sk-alpha")], r#"{"model":"gpt-4o"}"#);
    assert_eq!(action, BodyAction::Forward { new_body: None });
    assert_eq!(headers.get("api-key"), None);
    assert_eq!(headers.get("x-ai-gateway-cluster").as_deref(), Some("openai_cluster"));
}

#[test]
fn routes_an_anthropic_request_with_a_rotated_key() {
    let (mut headers, action) = post(
        "/v1/messages",
        &[("x-api-key", "sk-beta"), ("anthropic-version", "2023-06-01")],
        r#"{"model":"claude-haiku","max_tokens":5,"messages":[]}"#,
    );
    assert!(matches!(action, BodyAction::Forward { new_body: Some(_) }));
    assert_eq!(headers.get("x-api-key").as_deref(), Some("provider-key"));
    assert_eq!(headers.get("x-ai-gateway-cluster").as_deref(), Some("anthropic"));
    assert_eq!(headers.get(":authority").as_deref(), Some("gateway.local"));
    assert_eq!(headers.get(KEY_ID_HEADER).as_deref(), Some("beta"));
}

#[test]
fn strips_client_sent_gateway_headers_and_credentials() {
    let mut flow = RequestFlow::new(Some(config()), 0);
    let mut headers = request(
        "POST",
        "/v1/chat/completions",
        &[
            ("authorization", "Bearer sk-alpha"),
            ("x-ai-gateway-key-id", "admin"),
            ("x-ai-gateway-cluster", "internal"),
            ("X-AI-Gateway-Anything", "1"),
            ("x-ai-gateway-key-id", "admin2"),
        ],
    );
    assert_eq!(headers_phase(&mut flow, &mut headers, &FakeStore::default(), false), HeadersAction::ReadBody);
    let gateway: Vec<_> =
        headers.entries.iter().filter(|(n, _)| n.to_lowercase().starts_with("x-ai-gateway-")).collect();
    assert_eq!(gateway, vec![&(KEY_ID_HEADER.to_owned(), "alpha".to_owned())]);
    assert_eq!(headers.get("authorization"), None);
}

#[test]
fn authentication_failures_answer_401_in_the_clients_format() {
    let cases: &[(&str, HeaderList, &str)] = &[
        ("/v1/chat/completions", &[], "openai"),
        ("/v1/chat/completions", &[("authorization", "Bearer sk-wrong")], "openai"),
        ("/v1/embeddings", &[("authorization", "Basic x")], "openai"),
        ("/v1/messages", &[("x-api-key", "sk-wrong"), ("anthropic-version", "2023-06-01")], "anthropic"),
        ("/v1/models", &[("x-api-key", "sk-alpha"), ("authorization", "Bearer sk-beta")], "openai"),
    ];
    for (path, extra, format) in cases {
        let mut headers = request("POST", path, extra);
        let action =
            headers_phase(&mut RequestFlow::new(Some(config()), 0), &mut headers, &FakeStore::default(), false);
        let (status, body) = reply_json(&action);
        assert_eq!(status, 401, "{path} {extra:?}");
        match *format {
            "openai" => assert_eq!(body["error"]["code"], "invalid_api_key"),
            _ => assert_eq!(body["error"]["type"], "authentication_error"),
        }
        assert!(!body.to_string().contains("sk-"), "the key must not be echoed: {body}");
        assert!(CREDENTIAL_HEADERS.iter().all(|name| headers.get(name).is_none()));
    }
}

#[test]
fn body_errors_answer_in_the_clients_format() {
    let openai = [("authorization", "Bearer sk-alpha")];
    let cases: &[(&str, HeaderList, &str, u16, &str)] = &[
        ("/v1/chat/completions", &openai, "{not json", 400, "invalid_json"),
        ("/v1/chat/completions", &openai, r#"{"messages":[]}"#, 400, "missing_model"),
        ("/v1/chat/completions", &openai, r#"{"model":7}"#, 400, "invalid_model"),
        ("/v1/completions", &openai, r#"{"model":"nope"}"#, 404, "model_not_found"),
        (
            "/v1/chat/completions",
            &[("authorization", "Bearer sk-beta")],
            r#"{"model":"gpt-4o"}"#,
            403,
            "model_not_allowed",
        ),
    ];
    for (path, extra, body, status, code) in cases {
        let (_, action) = post(path, extra, body);
        let (got_status, json) = body_reply_json(&action);
        assert_eq!((got_status, json["error"]["code"].as_str()), (*status, Some(*code)), "{body}");
    }
    let (_, action) = post("/v1/messages", &[("x-api-key", "sk-beta")], r#"{"model":"gpt-4o"}"#);
    let (status, json) = body_reply_json(&action);
    assert_eq!(
        (status, json["type"].as_str(), json["error"]["type"].as_str()),
        (403, Some("error"), Some("permission_error"))
    );
    let (_, action) = post("/v1/messages", &[("x-api-key", "sk-beta")], r#"{"model":"nope"}"#);
    assert_eq!(body_reply_json(&action).1["error"]["type"], "not_found_error");
}

#[test]
fn header_phase_answers() {
    let alpha = [("authorization", "Bearer sk-alpha")];
    let beta = [("authorization", "Bearer sk-beta")];
    let cases: &[(&str, &str, HeaderList, bool, u16)] = &[
        ("GET", "/v1/models", &alpha, true, 200),
        ("GET", "/v1/models/gpt-4o", &alpha, true, 200),
        ("GET", "/v1/models/gpt-4o", &beta, true, 404),
        ("GET", "/v1/files", &alpha, true, 404),
        ("DELETE", "/v1/models", &alpha, true, 405),
        ("GET", "/v1/chat/completions", &alpha, true, 405),
        ("POST", "/v1/chat/completions", &alpha, true, 400),
    ];
    for (method, path, extra, end_of_stream, status) in cases {
        let mut headers = request(method, path, extra);
        let action = headers_phase(
            &mut RequestFlow::new(Some(config()), 0),
            &mut headers,
            &FakeStore::default(),
            *end_of_stream,
        );
        assert_eq!(reply_json(&action).0, *status, "{method} {path}");
    }
    let mut headers = request("GET", "/v1/models", &beta);
    let (_, list) =
        reply_json(&headers_phase(&mut RequestFlow::new(Some(config()), 0), &mut headers, &FakeStore::default(), true));
    let ids: Vec<&str> = list["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["claude-haiku"], "`claude-*` does not match `claude`");
}

#[test]
fn compressed_request_bodies_are_refused() {
    let mut headers =
        request("POST", "/v1/chat/completions", &[("authorization", "Bearer sk-alpha"), ("content-encoding", "gzip")]);
    let action = headers_phase(&mut RequestFlow::new(Some(config()), 0), &mut headers, &FakeStore::default(), false);
    assert_eq!(reply_json(&action).0, 415);
}

#[test]
fn without_configuration_every_request_gets_500() {
    let mut headers = request("POST", "/v1/chat/completions", &[("authorization", "Bearer sk-alpha")]);
    let action = headers_phase(&mut RequestFlow::new(None, 0), &mut headers, &FakeStore::default(), false);
    assert_eq!(reply_json(&action).0, 500);
}

#[test]
fn a_custom_cluster_header_cannot_be_sent_by_the_client() {
    let config = TestConfig::new()
        .key("alpha", &["sk-alpha"], json!({}))
        .with("cluster_header", json!("x-route-cluster"))
        .build();
    let mut flow = RequestFlow::new(Some(config), 0);
    let mut headers =
        request("POST", "/v1/chat/completions", &[("authorization", "Bearer sk-alpha"), ("x-route-cluster", "admin")]);
    let store = FakeStore::default();
    headers_phase(&mut flow, &mut headers, &store, false);
    assert_eq!(headers.get("x-route-cluster"), None);
    body_phase(&mut flow, &mut headers, &store, r#"{"model":"gpt"}"#);
    assert_eq!(headers.get("x-route-cluster").as_deref(), Some("openai_cluster"));
}

#[test]
fn upstream_paths_follow_the_configured_prefix_and_query() {
    let config = TestConfig::new()
        .key("alpha", &["sk-alpha"], json!({}))
        .with(
            "upstreams",
            json!({
                "azure": { "path_prefix": "/openai/deployments/{model}", "query": "api-version=2024-10-21",
                           "headers": { "api-key": "azure-key" } },
                "gemini": { "path_prefix": "/v1beta/openai" }
            }),
        )
        .with(
            "models",
            json!({ "prod": { "upstream": "azure", "model": "gpt-4o-prod" }, "gemini": { "upstream": "gemini" } }),
        )
        .build();
    let store = FakeStore::default();
    let cases = [
        (
            "prod",
            "/v1/chat/completions?api-version=client",
            "/openai/deployments/gpt-4o-prod/chat/completions?api-version=2024-10-21",
        ),
        ("gemini", "/v1/chat/completions", "/v1beta/openai/chat/completions"),
        ("gemini", "/v1/embeddings?x=1&note=hi", "/v1beta/openai/embeddings"),
    ];
    for (model, client_path, upstream_path) in cases {
        let body = json!({ "model": model, "input": "hi", "messages": [] }).to_string();
        let mut trip =
            Trip::send(&config, &store, NOW, request("POST", client_path, &[("api-key", "sk-alpha")]), &body);
        assert!(trip.outcome.is_ok(), "{model} {client_path}");
        assert_eq!(trip.headers.get(":path").as_deref(), Some(upstream_path), "{model} {client_path}");
    }
}
