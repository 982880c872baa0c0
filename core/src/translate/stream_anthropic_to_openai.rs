//! Translates an Anthropic Messages event stream into an OpenAI Chat Completions chunk stream as it
//! passes, event by event, holding only the event being read and a few counters.
//!
//! | Anthropic event                         | OpenAI chunks                                                      |
//! |-----------------------------------------|--------------------------------------------------------------------|
//! | `message_start`                         | `delta: {role: "assistant", content: ""}`                          |
//! | `content_block_start` text              | its text as `delta.content`, if any                                |
//! | `content_block_delta` `text_delta`      | `delta.content`                                                    |
//! | `content_block_start` `tool_use`        | `delta.tool_calls: [{index: n, id, type, function: {name, arguments: ""}}]`, n counting tool calls |
//! | `content_block_delta` `input_json_delta`| `delta.tool_calls: [{index: n, function: {arguments}}]`            |
//! | thinking and server-tool blocks         | nothing                                                            |
//! | `message_delta`                         | `delta: {}` with `finish_reason`; then, if the client asked, the usage chunk (`choices: []`) |
//! | `message_stop`                          | `data: [DONE]`                                                     |
//! | `content_block_stop` of a tool call     | its arguments if no delta sent any: the start block's input, or `{}` |
//! | `ping`, other `content_block_stop`, unknown | nothing                                                        |
//! | `error`                                 | `data: {"error": {...}}`, and the translation ends (no `[DONE]`)   |
//!
//! The error chunk keeps the provider's message; its `type` is the gateway's OpenAI type for the
//! Anthropic error type, and `code` the Anthropic error type (as [`super::provider_error_to_client`]
//! does for error bodies).
//!
//! An event that cannot be read (not JSON, over [`MAX_EVENT_BYTES`], before `message_start`) ends the
//! translation with an error chunk. A stream that ends without `message_stop` gets no `[DONE]`: a cut
//! stream stays visibly cut.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::sse_events::{translate_chunk, translate_end, EventTranslator, SseEvent, SseSplitter, MAX_EVENT_BYTES};
use super::{finish_reason_for, openai_completion_id, openai_usage_from_anthropic};

/// Translates one Anthropic Messages stream for an OpenAI Chat Completions client.
#[derive(Debug)]
pub struct AnthropicToOpenAiStream {
    splitter: SseSplitter,
    translator: Translator,
}

impl AnthropicToOpenAiStream {
    /// `client_model` is the model the client asked for (every chunk names it), `created` the Unix
    /// time of every chunk, `include_usage` whether the client asked for the usage chunk
    /// (`stream_options.include_usage`).
    pub fn new(client_model: &str, created: u64, include_usage: bool) -> Self {
        AnthropicToOpenAiStream {
            splitter: SseSplitter::new(MAX_EVENT_BYTES),
            translator: Translator {
                model: client_model.to_owned(),
                created,
                include_usage,
                id: None,
                block: Block::None,
                start_input: None,
                tool_calls: 0,
                usage: Usage::default(),
                finished: false,
                ended: false,
            },
        }
    }

    /// Translates the next bytes of the upstream body; returns the bytes to send the client now.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        translate_chunk(&mut self.splitter, &mut self.translator, chunk)
    }

    /// The upstream body has ended: returns the last bytes for the client (never a made-up `[DONE]`).
    pub fn finish(&mut self) -> Vec<u8> {
        translate_end(&mut self.splitter, &mut self.translator)
    }
}

/// The content block being streamed (Anthropic streams one block at a time).
#[derive(Debug, Clone, Copy)]
enum Block {
    None,
    Text {
        index: u64,
    },
    ToolCall {
        index: u64,
        call: u32,
        /// Some `arguments` text has been sent for this call.
        sent_arguments: bool,
    },
    /// A block the client's API has no place for (thinking, server tools).
    Skipped,
}

/// Token counts as Anthropic reported them last (each field replaces the earlier one).
#[derive(Debug, Default, Clone, Copy)]
struct Usage {
    input_tokens: u64,
    cache_creation_input_tokens: u64,
    cache_read_input_tokens: u64,
    output_tokens: u64,
}

#[derive(Debug)]
struct Translator {
    model: String,
    created: u64,
    include_usage: bool,
    /// The completion id, once `message_start` has been read.
    id: Option<String>,
    block: Block,
    /// The input a tool call's start block carried, until its arguments are sent.
    start_input: Option<Value>,
    /// How many tool calls have started (the next one's OpenAI `index`).
    tool_calls: u32,
    usage: Usage,
    /// The finish chunk has been sent.
    finished: bool,
    ended: bool,
}

// ---- Anthropic events (what is read of them) ----

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event {
    MessageStart {
        message: StartedMessage,
    },
    ContentBlockStart {
        index: u64,
        content_block: StartedBlock,
    },
    ContentBlockDelta {
        index: u64,
        delta: BlockDelta,
    },
    MessageDelta {
        delta: MessageDeltaBody,
        usage: Option<UsageIn>,
    },
    MessageStop,
    Error {
        error: ErrorBody,
    },
    ContentBlockStop {
        index: u64,
    },
    /// `ping`, and event types added later: nothing to translate.
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct StartedMessage {
    id: String,
    usage: Option<UsageIn>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StartedBlock {
    Text {
        #[serde(default)]
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        /// The whole input when a provider sends it here rather than in deltas.
        #[serde(default)]
        input: Option<Value>,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockDelta {
    TextDelta {
        text: String,
    },
    InputJsonDelta {
        partial_json: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct MessageDeltaBody {
    stop_reason: Option<String>,
}

#[derive(Deserialize)]
struct UsageIn {
    input_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
    output_tokens: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ErrorBody {
    #[serde(rename = "type")]
    kind: Option<String>,
    message: Option<String>,
}

// ---- OpenAI chunks (what is written) ----

#[derive(Serialize)]
struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: &'a [Choice<'a>],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Value>,
}

#[derive(Serialize)]
struct Choice<'a> {
    index: u32,
    delta: Delta<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'a str>,
}

#[derive(Serialize, Default)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[ToolCall<'a>; 1]>,
}

#[derive(Serialize)]
struct ToolCall<'a> {
    index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: Function<'a>,
}

#[derive(Serialize)]
struct Function<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}

#[derive(Serialize)]
struct ErrorChunk<'a> {
    error: ErrorOut<'a>,
}

#[derive(Serialize)]
struct ErrorOut<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<()>,
    code: Option<&'a str>,
}

/// Appends one `data:` event holding `value` as JSON.
fn write_data(out: &mut Vec<u8>, value: &impl Serialize) {
    if let Ok(json) = serde_json::to_vec(value) {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(&json);
        out.extend_from_slice(b"\n\n");
    }
}

/// The OpenAI error `type` for an Anthropic error type (as the gateway names its own errors).
fn openai_error_type(anthropic_type: &str) -> &'static str {
    match anthropic_type {
        "invalid_request_error"
        | "authentication_error"
        | "permission_error"
        | "not_found_error"
        | "request_too_large"
        | "billing_error" => "invalid_request_error",
        "rate_limit_error" => "requests",
        _ => "server_error",
    }
}

impl Translator {
    fn chunk(&self, delta: Delta<'_>, finish_reason: Option<&str>, out: &mut Vec<u8>) {
        let choice = Choice { index: 0, delta, logprobs: None, finish_reason };
        self.write_chunk(std::slice::from_ref(&choice), None, out);
    }

    fn write_chunk(&self, choices: &[Choice<'_>], usage: Option<Value>, out: &mut Vec<u8>) {
        let id = self.id.as_deref().unwrap_or_default();
        let chunk =
            Chunk { id, object: "chat.completion.chunk", created: self.created, model: &self.model, choices, usage };
        write_data(out, &chunk);
    }

    fn record_usage(&mut self, usage: Option<UsageIn>) {
        let Some(usage) = usage else { return };
        let known = &mut self.usage;
        known.input_tokens = usage.input_tokens.unwrap_or(known.input_tokens);
        known.cache_creation_input_tokens =
            usage.cache_creation_input_tokens.unwrap_or(known.cache_creation_input_tokens);
        known.cache_read_input_tokens = usage.cache_read_input_tokens.unwrap_or(known.cache_read_input_tokens);
        known.output_tokens = usage.output_tokens.unwrap_or(known.output_tokens);
    }

    fn message_start(&mut self, message: StartedMessage, out: &mut Vec<u8>) {
        if self.id.is_some() {
            return self.protocol_error("the upstream stream started a second message", out);
        }
        self.id = Some(openai_completion_id(&message.id));
        self.record_usage(message.usage);
        self.chunk(Delta { role: Some("assistant"), content: Some(""), ..Delta::default() }, None, out);
    }

    fn block_start(&mut self, index: u64, block: StartedBlock, out: &mut Vec<u8>) {
        match block {
            StartedBlock::Text { text } => {
                self.block = Block::Text { index };
                if !text.is_empty() {
                    self.chunk(Delta { content: Some(&text), ..Delta::default() }, None, out);
                }
            }
            StartedBlock::ToolUse { id, name, input } => {
                let call = self.tool_calls;
                self.tool_calls = call.saturating_add(1);
                self.block = Block::ToolCall { index, call, sent_arguments: false };
                // Sent as the arguments if no delta follows (OpenAI never sends empty arguments).
                self.start_input = input.filter(|input| input.as_object().is_some_and(|o| !o.is_empty()));
                let function = Function { name: Some(&name), arguments: "" };
                let tool_call = ToolCall { index: call, id: Some(&id), kind: Some("function"), function };
                self.chunk(Delta { tool_calls: Some([tool_call]), ..Delta::default() }, None, out);
            }
            StartedBlock::Other => self.block = Block::Skipped,
        }
    }

    fn block_delta(&mut self, index: u64, delta: BlockDelta, out: &mut Vec<u8>) {
        match (delta, self.block) {
            (BlockDelta::TextDelta { text }, Block::Text { index: open }) if open == index && !text.is_empty() => {
                self.chunk(Delta { content: Some(&text), ..Delta::default() }, None, out);
            }
            (BlockDelta::InputJsonDelta { partial_json }, Block::ToolCall { index: open, call, .. })
                if open == index && !partial_json.is_empty() =>
            {
                self.block = Block::ToolCall { index, call, sent_arguments: true };
                let function = Function { name: None, arguments: &partial_json };
                let tool_call = ToolCall { index: call, id: None, kind: None, function };
                self.chunk(Delta { tool_calls: Some([tool_call]), ..Delta::default() }, None, out);
            }
            _ => {}
        }
    }

    /// A tool call whose input came whole in its start block, or was empty, gets its arguments now:
    /// the start block's input, or `{}`.
    fn block_stop(&mut self, index: u64, out: &mut Vec<u8>) {
        if let Block::ToolCall { index: open, call, sent_arguments: false } = self.block {
            if open == index {
                let arguments = self.start_input.take().map_or_else(|| "{}".to_owned(), |input| input.to_string());
                let function = Function { name: None, arguments: &arguments };
                let tool_call = ToolCall { index: call, id: None, kind: None, function };
                self.chunk(Delta { tool_calls: Some([tool_call]), ..Delta::default() }, None, out);
                self.block = Block::ToolCall { index, call, sent_arguments: true };
            }
        }
    }

    fn message_delta(&mut self, delta: MessageDeltaBody, usage: Option<UsageIn>, out: &mut Vec<u8>) {
        if let Block::ToolCall { index, .. } = self.block {
            self.block_stop(index, out);
        }
        self.record_usage(usage);
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        let finish_reason = finish_reason_for(delta.stop_reason.as_deref().unwrap_or("end_turn"));
        self.chunk(Delta::default(), Some(finish_reason), out);
        if self.include_usage {
            let usage = &self.usage;
            let anthropic = json!({
                "input_tokens": usage.input_tokens,
                "cache_creation_input_tokens": usage.cache_creation_input_tokens,
                "cache_read_input_tokens": usage.cache_read_input_tokens,
                "output_tokens": usage.output_tokens,
            });
            self.write_chunk(&[], Some(openai_usage_from_anthropic(&anthropic)), out);
        }
    }

    fn write_error(&mut self, message: &str, kind: &str, code: Option<&str>, out: &mut Vec<u8>) {
        write_data(out, &ErrorChunk { error: ErrorOut { message, kind, param: None, code } });
        self.ended = true;
    }
}

impl EventTranslator for Translator {
    fn event(&mut self, event: SseEvent, cut: bool, out: &mut Vec<u8>) {
        let event = match serde_json::from_slice::<Event>(&event.data) {
            Ok(event) => event,
            Err(_) if cut => return,
            Err(e) => {
                let message = format!("an upstream event is not a valid Anthropic stream event: {e}");
                return self.protocol_error(&message, out);
            }
        };
        match event {
            Event::Error { error } => {
                let kind = error.kind.as_deref().unwrap_or("api_error");
                let message = error.message.as_deref().unwrap_or("An error occurred during streaming");
                self.write_error(message, openai_error_type(kind), Some(kind), out);
            }
            Event::MessageStart { message } => self.message_start(message, out),
            Event::Other => {}
            _ if self.id.is_none() => self.protocol_error("the upstream stream did not start with message_start", out),
            Event::ContentBlockStart { index, content_block } => self.block_start(index, content_block, out),
            Event::ContentBlockDelta { index, delta } => self.block_delta(index, delta, out),
            Event::ContentBlockStop { index } => self.block_stop(index, out),
            Event::MessageDelta { delta, usage } => self.message_delta(delta, usage, out),
            Event::MessageStop => {
                out.extend_from_slice(b"data: [DONE]\n\n");
                self.ended = true;
            }
        }
    }

    fn protocol_error(&mut self, message: &str, out: &mut Vec<u8>) {
        let message = format!("The model provider's stream could not be translated: {message}.");
        self.write_error(&message, "server_error", Some("invalid_upstream_response"), out);
    }

    fn ended(&self) -> bool {
        self.ended
    }
}
