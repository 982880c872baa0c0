//! The path a request is sent upstream with: the upstream's path prefix (`/v1` unless configured,
//! e.g. `/v1beta/openai` for Gemini or `/openai/deployments/{model}` for Azure OpenAI), the path of
//! the endpoint the provider serves, and the upstream's configured query string. The client's query
//! string is never forwarded: it is no part of either API, and a client could hide a credential in
//! it under any name or encoding.

use crate::config::Upstream;
use crate::endpoint::ModelEndpoint;

/// Where a path prefix takes the model sent upstream.
const MODEL_PLACEHOLDER: &str = "{model}";

/// The upstream path for a request to `endpoint` served by `upstream_model`.
pub fn upstream_path(upstream: &Upstream, endpoint: ModelEndpoint, upstream_model: &str) -> String {
    let mut path = match upstream.path_prefix.contains(MODEL_PLACEHOLDER) {
        true => upstream.path_prefix.replace(MODEL_PLACEHOLDER, &percent_encode(upstream_model)),
        false => upstream.path_prefix.clone(),
    };
    path.push_str(endpoint.path_suffix());
    if let Some(query) = upstream.query.as_deref() {
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
        let azure = "/openai/deployments/gpt-4o%20prod%2F1/chat/completions?api-version=2024-10-21";
        let cases = [
            ("/v1", None, ModelEndpoint::ChatCompletions, "gpt", "/v1/chat/completions"),
            ("/v1", None, ModelEndpoint::Messages, "m", "/v1/messages"),
            ("/v1beta/openai", None, ModelEndpoint::ChatCompletions, "gemini", "/v1beta/openai/chat/completions"),
            (
                "/openai/deployments/{model}",
                Some("api-version=2024-10-21"),
                ModelEndpoint::ChatCompletions,
                "gpt-4o prod/1",
                azure,
            ),
            ("", None, ModelEndpoint::Embeddings, "e", "/embeddings"),
        ];
        for (prefix, query, endpoint, model, expected) in cases {
            assert_eq!(upstream_path(&upstream(prefix, query), endpoint, model), expected, "{prefix}");
        }
    }
}
