//! Request-flow tests of the response cache against the fake host and store.

use super::*;

fn config(scope: &str, max_entry_bytes: u32) -> Rc<Config> {
    TestConfig::new()
        .key("a", &["sk-a"], json!({ "limits": { "requests_per_hour": 100, "tokens_per_day": 10_000 } }))
        .key("b", &["sk-b"], json!({}))
        .with(
            "cache",
            json!({ "ttl_seconds": 60, "max_entries": 1024, "max_entry_bytes": max_entry_bytes, "scope": scope }),
        )
        .build()
}

/// A request's outcome: the local reply if answered locally, else the response the client saw.
enum Outcome {
    Local(LocalReply),
    Forwarded(FakeHeaders),
}

struct Client<'a> {
    config: Rc<Config>,
    store: &'a FakeStore,
}

impl Client<'_> {
    /// One request; if forwarded, the upstream answers `status`, `content_type`, `answer`, in two chunks.
    fn call(&self, key: &str, extra: &[(&str, &str)], body: &str, upstream: (u16, &str, &str), now_ns: u64) -> Outcome {
        let store = self.store;
        let mut flow = RequestFlow::new(Some(self.config.clone()), 0);
        let auth = format!("Bearer {key}");
        let mut headers =
            FakeHeaders::new(&[(":method", "POST"), (":path", "/v1/chat/completions"), ("authorization", &auth)]);
        headers.entries.extend(extra.iter().map(|(n, v)| (n.to_string(), v.to_string())));
        assert_eq!(
            flow.on_request_headers(&mut Io { headers: &mut headers, store, clock: &now_ns }, false),
            HeadersAction::ReadBody
        );
        match flow.on_request_body(&mut Io { headers: &mut headers, store, clock: &now_ns }, body.as_bytes()) {
            BodyAction::Respond(reply) => Outcome::Local(reply),
            BodyAction::Hold => panic!("a request in its body phase was held"),
            BodyAction::Forward { .. } => {
                let (status, content_type, answer) = upstream;
                let mut response =
                    FakeHeaders::new(&[(":status", &status.to_string()), ("content-type", content_type)]);
                flow.on_response_headers(&mut response, &NOW, false).apply_to(&mut response);
                let (first, second) = answer.as_bytes().split_at(answer.len() / 2);
                flow.on_response_body(first, false);
                flow.on_response_body(second, true);
                flow.on_done(store, &now_ns);
                Outcome::Forwarded(response)
            }
        }
    }
}

const BODY: &str = r#"{"model":"gpt","messages":[{"role":"user","content":"hi"}],"temperature":0}"#;
const ANSWER: &str =
    r#"{"id":"x","choices":[{"message":{"content":"hello"}}],"usage":{"prompt_tokens":3,"completion_tokens":4}}"#;
const JSON_OK: (u16, &str, &str) = (200, "application/json", ANSWER);

fn hit(outcome: &Outcome) -> &LocalReply {
    match outcome {
        Outcome::Local(reply) if reply.status == 200 => reply,
        Outcome::Local(reply) => panic!("expected a hit, got {}", reply.status),
        Outcome::Forwarded(_) => panic!("expected a hit, the request was forwarded"),
    }
}

fn cache_header(outcome: &Outcome) -> Option<String> {
    match outcome {
        Outcome::Local(reply) => reply.headers.iter().find(|(n, _)| *n == CACHE_HEADER).map(|(_, v)| v.clone()),
        Outcome::Forwarded(headers) => headers.clone().get(CACHE_HEADER),
    }
}

fn reply_header<'r>(reply: &'r LocalReply, name: &str) -> Option<&'r str> {
    header(&reply.headers, name)
}

#[test]
fn the_second_identical_request_is_a_hit_with_the_same_body() {
    let store = FakeStore::default();
    let client = Client { config: config("key", 4096), store: &store };
    let first = client.call("sk-a", &[], BODY, JSON_OK, NOW);
    assert_eq!(cache_header(&first).as_deref(), Some("miss"));
    let second = client.call("sk-a", &[], BODY, JSON_OK, NOW + 5 * SECOND);
    let reply = hit(&second);
    assert_eq!(reply.body, ANSWER.as_bytes());
    assert_eq!(reply_header(reply, CACHE_HEADER), Some("hit"));
    assert_eq!(reply_header(reply, "age"), Some("5"));
    assert_eq!(reply_header(reply, "content-type"), Some("application/json"));
    // The hit counted as a request (98 left of 100) but spent no tokens: only the first request's
    // real usage (7 tokens) is charged.
    assert_eq!(reply_header(reply, "x-ratelimit-remaining-requests"), Some("98"));
    assert_eq!(reply_header(reply, "x-ratelimit-remaining-tokens"), Some("9993"));
    // Expired after the TTL.
    assert_eq!(cache_header(&client.call("sk-a", &[], BODY, JSON_OK, NOW + 61 * SECOND)).as_deref(), Some("miss"));
}

#[test]
fn bodies_are_keyed_byte_for_byte_with_the_query_and_forwarded_headers() {
    let store = FakeStore::default();
    let client = Client { config: config("key", 4096), store: &store };
    client.call("sk-a", &[], BODY, JSON_OK, NOW);
    // Reordered fields are another entry: the body is never re-serialised for the key.
    let reordered = r#"{ "temperature": 0, "messages": [ { "content": "hi", "role": "user" } ], "model": "gpt" }"#;
    assert_eq!(cache_header(&client.call("sk-a", &[], reordered, JSON_OK, NOW)).as_deref(), Some("miss"));
    // A forwarded header that changes the answer, and one that is removed (so cannot change it).
    let beta = [("anthropic-beta", "x")];
    assert_eq!(cache_header(&client.call("sk-a", &beta, BODY, JSON_OK, NOW)).as_deref(), Some("miss"));
    hit(&client.call("sk-a", &[("openai-project", "proj_other"), ("user-agent", "sdk")], BODY, JSON_OK, NOW));
}

#[test]
fn another_key_never_gets_the_first_keys_entry_unless_the_scope_is_global() {
    let store = FakeStore::default();
    let client = Client { config: config("key", 4096), store: &store };
    client.call("sk-a", &[], BODY, JSON_OK, NOW);
    assert_eq!(
        cache_header(&client.call("sk-b", &[], BODY, (200, "application/json", "{\"b\":1}"), NOW)).as_deref(),
        Some("miss")
    );
    assert_eq!(hit(&client.call("sk-a", &[], BODY, JSON_OK, NOW)).body, ANSWER.as_bytes());

    let store = FakeStore::default();
    let global = Client { config: config("global", 4096), store: &store };
    global.call("sk-a", &[], BODY, JSON_OK, NOW);
    assert_eq!(hit(&global.call("sk-b", &[], BODY, JSON_OK, NOW)).body, ANSWER.as_bytes());
}

#[test]
fn no_store_and_no_cache() {
    let store = FakeStore::default();
    let client = Client { config: config("key", 4096), store: &store };
    let no_store = [("cache-control", "no-store")];
    assert_eq!(cache_header(&client.call("sk-a", &no_store, BODY, JSON_OK, NOW)).as_deref(), Some("bypass"));
    assert!(store.keys().iter().all(|k| !k.contains("cache")), "no-store wrote: {:?}", store.keys());
    client.call("sk-a", &[], BODY, JSON_OK, NOW);
    assert_eq!(cache_header(&client.call("sk-a", &no_store, BODY, JSON_OK, NOW)).as_deref(), Some("bypass"));
    // no-cache skips the lookup and refreshes the entry.
    let fresh = r#"{"fresh":true}"#;
    let outcome = client.call("sk-a", &[("cache-control", "no-cache")], BODY, (200, "application/json", fresh), NOW);
    assert_eq!(cache_header(&outcome).as_deref(), Some("bypass"));
    assert_eq!(hit(&client.call("sk-a", &[], BODY, JSON_OK, NOW)).body, fresh.as_bytes());
}

#[test]
fn streams_are_recorded_and_replayed_as_streams_only_to_streaming_requests() {
    let store = FakeStore::default();
    let client = Client { config: config("key", 4096), store: &store };
    let stream = "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1}}\n\ndata: [DONE]\n\n";
    let streaming = r#"{"model":"gpt","stream":true,"messages":[]}"#;
    client.call("sk-a", &[], streaming, (200, "text/event-stream", stream), NOW);
    let reply = hit(&client.call("sk-a", &[], streaming, JSON_OK, NOW)).clone();
    assert_eq!(
        (reply.body.as_slice(), reply_header(&reply, "content-type")),
        (stream.as_bytes(), Some("text/event-stream"))
    );
    let not_streaming = r#"{"model":"gpt","stream":false,"messages":[]}"#;
    assert_eq!(cache_header(&client.call("sk-a", &[], not_streaming, JSON_OK, NOW)).as_deref(), Some("miss"));
}

#[test]
fn errors_oversize_and_unfinished_answers_are_not_stored() {
    let store = FakeStore::default();
    let client = Client { config: config("key", 64), store: &store };
    let cases: &[(&str, (u16, &str, &str))] = &[
        ("error", (500, "application/json", "{\"error\":{}}")),
        ("not json or sse", (200, "text/plain", "hello")),
        ("oversize", (200, "application/json", ANSWER)),
    ];
    for (name, upstream) in cases {
        client.call("sk-a", &[], BODY, *upstream, NOW);
        assert_eq!(cache_header(&client.call("sk-a", &[], BODY, JSON_OK, NOW)).as_deref(), Some("miss"), "{name}");
    }
    // An aborted response (no end of stream) is not stored either.
    let mut flow = RequestFlow::new(Some(client.config.clone()), 0);
    let mut headers =
        FakeHeaders::new(&[(":method", "POST"), (":path", "/v1/chat/completions"), ("authorization", "Bearer sk-a")]);
    flow.on_request_headers(&mut Io { headers: &mut headers, store: &store, clock: &NOW }, false);
    flow.on_request_body(&mut Io { headers: &mut headers, store: &store, clock: &NOW }, BODY.as_bytes());
    flow.on_response_headers(
        &mut FakeHeaders::new(&[(":status", "200"), ("content-type", "application/json")]),
        &NOW,
        false,
    );
    flow.on_response_body(b"{\"id\":", false);
    flow.on_done(&store, &NOW);
    assert_eq!(cache_header(&client.call("sk-a", &[], BODY, JSON_OK, NOW)).as_deref(), Some("miss"));
    let _: Value = serde_json::from_str(ANSWER).unwrap();
}
