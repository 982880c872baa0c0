//! Request-flow tests of quotas against the fake host and store: admission, 429s, rate-limit
//! headers, reservations settled from JSON and streamed usage, aborts and upstream errors.

use super::*;
use crate::quota::reservation::PROMPT_BYTES_PER_TOKEN;
use crate::quota::{self, LimitKind};

fn config(limits: Value) -> Rc<Config> {
    TestConfig::new().key("team", &["sk-team"], json!({ "limits": limits })).build()
}

fn send(config: &Rc<Config>, store: &FakeStore, now_ns: u64, path: &str, body: &str) -> Trip {
    Trip::send(config, store, now_ns, request("POST", path, &[("authorization", "Bearer sk-team")]), body)
}

fn chat(max_tokens: u64) -> String {
    json!({ "model": "gpt", "max_tokens": max_tokens, "messages": [ { "role": "user", "content": "hi" } ] }).to_string()
}

/// Answers a forwarded request: response headers, then the body in the given chunks (the last ends it).
fn answer(trip: &mut Trip, status: u16, content_type: &str, chunks: &[&[u8]]) -> FakeHeaders {
    trip.answer(status, content_type, chunks, true)
}

fn remaining(store: &FakeStore, config: &Config, kind: LimitKind) -> u64 {
    let limit = config.limits().find(|l| l.kind == kind).unwrap();
    quota::take(store, limit, 0, NOW).unwrap().remaining
}

#[test]
fn request_limit_admits_exactly_n_and_counts_down() {
    let config = config(json!({ "requests_per_minute": 3 }));
    let store = FakeStore::default();
    for expected in ["2", "1", "0"] {
        let mut trip = send(&config, &store, NOW, "/v1/chat/completions", &chat(5));
        assert!(trip.outcome.is_ok());
        let mut response = answer(&mut trip, 200, "application/json", &[b"{}"]);
        assert_eq!(response.get("x-ratelimit-limit-requests").as_deref(), Some("3"));
        assert_eq!(response.get("x-ratelimit-remaining-requests").as_deref(), Some(expected));
        assert!(response.get("x-ratelimit-reset-requests").is_some());
    }
    let trip = send(&config, &store, NOW, "/v1/chat/completions", &chat(5));
    let reply = trip.outcome.unwrap_err();
    assert_eq!(reply.status, 429);
    assert_eq!(header(&reply.headers, "retry-after"), Some("20"));
    assert_eq!(header(&reply.headers, "x-ratelimit-remaining-requests"), Some("0"));
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(
        (body["error"]["type"].as_str(), body["error"]["code"].as_str()),
        (Some("requests"), Some("rate_limit_exceeded"))
    );
    // 20 s later one request has refilled.
    assert!(send(&config, &store, NOW + 20 * SECOND, "/v1/chat/completions", &chat(5)).outcome.is_ok());
}

#[test]
fn anthropic_clients_get_anthropic_429s() {
    let config = config(json!({ "requests_per_second": 1 }));
    let store = FakeStore::default();
    let body = json!({ "model": "claude", "max_tokens": 5, "messages": [] }).to_string();
    assert!(send(&config, &store, NOW, "/v1/messages", &body).outcome.is_ok());
    let reply = send(&config, &store, NOW, "/v1/messages", &body).outcome.unwrap_err();
    let json: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!((reply.status, json["error"]["type"].as_str()), (429, Some("rate_limit_error")));
}

#[test]
fn admission_is_exact_under_cas_conflicts() {
    let config = config(json!({ "requests_per_minute": 10 }));
    let store = FakeStore::default();
    quota::create_missing(&store, config.limits());
    let admitted = (0..64)
        .filter(|i| {
            store.conflicts_to_inject.set(i % 4);
            send(&config, &store, NOW, "/v1/chat/completions", &chat(5)).outcome.is_ok()
        })
        .count();
    assert_eq!(admitted, 10);
}

#[test]
fn a_store_that_keeps_failing_fails_closed() {
    let config = config(json!({ "requests_per_minute": 10 }));
    let store = FakeStore::default();
    store.refuse_writes.set(true);
    let reply = send(&config, &store, NOW, "/v1/chat/completions", &chat(5)).outcome.unwrap_err();
    assert_eq!((reply.status, header(&reply.headers, "retry-after")), (503, Some("1")));
}

#[test]
fn json_usage_settles_the_reservation() {
    let config = config(json!({ "tokens_per_minute": 1000 }));
    let store = FakeStore::default();
    let body = chat(100);
    let mut trip = send(&config, &store, NOW, "/v1/chat/completions", &body);
    let reserved = 100 + (body.len() as u64).div_ceil(PROMPT_BYTES_PER_TOKEN);
    assert_eq!(remaining(&store, &config, LimitKind::TokensPerMinute), 1000 - reserved);
    let mut response = answer(
        &mut trip,
        200,
        "application/json",
        &[br#"{"usage":{"prompt_tokens":12,"#, br#""completion_tokens":30}}"#],
    );
    assert_eq!(response.get("x-ratelimit-remaining-tokens"), Some((1000 - reserved).to_string()));
    let summary = trip.flow.on_done(&store, &NOW).unwrap();
    assert_eq!(summary.usage, Some(crate::usage::Usage { input_tokens: 12, output_tokens: 30 }));
    assert_eq!(summary.outcome, Some(crate::metrics::Outcome::Ok));
    assert_eq!(remaining(&store, &config, LimitKind::TokensPerMinute), 1000 - 42);
}

#[test]
fn streamed_usage_settles_the_reservation_whatever_the_chunking() {
    let config = config(json!({ "tokens_per_day": 100_000 }));
    let stream = concat!(
        "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\r\n\r\n",
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":9,\"total_tokens\":16}}\r\n\r\n",
        "data: [DONE]\r\n\r\n"
    )
    .as_bytes();
    for split in 0..=stream.len() {
        let store = FakeStore::default();
        let body = json!({ "model": "gpt", "stream": true, "max_tokens": 50, "messages": [] }).to_string();
        let mut trip = send(&config, &store, NOW, "/v1/chat/completions", &body);
        let sent: Value = serde_json::from_slice(&trip.outcome.clone().unwrap().unwrap()).unwrap();
        assert_eq!(sent["stream_options"]["include_usage"], true);
        assert_eq!(trip.headers.get("content-length"), Some(serde_json::to_vec(&sent).unwrap().len().to_string()));
        let (a, b) = stream.split_at(split);
        answer(&mut trip, 200, "text/event-stream", &[a, b]);
        trip.flow.on_done(&store, &NOW);
        assert_eq!(remaining(&store, &config, LimitKind::TokensPerDay), 100_000 - 16, "split at {split}");
    }
}

/// A response as the upstream sent it: status, the body seen so far, and whether it ended.
type UpstreamAnswer = (u16, &'static [u8], bool);

#[test]
fn without_usage_the_reservation_settles_to_a_documented_estimate() {
    let config = config(json!({ "tokens_per_hour": 10_000 }));
    let body = chat(400);
    let prompt = (body.len() as u64).div_ceil(PROMPT_BYTES_PER_TOKEN);
    let cases: &[(&str, Option<UpstreamAnswer>, u64)] = &[
        ("client abort before any response", None, 400 + prompt),
        (
            "stream cut short",
            Some((200, b"data: {\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":1}}\n\n", false)),
            400 + prompt,
        ),
        ("no usage reported", Some((200, b"{\"id\":\"x\"}", true)), 400 + prompt),
        ("upstream error", Some((503, b"upstream connect error", true)), prompt),
    ];
    for (name, response, charged) in cases {
        let store = FakeStore::default();
        let mut trip = send(&config, &store, NOW, "/v1/chat/completions", &body);
        if let Some((status, chunk, complete)) = response {
            let mut headers =
                FakeHeaders::new(&[(":status", &status.to_string()), ("content-type", "text/event-stream")]);
            trip.flow.on_response_headers(&mut headers, &NOW, false);
            trip.flow.on_response_body(chunk, *complete);
        }
        trip.flow.on_done(&store, &NOW);
        assert_eq!(remaining(&store, &config, LimitKind::TokensPerHour), 10_000 - charged, "{name}");
    }
}

#[test]
fn token_limit_refuses_what_it_cannot_reserve_and_gives_nothing_back_twice() {
    let config = config(json!({ "tokens_per_minute": 1000, "requests_per_minute": 100 }));
    let store = FakeStore::default();
    let reply = send(&config, &store, NOW, "/v1/chat/completions", &chat(5000)).outcome.unwrap_err();
    assert_eq!(reply.status, 429);
    let json: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(json["error"]["type"], "tokens");
    assert_eq!(header(&reply.headers, "x-ratelimit-remaining-tokens"), Some("1000"));
    assert_eq!(header(&reply.headers, "x-ratelimit-remaining-requests"), Some("99"));
    assert_eq!(header(&reply.headers, "retry-after"), Some("60"));
    assert_eq!(remaining(&store, &config, LimitKind::TokensPerMinute), 1000);
}

#[test]
fn concurrent_reservations_never_let_real_usage_pass_the_limit() {
    // 64 requests in flight at once, each declaring max_tokens 100 and then using all of it.
    let config = config(json!({ "tokens_per_minute": 2000 }));
    let store = FakeStore::default();
    let mut in_flight: Vec<Trip> = (0..64)
        .map(|_| send(&config, &store, NOW, "/v1/chat/completions", &chat(100)))
        .filter(|trip| trip.outcome.is_ok())
        .collect();
    let mut used = 0;
    for trip in &mut in_flight {
        let prompt = (chat(100).len() as u64).div_ceil(PROMPT_BYTES_PER_TOKEN);
        let usage = format!("{{\"usage\":{{\"prompt_tokens\":{prompt},\"completion_tokens\":100}}}}");
        answer(trip, 200, "application/json", &[usage.as_bytes()]);
        trip.flow.on_done(&store, &NOW);
        used += prompt + 100;
    }
    assert!(!in_flight.is_empty() && in_flight.len() < 64);
    assert!(used <= 2000, "real usage {used} passed the limit");
}

#[test]
fn requests_the_gateway_answers_itself_hold_no_tokens() {
    let config = config(json!({ "tokens_per_minute": 1000, "requests_per_minute": 5 }));
    let store = FakeStore::default();
    let reply = send(&config, &store, NOW, "/v1/chat/completions", r#"{"model":"nope"}"#).outcome.unwrap_err();
    assert_eq!(reply.status, 404);
    assert_eq!(header(&reply.headers, "x-ratelimit-remaining-requests"), Some("4"));
    assert_eq!(remaining(&store, &config, LimitKind::TokensPerMinute), 1000);
}

#[test]
fn the_key_space_is_one_entry_per_key_and_limit() {
    let config = config(json!({ "requests_per_minute": 1000, "tokens_per_minute": 100_000 }));
    let store = FakeStore::default();
    for i in 0..50 {
        let mut trip = send(&config, &store, NOW + i * SECOND * 3600, "/v1/chat/completions", &chat(5));
        answer(&mut trip, 200, "application/json", &[b"{\"usage\":{\"prompt_tokens\":1}}"]);
        trip.flow.on_done(&store, &NOW);
    }
    assert_eq!(
        store.keys(),
        ["ai_gateway/quota/v1/team/requests_per_minute", "ai_gateway/quota/v1/team/tokens_per_minute"]
    );
}

#[test]
fn the_protocol_not_the_transport_says_when_a_response_is_complete() {
    let config = config(json!({ "tokens_per_hour": 10_000 }));
    const SSE: &str = "text/event-stream";
    // (name, path, model, response content type, extra response header, body, transport ended,
    //  charged: None = the whole reservation, Some(n) = n, outcome ok?)
    type Case = (
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        Option<(&'static str, &'static str)>,
        &'static str,
        bool,
        Option<u64>,
        bool,
    );
    let chat_stream =
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":9}}\n\ndata: [DONE]\n\n";
    let cases: &[Case] = &[
        ("client hung up after [DONE]", "/v1/chat/completions", "gpt", SSE, None, chat_stream, false, Some(16), true),
        (
            "clean close before [DONE]",
            "/v1/chat/completions",
            "gpt",
            SSE,
            None,
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":9}}\n\n",
            true,
            None,
            false,
        ),
        (
            "response.completed, connection held",
            "/v1/responses",
            "gpt",
            SSE,
            None,
            "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"usage\":{\"input_tokens\":5,\"output_tokens\":6}}}\n\n",
            false,
            Some(11),
            true,
        ),
        (
            "message_stop, connection held",
            "/v1/messages",
            "claude",
            SSE,
            None,
            "data: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":20,\"output_tokens\":1}}}\n\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":30}}\n\ndata: {\"type\":\"message_stop\"}\n\n",
            false,
            Some(50),
            true,
        ),
        (
            "Anthropic error event after usage",
            "/v1/messages",
            "claude",
            SSE,
            None,
            "data: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":20,\"output_tokens\":1}}}\n\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\"}}\n\n",
            true,
            Some(21),
            false,
        ),
        (
            "a gzip body cannot be read",
            "/v1/chat/completions",
            "gpt",
            "application/json",
            Some(("content-encoding", "gzip")),
            "{\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1}}",
            true,
            None,
            true,
        ),
    ];
    for (name, path, model, content_type, extra, response, ended, charged, ok) in cases {
        let store = FakeStore::default();
        let body = json!({ "model": model, "max_tokens": 400, "stream": true, "messages": [] }).to_string();
        let mut trip = send(&config, &store, NOW, path, &body);
        let mut headers = FakeHeaders::new(&[(":status", "200"), ("content-type", content_type)]);
        headers.entries.extend(extra.iter().map(|(n, v)| (n.to_string(), v.to_string())));
        trip.flow.on_response_headers(&mut headers, &NOW, false);
        trip.flow.on_response_body(response.as_bytes(), *ended);
        let summary = trip.flow.on_done(&store, &NOW).unwrap();
        let reservation = 400 + (body.len() as u64).div_ceil(PROMPT_BYTES_PER_TOKEN);
        let expected = charged.unwrap_or(reservation);
        assert_eq!(remaining(&store, &config, LimitKind::TokensPerHour), 10_000 - expected, "{name}");
        let outcome = if *ok { crate::metrics::Outcome::Ok } else { crate::metrics::Outcome::UpstreamError };
        assert_eq!(summary.outcome, Some(outcome), "{name}");
    }
}
