//! The per-request state machine: takes the request's phases in order and returns what to do as data.

use crate::api_error::{ApiError, ApiFormat, ErrorKind};
use crate::auth::{self, CREDENTIAL_HEADERS};
use crate::cache::{self, Directives, KeyMaterial};
use crate::config::{Config, Key, GATEWAY_HEADER_PREFIX};
use crate::endpoint::{classify, Endpoint, ModelEndpoint};
use crate::metrics::{CacheEvent, RequestSummary};
use crate::ports::{Clock, HeaderMap, SharedStore};
use crate::quota::headers::{format_duration, limit_headers, retry_after_headers};
use crate::quota::{self, Refusal};
use crate::request_body::{self, RequestFields};
use crate::usage::{BodyFormat, UsageReader};
use crate::{model_list, routing, upstream_headers};
use std::rc::Rc;

/// The header that tells the upstream which configured key made the request.
pub const KEY_ID_HEADER: &str = "x-ai-gateway-key-id";
/// The response header that says whether the cache answered: `hit`, `miss` or `bypass`.
pub const CACHE_HEADER: &str = "x-ai-gateway-cache";
/// Output tokens reserved for a request that declares no maximum (`max_tokens` and the like).
pub const DEFAULT_OUTPUT_ESTIMATE: u64 = 1024;
/// Request-body bytes per prompt token assumed when reserving: an overestimate for most text
/// (English averages about 4 bytes per token), so the reservation covers the real prompt.
pub const PROMPT_BYTES_PER_TOKEN: u64 = 3;

/// A response the gateway answers itself, without going upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl LocalReply {
    fn json(status: u16, body: Vec<u8>) -> Self {
        LocalReply { status, headers: vec![("content-type", "application/json".to_owned())], body }
    }

    fn error(error: &ApiError, format: ApiFormat) -> Self {
        LocalReply::json(error.status(), error.body(format))
    }
}

/// What the host lends a request callback: the header map of the phase, shared data and the time.
pub struct Io<'a> {
    pub headers: &'a mut dyn HeaderMap,
    pub store: &'a dyn SharedStore,
    pub clock: &'a dyn Clock,
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
    Forward {
        new_body: Option<Vec<u8>>,
    },
    Respond(LocalReply),
    /// Keep the request stopped: it was answered already, so nothing may reach a cluster.
    Hold,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    RequestHeaders,
    RequestBody { key_index: usize, endpoint: ModelEndpoint },
    Forwarded { endpoint: ModelEndpoint },
    Done,
}

/// Tokens held against a key's token limits until the request's real usage is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Reservation {
    key_index: usize,
    reserved: u64,
    prompt_estimate: u64,
}

/// A response being copied as it passes, to be stored in the cache if it completes with 200.
#[derive(Debug)]
struct Recording {
    key: [u8; 32],
    format: Option<BodyFormat>,
    body: Vec<u8>,
}

/// One request's journey through the gateway.
pub struct RequestFlow {
    config: Option<Rc<Config>>,
    random: u64,
    phase: Phase,
    /// `x-ratelimit-*` headers for the response, gathered at admission.
    rate_headers: Vec<(&'static str, String)>,
    reservation: Option<Reservation>,
    response_status: Option<u16>,
    /// The response's last byte passed (the transport's end, not the protocol's).
    response_ended: bool,
    usage_reader: Option<UsageReader>,
    recording: Option<Recording>,
    /// `on_done` ran: the response ended, or the request is over.
    finished: bool,
    /// What the metrics, access log and logs say about this request.
    summary: RequestSummary,
    request_id: String,
    forwarded_at_ns: Option<u64>,
    first_byte_at_ns: Option<u64>,
    /// Filter-state properties for the access log, and log lines, waiting for the host.
    pending_properties: Vec<(&'static str, String)>,
    recorded_properties: Vec<&'static str>,
    pending_logs: Vec<String>,
}

impl RequestFlow {
    /// `config` is `None` until a valid configuration arrived; `random` picks weighted targets.
    pub fn new(config: Option<Rc<Config>>, random: u64) -> Self {
        RequestFlow {
            config,
            random,
            phase: Phase::RequestHeaders,
            rate_headers: Vec::new(),
            reservation: None,
            response_status: None,
            response_ended: false,
            usage_reader: None,
            recording: None,
            finished: false,
            summary: RequestSummary::default(),
            request_id: String::new(),
            forwarded_at_ns: None,
            first_byte_at_ns: None,
            pending_properties: Vec::new(),
            recorded_properties: Vec::new(),
            pending_logs: Vec::new(),
        }
    }

    pub fn on_request_headers(&mut self, io: &mut Io, end_of_stream: bool) -> HeadersAction {
        self.request_id = io.headers.get("x-request-id").unwrap_or_default();
        let action = self.request_headers(io, end_of_stream);
        if let HeadersAction::Respond(reply) = &action {
            self.phase = Phase::Done;
            self.finish_locally(reply);
        }
        action
    }

    fn request_headers(&mut self, io: &mut Io, end_of_stream: bool) -> HeadersAction {
        let headers = &mut *io.headers;
        let Some(config) = self.config.clone() else {
            strip_gateway_headers(headers, None);
            let error = ApiError::new(ErrorKind::Internal, "not_configured", "The gateway has no valid configuration.");
            return HeadersAction::Respond(LocalReply::error(&error, ApiFormat::OpenAi));
        };
        strip_gateway_headers(headers, Some(&config.cluster_header));
        let method = headers.get(":method").unwrap_or_default();
        let path = headers.get(":path").unwrap_or_default();
        let classified = classify(&method, &path, headers.get("anthropic-version").is_some());
        let format = classified.format;
        let respond_error = |error: ApiError| HeadersAction::Respond(LocalReply::error(&error, format));

        let authenticated = auth::authenticate(&config, &mut *headers);
        for name in CREDENTIAL_HEADERS {
            headers.remove(name);
        }
        let (key_index, key) = match authenticated {
            Ok(found) => found,
            Err(error) => {
                if let auth::AuthError::Unknown { digest_prefix } = error {
                    let prefix: String = digest_prefix.iter().map(|b| format!("{b:02x}")).collect();
                    self.log(&format!("unknown key sha256={prefix}..."));
                }
                return respond_error(ApiError::new(ErrorKind::Unauthorized, "invalid_api_key", error.message()));
            }
        };
        headers.set(KEY_ID_HEADER, &key.id);
        self.summary.key_id = Some(key.id.clone());

        match classified.endpoint {
            Endpoint::Model(endpoint) => {
                if end_of_stream {
                    return respond_error(ApiError::new(
                        ErrorKind::BadRequest,
                        "invalid_json",
                        "The request has no body; send a JSON object.",
                    ));
                }
                if let Some(encoding) = headers.get("content-encoding").filter(|e| !e.eq_ignore_ascii_case("identity"))
                {
                    return respond_error(ApiError::new(
                        ErrorKind::UnsupportedMediaType,
                        "unsupported_content_encoding",
                        format!(
                            "Request bodies with content-encoding `{encoding}` are not supported; send plain JSON."
                        ),
                    ));
                }
                let request_limits = key.limits.iter().filter(|l| !l.kind.counts_tokens());
                match quota::take_all(io.store, request_limits, 1, io.clock.now_ns()) {
                    Ok(status) => {
                        self.rate_headers.extend(status.map(|s| limit_headers("requests", s)).into_iter().flatten())
                    }
                    Err(refusal) => {
                        let mut reply = self.refusal_reply(refusal, key, io, format);
                        reply.headers.extend(self.rate_headers.iter().cloned());
                        return HeadersAction::Respond(reply);
                    }
                }
                self.phase = Phase::RequestBody { key_index, endpoint };
                HeadersAction::ReadBody
            }
            Endpoint::ListModels => {
                HeadersAction::Respond(LocalReply::json(200, model_list::list(&config, key, format)))
            }
            Endpoint::RetrieveModel(name) => match model_list::retrieve(&config, key, &name, format) {
                Ok(body) => HeadersAction::Respond(LocalReply::json(200, body)),
                Err(error) => respond_error(error),
            },
            Endpoint::MethodNotAllowed { allow } => {
                let error = ApiError::new(
                    ErrorKind::MethodNotAllowed,
                    "method_not_allowed",
                    format!("Method {method} is not allowed on {path}; use {allow}."),
                );
                let mut reply = LocalReply::error(&error, format);
                reply.headers.push(("allow", allow.to_owned()));
                HeadersAction::Respond(reply)
            }
            Endpoint::NotFound => respond_error(ApiError::new(
                ErrorKind::NotFound,
                "unknown_url",
                format!("Unrecognized request URL ({method} {path})."),
            )),
        }
    }

    /// Called once, with the whole buffered body, when the request has ended (its last data frame,
    /// or its trailers). Outside the body phase nothing is forwarded: a request that was answered
    /// stays held, and one the gateway never decided on is refused.
    pub fn on_request_body(&mut self, io: &mut Io, body: &[u8]) -> BodyAction {
        let (key_index, endpoint, config) = match (self.phase, self.config.clone()) {
            (Phase::RequestBody { key_index, endpoint }, Some(config)) => (key_index, endpoint, config),
            (Phase::Done, _) => return BodyAction::Hold,
            _ => {
                self.phase = Phase::Done;
                let error =
                    ApiError::new(ErrorKind::Internal, "internal_error", "The gateway did not decide on this request.");
                let reply = LocalReply::error(&error, ApiFormat::OpenAi);
                self.finish_locally(&reply);
                return BodyAction::Respond(reply);
            }
        };
        self.phase = Phase::Done;
        match self.admit_and_route(&config, key_index, endpoint, io, body) {
            Ok(new_body) => {
                self.phase = Phase::Forwarded { endpoint };
                self.forwarded_at_ns = Some(io.clock.now_ns());
                self.record_properties();
                BodyAction::Forward { new_body }
            }
            Err(mut reply) => {
                reply.headers.extend(self.rate_headers.iter().cloned());
                if let Some(cache) = self.summary.cache.filter(|_| reply.status != 200) {
                    reply.headers.push((CACHE_HEADER, cache.name().to_owned()));
                }
                self.finish_locally(&reply);
                BodyAction::Respond(reply)
            }
        }
    }

    /// Reads the body's fields, resolves the model, answers from the cache or reserves tokens, and
    /// rewrites the request for the chosen upstream. `Ok`: forward, with the new body when it had to
    /// change. `Err`: answer locally with this reply (an error, a 429 or a cache hit).
    fn admit_and_route(
        &mut self,
        config: &Config,
        key_index: usize,
        endpoint: ModelEndpoint,
        io: &mut Io,
        body: &[u8],
    ) -> Result<Option<Vec<u8>>, LocalReply> {
        let format = endpoint.format();
        let error_reply = |error: ApiError| LocalReply::error(&error, format);
        let key = config.key(key_index).ok_or_else(|| {
            error_reply(ApiError::new(ErrorKind::Internal, "internal_error", "The key's configuration changed."))
        })?;
        let fields = request_body::read_fields(body).map_err(error_reply)?;
        if config.model(&fields.model).is_some() {
            // Only configured names become label values.
            self.summary.model = Some(fields.model.clone());
        }
        let resolved =
            routing::resolve(config, key, &fields.model, endpoint.api(), self.random).map_err(error_reply)?;
        self.summary.upstream = Some(resolved.upstream.name.clone());
        let cache_control = io.headers.get("cache-control");
        let forwarded_headers =
            upstream_headers::apply(&mut *io.headers, &resolved.upstream.forward_headers, &config.cluster_header);

        if let Some(settings) = &config.cache {
            let directives = Directives::from_cache_control(cache_control.as_deref());
            self.summary.cache = Some(CacheEvent::Bypass);
            let path = io.headers.get(":path").unwrap_or_default();
            let material = KeyMaterial {
                key_id: &key.id,
                upstream: &resolved.upstream.name,
                upstream_model: resolved.target.model.as_deref().unwrap_or(&fields.model),
                endpoint,
                query: path.split_once('?').map_or("", |(_, query)| query),
                headers: &forwarded_headers,
                body,
            };
            let cache_key = if directives.skip_store && directives.skip_lookup {
                None
            } else {
                Some(cache::cache_key(settings, &material))
            };
            if let Some(cache_key) = cache_key {
                if !directives.skip_lookup {
                    if let Some(hit) = cache::lookup(io.store, settings, &cache_key, io.clock.now_ns()) {
                        return Err(self.hit_reply(key, io, hit));
                    }
                    self.summary.cache = Some(CacheEvent::Miss);
                }
                if !directives.skip_store {
                    self.recording = Some(Recording { key: cache_key, format: None, body: Vec::new() });
                }
            }
        }

        let token_limits = key.limits.iter().filter(|l| l.kind.counts_tokens());
        if token_limits.clone().next().is_some() {
            let (reserved, prompt_estimate) = token_estimate(endpoint, &fields, body.len());
            match quota::take_all(io.store, token_limits, reserved, io.clock.now_ns()) {
                Ok(status) => {
                    self.rate_headers.extend(status.map(|s| limit_headers("tokens", s)).into_iter().flatten());
                    self.reservation = Some(Reservation { key_index, reserved, prompt_estimate });
                }
                Err(refusal) => return Err(self.refusal_reply(refusal, key, io, format)),
            }
        }

        let headers = &mut *io.headers;
        let upstream = resolved.upstream;
        headers.set(&config.cluster_header, &upstream.cluster);
        if let Some(authority) = &upstream.authority {
            headers.set(":authority", authority);
        }
        for (name, value) in &upstream.headers {
            headers.set(name, value);
        }

        let mut edits = Vec::new();
        if let Some(upstream_model) = resolved.target.model.as_deref().filter(|m| *m != fields.model) {
            edits.push(request_body::set_model(&fields, upstream_model));
        }
        let streams_chat = matches!(endpoint, ModelEndpoint::ChatCompletions | ModelEndpoint::Completions);
        if fields.stream && streams_chat {
            edits.extend(request_body::include_usage(body, &fields));
        }
        if edits.is_empty() {
            return Ok(None);
        }
        let new_body = request_body::apply(body, edits);
        headers.set("content-length", &new_body.len().to_string());
        Ok(Some(new_body))
    }

    /// A cache hit: the stored answer, counted against request limits but spending no tokens.
    fn hit_reply(&mut self, key: &Key, io: &Io, hit: cache::Hit) -> LocalReply {
        let content_type = match hit.format {
            BodyFormat::Json => "application/json",
            BodyFormat::EventStream => "text/event-stream",
        };
        let token_limits = key.limits.iter().filter(|l| l.kind.counts_tokens());
        let token_status = quota::peek_tightest(io.store, token_limits, io.clock.now_ns());
        self.rate_headers.extend(token_status.map(|s| limit_headers("tokens", s)).into_iter().flatten());
        self.summary.cache = Some(CacheEvent::Hit);
        LocalReply {
            status: 200,
            headers: vec![
                ("content-type", content_type.to_owned()),
                (CACHE_HEADER, "hit".to_owned()),
                ("age", hit.age_seconds.to_string()),
            ],
            body: hit.body,
        }
    }

    /// A 429 (or a fail-closed 503) with every rate-limit header the key has.
    fn refusal_reply(&mut self, refusal: Refusal, key: &Key, io: &Io, format: ApiFormat) -> LocalReply {
        let (error, retry_after_ns) = match refusal {
            Refusal::Exhausted { kind, status, retry_after_ns } => {
                self.summary.refused_by = Some(kind);
                let (error_kind, headers_kind) = if kind.counts_tokens() {
                    (ErrorKind::TokenLimit, "tokens")
                } else {
                    (ErrorKind::RequestLimit, "requests")
                };
                self.rate_headers.retain(|(name, _)| !name.ends_with(headers_kind));
                self.rate_headers.extend(limit_headers(headers_kind, status));
                let message = format!(
                    "Rate limit reached for {} of key `{}`: limit {}, remaining {}. Try again in {}.",
                    kind.name(),
                    key.id,
                    status.limit,
                    status.remaining,
                    format_duration(retry_after_ns)
                );
                (ApiError::new(error_kind, "rate_limit_exceeded", message), retry_after_ns)
            }
            Refusal::StoreUnavailable => (
                ApiError::new(
                    ErrorKind::Unavailable,
                    "quota_store_unavailable",
                    "The gateway could not update its rate-limit counters; retry shortly.",
                ),
                1_000_000_000,
            ),
        };
        if !self.rate_headers.iter().any(|(name, _)| name.ends_with("tokens")) {
            let token_limits = key.limits.iter().filter(|l| l.kind.counts_tokens());
            let status = quota::peek_tightest(io.store, token_limits, io.clock.now_ns());
            self.rate_headers.extend(status.map(|s| limit_headers("tokens", s)).into_iter().flatten());
        }
        let mut reply = LocalReply::error(&error, format);
        reply.headers.extend(retry_after_headers(retry_after_ns));
        reply
    }
}

/// Tokens to reserve for a request, and the prompt part of that estimate.
fn token_estimate(endpoint: ModelEndpoint, fields: &RequestFields, body_len: usize) -> (u64, u64) {
    let prompt = u64::try_from(body_len).unwrap_or(u64::MAX).div_ceil(PROMPT_BYTES_PER_TOKEN);
    let output = match endpoint {
        ModelEndpoint::Embeddings => 0,
        _ => fields.max_output_tokens.unwrap_or(DEFAULT_OUTPUT_ESTIMATE).saturating_mul(fields.choices),
    };
    (prompt.saturating_add(output), prompt)
}

/// Removes every client-sent `x-ai-gateway-*` header, and the cluster header whatever its name:
/// only the gateway decides where a request goes and which key made it.
fn strip_gateway_headers(headers: &mut dyn HeaderMap, cluster_header: Option<&str>) {
    for name in headers.names() {
        let lower = name.to_ascii_lowercase();
        if lower.starts_with(GATEWAY_HEADER_PREFIX) || Some(lower.as_str()) == cluster_header {
            headers.remove(&name);
        }
    }
}

mod report;
mod response;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod quota_tests;

#[cfg(test)]
mod cache_tests;

#[cfg(test)]
mod observability_tests;

#[cfg(test)]
mod fail_closed_tests;
