//! Provider error bodies rewritten into the client's API format, keeping the provider's message.
//!
//! The HTTP status is kept by the caller and decides the error type written, so each SDK raises the
//! class it raises for that status (both official SDKs pick the exception class by status):
//!
//! | status | OpenAI `type`           | Anthropic `type`        |
//! |--------|-------------------------|-------------------------|
//! | 400    | `invalid_request_error` | `invalid_request_error` |
//! | 401    | `invalid_request_error` | `authentication_error`  |
//! | 402    | `invalid_request_error` | `billing_error`         |
//! | 403    | `invalid_request_error` | `permission_error`      |
//! | 404    | `invalid_request_error` | `not_found_error`       |
//! | 413    | `invalid_request_error` | `request_too_large`     |
//! | 429    | `requests`              | `rate_limit_error`      |
//! | 500    | `server_error`          | `api_error`             |
//! | 503    | `server_error`          | `overloaded_error`      |
//! | 504    | `server_error`          | `timeout_error`         |
//! | 529    | `server_error`          | `overloaded_error`      |
//! | other 4xx / 5xx | `invalid_request_error` / `server_error` | `invalid_request_error` / `api_error` |
//!
//! OpenAI type names follow the gateway's own errors ([`crate::api_error`]). An OpenAI client also
//! gets the provider's error type (Anthropic's, or an OpenAI-compatible server's code) as `code`.

use crate::api_error::ApiFormat;
use crate::config::Api;
use serde_json::{json, Value};

/// The most of a non-JSON error body (an HTML page from a proxy, say) kept in the message.
const MAX_TEXT_CHARS: usize = 1000;

/// Rewrites a provider's error response body (`status`, `body`, in `provider`'s format) into the
/// `client`'s format. A body already in the client's format is returned unchanged; bodies of
/// OpenAI-compatible servers (`{"error": "..."}`, `{"message": ...}`, `{"detail": ...}`) and
/// non-JSON bodies are read as well as they can be, the text wrapped as the message.
pub fn provider_error_to_client(status: u16, body: &[u8], provider: Api, client: ApiFormat) -> Vec<u8> {
    let parsed = serde_json::from_slice::<Value>(body).ok();
    if let Some(parsed) = &parsed {
        let same_api =
            matches!((provider, client), (Api::OpenAi, ApiFormat::OpenAi) | (Api::Anthropic, ApiFormat::Anthropic));
        if same_api && in_format(parsed, client) {
            return body.to_vec();
        }
    }
    let (message, provider_type, param) = match &parsed {
        Some(parsed) => read_json_error(parsed),
        None => (None, None, None),
    };
    let message = message.unwrap_or_else(|| text_message(status, body));
    let rendered = match client {
        ApiFormat::OpenAi => json!({
            "error": { "message": message, "type": openai_type(status), "param": param, "code": provider_type },
        }),
        ApiFormat::Anthropic => json!({
            "type": "error",
            "error": { "type": anthropic_type(status), "message": message },
        }),
    };
    rendered.to_string().into_bytes()
}

/// Whether `body` is already an error of `format`.
fn in_format(body: &Value, format: ApiFormat) -> bool {
    let error = body.get("error");
    let has_message = error.and_then(|e| e.get("message")).is_some_and(Value::is_string);
    match format {
        ApiFormat::OpenAi => has_message,
        ApiFormat::Anthropic => has_message && body.get("type").and_then(Value::as_str) == Some("error"),
    }
}

/// (message, provider's error type or code, param) from the error shapes providers answer with.
fn read_json_error(body: &Value) -> (Option<String>, Option<String>, Option<String>) {
    let string = |value: Option<&Value>| value.and_then(Value::as_str).map(str::to_owned);
    match body.get("error") {
        Some(error @ Value::Object(_)) => (
            string(error.get("message")).or_else(|| error.get("message").map(Value::to_string)),
            string(error.get("type")).or_else(|| string(error.get("code"))),
            string(error.get("param")),
        ),
        // Ollama and others: {"error": "model not found"}.
        Some(Value::String(message)) => (Some(message.clone()), None, None),
        _ => {
            // vLLM: {"object": "error", "message", "type", "param", "code"}; FastAPI: {"detail": ...}.
            let message = string(body.get("message"))
                .or_else(|| string(body.get("detail")))
                .or_else(|| body.get("detail").map(Value::to_string));
            (message, string(body.get("type")), string(body.get("param")))
        }
    }
}

/// The message of a body that is not a JSON error: its text, trimmed and bounded.
fn text_message(status: u16, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return format!("The model provider answered with HTTP status {status} and no message.");
    }
    let mut bounded: String = text.chars().take(MAX_TEXT_CHARS).collect();
    if bounded.len() < text.len() {
        bounded.push_str("...");
    }
    bounded
}

fn openai_type(status: u16) -> &'static str {
    match status {
        429 => "requests",
        500.. => "server_error",
        _ => "invalid_request_error",
    }
}

fn anthropic_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        504 => "timeout_error",
        500.. => "api_error",
        _ => "invalid_request_error",
    }
}
