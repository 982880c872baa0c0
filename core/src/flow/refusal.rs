//! The answer to a request its key's limits refuse: a 429 in the client's format with every
//! rate-limit header the key has and `retry-after`, or a fail-closed 503 when the counters cannot
//! be updated.

use super::decision::LocalReply;
use super::report::Report;
use crate::api_error::{ApiError, ApiFormat, ErrorKind};
use crate::config::Key;
use crate::ports::SharedStore;
use crate::quota::headers::{format_duration, LimitFamily, RateLimitHeaders};
use crate::quota::Refusal;

/// How long a client is asked to wait when the counters could not be updated.
const STORE_UNAVAILABLE_RETRY_NS: u64 = 1_000_000_000;

/// The reply to `refusal`; `rate_headers` holds what admission gathered so far.
pub(super) fn refusal_reply(
    refusal: Refusal,
    key: &Key,
    store: &dyn SharedStore,
    now_ns: u64,
    format: ApiFormat,
    mut rate_headers: RateLimitHeaders,
    report: &mut Report,
) -> LocalReply {
    let (error, retry_after_ns) = match refusal {
        Refusal::Exhausted { kind, status, retry_after_ns } => {
            report.summary.refused_by = Some(kind);
            let family = LimitFamily::of(kind);
            rate_headers.set(family, Some(status));
            let error_kind = match family {
                LimitFamily::Tokens => ErrorKind::TokenLimit,
                LimitFamily::Requests => ErrorKind::RequestLimit,
            };
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
            STORE_UNAVAILABLE_RETRY_NS,
        ),
    };
    rate_headers.fill_missing(store, key, now_ns);
    rate_headers.set_retry_after(retry_after_ns);
    let mut reply = LocalReply::error(&error, format);
    reply.headers.extend(rate_headers.to_headers());
    reply
}
