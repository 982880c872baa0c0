//! Request-flow tests against the fake host, one file per concern, over one shared configuration
//! builder and a few request helpers.

mod cache;
mod fail_closed;
mod fallback;
mod global_quota;
mod observability;
mod quota;
mod routing;
mod translation;

use super::*;
use crate::auth::digest;
use crate::fake::{FakeHeaders, FakeStore};
use serde_json::{json, Value};

pub const NOW: u64 = 1_700_000_000_000_000_000;
pub const SECOND: u64 = 1_000_000_000;
pub const MS: u64 = 1_000_000;

/// A test configuration: the keys a test adds, and the same upstreams and models for every test.
///
/// Upstreams: `openai` (cluster `openai_cluster`, authority and credential set), `org` (the same
/// cluster, forwarding `openai-organization` and `cookie`), `anthropic` (Anthropic API). Models:
/// `gpt-mini` (renamed), `gpt-4o` (not renamed), `gpt` (renamed `gpt-real`), `gpt-org`,
/// `claude-haiku` (renamed) and `claude`.
pub struct TestConfig(Value);

impl TestConfig {
    pub fn new() -> TestConfig {
        TestConfig(json!({
            "keys": [],
            "upstreams": {
                "openai": { "cluster": "openai_cluster", "authority": "api.openai.com",
                            "headers": { "authorization": "Bearer sk-provider" } },
                "org": { "cluster": "openai_cluster", "forward_headers": ["OpenAI-Organization", "cookie"] },
                "anthropic": { "api": "anthropic",
                               "headers": { "x-api-key": "provider-key", "anthropic-version": "2023-06-01" } }
            },
            "models": {
                "gpt-mini": { "upstream": "openai", "model": "gpt-4o-mini-2024-07-18" },
                "gpt-4o": { "upstream": "openai" },
                "gpt": { "upstream": "openai", "model": "gpt-real" },
                "gpt-org": { "upstream": "org" },
                "claude-haiku": { "upstream": "anthropic", "model": "claude-3-5-haiku-latest" },
                "claude": { "upstream": "anthropic" }
            }
        }))
    }

    /// Adds a key with these secrets; `fields` adds `models` and `limits` as the contract has them.
    pub fn key(mut self, id: &str, secrets: &[&str], fields: Value) -> TestConfig {
        let digests: Vec<String> = secrets.iter().map(|secret| hex::encode(digest(secret))).collect();
        let mut key = json!({ "id": id, "sha256": digests });
        if let (Some(key), Some(fields)) = (key.as_object_mut(), fields.as_object()) {
            key.extend(fields.clone());
        }
        self.0["keys"].as_array_mut().unwrap().push(key);
        self
    }

    /// Sets one top-level section (`cache`, `cluster_header`, ...).
    pub fn with(mut self, section: &str, value: Value) -> TestConfig {
        self.0[section] = value;
        self
    }

    pub fn build(self) -> Rc<Config> {
        Rc::new(Config::parse(self.0.to_string().as_bytes()).unwrap())
    }
}

/// Request headers as a client sends them to the gateway.
pub fn request(method: &str, path: &str, extra: &[(&str, &str)]) -> FakeHeaders {
    let mut headers = FakeHeaders::new(&[(":method", method), (":path", path), (":authority", "gateway.local")]);
    headers.entries.extend(extra.iter().map(|(n, v)| (n.to_string(), v.to_string())));
    headers
}

/// One request taken through its headers and body phases.
pub struct Trip {
    pub flow: RequestFlow,
    pub headers: FakeHeaders,
    /// `Ok`: forwarded, with the new body if it changed. `Err`: answered locally.
    pub outcome: Result<Option<Vec<u8>>, LocalReply>,
}

impl Trip {
    pub fn send(config: &Rc<Config>, store: &FakeStore, now_ns: u64, mut headers: FakeHeaders, body: &str) -> Trip {
        let mut flow = RequestFlow::new(Some(config.clone()), 0);
        let outcome = match flow.on_request_headers(&mut Io { headers: &mut headers, store, clock: &now_ns }, false) {
            HeadersAction::Respond(reply) => Err(reply),
            HeadersAction::ReadBody => {
                match flow.on_request_body(&mut Io { headers: &mut headers, store, clock: &now_ns }, body.as_bytes()) {
                    BodyAction::Forward { new_body } => Ok(new_body),
                    BodyAction::Respond(reply) => Err(reply),
                    BodyAction::Hold => panic!("a request in its body phase was held"),
                }
            }
        };
        Trip { flow, headers, outcome }
    }

    /// The upstream answers: response headers (returned as the client sees them), then the body in
    /// these chunks, the last one ending the stream if `ends`.
    pub fn answer(&mut self, status: u16, content_type: &str, chunks: &[&[u8]], ends: bool) -> FakeHeaders {
        let mut response = FakeHeaders::new(&[(":status", &status.to_string()), ("content-type", content_type)]);
        let action = self.flow.on_response_headers(&mut response, &NOW, false);
        action.apply_to(&mut response);
        for (i, chunk) in chunks.iter().enumerate() {
            self.flow.on_response_body(chunk, ends && i + 1 == chunks.len());
        }
        response
    }
}

/// The value of a header in a local reply's list.
pub fn header<'a>(headers: &'a [(&'static str, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
}
