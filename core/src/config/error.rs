//! Configuration errors: each names the offending field so Envoy's rejection message is actionable.

use std::fmt;

/// A configuration that cannot be loaded, with the path of the field at fault (`keys[0].sha256`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub field: String,
    pub problem: Problem,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Not valid JSON, an unknown field, a missing required field or a value of the wrong type.
    Syntax(String),
    BadKeyId(String),
    DuplicateKeyId(String),
    NoDigest,
    BadDigest,
    DuplicateDigest {
        other_key: String,
    },
    UnknownModelInAllowList(String),
    ZeroLimit,
    /// A limit over 2^32 - 1 with `quota.mode: global`.
    LimitTooLargeForService,
    UnknownUpstream(String),
    RouteNeedsUpstreamOrTargets,
    RouteHasBothUpstreamAndTargets,
    NoTargets,
    ZeroWeight,
    WeightsTooLarge,
    Empty,
    BadHeaderName(String),
    ReservedHeaderName(String),
    BadHeaderValue,
    /// A credential header listed in `forward_headers`: client credentials never reach a provider.
    CredentialNotForwardable(String),
    NotPositive,
    BadPathPrefix(String),
    BadQuery(String),
    NoModels,
    UnknownRetryCondition(String),
    NotAnErrorStatus(u16),
    FallbacksNeedCluster,
    ClusterNeedsFallbacks,
    FallbackClusterIsAProvider(String),
    UpstreamTwiceInChain(String),
    ClusterTwiceInChain(String),
    /// Two chains on one aggregate cluster list different providers.
    ChainsDisagreeOnCluster(String),
    /// A field the document's role needs is missing.
    RequiredField(&'static str),
    /// Two targets of one model name the same aggregate cluster: an attempt could not tell them apart.
    FallbackClusterReused(String),
}

impl ConfigError {
    pub fn new(field: impl Into<String>, problem: Problem) -> Self {
        ConfigError { field: field.into(), problem }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let field = if self.field.is_empty() { "(document)" } else { &self.field };
        write!(f, "invalid ai-gateway configuration at `{field}`: ")?;
        match &self.problem {
            Problem::Syntax(detail) => write!(f, "{detail}"),
            Problem::BadKeyId(id) => write!(f, "key id {id:?} must be 1 to 64 characters of A-Z a-z 0-9 . _ -"),
            Problem::DuplicateKeyId(id) => write!(f, "key id {id:?} is used by more than one key"),
            Problem::NoDigest => write!(f, "give at least one SHA-256 digest"),
            Problem::BadDigest => write!(
                f,
                "not a SHA-256 digest: expected 64 lowercase hex characters (the digest, never the key itself)"
            ),
            Problem::DuplicateDigest { other_key } => {
                write!(f, "this digest already belongs to key {other_key:?}")
            }
            Problem::UnknownModelInAllowList(name) => {
                write!(f, "{name:?} is not a model in `models` (end an entry with `*` to match by prefix)")
            }
            Problem::ZeroLimit => write!(f, "limits must be positive integers"),
            Problem::LimitTooLargeForService => write!(
                f,
                "with `quota.mode: global` a limit is at most 4294967295 (the rate limit service counts each \
                 window in 32 bits)"
            ),
            Problem::UnknownUpstream(name) => write!(f, "no upstream named {name:?} in `upstreams`"),
            Problem::RouteNeedsUpstreamOrTargets => write!(f, "a model route needs `upstream` or `targets`"),
            Problem::RouteHasBothUpstreamAndTargets => {
                write!(f, "a model route has either `upstream` (and `model`) or `targets`, not both")
            }
            Problem::NoTargets => write!(f, "`targets` must not be empty"),
            Problem::ZeroWeight => write!(f, "weights must be positive integers"),
            Problem::WeightsTooLarge => write!(f, "the weights of one route must add up to at most 4294967295"),
            Problem::Empty => write!(f, "must not be empty"),
            Problem::BadHeaderName(name) => write!(f, "{name:?} is not a valid HTTP header name"),
            Problem::ReservedHeaderName(name) => {
                write!(f, "{name:?} is managed by the gateway itself and cannot be configured here")
            }
            Problem::BadHeaderValue => write!(f, "header values must be printable text without line breaks"),
            Problem::CredentialNotForwardable(name) => write!(
                f,
                "{name:?} carries the client's gateway key and is never forwarded; set the provider's credential in `headers`"
            ),
            Problem::NotPositive => write!(f, "must be a positive integer"),
            Problem::BadPathPrefix(prefix) => write!(
                f,
                "{prefix:?} is not a path prefix: start with `/`, no trailing `/`, URL path characters and `{{model}}` only (e.g. \"/v1beta/openai\" or \"/openai/deployments/{{model}}\")"
            ),
            Problem::BadQuery(query) => {
                write!(f, "{query:?} is not a query string: no `?`, `#` or spaces (e.g. \"api-version=2024-10-21\")")
            }
            Problem::NoModels => write!(f, "configure at least one model"),
            Problem::UnknownRetryCondition(condition) => write!(
                f,
                "{condition:?} is not a retry condition; use Envoy's names: 5xx, gateway-error, reset, \
                 reset-before-request, connect-failure, refused-stream, retriable-4xx, envoy-ratelimited, \
                 http3-post-connect-failure (statuses go in `status_codes`)"
            ),
            Problem::NotAnErrorStatus(code) => write!(f, "{code} is not an HTTP error status (400 to 599)"),
            Problem::FallbacksNeedCluster => write!(
                f,
                "a target with `fallbacks` needs `fallback_cluster`: the name of the Envoy aggregate cluster that \
                 lists its provider's cluster and each fallback's, in order"
            ),
            Problem::ClusterNeedsFallbacks => write!(f, "`fallback_cluster` is set but there are no `fallbacks`"),
            Problem::FallbackClusterIsAProvider(cluster) => write!(
                f,
                "{cluster:?} is an upstream's own cluster; name the aggregate cluster of the chain here"
            ),
            Problem::UpstreamTwiceInChain(name) => write!(
                f,
                "the upstream {name:?} is already in this chain: each provider may appear once per chain"
            ),
            Problem::ClusterTwiceInChain(cluster) => write!(
                f,
                "another upstream of this chain uses the cluster {cluster:?}: an attempt is told apart by the \
                 cluster Envoy chose, so give each provider of a chain its own cluster (two clusters may \
                 point at the same address)"
            ),
            Problem::ChainsDisagreeOnCluster(cluster) => write!(
                f,
                "another chain on the aggregate cluster {cluster:?} lists other upstreams: chains that share \
                 an aggregate cluster must list the same upstreams in the same order"
            ),
            Problem::RequiredField(role) => write!(f, "required for the {role} role"),
            Problem::FallbackClusterReused(cluster) => write!(
                f,
                "{cluster:?} is the fallback cluster of another target of this model; give each chain its own"
            ),
        }
    }
}

impl std::error::Error for ConfigError {}
