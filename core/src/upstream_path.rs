//! The path a request is sent upstream with: the upstream's path prefix (`/v1` unless configured,
//! e.g. `/v1beta/openai` for Gemini or `/openai/deployments/{model}` for Azure OpenAI), the path of
//! the endpoint the provider serves, and the configured query string or else the client's.

use crate::config::Upstream;
use crate::endpoint::ModelEndpoint;

/// The upstream path for a request the client sent to `client_path` (used for its query string).
pub fn upstream_path(upstream: &Upstream, endpoint: ModelEndpoint, upstream_model: &str, client_path: &str) -> String {
    let prefix = upstream.path_prefix.replace("{model}", &percent_encode(upstream_model));
    let client_query = client_path.split_once('?').map(|(_, query)| query);
    let mut path = format!("{prefix}{}", endpoint.path_suffix());
    if let Some(query) = upstream.query.as_deref().or(client_query) {
        path.push('?');
        path.push_str(query);
    }
    path
}

/// Percent-encodes everything but RFC 3986's unreserved characters, so a model name is one segment.
fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Api;

    fn upstream(path_prefix: &str, query: Option<&str>) -> Upstream {
        Upstream {
            name: "u".into(),
            cluster: "u".into(),
            api: Api::OpenAi,
            authority: None,
            headers: Vec::new(),
            forward_headers: Vec::new(),
            path_prefix: path_prefix.into(),
            query: query.map(str::to_owned),
        }
    }

    #[test]
    fn paths_by_prefix_endpoint_and_query() {
        let cases = [
            ("/v1", None, ModelEndpoint::ChatCompletions, "gpt", "/v1/chat/completions", "/v1/chat/completions"),
            ("/v1", None, ModelEndpoint::Messages, "m", "/v1/chat/completions?x=1", "/v1/messages?x=1"),
            (
                "/v1beta/openai",
                None,
                ModelEndpoint::ChatCompletions,
                "gemini",
                "/v1/chat/completions",
                "/v1beta/openai/chat/completions",
            ),
            (
                "/openai/deployments/{model}",
                Some("api-version=2024-10-21"),
                ModelEndpoint::ChatCompletions,
                "gpt-4o prod/1",
                "/v1/chat/completions?api-version=old",
                "/openai/deployments/gpt-4o%20prod%2F1/chat/completions?api-version=2024-10-21",
            ),
            ("", None, ModelEndpoint::Embeddings, "e", "/v1/embeddings", "/embeddings"),
        ];
        for (prefix, query, endpoint, model, client_path, expected) in cases {
            assert_eq!(upstream_path(&upstream(prefix, query), endpoint, model, client_path), expected, "{prefix}");
        }
    }
}
