//! The request-body phase: reads the few fields routing needs, resolves the model to an upstream,
//! keeps only the client headers that upstream may see, asks the cache, reserves tokens, and
//! rewrites the request for the upstream. The result is a decision: forward, or answer locally.

use super::decision::LocalReply;
use super::forwarded::{Forwarded, Sent};
use super::refusal::refusal_reply;
use super::report::Report;
use super::request_headers::AwaitingBody;
use super::{Io, CACHE_HEADER};
use crate::api_error::{ApiError, ErrorKind};
use crate::cache::recorder::{self, CacheEvent, Plan, Recorder};
use crate::cache::{Directives, Hit, KeyMaterial};
use crate::config::{Api, Config, Key, DEFAULT_MAX_TOKENS};
use crate::endpoint::ModelEndpoint;
use crate::metrics::Outcome;
use crate::quota::headers::{LimitFamily, RateLimitHeaders};
use crate::quota::reservation::{self, Declared, Reservation};
use crate::request_body::{self, OutputCaps, RequestFields, StreamOptions};
use crate::routing::{self, Resolved};
use crate::translate::plan::{ClientView, Translation};
use crate::upstream_headers;
use crate::upstream_path::upstream_path;

/// The `anthropic-version` sent with a translated request (an upstream's `headers` may override it).
const DEFAULT_ANTHROPIC_VERSION: &str = "2023-06-01";

/// What the body phase decided.
pub(super) enum Decision {
    Forward { forwarded: Box<Forwarded>, new_body: Option<Vec<u8>> },
    Answer(LocalReply),
}

/// A request whose model is resolved: what the later steps of the body phase need.
struct Routed<'c, 'b> {
    key_index: usize,
    key: &'c Key,
    endpoint: ModelEndpoint,
    fields: RequestFields,
    resolved: Resolved<'c>,
    body: &'b [u8],
}

/// Decides on a model request once its whole body is read.
pub(super) fn decide(
    config: &Config,
    awaiting: AwaitingBody,
    io: &mut Io,
    body: &[u8],
    random: u64,
    report: &mut Report,
) -> Decision {
    let AwaitingBody { key_index, endpoint, mut rate_headers } = awaiting;
    let routed = match route(config, key_index, endpoint, body, random, report) {
        Ok(routed) => routed,
        Err(error) => {
            if let Some(key) = config.key(key_index) {
                rate_headers.fill_missing(io.store, key, io.clock.now_ns());
            }
            return Decision::Answer(with_rate_headers(LocalReply::error(&error, endpoint.format()), &rate_headers));
        }
    };
    let provider_request = match provider_request(config, &routed, io) {
        Ok(request) => request,
        Err(error) => {
            rate_headers.fill_missing(io.store, routed.key, io.clock.now_ns());
            return Decision::Answer(with_rate_headers(LocalReply::error(&error, endpoint.format()), &rate_headers));
        }
    };
    let cache_control = io.headers.get("cache-control");
    let allowed = &routed.resolved.upstream.forward_headers;
    let forwarded_headers = upstream_headers::apply(&mut *io.headers, allowed, &config.cluster_header);
    let recorder = match ask_cache(config, &routed, io, cache_control.as_deref(), &forwarded_headers, report) {
        Ok(recorder) => recorder,
        Err(hit) => {
            rate_headers.fill_missing(io.store, routed.key, io.clock.now_ns());
            return Decision::Answer(with_rate_headers(hit_reply(hit), &rate_headers));
        }
    };
    let reservation = match reserve(&routed, provider_request.declared, io, &mut rate_headers, report) {
        Ok(reservation) => reservation,
        Err(refused) => return Decision::Answer(with_cache_event(refused, report)),
    };
    rewrite(io, &config.cluster_header, &routed, &provider_request);
    let forwarded = Forwarded::new(
        Sent {
            endpoint: provider_request.endpoint,
            translation: provider_request.translation,
            at_ns: io.clock.now_ns(),
        },
        rate_headers,
        report.summary.cache,
        reservation,
        recorder,
    );
    Decision::Forward { forwarded: Box::new(forwarded), new_body: provider_request.body }
}

/// What the provider is sent: the endpoint it serves the request at, the body when it differs from
/// the client's (a renamed model, streamed usage asked for, or a translation), what that body
/// declares for the token reservation, and how to translate the answer back.
struct ProviderRequest {
    endpoint: ModelEndpoint,
    body: Option<Vec<u8>>,
    declared: Declared,
    translation: Option<(Translation, ClientView)>,
}

fn provider_request(config: &Config, routed: &Routed, io: &Io) -> Result<ProviderRequest, ApiError> {
    let fields = &routed.fields;
    let upstream_model = routed.resolved.target.model.as_deref().unwrap_or(&fields.model);
    let Some(translation) = routed.resolved.translation else {
        let declared = reservation::declared(routed.endpoint, fields.output_caps, fields.choices, routed.body.len());
        let body = model_and_usage_edits(routed);
        return Ok(ProviderRequest { endpoint: routed.endpoint, body, declared, translation: None });
    };
    let default_max_tokens = config.model(&fields.model).map_or(DEFAULT_MAX_TOKENS, |(_, m)| m.default_max_tokens);
    let body = translation.request(routed.body, upstream_model, default_max_tokens)?;
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
    let declared = reservation::declared(endpoint, translated_caps, 1, routed.body.len());
    let client = ClientView {
        model: fields.model.clone(),
        created: io.clock.now_ns() / 1_000_000_000,
        include_usage: fields.stream_options == StreamOptions::IncludesUsage,
    };
    Ok(ProviderRequest { endpoint, body: Some(body), declared, translation: Some((translation, client)) })
}

/// The client's body with the model renamed and, for OpenAI streams, usage asked for; `None` when
/// nothing changes.
fn model_and_usage_edits(routed: &Routed) -> Option<Vec<u8>> {
    let fields = &routed.fields;
    let mut edits = Vec::new();
    if let Some(upstream_model) = routed.resolved.target.model.as_deref().filter(|m| *m != fields.model) {
        edits.push(request_body::set_model(fields, upstream_model));
    }
    let streams_chat = matches!(routed.endpoint, ModelEndpoint::ChatCompletions | ModelEndpoint::Completions);
    if fields.stream && streams_chat {
        edits.extend(request_body::include_usage(routed.body, fields));
    }
    (!edits.is_empty()).then(|| request_body::apply(routed.body, edits))
}

/// Reads the body's fields and resolves the model for this key and endpoint.
fn route<'c, 'b>(
    config: &'c Config,
    key_index: usize,
    endpoint: ModelEndpoint,
    body: &'b [u8],
    random: u64,
    report: &mut Report,
) -> Result<Routed<'c, 'b>, ApiError> {
    let key = config
        .key(key_index)
        .ok_or_else(|| ApiError::new(ErrorKind::Internal, "internal_error", "The key's configuration changed."))?;
    let fields = request_body::read_fields(body)?;
    if config.model(&fields.model).is_some() {
        // Only configured names become label values.
        report.summary.model = Some(fields.model.clone());
    }
    let resolved = routing::resolve(config, key, &fields.model, endpoint, random)?;
    report.summary.upstream = Some(resolved.upstream.name.clone());
    Ok(Routed { key_index, key, endpoint, fields, resolved, body })
}

/// Asks the cache: `Err` with the stored answer on a hit, else the recorder for the answer (if it
/// is to be stored). Without a cache configured, nothing happens.
fn ask_cache(
    config: &Config,
    routed: &Routed,
    io: &mut Io,
    cache_control: Option<&str>,
    forwarded_headers: &[(String, String)],
    report: &mut Report,
) -> Result<Option<Recorder>, Hit> {
    let Some(settings) = &config.cache else { return Ok(None) };
    let path = io.headers.get(":path").unwrap_or_default();
    let client_authority = io.headers.get(":authority").unwrap_or_default();
    let material = KeyMaterial {
        key_id: &routed.key.id,
        upstream: &routed.resolved.upstream.name,
        upstream_model: routed.resolved.target.model.as_deref().unwrap_or(&routed.fields.model),
        endpoint: routed.endpoint,
        authority: routed.resolved.upstream.authority.as_deref().unwrap_or(&client_authority),
        query: path.split_once('?').map_or("", |(_, query)| query),
        headers: forwarded_headers,
        body: routed.body,
    };
    let directives = Directives::from_cache_control(cache_control);
    match recorder::plan(io.store, settings, directives, &material, io.clock.now_ns()) {
        Plan::Answer(hit) => {
            report.summary.cache = Some(CacheEvent::Hit);
            Err(hit)
        }
        Plan::Forward { event, recorder } => {
            report.summary.cache = Some(event);
            Ok(recorder)
        }
    }
}

/// A cache hit: the stored answer, counted against request limits but spending no tokens.
fn hit_reply(hit: Hit) -> LocalReply {
    LocalReply {
        status: 200,
        headers: vec![
            ("content-type", hit.format.content_type().to_owned()),
            (CACHE_HEADER, CacheEvent::Hit.name().to_owned()),
            ("age", hit.age_seconds.to_string()),
        ],
        body: hit.body,
        outcome: Outcome::CacheHit,
    }
}

/// Reserves the request's estimated tokens from its key's token limits, or refuses it (the refusal
/// carries every rate-limit header).
fn reserve(
    routed: &Routed,
    declared: Declared,
    io: &Io,
    rate_headers: &mut RateLimitHeaders,
    report: &mut Report,
) -> Result<Option<Reservation>, LocalReply> {
    let now_ns = io.clock.now_ns();
    match reservation::reserve(io.store, routed.key_index, routed.key, reservation::estimate(declared), now_ns) {
        Ok(Some((reservation, status))) => {
            rate_headers.set(LimitFamily::Tokens, status);
            Ok(Some(reservation))
        }
        Ok(None) => Ok(None),
        Err(refusal) => {
            let format = routed.endpoint.format();
            Err(refusal_reply(refusal, routed.key, io.store, now_ns, format, *rate_headers, report))
        }
    }
}

/// Points the request at the chosen upstream: cluster, authority, path, provider headers, and the
/// body's length when the body changed.
fn rewrite(io: &mut Io, cluster_header: &str, routed: &Routed, provider_request: &ProviderRequest) {
    let headers = &mut *io.headers;
    let upstream = routed.resolved.upstream;
    headers.set(cluster_header, &upstream.cluster);
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
    let upstream_model = routed.resolved.target.model.as_deref().unwrap_or(&routed.fields.model);
    let path = upstream_path(upstream, provider_request.endpoint, upstream_model);
    if headers.get(":path").as_deref() != Some(path.as_str()) {
        headers.set(":path", &path);
    }
    if let Some(body) = &provider_request.body {
        headers.set("content-length", &body.len().to_string());
    }
}

fn with_rate_headers(mut reply: LocalReply, rate_headers: &RateLimitHeaders) -> LocalReply {
    reply.headers.extend(rate_headers.to_headers());
    reply
}

/// A refusal after the cache was asked says what the cache did.
fn with_cache_event(mut reply: LocalReply, report: &Report) -> LocalReply {
    if let Some(cache) = report.summary.cache {
        reply.headers.push((CACHE_HEADER, cache.name().to_owned()));
    }
    reply
}
