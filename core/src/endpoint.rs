//! Classifies a request's method and path into the endpoint the gateway serves, and its API format.

use crate::api_error::ApiFormat;
use crate::config::Api;
use crate::usage::ResponseApi;

/// The model-serving endpoints that are routed upstream after the body is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelEndpoint {
    ChatCompletions,
    Completions,
    Embeddings,
    Responses,
    Messages,
}

impl ModelEndpoint {
    pub fn format(self) -> ApiFormat {
        match self {
            ModelEndpoint::Messages => ApiFormat::Anthropic,
            _ => ApiFormat::OpenAi,
        }
    }

    /// The endpoint's path after the `/v1` prefix.
    pub fn path_suffix(self) -> &'static str {
        match self {
            ModelEndpoint::ChatCompletions => "/chat/completions",
            ModelEndpoint::Completions => "/completions",
            ModelEndpoint::Embeddings => "/embeddings",
            ModelEndpoint::Responses => "/responses",
            ModelEndpoint::Messages => "/messages",
        }
    }

    /// The API a provider must speak to serve this endpoint.
    pub fn api(self) -> Api {
        match self {
            ModelEndpoint::Messages => Api::Anthropic,
            _ => Api::OpenAi,
        }
    }

    /// How the provider's answer is read: where usage sits, what ends a stream.
    pub fn response_api(self) -> ResponseApi {
        match self {
            ModelEndpoint::ChatCompletions => ResponseApi::ChatCompletions,
            ModelEndpoint::Completions => ResponseApi::Completions,
            ModelEndpoint::Embeddings => ResponseApi::Embeddings,
            ModelEndpoint::Responses => ResponseApi::Responses,
            ModelEndpoint::Messages => ResponseApi::Messages,
        }
    }
}

/// What the gateway does with a request, decided from its method and path alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Model(ModelEndpoint),
    ListModels,
    RetrieveModel(String),
    MethodNotAllowed { allow: &'static str },
    NotFound,
}

/// A classified request: the endpoint and the format its answers and errors use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Classified {
    pub endpoint: Endpoint,
    pub format: ApiFormat,
}

/// Classifies `method` and `path` (query string ignored). `anthropic_client` is true when the
/// request carries `anthropic-version`, which Anthropic SDKs always send: shared paths such as
/// `/v1/models` then answer in Anthropic's format.
pub fn classify(method: &str, path: &str, anthropic_client: bool) -> Classified {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let model_endpoint = match path {
        "/v1/chat/completions" => Some(ModelEndpoint::ChatCompletions),
        "/v1/completions" => Some(ModelEndpoint::Completions),
        "/v1/embeddings" => Some(ModelEndpoint::Embeddings),
        "/v1/responses" => Some(ModelEndpoint::Responses),
        "/v1/messages" => Some(ModelEndpoint::Messages),
        _ => None,
    };
    let shared_format =
        if anthropic_client || path.starts_with("/v1/messages") { ApiFormat::Anthropic } else { ApiFormat::OpenAi };
    if let Some(model_endpoint) = model_endpoint {
        let endpoint = if method == "POST" {
            Endpoint::Model(model_endpoint)
        } else {
            Endpoint::MethodNotAllowed { allow: "POST" }
        };
        return Classified { endpoint, format: model_endpoint.format() };
    }
    let endpoint = match (path, path.strip_prefix("/v1/models/")) {
        ("/v1/models", _) | (_, Some("")) => get_only(method, Endpoint::ListModels),
        (_, Some(id)) if !id.contains('/') => get_only(method, Endpoint::RetrieveModel(id.to_owned())),
        _ => Endpoint::NotFound,
    };
    Classified { endpoint, format: shared_format }
}

fn get_only(method: &str, endpoint: Endpoint) -> Endpoint {
    if method == "GET" {
        endpoint
    } else {
        Endpoint::MethodNotAllowed { allow: "GET" }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ApiFormat::{Anthropic, OpenAi};

    #[test]
    fn classifies_method_path_and_format() {
        let cases: &[(&str, &str, bool, Endpoint, ApiFormat)] = &[
            ("POST", "/v1/chat/completions", false, Endpoint::Model(ModelEndpoint::ChatCompletions), OpenAi),
            ("POST", "/v1/chat/completions?x=1", false, Endpoint::Model(ModelEndpoint::ChatCompletions), OpenAi),
            ("POST", "/v1/completions", false, Endpoint::Model(ModelEndpoint::Completions), OpenAi),
            ("POST", "/v1/embeddings", false, Endpoint::Model(ModelEndpoint::Embeddings), OpenAi),
            ("POST", "/v1/responses", false, Endpoint::Model(ModelEndpoint::Responses), OpenAi),
            ("POST", "/v1/messages", true, Endpoint::Model(ModelEndpoint::Messages), Anthropic),
            ("POST", "/v1/messages", false, Endpoint::Model(ModelEndpoint::Messages), Anthropic),
            ("GET", "/v1/chat/completions", false, Endpoint::MethodNotAllowed { allow: "POST" }, OpenAi),
            ("GET", "/v1/models", false, Endpoint::ListModels, OpenAi),
            ("GET", "/v1/models", true, Endpoint::ListModels, Anthropic),
            ("GET", "/v1/models/gpt-4o", false, Endpoint::RetrieveModel("gpt-4o".into()), OpenAi),
            ("POST", "/v1/models", false, Endpoint::MethodNotAllowed { allow: "GET" }, OpenAi),
            ("GET", "/v1/models/a/b", false, Endpoint::NotFound, OpenAi),
            ("POST", "/v1/messages/count_tokens", false, Endpoint::NotFound, Anthropic),
            ("POST", "/v2/chat/completions", false, Endpoint::NotFound, OpenAi),
            ("POST", "/V1/CHAT/COMPLETIONS", false, Endpoint::NotFound, OpenAi),
            ("POST", "", false, Endpoint::NotFound, OpenAi),
        ];
        for (method, path, anthropic, endpoint, format) in cases {
            let got = classify(method, path, *anthropic);
            assert_eq!(&got.endpoint, endpoint, "{method} {path}");
            assert_eq!(got.format, *format, "{method} {path}");
        }
    }
}
