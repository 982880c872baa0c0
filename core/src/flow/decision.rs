//! What the request flow tells its host to do, as data: one type per callback. `src/host/` carries
//! these out and decides nothing itself.

use crate::api_error::{ApiError, ApiFormat};
use crate::metrics::Outcome;
use crate::ports::HeaderMap;

/// A response the gateway answers itself, without going upstream, and the outcome it counts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    pub outcome: Outcome,
}

impl LocalReply {
    pub fn json(status: u16, body: Vec<u8>, outcome: Outcome) -> Self {
        LocalReply { status, headers: vec![("content-type", "application/json".to_owned())], body, outcome }
    }

    /// An error in the client's API format; its outcome comes from the error's kind.
    pub fn error(error: &ApiError, format: ApiFormat) -> Self {
        LocalReply::json(error.status(), error.body(format), Outcome::of_error(error.kind))
    }
}

/// What to do after the request headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadersAction {
    /// Hold the headers and buffer the body: routing needs it.
    ReadBody,
    Respond(LocalReply),
}

/// What to do once the whole request body is buffered (at the end of the stream, or when trailers
/// end it). A request reaches a cluster only through `Forward`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyAction {
    /// Send the request upstream (the headers are already rewritten), with this body if it changed.
    /// The route cache must be cleared, since the cluster header changed.
    Forward { new_body: Option<Vec<u8>> },
    /// Answer locally: an error, a refusal, or a cache hit.
    Respond(LocalReply),
    /// Keep the request stopped: it was answered already, so nothing may reach a cluster.
    Hold,
}

/// What to do while the request body is still arriving.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyProgress {
    /// Keep buffering: the body is read whole at the end of the request.
    KeepReading,
    /// Answer locally (a body larger than the gateway accepts).
    Respond(LocalReply),
}

/// What to do with the response headers of a forwarded request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResponseHeadersAction {
    /// Provider headers the client must not see (the provider account's rate limits, its
    /// organization, its cookies).
    pub remove: Vec<String>,
    /// Headers to add or replace (rate limits, cache result).
    pub set: Vec<(&'static str, String)>,
    /// Whether the flow needs the body's chunks (to read usage, record or translate the answer).
    pub read_body: bool,
    /// Hold the body until it has arrived whole, then hand it over once (a translated JSON answer).
    pub hold_body: bool,
}

impl ResponseHeadersAction {
    pub fn apply_to(&self, headers: &mut dyn HeaderMap) {
        for name in &self.remove {
            headers.remove(name);
        }
        for (name, value) in &self.set {
            headers.set(name, value);
        }
    }
}

/// What to do with a chunk of the response body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseBodyAction {
    /// Whether the flow needs the next chunks.
    pub read_body: bool,
    /// Send these bytes instead of the chunk (a translated answer).
    pub replace: Option<Vec<u8>>,
}
