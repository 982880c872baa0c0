//! The request-body phase: reads the few fields routing needs, resolves the model to an upstream,
//! keeps only the client headers that upstream may see, asks the cache, reserves tokens, and
//! rewrites the request for the upstream. The result is a decision: forward, or answer locally.

use super::attempt::ATTEMPT_HEADERS_PROPERTY;
use super::decision::LocalReply;
use super::forwarded::{Forwarded, Sent};
use super::provider::{self, ClientRequest, ProviderRequest, ProviderTarget};
use super::refusal::refusal_reply;
use super::report::Report;
use super::request_headers::AwaitingBody;
use super::{Io, CACHE_HEADER};
use crate::api_error::{ApiError, ErrorKind};
use crate::cache::recorder::{self, CacheEvent, Plan, Recorder};
use crate::cache::{Directives, Hit, KeyMaterial};
use crate::config::{Config, Key, QuotaMode, Target, DEFAULT_MAX_TOKENS};
use crate::endpoint::ModelEndpoint;
use crate::metrics::Outcome;
use crate::ports::HeaderMap;
use crate::quota::headers::{LimitFamily, RateLimitHeaders};
use crate::quota::reservation::{self, Declared, Reservation};
use crate::request_body::{self, RequestFields};
use crate::routing::{self, Resolved};
use crate::translate::plan::serving;
use crate::upstream_headers;

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
    // Through a fallback chain, what any of its providers may see (each attempt keeps its own's).
    let resolved = &routed.resolved;
    let allowed = resolved.target.chain.as_ref().map_or(&resolved.upstream.forward_headers, |c| &c.forward_headers);
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
    if routed.resolved.target.chain.is_some() {
        // Envoy hands every attempt the same header map, changed by the attempts before it: each
        // attempt starts again from the headers as they are now.
        report.set_property(ATTEMPT_HEADERS_PROPERTY, attempt_headers(io.headers));
    }
    rewrite(io, config, &routed, &provider_request);
    let forwarded = Forwarded::new(
        Sent {
            endpoint: provider_request.endpoint,
            translation: provider_request.translation,
            at_ns: io.clock.now_ns(),
            chain: routed.resolved.target.chain.is_some().then(|| chain_names(config, routed.resolved.target)),
            service_key: (config.quota.mode == QuotaMode::Global).then_some(routed.key_index),
        },
        rate_headers,
        report.summary.cache,
        reservation,
        recorder,
    );
    Decision::Forward { forwarded: Box::new(forwarded), new_body: provider_request.body }
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
    // Through a fallback chain, the provider is known when one answers.
    if resolved.target.chain.is_none() {
        report.summary.upstream = Some(resolved.upstream.name.clone());
    }
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

/// Points the request at the chosen upstream (cluster, and the provider's headers, path and body
/// length), or, for a target with fallbacks, at the chain's aggregate cluster with the retry policy
/// that moves it along: each attempt is then pointed at its provider by the upstream filter.
fn rewrite(io: &mut Io, config: &Config, routed: &Routed, provider_request: &ProviderRequest) {
    let headers = &mut *io.headers;
    if let Some(chain) = &routed.resolved.target.chain {
        headers.set(&config.cluster_header, &chain.cluster);
        let retry = &config.retry;
        headers.set("x-envoy-retry-on", &retry.retry_on);
        if !retry.status_codes.is_empty() {
            headers.set("x-envoy-retriable-status-codes", &retry.status_codes);
        }
        headers.set("x-envoy-max-retries", &provider_request.attempts.saturating_sub(1).to_string());
        headers.set("x-envoy-upstream-rq-per-try-timeout-ms", &retry.per_attempt_timeout_ms.to_string());
        return;
    }
    headers.set(&config.cluster_header, &routed.resolved.upstream.cluster);
    provider::point_at_provider(headers, provider_target(routed), &routed.fields.model, provider_request);
}

fn provider_target<'c>(routed: &Routed<'c, '_>) -> ProviderTarget<'c> {
    let resolved = &routed.resolved;
    ProviderTarget {
        upstream: resolved.upstream,
        model: resolved.target.model.as_deref(),
        translation: resolved.translation,
    }
}

/// What the provider is sent. Through a fallback chain, the body goes as the client sent it: each
/// attempt's filter rewrites it for its provider, and the answer comes back in the client's API.
fn provider_request(config: &Config, routed: &Routed, io: &Io) -> Result<ProviderRequest, ApiError> {
    let client = ClientRequest { endpoint: routed.endpoint, fields: &routed.fields, body: routed.body };
    if routed.resolved.target.chain.is_some() {
        let fields = &routed.fields;
        let declared = reservation::declared(routed.endpoint, fields.output_caps, fields.choices, routed.body.len());
        let attempts = usable_chain_length(config, routed)?;
        return Ok(ProviderRequest { endpoint: routed.endpoint, body: None, declared, translation: None, attempts });
    }
    provider::provider_request(config, client, provider_target(routed), io.clock.now_ns(), false)
}

/// How many providers of the target's chain, from its first, can take this request: the endpoint
/// in their API, and the request translated if they speak the other one. Envoy does not retry an
/// upstream filter's own reply, so retries stop before a provider whose attempt would refuse the
/// request: when the providers before it fail, the client gets their error. `Err`: not even the
/// first provider can take it (the error a direct request to it would get).
fn usable_chain_length(config: &Config, routed: &Routed) -> Result<usize, ApiError> {
    let (target, fields) = (routed.resolved.target, &routed.fields);
    let default_max_tokens = config.model(&fields.model).map_or(DEFAULT_MAX_TOKENS, |(_, m)| m.default_max_tokens);
    let mut usable = 0;
    for upstream_index in target.chain_upstreams() {
        let Some(upstream) = config.upstream(upstream_index) else { break };
        let model = target.entry_for(upstream_index).flatten().unwrap_or(&fields.model);
        let taken = match serving(routed.endpoint, upstream.api) {
            None => Err(routing::unservable(&fields.model, routed.endpoint)),
            Some(None) => Ok(()),
            Some(Some(translation)) => translation.request(routed.body, model, default_max_tokens).map(drop),
        };
        match taken {
            Ok(()) => usable += 1,
            Err(error) if usable == 0 => return Err(error),
            Err(_) => break,
        }
    }
    Ok(usable)
}

/// The request headers as the chain's attempts must start from them, as a JSON array of pairs.
fn attempt_headers(headers: &mut dyn HeaderMap) -> String {
    let mut names = headers.names();
    names.sort();
    names.dedup();
    let pairs: Vec<(String, String)> =
        names.into_iter().flat_map(|name| headers.get_all(&name).into_iter().map(move |v| (name.clone(), v))).collect();
    serde_json::to_string(&pairs).unwrap_or_default()
}

/// The names of the upstreams of a target's chain, its own first.
fn chain_names(config: &Config, target: &Target) -> Vec<String> {
    target.chain_upstreams().filter_map(|upstream| config.upstream(upstream)).map(|u| u.name.clone()).collect()
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
