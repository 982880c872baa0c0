//! Per-request metrics: what one finished request adds to the Prometheus series, as data.
//!
//! Labels travel inside metric names (`ai_gateway_requests_total;key_id=alpha;model=gpt-4o;...`)
//! and Envoy's `stats_tags` turn them into Prometheus labels. Label values come only from the
//! configuration (key ids, model and upstream names) or from fixed lists, so cardinality is bounded
//! by the configuration; anything else is reported as `none`.

use crate::api_error::ErrorKind;
use crate::cache::recorder::CacheEvent;
use crate::cache::Stored;
use crate::quota::LimitKind;
use crate::usage::Usage;

mod pending;
pub use pending::{PendingMetrics, PendingSeries};

/// The filter's host calls and Envoy's callbacks into the module, per worker (the benchmark divides
/// them by the requests it sent).
pub const HOST_CALLS_METRIC: &str = "ai_gateway_host_calls_total";
pub const CALLBACKS_METRIC: &str = "ai_gateway_callbacks_total";

/// How a request ended, as counted in `ai_gateway_requests_total{outcome=...}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Unauthorized,
    Forbidden,
    NotFound,
    BadRequest,
    MethodNotAllowed,
    UnsupportedMediaType,
    RateLimited,
    CacheHit,
    UpstreamError,
    /// The gateway itself failed (no configuration, counters unavailable).
    GatewayError,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Unauthorized => "unauthorized",
            Outcome::Forbidden => "forbidden",
            Outcome::NotFound => "not_found",
            Outcome::BadRequest => "bad_request",
            Outcome::MethodNotAllowed => "method_not_allowed",
            Outcome::UnsupportedMediaType => "unsupported_media_type",
            Outcome::RateLimited => "rate_limited",
            Outcome::CacheHit => "cache_hit",
            Outcome::UpstreamError => "upstream_error",
            Outcome::GatewayError => "gateway_error",
        }
    }

    /// The outcome of an error the gateway answered itself, from the error's kind.
    pub fn of_error(kind: ErrorKind) -> Outcome {
        match kind {
            ErrorKind::BadRequest | ErrorKind::PayloadTooLarge => Outcome::BadRequest,
            ErrorKind::Unauthorized => Outcome::Unauthorized,
            ErrorKind::Forbidden => Outcome::Forbidden,
            ErrorKind::NotFound => Outcome::NotFound,
            ErrorKind::MethodNotAllowed => Outcome::MethodNotAllowed,
            ErrorKind::UnsupportedMediaType => Outcome::UnsupportedMediaType,
            ErrorKind::RequestLimit | ErrorKind::TokenLimit => Outcome::RateLimited,
            ErrorKind::Internal | ErrorKind::Unavailable => Outcome::GatewayError,
        }
    }
}

/// The global rate limit service failed a request of a key with limits (`quota.mode: global`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceFailure {
    /// No count came back and the request went on (`failure_mode_deny: false`, or the service's
    /// configuration lacks the key's limits): counted by this replica's reservation only.
    Allowed,
    /// The service could not be asked and Envoy refused the request (`failure_mode_deny: true`).
    Refused,
}

impl ServiceFailure {
    pub fn name(self) -> &'static str {
        match self {
            ServiceFailure::Allowed => "allowed",
            ServiceFailure::Refused => "refused",
        }
    }
}

/// Everything the metrics of one finished request are made of.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestSummary {
    pub key_id: Option<String>,
    pub model: Option<String>,
    pub upstream: Option<String>,
    pub outcome: Option<Outcome>,
    pub usage: Option<Usage>,
    pub cache: Option<CacheEvent>,
    /// What storing the answer in the cache did, when it was tried.
    pub cache_store: Option<Stored>,
    pub refused_by: Option<LimitKind>,
    pub upstream_ms: Option<u64>,
    pub first_byte_ms: Option<u64>,
    /// How many upstream attempts Envoy made (more than one when a fallback chain moved on).
    pub attempts: Option<u32>,
    /// How the global rate limit service failed this request, if it did.
    pub service_failure: Option<ServiceFailure>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Histogram,
}

/// One change to one series, named (the tests' view of what a request adds).
#[cfg(test)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricUpdate {
    pub name: String,
    pub kind: MetricKind,
    pub value: u64,
}

/// A label value safe inside a metric name: characters other than `A-Z a-z 0-9 . _ : / -` (which
/// would break Envoy's tag extraction, like `;` or `=`) become `_`.
fn label(value: &str) -> String {
    value.chars().map(|c| if c.is_ascii_alphanumeric() || "._:/-".contains(c) { c } else { '_' }).collect()
}

/// The filter's metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    Requests,
    InputTokens,
    OutputTokens,
    CacheLookups,
    CacheStores,
    RateLimited,
    RateLimitServiceErrors,
    UpstreamDuration,
    UpstreamAttempts,
    UpstreamFirstByte,
    HostCalls,
    Callbacks,
}

impl Metric {
    /// Which of the labels `key_id`, `model`, `upstream` its series carry.
    fn labels(self) -> (bool, bool, bool) {
        match self {
            Metric::Requests => (true, true, true),
            Metric::InputTokens | Metric::OutputTokens => (true, true, false),
            Metric::CacheLookups | Metric::CacheStores | Metric::RateLimited | Metric::RateLimitServiceErrors => {
                (true, false, false)
            }
            Metric::UpstreamDuration | Metric::UpstreamAttempts | Metric::UpstreamFirstByte => (false, true, true),
            Metric::HostCalls | Metric::Callbacks => (false, false, false),
        }
    }

    pub fn kind(self) -> MetricKind {
        match self {
            Metric::UpstreamDuration | Metric::UpstreamFirstByte => MetricKind::Histogram,
            _ => MetricKind::Counter,
        }
    }
}

/// One series of one metric, its labels borrowed: `detail` is the label from a fixed list
/// (`outcome`, `result` or `limit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Series<'a> {
    pub metric: Metric,
    pub key_id: &'a str,
    pub model: &'a str,
    pub upstream: &'a str,
    pub detail: &'static str,
}

impl Series<'_> {
    /// A series without labels.
    pub const fn plain(metric: Metric) -> Series<'static> {
        Series { metric, key_id: "", model: "", upstream: "", detail: "" }
    }

    /// The series' name as Envoy knows it, labels inside (`ai_gateway_requests_total;key_id=...`).
    pub fn name(&self) -> String {
        let (key_id, model, upstream, detail) =
            (label(self.key_id), label(self.model), label(self.upstream), self.detail);
        match self.metric {
            Metric::Requests => {
                format!("ai_gateway_requests_total;key_id={key_id};model={model};upstream={upstream};outcome={detail}")
            }
            Metric::InputTokens => format!("ai_gateway_input_tokens_total;key_id={key_id};model={model}"),
            Metric::OutputTokens => format!("ai_gateway_output_tokens_total;key_id={key_id};model={model}"),
            Metric::CacheLookups => format!("ai_gateway_cache_lookups_total;key_id={key_id};result={detail}"),
            Metric::CacheStores => format!("ai_gateway_cache_stores_total;key_id={key_id};result={detail}"),
            Metric::RateLimited => format!("ai_gateway_rate_limited_total;key_id={key_id};limit={detail}"),
            Metric::RateLimitServiceErrors => {
                format!("ai_gateway_rate_limit_service_errors_total;key_id={key_id};result={detail}")
            }
            Metric::UpstreamDuration => format!("ai_gateway_upstream_duration_ms;model={model};upstream={upstream}"),
            Metric::UpstreamAttempts => {
                format!("ai_gateway_upstream_attempts_total;model={model};upstream={upstream}")
            }
            Metric::UpstreamFirstByte => {
                format!("ai_gateway_upstream_first_byte_ms;model={model};upstream={upstream}")
            }
            Metric::HostCalls => HOST_CALLS_METRIC.to_owned(),
            Metric::Callbacks => CALLBACKS_METRIC.to_owned(),
        }
    }
}

/// Every series one finished request changes, and by how much (a histogram's sample), in order.
pub fn each_series<'a>(summary: &'a RequestSummary, mut change: impl FnMut(Series<'a>, u64)) {
    let Some(outcome) = summary.outcome else { return };
    let key_id = summary.key_id.as_deref().unwrap_or("none");
    let model = summary.model.as_deref().unwrap_or("none");
    let upstream = summary.upstream.as_deref().unwrap_or("none");
    let mut series = |metric: Metric, detail, value| {
        // Only the labels the metric carries: requests alike in those share its series.
        let (with_key, with_model, with_upstream) = metric.labels();
        let pick = |used: bool, label: &'a str| if used { label } else { "" };
        let series = Series {
            metric,
            key_id: pick(with_key, key_id),
            model: pick(with_model, model),
            upstream: pick(with_upstream, upstream),
            detail,
        };
        change(series, value)
    };
    series(Metric::Requests, outcome.name(), 1);
    if let Some(usage) = summary.usage {
        series(Metric::InputTokens, "", usage.input_tokens);
        series(Metric::OutputTokens, "", usage.output_tokens);
    }
    if let Some(cache) = summary.cache {
        series(Metric::CacheLookups, cache.name(), 1);
    }
    if let Some(stored) = summary.cache_store.and_then(Stored::name) {
        series(Metric::CacheStores, stored, 1);
    }
    if let Some(limit) = summary.refused_by {
        series(Metric::RateLimited, limit.name(), 1);
    }
    if let Some(failure) = summary.service_failure {
        series(Metric::RateLimitServiceErrors, failure.name(), 1);
    }
    if let Some(ms) = summary.upstream_ms {
        series(Metric::UpstreamDuration, "", ms);
    }
    if let Some(attempts) = summary.attempts {
        series(Metric::UpstreamAttempts, "", u64::from(attempts));
    }
    if let Some(ms) = summary.first_byte_ms {
        series(Metric::UpstreamFirstByte, "", ms);
    }
}

/// The updates one finished request makes, named (the tests' view; the filter gathers them in
/// [`PendingMetrics`]).
#[cfg(test)]
pub fn updates(summary: &RequestSummary) -> Vec<MetricUpdate> {
    let mut out = Vec::new();
    each_series(summary, |series, value| {
        out.push(MetricUpdate { name: series.name(), kind: series.metric.kind(), value });
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_served_request_counts_its_outcome_tokens_and_timings() {
        let summary = RequestSummary {
            key_id: Some("alpha".into()),
            model: Some("gpt-4o".into()),
            upstream: Some("openai".into()),
            outcome: Some(Outcome::Ok),
            usage: Some(Usage { input_tokens: 10, output_tokens: 5 }),
            cache: Some(CacheEvent::Miss),
            cache_store: Some(Stored::Fresh),
            refused_by: None,
            upstream_ms: Some(120),
            first_byte_ms: Some(40),
            attempts: None,
            service_failure: None,
        };
        let names: Vec<(String, u64)> = updates(&summary).into_iter().map(|u| (u.name, u.value)).collect();
        assert_eq!(
            names,
            [
                ("ai_gateway_requests_total;key_id=alpha;model=gpt-4o;upstream=openai;outcome=ok".to_owned(), 1),
                ("ai_gateway_input_tokens_total;key_id=alpha;model=gpt-4o".to_owned(), 10),
                ("ai_gateway_output_tokens_total;key_id=alpha;model=gpt-4o".to_owned(), 5),
                ("ai_gateway_cache_lookups_total;key_id=alpha;result=miss".to_owned(), 1),
                ("ai_gateway_cache_stores_total;key_id=alpha;result=fresh".to_owned(), 1),
                ("ai_gateway_upstream_duration_ms;model=gpt-4o;upstream=openai".to_owned(), 120),
                ("ai_gateway_upstream_first_byte_ms;model=gpt-4o;upstream=openai".to_owned(), 40),
            ]
        );
    }

    #[test]
    fn refusals_use_none_for_what_is_unknown() {
        let summary = RequestSummary { outcome: Some(Outcome::Unauthorized), ..Default::default() };
        assert_eq!(
            updates(&summary)[0].name,
            "ai_gateway_requests_total;key_id=none;model=none;upstream=none;outcome=unauthorized"
        );
        let limited = RequestSummary {
            key_id: Some("k".into()),
            outcome: Some(Outcome::RateLimited),
            refused_by: Some(LimitKind::TokensPerDay),
            ..Default::default()
        };
        assert_eq!(updates(&limited)[1].name, "ai_gateway_rate_limited_total;key_id=k;limit=tokens_per_day");
        let unanswered = RequestSummary {
            key_id: Some("k".into()),
            outcome: Some(Outcome::Ok),
            service_failure: Some(ServiceFailure::Allowed),
            ..Default::default()
        };
        assert_eq!(updates(&unanswered)[1].name, "ai_gateway_rate_limit_service_errors_total;key_id=k;result=allowed");
        assert!(updates(&RequestSummary::default()).is_empty());
        let odd = RequestSummary { model: Some("a;b=c d@1".into()), outcome: Some(Outcome::Ok), ..Default::default() };
        assert_eq!(
            updates(&odd)[0].name,
            "ai_gateway_requests_total;key_id=none;model=a_b_c_d_1;upstream=none;outcome=ok"
        );
    }

    #[test]
    fn error_kinds_map_to_outcomes() {
        let cases = [
            (ErrorKind::BadRequest, "bad_request"),
            (ErrorKind::PayloadTooLarge, "bad_request"),
            (ErrorKind::Unauthorized, "unauthorized"),
            (ErrorKind::Forbidden, "forbidden"),
            (ErrorKind::NotFound, "not_found"),
            (ErrorKind::MethodNotAllowed, "method_not_allowed"),
            (ErrorKind::UnsupportedMediaType, "unsupported_media_type"),
            (ErrorKind::RequestLimit, "rate_limited"),
            (ErrorKind::TokenLimit, "rate_limited"),
            (ErrorKind::Internal, "gateway_error"),
            (ErrorKind::Unavailable, "gateway_error"),
        ];
        for (kind, outcome) in cases {
            assert_eq!(Outcome::of_error(kind).name(), outcome, "{kind:?}");
        }
    }
}
