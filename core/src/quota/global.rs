//! Limits held by Envoy's global rate limit service (envoyproxy/ratelimit or Limitador, on Redis)
//! rather than one Envoy's shared data: the descriptors the gateway's limits become. The RLS
//! configuration generator and the filter's Envoy configuration both follow these names.

use super::{LimitKind, LimitStatus};
use crate::config::{Config, Key};

/// The rate limit domain when none is configured.
pub const DEFAULT_DOMAIN: &str = "ai-gateway";
/// The first descriptor entry: the key's id (from the `x-ai-gateway-key-id` request header).
pub const KEY_ID_ENTRY: &str = "key_id";
/// The second descriptor entry: which limit (`requests_per_minute`, `tokens_per_day`, ...).
pub const LIMIT_ENTRY: &str = "limit";
/// The request header naming the key's limits (`requests_per_minute,tokens_per_day`): Envoy's rate
/// limit filter builds a descriptor only for those, so a key without limits never asks the service.
pub const LIMITS_HEADER: &str = "x-ai-gateway-limits";

/// One limit of one key, as a rate limit service counts it: a fixed window of `unit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceLimit {
    pub key_id: String,
    /// The limit's name, the value of the [`LIMIT_ENTRY`] descriptor entry.
    pub limit: &'static str,
    pub unit: &'static str,
    pub requests_per_unit: u64,
}

/// Every limit of every key, keys in configuration order, each key's limits in contract order.
pub fn service_limits(config: &Config) -> Vec<ServiceLimit> {
    config
        .keys()
        .flat_map(|key| {
            key.limits.iter().map(|limit| ServiceLimit {
                key_id: key.id.clone(),
                limit: limit.kind.name(),
                unit: limit.kind.unit(),
                requests_per_unit: limit.amount,
            })
        })
        .collect()
}

/// The rate limit filter's response headers (draft 03 of the IETF RateLimit headers, Envoy's
/// `enable_x_ratelimit_headers`): the status of the limit closest to exhaustion, as the service
/// reported it. Removed from responses once read: the client gets OpenAI's headers instead.
pub const SERVICE_HEADERS: [&str; 3] = ["x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"];

/// Which of `key`'s limits the service's headers describe, and its status; `None` when they are
/// absent, malformed or match no limit of the key. `limit` reads `10, 10;w=60, 1000;w=3600`: the
/// amount of the limit closest to exhaustion, then every limit the request was checked against,
/// each with its window in seconds. The one described is the key's limit with that amount and one
/// of those windows.
pub fn service_status(
    key: &Key,
    limit: Option<&str>,
    remaining: Option<&str>,
    reset: Option<&str>,
) -> Option<(LimitKind, LimitStatus)> {
    let mut parts = limit?.split(',');
    let amount: u64 = parts.next()?.trim().parse().ok()?;
    let remaining: u64 = remaining?.trim().parse().ok()?;
    let reset_seconds: u64 = reset?.trim().parse().ok()?;
    let window_of = |policy: &str| -> Option<u64> {
        let mut fields = policy.split(';');
        let policy_amount: u64 = fields.next()?.trim().parse().ok()?;
        let window = fields.find_map(|field| field.trim().strip_prefix("w="))?.trim().parse().ok()?;
        (policy_amount == amount).then_some(window)
    };
    let kind = parts.filter_map(window_of).find_map(|window: u64| {
        let period_ns = window.saturating_mul(1_000_000_000);
        key.limits.iter().find(|l| l.amount == amount && l.kind.period_ns() == period_ns).map(|l| l.kind)
    })?;
    Some((kind, LimitStatus { limit: amount, remaining, reset_ns: reset_seconds.saturating_mul(1_000_000_000) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_services_headers_are_matched_to_the_limit_they_describe() {
        let document = serde_json::json!({
            "keys": [ { "id": "a", "sha256": "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
                        "limits": { "requests_per_minute": 10, "tokens_per_day": 1000 } } ],
            "upstreams": { "u": {} },
            "models": { "m": { "upstream": "u" } }
        });
        let config = Config::parse(document.to_string().as_bytes()).unwrap();
        let key = config.keys().next().unwrap();
        let status = |limit, remaining, reset| service_status(key, Some(limit), Some(remaining), Some(reset));
        let requests = status("10, 10;w=60", "3", "42").unwrap();
        assert_eq!(
            requests,
            (LimitKind::RequestsPerMinute, LimitStatus { limit: 10, remaining: 3, reset_ns: 42_000_000_000 })
        );
        assert_eq!(status("1000, 1000;w=86400", "0", "5").unwrap().0, LimitKind::TokensPerDay);
        // Every limit checked is listed (Envoy names the closest to exhaustion first).
        assert_eq!(status("10, 1000;w=86400, 10;w=60", "3", "42").unwrap(), requests);
        assert_eq!(status("1000, 10;w=60, 1000;w=86400;name=x", "9", "5").unwrap().0, LimitKind::TokensPerDay);
        for (limit, remaining, reset) in
            [("10, 10;w=3600", "3", "1"), ("10", "3", "1"), ("x, 1;w=60", "1", "1"), ("10, 10;w=60", "-1", "1")]
        {
            assert_eq!(status(limit, remaining, reset), None, "{limit} {remaining}");
        }
        assert_eq!(service_status(key, None, Some("1"), Some("1")), None);
    }

    #[test]
    fn every_limit_of_every_key_becomes_a_descriptor_with_its_window() {
        let document = serde_json::json!({
            "keys": [
                { "id": "a", "sha256": "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
                  "limits": { "requests_per_second": 5, "tokens_per_day": 1000 } },
                { "id": "b", "sha256": "fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9" }
            ],
            "upstreams": { "u": {} },
            "models": { "m": { "upstream": "u" } }
        });
        let config = Config::parse(document.to_string().as_bytes()).unwrap();
        let limit = |limit, unit, amount| ServiceLimit { key_id: "a".into(), limit, unit, requests_per_unit: amount };
        assert_eq!(
            service_limits(&config),
            [limit("requests_per_second", "second", 5), limit("tokens_per_day", "day", 1000)]
        );
    }
}
