//! Fuzzes a whole request through the flow with the fake host: arbitrary method, path, credentials
//! and body, then an arbitrary response. Nothing panics, and only known keys get forwarded.
#![no_main]

use ai_gateway_core::config::Config;
use ai_gateway_core::fake::{FakeHeaders, FakeStore};
use ai_gateway_core::flow::{BodyAction, HeadersAction, Io, RequestFlow};
use libfuzzer_sys::fuzz_target;
use std::rc::Rc;

const CONFIG: &str = r#"{
  "keys": [ { "id": "k", "sha256": "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
              "limits": { "requests_per_minute": 1000000, "tokens_per_minute": 1000000000 } } ],
  "upstreams": { "u": { "headers": { "authorization": "Bearer provider" } } },
  "models": { "m": { "upstream": "u", "model": "real" } },
  "cache": { "max_entries": 8, "max_entry_bytes": 1024 }
}"#;

fn config() -> Rc<Config> {
    Rc::new(Config::parse(CONFIG.as_bytes()).expect("the fuzz config is valid"))
}

fuzz_target!(|data: &[u8]| {
    // Layout: method, path, authorization value, body, response body, separated by 0xff bytes.
    let mut parts = data.split(|&b| b == 0xff);
    let text = |bytes: Option<&[u8]>| String::from_utf8_lossy(bytes.unwrap_or_default()).into_owned();
    let (method, path, auth) = (text(parts.next()), text(parts.next()), text(parts.next()));
    let body = parts.next().unwrap_or_default();
    let response = parts.next().unwrap_or_default();
    let store = FakeStore::default();
    let mut flow = RequestFlow::new(Some(config()), u64::from(data.len() as u32));
    let mut headers = FakeHeaders::new(&[(":method", &method), (":path", &path), ("authorization", &auth)]);
    let forwarded = match flow.on_request_headers(&mut Io { headers: &mut headers, store: &store, clock: &0 }, false) {
        HeadersAction::Respond(_) => false,
        HeadersAction::ReadBody => matches!(
            flow.on_request_body(&mut Io { headers: &mut headers, store: &store, clock: &0 }, body),
            BodyAction::Forward { .. }
        ),
    };
    if forwarded {
        // Only the configured key ("foo") is forwarded, however the Bearer scheme is spelled.
        let (scheme, key) = auth.trim().split_once(' ').expect("a forwarded request had a credential");
        assert!(scheme.eq_ignore_ascii_case("bearer") && key.trim() == "foo", "{auth:?} was forwarded");
        let mut response_headers = FakeHeaders::new(&[(":status", "200"), ("content-type", "text/event-stream")]);
        flow.on_response_headers(&mut response_headers, &1, false).apply_to(&mut response_headers);
        flow.on_response_body(response, true);
    }
    let _ = flow.on_done(&store, &2);
});
