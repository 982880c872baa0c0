//! The upstream role: the same module loaded as an upstream HTTP filter on a fallback chain's
//! aggregate cluster, where Envoy runs it once per attempt. Each attempt learns its provider from
//! the chosen endpoint's metadata and rewrites the request for it (credentials, authority, path,
//! model, translation), then translates the answer back into the client's API and names the
//! provider for the listener's filter, which did auth, limits and cache and reads the usage.

use super::decision::{BodyAction, HeadersAction, LocalReply, ResponseBodyAction, ResponseHeadersAction};
use super::provider::{self, ClientRequest, ProviderTarget};
use super::Io;
use crate::api_error::{ApiError, ApiFormat, ErrorKind};
use crate::body_format::response_body;
use crate::config::{Config, Role};
use crate::endpoint::{classify, Endpoint, ModelEndpoint};
use crate::ports::HeaderMap;
use crate::request_body;
use crate::translate::plan::{serving, translated_headers, ClientView, ResponseTranslator, Translation};
use crate::upstream_headers;
use std::rc::Rc;

/// The response header naming the provider that answered, set by the upstream filter and removed
/// by the listener's filter before the client sees the response.
pub const UPSTREAM_HEADER: &str = "x-ai-gateway-upstream";

/// The filter-state property holding the request headers every attempt starts from (set by the
/// listener's filter; Envoy shares one header map between attempts, so each changes what the next
/// would see).
pub const ATTEMPT_HEADERS_PROPERTY: &str = "ai_gw_attempt_headers";

/// Where the attempt goes, as Envoy knows it when the attempt starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttemptTarget {
    /// `xds.cluster_name`: the aggregate cluster of the chain.
    pub cluster: Option<String>,
    /// The chosen endpoint's `metadata.filter_metadata.ai_gw.provider`: an upstream's name.
    pub provider: Option<String>,
    /// The [`ATTEMPT_HEADERS_PROPERTY`] the listener's filter set.
    pub request_headers: Option<String>,
}

#[derive(Debug)]
enum State {
    Headers,
    Body,
    Sent { upstream: String, translation: Option<(Translation, ClientView)>, translator: Option<ResponseTranslator> },
    Done,
}

/// One attempt of a request along a fallback chain.
pub struct AttemptFlow {
    config: Option<Rc<Config>>,
    state: State,
    logs: Vec<String>,
}

impl AttemptFlow {
    pub fn new(config: Option<Rc<Config>>) -> Self {
        AttemptFlow { config, state: State::Headers, logs: Vec::new() }
    }

    /// The request's headers: the body is needed (the model, and a body to rewrite).
    pub fn on_request_headers(&mut self, io: &mut Io) -> HeadersAction {
        match (&self.state, &self.config) {
            (State::Headers, Some(config)) if config.role == Role::Upstream => {
                self.state = State::Body;
                HeadersAction::ReadBody
            }
            _ => HeadersAction::Respond(self.refuse(io.headers, "The gateway's upstream filter is not configured.")),
        }
    }

    /// The whole body: rewrites the request for the attempt's provider, or refuses it.
    pub fn on_request_body(&mut self, io: &mut Io, body: &[u8], target: &AttemptTarget) -> BodyAction {
        match (&self.state, self.config.clone()) {
            (State::Body, Some(config)) => match self.rewrite(&config, io, body, target) {
                Ok(new_body) => BodyAction::Forward { new_body },
                Err(error) => {
                    // Envoy does not retry a reply made by an upstream filter: this ends the chain.
                    // The listener's filter stops retries before a provider that cannot take the
                    // request, so this is left for filters whose configurations disagree.
                    self.state = State::Done;
                    let provider = target.provider.clone().unwrap_or_else(|| "none".to_owned());
                    self.log(&format!("attempt upstream={provider} refused: {}", error.message));
                    let mut reply = LocalReply::error(&error, client_format(io.headers));
                    reply.headers.push((UPSTREAM_HEADER, provider));
                    BodyAction::Respond(reply)
                }
            },
            (State::Done, _) => BodyAction::Hold,
            _ => BodyAction::Respond(self.refuse(io.headers, "The gateway did not decide on this attempt.")),
        }
    }

    fn rewrite(
        &mut self,
        config: &Config,
        io: &mut Io,
        body: &[u8],
        target: &AttemptTarget,
    ) -> Result<Option<Vec<u8>>, ApiError> {
        restore_headers(&mut *io.headers, target.request_headers.as_deref())?;
        io.headers.remove(&config.cluster_header);
        let path = io.headers.get(":path").unwrap_or_default();
        let method = io.headers.get(":method").unwrap_or_default();
        let Endpoint::Model(endpoint) = classify(&method, &path, false).endpoint else {
            return Err(mismatch("a path that is not a model endpoint"));
        };
        let fields = request_body::read_fields(body)?;
        let (_, model) = config.model(&fields.model).ok_or_else(|| mismatch("a model it does not configure"))?;
        let cluster = target.cluster.as_deref().unwrap_or_default();
        let chain_target = model.target_on_cluster(cluster).ok_or_else(|| mismatch("an unknown fallback cluster"))?;
        let provider_name = target.provider.as_deref().unwrap_or_default();
        let (upstream_index, upstream) = config
            .upstream_by_name(provider_name)
            .ok_or_else(|| mismatch("an endpoint without `ai_gw.provider` metadata naming an upstream"))?;
        let upstream_model =
            chain_target.entry_for(upstream_index).ok_or_else(|| mismatch("a provider not in the chain"))?;
        let translation = serving(endpoint, upstream.api).ok_or_else(|| unservable(provider_name, endpoint))?;
        let provider_target = ProviderTarget { upstream, model: upstream_model, translation };
        let client = ClientRequest { endpoint, fields: &fields, body };
        let request = provider::provider_request(config, client, provider_target, io.clock.now_ns(), true)?;
        upstream_headers::apply(&mut *io.headers, &upstream.forward_headers, &config.cluster_header);
        provider::point_at_provider(&mut *io.headers, provider_target, &fields.model, &request);
        self.log(&format!("attempt upstream={provider_name} model={}", fields.model));
        self.state =
            State::Sent { upstream: upstream.name.clone(), translation: request.translation, translator: None };
        Ok(request.body)
    }

    /// The provider's response headers: its account headers removed, the provider named, and the
    /// answer translated if the provider speaks the other API.
    pub fn on_response_headers(&mut self, headers: &mut dyn HeaderMap) -> ResponseHeadersAction {
        let State::Sent { upstream, translation, translator } = &mut self.state else {
            return ResponseHeadersAction::default();
        };
        let mut remove = upstream_headers::provider_headers_to_remove(headers);
        let set = vec![(UPSTREAM_HEADER, upstream.clone())];
        let Some((translation, client)) = translation else {
            return ResponseHeadersAction { remove, set, read_body: false, hold_body: false };
        };
        let status = headers.get(":status").and_then(|status| status.parse().ok());
        let (format, encoding) = response_body(headers);
        let changes = translated_headers(status, format, encoding.is_some());
        let response_translator = translation.response(changes.status, format, client);
        let hold_body = response_translator.holds_body();
        *translator = Some(response_translator);
        remove.extend(changes.remove);
        let mut set = set;
        set.extend(changes.set);
        ResponseHeadersAction { remove, set, read_body: true, hold_body }
    }

    /// A chunk of the provider's answer (a held answer whole, once): the client's bytes.
    /// The attempt's trailers: the provider's account headers removed, as from its headers.
    pub fn on_response_trailers(&mut self, trailers: &mut dyn HeaderMap) {
        upstream_headers::strip_provider_trailers(trailers);
    }

    pub fn on_response_body(&mut self, chunk: &[u8], end_of_stream: bool) -> ResponseBodyAction {
        let State::Sent { translator: Some(translator), .. } = &mut self.state else {
            return ResponseBodyAction { read_body: false, replace: None };
        };
        let replace = match translator.holds_body() {
            true => translator.whole_body(chunk),
            false => translator.stream_chunk(chunk, end_of_stream),
        };
        ResponseBodyAction { read_body: !end_of_stream, replace: Some(replace) }
    }

    /// Log lines to write; drained by the host.
    pub fn take_logs(&mut self) -> Vec<String> {
        std::mem::take(&mut self.logs)
    }

    fn log(&mut self, event: &str) {
        self.logs.push(format!("ai-gateway upstream filter: {event}"));
    }

    fn refuse(&mut self, headers: &mut dyn HeaderMap, message: &str) -> LocalReply {
        self.state = State::Done;
        self.log(message);
        let error = ApiError::new(ErrorKind::Internal, "internal_error", message);
        let mut reply = LocalReply::error(&error, client_format(headers));
        reply.headers.push((UPSTREAM_HEADER, "none".to_owned()));
        reply
    }
}

/// Puts the request headers back as the listener's filter sent them (one value per name, as
/// the gateway forwards them).
fn restore_headers(headers: &mut dyn HeaderMap, saved: Option<&str>) -> Result<(), ApiError> {
    let saved: Vec<(String, String)> = saved
        .and_then(|text| serde_json::from_str(text).ok())
        .ok_or_else(|| mismatch("a request the listener's filter did not route to a fallback chain"))?;
    for name in headers.names() {
        if !saved.iter().any(|(saved_name, _)| *saved_name == name) {
            headers.remove(&name);
        }
    }
    for (name, value) in &saved {
        if headers.get(name).as_deref() != Some(value.as_str()) {
            headers.set(name, value);
        }
    }
    Ok(())
}

/// The format of the client's API, from the path the listener's filter left as the client sent it.
fn client_format(headers: &mut dyn HeaderMap) -> ApiFormat {
    let path = headers.get(":path").unwrap_or_default();
    classify("POST", &path, false).format
}

/// The two filters' configurations disagree: the attempt cannot be rewritten, so it is refused
/// (a 500, which the chain's retry policy moves on from like any provider failure).
fn mismatch(what: &str) -> ApiError {
    let message = format!(
        "The gateway's upstream filter got {what}; its configuration must list the same upstreams and models \
         as the listener's filter."
    );
    ApiError::new(ErrorKind::Internal, "gateway_misconfigured", message)
}

fn unservable(provider: &str, endpoint: ModelEndpoint) -> ApiError {
    let message = format!(
        "The fallback provider `{provider}` speaks the Anthropic Messages API, which has no equivalent of /v1{}.",
        endpoint.path_suffix()
    );
    ApiError::new(ErrorKind::BadRequest, "unsupported_api", message).with_param("model")
}
