//! Error translation tests, from error bodies the providers and OpenAI-compatible servers answer with.

use super::*;
use crate::api_error::ApiFormat;
use crate::config::Api;
use serde_json::{json, Value};

fn translate(status: u16, body: &str, provider: Api, client: ApiFormat) -> Value {
    serde_json::from_slice(&provider_error_to_client(status, body.as_bytes(), provider, client)).unwrap()
}

#[test]
fn anthropic_errors_for_openai_clients() {
    let cases = [
        (400, "invalid_request_error", "prompt is too long: 215467 tokens > 200000 maximum", "invalid_request_error"),
        (401, "authentication_error", "invalid x-api-key", "invalid_request_error"),
        (
            403,
            "permission_error",
            "Your API key does not have permission to use the specified resource.",
            "invalid_request_error",
        ),
        (404, "not_found_error", "model: claude-3-opus-latest", "invalid_request_error"),
        (413, "request_too_large", "Request exceeds the maximum allowed number of bytes.", "invalid_request_error"),
        (
            429,
            "rate_limit_error",
            "This request would exceed the rate limit for your organization of 50 input tokens per minute.",
            "requests",
        ),
        (500, "api_error", "Internal server error", "server_error"),
        (529, "overloaded_error", "Overloaded", "server_error"),
    ];
    for (status, anthropic_type, message, openai_type) in cases {
        let body = json!({
            "type": "error",
            "error": { "type": anthropic_type, "message": message },
            "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy",
        });
        assert_eq!(
            translate(status, &body.to_string(), Api::Anthropic, ApiFormat::OpenAi),
            json!({ "error": { "message": message, "type": openai_type, "param": null, "code": anthropic_type } }),
            "{status}"
        );
    }
}

#[test]
fn openai_errors_for_anthropic_clients() {
    let cases = [
        (
            400,
            json!({ "message": "This model's maximum context length is 128000 tokens. However, your messages resulted in 130532 tokens. Please reduce the length of the messages.", "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded" }),
            "invalid_request_error",
        ),
        (
            401,
            json!({ "message": "Incorrect API key provided: sk-proj-********************abcd. You can find your API key at https://platform.openai.com/account/api-keys.", "type": "invalid_request_error", "param": null, "code": "invalid_api_key" }),
            "authentication_error",
        ),
        (
            402,
            json!({ "message": "Payment required.", "type": "billing", "param": null, "code": null }),
            "billing_error",
        ),
        (
            403,
            json!({ "message": "Country, region, or territory not supported", "type": "request_forbidden", "param": null, "code": "unsupported_country_region_territory" }),
            "permission_error",
        ),
        (
            404,
            json!({ "message": "The model `gpt-5-turbo` does not exist or you do not have access to it.", "type": "invalid_request_error", "param": null, "code": "model_not_found" }),
            "not_found_error",
        ),
        (
            429,
            json!({ "message": "Rate limit reached for gpt-4o in organization org-abc on tokens per min (TPM): Limit 30000, Used 29000, Requested 1500.", "type": "tokens", "param": null, "code": "rate_limit_exceeded" }),
            "rate_limit_error",
        ),
        (
            500,
            json!({ "message": "The server had an error while processing your request. Sorry about that!", "type": "server_error", "param": null, "code": null }),
            "api_error",
        ),
        (
            503,
            json!({ "message": "The engine is currently overloaded, please try again later", "type": "server_error", "param": null, "code": null }),
            "overloaded_error",
        ),
        (
            504,
            json!({ "message": "Gateway timeout.", "type": "server_error", "param": null, "code": null }),
            "timeout_error",
        ),
        (
            422,
            json!({ "message": "Unprocessable.", "type": "invalid_request_error", "param": null, "code": null }),
            "invalid_request_error",
        ),
        (502, json!({ "message": "Bad gateway.", "type": "server_error", "param": null, "code": null }), "api_error"),
    ];
    for (status, error, anthropic_type) in cases {
        let body = json!({ "error": error.clone() }).to_string();
        assert_eq!(
            translate(status, &body, Api::OpenAi, ApiFormat::Anthropic),
            json!({ "type": "error", "error": { "type": anthropic_type, "message": error["message"] } }),
            "{status}"
        );
    }
}

#[test]
fn openai_compatible_server_shapes() {
    let cases = [
        // Ollama.
        (
            404,
            r#"{"error":"model \"llama9\" not found, try pulling it first"}"#,
            "model \"llama9\" not found, try pulling it first",
        ),
        // vLLM.
        (
            400,
            r#"{"object":"error","message":"This model's maximum context length is 8192 tokens.","type":"BadRequestError","param":null,"code":400}"#,
            "This model's maximum context length is 8192 tokens.",
        ),
        // FastAPI validation errors.
        (422, r#"{"detail":"Not authenticated"}"#, "Not authenticated"),
        (
            422,
            r#"{"detail":[{"loc":["body","messages"],"msg":"field required"}]}"#,
            r#"[{"loc":["body","messages"],"msg":"field required"}]"#,
        ),
        // A proxy's HTML page, and an empty body.
        (
            502,
            "<html><body><h1>502 Bad Gateway</h1></body></html>\n",
            "<html><body><h1>502 Bad Gateway</h1></body></html>",
        ),
        (503, "", "The model provider answered with HTTP status 503 and no message."),
        (
            500,
            "upstream connect error or disconnect/reset before headers",
            "upstream connect error or disconnect/reset before headers",
        ),
    ];
    for (status, body, message) in cases {
        let anthropic = translate(status, body, Api::OpenAi, ApiFormat::Anthropic);
        assert_eq!(anthropic["type"], "error", "{body}");
        assert_eq!(anthropic["error"]["message"], message, "{body}");
        let openai = translate(status, body, Api::OpenAi, ApiFormat::OpenAi);
        assert_eq!(openai["error"]["message"], message, "{body}");
    }
    let vllm = r#"{"object":"error","message":"bad","type":"BadRequestError","param":"temperature","code":400}"#;
    let openai = translate(400, vllm, Api::OpenAi, ApiFormat::OpenAi);
    assert_eq!(
        openai,
        json!({ "error": { "message": "bad", "type": "invalid_request_error", "param": "temperature", "code": "BadRequestError" } })
    );
}

#[test]
fn long_text_bodies_are_bounded() {
    let body = "é".repeat(5000);
    let out = translate(500, &body, Api::Anthropic, ApiFormat::OpenAi);
    let message = out["error"]["message"].as_str().unwrap();
    assert_eq!(message.chars().count(), 1003);
    assert!(message.ends_with("..."));
}

#[test]
fn errors_already_in_the_client_format_pass_unchanged() {
    let openai = r#"{"error":{"message":"Invalid 'messages[0].role'","type":"invalid_request_error","param":"messages[0].role","code":"invalid_value"}}"#;
    assert_eq!(provider_error_to_client(400, openai.as_bytes(), Api::OpenAi, ApiFormat::OpenAi), openai.as_bytes());
    let anthropic =
        r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_1"}"#;
    assert_eq!(
        provider_error_to_client(529, anthropic.as_bytes(), Api::Anthropic, ApiFormat::Anthropic),
        anthropic.as_bytes()
    );
    // Same API, another shape: normalized.
    let ollama = translate(404, r#"{"error":"model not found"}"#, Api::OpenAi, ApiFormat::OpenAi);
    assert_eq!(
        ollama,
        json!({ "error": { "message": "model not found", "type": "invalid_request_error", "param": null, "code": null } })
    );
}
