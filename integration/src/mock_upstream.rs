//! A mock model provider speaking OpenAI and Anthropic (JSON and SSE, with `usage`) that records
//! every request it receives, so tests can see exactly what the gateway sent upstream.
//!
//! Usage is deterministic: 10 prompt tokens, and as many completion tokens as the request's
//! `max_tokens` (or `max_completion_tokens`, `max_output_tokens`), 5 when none is given.
//!
//! A request header `x-mock-behavior` makes it misbehave: `reset-mid-stream` (two events, then the
//! connection is reset), `slow` (answers after 1 s), `slow-stream` (an event every 200 ms),
//! `status-500` (a provider error), `big-final-event` (a 200 KB answer whose stream arrives in
//! 16 KiB pieces 100 ms apart), `hold-after-done` (the stream's end marker, then the connection held
//! open 2 s), `nested-usage` (a JSON answer over 64 KiB with a nested `usage` after the real one),
//! `gzip` (a gzip-encoded JSON answer), `cr-multiline` (SSE with bare-CR line ends and every `data`
//! split over two lines), `status-503` and `status-429` (a provider failing or throttling, the 429
//! with `retry-after: 7`), `hang` (no answer for 30 s).
//!
//! A path starting `/behave/BEHAVIOUR/` gives every request to it that behaviour: an upstream whose
//! `path_prefix` is `/behave/status-503/v1` is a provider that is down.

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use axum::Router;
use futures::StreamExt;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::mock_tools::{self, ToolTurn};

pub const PROMPT_TOKENS: u64 = 10;
pub const DEFAULT_COMPLETION_TOKENS: u64 = 5;

/// One request as the upstream received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    fn to_json(&self) -> Value {
        json!({
            "method": self.method,
            "path": self.path,
            "headers": self.headers.iter().map(|(n, v)| json!([n, v])).collect::<Vec<_>>(),
            "body": String::from_utf8_lossy(&self.body),
        })
    }
}

#[derive(Clone)]
struct MockState {
    name: Arc<str>,
    records: Arc<Mutex<Vec<RecordedRequest>>>,
}

/// A running mock provider; stops when dropped.
pub struct MockUpstream {
    pub name: String,
    pub addr: SocketAddr,
    records: Arc<Mutex<Vec<RecordedRequest>>>,
    _shutdown: oneshot::Sender<()>,
}

impl MockUpstream {
    /// Starts on a free loopback port. `name` is returned in every response's `x-mock-upstream`.
    pub async fn start(name: &str) -> std::io::Result<MockUpstream> {
        MockUpstream::start_on(name, "127.0.0.1:0").await
    }

    pub async fn start_on(name: &str, addr: &str) -> std::io::Result<MockUpstream> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let records = Arc::new(Mutex::new(Vec::new()));
        let state = MockState { name: name.into(), records: records.clone() };
        let app = Router::new().fallback(handle).with_state(state);
        let (shutdown, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(error) = serve.await {
                eprintln!("mock upstream stopped: {error}");
            }
        });
        Ok(MockUpstream { name: name.to_owned(), addr, records, _shutdown: shutdown })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Every model request received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.records.lock().map(|r| r.clone()).unwrap_or_default()
    }

    pub fn last_request(&self) -> Option<RecordedRequest> {
        self.requests().pop()
    }
}

async fn handle(State(state): State<MockState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = to_bytes(body, usize::MAX).await.map(|b| b.to_vec()).unwrap_or_default();
    let (path_behavior, path) = behavior_in_path(parts.uri.path());
    if parts.method == "GET" && path == "/_mock/requests" {
        let records = state.records.lock().map(|r| r.clone()).unwrap_or_default();
        let list: Vec<Value> = records.iter().map(RecordedRequest::to_json).collect();
        return respond(&state, StatusCode::OK, "application/json", Body::from(Value::from(list).to_string()));
    }
    let record = RecordedRequest {
        method: parts.method.to_string(),
        path: path.clone(),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| (n.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect(),
        body,
    };
    let request = record.json();
    let behavior = path_behavior.unwrap_or_else(|| record.header("x-mock-behavior").unwrap_or_default().to_owned());
    if let Ok(mut records) = state.records.lock() {
        records.push(record);
    }
    match behavior.as_str() {
        "status-500" => {
            let error = json!({ "error": { "message": "mock: the provider failed", "type": "server_error" } });
            return respond(
                &state,
                StatusCode::INTERNAL_SERVER_ERROR,
                "application/json",
                Body::from(error.to_string()),
            );
        }
        "status-503" | "status-429" => return provider_error(&state, &path, &behavior),
        "hang" => {
            tokio::time::sleep(std::time::Duration::from_secs(30)).await;
            return respond(&state, StatusCode::GATEWAY_TIMEOUT, "application/json", Body::from("{}"));
        }
        "slow" => tokio::time::sleep(std::time::Duration::from_secs(1)).await,
        _ => {}
    }
    let model = request["model"].as_str().unwrap_or("unknown").to_owned();
    let stream = request["stream"].as_bool().unwrap_or(false);
    let completion_tokens = ["max_tokens", "max_completion_tokens", "max_output_tokens"]
        .iter()
        .find_map(|field| request[*field].as_u64())
        .unwrap_or(DEFAULT_COMPLETION_TOKENS);
    let turn = mock_tools::tool_turn(&path, &request);
    let text = match (&turn, behavior.as_str()) {
        (ToolTurn::AfterResult(result), _) => format!("The tool said: {result}"),
        (_, "big-final-event") => format!("Hello from {} {}", state.name, "long ".repeat(40_000)),
        _ => format!("Hello from {}", state.name),
    };
    let answer = Answer { model: &model, text: &text, completion_tokens };
    let include_usage = request["stream_options"]["include_usage"].as_bool().unwrap_or(false);
    let answered = match (&turn, path.as_str()) {
        (ToolTurn::Call(call), "/v1/chat/completions") => {
            let usage = answer.openai_usage();
            let events = mock_tools::chat_events(&model, call, include_usage.then_some(&usage));
            Some((mock_tools::chat_json(&model, call, &usage), events))
        }
        (ToolTurn::Call(call), "/v1/messages") => Some((
            mock_tools::message_json(&model, call, PROMPT_TOKENS, completion_tokens),
            mock_tools::message_events(&model, call, PROMPT_TOKENS, completion_tokens),
        )),
        _ => answer_for(&answer, &path, include_usage),
    };
    let Some((json_body, events)) = answered else {
        let error =
            json!({ "error": { "message": format!("mock: no route {path}"), "type": "invalid_request_error" } });
        return respond(&state, StatusCode::NOT_FOUND, "application/json", Body::from(error.to_string()));
    };
    if stream && !events.is_empty() {
        let events = match behavior.as_str() {
            "cr-multiline" => events.iter().map(|event| cr_multiline(event)).collect(),
            _ => events,
        };
        let body = match behavior.as_str() {
            "big-final-event" => {
                let whole = events.concat().into_bytes();
                let pieces: Vec<Vec<u8>> = whole.chunks(16 * 1024).map(<[u8]>::to_vec).collect();
                let paced = futures::stream::iter(pieces).then(|piece| async move {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    Ok::<_, Infallible>(piece)
                });
                Body::from_stream(paced)
            }
            "hold-after-done" => {
                let held = futures::stream::iter(events.into_iter().map(Ok::<_, Infallible>)).chain(
                    futures::stream::once(async {
                        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                        Ok(String::new())
                    }),
                );
                Body::from_stream(held)
            }
            "reset-mid-stream" => {
                let first: Vec<Result<String, std::io::Error>> = events.into_iter().take(2).map(Ok).collect();
                // Pause so that the headers and first events are on the wire before the reset.
                let broken = futures::stream::iter(first).chain(futures::stream::once(async {
                    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                    Err(std::io::Error::other("mock: connection reset mid-stream"))
                }));
                Body::from_stream(broken)
            }
            "slow-stream" => {
                let paced = futures::stream::iter(events.into_iter().cycle().take(50)).then(|event| async move {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    Ok::<_, Infallible>(event)
                });
                Body::from_stream(paced)
            }
            _ => Body::from_stream(futures::stream::iter(events.into_iter().map(Ok::<_, Infallible>))),
        };
        return respond(&state, StatusCode::OK, "text/event-stream", body);
    }
    match behavior.as_str() {
        "nested-usage" => {
            // The real usage first, then 100 KB of content, then a nested object that is not it.
            let text = json_body.to_string();
            let nested = format!(
                r#","padding":"{}","metadata":{{"usage":{{"prompt_tokens":99999,"completion_tokens":99999}}}}}}"#,
                "p".repeat(100 * 1024)
            );
            let body = format!("{{\"usage\":{},{}{nested}", json_body["usage"], &text[1..text.len() - 1]);
            respond(&state, StatusCode::OK, "application/json", Body::from(body))
        }
        "gzip" => {
            let mut response = respond(
                &state,
                StatusCode::OK,
                "application/json",
                Body::from(gzip_stored(json_body.to_string().as_bytes())),
            );
            response.headers_mut().insert("content-encoding", HeaderValue::from_static("gzip"));
            response
        }
        _ => respond(&state, StatusCode::OK, "application/json", Body::from(json_body.to_string())),
    }
}

/// A provider-wide misbehaviour in the path (`/behave/status-503/v1/...`, for an upstream whose
/// `path_prefix` is `/behave/status-503/v1`): the behaviour, and the path without it.
fn behavior_in_path(path: &str) -> (Option<String>, String) {
    let Some(rest) = path.strip_prefix("/behave/") else { return (None, path.to_owned()) };
    match rest.split_once('/') {
        Some((behavior, tail)) => (Some(behavior.to_owned()), format!("/{tail}")),
        None => (Some(rest.to_owned()), "/".to_owned()),
    }
}

/// A provider failing (503) or throttling (429, with `retry-after: 7` and `x-envoy-ratelimited`), in
/// the API of the path.
fn provider_error(state: &MockState, path: &str, behavior: &str) -> Response {
    let (status, kind, message) = match behavior {
        "status-429" => (StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", "mock: slow down"),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "overloaded_error", "mock: the provider is unavailable"),
    };
    let error = match path {
        "/v1/messages" => json!({ "type": "error", "error": { "type": kind, "message": message } }),
        _ => json!({ "error": { "message": message, "type": kind, "param": null, "code": null } }),
    };
    let mut response = respond(state, status, "application/json", Body::from(error.to_string()));
    if status == StatusCode::TOO_MANY_REQUESTS {
        response.headers_mut().insert("retry-after", HeaderValue::from_static("7"));
        // As a provider behind its own Envoy sends it: Envoy would not retry such a 429.
        response.headers_mut().insert("x-envoy-ratelimited", HeaderValue::from_static("true"));
    }
    response
}

/// One SSE event rewritten with bare-CR line ends and its `data` split over two lines (JSON
/// tolerates the line feed the parser puts between them).
fn cr_multiline(event: &str) -> String {
    let mut out = String::new();
    for line in event.lines() {
        match line
            .strip_prefix("data: ")
            .and_then(|data| data.split_once(',').map(|(a, b)| (a.to_owned(), b.to_owned())))
        {
            Some((first, rest)) => out.push_str(&format!("data: {first},\rdata: {rest}\r")),
            None => out.push_str(&format!("{line}\r")),
        }
    }
    out
}

/// `bytes` as a gzip member of stored (uncompressed) deflate blocks: valid gzip any client decodes.
fn gzip_stored(bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    let blocks: Vec<&[u8]> = bytes.chunks(65_535).collect();
    for (i, block) in blocks.iter().enumerate() {
        out.push(u8::from(i + 1 == blocks.len()));
        let len = block.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    if blocks.is_empty() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    out.extend_from_slice(&crc32(bytes).to_le_bytes());
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fn respond(state: &MockState, status: StatusCode, content_type: &'static str, body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static(content_type));
    if let Ok(name) = HeaderValue::from_str(&state.name) {
        headers.insert("x-mock-upstream", name);
    }
    response
}

/// A text answer at `path`: its JSON body and its stream events; `None` for an unknown path.
fn answer_for(answer: &Answer, path: &str, include_usage: bool) -> Option<(Value, Vec<String>)> {
    match path {
        "/v1/chat/completions" => Some((answer.chat(), answer.chat_events(include_usage))),
        "/v1/completions" => Some((answer.completion(), answer.completion_events(include_usage))),
        "/v1/embeddings" => Some((answer.embeddings(), Vec::new())),
        "/v1/responses" => Some((answer.response(), answer.response_events())),
        "/v1/messages" => Some((answer.message(), answer.message_events())),
        _ => None,
    }
}

/// The content of one mock answer, rendered in each API's format.
struct Answer<'a> {
    model: &'a str,
    text: &'a str,
    completion_tokens: u64,
}

fn sse(event: Option<&str>, data: &Value) -> String {
    match event {
        Some(event) => format!("event: {event}\ndata: {data}\n\n"),
        None => format!("data: {data}\n\n"),
    }
}

impl Answer<'_> {
    fn openai_usage(&self) -> Value {
        json!({ "prompt_tokens": PROMPT_TOKENS, "completion_tokens": self.completion_tokens,
                "total_tokens": PROMPT_TOKENS + self.completion_tokens })
    }

    fn words(&self) -> Vec<String> {
        let mut words = Vec::new();
        for (i, word) in self.text.split(' ').enumerate() {
            words.push(if i == 0 { word.to_owned() } else { format!(" {word}") });
        }
        words
    }

    fn chat(&self) -> Value {
        json!({
            "id": "chatcmpl-mock", "object": "chat.completion", "created": 1_700_000_000, "model": self.model,
            "choices": [ { "index": 0, "message": { "role": "assistant", "content": self.text },
                           "finish_reason": "stop", "logprobs": null } ],
            "usage": self.openai_usage(),
        })
    }

    fn chat_events(&self, include_usage: bool) -> Vec<String> {
        let chunk = |delta: Value, finish: Value| {
            json!({ "id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1_700_000_000,
                    "model": self.model, "choices": [ { "index": 0, "delta": delta, "finish_reason": finish } ] })
        };
        let mut events = vec![sse(None, &chunk(json!({ "role": "assistant", "content": "" }), Value::Null))];
        events.extend(self.words().iter().map(|w| sse(None, &chunk(json!({ "content": w }), Value::Null))));
        events.push(sse(None, &chunk(json!({}), json!("stop"))));
        if include_usage {
            events.push(sse(
                None,
                &json!({ "id": "chatcmpl-mock", "object": "chat.completion.chunk",
                "created": 1_700_000_000, "model": self.model, "choices": [], "usage": self.openai_usage() }),
            ));
        }
        events.push("data: [DONE]\n\n".to_owned());
        events
    }

    fn completion(&self) -> Value {
        json!({
            "id": "cmpl-mock", "object": "text_completion", "created": 1_700_000_000, "model": self.model,
            "choices": [ { "index": 0, "text": self.text, "finish_reason": "stop", "logprobs": null } ],
            "usage": self.openai_usage(),
        })
    }

    fn completion_events(&self, include_usage: bool) -> Vec<String> {
        let chunk = |text: &str, finish: Value| {
            json!({ "id": "cmpl-mock", "object": "text_completion", "created": 1_700_000_000, "model": self.model,
                    "choices": [ { "index": 0, "text": text, "finish_reason": finish, "logprobs": null } ] })
        };
        let mut events: Vec<String> = self.words().iter().map(|w| sse(None, &chunk(w, Value::Null))).collect();
        events.push(sse(None, &chunk("", json!("stop"))));
        if include_usage {
            events.push(sse(
                None,
                &json!({ "id": "cmpl-mock", "object": "text_completion", "created": 1_700_000_000,
                "model": self.model, "choices": [], "usage": self.openai_usage() }),
            ));
        }
        events.push("data: [DONE]\n\n".to_owned());
        events
    }

    fn embeddings(&self) -> Value {
        json!({
            "object": "list", "model": self.model,
            "data": [ { "object": "embedding", "index": 0, "embedding": [0.1, 0.2, 0.3] } ],
            "usage": { "prompt_tokens": PROMPT_TOKENS, "total_tokens": PROMPT_TOKENS },
        })
    }

    fn response(&self) -> Value {
        json!({
            "id": "resp_mock", "object": "response", "created_at": 1_700_000_000, "status": "completed",
            "model": self.model,
            "output": [ { "type": "message", "id": "msg_mock", "status": "completed", "role": "assistant",
                          "content": [ { "type": "output_text", "text": self.text, "annotations": [] } ] } ],
            "usage": { "input_tokens": PROMPT_TOKENS, "output_tokens": self.completion_tokens,
                       "total_tokens": PROMPT_TOKENS + self.completion_tokens },
        })
    }

    fn response_events(&self) -> Vec<String> {
        let mut created = self.response();
        created["status"] = json!("in_progress");
        created["output"] = json!([]);
        created["usage"] = Value::Null;
        let mut events =
            vec![sse(Some("response.created"), &json!({ "type": "response.created", "response": created }))];
        events.extend(self.words().iter().map(|w| {
            sse(
                Some("response.output_text.delta"),
                &json!({ "type": "response.output_text.delta",
                "item_id": "msg_mock", "output_index": 0, "content_index": 0, "delta": w }),
            )
        }));
        events.push(sse(
            Some("response.completed"),
            &json!({ "type": "response.completed", "response": self.response() }),
        ));
        events
    }

    fn message(&self) -> Value {
        json!({
            "id": "msg_mock", "type": "message", "role": "assistant", "model": self.model,
            "content": [ { "type": "text", "text": self.text } ],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": { "input_tokens": PROMPT_TOKENS, "output_tokens": self.completion_tokens },
        })
    }

    fn message_events(&self) -> Vec<String> {
        let start = json!({ "type": "message_start", "message": {
            "id": "msg_mock", "type": "message", "role": "assistant", "model": self.model, "content": [],
            "stop_reason": null, "stop_sequence": null,
            "usage": { "input_tokens": PROMPT_TOKENS, "output_tokens": 1 } } });
        let mut events = vec![
            sse(Some("message_start"), &start),
            sse(
                Some("content_block_start"),
                &json!({ "type": "content_block_start", "index": 0,
                "content_block": { "type": "text", "text": "" } }),
            ),
            sse(Some("ping"), &json!({ "type": "ping" })),
        ];
        events.extend(self.words().iter().map(|w| {
            sse(
                Some("content_block_delta"),
                &json!({ "type": "content_block_delta", "index": 0,
                "delta": { "type": "text_delta", "text": w } }),
            )
        }));
        events.push(sse(Some("content_block_stop"), &json!({ "type": "content_block_stop", "index": 0 })));
        events.push(sse(
            Some("message_delta"),
            &json!({ "type": "message_delta",
            "delta": { "stop_reason": "end_turn", "stop_sequence": null },
            "usage": { "output_tokens": self.completion_tokens } }),
        ));
        events.push(sse(Some("message_stop"), &json!({ "type": "message_stop" })));
        events
    }
}
