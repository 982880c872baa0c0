//! Limits counted by Envoy's global rate limit service (`quota.mode: global`): request limits are
//! left to it, token limits keep a local reservation and hand the tokens charged to Envoy's rate
//! limit filter, and its refusals reach the client in the client's own format.

use super::*;
use crate::flow::forwarded::{OVER_LIMIT_DETAILS, RATE_LIMITED_HEADER, SERVICE_ERROR_DETAILS, TOKENS_PROPERTY};
use crate::metrics::{Outcome, ServiceFailure};
use crate::ports::{Clock, ResponseInfo};
use crate::quota::{self, LimitKind};

/// A reply of Envoy's own, with the code details Envoy gives it.
struct EnvoyReply(&'static str);

impl Clock for EnvoyReply {
    fn now_ns(&self) -> u64 {
        NOW
    }
}

impl ResponseInfo for EnvoyReply {
    fn code_details(&self) -> Option<String> {
        Some(self.0.to_owned())
    }
}

fn config() -> Rc<Config> {
    TestConfig::new()
        .key("alpha", &["sk-alpha"], json!({ "limits": { "requests_per_minute": 1, "tokens_per_day": 100_000 } }))
        .with("quota", json!({ "mode": "global", "domain": "ai-gateway" }))
        .build()
}

fn tokens_left(store: &FakeStore, config: &Config) -> u64 {
    let limit = config.limits().find(|l| l.kind == LimitKind::TokensPerDay).unwrap();
    quota::take(store, limit, 0, NOW).unwrap().remaining
}

/// A provider's 200 as the rate limit filter passes it on: with the service's count of the key's
/// request limit (1 a minute, none left, full again in 42 s).
fn counted_answer() -> FakeHeaders {
    FakeHeaders::new(&[
        (":status", "200"),
        ("content-type", "application/json"),
        ("x-ratelimit-limit", "1, 1;w=60"),
        ("x-ratelimit-remaining", "0"),
        ("x-ratelimit-reset", "42"),
    ])
}

const CHAT: &str = r#"{"model":"gpt-4o","max_tokens":20,"messages":[{"role":"user","content":"hi"}]}"#;

#[test]
fn request_limits_are_left_to_the_service_and_the_tokens_charged_are_handed_to_envoy() {
    let config = config();
    let store = FakeStore::default();
    for _ in 0..3 {
        let auth = [("authorization", "Bearer sk-alpha")];
        let mut trip = Trip::send(&config, &store, NOW, request("POST", "/v1/chat/completions", &auth), CHAT);
        assert!(trip.outcome.is_ok(), "requests_per_minute 1 is the service's to count: {:?}", trip.outcome);
        let response =
            trip.answer(200, "application/json", &[br#"{"usage":{"prompt_tokens":10,"completion_tokens":7}}"#], true);
        assert!(response.entries.iter().all(|(name, _)| !name.ends_with("-requests")), "{:?}", response.entries);
        trip.flow.on_done(&store, &NOW);
        let properties = trip.flow.take_properties();
        assert!(properties.contains(&(TOKENS_PROPERTY, "17".to_owned())), "{properties:?}");
    }
    assert_eq!(tokens_left(&store, &config), 100_000 - 3 * 17, "the local reservation still settles");
}

#[test]
fn a_refusal_of_the_rate_limit_filter_speaks_the_clients_api_and_charges_nothing() {
    let config = config();
    let store = FakeStore::default();
    for (path, auth) in [
        ("/v1/chat/completions", vec![("authorization", "Bearer sk-alpha")]),
        ("/v1/messages", vec![("x-api-key", "sk-alpha"), ("anthropic-version", "2023-06-01")]),
    ] {
        let mut trip = Trip::send(&config, &store, NOW, request("POST", path, &auth), CHAT);
        assert!(trip.outcome.is_ok());
        let mut response = FakeHeaders::new(&[
            (":status", "429"),
            (RATE_LIMITED_HEADER, "true"),
            ("x-ratelimit-limit", "1, 1;w=60"),
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "17"),
            ("content-type", "application/json"),
        ]);
        let action = trip.flow.on_response_headers(&mut response, &EnvoyReply(OVER_LIMIT_DETAILS), false);
        action.apply_to(&mut response);
        assert!(action.hold_body);
        assert_eq!(response.get("retry-after").as_deref(), Some("17"));
        assert_eq!(response.get("retry-after-ms").as_deref(), Some("17000"));
        assert_eq!(response.get(RATE_LIMITED_HEADER), None);
        let body = trip.flow.on_response_body(br#"{"error":{"message":""}}"#, true).replace.unwrap();
        let error: Value = serde_json::from_slice(&body).unwrap();
        match path {
            "/v1/messages" => assert_eq!(error["error"]["type"], "rate_limit_error", "{error}"),
            _ => assert_eq!(error["error"]["code"], "rate_limit_exceeded", "{error}"),
        }
        let summary = trip.flow.on_done(&store, &NOW).unwrap();
        assert_eq!(summary.outcome, Some(Outcome::RateLimited));
        assert_eq!(summary.refused_by, Some(LimitKind::RequestsPerMinute), "the limit the service reported");
        assert!(trip.flow.take_properties().contains(&(TOKENS_PROPERTY, "0".to_owned())));
    }
    assert_eq!(tokens_left(&store, &config), 100_000, "nothing reached a provider: nothing is charged");
}

#[test]
fn the_service_down_refuses_in_the_clients_api_or_is_reported_when_it_lets_requests_through() {
    let config = config();
    let store = FakeStore::default();
    let auth = [("authorization", "Bearer sk-alpha")];
    // failure_mode_deny: true: Envoy's 500, rewritten, nothing charged, counted and logged.
    let mut trip = Trip::send(&config, &store, NOW, request("POST", "/v1/chat/completions", &auth), CHAT);
    let mut response = FakeHeaders::new(&[(":status", "500")]);
    let action = trip.flow.on_response_headers(&mut response, &EnvoyReply(SERVICE_ERROR_DETAILS), false);
    action.apply_to(&mut response);
    assert_eq!(response.get(":status").as_deref(), Some("500"), "Envoy's status (status_on_error) is kept");
    let body = trip.flow.on_response_body(b"", true).replace.unwrap();
    let error: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(error["error"]["code"], "rate_limit_service_unavailable", "{error}");
    let summary = trip.flow.on_done(&store, &NOW).unwrap();
    assert_eq!(
        (summary.outcome, summary.service_failure),
        (Some(Outcome::GatewayError), Some(ServiceFailure::Refused))
    );
    assert!(trip.flow.take_logs().iter().any(|line| line.contains("failure_mode_deny: true")));
    assert_eq!(tokens_left(&store, &config), 100_000);
    // failure_mode_deny: false: the answer carries no count of the service's.
    let mut trip = Trip::send(&config, &store, NOW, request("POST", "/v1/chat/completions", &auth), CHAT);
    trip.answer(200, "application/json", &[br#"{"usage":{"prompt_tokens":1,"completion_tokens":1}}"#], true);
    let summary = trip.flow.on_done(&store, &NOW).unwrap();
    assert_eq!((summary.outcome, summary.service_failure), (Some(Outcome::Ok), Some(ServiceFailure::Allowed)));
    assert!(trip.flow.take_logs().iter().any(|line| line.contains("gave no count for this key")));
    // Counted: nothing to report.
    let mut trip = Trip::send(&config, &store, NOW, request("POST", "/v1/chat/completions", &auth), CHAT);
    let mut response = counted_answer();
    trip.flow.on_response_headers(&mut response, &NOW, false);
    trip.flow.on_response_body(b"{}", true);
    assert_eq!(trip.flow.on_done(&store, &NOW).unwrap().service_failure, None);
}

#[test]
fn a_key_without_limits_never_asks_the_service_so_nothing_is_missing() {
    let config =
        TestConfig::new().key("free", &["sk-free"], json!({})).with("quota", json!({ "mode": "global" })).build();
    let store = FakeStore::default();
    let auth = [("authorization", "Bearer sk-free")];
    let mut trip = Trip::send(&config, &store, NOW, request("POST", "/v1/chat/completions", &auth), CHAT);
    trip.answer(200, "application/json", &[b"{}"], true);
    assert_eq!(trip.flow.on_done(&store, &NOW).unwrap().service_failure, None);
}

#[test]
fn the_services_view_of_a_limit_reaches_the_client_in_openais_headers() {
    let config = config();
    let store = FakeStore::default();
    let auth = [("authorization", "Bearer sk-alpha")];
    let mut trip = Trip::send(&config, &store, NOW, request("POST", "/v1/chat/completions", &auth), CHAT);
    let mut response = counted_answer();
    trip.flow.on_response_headers(&mut response, &NOW, false).apply_to(&mut response);
    assert_eq!(response.get("x-ratelimit-limit-requests").as_deref(), Some("1"));
    assert_eq!(response.get("x-ratelimit-remaining-requests").as_deref(), Some("0"));
    assert_eq!(response.get("x-ratelimit-reset-requests").as_deref(), Some("42s"));
    assert_eq!(response.get("x-ratelimit-limit"), None, "the service's own headers are replaced");
    assert!(response.get("x-ratelimit-remaining-tokens").is_some(), "tokens: this replica's reservation");
}

#[test]
fn a_providers_429_is_a_provider_error_in_either_mode_whatever_its_headers() {
    // In global mode Envoy's code details say the provider answered: its x-envoy-ratelimited cannot
    // pass for the service's refusal.
    let local =
        TestConfig::new().key("alpha", &["sk-alpha"], json!({ "limits": { "tokens_per_day": 100_000 } })).build();
    for config in [local, config()] {
        let store = FakeStore::default();
        let auth = [("authorization", "Bearer sk-alpha")];
        let mut trip = Trip::send(&config, &store, NOW, request("POST", "/v1/chat/completions", &auth), CHAT);
        let mut response = FakeHeaders::new(&[
            (":status", "429"),
            (RATE_LIMITED_HEADER, "true"),
            ("content-type", "application/json"),
        ]);
        let action = trip.flow.on_response_headers(&mut response, &NOW, false);
        assert!(!action.hold_body, "the provider's answer passes as it is ({:?})", config.quota.mode);
        assert_eq!(trip.flow.on_response_body(br#"{"error":{"message":"slow down"}}"#, true).replace, None);
        assert_eq!(trip.flow.on_done(&store, &NOW).unwrap().outcome, Some(Outcome::UpstreamError));
    }
}
