//! What one provider is sent: the body (model renamed, streamed usage asked for, or translated to
//! its API), what that body declares for the token reservation, and the headers and path that point
//! the request at it. Used by the listener's filter for a single provider, and by the upstream
//! filter for each attempt of a fallback chain.

use crate::api_error::ApiError;
use crate::config::{Api, Config, Upstream, DEFAULT_MAX_TOKENS};
use crate::endpoint::ModelEndpoint;
use crate::ports::HeaderMap;
use crate::quota::reservation::{self, Declared};
use crate::request_body::{self, OutputCaps, RequestFields, StreamOptions};
use crate::translate::plan::{ClientView, Translation};
use crate::upstream_path::upstream_path;

/// The `anthropic-version` sent with a translated request (an upstream's `headers` may override it).
const DEFAULT_ANTHROPIC_VERSION: &str = "2023-06-01";

/// The provider a request goes to, and how.
#[derive(Debug, Clone, Copy)]
pub(super) struct ProviderTarget<'c> {
    pub upstream: &'c Upstream,
    /// The model name the provider is sent; `None` keeps the client's.
    pub model: Option<&'c str>,
    pub translation: Option<Translation>,
}

/// The client's request as the gateway read it.
#[derive(Debug, Clone, Copy)]
pub(super) struct ClientRequest<'a> {
    pub endpoint: ModelEndpoint,
    pub fields: &'a RequestFields,
    pub body: &'a [u8],
}

/// What the provider is sent: the endpoint it serves the request at, the body when it differs from
/// the client's, what that body declares for the token reservation, and how to translate the answer.
pub(super) struct ProviderRequest {
    pub endpoint: ModelEndpoint,
    pub body: Option<Vec<u8>>,
    pub declared: Declared,
    pub translation: Option<(Translation, ClientView)>,
    /// How many providers the request may be tried on: 1, or along a fallback chain, its providers
    /// from the first that can take this request.
    pub attempts: usize,
}

/// Builds the provider's request. `always_usage`: a translated stream reports usage to the client
/// even if it did not ask (the listener's filter reads it there when a fallback chain translated).
pub(super) fn provider_request(
    config: &Config,
    client: ClientRequest,
    target: ProviderTarget,
    now_ns: u64,
    always_usage: bool,
) -> Result<ProviderRequest, ApiError> {
    let fields = client.fields;
    let upstream_model = target.model.unwrap_or(&fields.model);
    let Some(translation) = target.translation else {
        let declared = reservation::declared(client.endpoint, fields.output_caps, fields.choices, client.body.len());
        let body = model_and_usage_edits(client, target.model);
        return Ok(ProviderRequest { endpoint: client.endpoint, body, declared, translation: None, attempts: 1 });
    };
    let default_max_tokens = config.model(&fields.model).map_or(DEFAULT_MAX_TOKENS, |(_, m)| m.default_max_tokens);
    let body = translation.request(client.body, upstream_model, default_max_tokens)?;
    let endpoint = translation.provider_endpoint();
    // The cap the translated body carries, known without parsing it again: Anthropic's `max_tokens`
    // is the client's cap or the model's default; OpenAI's is the client's `max_tokens`.
    let caps = fields.output_caps;
    let cap = match translation {
        Translation::OpenAiChatToAnthropic => {
            Some(caps.max_completion_tokens.or(caps.max_tokens).unwrap_or(default_max_tokens))
        }
        Translation::AnthropicToOpenAiChat => caps.max_tokens,
    };
    let translated_caps = OutputCaps { max_tokens: cap, ..OutputCaps::default() };
    let declared = reservation::declared(endpoint, translated_caps, 1, client.body.len());
    let view = ClientView {
        model: fields.model.clone(),
        created: now_ns / 1_000_000_000,
        include_usage: always_usage || fields.stream_options == StreamOptions::IncludesUsage,
    };
    Ok(ProviderRequest { endpoint, body: Some(body), declared, translation: Some((translation, view)), attempts: 1 })
}

/// The client's body with the model renamed and, for OpenAI streams, usage asked for; `None` when
/// nothing changes.
fn model_and_usage_edits(client: ClientRequest, upstream_model: Option<&str>) -> Option<Vec<u8>> {
    let fields = client.fields;
    let mut edits = Vec::new();
    if let Some(upstream_model) = upstream_model.filter(|m| *m != fields.model) {
        edits.push(request_body::set_model(fields, upstream_model));
    }
    let streams_chat = matches!(client.endpoint, ModelEndpoint::ChatCompletions | ModelEndpoint::Completions);
    if fields.stream && streams_chat {
        edits.extend(request_body::include_usage(client.body, fields));
    }
    (!edits.is_empty()).then(|| request_body::apply(client.body, edits))
}

/// Points the request at the provider: authority, API headers, the upstream's own headers
/// (credentials), path, and the body's length when the body changed.
pub(super) fn point_at_provider(
    headers: &mut dyn HeaderMap,
    target: ProviderTarget,
    client_model: &str,
    provider_request: &ProviderRequest,
) {
    let upstream = target.upstream;
    if let Some(authority) = &upstream.authority {
        headers.set(":authority", authority);
    }
    match provider_request.translation.as_ref().map(|(translation, _)| translation.provider_api()) {
        // Anthropic's API requires its version header; the upstream's own headers may set another.
        Some(Api::Anthropic) => headers.set("anthropic-version", DEFAULT_ANTHROPIC_VERSION),
        Some(Api::OpenAi) => {
            headers.remove("anthropic-version");
            headers.remove("anthropic-beta");
        }
        None => {}
    }
    for (name, value) in &upstream.headers {
        headers.set(name, value);
    }
    let path = upstream_path(upstream, provider_request.endpoint, target.model.unwrap_or(client_model));
    if headers.get(":path").as_deref() != Some(path.as_str()) {
        headers.set(":path", &path);
    }
    if let Some(body) = &provider_request.body {
        headers.set("content-length", &body.len().to_string());
    }
}
