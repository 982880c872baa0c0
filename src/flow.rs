//! The per-request state machine: takes the request's phases in order and returns what to do as data.

use crate::api_error::{ApiError, ApiFormat, ErrorKind};
use crate::auth::{self, CREDENTIAL_HEADERS};
use crate::config::{Config, GATEWAY_HEADER_PREFIX};
use crate::endpoint::{classify, Endpoint, ModelEndpoint};
use crate::ports::HeaderMap;
use crate::{model_list, request_body, routing};
use std::rc::Rc;

/// The header that tells the upstream which configured key made the request.
pub const KEY_ID_HEADER: &str = "x-ai-gateway-key-id";

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

/// What to do after the request headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadersAction {
    /// Hold the headers and buffer the body: routing needs it.
    ReadBody,
    Respond(LocalReply),
}

/// What to do once the whole request body is buffered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyAction {
    /// Send the request upstream (the headers are already rewritten), with this body if it changed.
    /// The route cache must be cleared, since the cluster header changed.
    Forward {
        new_body: Option<Vec<u8>>,
    },
    Respond(LocalReply),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    RequestHeaders,
    RequestBody { key_index: usize, endpoint: ModelEndpoint },
    Done,
}

/// One request's journey through the gateway.
pub struct RequestFlow {
    config: Option<Rc<Config>>,
    random: u64,
    phase: Phase,
}

impl RequestFlow {
    /// `config` is `None` until a valid configuration arrived; `random` picks weighted targets.
    pub fn new(config: Option<Rc<Config>>, random: u64) -> Self {
        RequestFlow { config, random, phase: Phase::RequestHeaders }
    }

    pub fn on_request_headers(&mut self, headers: &mut dyn HeaderMap, end_of_stream: bool) -> HeadersAction {
        let action = self.request_headers(headers, end_of_stream);
        if let HeadersAction::Respond(_) = action {
            self.phase = Phase::Done;
        }
        action
    }

    fn request_headers(&mut self, headers: &mut dyn HeaderMap, end_of_stream: bool) -> HeadersAction {
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

        let authenticated = auth::authenticate(&config, headers);
        for name in CREDENTIAL_HEADERS {
            headers.remove(name);
        }
        let (key_index, key) = match authenticated {
            Ok(found) => found,
            Err(error) => {
                return respond_error(ApiError::new(ErrorKind::Unauthorized, "invalid_api_key", error.message()))
            }
        };
        headers.set(KEY_ID_HEADER, &key.id);

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

    /// Called once, with the whole buffered body.
    pub fn on_request_body(&mut self, headers: &mut dyn HeaderMap, body: &[u8]) -> BodyAction {
        let Phase::RequestBody { key_index, endpoint } = self.phase else {
            return BodyAction::Forward { new_body: None };
        };
        self.phase = Phase::Done;
        let Some(config) = self.config.clone() else {
            return BodyAction::Forward { new_body: None };
        };
        let format = endpoint.format();
        match route_request(&config, key_index, headers, body, self.random) {
            Ok(new_body) => BodyAction::Forward { new_body },
            Err(error) => BodyAction::Respond(LocalReply::error(&error, format)),
        }
    }
}

/// Reads the body's model, resolves it and rewrites the request for the chosen upstream.
/// Returns the new body when the model name sent upstream differs from the client's.
fn route_request(
    config: &Config,
    key_index: usize,
    headers: &mut dyn HeaderMap,
    body: &[u8],
    random: u64,
) -> Result<Option<Vec<u8>>, ApiError> {
    let key = config
        .key(key_index)
        .ok_or_else(|| ApiError::new(ErrorKind::Internal, "internal_error", "The key's configuration changed."))?;
    let fields = request_body::read_fields(body)?;
    let resolved = routing::resolve(config, key, &fields.model, random)?;
    let upstream = resolved.upstream;
    headers.set(&config.cluster_header, &upstream.cluster);
    if let Some(authority) = &upstream.authority {
        headers.set(":authority", authority);
    }
    for (name, value) in &upstream.headers {
        headers.set(name, value);
    }
    let new_body = match &resolved.target.model {
        Some(upstream_model) if *upstream_model != fields.model => {
            let new_body = request_body::with_model(body, fields.model_span, upstream_model);
            headers.set("content-length", &new_body.len().to_string());
            Some(new_body)
        }
        _ => None,
    };
    Ok(new_body)
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

#[cfg(test)]
mod tests;
