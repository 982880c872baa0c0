//! The validated, pre-compiled configuration: digests indexed, routes resolved to upstream indices.

mod error;
mod fallback;
mod keys;
mod raw;

pub use error::{ConfigError, Problem};
pub use fallback::{
    Chain, Fallback, RetrySettings, DEFAULT_PER_ATTEMPT_TIMEOUT_MS, DEFAULT_RETRY_ON, DEFAULT_RETRY_STATUS_CODES,
};
pub use raw::{Api, CacheScope, QuotaMode, Role};

use crate::auth::CREDENTIAL_HEADERS;
use crate::quota::global::DEFAULT_DOMAIN;
use crate::quota::Limit;
use fallback::validate_chain;
use keys::validate_key;
use raw::{RawCache, RawConfig, RawRoute, RawUpstream};
use std::collections::{BTreeMap, HashMap};

/// The default request header the chosen cluster is written to.
pub const DEFAULT_CLUSTER_HEADER: &str = "x-ai-gateway-cluster";
/// Headers the gateway owns; clients cannot send them and configs cannot set them.
pub const GATEWAY_HEADER_PREFIX: &str = "x-ai-gateway-";

/// A SHA-256 digest of an API key.
pub type Digest = [u8; 32];

#[derive(Debug)]
pub struct Config {
    /// Which filter this configures: the listener's, or a fallback chain's per-attempt rewrite.
    pub role: Role,
    keys: Vec<Key>,
    key_by_digest: HashMap<Digest, usize>,
    upstreams: Vec<Upstream>,
    models: Vec<Model>,
    model_by_name: HashMap<String, usize>,
    pub cache: Option<CacheSettings>,
    pub cluster_header: String,
    /// Request bodies larger than this are answered 413 in the client's format.
    pub max_request_body_bytes: u64,
    /// When a request moves on along a fallback chain.
    pub retry: RetrySettings,
    /// Where the keys' limits are counted.
    pub quota: QuotaSettings,
}

/// `quota`: local shared data, or Envoy's global rate limit service (its domain).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaSettings {
    pub mode: QuotaMode,
    pub domain: String,
}

/// `max_request_body_bytes` when it is not configured: the shipped configs' buffer limit.
pub const DEFAULT_MAX_REQUEST_BODY_BYTES: u64 = 8 * 1024 * 1024;

#[derive(Debug)]
pub struct Key {
    pub id: String,
    /// Per model index: may this key use it? `None`: every model.
    allowed_models: Option<Vec<bool>>,
    pub limits: Vec<Limit>,
    /// Request limits are counted by the global rate limit service, not here.
    requests_counted_globally: bool,
}

impl Key {
    /// The key's request limits (`requests_per_*`) counted in this Envoy's shared data: none when
    /// the global rate limit service counts them.
    pub fn request_limits(&self) -> impl Iterator<Item = &Limit> + Clone {
        let local = !self.requests_counted_globally;
        self.limits.iter().filter(move |limit| local && !limit.kind.counts_tokens())
    }

    /// The key's token limits (`tokens_per_*`).
    pub fn token_limits(&self) -> impl Iterator<Item = &Limit> + Clone {
        self.limits.iter().filter(|limit| limit.kind.counts_tokens())
    }

    pub fn may_use(&self, model_index: usize) -> bool {
        match &self.allowed_models {
            None => true,
            Some(allowed) => allowed.get(model_index).copied().unwrap_or(false),
        }
    }
}

#[derive(Debug)]
pub struct Upstream {
    pub name: String,
    pub cluster: String,
    pub api: Api,
    pub authority: Option<String>,
    pub headers: Vec<(String, String)>,
    /// Client request headers forwarded to this upstream besides the default ones (lowercase).
    pub forward_headers: Vec<String>,
    /// Replaces the `/v1` of the endpoint's path; may hold `{model}` (the model sent upstream).
    pub path_prefix: String,
    /// The query string sent upstream (without `?`); `None` keeps the client's.
    pub query: Option<String>,
}

/// A client-facing model name and the weighted targets it routes to.
#[derive(Debug)]
pub struct Model {
    pub name: String,
    pub targets: Vec<Target>,
    pub total_weight: u32,
    /// `max_tokens` sent to a provider that requires it (Anthropic) when the client sent none.
    pub default_max_tokens: u64,
}

/// `models.NAME.default_max_tokens` when it is not configured.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

#[derive(Debug)]
pub struct Target {
    pub upstream: usize,
    /// The model name sent upstream; `None` keeps the client's.
    pub model: Option<String>,
    pub weight: u32,
    /// The providers tried when this one fails, if any.
    pub chain: Option<Chain>,
}

impl Target {
    /// The provider `upstream` as an entry of this target's chain (the target itself or one of its
    /// fallbacks): the model name it is sent, or `None` when the upstream is not in the chain.
    pub fn entry_for(&self, upstream: usize) -> Option<Option<&str>> {
        if self.upstream == upstream {
            return Some(self.model.as_deref());
        }
        let fallbacks = self.chain.as_ref().map(|chain| chain.fallbacks.as_slice()).unwrap_or_default();
        let fallback = fallbacks.iter().find(|fallback| fallback.upstream == upstream)?;
        Some(fallback.model.as_deref())
    }

    /// Every upstream of the chain, this target's first.
    pub fn chain_upstreams(&self) -> impl Iterator<Item = usize> + '_ {
        let fallbacks = self.chain.as_ref().map(|chain| chain.fallbacks.as_slice()).unwrap_or_default();
        std::iter::once(self.upstream).chain(fallbacks.iter().map(|fallback| fallback.upstream))
    }
}

impl Model {
    /// The target whose fallback chain runs on the aggregate cluster `cluster`.
    pub fn target_on_cluster(&self, cluster: &str) -> Option<&Target> {
        self.targets.iter().find(|target| target.chain.as_ref().is_some_and(|chain| chain.cluster == cluster))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSettings {
    pub ttl_seconds: u64,
    pub max_entries: u32,
    pub max_entry_bytes: u32,
    pub scope: CacheScope,
}

impl Config {
    /// Parses and validates the JSON configuration document.
    pub fn parse(document: &[u8]) -> Result<Config, ConfigError> {
        let mut deserializer = serde_json::Deserializer::from_slice(document);
        let raw: RawConfig = serde_path_to_error::deserialize(&mut deserializer)
            .map_err(|e| ConfigError::new(e.path().to_string(), Problem::Syntax(e.inner().to_string())))?;
        deserializer.end().map_err(|e| ConfigError::new("", Problem::Syntax(e.to_string())))?;
        Config::validate(raw)
    }

    fn validate(raw: RawConfig) -> Result<Config, ConfigError> {
        let cluster_header = match raw.cluster_header {
            None => DEFAULT_CLUSTER_HEADER.to_owned(),
            Some(name) => checked_header_name("cluster_header", &name)?,
        };
        let (upstreams, upstream_index) = validate_upstreams(raw.upstreams, &cluster_header)?;
        if raw.models.is_empty() {
            return Err(ConfigError::new("models", Problem::NoModels));
        }
        let mut models = Vec::with_capacity(raw.models.len());
        for (name, route) in raw.models {
            let field = format!("models.{name}");
            if name.is_empty() {
                return Err(ConfigError::new(field, Problem::Empty));
            }
            let default_max_tokens = match route.default_max_tokens {
                Some(0) => return Err(ConfigError::new(format!("{field}.default_max_tokens"), Problem::NotPositive)),
                other => other.unwrap_or(DEFAULT_MAX_TOKENS),
            };
            let targets = validate_route(&field, route, &upstreams, &upstream_index)?;
            let total_weight = targets
                .iter()
                .try_fold(0u32, |sum, t| sum.checked_add(t.weight))
                .ok_or_else(|| ConfigError::new(format!("{field}.targets"), Problem::WeightsTooLarge))?;
            models.push(Model { name, targets, total_weight, default_max_tokens });
        }
        let model_by_name: HashMap<String, usize> =
            models.iter().enumerate().map(|(i, m)| (m.name.clone(), i)).collect();
        check_shared_chain_clusters(&models)?;
        let raw_keys = match (raw.keys, raw.role) {
            (Some(keys), _) => keys,
            (None, Role::Upstream) => Vec::new(),
            (None, Role::Downstream) => return Err(ConfigError::new("keys", Problem::RequiredField("downstream"))),
        };

        let mut keys = Vec::with_capacity(raw_keys.len());
        let mut key_by_digest = HashMap::new();
        let mut key_ids = HashMap::new();
        for (i, raw_key) in raw_keys.into_iter().enumerate() {
            let key = validate_key(i, raw_key, &models, &model_by_name, &mut key_by_digest, &keys)?;
            if key_ids.insert(key.id.clone(), i).is_some() {
                return Err(ConfigError::new(format!("keys[{i}].id"), Problem::DuplicateKeyId(key.id)));
            }
            keys.push(key);
        }

        let quota = validate_quota(raw.quota)?;
        if quota.mode == QuotaMode::Global {
            for (i, key) in keys.iter_mut().enumerate() {
                // The rate limit service's protocol counts in 32 bits (`requests_per_unit`).
                if let Some(limit) = key.limits.iter().find(|limit| limit.amount > u64::from(u32::MAX)) {
                    let field = format!("keys[{i}].limits.{}", limit.kind.name());
                    return Err(ConfigError::new(field, Problem::LimitTooLargeForService));
                }
                key.requests_counted_globally = true;
            }
        }
        let cache = raw.cache.map(validate_cache).transpose()?;
        let retry = fallback::validate_retry(raw.retry)?;
        let max_request_body_bytes = match raw.max_request_body_bytes {
            Some(0) => return Err(ConfigError::new("max_request_body_bytes", Problem::NotPositive)),
            other => other.unwrap_or(DEFAULT_MAX_REQUEST_BODY_BYTES),
        };
        Ok(Config {
            role: raw.role,
            keys,
            key_by_digest,
            upstreams,
            models,
            model_by_name,
            cache,
            cluster_header,
            max_request_body_bytes,
            retry,
            quota,
        })
    }

    /// The upstream named `name`, with its index.
    pub fn upstream_by_name(&self, name: &str) -> Option<(usize, &Upstream)> {
        self.upstreams.iter().enumerate().find(|(_, upstream)| upstream.name == name)
    }

    /// The key with this digest, and its index for [`Config::key`].
    pub fn key_by_digest(&self, digest: &Digest) -> Option<(usize, &Key)> {
        let index = *self.key_by_digest.get(digest)?;
        self.keys.get(index).map(|key| (index, key))
    }

    pub fn key(&self, index: usize) -> Option<&Key> {
        self.keys.get(index)
    }

    /// The model configured under this client-facing name, with its index.
    pub fn model(&self, name: &str) -> Option<(usize, &Model)> {
        let index = *self.model_by_name.get(name)?;
        self.models.get(index).map(|model| (index, model))
    }

    /// Every configured model, in name order, with its index.
    pub fn models(&self) -> impl Iterator<Item = (usize, &Model)> {
        self.models.iter().enumerate()
    }

    pub fn upstream(&self, index: usize) -> Option<&Upstream> {
        self.upstreams.get(index)
    }

    /// Every key, in configuration order.
    pub fn keys(&self) -> impl Iterator<Item = &Key> {
        self.keys.iter()
    }

    /// Every limit of every key.
    pub fn limits(&self) -> impl Iterator<Item = &Limit> {
        self.keys.iter().flat_map(|key| key.limits.iter())
    }
}

fn validate_upstreams(
    raw: BTreeMap<String, RawUpstream>,
    cluster_header: &str,
) -> Result<(Vec<Upstream>, HashMap<String, usize>), ConfigError> {
    let mut upstreams = Vec::with_capacity(raw.len());
    let mut index = HashMap::new();
    for (name, upstream) in raw {
        let field = format!("upstreams.{name}");
        if name.is_empty() {
            return Err(ConfigError::new(field, Problem::Empty));
        }
        let cluster = upstream.cluster.unwrap_or_else(|| name.clone());
        checked_header_value(&format!("{field}.cluster"), &cluster)?;
        if let Some(authority) = &upstream.authority {
            checked_header_value(&format!("{field}.authority"), authority)?;
        }
        let mut headers = Vec::with_capacity(upstream.headers.len());
        for (header, value) in upstream.headers {
            let header_field = format!("{field}.headers.{header}");
            let header = checked_header_name(&header_field, &header)?;
            if is_reserved_header(&header, cluster_header) {
                return Err(ConfigError::new(header_field, Problem::ReservedHeaderName(header)));
            }
            checked_header_value(&header_field, &value)?;
            headers.push((header, value));
        }
        let forward_headers = validate_forward_headers(&field, upstream.forward_headers, cluster_header)?;
        let path_prefix = match upstream.path_prefix {
            None => DEFAULT_PATH_PREFIX.to_owned(),
            Some(prefix) => checked_path_prefix(&format!("{field}.path_prefix"), prefix)?,
        };
        if let Some(query) = &upstream.query {
            checked_query(&format!("{field}.query"), query)?;
        }
        index.insert(name.clone(), upstreams.len());
        upstreams.push(Upstream {
            name,
            cluster,
            api: upstream.api,
            authority: upstream.authority,
            headers,
            forward_headers,
            path_prefix,
            query: upstream.query,
        });
    }
    Ok((upstreams, index))
}

/// The path prefix of every model endpoint (`/v1/chat/completions`, `/v1/messages`, ...).
pub const DEFAULT_PATH_PREFIX: &str = "/v1";

/// A path prefix: starts with `/`, no trailing `/`, only URL path characters and `{model}`.
fn checked_path_prefix(field: &str, prefix: String) -> Result<String, ConfigError> {
    let without_placeholder = prefix.replace("{model}", "");
    let is_path_char = |c: char| c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@/%".contains(c);
    let valid = prefix.starts_with('/')
        && (prefix.len() == 1 || !prefix.ends_with('/'))
        && without_placeholder.chars().all(is_path_char);
    if !valid {
        return Err(ConfigError::new(field, Problem::BadPathPrefix(prefix)));
    }
    Ok(if prefix == "/" { String::new() } else { prefix })
}

/// A query string: no `?` or `#`, printable, no spaces.
fn checked_query(field: &str, query: &str) -> Result<(), ConfigError> {
    let valid = !query.is_empty() && query.chars().all(|c| c.is_ascii_graphic() && c != '?' && c != '#');
    if !valid {
        return Err(ConfigError::new(field, Problem::BadQuery(query.to_owned())));
    }
    Ok(())
}

fn is_reserved_header(header: &str, cluster_header: &str) -> bool {
    header.starts_with(GATEWAY_HEADER_PREFIX)
        || header == cluster_header
        || matches!(header, "host" | "content-length" | "transfer-encoding")
}

fn validate_forward_headers(field: &str, names: Vec<String>, cluster_header: &str) -> Result<Vec<String>, ConfigError> {
    let mut checked = Vec::with_capacity(names.len());
    for (i, name) in names.into_iter().enumerate() {
        let name_field = format!("{field}.forward_headers[{i}]");
        let name = checked_header_name(&name_field, &name)?;
        if CREDENTIAL_HEADERS.contains(&name.as_str()) {
            return Err(ConfigError::new(name_field, Problem::CredentialNotForwardable(name)));
        }
        // Usage is read from responses as they pass: they must not be compressed.
        if is_reserved_header(&name, cluster_header) || name == "accept-encoding" {
            return Err(ConfigError::new(name_field, Problem::ReservedHeaderName(name)));
        }
        checked.push(name);
    }
    Ok(checked)
}

fn validate_route(
    field: &str,
    route: RawRoute,
    upstreams: &[Upstream],
    upstream_index: &HashMap<String, usize>,
) -> Result<Vec<Target>, ConfigError> {
    let index_of = |field: String, name: &str| {
        upstream_index
            .get(name)
            .copied()
            .ok_or_else(|| ConfigError::new(field, Problem::UnknownUpstream(name.to_owned())))
    };
    let checked_model = |field: String, model: Option<String>| match model {
        Some(m) if m.is_empty() => Err(ConfigError::new(field, Problem::Empty)),
        other => Ok(other),
    };
    let targets = match (route.upstream, route.targets) {
        (Some(_), Some(_)) => return Err(ConfigError::new(field, Problem::RouteHasBothUpstreamAndTargets)),
        (None, None) => return Err(ConfigError::new(field, Problem::RouteNeedsUpstreamOrTargets)),
        (Some(upstream), None) => {
            let upstream = index_of(format!("{field}.upstream"), &upstream)?;
            let chain =
                validate_chain(field, upstream, route.fallbacks, route.fallback_cluster, upstreams, upstream_index)?;
            vec![Target { upstream, model: checked_model(format!("{field}.model"), route.model)?, weight: 1, chain }]
        }
        (None, Some(targets)) => {
            for (name, present) in [
                ("model", route.model.is_some()),
                ("fallbacks", route.fallbacks.is_some()),
                ("fallback_cluster", route.fallback_cluster.is_some()),
            ] {
                if present {
                    return Err(ConfigError::new(format!("{field}.{name}"), Problem::RouteHasBothUpstreamAndTargets));
                }
            }
            if targets.is_empty() {
                return Err(ConfigError::new(format!("{field}.targets"), Problem::NoTargets));
            }
            let mut checked = Vec::with_capacity(targets.len());
            for (i, t) in targets.into_iter().enumerate() {
                let target_field = format!("{field}.targets[{i}]");
                if t.weight == 0 {
                    return Err(ConfigError::new(format!("{target_field}.weight"), Problem::ZeroWeight));
                }
                let upstream = index_of(format!("{target_field}.upstream"), &t.upstream)?;
                let chain = validate_chain(
                    &target_field,
                    upstream,
                    t.fallbacks,
                    t.fallback_cluster,
                    upstreams,
                    upstream_index,
                )?;
                let earlier_chains = checked.iter().filter_map(|target: &Target| target.chain.as_ref());
                if let Some(chain) =
                    chain.as_ref().filter(|chain| earlier_chains.clone().any(|c| c.cluster == chain.cluster))
                {
                    return Err(ConfigError::new(
                        format!("{target_field}.fallback_cluster"),
                        Problem::FallbackClusterReused(chain.cluster.clone()),
                    ));
                }
                let model = checked_model(format!("{target_field}.model"), t.model)?;
                checked.push(Target { upstream, model, weight: t.weight, chain });
            }
            checked
        }
    };
    Ok(targets)
}

/// Chains that share an aggregate cluster list the same upstreams in the same order: Envoy tries
/// the cluster's members in one order, whatever model the request was for.
fn check_shared_chain_clusters(models: &[Model]) -> Result<(), ConfigError> {
    let mut by_cluster: HashMap<&str, Vec<usize>> = HashMap::new();
    for model in models {
        for (i, target) in model.targets.iter().enumerate() {
            let Some(chain) = &target.chain else { continue };
            let upstreams: Vec<usize> = target.chain_upstreams().collect();
            if by_cluster.get(chain.cluster.as_str()).is_some_and(|earlier| *earlier != upstreams) {
                let field = match model.targets.len() {
                    1 => format!("models.{}.fallback_cluster", model.name),
                    _ => format!("models.{}.targets[{i}].fallback_cluster", model.name),
                };
                return Err(ConfigError::new(field, Problem::ChainsDisagreeOnCluster(chain.cluster.clone())));
            }
            by_cluster.insert(chain.cluster.as_str(), upstreams);
        }
    }
    Ok(())
}

fn validate_quota(raw: Option<raw::RawQuota>) -> Result<QuotaSettings, ConfigError> {
    let Some(raw) = raw else {
        return Ok(QuotaSettings { mode: QuotaMode::Local, domain: DEFAULT_DOMAIN.to_owned() });
    };
    let domain = raw.domain.unwrap_or_else(|| DEFAULT_DOMAIN.to_owned());
    checked_header_value("quota.domain", &domain)?;
    Ok(QuotaSettings { mode: raw.mode, domain })
}

fn validate_cache(raw: RawCache) -> Result<CacheSettings, ConfigError> {
    for (name, value) in [
        ("ttl_seconds", raw.ttl_seconds),
        ("max_entries", u64::from(raw.max_entries)),
        ("max_entry_bytes", u64::from(raw.max_entry_bytes)),
    ] {
        if value == 0 {
            return Err(ConfigError::new(format!("cache.{name}"), Problem::NotPositive));
        }
    }
    Ok(CacheSettings {
        ttl_seconds: raw.ttl_seconds,
        max_entries: raw.max_entries,
        max_entry_bytes: raw.max_entry_bytes,
        scope: raw.scope,
    })
}

/// A valid HTTP header name (RFC 9110 token, no pseudo-headers), lowercased.
fn checked_header_name(field: &str, name: &str) -> Result<String, ConfigError> {
    let is_token_char = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(is_token_char) {
        return Err(ConfigError::new(field, Problem::BadHeaderName(name.to_owned())));
    }
    Ok(name.to_ascii_lowercase())
}

fn checked_header_value(field: &str, value: &str) -> Result<(), ConfigError> {
    if value.is_empty() {
        return Err(ConfigError::new(field, Problem::Empty));
    }
    if value.chars().any(|c| (c.is_control() && c != '\t') || c == '\u{7f}') {
        return Err(ConfigError::new(field, Problem::BadHeaderValue));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
