//! Which client request headers reach a provider: the few it needs to answer, the proxy's own
//! (request id, tracing, Envoy's), and those the upstream allows by name. Everything else, such as
//! `OpenAI-Organization`, `OpenAI-Project` or `Cookie` (they choose who is billed at the provider),
//! is removed. See docs/configuration.md, "Headers sent to providers".

use crate::config::GATEWAY_HEADER_PREFIX;
use crate::ports::HeaderMap;

/// Client headers every provider receives: how to read the request, and which API version and beta
/// features to answer with. They can change the answer, so they are part of the cache key.
pub const API_HEADERS: [&str; 5] = ["content-type", "accept", "anthropic-version", "anthropic-beta", "openai-beta"];

/// Headers of the proxy rather than of the client's request: kept, and never part of a cache key.
const PROXY_HEADERS: [&str; 7] =
    ["content-length", "x-request-id", "traceparent", "tracestate", "b3", "x-ot-span-context", "x-cloud-trace-context"];
/// Prefixes of proxy headers (Envoy's own, the forwarding chain, Zipkin tracing) and the gateway's.
const PROXY_PREFIXES: [&str; 4] = ["x-envoy-", "x-forwarded-", "x-b3-", GATEWAY_HEADER_PREFIX];

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
        || PROXY_HEADERS.contains(&name)
        || PROXY_PREFIXES.iter().any(|prefix| name.starts_with(prefix));
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
    let mut names = headers.names();
    names.sort();
    names.dedup();
    let mut answer_changing = Vec::new();
    for name in names {
        let lower = name.to_ascii_lowercase();
        match treatment(&lower, allowed, cluster_header) {
            Treatment::Proxy => {}
            Treatment::AnswerChanging => {
                answer_changing.extend(headers.get_all(&name).into_iter().map(|value| (lower.clone(), value)))
            }
            Treatment::Removed => headers.remove(&name),
        }
    }
    answer_changing
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
            ("x-envoy-expected-rq-timeout-ms", Treatment::Proxy),
            ("x-forwarded-proto", Treatment::Proxy),
            ("traceparent", Treatment::Proxy),
            ("x-b3-traceid", Treatment::Proxy),
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
