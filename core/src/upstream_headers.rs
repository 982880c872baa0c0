//! Which client request headers reach a provider: the few it needs to answer, the proxy's own
//! (request id, tracing, Envoy's), and those the upstream allows by name. Everything else, such as
//! `OpenAI-Organization`, `OpenAI-Project` or `Cookie` (they choose who is billed at the provider),
//! is removed. See docs/configuration.md, "Headers sent to providers".

use crate::config::GATEWAY_HEADER_PREFIX;
use crate::ports::{has_prefix, HeaderMap};

/// Client headers every provider receives: how to read the request, and which API version and beta
/// features to answer with. They can change the answer, so they are part of the cache key.
pub const API_HEADERS: [&str; 5] = ["content-type", "accept", "anthropic-version", "anthropic-beta", "openai-beta"];

/// Headers of the proxy rather than of the client's request: kept, and never part of a cache key.
/// Exact names only: a client cannot pass `x-forwarded-authorization` or `x-envoy-anything` along by
/// giving it a familiar prefix.
const PROXY_HEADERS: [&str; 14] = [
    "content-length",
    "x-request-id",
    "x-forwarded-for",
    "x-forwarded-proto",
    "traceparent",
    "tracestate",
    "b3",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "x-ot-span-context",
    "x-cloud-trace-context",
];

/// What happens to one client request header on its way to a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Treatment {
    /// Forwarded, and it may change the answer (it belongs in the cache key).
    AnswerChanging,
    /// Forwarded; the proxy's business (pseudo-headers, request id, tracing).
    Proxy,
    Removed,
}

/// How `name` (lowercase) is treated for an upstream that forwards `allowed` besides the defaults.
/// `cluster_header` is the gateway's routing header.
pub fn treatment(name: &str, allowed: &[String], cluster_header: &str) -> Treatment {
    let is_proxy_header = name.starts_with(':')
        || name == cluster_header
        || name.starts_with(GATEWAY_HEADER_PREFIX)
        || PROXY_HEADERS.contains(&name);
    if is_proxy_header {
        Treatment::Proxy
    } else if API_HEADERS.contains(&name) || allowed.iter().any(|a| a == name) {
        Treatment::AnswerChanging
    } else {
        Treatment::Removed
    }
}

/// Removes every header the upstream must not see. Returns the forwarded headers that may change the
/// answer, as `(name, value)` sorted by name (repeats kept in order), for the cache key.
pub fn apply(headers: &mut dyn HeaderMap, allowed: &[String], cluster_header: &str) -> Vec<(String, String)> {
    // Names are lowercase as Envoy keeps them; another spelling is lowercased before it is judged.
    let judged = |name: &str| match name.bytes().any(|b| b.is_ascii_uppercase()) {
        true => treatment(&name.to_ascii_lowercase(), allowed, cluster_header),
        false => treatment(name, allowed, cluster_header),
    };
    let mut names = headers.names_where(&mut |name| judged(name) != Treatment::Proxy);
    names.sort();
    names.dedup();
    let mut answer_changing = Vec::new();
    for name in names {
        match judged(&name) {
            Treatment::Proxy => {}
            Treatment::AnswerChanging => {
                let lower = name.to_ascii_lowercase();
                answer_changing.extend(headers.get_all(&name).into_iter().map(|value| (lower.clone(), value)))
            }
            Treatment::Removed => headers.remove(&name),
        }
    }
    answer_changing
}

/// Provider response headers a client never receives: they describe the provider account the
/// gateway uses (its rate limits, its organization) or set its cookies. The gateway's own
/// `x-ratelimit-*` headers describe the client's key instead.
pub fn provider_headers_to_remove(headers: &mut dyn HeaderMap) -> Vec<String> {
    const PREFIXES: [&str; 7] = [
        "x-ai-gateway-",
        "x-ratelimit",
        "ratelimit",
        "anthropic-ratelimit",
        "openai-organization",
        "openai-project",
        "anthropic-organization",
    ];
    // `x-envoy-ratelimited` from a provider (one behind an Envoy) would make Envoy's retry policy
    // skip its 429, ending a fallback chain: the upstream filter removes it before the router sees
    // it, and no client ever sees it.
    const NAMES: [&str; 3] = ["set-cookie", "set-cookie2", "x-envoy-ratelimited"];
    let mut removed = headers.names_where(&mut |name| {
        PREFIXES.iter().any(|prefix| has_prefix(name, prefix)) || NAMES.iter().any(|n| name.eq_ignore_ascii_case(n))
    });
    removed.sort();
    removed.dedup();
    removed
}

/// Removes from a provider's response trailers what [`provider_headers_to_remove`] removes from its
/// headers: trailers reach the client too (HTTP/2, or HTTP/1.1 with trailers enabled).
pub fn strip_provider_trailers(trailers: &mut dyn HeaderMap) {
    for name in provider_headers_to_remove(trailers) {
        trailers.remove(&name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeHeaders;

    #[test]
    fn treats_each_header_by_its_role() {
        let allowed = vec!["openai-organization".to_owned()];
        let cases = [
            (":path", Treatment::Proxy),
            ("x-request-id", Treatment::Proxy),
            ("x-forwarded-proto", Treatment::Proxy),
            ("traceparent", Treatment::Proxy),
            ("x-b3-traceid", Treatment::Proxy),
            ("x-envoy-original-path", Treatment::Removed),
            ("x-forwarded-authorization", Treatment::Removed),
            ("x-forwarded-user", Treatment::Removed),
            ("x-b3-anything", Treatment::Removed),
            ("x-ai-gateway-key-id", Treatment::Proxy),
            ("route-to", Treatment::Proxy),
            ("content-length", Treatment::Proxy),
            ("content-type", Treatment::AnswerChanging),
            ("anthropic-beta", Treatment::AnswerChanging),
            ("openai-organization", Treatment::AnswerChanging),
            ("openai-project", Treatment::Removed),
            ("cookie", Treatment::Removed),
            ("user-agent", Treatment::Removed),
            ("x-stainless-os", Treatment::Removed),
        ];
        for (name, expected) in cases {
            assert_eq!(treatment(name, &allowed, "route-to"), expected, "{name}");
        }
    }

    #[test]
    fn provider_account_headers_never_reach_the_client() {
        let names = [
            "x-ratelimit-remaining-requests",
            "anthropic-ratelimit-tokens-remaining",
            "openai-organization",
            "openai-organization-id",
            "ratelimit-policy",
            "Set-Cookie",
            "set-cookie",
            "retry-after",
            "x-request-id",
            "content-type",
            "x-envoy-ratelimited",
        ];
        let mut headers = FakeHeaders::new(&names.map(|name| (name, "v")));
        let removed = provider_headers_to_remove(&mut headers);
        let expected = [
            "Set-Cookie",
            "anthropic-ratelimit-tokens-remaining",
            "openai-organization",
            "openai-organization-id",
            "ratelimit-policy",
            "set-cookie",
            "x-envoy-ratelimited",
            "x-ratelimit-remaining-requests",
        ];
        assert_eq!(removed, expected);
        strip_provider_trailers(&mut headers);
        let left: Vec<String> = headers.names();
        assert_eq!(left, ["retry-after", "x-request-id", "content-type"], "trailers are stripped alike");
    }

    #[test]
    fn removes_what_the_upstream_must_not_see_and_returns_the_answer_changing_rest() {
        let mut headers = FakeHeaders::new(&[
            (":path", "/v1/messages"),
            ("anthropic-beta", "b2"),
            ("cookie", "session=1"),
            ("openai-project", "proj_other"),
            ("anthropic-beta", "b1"),
            ("content-type", "application/json"),
            ("x-request-id", "abc"),
        ]);
        let forwarded = apply(&mut headers, &[], "x-ai-gateway-cluster");
        assert_eq!(
            forwarded,
            [
                ("anthropic-beta".to_owned(), "b2".to_owned()),
                ("anthropic-beta".to_owned(), "b1".to_owned()),
                ("content-type".to_owned(), "application/json".to_owned()),
            ]
        );
        let names = headers.names();
        assert_eq!(names, [":path", "anthropic-beta", "anthropic-beta", "content-type", "x-request-id"]);
    }
}
