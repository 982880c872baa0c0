//! Fallback chains through the flow: the listener's filter hands the request to the chain's
//! aggregate cluster untouched (with the retry policy, and the headers every attempt restarts
//! from); each attempt's filter rewrites it for its provider, whatever the attempt before did to
//! the shared headers; the answer is named, counted and billed to the provider that gave it.

use super::*;
use crate::flow::attempt::{AttemptFlow, AttemptTarget, ATTEMPT_HEADERS_PROPERTY, UPSTREAM_HEADER};

/// The test configuration with `chained`: `openai` (model `primary`), then `anthropic` (model
/// `claude-fallback`), then `org`, on the aggregate cluster `chained_chain`.
fn document(role: &str) -> Value {
    let mut config =
        TestConfig::new().key("alpha", &["sk-alpha"], json!({ "limits": { "tokens_per_day": 100_000 } })).0;
    config["models"]["chained"] = json!({
        "upstream": "openai", "model": "primary",
        "fallbacks": [ { "upstream": "anthropic", "model": "claude-fallback" }, { "upstream": "org" } ],
        "fallback_cluster": "chained_chain" });
    // Each provider of a chain needs a cluster of its own.
    config["upstreams"]["org"]["cluster"] = json!("org_cluster");
    config["role"] = json!(role);
    config
}

fn config(role: &str) -> Rc<Config> {
    Rc::new(Config::parse(document(role).to_string().as_bytes()).unwrap())
}

const CHAT: &str = r#"{"model":"chained","max_tokens":20,"messages":[{"role":"user","content":"hi"}]}"#;

fn target(provider: &str, saved: Option<String>) -> AttemptTarget {
    AttemptTarget { cluster: Some("chained_chain".into()), provider: Some(provider.into()), request_headers: saved }
}

/// The listener's filter on a chain request: the saved headers for the attempts, and the trip.
fn downstream(path: &str, auth: &[(&str, &str)]) -> (Trip, String, FakeStore) {
    let store = FakeStore::default();
    let config = config("downstream");
    let mut extra = auth.to_vec();
    extra.extend([("content-type", "application/json"), ("openai-organization", "org-1"), ("cookie", "c=1")]);
    let mut trip = Trip::send(&config, &store, NOW, request("POST", path, &extra), CHAT);
    let properties = trip.flow.take_properties();
    let saved = properties.iter().find(|(name, _)| *name == ATTEMPT_HEADERS_PROPERTY).map(|(_, v)| v.clone());
    (trip, saved.expect("the attempt headers are saved"), store)
}

#[test]
fn the_listener_hands_a_chain_request_to_its_aggregate_cluster_untouched() {
    let (mut trip, saved, _) = downstream("/v1/chat/completions", &[("authorization", "Bearer sk-alpha")]);
    assert_eq!(trip.outcome, Ok(None), "the body goes as the client sent it");
    let headers = &mut trip.headers;
    assert_eq!(headers.get("x-ai-gateway-cluster").as_deref(), Some("chained_chain"));
    assert_eq!(
        headers.get("x-envoy-retry-on").as_deref(),
        Some("connect-failure,refused-stream,reset,5xx,retriable-status-codes")
    );
    assert_eq!(headers.get("x-envoy-retriable-status-codes").as_deref(), Some("429"));
    assert_eq!(headers.get("x-envoy-max-retries").as_deref(), Some("2"));
    assert_eq!(headers.get("x-envoy-upstream-rq-per-try-timeout-ms").as_deref(), Some("120000"));
    assert_eq!(headers.get(":authority").as_deref(), Some("gateway.local"), "each attempt sets its own");
    assert_eq!(headers.get("authorization"), None, "the client's key never travels");
    // `org` forwards openai-organization and cookie: they are kept for its attempt.
    let saved: Vec<(String, String)> = serde_json::from_str(&saved).unwrap();
    let names: Vec<&str> = saved.iter().map(|(name, _)| name.as_str()).collect();
    assert!(names.contains(&"openai-organization") && names.contains(&"cookie"), "{names:?}");
    assert!(!names.contains(&"authorization") && !names.contains(&"x-ai-gateway-cluster"), "{names:?}");
}

#[test]
fn the_answer_names_the_provider_that_gave_it_and_is_billed_once() {
    let (mut trip, _, store) = downstream("/v1/chat/completions", &[("authorization", "Bearer sk-alpha")]);
    let mut response = FakeHeaders::new(&[
        (":status", "200"),
        ("content-type", "application/json"),
        (UPSTREAM_HEADER, "anthropic"),
        ("x-envoy-attempt-count", "2"),
    ]);
    trip.flow.on_response_headers(&mut response, &NOW, false).apply_to(&mut response);
    assert_eq!((response.get(UPSTREAM_HEADER), response.get("x-envoy-attempt-count")), (None, None));
    let body = br#"{"object":"chat.completion","choices":[],"usage":{"prompt_tokens":10,"completion_tokens":7}}"#;
    trip.flow.on_response_body(body, true);
    let summary = trip.flow.on_done(&store, &NOW).unwrap();
    assert_eq!((summary.upstream.as_deref(), summary.attempts), (Some("anthropic"), Some(2)));
    assert_eq!(summary.usage.map(|u| (u.input_tokens, u.output_tokens)), Some((10, 7)));
    let properties = trip.flow.take_properties();
    assert!(properties.contains(&("ai_gw_upstream", "anthropic".to_owned())), "{properties:?}");
    assert!(properties.contains(&("ai_gw_attempts", "2".to_owned())), "{properties:?}");
}

#[test]
fn a_name_outside_the_chain_is_not_believed_and_envoys_own_error_speaks_the_clients_api() {
    let auth = [("x-api-key", "sk-alpha"), ("anthropic-version", "2023-06-01")];
    let (mut trip, _, store) = downstream("/v1/messages", &auth);
    // Envoy's 503 after every attempt failed to connect: no attempt saw it.
    let mut response = FakeHeaders::new(&[(":status", "503"), ("content-type", "application/json")]);
    let action = trip.flow.on_response_headers(&mut response, &NOW, false);
    assert!(action.hold_body && action.remove.contains(&"content-length".to_owned()));
    let replaced = trip.flow.on_response_body(br#"{"error":{"message":"upstream connect error"}}"#, true);
    let error: Value = serde_json::from_slice(&replaced.replace.unwrap()).unwrap();
    assert_eq!((error["type"].as_str(), error["error"]["type"].as_str()), (Some("error"), Some("overloaded_error")));
    let summary = trip.flow.on_done(&store, &NOW).unwrap();
    assert_eq!(summary.upstream.as_deref(), Some("openai"), "no provider answered: the chain's first");

    let (mut trip, _, store) = downstream("/v1/chat/completions", &[("authorization", "Bearer sk-alpha")]);
    let mut response =
        FakeHeaders::new(&[(":status", "200"), ("content-type", "application/json"), (UPSTREAM_HEADER, "elsewhere")]);
    trip.flow.on_response_headers(&mut response, &NOW, false);
    trip.flow.on_response_body(br#"{"usage":{"prompt_tokens":1,"completion_tokens":1}}"#, true);
    assert_eq!(trip.flow.on_done(&store, &NOW).unwrap().upstream.as_deref(), Some("openai"));
}

/// One attempt's filter on headers left by the listener's filter and by an earlier attempt.
fn attempt(provider: &str, saved: Option<String>, mut headers: FakeHeaders) -> (AttemptFlow, FakeHeaders, BodyAction) {
    let store = FakeStore::default();
    let mut flow = AttemptFlow::new(Some(config("upstream")));
    assert_eq!(
        flow.on_request_headers(&mut Io { headers: &mut headers, store: &store, clock: &NOW }),
        HeadersAction::ReadBody
    );
    let io = &mut Io { headers: &mut headers, store: &store, clock: &NOW };
    let action = flow.on_request_body(io, CHAT.as_bytes(), &target(provider, saved));
    (flow, headers, action)
}

#[test]
fn each_attempt_starts_again_from_the_saved_headers_and_is_rewritten_for_its_provider() {
    let (trip, saved, _) = downstream("/v1/chat/completions", &[("authorization", "Bearer sk-alpha")]);
    // The first attempt (openai) rewrote the shared headers.
    let (_, after_first, action) = attempt("openai", Some(saved.clone()), trip.headers.clone());
    let BodyAction::Forward { new_body: Some(body) } = action else { panic!("{action:?}") };
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["model"], "primary");
    // The second (anthropic) sees those headers, and must not inherit any of them.
    let (mut flow, mut headers, action) = attempt("anthropic", Some(saved.clone()), after_first.clone());
    let BodyAction::Forward { new_body: Some(body) } = action else { panic!("{action:?}") };
    let sent: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!((sent["model"].as_str(), sent["max_tokens"].as_u64()), (Some("claude-fallback"), Some(20)));
    assert_eq!(headers.get(":path").as_deref(), Some("/v1/messages"));
    assert_eq!(headers.get("x-api-key").as_deref(), Some("provider-key"));
    assert_eq!(headers.get(":authority").as_deref(), Some("gateway.local"), "openai's authority is not inherited");
    for gone in ["authorization", "openai-organization", "cookie", "x-ai-gateway-cluster", "x-envoy-retry-on"] {
        assert_eq!(headers.get(gone), None, "{gone} reached anthropic");
    }
    assert_eq!(headers.get("content-length"), Some(body.len().to_string()));
    // Its answer comes back in the client's API, named.
    let mut response =
        FakeHeaders::new(&[(":status", "200"), ("content-type", "application/json"), (UPSTREAM_HEADER, "spoofed")]);
    let action = flow.on_response_headers(&mut response);
    action.apply_to(&mut response);
    assert!(action.hold_body);
    assert_eq!(response.get(UPSTREAM_HEADER).as_deref(), Some("anthropic"));
    let answer = br#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-fallback","content":[{"type":"text","text":"Hi"}],"stop_reason":"end_turn","usage":{"input_tokens":10,"output_tokens":3}}"#;
    let translated = flow.on_response_body(answer, true).replace.unwrap();
    let translated: Value = serde_json::from_slice(&translated).unwrap();
    assert_eq!(
        (translated["object"].as_str(), translated["model"].as_str()),
        (Some("chat.completion"), Some("chained"))
    );
    assert_eq!(translated["usage"]["completion_tokens"], 3);
    // The third (org) forwards the organization header, and keeps the client's model name.
    let (_, mut headers, action) = attempt("org", Some(saved), headers.clone());
    assert_eq!(action, BodyAction::Forward { new_body: None });
    assert_eq!(
        (headers.get(":path").as_deref(), headers.get("openai-organization").as_deref()),
        (Some("/v1/chat/completions"), Some("org-1"))
    );
    assert_eq!((headers.get("x-api-key"), headers.get("anthropic-version")), (None, None));
}

#[test]
fn an_attempt_the_filter_cannot_place_is_refused_and_named() {
    let (trip, saved, _) = downstream("/v1/chat/completions", &[("authorization", "Bearer sk-alpha")]);
    let cases = [
        ("openai", None, "did not route"),
        ("nobody", Some(saved.clone()), "metadata"),
        ("claude-unused", Some(saved.clone()), "metadata"),
    ];
    for (provider, saved, message) in cases {
        let (_, _, action) = attempt(provider, saved, trip.headers.clone());
        let BodyAction::Respond(reply) = action else { panic!("{provider}: {action:?}") };
        assert_eq!(reply.status, 500, "{provider}");
        assert!(
            String::from_utf8_lossy(&reply.body).contains(message),
            "{provider}: {}",
            String::from_utf8_lossy(&reply.body)
        );
        assert!(header(&reply.headers, UPSTREAM_HEADER).is_some());
    }
    // A provider that is configured but not in this chain.
    let mut document = document("upstream");
    document["upstreams"]["other"] = json!({});
    let with_other = Rc::new(Config::parse(document.to_string().as_bytes()).unwrap());
    let mut flow = AttemptFlow::new(Some(with_other));
    let store = FakeStore::default();
    let mut headers = trip.headers.clone();
    flow.on_request_headers(&mut Io { headers: &mut headers, store: &store, clock: &NOW });
    let action = flow.on_request_body(
        &mut Io { headers: &mut headers, store: &store, clock: &NOW },
        CHAT.as_bytes(),
        &target("other", Some(saved)),
    );
    assert!(matches!(action, BodyAction::Respond(reply) if reply.status == 500));
    // The listener's configuration in the upstream filter: refused at the headers.
    let mut flow = AttemptFlow::new(Some(config("downstream")));
    let mut headers = trip.headers.clone();
    assert!(matches!(
        flow.on_request_headers(&mut Io { headers: &mut headers, store: &store, clock: &NOW }),
        HeadersAction::Respond(_)
    ));
}
