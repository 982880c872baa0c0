//! Translated answers through the flow: the client gets its own API's JSON, stream or error,
//! usage is read from the provider's answer, and the cache keeps what the client saw.

use super::*;
use crate::quota::{self, LimitKind};

fn config() -> Rc<Config> {
    TestConfig::new()
        .key("alpha", &["sk-alpha"], json!({ "limits": { "tokens_per_day": 100_000 } }))
        .with("cache", json!({}))
        .build()
}

fn tokens_left(store: &FakeStore, config: &Config) -> u64 {
    let limit = config.limits().find(|l| l.kind == LimitKind::TokensPerDay).unwrap();
    quota::take(store, limit, 0, NOW).unwrap().remaining
}

/// Sends `body` to `path`, answers with `status`, `content_type` and the provider's `chunks`; returns
/// the client's response headers and body.
fn exchange(
    config: &Rc<Config>,
    store: &FakeStore,
    path: &str,
    body: &str,
    answer: (u16, &str, &[&[u8]]),
) -> (FakeHeaders, Vec<u8>) {
    let auth: &[(&str, &str)] = match path {
        "/v1/messages" => &[("x-api-key", "sk-alpha"), ("anthropic-version", "2023-06-01")],
        _ => &[("authorization", "Bearer sk-alpha")],
    };
    let mut trip = Trip::send(config, store, NOW, request("POST", path, auth), body);
    if let Err(reply) = &trip.outcome {
        return (FakeHeaders::new(&[(":status", &reply.status.to_string())]), reply.body.clone());
    }
    let (status, content_type, chunks) = answer;
    let whole: Vec<u8> = chunks.concat();
    let length = whole.len().to_string();
    let mut response = FakeHeaders::new(&[
        (":status", &status.to_string()),
        ("content-type", content_type),
        ("content-length", &length),
    ]);
    let action = trip.flow.on_response_headers(&mut response, &NOW, false);
    action.apply_to(&mut response);
    let mut client_body = Vec::new();
    let pieces: Vec<&[u8]> = if action.hold_body { vec![&whole] } else { chunks.to_vec() };
    for (i, piece) in pieces.iter().enumerate() {
        let body_action = trip.flow.on_response_body(piece, i + 1 == pieces.len());
        client_body.extend(body_action.replace.unwrap_or_else(|| piece.to_vec()));
    }
    trip.flow.on_done(store, &NOW);
    (response, client_body)
}

const ANTHROPIC_JSON: &str = r#"{"id":"msg_01","type":"message","role":"assistant","model":"claude-x","content":[{"type":"text","text":"Hello"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":3}}"#;

#[test]
fn an_openai_client_gets_a_chat_completion_from_an_anthropic_provider() {
    let (config, store) = (config(), FakeStore::default());
    let before = tokens_left(&store, &config);
    let body = r#"{"model":"claude","messages":[{"role":"user","content":"hi"}]}"#;
    let (mut headers, client_body) = exchange(
        &config,
        &store,
        "/v1/chat/completions",
        body,
        (200, "application/json", &[ANTHROPIC_JSON.as_bytes()]),
    );
    let answer: Value = serde_json::from_slice(&client_body).unwrap();
    assert_eq!(answer["object"], "chat.completion");
    assert_eq!(answer["model"], "claude", "the client's model name");
    assert_eq!(answer["choices"][0]["message"]["content"], "Hello");
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        (answer["usage"]["prompt_tokens"].as_u64(), answer["usage"]["completion_tokens"].as_u64()),
        (Some(12), Some(3))
    );
    assert_eq!(headers.get("content-length"), None, "the translated body has another length");
    assert_eq!(before - tokens_left(&store, &config), 15, "charged the provider's usage");
    // The cache keeps what the client saw, and replays it.
    let (_, again) = exchange(&config, &store, "/v1/chat/completions", body, (500, "application/json", &[b"{}"]));
    assert_eq!(again, client_body);
}

#[test]
fn an_anthropic_client_gets_a_message_stream_from_an_openai_provider() {
    let (config, store) = (config(), FakeStore::default());
    let before = tokens_left(&store, &config);
    let stream = concat!(
        "data: {\"id\":\"chatcmpl-9\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-real\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"chatcmpl-9\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-real\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"chatcmpl-9\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-real\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"stop\"}]}\n\n",
        "data: {\"id\":\"chatcmpl-9\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-real\",\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2,\"total_tokens\":9}}\n\n",
        "data: [DONE]\n\n",
    );
    let (a, b) = stream.as_bytes().split_at(150);
    let body = r#"{"model":"gpt","max_tokens":50,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let (_, client_body) = exchange(&config, &store, "/v1/messages", body, (200, "text/event-stream", &[a, b]));
    let text = String::from_utf8(client_body).unwrap();
    let events: Vec<&str> = text.lines().filter_map(|line| line.strip_prefix("event: ")).collect();
    assert_eq!(events.first(), Some(&"message_start"));
    assert_eq!(events.last(), Some(&"message_stop"));
    assert!(text.contains("\"text_delta\"") && text.contains("Hel") && text.contains("\"output_tokens\":2"), "{text}");
    assert_eq!(before - tokens_left(&store, &config), 9, "charged the provider's usage");
}

#[test]
fn a_provider_error_reaches_the_client_in_its_own_format_with_its_status() {
    let (config, store) = (config(), FakeStore::default());
    let error = r#"{"type":"error","error":{"type":"rate_limit_error","message":"Slow down."}}"#;
    let body = r#"{"model":"claude","messages":[{"role":"user","content":"hi"}]}"#;
    let (mut headers, client_body) =
        exchange(&config, &store, "/v1/chat/completions", body, (429, "application/json", &[error.as_bytes()]));
    let answer: Value = serde_json::from_slice(&client_body).unwrap();
    assert_eq!(headers.get(":status").as_deref(), Some("429"));
    assert_eq!(answer["error"]["message"], "Slow down.");
    assert!(answer["error"]["type"].is_string(), "{answer}");
}

#[test]
fn a_translated_answer_gets_the_clients_content_type_and_a_compressed_one_a_502() {
    let config = config();
    let store = FakeStore::default();
    let body = r#"{"model":"claude","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#;
    let auth = [("authorization", "Bearer sk-alpha")];
    // A compressed success cannot be translated: a 502 in the client's format, not gzip-labelled JSON.
    let mut trip = Trip::send(&config, &store, NOW, request("POST", "/v1/chat/completions", &auth), body);
    let mut response = FakeHeaders::new(&[
        (":status", "200"),
        ("content-type", "application/json"),
        ("content-encoding", "gzip"),
        ("content-length", "20"),
    ]);
    let action = trip.flow.on_response_headers(&mut response, &NOW, false);
    action.apply_to(&mut response);
    assert_eq!(response.get(":status").as_deref(), Some("502"));
    assert_eq!((response.get("content-encoding"), response.get("content-length")), (None, None));
    let replaced = trip.flow.on_response_body(b"\x1f\x8b\x08\x00binary", true).replace.unwrap();
    let error: Value = serde_json::from_slice(&replaced).unwrap();
    assert!(error["error"]["message"].is_string(), "{error}");
    let summary = trip.flow.on_done(&store, &NOW).unwrap();
    assert_eq!(summary.outcome, Some(crate::metrics::Outcome::UpstreamError));
    // A provider's HTML error page: translated into a JSON error, labelled JSON.
    let mut trip = Trip::send(&config, &store, NOW, request("POST", "/v1/chat/completions", &auth), body);
    let mut response = FakeHeaders::new(&[(":status", "503"), ("content-type", "text/html")]);
    trip.flow.on_response_headers(&mut response, &NOW, false).apply_to(&mut response);
    assert_eq!(response.get("content-type").as_deref(), Some("application/json"));
    let replaced = trip.flow.on_response_body(b"<html>down</html>", true).replace.unwrap();
    assert!(serde_json::from_slice::<Value>(&replaced).is_ok());
}
