//! Client-facing errors, rendered in the wire format of the API the client speaks (OpenAI or Anthropic).

use serde_json::json;

/// Which provider's wire format a client speaks; decides how errors and local answers look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiFormat {
    OpenAi,
    Anthropic,
}

/// What went wrong, which decides the HTTP status and the error type names in both formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    /// The request body is larger than the gateway accepts (`max_request_body_bytes`).
    PayloadTooLarge,
    UnsupportedMediaType,
    /// A request limit (`requests_per_*`) is exhausted.
    RequestLimit,
    /// A token limit (`tokens_per_*`) is exhausted.
    TokenLimit,
    Internal,
    Unavailable,
}

impl ErrorKind {
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::BadRequest => 400,
            ErrorKind::Unauthorized => 401,
            ErrorKind::Forbidden => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::MethodNotAllowed => 405,
            ErrorKind::PayloadTooLarge => 413,
            ErrorKind::UnsupportedMediaType => 415,
            ErrorKind::RequestLimit | ErrorKind::TokenLimit => 429,
            ErrorKind::Internal => 500,
            ErrorKind::Unavailable => 503,
        }
    }

    fn openai_type(self) -> &'static str {
        match self {
            ErrorKind::RequestLimit => "requests",
            ErrorKind::TokenLimit => "tokens",
            ErrorKind::Internal | ErrorKind::Unavailable => "server_error",
            _ => "invalid_request_error",
        }
    }

    fn anthropic_type(self) -> &'static str {
        match self {
            ErrorKind::BadRequest | ErrorKind::MethodNotAllowed | ErrorKind::UnsupportedMediaType => {
                "invalid_request_error"
            }
            ErrorKind::Unauthorized => "authentication_error",
            ErrorKind::Forbidden => "permission_error",
            ErrorKind::NotFound => "not_found_error",
            ErrorKind::PayloadTooLarge => "request_too_large",
            ErrorKind::RequestLimit | ErrorKind::TokenLimit => "rate_limit_error",
            ErrorKind::Internal => "api_error",
            ErrorKind::Unavailable => "overloaded_error",
        }
    }
}

/// An error answered by the gateway itself. `code` is OpenAI's machine-readable code
/// (`invalid_api_key`, `model_not_found`, ...); `param` names the offending request field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub code: &'static str,
    pub param: Option<&'static str>,
    pub message: String,
}

impl ApiError {
    pub fn new(kind: ErrorKind, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { kind, code, param: None, message: message.into() }
    }

    pub fn with_param(mut self, param: &'static str) -> Self {
        self.param = Some(param);
        self
    }

    pub fn status(&self) -> u16 {
        self.kind.status()
    }

    /// The JSON body in the client's format.
    pub fn body(&self, format: ApiFormat) -> Vec<u8> {
        let value = match format {
            ApiFormat::OpenAi => json!({
                "error": {
                    "message": self.message,
                    "type": self.kind.openai_type(),
                    "param": self.param,
                    "code": self.code,
                }
            }),
            ApiFormat::Anthropic => json!({
                "type": "error",
                "error": { "type": self.kind.anthropic_type(), "message": self.message },
            }),
        };
        value.to_string().into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn statuses_and_type_names_follow_each_api() {
        let cases = [
            (ErrorKind::BadRequest, 400, "invalid_request_error", "invalid_request_error"),
            (ErrorKind::Unauthorized, 401, "invalid_request_error", "authentication_error"),
            (ErrorKind::Forbidden, 403, "invalid_request_error", "permission_error"),
            (ErrorKind::NotFound, 404, "invalid_request_error", "not_found_error"),
            (ErrorKind::PayloadTooLarge, 413, "invalid_request_error", "request_too_large"),
            (ErrorKind::RequestLimit, 429, "requests", "rate_limit_error"),
            (ErrorKind::TokenLimit, 429, "tokens", "rate_limit_error"),
            (ErrorKind::Internal, 500, "server_error", "api_error"),
            (ErrorKind::Unavailable, 503, "server_error", "overloaded_error"),
        ];
        for (kind, status, openai, anthropic) in cases {
            let error = ApiError::new(kind, "some_code", "msg");
            assert_eq!(error.status(), status);
            let o: Value = serde_json::from_slice(&error.body(ApiFormat::OpenAi)).unwrap();
            assert_eq!(o["error"]["type"], openai);
            assert_eq!(o["error"]["code"], "some_code");
            assert_eq!(o["error"]["message"], "msg");
            let a: Value = serde_json::from_slice(&error.body(ApiFormat::Anthropic)).unwrap();
            assert_eq!(a["type"], "error");
            assert_eq!(a["error"]["type"], anthropic);
        }
    }

    #[test]
    fn messages_are_escaped_and_param_is_reported() {
        let error = ApiError::new(ErrorKind::BadRequest, "invalid_json", "bad \"quote\"\n").with_param("model");
        let o: Value = serde_json::from_slice(&error.body(ApiFormat::OpenAi)).unwrap();
        assert_eq!(o["error"]["message"], "bad \"quote\"\n");
        assert_eq!(o["error"]["param"], "model");
    }
}
