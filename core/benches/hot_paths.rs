//! Micro-benchmarks of the filter's hot paths on the host: key lookup, body field extraction, the
//! SSE usage scan, the quota path, cache keys, and one whole request through the flow.
//! Run: `cargo bench -p ai-gateway-core --features test-support --bench hot_paths`.

use ai_gateway_core::auth::{authenticate, digest};
use ai_gateway_core::body_format::BodyFormat;
use ai_gateway_core::cache::{cache_key, KeyMaterial};
use ai_gateway_core::config::{CacheScope, CacheSettings, Config};
use ai_gateway_core::endpoint::ModelEndpoint;
use ai_gateway_core::fake::{FakeHeaders, FakeStore};
use ai_gateway_core::flow::{BodyAction, HeadersAction, Io, RequestFlow};
use ai_gateway_core::quota::{self, Limit, LimitKind};
use ai_gateway_core::request_body::read_fields;
use ai_gateway_core::usage::{ResponseApi, UsageReader};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use serde_json::json;
use std::rc::Rc;

fn config(keys: usize) -> Result<Config, ai_gateway_core::config::ConfigError> {
    let keys: Vec<_> = (0..keys)
        .map(|i| json!({ "id": format!("key-{i}"), "sha256": hex(&digest(&format!("sk-{i}"))),
                         "limits": { "requests_per_minute": 1_000_000_000u64, "tokens_per_minute": 1_000_000_000_000u64 } }))
        .collect();
    let document = json!({
        "keys": keys,
        "upstreams": { "openai": { "headers": { "authorization": "Bearer sk-provider" } } },
        "models": { "gpt-4o-mini": { "upstream": "openai", "model": "gpt-4o-mini-2024-07-18" } }
    });
    Config::parse(document.to_string().as_bytes())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A chat request whose body is about `size` bytes.
fn chat_body(size: usize) -> Vec<u8> {
    let filler = "lorem ipsum ".repeat(size / 12);
    json!({ "model": "gpt-4o-mini", "max_tokens": 64, "messages": [ { "role": "user", "content": filler } ] })
        .to_string()
        .into_bytes()
}

fn sse_stream() -> Vec<u8> {
    let mut stream = String::new();
    for i in 0..200 {
        stream.push_str(&format!(
            "data: {{\"id\":\"c\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"token {i} \"}}}}],\"usage\":null}}\n\n"
        ));
    }
    stream.push_str("data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":200}}\n\ndata: [DONE]\n\n");
    stream.into_bytes()
}

fn benches(c: &mut Criterion) {
    let config = match config(1000) {
        Ok(config) => Rc::new(config),
        Err(error) => return eprintln!("the benchmark's configuration is invalid: {error}"),
    };
    let mut headers = FakeHeaders::new(&[("authorization", "Bearer sk-500")]);
    c.bench_function("key lookup (1000 keys)", |b| b.iter(|| authenticate(black_box(&config), &mut headers).is_ok()));

    for size in [1024, 100 * 1024] {
        let body = chat_body(size);
        c.bench_function(&format!("model extraction ({} KB body)", size / 1024), |b| {
            b.iter(|| read_fields(black_box(&body)).is_ok())
        });
    }

    let stream = sse_stream();
    c.bench_function(&format!("SSE usage scan ({} KB, 16 KB chunks)", stream.len() / 1024), |b| {
        b.iter(|| {
            let mut reader = UsageReader::new(BodyFormat::EventStream, ResponseApi::ChatCompletions);
            for chunk in stream.chunks(16 * 1024) {
                reader.feed(chunk);
            }
            reader.finish()
        })
    });

    let store = FakeStore::default();
    let limits = [
        Limit::new("k", LimitKind::RequestsPerMinute, u64::MAX / 4),
        Limit::new("k", LimitKind::TokensPerMinute, u64::MAX / 4),
    ];
    c.bench_function("quota: take from 2 limits (fake store)", |b| {
        b.iter(|| quota::take_all(&store, limits.iter(), black_box(1), 0).is_ok())
    });

    let settings =
        CacheSettings { ttl_seconds: 300, max_entries: 1024, max_entry_bytes: 262_144, scope: CacheScope::Key };
    for size in [1024, 100 * 1024] {
        let body = chat_body(size);
        let material = KeyMaterial {
            key_id: "key-1",
            upstream: "openai",
            upstream_model: "gpt-4o-mini-2024-07-18",
            endpoint: ModelEndpoint::ChatCompletions,
            authority: "api.openai.com",
            query: "",
            headers: &[],
            body: &body,
        };
        c.bench_function(&format!("cache key ({} KB body)", size / 1024), |b| {
            b.iter(|| cache_key(&settings, black_box(&material)))
        });
    }

    let body = chat_body(1024);
    c.bench_function("whole request: auth, limits, routing, rewrite (1 KB body)", |b| {
        b.iter(|| {
            let mut flow = RequestFlow::new(Some(config.clone()), 7);
            let mut headers = FakeHeaders::new(&[
                (":method", "POST"),
                (":path", "/v1/chat/completions"),
                ("authorization", "Bearer sk-500"),
                ("content-type", "application/json"),
            ]);
            let read_body = flow.on_request_headers(&mut Io { headers: &mut headers, store: &store, clock: &0 }, false);
            assert_eq!(read_body, HeadersAction::ReadBody);
            let forward = flow.on_request_body(&mut Io { headers: &mut headers, store: &store, clock: &0 }, &body);
            assert!(matches!(forward, BodyAction::Forward { new_body: Some(_) }));
            flow.on_done(&store, &0)
        })
    });
}

criterion_group!(hot_paths, benches);
criterion_main!(hot_paths);
