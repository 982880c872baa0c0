//! The request-headers phase: strips gateway-owned headers, authenticates, classifies the endpoint,
//! answers what needs no body (model lists, errors) and takes the request from the key's request
//! limits. A model request is then held while its body is read.

use super::decision::LocalReply;
use super::refusal::refusal_reply;
use super::report::Report;
use super::{Io, KEY_ID_HEADER};
use crate::api_error::{ApiError, ApiFormat, ErrorKind};
use crate::auth::{self, CREDENTIAL_HEADERS};
use crate::config::{Config, Key, QuotaMode, GATEWAY_HEADER_PREFIX};
use crate::endpoint::{classify, Classified, Endpoint, ModelEndpoint};
use crate::metrics::Outcome;
use crate::model_list;
use crate::ports::{has_prefix, HeaderMap};
use crate::quota;
use crate::quota::global::LIMITS_HEADER;
use crate::quota::headers::{LimitFamily, RateLimitHeaders};

/// A model request admitted at its headers, waiting for its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct AwaitingBody {
    pub key_index: usize,
    pub endpoint: ModelEndpoint,
    /// The request limits' status, for the response's headers.
    pub rate_headers: RateLimitHeaders,
}

/// Decides on a request's headers: `Ok` to read its body, or the reply to answer with.
pub(super) fn decide(
    config: Option<&Config>,
    io: &mut Io,
    end_of_stream: bool,
    report: &mut Report,
) -> Result<AwaitingBody, LocalReply> {
    let Some(config) = config else {
        strip_gateway_headers(io.headers, None);
        let error = ApiError::new(ErrorKind::Internal, "not_configured", "The gateway has no valid configuration.");
        return Err(LocalReply::error(&error, ApiFormat::OpenAi));
    };
    strip_gateway_headers(io.headers, Some(&config.cluster_header));
    let method = io.headers.get(":method").unwrap_or_default();
    let path = io.headers.get(":path").unwrap_or_default();
    let classified = classify(&method, &path, io.headers.get("anthropic-version").is_some());
    let format = classified.format;
    if auth::query_carries_credential(&path) {
        let message = "API keys are not accepted in the query string; send the key in a header \
                       (`Authorization: Bearer KEY`, `x-api-key: KEY` or `api-key: KEY`).";
        return Err(LocalReply::error(&ApiError::new(ErrorKind::Unauthorized, "invalid_api_key", message), format));
    }
    let (key_index, key) = authenticate(config, io.headers, report).map_err(|e| LocalReply::error(&e, format))?;
    // Every answer to a known key carries its rate-limit headers (a refusal has them already).
    let with_limits = |mut reply: LocalReply| {
        if !reply.headers.iter().any(|(name, _)| name.starts_with("x-ratelimit-")) {
            let mut rate_headers = RateLimitHeaders::default();
            rate_headers.fill_missing(io.store, key, io.clock.now_ns());
            reply.headers.extend(rate_headers.to_headers());
        }
        reply
    };
    dispatch(config, io, end_of_stream, (key_index, key), &classified, report).map_err(with_limits)
}

/// What the endpoint asks for: a model request is admitted to read its body, the rest is answered.
fn dispatch(
    config: &Config,
    io: &mut Io,
    end_of_stream: bool,
    (key_index, key): (usize, &Key),
    classified: &Classified,
    report: &mut Report,
) -> Result<AwaitingBody, LocalReply> {
    let method = io.headers.get(":method").unwrap_or_default();
    let format = classified.format;
    match &classified.endpoint {
        Endpoint::Model(endpoint) => admit_model_request(io, end_of_stream, key_index, key, *endpoint, report),
        Endpoint::ListModels => Err(LocalReply::json(200, model_list::list(config, key, format), Outcome::Ok)),
        Endpoint::RetrieveModel(name) => match model_list::retrieve(config, key, name, format) {
            Ok(body) => Err(LocalReply::json(200, body, Outcome::Ok)),
            Err(error) => Err(LocalReply::error(&error, format)),
        },
        // The messages never echo the path: a client may have put a key in it or in its query.
        Endpoint::MethodNotAllowed { allow } => {
            let message = format!("Method {} is not allowed on this endpoint; use {allow}.", printable(&method));
            let mut reply =
                LocalReply::error(&ApiError::new(ErrorKind::MethodNotAllowed, "method_not_allowed", message), format);
            reply.headers.push(("allow", (*allow).to_owned()));
            Err(reply)
        }
        Endpoint::NotFound => {
            let message = format!(
                "Unrecognized request URL ({} request). This gateway serves POST /v1/chat/completions, \
                 /v1/completions, /v1/embeddings, /v1/responses, /v1/messages and GET /v1/models.",
                printable(&method)
            );
            Err(LocalReply::error(&ApiError::new(ErrorKind::NotFound, "unknown_url", message), format))
        }
    }
}

/// A method name as it may appear in a message: at most 16 token characters.
fn printable(method: &str) -> String {
    method.chars().filter(char::is_ascii_alphanumeric).take(16).collect()
}

/// Finds the key, removes every credential header, and tells the upstream which key it was.
fn authenticate<'c>(
    config: &'c Config,
    headers: &mut dyn HeaderMap,
    report: &mut Report,
) -> Result<(usize, &'c Key), ApiError> {
    let authenticated = auth::authenticate(config, headers);
    for name in CREDENTIAL_HEADERS {
        headers.remove(name);
    }
    match authenticated {
        Ok((key_index, key)) => {
            headers.set(KEY_ID_HEADER, &key.id);
            if config.quota.mode == QuotaMode::Global && !key.limits.is_empty() {
                // Envoy's rate limit filter sends a descriptor only for the limits listed here.
                let names: Vec<&str> = key.limits.iter().map(|limit| limit.kind.name()).collect();
                headers.set(LIMITS_HEADER, &names.join(","));
            }
            report.summary.key_id = Some(key.id.clone());
            Ok((key_index, key))
        }
        Err(error) => {
            if let auth::AuthError::Unknown { digest_prefix } = error {
                let prefix: String = digest_prefix.iter().map(|b| format!("{b:02x}")).collect();
                report.log(&format!("unknown key sha256={prefix}..."));
            }
            Err(ApiError::new(ErrorKind::Unauthorized, "invalid_api_key", error.message()))
        }
    }
}

/// A model request: it needs a plain JSON body, and one unit of each of its key's request limits.
fn admit_model_request(
    io: &mut Io,
    end_of_stream: bool,
    key_index: usize,
    key: &Key,
    endpoint: ModelEndpoint,
    report: &mut Report,
) -> Result<AwaitingBody, LocalReply> {
    let format = endpoint.format();
    if end_of_stream {
        let error =
            ApiError::new(ErrorKind::BadRequest, "invalid_json", "The request has no body; send a JSON object.");
        return Err(LocalReply::error(&error, format));
    }
    if let Some(encoding) = io.headers.get("content-encoding").filter(|e| !e.eq_ignore_ascii_case("identity")) {
        let message = format!("Request bodies with content-encoding `{encoding}` are not supported; send plain JSON.");
        let error = ApiError::new(ErrorKind::UnsupportedMediaType, "unsupported_content_encoding", message);
        return Err(LocalReply::error(&error, format));
    }
    let mut rate_headers = RateLimitHeaders::default();
    if key.request_limits().next().is_none() {
        // Nothing to count here (no request limits, or the global rate limit service counts them).
        return Ok(AwaitingBody { key_index, endpoint, rate_headers });
    }
    let now_ns = io.clock.now_ns();
    match quota::take_all(io.store, key.request_limits(), 1, now_ns) {
        Ok(status) => rate_headers.set(LimitFamily::Requests, status),
        Err(refusal) => return Err(refusal_reply(refusal, key, io.store, now_ns, format, rate_headers, report)),
    }
    Ok(AwaitingBody { key_index, endpoint, rate_headers })
}

/// Removes every client-sent `x-ai-gateway-*` header, and the cluster header whatever its name:
/// only the gateway decides where a request goes and which key made it.
fn strip_gateway_headers(headers: &mut dyn HeaderMap, cluster_header: Option<&str>) {
    let gateway_header = |name: &str| {
        has_prefix(name, GATEWAY_HEADER_PREFIX)
            || cluster_header.is_some_and(|cluster| name.eq_ignore_ascii_case(cluster))
    };
    for name in headers.names_where(&mut |name| gateway_header(name)) {
        headers.remove(&name);
    }
}
