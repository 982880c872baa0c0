//! Fallback chains (`fallbacks`, `fallback_cluster`) and the retry policy Envoy follows along them
//! (`retry`): validated here, carried out by Envoy's retries on an aggregate cluster.

use super::raw::{RawFallback, RawRetry};
use super::{checked_header_value, ConfigError, Problem, Upstream};
use std::collections::HashMap;

/// The providers tried after a target's own, in order, and the aggregate cluster that lists the
/// target's cluster and theirs in the same order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub cluster: String,
    pub fallbacks: Vec<Fallback>,
    /// Every provider's `forward_headers`, sorted and once each: what the listener's filter lets
    /// through (each attempt keeps only its own provider's).
    pub forward_headers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fallback {
    pub upstream: usize,
    /// The model name sent to this provider; `None` keeps the client's.
    pub model: Option<String>,
}

/// `retry`: what makes Envoy try the next provider of a chain, as the router's request headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySettings {
    /// `x-envoy-retry-on`: the conditions, comma-separated.
    pub retry_on: String,
    /// `x-envoy-retriable-status-codes`; empty when none.
    pub status_codes: String,
    /// `x-envoy-upstream-rq-per-try-timeout-ms`: how long an attempt may take to answer headers.
    pub per_attempt_timeout_ms: u64,
}

/// Conditions retried by default: the provider could not be reached, reset the stream or failed.
pub const DEFAULT_RETRY_ON: [&str; 4] = ["connect-failure", "refused-stream", "reset", "5xx"];
/// Statuses retried by default: the provider throttled the request.
pub const DEFAULT_RETRY_STATUS_CODES: [u16; 1] = [429];
/// How long an attempt may take until its response headers, by default. Streams send headers
/// early; a JSON answer sends them when it is complete, so this must exceed the longest generation.
pub const DEFAULT_PER_ATTEMPT_TIMEOUT_MS: u64 = 120_000;

/// Envoy's `retry_on` conditions that make sense for a model request.
const RETRY_CONDITIONS: [&str; 9] = [
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "refused-stream",
    "retriable-4xx",
    "envoy-ratelimited",
    "http3-post-connect-failure",
];

impl Default for RetrySettings {
    fn default() -> Self {
        RetrySettings::build(
            DEFAULT_RETRY_ON.iter().map(|s| (*s).to_owned()).collect(),
            DEFAULT_RETRY_STATUS_CODES.to_vec(),
            DEFAULT_PER_ATTEMPT_TIMEOUT_MS,
        )
    }
}

impl RetrySettings {
    fn build(mut on: Vec<String>, status_codes: Vec<u16>, per_attempt_timeout_ms: u64) -> Self {
        if !status_codes.is_empty() {
            on.push("retriable-status-codes".to_owned());
        }
        let codes: Vec<String> = status_codes.iter().map(u16::to_string).collect();
        RetrySettings { retry_on: on.join(","), status_codes: codes.join(","), per_attempt_timeout_ms }
    }
}

pub(super) fn validate_retry(raw: Option<RawRetry>) -> Result<RetrySettings, ConfigError> {
    let Some(raw) = raw else { return Ok(RetrySettings::default()) };
    let on = raw.on.unwrap_or_else(|| DEFAULT_RETRY_ON.iter().map(|s| (*s).to_owned()).collect());
    for (i, condition) in on.iter().enumerate() {
        if !RETRY_CONDITIONS.contains(&condition.as_str()) {
            return Err(ConfigError::new(format!("retry.on[{i}]"), Problem::UnknownRetryCondition(condition.clone())));
        }
    }
    let status_codes = raw.status_codes.unwrap_or_else(|| DEFAULT_RETRY_STATUS_CODES.to_vec());
    for (i, code) in status_codes.iter().enumerate() {
        if !(400..=599).contains(code) {
            return Err(ConfigError::new(format!("retry.status_codes[{i}]"), Problem::NotAnErrorStatus(*code)));
        }
    }
    if on.is_empty() && status_codes.is_empty() {
        return Err(ConfigError::new("retry.on", Problem::Empty));
    }
    let per_attempt_timeout_ms = match raw.per_attempt_timeout_ms {
        Some(0) => return Err(ConfigError::new("retry.per_attempt_timeout_ms", Problem::NotPositive)),
        other => other.unwrap_or(DEFAULT_PER_ATTEMPT_TIMEOUT_MS),
    };
    Ok(RetrySettings::build(on, status_codes, per_attempt_timeout_ms))
}

/// A target's `fallbacks` and `fallback_cluster` (at `field`): both or neither; every provider of the
/// chain once (an attempt is told apart by its provider); the aggregate cluster not a provider's.
pub(super) fn validate_chain(
    field: &str,
    primary: usize,
    fallbacks: Option<Vec<RawFallback>>,
    cluster: Option<String>,
    upstreams: &[Upstream],
    upstream_index: &HashMap<String, usize>,
) -> Result<Option<Chain>, ConfigError> {
    let (fallbacks, cluster) = match (fallbacks, cluster) {
        (None, None) => return Ok(None),
        (Some(_), None) => {
            return Err(ConfigError::new(format!("{field}.fallback_cluster"), Problem::FallbacksNeedCluster))
        }
        (None, Some(_)) => return Err(ConfigError::new(format!("{field}.fallbacks"), Problem::ClusterNeedsFallbacks)),
        (Some(fallbacks), Some(cluster)) => (fallbacks, cluster),
    };
    let cluster_field = format!("{field}.fallback_cluster");
    checked_header_value(&cluster_field, &cluster)?;
    if upstreams.iter().any(|upstream| upstream.cluster == cluster) {
        return Err(ConfigError::new(cluster_field, Problem::FallbackClusterIsAProvider(cluster)));
    }
    if fallbacks.is_empty() {
        return Err(ConfigError::new(format!("{field}.fallbacks"), Problem::Empty));
    }
    let mut seen = vec![primary];
    let cluster_of = |upstream: usize| upstreams.get(upstream).map(|u| u.cluster.as_str());
    let mut chain = Vec::with_capacity(fallbacks.len());
    for (i, fallback) in fallbacks.into_iter().enumerate() {
        let upstream_field = format!("{field}.fallbacks[{i}].upstream");
        let Some(&upstream) = upstream_index.get(&fallback.upstream) else {
            return Err(ConfigError::new(upstream_field, Problem::UnknownUpstream(fallback.upstream)));
        };
        if seen.contains(&upstream) {
            return Err(ConfigError::new(upstream_field, Problem::UpstreamTwiceInChain(fallback.upstream)));
        }
        // An attempt knows its provider by the endpoint Envoy chose, so each needs a cluster of its own.
        if let Some(cluster) = cluster_of(upstream).filter(|c| seen.iter().any(|&s| cluster_of(s) == Some(c))) {
            return Err(ConfigError::new(upstream_field, Problem::ClusterTwiceInChain(cluster.to_owned())));
        }
        seen.push(upstream);
        if fallback.model.as_deref() == Some("") {
            return Err(ConfigError::new(format!("{field}.fallbacks[{i}].model"), Problem::Empty));
        }
        chain.push(Fallback { upstream, model: fallback.model });
    }
    let mut forward_headers: Vec<String> = seen
        .iter()
        .filter_map(|&upstream| upstreams.get(upstream))
        .flat_map(|upstream| upstream.forward_headers.iter().cloned())
        .collect();
    forward_headers.sort();
    forward_headers.dedup();
    Ok(Some(Chain { cluster, fallbacks: chain, forward_headers }))
}
