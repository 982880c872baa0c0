//! Test-side helpers over the shared fixture: an HTTP client and request shortcuts.

#![allow(dead_code)]

pub use ai_gateway_integration::fixture::*;
use serde_json::Value;

/// The shared fixture plus an HTTP client.
pub struct TestGateway {
    pub gateway: Gateway,
    pub http: reqwest::Client,
}

impl std::ops::Deref for TestGateway {
    type Target = Gateway;
    fn deref(&self) -> &Gateway {
        &self.gateway
    }
}

impl TestGateway {
    pub async fn start() -> TestGateway {
        TestGateway::start_with(filter_config()).await
    }

    pub async fn start_with(config: Value) -> TestGateway {
        let gateway = Gateway::start_with(config).await.unwrap_or_else(|e| panic!("{e}"));
        TestGateway { gateway, http: reqwest::Client::new() }
    }

    /// POSTs JSON with an OpenAI-style bearer key; returns status, headers and body.
    pub async fn post(&self, path: &str, key: &str, body: &Value) -> (u16, reqwest::header::HeaderMap, Value) {
        let response = self.http.post(self.url(path)).bearer_auth(key).json(body).send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        (status, headers, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// POSTs an Anthropic Messages request the way the Anthropic SDK does.
    pub async fn post_messages(&self, key: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(self.url("/v1/messages"))
            .header("x-api-key", key)
            .header("anthropic-version", "2023-06-01")
            .json(body)
            .send()
            .await
            .unwrap()
    }
}
