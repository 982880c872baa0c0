//! Reads token usage, and whether the body ended by its own protocol, from model responses as they
//! pass, never holding them back: OpenAI chat/completions/embeddings/responses and Anthropic
//! messages, as JSON bodies and as event streams.
//!
//! The body is read as a stream whatever the size of its events: a JSON scanner (`json_scan`) copies
//! only the `usage` objects and `type` strings at the paths that count (each within a bound), and an
//! event-stream parser (`sse`) hands it each event's data as it arrives. The reader's memory is
//! bounded by a constant (`USAGE_CAPTURE_BYTES` plus a few hundred bytes of state).

mod bounded;
mod json_scan;
mod sse;

use std::ops::ControlFlow;

use serde::Deserialize;

use crate::body_format::BodyFormat;

use bounded::BoundedBytes;
use json_scan::{DocumentState, Findings, JsonScanner, Key, UsagePaths};
use sse::{EventSink, SseParser};

/// The most a reader holds on the heap, whatever it is fed: its copy of one `usage` object.
#[cfg(any(test, feature = "test-support"))]
pub const MAX_HEAP_BYTES: usize = json_scan::USAGE_CAPTURE_BYTES;

/// The data of the event that ends an OpenAI chat or completions stream.
const DONE_MARKER: &[u8] = b"[DONE]";

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

/// Token counts as reported so far; `None` where the provider reported none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Counts {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
}

impl Counts {
    const NONE: Counts = Counts { input_tokens: None, output_tokens: None };

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

    /// Takes the counts `later` has, as `record` would have.
    fn update(&mut self, later: Counts) {
        self.input_tokens = later.input_tokens.or(self.input_tokens);
        self.output_tokens = later.output_tokens.or(self.output_tokens);
    }

    fn usage(&self) -> Option<Usage> {
        if self.input_tokens.is_none() && self.output_tokens.is_none() {
            return None;
        }
        Some(Usage { input_tokens: self.input_tokens.unwrap_or(0), output_tokens: self.output_tokens.unwrap_or(0) })
    }
}

/// The API a response speaks: decides where usage sits and what marks the end of the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseApi {
    ChatCompletions,
    Completions,
    Embeddings,
    Responses,
    Messages,
}

impl ResponseApi {
    /// Where the events of a stream of this API carry usage.
    fn stream_usage_paths(self) -> UsagePaths {
        match self {
            ResponseApi::ChatCompletions | ResponseApi::Completions | ResponseApi::Embeddings => {
                UsagePaths { top_level: true, under: None }
            }
            // `response.completed` / `response.incomplete` carry it in `response`.
            ResponseApi::Responses => UsagePaths { top_level: false, under: Some(Key::Response) },
            // `message_start` carries it in `message`, `message_delta` at the top.
            ResponseApi::Messages => UsagePaths { top_level: true, under: Some(Key::Message) },
        }
    }

    /// How a dispatched event ends the stream: `data_is_done_marker` when its data is exactly
    /// `[DONE]`, `event` when its data is a whole JSON document.
    fn stream_end(self, data_is_done_marker: bool, event: Option<&Findings>) -> Option<BodyEnd> {
        let event_type = event.and_then(|event| event.event_type.get());
        match self {
            ResponseApi::ChatCompletions | ResponseApi::Completions | ResponseApi::Embeddings => {
                if data_is_done_marker {
                    Some(BodyEnd::Completed)
                } else if event.is_some_and(|event| event.has_error) {
                    Some(BodyEnd::Failed)
                } else {
                    None
                }
            }
            ResponseApi::Responses => match event_type {
                Some(b"response.completed" | b"response.incomplete") => Some(BodyEnd::Completed),
                Some(b"response.failed" | b"error") => Some(BodyEnd::Failed),
                _ => None,
            },
            ResponseApi::Messages => match event_type {
                Some(b"message_stop") => Some(BodyEnd::Completed),
                Some(b"error") => Some(BodyEnd::Failed),
                _ => None,
            },
        }
    }
}

/// How a body ended by its own protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyEnd {
    Completed,
    Failed,
}

/// Accumulates usage from a response body fed chunk by chunk.
#[derive(Debug)]
pub struct UsageReader {
    body: BodyReader,
}

#[derive(Debug)]
enum BodyReader {
    /// One JSON document; only its top-level `usage` counts.
    Json {
        scanner: JsonScanner,
        end: Option<BodyEnd>,
    },
    EventStream {
        parser: SseParser,
        events: EventReader,
    },
}

impl UsageReader {
    pub fn new(format: BodyFormat, api: ResponseApi) -> Self {
        let body = match format {
            BodyFormat::Json => {
                BodyReader::Json { scanner: JsonScanner::new(UsagePaths { top_level: true, under: None }), end: None }
            }
            BodyFormat::EventStream => {
                BodyReader::EventStream { parser: SseParser::new(), events: EventReader::new(api) }
            }
        };
        UsageReader { body }
    }

    pub fn feed(&mut self, chunk: &[u8]) {
        if self.end().is_some() {
            return;
        }
        match &mut self.body {
            BodyReader::Json { scanner, end } => {
                scanner.feed(chunk);
                if matches!(scanner.document(), DocumentState::Closed | DocumentState::Overrun) {
                    *end = Some(BodyEnd::Completed);
                }
            }
            BodyReader::EventStream { parser, events } => {
                let _ = parser.feed(chunk, events);
            }
        }
    }

    /// `Some` once the body's protocol says it ended; never goes back to `None`.
    pub fn end(&self) -> Option<BodyEnd> {
        match &self.body {
            BodyReader::Json { end, .. } => *end,
            BodyReader::EventStream { events, .. } => events.end,
        }
    }

    /// The usage recorded so far (None if the provider reported none yet).
    pub fn usage(&self) -> Option<Usage> {
        match &self.body {
            BodyReader::Json { scanner, .. } => scanner.findings().counts.usage(),
            BodyReader::EventStream { events, .. } => events.counts.usage(),
        }
    }

    /// Called once when the transport ends; dispatches a last SSE event that lacks its final blank
    /// line (lenient), then returns `usage()`.
    pub fn finish(&mut self) -> Option<Usage> {
        if let BodyReader::EventStream { parser, events } = &mut self.body {
            if events.end.is_none() {
                let _ = parser.finish(events);
            }
        }
        self.usage()
    }

    /// The bytes the reader holds on the heap (allocations, not content): at most `MAX_HEAP_BYTES`.
    #[cfg(any(test, feature = "test-support"))]
    pub fn heap_capacity(&self) -> usize {
        match &self.body {
            BodyReader::Json { scanner, .. } => scanner.heap_capacity(),
            BodyReader::EventStream { events, .. } => events.scanner.heap_capacity(),
        }
    }
}

/// Reads the events of a stream as the parser hands them over: each event's data is one JSON
/// document, whose effect (usage, end) is taken when the event is dispatched.
#[derive(Debug)]
struct EventReader {
    api: ResponseApi,
    /// The current event's data.
    scanner: JsonScanner,
    /// The first bytes of the current event's data, to recognise `[DONE]`.
    data_start: BoundedBytes<{ DONE_MARKER.len() }>,
    counts: Counts,
    end: Option<BodyEnd>,
}

impl EventReader {
    fn new(api: ResponseApi) -> Self {
        EventReader {
            api,
            scanner: JsonScanner::new(api.stream_usage_paths()),
            data_start: BoundedBytes::new(),
            counts: Counts::NONE,
            end: None,
        }
    }
}

impl EventSink for EventReader {
    fn data(&mut self, bytes: &[u8]) {
        self.data_start.extend(bytes);
        self.scanner.feed(bytes);
    }

    fn dispatch(&mut self) -> ControlFlow<()> {
        let data_is_done_marker = self.data_start.get() == Some(DONE_MARKER);
        // Data that is not one whole JSON document (cut, or followed by more) says nothing.
        let event = Some(self.scanner.findings()).filter(|_| self.scanner.document() == DocumentState::Closed);
        if let Some(event) = event {
            self.counts.update(event.counts);
        }
        self.end = self.api.stream_end(data_is_done_marker, event);
        self.scanner.reset();
        self.data_start.clear();
        if self.end.is_some() {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }
}

#[cfg(test)]
mod tests;
