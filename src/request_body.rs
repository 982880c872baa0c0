//! Reads the few request fields the gateway needs (`model`, `stream`) without building a tree of
//! the prompt, and rewrites `model` in place.

use crate::api_error::{ApiError, ErrorKind};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::ops::Range;

/// The fields of a request body that routing needs, with where `model`'s value sits in the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestFields {
    pub model: String,
    /// Byte range of `model`'s JSON string (quotes included) in the body.
    pub model_span: Range<usize>,
    pub stream: bool,
}

/// Top-level fields only; every other field is skipped by the parser without being stored.
/// A duplicated `model` or `stream` is a parse error, so the model routed on is the only one.
#[derive(Deserialize)]
struct TopLevel<'a> {
    #[serde(borrow, default)]
    model: Option<&'a RawValue>,
    #[serde(default)]
    stream: Option<bool>,
}

fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorKind::BadRequest, code, message)
}

pub fn read_fields(body: &[u8]) -> Result<RequestFields, ApiError> {
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        None => return Err(bad_request("invalid_json", "The request body is empty; send a JSON object.")),
        // serde would also read a struct from an array (`["gpt-4o"]`): only an object is a request.
        Some(b'{') => {}
        Some(_) => return Err(bad_request("invalid_json", "The request body must be a JSON object.")),
    }
    let top: TopLevel = serde_json::from_slice(body)
        .map_err(|e| bad_request("invalid_json", format!("The request body is not valid JSON: {e}")))?;
    let raw_model = top
        .model
        .ok_or_else(|| bad_request("missing_model", "You must provide a model parameter.").with_param("model"))?;
    let model: String = serde_json::from_str(raw_model.get())
        .map_err(|_| bad_request("invalid_model", "`model` must be a string.").with_param("model"))?;
    if model.is_empty() {
        return Err(bad_request("missing_model", "You must provide a model parameter.").with_param("model"));
    }
    let model_span = span_within(body, raw_model.get().as_bytes())
        .ok_or_else(|| ApiError::new(ErrorKind::Internal, "internal_error", "Could not locate `model` in the body."))?;
    Ok(RequestFields { model, model_span, stream: top.stream.unwrap_or(false) })
}

/// Where `part`, a slice borrowed from `whole`, sits in it.
fn span_within(whole: &[u8], part: &[u8]) -> Option<Range<usize>> {
    let start = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    let end = start.checked_add(part.len())?;
    (whole.get(start..end)? == part).then_some(start..end)
}

/// The body with the JSON string at `span` replaced by `new_model`.
pub fn with_model(body: &[u8], span: Range<usize>, new_model: &str) -> Vec<u8> {
    let encoded = serde_json::Value::from(new_model).to_string();
    let (before, after) = (body.get(..span.start).unwrap_or_default(), body.get(span.end..).unwrap_or_default());
    let mut out = Vec::with_capacity(before.len() + encoded.len() + after.len());
    out.extend_from_slice(before);
    out.extend_from_slice(encoded.as_bytes());
    out.extend_from_slice(after);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_model_and_stream() {
        let cases: &[(&str, &str, bool)] = &[
            (r#"{"model":"gpt-4o","messages":[]}"#, "gpt-4o", false),
            (r#"{"messages":[{"role":"user","content":"{\"model\":\"x\"}"}],"model":"m","stream":true}"#, "m", true),
            (r#" { "stream" : false , "model" : "a\"b\u00e9" } "#, "a\"bé", false),
            (r#"{"model":"m","nested":{"model":"other","stream":"x"}}"#, "m", false),
        ];
        for (body, model, stream) in cases {
            let fields = read_fields(body.as_bytes()).unwrap();
            assert_eq!((fields.model.as_str(), fields.stream), (*model, *stream), "{body}");
            let raw = &body.as_bytes()[fields.model_span.clone()];
            assert_eq!(serde_json::from_slice::<String>(raw).unwrap(), *model);
        }
    }

    #[test]
    fn rejects_what_cannot_be_routed() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "invalid_json"),
            (b"  \n", "invalid_json"),
            (b"{", "invalid_json"),
            (b"[1,2]", "invalid_json"),
            (b"[]", "invalid_json"),
            (br#"["gpt-4o"]"#, "invalid_json"),
            (b" 42", "invalid_json"),
            (b"\"model\"", "invalid_json"),
            (b"{\"model\":\"a\"} x", "invalid_json"),
            (b"{\"model\":\"a\xff\"}", "invalid_json"),
            (br#"{"model":"a","model":"b"}"#, "invalid_json"),
            (br#"{"model":"a","stream":"yes"}"#, "invalid_json"),
            (br#"{"messages":[]}"#, "missing_model"),
            (br#"{"model":null}"#, "missing_model"),
            (br#"{"model":""}"#, "missing_model"),
            (br#"{"model":42}"#, "invalid_model"),
            (br#"{"model":["a"]}"#, "invalid_model"),
        ];
        for (body, code) in cases {
            let error = read_fields(body).unwrap_err();
            assert_eq!((error.status(), error.code), (400, *code), "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn deep_nesting_is_skipped_without_recursion() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let body = format!("{{\"model\":\"m\",\"x\":{deep}}}");
        assert_eq!(read_fields(body.as_bytes()).unwrap().model, "m");
        let body = format!("{{\"model\":{deep}}}");
        assert_eq!(read_fields(body.as_bytes()).unwrap_err().code, "invalid_model");
    }

    #[test]
    fn rewrites_only_the_top_level_model() {
        let body = br#"{"messages":[{"model":"alias"}], "model" : "alias","n":1}"#;
        let fields = read_fields(body).unwrap();
        let rewritten = with_model(body, fields.model_span, "real-\"model\"");
        assert_eq!(
            String::from_utf8(rewritten).unwrap(),
            r#"{"messages":[{"model":"alias"}], "model" : "real-\"model\"","n":1}"#
        );
    }
}
