//! Fuzzes one attempt of a fallback chain through the upstream role with the fake host: arbitrary
//! path, saved headers, provider, body and answer. Nothing panics, and a forwarded attempt carries
//! the credential of its own provider only.
#![no_main]

use ai_gateway_core::config::Config;
use ai_gateway_core::fake::{FakeHeaders, FakeStore};
use ai_gateway_core::flow::{AttemptFlow, AttemptTarget, BodyAction, Io};
use ai_gateway_core::ports::HeaderMap;
use libfuzzer_sys::fuzz_target;
use std::rc::Rc;

const CONFIG: &str = r#"{
  "role": "upstream",
  "upstreams": { "o": { "headers": { "authorization": "Bearer provider-o" } },
                 "a": { "api": "anthropic", "headers": { "x-api-key": "provider-a" } } },
  "models": { "m": { "upstream": "o", "model": "real", "fallbacks": [ { "upstream": "a" } ], "fallback_cluster": "chain" } }
}"#;

fuzz_target!(|data: &[u8]| {
    // Layout: path, saved headers (JSON), provider, body, answer content-type, answer body, by 0xff.
    let mut parts = data.split(|&b| b == 0xff);
    let text = |bytes: Option<&[u8]>| String::from_utf8_lossy(bytes.unwrap_or_default()).into_owned();
    let (path, saved, provider) = (text(parts.next()), text(parts.next()), text(parts.next()));
    let body = parts.next().unwrap_or_default();
    let (content_type, answer) = (text(parts.next()), parts.next().unwrap_or_default());
    let config = Rc::new(Config::parse(CONFIG.as_bytes()).expect("the fuzz config is valid"));
    let store = FakeStore::default();
    let mut flow = AttemptFlow::new(Some(config));
    let mut headers = FakeHeaders::new(&[(":method", "POST"), (":path", &path), ("authorization", "Bearer provider-a")]);
    flow.on_request_headers(&mut Io { headers: &mut headers, store: &store, clock: &0 });
    let target = AttemptTarget {
        cluster: Some("chain".to_owned()),
        provider: Some(provider.clone()),
        request_headers: Some(saved),
    };
    let action = flow.on_request_body(&mut Io { headers: &mut headers, store: &store, clock: &0 }, body, &target);
    if let BodyAction::Forward { .. } = action {
        let expected = match provider.as_str() {
            "o" => (Some("Bearer provider-o".to_owned()), None),
            "a" => (None, Some("provider-a".to_owned())),
            other => panic!("an attempt to {other:?} was forwarded"),
        };
        assert_eq!((headers.get("authorization"), headers.get("x-api-key")), expected);
        let mut response = FakeHeaders::new(&[(":status", "200"), ("content-type", &content_type)]);
        flow.on_response_headers(&mut response).apply_to(&mut response);
        flow.on_response_body(answer, true);
    }
});
