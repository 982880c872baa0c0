//! What the flow reports for metrics, access logs and logs, and that secrets never appear in it.

use super::*;
use crate::cache::recorder::CacheEvent;
use crate::metrics::Outcome;

fn config() -> Rc<Config> {
    TestConfig::new()
        .key("alpha", &["sk-alpha-secret"], json!({ "limits": { "requests_per_hour": 1 } }))
        .with("cache", json!({}))
        .build()
}

fn chat_request(key: &str) -> FakeHeaders {
    let auth = format!("Bearer {key}");
    FakeHeaders::new(&[
        (":method", "POST"),
        (":path", "/v1/chat/completions"),
        ("authorization", &auth),
        ("x-request-id", "req-42"),
    ])
}

#[test]
fn an_unknown_key_is_logged_by_digest_prefix_only() {
    let store = FakeStore::default();
    let mut flow = RequestFlow::new(Some(config()), 0);
    let mut headers = chat_request("sk-wrong-secret");
    flow.on_request_headers(&mut Io { headers: &mut headers, store: &store, clock: &NOW }, false);
    let logs = flow.take_logs();
    let prefix = &hex::encode(digest("sk-wrong-secret"))[..8];
    assert_eq!(logs.len(), 2, "{logs:?}");
    assert!(logs[0].contains("request_id=req-42") && logs[0].contains(&format!("sha256={prefix}...")), "{logs:?}");
    let full_digest = hex::encode(digest("sk-wrong-secret"));
    assert!(logs.iter().all(|l| !l.contains("sk-wrong-secret") && !l.contains(&full_digest)));
    let summary = flow.on_done(&store, &NOW).unwrap();
    assert_eq!((summary.outcome, summary.key_id), (Some(Outcome::Unauthorized), None));
}

#[test]
fn a_served_request_reports_tokens_timings_and_access_log_fields() {
    let store = FakeStore::default();
    let mut flow = RequestFlow::new(Some(config()), 0);
    let mut headers = chat_request("sk-alpha-secret");
    flow.on_request_headers(&mut Io { headers: &mut headers, store: &store, clock: &NOW }, false);
    flow.on_request_body(
        &mut Io { headers: &mut headers, store: &store, clock: &NOW },
        br#"{"model":"gpt","messages":[]}"#,
    );
    let mut response = FakeHeaders::new(&[(":status", "200"), ("content-type", "application/json")]);
    flow.on_response_headers(&mut response, &(NOW + 40 * MS), false);
    flow.on_response_body(br#"{"usage":{"prompt_tokens":3,"completion_tokens":4}}"#, true);
    let summary = flow.on_done(&store, &(NOW + 100 * MS)).unwrap();
    assert_eq!(summary.outcome, Some(Outcome::Ok));
    assert_eq!(
        (summary.key_id.as_deref(), summary.model.as_deref(), summary.upstream.as_deref()),
        (Some("alpha"), Some("gpt"), Some("openai"))
    );
    assert_eq!((summary.first_byte_ms, summary.upstream_ms), (Some(40), Some(100)));
    assert_eq!((summary.cache, summary.cache_store), (Some(CacheEvent::Miss), Some(crate::cache::Stored::Fresh)));
    let properties = flow.take_properties();
    let last = |name: &str| properties.iter().rev().find(|(n, _)| *n == name).map(|(_, v)| v.as_str());
    assert_eq!(last("ai_gw_key_id"), Some("alpha"));
    assert_eq!(last("ai_gw_model"), Some("gpt"));
    assert_eq!(last("ai_gw_input_tokens"), Some("3"));
    assert_eq!(last("ai_gw_output_tokens"), Some("4"));
    assert_eq!(last("ai_gw_cache"), Some("miss"));
    assert_eq!(last("ai_gw_outcome"), Some("ok"));
    assert!(flow.take_logs().is_empty(), "a served request logs nothing");
    assert_eq!(flow.on_done(&store, &NOW), None, "reported once");

    // The same request again is a cache hit, then the hour's single request is used up: 429.
    let mut flow = RequestFlow::new(Some(config()), 0);
    let mut headers = chat_request("sk-alpha-secret");
    let action = flow.on_request_headers(&mut Io { headers: &mut headers, store: &store, clock: &NOW }, false);
    assert!(matches!(action, HeadersAction::Respond(ref reply) if reply.status == 429));
    let summary = flow.on_done(&store, &NOW).unwrap();
    assert_eq!(
        (summary.outcome, summary.refused_by),
        (Some(Outcome::RateLimited), Some(crate::quota::LimitKind::RequestsPerHour))
    );
    assert!(flow.take_logs().iter().any(|l| l.contains("limit=requests_per_hour") && l.contains("status=429")));
}

#[test]
fn upstream_errors_and_aborts_are_reported_as_such() {
    for (status, complete) in [(Some("502"), true), (Some("200"), false), (None, false)] {
        let store = FakeStore::default();
        let mut flow = RequestFlow::new(Some(config()), 0);
        let mut headers = chat_request("sk-alpha-secret");
        flow.on_request_headers(&mut Io { headers: &mut headers, store: &store, clock: &NOW }, false);
        flow.on_request_body(&mut Io { headers: &mut headers, store: &store, clock: &NOW }, br#"{"model":"gpt"}"#);
        if let Some(status) = status {
            let mut response = FakeHeaders::new(&[(":status", status), ("content-type", "application/json")]);
            flow.on_response_headers(&mut response, &NOW, false);
            // Complete or not by the protocol: a JSON body cut before its closing brace is an abort.
            let body: &[u8] = if complete { b"{}" } else { b"{\"id\":" };
            flow.on_response_body(body, complete);
        }
        let summary = flow.on_done(&store, &NOW).unwrap();
        assert_eq!(summary.outcome, Some(Outcome::UpstreamError), "{status:?} {complete}");
        assert!(flow.take_logs().iter().any(|l| l.contains("upstream_error")));
    }
}
