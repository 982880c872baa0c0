//! The configuration document exactly as users write it (docs/configuration.md), before validation.

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub role: Role,
    #[serde(default)]
    pub keys: Option<Vec<RawKey>>,
    pub upstreams: BTreeMap<String, RawUpstream>,
    pub models: BTreeMap<String, RawRoute>,
    #[serde(default)]
    pub cache: Option<RawCache>,
    #[serde(default)]
    pub cluster_header: Option<String>,
    #[serde(default)]
    pub max_request_body_bytes: Option<u64>,
    #[serde(default)]
    pub retry: Option<RawRetry>,
    #[serde(default)]
    pub quota: Option<RawQuota>,
}

/// Where the keys' limits are counted: in this Envoy's shared data, or by Envoy's global rate limit
/// service for every replica.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum QuotaMode {
    #[default]
    Local,
    Global,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct RawQuota {
    #[serde(default)]
    pub mode: QuotaMode,
    #[serde(default)]
    pub domain: Option<String>,
}

/// Which filter this document configures: the one in the listener's filter chain (auth, limits,
/// cache, routing) or the one on a fallback chain's aggregate cluster (each attempt's rewrite).
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    #[default]
    Downstream,
    Upstream,
}

/// When Envoy moves a request on to the next provider of a fallback chain.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    #[serde(default)]
    pub on: Option<Vec<String>>,
    #[serde(default)]
    pub status_codes: Option<Vec<u16>>,
    #[serde(default)]
    pub per_attempt_timeout_ms: Option<u64>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct RawKey {
    pub id: String,
    pub sha256: OneOrMany,
    #[serde(default)]
    pub models: Option<Vec<String>>,
    #[serde(default)]
    pub limits: Option<RawLimits>,
}

/// `sha256` accepts one digest or an array of them (key rotation).
#[derive(Debug)]
pub struct OneOrMany(pub Vec<String>);

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OneOrManyVisitor;
        impl<'de> Visitor<'de> for OneOrManyVisitor {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a hex SHA-256 digest or an array of them")
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany(vec![value.to_owned()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMany, A::Error> {
                let mut digests = Vec::new();
                while let Some(digest) = seq.next_element::<String>()? {
                    digests.push(digest);
                }
                Ok(OneOrMany(digests))
            }
        }
        deserializer.deserialize_any(OneOrManyVisitor)
    }
}

#[derive(Deserialize, Debug, Default, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub requests_per_second: Option<u64>,
    pub requests_per_minute: Option<u64>,
    pub requests_per_hour: Option<u64>,
    pub requests_per_day: Option<u64>,
    pub tokens_per_minute: Option<u64>,
    pub tokens_per_hour: Option<u64>,
    pub tokens_per_day: Option<u64>,
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Api {
    #[default]
    OpenAi,
    Anthropic,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    #[serde(default)]
    pub cluster: Option<String>,
    #[serde(default)]
    pub api: Api,
    #[serde(default)]
    pub authority: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub forward_headers: Vec<String>,
    #[serde(default)]
    pub path_prefix: Option<String>,
    #[serde(default)]
    pub query: Option<String>,
}

/// A model route: either `upstream` (+ optional `model`) or `targets`; which one is checked later.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    #[serde(default)]
    pub upstream: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub targets: Option<Vec<RawTarget>>,
    #[serde(default)]
    pub default_max_tokens: Option<u64>,
    #[serde(default)]
    pub fallbacks: Option<Vec<RawFallback>>,
    #[serde(default)]
    pub fallback_cluster: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    pub upstream: String,
    #[serde(default)]
    pub model: Option<String>,
    pub weight: u32,
    #[serde(default)]
    pub fallbacks: Option<Vec<RawFallback>>,
    #[serde(default)]
    pub fallback_cluster: Option<String>,
}

/// A provider tried when the ones before it in the chain failed: like a target, without a weight.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct RawFallback {
    pub upstream: String,
    #[serde(default)]
    pub model: Option<String>,
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum CacheScope {
    #[default]
    Key,
    Global,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct RawCache {
    #[serde(default = "default_ttl_seconds")]
    pub ttl_seconds: u64,
    #[serde(default = "default_max_entries")]
    pub max_entries: u32,
    #[serde(default = "default_max_entry_bytes")]
    pub max_entry_bytes: u32,
    #[serde(default)]
    pub scope: CacheScope,
}

fn default_ttl_seconds() -> u64 {
    300
}
fn default_max_entries() -> u32 {
    1024
}
fn default_max_entry_bytes() -> u32 {
    262_144
}
