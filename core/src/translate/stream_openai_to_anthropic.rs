//! Translates an OpenAI Chat Completions chunk stream into an Anthropic Messages event stream as it
//! passes, chunk by chunk, holding only the event being read and a little state per content block.
//!
//! | OpenAI chunk                                  | Anthropic events                                          |
//! |-----------------------------------------------|-----------------------------------------------------------|
//! | the first chunk with a choice                 | `message_start` (usage 0: OpenAI reports it at the end)   |
//! | `delta.content` / `delta.refusal`             | `content_block_start` text (once per text block), `content_block_delta` `text_delta` |
//! | `delta.tool_calls` entry of a new `index`     | `content_block_stop` of the open block, `content_block_start` `tool_use` `{id, name, input: {}}` |
//! | `delta.tool_calls` arguments                  | `content_block_delta` `input_json_delta` at that call's block |
//! | `finish_reason`                               | `content_block_stop` of the open block                     |
//! | the usage chunk after it (or `[DONE]`)        | `message_delta` with the stop reason and the whole usage  |
//! | `[DONE]` after `finish_reason`                | `message_stop`                                            |
//! | `[DONE]` without `finish_reason` (cut)        | nothing                                                   |
//! | `{"error": ...}`                              | `error`, and the translation ends                          |
//!
//! Anthropic reports input tokens in `message_start`, OpenAI only at the end, so `message_start` says 0
//! and `message_delta` carries the whole usage (`input_tokens` without the cached part,
//! `cache_creation_input_tokens: 0`, `cache_read_input_tokens`, `output_tokens`): the anthropic SDKs'
//! accumulators take every count `message_delta` carries. With no usage chunk the counts are 0.
//!
//! The stop reason is `refusal` once the model refused (`delta.refusal`, sent as text), `tool_use` for a
//! `stop` after tool calls (some OpenAI-compatible servers end tool turns so), else
//! [`stop_reason_for`]'s mapping.
//!
//! Fragments of several tool calls may interleave in OpenAI's format; Anthropic streams one block at a
//! time. A block is closed when the next one starts (the shape of Anthropic's own streams); a fragment
//! that arrives later for a tool call whose block is closed is still sent, as a delta at that block's
//! index, which the SDKs' accumulators (content by index) take: nothing is held back or lost.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::sse_events::{translate_chunk, translate_end, EventTranslator, SseEvent, SseSplitter, MAX_EVENT_BYTES};
use super::{anthropic_message_id, anthropic_usage_from_openai, stop_reason_for};

/// The most tool calls one response may make (their block numbers are the state kept per call).
const MAX_TOOL_CALLS: usize = 1024;

/// Translates one OpenAI Chat Completions stream for an Anthropic Messages client.
#[derive(Debug)]
pub struct OpenAiToAnthropicStream {
    splitter: SseSplitter,
    translator: Translator,
}

impl OpenAiToAnthropicStream {
    /// `client_model` is the model the client asked for (`message_start` names it).
    pub fn new(client_model: &str) -> Self {
        OpenAiToAnthropicStream {
            splitter: SseSplitter::new(MAX_EVENT_BYTES),
            translator: Translator {
                model: client_model.to_owned(),
                started: false,
                next_block: 0,
                open: None,
                tools: Vec::new(),
                refusal: false,
                stop_reason: None,
                usage: None,
                delta_sent: false,
                ended: false,
            },
        }
    }

    /// Translates the next bytes of the upstream body; returns the bytes to send the client now.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        translate_chunk(&mut self.splitter, &mut self.translator, chunk)
    }

    /// The upstream body has ended: returns the last bytes for the client (never a made-up
    /// `message_stop`).
    pub fn finish(&mut self) -> Vec<u8> {
        translate_end(&mut self.splitter, &mut self.translator)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlockKind {
    Text,
    ToolUse,
}

#[derive(Debug, Clone, Copy)]
struct OpenBlock {
    index: u32,
    kind: BlockKind,
}

/// One tool call (by its OpenAI `index`) and its content block. The first call streams live; a
/// call that starts while another is open waits, its arguments kept, until the turn finishes: OpenAI
/// may interleave the argument fragments of parallel calls, and Anthropic's blocks come one after
/// the other.
#[derive(Debug, Clone)]
struct ToolBlock {
    call: u32,
    /// The content block, once started.
    block: Option<u32>,
    id: String,
    name: String,
    /// Arguments received while the call waits.
    pending: String,
}

/// The most argument text kept for calls that wait (beyond it, the stream ends with an error).
const MAX_PENDING_ARGUMENTS: usize = 1 << 20;

#[derive(Debug)]
struct Translator {
    model: String,
    /// `message_start` has been sent.
    started: bool,
    /// The index of the next content block.
    next_block: u32,
    open: Option<OpenBlock>,
    tools: Vec<ToolBlock>,
    /// The model refused (OpenAI `delta.refusal`): Anthropic's stop reason is `refusal`.
    refusal: bool,
    /// Set by `finish_reason`.
    stop_reason: Option<&'static str>,
    /// The last `usage` object the provider sent.
    usage: Option<Value>,
    /// `message_delta` has been sent.
    delta_sent: bool,
    ended: bool,
}

// ---- OpenAI chunks (what is read of them) ----

#[derive(Deserialize)]
struct ChunkIn {
    id: Option<String>,
    choices: Option<Vec<ChoiceIn>>,
    usage: Option<Value>,
    error: Option<Value>,
}

#[derive(Deserialize)]
struct ChoiceIn {
    index: Option<u32>,
    delta: Option<DeltaIn>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct DeltaIn {
    content: Option<String>,
    refusal: Option<String>,
    tool_calls: Option<Vec<ToolCallIn>>,
}

#[derive(Deserialize)]
struct ToolCallIn {
    index: Option<u32>,
    id: Option<String>,
    function: Option<FunctionIn>,
}

#[derive(Deserialize, Default)]
struct FunctionIn {
    name: Option<String>,
    arguments: Option<String>,
}

// ---- Anthropic events (what is written) ----

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Out<'a> {
    MessageStart { message: StartedMessage<'a> },
    ContentBlockStart { index: u32, content_block: BlockOut<'a> },
    ContentBlockDelta { index: u32, delta: DeltaOut<'a> },
    ContentBlockStop { index: u32 },
    MessageDelta { delta: StopOut, usage: Value },
    MessageStop,
    Error { error: ErrorOut<'a> },
}

impl Out<'_> {
    /// The `event:` name, which Anthropic's SDKs dispatch on: the same as the data's `type`.
    fn name(&self) -> &'static str {
        match self {
            Out::MessageStart { .. } => "message_start",
            Out::ContentBlockStart { .. } => "content_block_start",
            Out::ContentBlockDelta { .. } => "content_block_delta",
            Out::ContentBlockStop { .. } => "content_block_stop",
            Out::MessageDelta { .. } => "message_delta",
            Out::MessageStop => "message_stop",
            Out::Error { .. } => "error",
        }
    }
}

#[derive(Serialize)]
struct StartedMessage<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: [(); 0],
    stop_reason: Option<()>,
    stop_sequence: Option<()>,
    usage: StartUsage,
}

#[derive(Serialize)]
struct StartUsage {
    input_tokens: u64,
    output_tokens: u64,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockOut<'a> {
    Text { text: &'a str },
    ToolUse { id: &'a str, name: &'a str, input: EmptyObject },
}

#[derive(Serialize)]
struct EmptyObject {}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum DeltaOut<'a> {
    TextDelta { text: &'a str },
    InputJsonDelta { partial_json: &'a str },
}

#[derive(Serialize)]
struct StopOut {
    stop_reason: &'static str,
    stop_sequence: Option<()>,
}

#[derive(Serialize)]
struct ErrorOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    message: &'a str,
}

/// Appends one event: its `event:` line, its data, and the empty line that ends it.
fn write_event(out: &mut Vec<u8>, event: &Out<'_>) {
    if let Ok(json) = serde_json::to_vec(event) {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(event.name().as_bytes());
        out.extend_from_slice(b"\ndata: ");
        out.extend_from_slice(&json);
        out.extend_from_slice(b"\n\n");
    }
}

/// A JSON value the way the openai SDK tests one (`if data.get("error")`): present and not empty.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null | Value::Bool(false) => false,
        Value::String(text) => !text.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(members) => !members.is_empty(),
        Value::Number(_) | Value::Bool(true) => true,
    }
}

impl Translator {
    fn chunk(&mut self, chunk: ChunkIn, out: &mut Vec<u8>) {
        if let Some(error) = chunk.error.filter(truthy) {
            let message = error.get("message").and_then(Value::as_str).or_else(|| error.as_str());
            return self.write_error(message.unwrap_or("An error occurred during streaming"), out);
        }
        let has_usage = chunk.usage.as_ref().is_some_and(Value::is_object);
        if has_usage {
            self.usage = chunk.usage;
        }
        let choice = chunk.choices.into_iter().flatten().find(|choice| choice.index.unwrap_or(0) == 0);
        if let (Some(choice), None) = (choice, self.stop_reason) {
            self.start(chunk.id.as_deref(), out);
            self.choice(choice, out);
        }
        if has_usage && self.stop_reason.is_some() && !self.delta_sent && !self.ended {
            self.message_delta(out);
        }
    }

    fn start(&mut self, id: Option<&str>, out: &mut Vec<u8>) {
        if std::mem::replace(&mut self.started, true) {
            return;
        }
        let id = anthropic_message_id(id.filter(|id| !id.is_empty()).unwrap_or("unknown"));
        let message = StartedMessage {
            id: &id,
            kind: "message",
            role: "assistant",
            model: &self.model,
            content: [],
            stop_reason: None,
            stop_sequence: None,
            usage: StartUsage { input_tokens: 0, output_tokens: 0 },
        };
        write_event(out, &Out::MessageStart { message });
    }

    fn choice(&mut self, choice: ChoiceIn, out: &mut Vec<u8>) {
        if let Some(delta) = choice.delta {
            if let Some(text) = delta.content.filter(|text| !text.is_empty()) {
                self.text(&text, out);
            }
            if let Some(refusal) = delta.refusal.filter(|text| !text.is_empty()) {
                self.refusal = true;
                self.text(&refusal, out);
            }
            for call in delta.tool_calls.into_iter().flatten() {
                self.tool_call(call, out);
                if self.ended {
                    return;
                }
            }
        }
        if let Some(finish_reason) = choice.finish_reason {
            self.flush_tools(out);
            self.stop_reason = Some(match finish_reason.as_str() {
                _ if self.refusal => "refusal",
                // Some OpenAI-compatible servers end a turn of tool calls with `stop`.
                "stop" if !self.tools.is_empty() => "tool_use",
                other => stop_reason_for(other),
            });
        }
    }

    fn new_block(&mut self, kind: BlockKind, out: &mut Vec<u8>) -> u32 {
        self.close_block(out);
        let index = self.next_block;
        self.next_block = index.saturating_add(1);
        self.open = Some(OpenBlock { index, kind });
        index
    }

    fn close_block(&mut self, out: &mut Vec<u8>) {
        if let Some(open) = self.open.take() {
            write_event(out, &Out::ContentBlockStop { index: open.index });
        }
    }

    fn text(&mut self, text: &str, out: &mut Vec<u8>) {
        if self.tools.iter().any(|tool| tool.block.is_none()) {
            self.flush_tools(out);
        }
        let index = match self.open {
            Some(OpenBlock { index, kind: BlockKind::Text }) => index,
            _ => {
                let index = self.new_block(BlockKind::Text, out);
                write_event(out, &Out::ContentBlockStart { index, content_block: BlockOut::Text { text: "" } });
                index
            }
        };
        write_event(out, &Out::ContentBlockDelta { index, delta: DeltaOut::TextDelta { text } });
    }

    fn tool_call(&mut self, call: ToolCallIn, out: &mut Vec<u8>) {
        let number = call.index.unwrap_or(0);
        let function = call.function.unwrap_or_default();
        let position = match self.tools.iter().position(|tool| tool.call == number) {
            Some(position) => position,
            None if self.tools.len() >= MAX_TOOL_CALLS => {
                return self.protocol_error(&format!("more than {MAX_TOOL_CALLS} tool calls"), out);
            }
            None => {
                let id = call.id.filter(|id| !id.is_empty()).unwrap_or_else(|| format!("toolu_{number}"));
                let name = function.name.clone().unwrap_or_default();
                self.tools.push(ToolBlock { call: number, block: None, id, name, pending: String::new() });
                let position = self.tools.len() - 1;
                let streaming = matches!(self.open, Some(OpenBlock { kind: BlockKind::ToolUse, .. }));
                if !streaming {
                    self.start_tool(position, out);
                }
                position
            }
        };
        let Some(partial_json) = function.arguments.as_deref().filter(|arguments| !arguments.is_empty()) else {
            return;
        };
        let open_index = self.open.map(|open| open.index);
        let Some(tool) = self.tools.get_mut(position) else { return };
        match tool.block {
            Some(index) if Some(index) == open_index => {
                write_event(out, &Out::ContentBlockDelta { index, delta: DeltaOut::InputJsonDelta { partial_json } });
            }
            _ if tool.pending.len() + partial_json.len() > MAX_PENDING_ARGUMENTS => {
                self.protocol_error("tool-call arguments too large to reorder", out);
            }
            _ => tool.pending.push_str(partial_json),
        }
    }

    /// Opens the content block of the tool call at `position`.
    fn start_tool(&mut self, position: usize, out: &mut Vec<u8>) {
        let index = self.new_block(BlockKind::ToolUse, out);
        let Some(tool) = self.tools.get_mut(position) else { return };
        tool.block = Some(index);
        let content_block = BlockOut::ToolUse { id: &tool.id, name: &tool.name, input: EmptyObject {} };
        write_event(out, &Out::ContentBlockStart { index, content_block });
    }

    /// Closes the open block, then sends every waiting tool call whole, one block after the other.
    fn flush_tools(&mut self, out: &mut Vec<u8>) {
        self.close_block(out);
        for position in 0..self.tools.len() {
            if self.tools.get(position).is_some_and(|tool| tool.block.is_none()) {
                self.start_tool(position, out);
                let pending = self.tools.get_mut(position).map(|tool| std::mem::take(&mut tool.pending));
                if let (Some(partial_json), Some(open)) = (pending.filter(|p| !p.is_empty()), self.open) {
                    let delta = DeltaOut::InputJsonDelta { partial_json: &partial_json };
                    write_event(out, &Out::ContentBlockDelta { index: open.index, delta });
                }
                self.close_block(out);
            }
        }
    }

    fn message_delta(&mut self, out: &mut Vec<u8>) {
        let Some(stop_reason) = self.stop_reason else { return };
        self.delta_sent = true;
        let usage = anthropic_usage_from_openai(self.usage.as_ref().unwrap_or(&Value::Null));
        write_event(out, &Out::MessageDelta { delta: StopOut { stop_reason, stop_sequence: None }, usage });
    }

    /// `[DONE]`: the message ends if it finished; a stream cut before `finish_reason` stays cut.
    fn done(&mut self, out: &mut Vec<u8>) {
        if self.stop_reason.is_some() {
            if !self.delta_sent {
                self.message_delta(out);
            }
            write_event(out, &Out::MessageStop);
        }
        self.ended = true;
    }

    fn write_error(&mut self, message: &str, out: &mut Vec<u8>) {
        write_event(out, &Out::Error { error: ErrorOut { kind: "api_error", message } });
        self.ended = true;
    }
}

impl EventTranslator for Translator {
    fn event(&mut self, event: SseEvent, cut: bool, out: &mut Vec<u8>) {
        if event.data == b"[DONE]" {
            return self.done(out);
        }
        match serde_json::from_slice::<ChunkIn>(&event.data) {
            Ok(chunk) => self.chunk(chunk, out),
            Err(_) if cut => {}
            Err(e) => self.protocol_error(&format!("an upstream event is not a chat completion chunk: {e}"), out),
        }
    }

    fn protocol_error(&mut self, message: &str, out: &mut Vec<u8>) {
        self.write_error(&format!("The model provider's stream could not be translated: {message}."), out);
    }

    fn ended(&self) -> bool {
        self.ended
    }
}
