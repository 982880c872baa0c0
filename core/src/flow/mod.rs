//! The per-request state machine: takes a request's phases in order, keeps in each phase only the
//! data that phase has, and returns what to do as data, which `src/host/` carries out.
//!
//! Phases: request headers ([`request_headers`]) -> request body ([`admission`]) -> forwarded
//! ([`forwarded`]: the response, then the settlement) -> done. A request answered locally (an
//! error, a refusal, a cache hit, a model list) goes straight to done.

mod admission;
mod attempt;
mod decision;
pub(crate) mod forwarded;
mod provider;
mod refusal;
mod report;
mod request_headers;

pub use attempt::{AttemptFlow, AttemptTarget, ATTEMPT_HEADERS_PROPERTY, UPSTREAM_HEADER};
pub use decision::{BodyAction, BodyProgress, HeadersAction, LocalReply, ResponseBodyAction, ResponseHeadersAction};

use crate::api_error::{ApiError, ApiFormat, ErrorKind};
use crate::config::{Config, QuotaMode};
use crate::metrics::RequestSummary;
use crate::ports::{Clock, HeaderMap, ResponseInfo, SharedStore};
use crate::upstream_headers;
use admission::Decision;
use forwarded::Forwarded;
use report::Report;
use request_headers::AwaitingBody;
use std::rc::Rc;

/// The header that tells the upstream which configured key made the request.
pub const KEY_ID_HEADER: &str = "x-ai-gateway-key-id";
/// The response header that says whether the cache answered: `hit`, `miss` or `bypass`.
pub const CACHE_HEADER: &str = "x-ai-gateway-cache";

/// What the host lends a request callback: the header map of the phase, shared data and the time.
pub struct Io<'a> {
    pub headers: &'a mut dyn HeaderMap,
    pub store: &'a dyn SharedStore,
    pub clock: &'a dyn Clock,
}

#[derive(Debug)]
enum Phase {
    RequestHeaders,
    RequestBody(AwaitingBody),
    Forwarded(Box<Forwarded>),
    Done,
}

/// One request's journey through the gateway.
pub struct RequestFlow {
    config: Option<Rc<Config>>,
    /// Picks among weighted targets.
    random: u64,
    phase: Phase,
    report: Report,
}

impl RequestFlow {
    /// `config` is `None` until a valid configuration arrived.
    pub fn new(config: Option<Rc<Config>>, random: u64) -> Self {
        RequestFlow { config, random, phase: Phase::RequestHeaders, report: Report::default() }
    }

    pub fn on_request_headers(&mut self, io: &mut Io, end_of_stream: bool) -> HeadersAction {
        if !matches!(self.phase, Phase::RequestHeaders) {
            return HeadersAction::Respond(self.refuse_undecided());
        }
        self.report.set_request_id(io.headers.get("x-request-id"));
        match request_headers::decide(self.config.as_deref(), io, end_of_stream, &mut self.report) {
            Ok(awaiting) => {
                self.phase = Phase::RequestBody(awaiting);
                HeadersAction::ReadBody
            }
            Err(reply) => HeadersAction::Respond(self.answer(reply)),
        }
    }

    /// Part of the body has arrived (`buffered_bytes` so far): refuses a body larger than the
    /// gateway accepts as soon as it is, in the client's format, whatever Envoy's own buffer limits.
    pub fn on_request_body_progress(&mut self, io: &mut Io, buffered_bytes: usize) -> BodyProgress {
        match (&self.phase, self.config.clone()) {
            (Phase::RequestBody(awaiting), Some(config)) if too_large(&config, buffered_bytes) => {
                let reply = body_too_large(&config, *awaiting, io);
                BodyProgress::Respond(self.answer(reply))
            }
            _ => BodyProgress::KeepReading,
        }
    }

    /// Called once, with the whole buffered body, when the request has ended (its last data frame,
    /// or its trailers). Outside the body phase nothing is forwarded: a request that was answered
    /// stays held, and one the gateway never decided on is refused.
    pub fn on_request_body(&mut self, io: &mut Io, body: &[u8]) -> BodyAction {
        let (awaiting, config) = match (&self.phase, &self.config) {
            (Phase::RequestBody(awaiting), Some(config)) => (*awaiting, config.clone()),
            (Phase::Done, _) => return BodyAction::Hold,
            _ => return BodyAction::Respond(self.refuse_undecided()),
        };
        if too_large(&config, body.len()) {
            let reply = body_too_large(&config, awaiting, io);
            return BodyAction::Respond(self.answer(reply));
        }
        match admission::decide(&config, awaiting, io, body, self.random, &mut self.report) {
            Decision::Forward { forwarded, new_body } => {
                self.phase = Phase::Forwarded(forwarded);
                self.report.record_properties();
                BodyAction::Forward { new_body }
            }
            Decision::Answer(reply) => BodyAction::Respond(self.answer(reply)),
        }
    }

    /// Response headers: what to add to them, and whether the body is needed.
    pub fn on_response_headers(
        &mut self,
        headers: &mut dyn HeaderMap,
        info: &dyn ResponseInfo,
        end_of_stream: bool,
    ) -> ResponseHeadersAction {
        match &mut self.phase {
            Phase::Forwarded(forwarded) => match &self.config {
                Some(config) => forwarded.on_response_headers(config, headers, info, end_of_stream, &mut self.report),
                None => ResponseHeadersAction::default(),
            },
            _ => ResponseHeadersAction::default(),
        }
    }

    /// The response's trailers: the provider's account headers and `x-ai-gateway-*` removed, as
    /// from its headers.
    pub fn on_response_trailers(&mut self, trailers: &mut dyn HeaderMap) {
        upstream_headers::strip_provider_trailers(trailers);
    }

    /// A chunk of the response body, as it passes (it is never held back).
    pub fn on_response_body(&mut self, chunk: &[u8], end_of_stream: bool) -> ResponseBodyAction {
        match &mut self.phase {
            Phase::Forwarded(forwarded) => forwarded.on_response_body(chunk, end_of_stream),
            _ => ResponseBodyAction { read_body: false, replace: None },
        }
    }

    /// The response has ended, or the request is over (completed, failed or aborted): settles a
    /// forwarded request and returns what the metrics need, once; `None` after that.
    pub fn on_done(&mut self, store: &dyn SharedStore, clock: &dyn Clock) -> Option<RequestSummary> {
        if let Phase::Forwarded(forwarded) = std::mem::replace(&mut self.phase, Phase::Done) {
            if let Some(config) = &self.config {
                forwarded.settle(config, store, clock, &mut self.report);
            }
        }
        self.report.take_summary()
    }

    /// Filter-state properties to set (`wasm.NAME` in access logs); drained by the host.
    pub fn take_properties(&mut self) -> Vec<(&'static str, String)> {
        self.report.take_properties()
    }

    /// Log lines to write; drained by the host. They never hold a key, a whole digest or text.
    pub fn take_logs(&mut self) -> Vec<String> {
        self.report.take_logs()
    }

    /// Ends the request with a local reply.
    fn answer(&mut self, reply: LocalReply) -> LocalReply {
        self.phase = Phase::Done;
        self.report.finish_locally(&reply);
        if self.config.as_ref().is_some_and(|config| config.quota.mode == QuotaMode::Global) {
            // Answered here: Envoy's rate limit filter charges the token limits nothing for it.
            self.report.set_property(forwarded::TOKENS_PROPERTY, "0".to_owned());
        }
        reply
    }

    /// A request that reached a callback the gateway never decided on for it.
    fn refuse_undecided(&mut self) -> LocalReply {
        let error = ApiError::new(ErrorKind::Internal, "internal_error", "The gateway did not decide on this request.");
        self.answer(LocalReply::error(&error, ApiFormat::OpenAi))
    }
}

fn too_large(config: &Config, body_bytes: usize) -> bool {
    u64::try_from(body_bytes).unwrap_or(u64::MAX) > config.max_request_body_bytes
}

/// The 413 for a body over `max_request_body_bytes`, with the key's rate-limit headers.
fn body_too_large(config: &Config, awaiting: AwaitingBody, io: &Io) -> LocalReply {
    let message = format!(
        "The request body is larger than this gateway accepts ({} bytes at most).",
        config.max_request_body_bytes
    );
    let error = ApiError::new(ErrorKind::PayloadTooLarge, "request_too_large", message);
    let mut reply = LocalReply::error(&error, awaiting.endpoint.format());
    let mut rate_headers = awaiting.rate_headers;
    if let Some(key) = config.key(awaiting.key_index) {
        rate_headers.fill_missing(io.store, key, io.clock.now_ns());
    }
    reply.headers.extend(rate_headers.to_headers());
    reply
}

#[cfg(test)]
mod tests;
