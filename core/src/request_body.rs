//! Reads the few request fields the gateway needs (`model`, `stream`) without building a tree of
//! the prompt, and rewrites `model` in place.

use crate::api_error::{ApiError, ErrorKind};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::ops::Range;

/// The fields of a request body that routing and quotas need, with where some sit in the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestFields {
    pub model: String,
    /// Byte range of `model`'s JSON string (quotes included) in the body.
    pub model_span: Range<usize>,
    pub stream: bool,
    /// The output caps the client declared; which one counts depends on the endpoint.
    pub output_caps: OutputCaps,
    /// Number of choices requested (`n`), 1 when absent.
    pub choices: u64,
    pub stream_options: StreamOptions,
}

/// The output-cap fields of the APIs, as the client sent them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutputCaps {
    pub max_tokens: Option<u64>,
    pub max_completion_tokens: Option<u64>,
    pub max_output_tokens: Option<u64>,
}

/// What the body says about `stream_options.include_usage`, and where `stream_options` sits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamOptions {
    Absent,
    IncludesUsage,
    /// Present (an object without `include_usage: true`, or null), at this byte range.
    Other {
        span: Range<usize>,
        object: Option<serde_json::Map<String, serde_json::Value>>,
    },
}

/// Top-level fields only; every other field is skipped by the parser without being stored.
/// A duplicated field is a parse error, so the model routed on is the only one the upstream reads.
#[derive(Deserialize)]
struct TopLevel<'a> {
    #[serde(borrow, default)]
    model: Option<&'a RawValue>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default)]
    max_completion_tokens: Option<u64>,
    #[serde(default)]
    max_output_tokens: Option<u64>,
    #[serde(default)]
    n: Option<u64>,
    /// Kept even when `null` (a plain `Option` would read that as absent, and inserting
    /// `stream_options` again would duplicate the key).
    #[serde(borrow, default, deserialize_with = "present_even_if_null")]
    stream_options: Option<&'a RawValue>,
}

fn present_even_if_null<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(deserializer).map(Some)
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
    // JSON text is UTF-8 (RFC 8259). The parser does not check the strings it skips, so check the
    // whole body first: invalid bytes inside a prompt must not be forwarded.
    let text = std::str::from_utf8(body).map_err(|e| {
        bad_request("invalid_json", format!("The request body is not valid UTF-8 (at byte {}).", e.valid_up_to()))
    })?;
    let top: TopLevel = serde_json::from_str(text)
        .map_err(|e| bad_request("invalid_json", format!("The request body is not valid JSON: {e}")))?;
    let raw_model = top
        .model
        .ok_or_else(|| bad_request("missing_model", "You must provide a model parameter.").with_param("model"))?;
    let model: String = serde_json::from_str(raw_model.get())
        .map_err(|_| bad_request("invalid_model", "`model` must be a string.").with_param("model"))?;
    if model.is_empty() {
        return Err(bad_request("missing_model", "You must provide a model parameter.").with_param("model"));
    }
    let model_span = locate(body, raw_model)?;
    let stream_options = match top.stream_options {
        None => StreamOptions::Absent,
        Some(raw) => {
            let object: Option<serde_json::Map<String, serde_json::Value>> =
                serde_json::from_str(raw.get()).map_err(|_| {
                    bad_request("invalid_stream_options", "`stream_options` must be an object.")
                        .with_param("stream_options")
                })?;
            let includes_usage =
                object.as_ref().and_then(|o| o.get("include_usage")) == Some(&serde_json::Value::Bool(true));
            if includes_usage {
                StreamOptions::IncludesUsage
            } else {
                StreamOptions::Other { span: locate(body, raw)?, object }
            }
        }
    };
    Ok(RequestFields {
        model,
        model_span,
        stream: top.stream.unwrap_or(false),
        output_caps: OutputCaps {
            max_tokens: top.max_tokens,
            max_completion_tokens: top.max_completion_tokens,
            max_output_tokens: top.max_output_tokens,
        },
        choices: top.n.unwrap_or(1).max(1),
        stream_options,
    })
}

fn locate(body: &[u8], raw: &RawValue) -> Result<Range<usize>, ApiError> {
    span_within(body, raw.get().as_bytes())
        .ok_or_else(|| ApiError::new(ErrorKind::Internal, "internal_error", "Could not locate a field in the body."))
}

/// Where `part`, a slice borrowed from `whole`, sits in it.
fn span_within(whole: &[u8], part: &[u8]) -> Option<Range<usize>> {
    let start = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    let end = start.checked_add(part.len())?;
    (whole.get(start..end)? == part).then_some(start..end)
}

/// A replacement of the bytes at `span` (empty for an insertion) with `text`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    pub span: Range<usize>,
    pub text: String,
}

/// Renames the model: replaces `model`'s JSON string.
pub fn set_model(fields: &RequestFields, new_model: &str) -> Edit {
    Edit { span: fields.model_span.clone(), text: serde_json::Value::from(new_model).to_string() }
}

/// Makes the body ask for usage in the stream (`stream_options.include_usage: true`), keeping any
/// other stream options; `None` when it already does.
pub fn include_usage(body: &[u8], fields: &RequestFields) -> Option<Edit> {
    match &fields.stream_options {
        StreamOptions::IncludesUsage => None,
        StreamOptions::Absent => {
            // Right after the opening brace; the object has at least `model`, so a comma follows.
            let brace = body.iter().position(|&b| b == b'{')?;
            Some(Edit { span: brace + 1..brace + 1, text: r#""stream_options":{"include_usage":true},"#.to_owned() })
        }
        StreamOptions::Other { span, object } => {
            let mut object = object.clone().unwrap_or_default();
            object.insert("include_usage".to_owned(), serde_json::Value::Bool(true));
            Some(Edit { span: span.clone(), text: serde_json::Value::Object(object).to_string() })
        }
    }
}

/// The body with the edits applied; their spans must not overlap.
pub fn apply(body: &[u8], mut edits: Vec<Edit>) -> Vec<u8> {
    edits.sort_by_key(|edit| edit.span.start);
    let extra: usize = edits.iter().map(|edit| edit.text.len()).sum();
    let mut out = Vec::with_capacity(body.len() + extra);
    let mut position = 0;
    for edit in edits {
        out.extend_from_slice(body.get(position..edit.span.start).unwrap_or_default());
        out.extend_from_slice(edit.text.as_bytes());
        position = edit.span.end.max(position);
    }
    out.extend_from_slice(body.get(position..).unwrap_or_default());
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
    fn invalid_utf8_anywhere_is_refused() {
        // Found by the request_body fuzz target: invalid bytes inside a skipped field name.
        let body =
            b"{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"conte\x95\x95\x95\x95\x95\x95nt\":\"hi\"}]}";
        let error = read_fields(body).unwrap_err();
        assert_eq!((error.status(), error.code), (400, "invalid_json"));
        assert!(error.message.contains("UTF-8"), "{}", error.message);
        assert_eq!(read_fields(b"{\"model\":\"m\",\"x\":\"\xff\"}").unwrap_err().code, "invalid_json");
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
        let rewritten = apply(body, vec![set_model(&fields, "real-\"model\"")]);
        assert_eq!(
            String::from_utf8(rewritten).unwrap(),
            r#"{"messages":[{"model":"alias"}], "model" : "real-\"model\"","n":1}"#
        );
    }

    #[test]
    fn reads_declared_output_caps_and_choices() {
        type Caps = (Option<u64>, Option<u64>, Option<u64>);
        let cases: &[(&str, Caps, u64)] = &[
            (r#"{"model":"m"}"#, (None, None, None), 1),
            (r#"{"model":"m","max_tokens":100}"#, (Some(100), None, None), 1),
            (r#"{"model":"m","max_tokens":100,"max_completion_tokens":50,"n":3}"#, (Some(100), Some(50), None), 3),
            (r#"{"model":"m","max_output_tokens":70,"n":0}"#, (None, None, Some(70)), 1),
        ];
        for (body, max, choices) in cases {
            let fields = read_fields(body.as_bytes()).unwrap();
            let caps = fields.output_caps;
            let got = (caps.max_tokens, caps.max_completion_tokens, caps.max_output_tokens);
            assert_eq!((got, fields.choices), (*max, *choices), "{body}");
        }
        for body in
            [r#"{"model":"m","max_tokens":-1}"#, r#"{"model":"m","n":"2"}"#, r#"{"model":"m","stream_options":5}"#]
        {
            assert_eq!(read_fields(body.as_bytes()).unwrap_err().status(), 400, "{body}");
        }
    }

    #[test]
    fn stream_usage_is_requested_keeping_other_options() {
        let cases: &[(&str, Option<&str>)] = &[
            (
                r#"{"model":"m","stream":true}"#,
                Some(r#"{"stream_options":{"include_usage":true},"model":"x","stream":true}"#),
            ),
            (
                r#" {"model":"m","stream_options":null}"#,
                Some(r#" {"model":"x","stream_options":{"include_usage":true}}"#),
            ),
            (
                r#"{"model":"m","stream_options":{"include_usage":false,"x":1}}"#,
                Some(r#"{"model":"x","stream_options":{"include_usage":true,"x":1}}"#),
            ),
            (r#"{"model":"m","stream_options":{"include_usage":true}}"#, None),
        ];
        for (body, expected) in cases {
            let fields = read_fields(body.as_bytes()).unwrap();
            let edit = include_usage(body.as_bytes(), &fields);
            assert_eq!(edit.is_some(), expected.is_some(), "{body}");
            let mut edits = vec![set_model(&fields, "x")];
            edits.extend(edit);
            let rewritten = String::from_utf8(apply(body.as_bytes(), edits)).unwrap();
            if let Some(expected) = expected {
                assert_eq!(rewritten, *expected);
                serde_json::from_str::<serde_json::Value>(&rewritten).unwrap();
            }
        }
    }
}
