//! The formats of a model response body the gateway reads and stores: one JSON document, or a
//! server-sent event stream.

use crate::ports::HeaderMap;

/// What a response's headers say of its body: its format, when the gateway can read it, and its
/// `content-encoding` other than `identity`. A compressed body cannot be read as it passes (the
/// gateway asks for none, by removing `accept-encoding`), so it has no readable format.
pub fn response_body(headers: &mut dyn HeaderMap) -> (Option<BodyFormat>, Option<String>) {
    let encoding = headers.get("content-encoding").filter(|e| !e.trim().eq_ignore_ascii_case("identity"));
    let format = headers
        .get("content-type")
        .and_then(|content_type| BodyFormat::from_content_type(&content_type))
        .filter(|_| encoding.is_none());
    (format, encoding)
}

/// Which body format a response has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    Json,
    EventStream,
}

impl BodyFormat {
    /// From a `content-type`; `None` for bodies that carry no usage.
    pub fn from_content_type(content_type: &str) -> Option<BodyFormat> {
        let media_type = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        match media_type.as_str() {
            "text/event-stream" => Some(BodyFormat::EventStream),
            "application/json" => Some(BodyFormat::Json),
            _ => None,
        }
    }

    /// The `content-type` a body of this format is served with.
    pub fn content_type(self) -> &'static str {
        match self {
            BodyFormat::Json => "application/json",
            BodyFormat::EventStream => "text/event-stream",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_by_media_type() {
        let cases = [
            ("application/json", Some(BodyFormat::Json)),
            ("Application/JSON; charset=utf-8", Some(BodyFormat::Json)),
            ("text/event-stream;charset=utf-8", Some(BodyFormat::EventStream)),
            ("text/plain", None),
            ("", None),
        ];
        for (content_type, expected) in cases {
            assert_eq!(BodyFormat::from_content_type(content_type), expected, "{content_type}");
        }
        assert_eq!(BodyFormat::EventStream.content_type(), "text/event-stream");
    }
}
