//! Limits held by Envoy's global rate limit service (envoyproxy/ratelimit or Limitador, on Redis)
//! rather than one Envoy's shared data: the descriptors the gateway's limits become. The RLS
//! configuration generator and the filter's Envoy configuration both follow these names.

use crate::config::Config;

/// The rate limit domain when none is configured.
pub const DEFAULT_DOMAIN: &str = "ai-gateway";
/// The first descriptor entry: the key's id (from the `x-ai-gateway-key-id` request header).
pub const KEY_ID_ENTRY: &str = "key_id";
/// The second descriptor entry: which limit (`requests_per_minute`, `tokens_per_day`, ...).
pub const LIMIT_ENTRY: &str = "limit";

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

#[cfg(test)]
mod tests {
    use super::*;

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
