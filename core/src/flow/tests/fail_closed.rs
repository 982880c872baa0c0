//! Fail-closed tests against the fake host: nothing reaches a cluster without the flow's decision,
//! client headers that choose billing never reach a provider, credentials are never ambiguous.

use super::*;

fn config() -> Rc<Config> {
    TestConfig::new().key("alpha", &["sk-alpha"], json!({})).build()
}

fn headers(path: &str, extra: &[(&str, &str)]) -> FakeHeaders {
    request("POST", path, extra)
}

/// Runs the headers phase (expecting `ReadBody`) and the body phase.
fn send(path: &str, extra: &[(&str, &str)], body: &str) -> (FakeHeaders, BodyAction) {
    let mut flow = RequestFlow::new(Some(config()), 0);
    let store = FakeStore::default();
    let mut headers = headers(path, extra);
    let read = flow.on_request_headers(&mut Io { headers: &mut headers, store: &store, clock: &NOW }, false);
    assert_eq!(read, HeadersAction::ReadBody, "{extra:?}");
    let action = flow.on_request_body(&mut Io { headers: &mut headers, store: &store, clock: &NOW }, body.as_bytes());
    (headers, action)
}

fn status_of(action: &BodyAction) -> Option<(u16, Value)> {
    match action {
        BodyAction::Respond(reply) => Some((reply.status, serde_json::from_slice(&reply.body).unwrap())),
        _ => None,
    }
}

#[test]
fn a_request_answered_at_the_headers_is_held_if_its_body_still_arrives() {
    let mut flow = RequestFlow::new(Some(config()), 0);
    let store = FakeStore::default();
    let mut request = headers("/v1/chat/completions", &[("authorization", "Bearer sk-wrong")]);
    let answered = flow.on_request_headers(&mut Io { headers: &mut request, store: &store, clock: &NOW }, false);
    assert!(matches!(answered, HeadersAction::Respond(_)));
    // Trailers or a last data frame after the local reply: the request stays stopped.
    let body = br#"{"model":"gpt"}"#;
    let action = flow.on_request_body(&mut Io { headers: &mut request, store: &store, clock: &NOW }, body);
    assert_eq!(action, BodyAction::Hold);
    assert_eq!(request.get("x-ai-gateway-cluster"), None);
}

#[test]
fn a_body_before_any_decision_is_refused_not_forwarded() {
    let mut flow = RequestFlow::new(Some(config()), 0);
    let store = FakeStore::default();
    let mut request = headers("/v1/chat/completions", &[("authorization", "Bearer sk-alpha")]);
    let action = flow.on_request_body(&mut Io { headers: &mut request, store: &store, clock: &NOW }, b"{}");
    assert_eq!(status_of(&action).map(|(status, _)| status), Some(500));
    let again = flow.on_request_body(&mut Io { headers: &mut request, store: &store, clock: &NOW }, b"{}");
    assert_eq!(again, BodyAction::Hold);
}

#[test]
fn trailers_with_no_body_get_a_400_in_the_clients_format() {
    // The host calls the body phase with what was buffered (nothing) when trailers end the request.
    let (_, action) = send("/v1/messages", &[("x-api-key", "sk-alpha"), ("anthropic-version", "2023-06-01")], "");
    let (status, body) = status_of(&action).unwrap();
    assert_eq!((status, body["type"].as_str()), (400, Some("error")));
}

#[test]
fn billing_and_identity_headers_are_removed_unless_the_upstream_allows_them() {
    let client_headers = [
        ("authorization", "Bearer sk-alpha"),
        ("openai-organization", "org-victim"),
        ("openai-project", "proj-victim"),
        ("cookie", "session=1"),
        ("user-agent", "OpenAI/Python 1.0"),
        ("content-type", "application/json"),
        ("openai-beta", "assistants=v2"),
        ("accept-encoding", "gzip"),
        ("x-request-id", "req-1"),
    ];
    let (mut sent, action) = send("/v1/chat/completions", &client_headers, r#"{"model":"gpt"}"#);
    assert!(matches!(action, BodyAction::Forward { .. }), "{action:?}");
    for removed in ["openai-organization", "openai-project", "cookie", "user-agent", "accept-encoding"] {
        assert_eq!(sent.get(removed), None, "{removed}");
    }
    for (kept, value) in [
        ("content-type", "application/json"),
        ("openai-beta", "assistants=v2"),
        ("x-request-id", "req-1"),
        ("authorization", "Bearer sk-provider"),
    ] {
        assert_eq!(sent.get(kept).as_deref(), Some(value), "{kept}");
    }

    let (mut allowed, _) = send("/v1/chat/completions", &client_headers, r#"{"model":"gpt-org"}"#);
    assert_eq!(allowed.get("openai-organization").as_deref(), Some("org-victim"));
    assert_eq!(allowed.get("cookie").as_deref(), Some("session=1"));
    assert_eq!(allowed.get("openai-project"), None);
    assert_eq!(allowed.get("authorization"), None, "the client's key never goes upstream");
}

#[test]
fn repeated_or_conflicting_credentials_are_a_401() {
    let cases: &[&[(&str, &str)]] = &[
        &[("x-api-key", "sk-alpha"), ("x-api-key", "bogus")],
        &[("x-api-key", "bogus"), ("x-api-key", "sk-alpha")],
        &[("authorization", "Bearer sk-alpha"), ("authorization", "Bearer sk-alpha")],
        &[("authorization", "Bearer sk-alpha"), ("api-key", "other")],
    ];
    for extra in cases {
        let mut flow = RequestFlow::new(Some(config()), 0);
        let mut request = headers("/v1/chat/completions", extra);
        let action = flow
            .on_request_headers(&mut Io { headers: &mut request, store: &FakeStore::default(), clock: &NOW }, false);
        let HeadersAction::Respond(reply) = action else { panic!("{extra:?} was accepted") };
        assert_eq!(reply.status, 401, "{extra:?}");
    }
}

#[test]
fn a_client_of_either_api_reaches_a_provider_of_the_other_translated() {
    // An OpenAI client, an Anthropic provider: the body, path and version header are Anthropic's.
    let body =
        r#"{"model":"claude","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"hi"}]}"#;
    let (mut sent, action) = send("/v1/chat/completions", &[("authorization", "Bearer sk-alpha")], body);
    let BodyAction::Forward { new_body: Some(new_body) } = action else { panic!("{action:?}") };
    let translated: Value = serde_json::from_slice(&new_body).unwrap();
    assert_eq!((translated["system"].as_str(), translated["max_tokens"].as_u64()), (Some("Be brief."), Some(4096)));
    assert_eq!(translated["messages"][0]["role"], "user");
    assert_eq!(sent.get(":path").as_deref(), Some("/v1/messages"));
    assert_eq!(sent.get("anthropic-version").as_deref(), Some("2023-06-01"));
    assert_eq!(sent.get("x-api-key").as_deref(), Some("provider-key"));
    assert_eq!(sent.get("content-length"), Some(new_body.len().to_string()));

    // An Anthropic client, an OpenAI provider.
    let anthropic = [("x-api-key", "sk-alpha"), ("anthropic-version", "2023-06-01")];
    let body = r#"{"model":"gpt","max_tokens":5,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let (mut sent, action) = send("/v1/messages", &anthropic, body);
    let BodyAction::Forward { new_body: Some(new_body) } = action else { panic!("{action:?}") };
    let translated: Value = serde_json::from_slice(&new_body).unwrap();
    assert_eq!((translated["model"].as_str(), translated["max_tokens"].as_u64()), (Some("gpt-real"), Some(5)));
    assert_eq!(translated["stream_options"]["include_usage"], true);
    assert_eq!(sent.get(":path").as_deref(), Some("/v1/chat/completions"));
    assert_eq!(
        (sent.get("anthropic-version"), sent.get("authorization").as_deref()),
        (None, Some("Bearer sk-provider"))
    );

    // What has no equivalent is refused, naming the field or the endpoint.
    let (_, action) =
        send("/v1/responses", &[("authorization", "Bearer sk-alpha")], r#"{"model":"claude","input":"hi"}"#);
    let (status, body) = status_of(&action).unwrap();
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("unsupported_api")));
    let (_, action) = send(
        "/v1/chat/completions",
        &[("authorization", "Bearer sk-alpha")],
        r#"{"model":"claude","n":2,"messages":[]}"#,
    );
    let (status, body) = status_of(&action).unwrap();
    assert_eq!((status, body["error"]["param"].as_str()), (400, Some("n")));
}

#[test]
fn keys_in_the_query_are_refused_and_errors_never_echo_the_path() {
    let secret = "sk-alpha";
    let cases = [
        ("POST", "/v1/chat/completions?api_key=sk-alpha", 401),
        ("POST", "/v1/chat/completions?x=1&KEY=sk-alpha", 401),
        ("POST", "/v1/chat/completions?%61pi_key=sk-alpha", 401),
        ("POST", "/v1/chat/completions?api%255Fkey=sk-alpha", 401),
        ("POST", "/v1/chat/completions?x=1;api_key=sk-alpha", 401),
        ("POST", "/v1/chat/completions?api_key[]=sk-alpha", 401),
        ("POST", "/v1/chat/completions?X-Api-Key=sk-alpha", 401),
        ("POST", "/v1/chat/completions?authorization=Bearer%20sk-alpha", 401),
        ("GET", "/v1/chat/completions?access_token=sk-alpha", 401),
        ("POST", "/v1/chat/completion?api_key=sk-alpha", 401),
        ("POST", "/v1/sk-alpha/chat", 404),
        ("GET", "/v1/chat/completions/sk-alpha", 404),
        ("DELETE", "/v1/models?note=sk-alpha", 405),
    ];
    for (method, path, status) in cases {
        let mut flow = RequestFlow::new(Some(config()), 0);
        let mut headers = request(method, path, &[("authorization", "Bearer sk-alpha")]);
        let action = flow
            .on_request_headers(&mut Io { headers: &mut headers, store: &FakeStore::default(), clock: &NOW }, false);
        let HeadersAction::Respond(reply) = action else { panic!("{method} {path} was read") };
        assert_eq!(reply.status, status, "{method} {path}");
        assert!(!String::from_utf8_lossy(&reply.body).contains(secret), "{method} {path} echoed the key");
    }
}

#[test]
fn every_answer_to_a_key_with_limits_carries_its_rate_limit_headers() {
    let limits = json!({ "limits": { "requests_per_hour": 10, "tokens_per_hour": 1000 } });
    let config = TestConfig::new().key("team", &["sk-team"], limits).build();
    let store = FakeStore::default();
    let auth = [("authorization", "Bearer sk-team")];
    let header_phase = [("GET", "/v1/models"), ("GET", "/v1/nope"), ("GET", "/v1/chat/completions")];
    for (method, path) in header_phase {
        let mut flow = RequestFlow::new(Some(config.clone()), 0);
        let mut headers = request(method, path, &auth);
        let HeadersAction::Respond(reply) =
            flow.on_request_headers(&mut Io { headers: &mut headers, store: &store, clock: &NOW }, true)
        else {
            panic!("{method} {path} was read")
        };
        for name in ["x-ratelimit-remaining-requests", "x-ratelimit-remaining-tokens"] {
            assert!(header(&reply.headers, name).is_some(), "{method} {path}: {name} missing");
        }
    }
    for body in [r#"{"model":"nope"}"#, "{not json", r#"{"model":"claude","max_tokens":5}"#] {
        let trip = Trip::send(&config, &store, NOW, request("POST", "/v1/chat/completions", &auth), body);
        let Err(reply) = &trip.outcome else { panic!("{body} was forwarded") };
        assert_eq!(header(&reply.headers, "x-ratelimit-limit-tokens"), Some("1000"), "{body}");
        assert!(header(&reply.headers, "x-ratelimit-remaining-requests").is_some(), "{body}");
    }
}

#[test]
fn provider_account_headers_are_removed_from_responses() {
    let config = TestConfig::new().key("alpha", &["sk-alpha"], json!({})).build();
    let store = FakeStore::default();
    let mut trip = Trip::send(
        &config,
        &store,
        NOW,
        request("POST", "/v1/chat/completions", &[("authorization", "Bearer sk-alpha")]),
        r#"{"model":"gpt"}"#,
    );
    let mut response = FakeHeaders::new(&[
        (":status", "200"),
        ("content-type", "application/json"),
        ("x-ratelimit-remaining-requests", "4999"),
        ("openai-organization", "org-operator"),
        ("set-cookie", "__cf_bm=1"),
        ("retry-after", "1"),
    ]);
    trip.flow.on_response_headers(&mut response, &NOW, false).apply_to(&mut response);
    let names = response.names();
    assert_eq!(names, [":status", "content-type", "retry-after"], "a key without limits sees no x-ratelimit-*");
}

#[test]
fn bodies_over_the_limit_get_a_413_in_the_clients_format_whatever_the_protocol() {
    let limits = json!({ "limits": { "tokens_per_day": 1000 } });
    let config =
        TestConfig::new().key("alpha", &["sk-alpha"], limits).with("max_request_body_bytes", json!(100)).build();
    let store = FakeStore::default();
    let anthropic = [("x-api-key", "sk-alpha"), ("anthropic-version", "2023-06-01")];
    // Arriving in pieces: refused as soon as the buffered body passes the limit.
    let mut flow = RequestFlow::new(Some(config.clone()), 0);
    let mut headers = request("POST", "/v1/messages", &anthropic);
    flow.on_request_headers(&mut Io { headers: &mut headers, store: &store, clock: &NOW }, false);
    let mut io = Io { headers: &mut headers, store: &store, clock: &NOW };
    assert_eq!(flow.on_request_body_progress(&mut io, 100), BodyProgress::KeepReading);
    let BodyProgress::Respond(reply) = flow.on_request_body_progress(&mut io, 101) else { panic!("read on") };
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!((reply.status, body["error"]["type"].as_str()), (413, Some("request_too_large")));
    assert_eq!(header(&reply.headers, "x-ratelimit-limit-tokens"), Some("1000"));
    let late = flow.on_request_body(&mut Io { headers: &mut headers, store: &store, clock: &NOW }, &[b' '; 101]);
    assert_eq!(late, BodyAction::Hold, "the answered request stays stopped");
    // Arriving whole (the host saw it only at the end).
    let padded = format!(r#"{{"model":"gpt","pad":"{}"}}"#, "x".repeat(100));
    let trip =
        Trip::send(&config, &store, NOW, request("POST", "/v1/chat/completions", &[("api-key", "sk-alpha")]), &padded);
    let Err(reply) = &trip.outcome else { panic!("an oversize body was forwarded") };
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!((reply.status, body["error"]["code"].as_str()), (413, Some("request_too_large")));
}
