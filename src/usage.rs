//! Reads token usage from model responses as they pass, never holding them back: OpenAI
//! chat/completions/embeddings/responses JSON and streams, Anthropic messages JSON and streams.
//!
//! Streams (SSE) are scanned line by line; only `data:` lines that mention `usage` are parsed, and a
//! line split across chunks is carried over (bounded). JSON bodies keep a bounded tail, where the
//! top-level `usage` object of every supported format sits.

use serde::Deserialize;

/// The longest SSE line carried over between chunks; longer lines (large content deltas) are
/// skipped, since usage events are small.
const MAX_CARRY_BYTES: usize = 64 * 1024;
/// How much of the end of a JSON body is kept to find `usage` in.
const JSON_TAIL_BYTES: usize = 64 * 1024;

/// Tokens used by one request, as reported by the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

impl Usage {
    pub fn total(&self) -> u64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }
}

/// The usage fields of every supported format; unknown fields are skipped.
#[derive(Deserialize, Default)]
struct UsageFields {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    total_tokens: Option<u64>,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
}

/// A JSON object that may hold `usage` (an event, or its `message` / `response`).
#[derive(Deserialize)]
struct UsageHolder {
    #[serde(default)]
    usage: Option<UsageFields>,
}

/// A stream event: usage sits at the top (OpenAI chat chunks, Anthropic `message_delta`), in
/// `message` (Anthropic `message_start`) or in `response` (OpenAI Responses `response.completed`).
#[derive(Deserialize)]
struct StreamEvent {
    #[serde(default)]
    usage: Option<UsageFields>,
    #[serde(default)]
    message: Option<UsageHolder>,
    #[serde(default)]
    response: Option<UsageHolder>,
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
}

/// Accumulates usage from a response body fed chunk by chunk.
#[derive(Debug)]
pub struct UsageReader {
    format: BodyFormat,
    /// SSE: the unfinished last line. JSON: the last `JSON_TAIL_BYTES` of the body.
    buffer: Vec<u8>,
    skipping_long_line: bool,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
}

impl UsageReader {
    pub fn new(format: BodyFormat) -> Self {
        UsageReader { format, buffer: Vec::new(), skipping_long_line: false, input_tokens: None, output_tokens: None }
    }

    pub fn feed(&mut self, chunk: &[u8]) {
        match self.format {
            BodyFormat::Json => {
                self.buffer.extend_from_slice(chunk);
                let excess = self.buffer.len().saturating_sub(JSON_TAIL_BYTES);
                self.buffer.drain(..excess);
            }
            BodyFormat::EventStream => self.feed_event_stream(chunk),
        }
    }

    fn feed_event_stream(&mut self, chunk: &[u8]) {
        let mut rest = chunk;
        while let Some(newline) = rest.iter().position(|&b| b == b'\n') {
            let (line, after) = rest.split_at(newline);
            rest = after.get(1..).unwrap_or_default();
            if self.skipping_long_line {
                self.skipping_long_line = false;
            } else if self.buffer.is_empty() {
                self.observe_line(line);
            } else {
                let mut carried = std::mem::take(&mut self.buffer);
                carried.extend_from_slice(line);
                self.observe_line(&carried);
                carried.clear();
                self.buffer = carried;
            }
        }
        if self.skipping_long_line {
            return;
        }
        if self.buffer.len() + rest.len() > MAX_CARRY_BYTES {
            self.buffer.clear();
            self.skipping_long_line = true;
        } else {
            self.buffer.extend_from_slice(rest);
        }
    }

    fn observe_line(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(data) = line.strip_prefix(b"data:") else { return };
        // OpenAI streams with usage enabled carry `"usage":null` on every chunk: parse only lines
        // where usage is an object.
        if !mentions_usage_object(data) {
            return;
        }
        if let Ok(event) = serde_json::from_slice::<StreamEvent>(data) {
            for usage in [event.usage, event.message.and_then(|m| m.usage), event.response.and_then(|r| r.usage)]
                .into_iter()
                .flatten()
            {
                self.record(&usage);
            }
        }
    }

    /// Records reported counts. Counts replace earlier ones, never add up: Anthropic's
    /// `message_delta` carries the cumulative output count.
    fn record(&mut self, usage: &UsageFields) {
        let cached =
            usage.cache_creation_input_tokens.unwrap_or(0).saturating_add(usage.cache_read_input_tokens.unwrap_or(0));
        if let Some(input) = usage.prompt_tokens.or(usage.input_tokens) {
            self.input_tokens = Some(input.saturating_add(cached));
        }
        if let Some(output) = usage.completion_tokens.or(usage.output_tokens) {
            self.output_tokens = Some(output);
        } else if let (Some(total), Some(input)) = (usage.total_tokens, usage.prompt_tokens) {
            self.output_tokens = Some(total.saturating_sub(input));
        }
    }

    /// The usage seen, once the body has ended; `None` if the provider reported none.
    pub fn finish(&mut self) -> Option<Usage> {
        if self.format == BodyFormat::Json {
            let tail = std::mem::take(&mut self.buffer);
            if let Some(usage) = last_usage_object(&tail) {
                self.record(&usage);
            }
        } else if !self.buffer.is_empty() {
            // A last event without a trailing newline.
            let last = std::mem::take(&mut self.buffer);
            self.observe_line(&last);
        }
        if self.input_tokens.is_none() && self.output_tokens.is_none() {
            return None;
        }
        Some(Usage { input_tokens: self.input_tokens.unwrap_or(0), output_tokens: self.output_tokens.unwrap_or(0) })
    }
}

const USAGE_KEY: &[u8] = b"\"usage\"";

/// Whether `"usage"` is followed, past optional whitespace, by `:` and `{` somewhere in the text.
fn mentions_usage_object(text: &[u8]) -> bool {
    let mut rest = text;
    while let Some(at) = rest.windows(USAGE_KEY.len()).position(|w| w == USAGE_KEY) {
        rest = rest.get(at + USAGE_KEY.len()..).unwrap_or_default();
        let mut significant = rest.iter().filter(|b| !b.is_ascii_whitespace());
        if significant.next() == Some(&b':') && significant.next() == Some(&b'{') {
            return true;
        }
    }
    false
}

/// The last `"usage": {...}` in a JSON text that parses as a usage object.
fn last_usage_object(text: &[u8]) -> Option<UsageFields> {
    let mut end = text.len();
    while let Some(start) = text.get(..end)?.windows(USAGE_KEY.len()).rposition(|w| w == USAGE_KEY) {
        end = start;
        let after_key = text.get(start + USAGE_KEY.len()..)?;
        let value_start = after_key.iter().position(|b| !b.is_ascii_whitespace())?;
        let Some(value) = after_key.get(value_start..).and_then(|v| v.strip_prefix(b":")) else { continue };
        let mut deserializer = serde_json::Deserializer::from_slice(value);
        if let Ok(usage) = UsageFields::deserialize(&mut deserializer) {
            return Some(usage);
        }
    }
    None
}

#[cfg(test)]
mod tests;
