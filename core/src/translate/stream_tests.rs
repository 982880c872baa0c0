//! Tests of the stream translations: the event splitter, then each direction on streams shaped like
//! the providers' own (text, tool calls, parallel tool calls, usage with cache tokens, errors, cut
//! streams). Every translation is checked to give the same bytes however its input is chunked or its
//! lines are ended, to be framed as the client's API frames events, and to fold, the way the official
//! SDKs' stream accumulators fold it, into the expected final message.

use serde_json::{json, Map, Value};

use super::sse_events::{EventTooLarge, SseEvent, SseSplitter, MAX_EVENT_BYTES};
use super::stream_anthropic_to_openai::AnthropicToOpenAiStream;
use super::stream_openai_to_anthropic::OpenAiToAnthropicStream;
use crate::body_format::BodyFormat;
use crate::usage::{BodyEnd, ResponseApi, Usage, UsageReader};

// ---------------------------------------------------------------------------------------------
// The event splitter

fn split_in_chunks(stream: &[u8], chunk_size: usize, max: usize) -> Result<Vec<(String, String)>, EventTooLarge> {
    let mut splitter = SseSplitter::new(max);
    let mut events = Vec::new();
    let mut push = |event: SseEvent| events.push((event.name, String::from_utf8(event.data).unwrap()));
    for chunk in stream.chunks(chunk_size) {
        let mut input = chunk;
        while let Some(event) = splitter.next_event(&mut input)? {
            push(event);
        }
        assert!(input.is_empty());
    }
    if let Some(event) = splitter.finish()? {
        push(event);
    }
    Ok(events)
}

/// The events a stream splits into: (name, data).
type ExpectedEvents<'a> = &'a [(&'a str, &'a str)];

#[test]
fn the_splitter_follows_the_event_stream_format() {
    let cases: &[(&[u8], ExpectedEvents)] = &[
        (b"data: a\n\ndata: b\n\n", &[("", "a"), ("", "b")]),
        (b"data: a\r\n\r\ndata: b\r\rdata: c\n\n", &[("", "a"), ("", "b"), ("", "c")]),
        (b"data:a\ndata:  b\ndata\ndata:\n\n", &[("", "a\n b\n\n")]),
        (b": comment\ndata: a\n:data: x\n\n", &[("", "a")]),
        (b"event: ping\nid: 1\nretry: 5\n\n", &[]),
        (b"event: ping\n\ndata: a\n\n", &[("", "a")]),
        (b"event: x\nevent:y\ndata: a\n\n\n\n", &[("y", "a")]),
        (b"event: message_stop\r\ndata: {}\r\n\r\n", &[("message_stop", "{}")]),
        (b"\xEF\xBB\xBFdata: a\n\n", &[("", "a")]),
        (b"\xEF\xBB\xBF\xEF\xBB\xBFdata: a\n\ndata: b\n\n", &[("", "b")]),
        (b"\xEF\xBBdata: a\n\ndata: b\n\n", &[("", "b")]),
        (b"\n\xEF\xBB\xBFdata: a\n\n", &[]),
        (b"dataa: a\ndatadatadata: b\nDATA: c\n data: d\n\n", &[]),
        (b"data: a\n\ndata: unfinished", &[("", "a"), ("", "unfinished")]),
        (b"data: a\n\nevent: e\ndata: unfinished\n", &[("", "a"), ("e", "unfinished")]),
        (b"data: a\n\ndata", &[("", "a"), ("", "")]),
        (b"data: a\r", &[("", "a")]),
        (b"data: caf\xC3\xA9\n\n", &[("", "caf\u{e9}")]),
        (b"\xEF\xBB", &[]),
        (b"", &[]),
    ];
    for (stream, expected) in cases {
        let expected: Vec<(String, String)> =
            expected.iter().map(|(name, data)| (name.to_string(), data.to_string())).collect();
        for chunk_size in 1..=stream.len().max(1) {
            let events = split_in_chunks(stream, chunk_size, MAX_EVENT_BYTES).unwrap();
            assert_eq!(events, expected, "{:?} in {chunk_size}-byte chunks", String::from_utf8_lossy(stream));
        }
    }
}

#[test]
fn the_splitter_returns_each_event_with_the_rest_of_the_input() {
    let mut splitter = SseSplitter::new(MAX_EVENT_BYTES);
    let mut input: &[u8] = b"data: a\n\ndata: b\n\ndata: c";
    let first = splitter.next_event(&mut input).unwrap().unwrap();
    assert_eq!(first.data, b"a");
    assert_eq!(input, b"data: b\n\ndata: c");
    assert_eq!(splitter.next_event(&mut input).unwrap().unwrap().data, b"b");
    assert_eq!(splitter.next_event(&mut input).unwrap(), None);
    assert!(input.is_empty());
    assert_eq!(splitter.finish().unwrap().unwrap().data, b"c");
    assert_eq!(splitter.finish().unwrap(), None);
}

#[test]
fn an_event_over_the_bound_is_an_error_and_the_splitter_stays_failed() {
    let max = 16;
    // The bound counts the field lines held (without line ends): the line being read, the name, the data.
    let at_bound = b"data: 0123456789\n\n";
    assert_eq!(split_in_chunks(at_bound, 1, max).unwrap(), [(String::new(), "0123456789".to_owned())]);
    let over_with_name = b"event: abcdefghi\ndata: 01\n\n";
    assert!(split_in_chunks(over_with_name, 1, max).is_err(), "9 bytes of name and an 8-byte line");
    let fits = b"event: ab\ndata: 0123\n\ndata: 0123456789\n\n";
    for chunk_size in 1..=fits.len() {
        assert_eq!(split_in_chunks(fits, chunk_size, max).unwrap().len(), 2);
    }
    let too_long_line = b"data: 0123456789abcdef\n\n";
    let too_many_lines = b"data: 01234\ndata: 01234\ndata: 01234\n\n";
    let endless_comment = b": 0123456789abcdef0123456789abcdef";
    for stream in [&too_long_line[..], too_many_lines, endless_comment] {
        for chunk_size in 1..=stream.len() {
            let error = split_in_chunks(stream, chunk_size, max).unwrap_err();
            assert_eq!(error, EventTooLarge { max_event_bytes: max });
        }
    }
    let mut splitter = SseSplitter::new(max);
    let mut input: &[u8] = too_long_line;
    assert!(splitter.next_event(&mut input).is_err());
    let mut later: &[u8] = b"data: a\n\n";
    assert!(splitter.next_event(&mut later).is_err());
    assert!(splitter.finish().is_err());
}

// ---------------------------------------------------------------------------------------------
// Harness: every chunking and spelling of an input gives the same output

trait Translation {
    fn feed(&mut self, chunk: &[u8]) -> Vec<u8>;
    fn finish(&mut self) -> Vec<u8>;
}

impl Translation for AnthropicToOpenAiStream {
    fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        AnthropicToOpenAiStream::feed(self, chunk)
    }
    fn finish(&mut self) -> Vec<u8> {
        AnthropicToOpenAiStream::finish(self)
    }
}

impl Translation for OpenAiToAnthropicStream {
    fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        OpenAiToAnthropicStream::feed(self, chunk)
    }
    fn finish(&mut self) -> Vec<u8> {
        OpenAiToAnthropicStream::finish(self)
    }
}

fn run<T: Translation>(mut translation: T, chunks: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in chunks {
        out.extend(translation.feed(chunk));
    }
    out.extend(translation.finish());
    out
}

struct XorShift(u64);

impl XorShift {
    fn below(&mut self, bound: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % bound as u64) as usize
    }
}

/// Translates `input` whole, then checks that every 2-way split, 1-byte chunks, random chunkings and
/// CRLF or CR line ends give the same bytes; returns them.
fn translate<T: Translation>(make: impl Fn() -> T, input: &str) -> String {
    let input = input.as_bytes();
    let whole = run(make(), &[input]);
    for split in 0..=input.len() {
        let (first, second) = input.split_at(split);
        assert_eq!(run(make(), &[first, second]), whole, "split at {split}");
    }
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(run(make(), &bytes), whole, "in 1-byte chunks");
    let mut random = XorShift(0x9E37_79B9_7F4A_7C15);
    for _ in 0..50 {
        let mut chunks = Vec::new();
        let mut rest = input;
        while !rest.is_empty() {
            let (chunk, after) = rest.split_at(1 + random.below(rest.len().min(64)));
            chunks.push(chunk);
            rest = after;
        }
        assert_eq!(run(make(), &chunks), whole, "in random chunks");
    }
    let text = std::str::from_utf8(input).unwrap();
    for line_end in ["\r\n", "\r"] {
        let spelled = text.replace('\n', line_end);
        assert_eq!(run(make(), &[spelled.as_bytes()]), whole, "with {line_end:?} line ends");
    }
    String::from_utf8(whole).unwrap()
}

const MODEL: &str = "team-fast";
const CREATED: u64 = 1_741_570_283;

fn to_openai(input: &str, include_usage: bool) -> String {
    translate(|| AnthropicToOpenAiStream::new(MODEL, CREATED, include_usage), input)
}

fn to_anthropic(input: &str) -> String {
    translate(|| OpenAiToAnthropicStream::new(MODEL), input)
}

/// The `data` of each event of an OpenAI stream, checking the framing: one `data:` line per event,
/// LF line ends, an empty line after each event.
fn openai_events(output: &str) -> Vec<Value> {
    assert!(output.is_empty() || output.ends_with("\n\n"), "{output}");
    assert!(!output.contains('\r'));
    let events = output.split_terminator("\n\n").map(|event| {
        let data = event.strip_prefix("data: ").unwrap_or_else(|| panic!("not a data line: {event}"));
        assert!(!data.contains('\n'), "{event}");
        if data == "[DONE]" {
            json!("[DONE]")
        } else {
            serde_json::from_str(data).unwrap()
        }
    });
    events.collect()
}

/// The data of each event of an Anthropic stream, checking the framing: an `event:` line naming the
/// data's `type`, one `data:` line, LF line ends, an empty line after each event.
fn anthropic_events(output: &str) -> Vec<Value> {
    assert!(output.is_empty() || output.ends_with("\n\n"), "{output}");
    assert!(!output.contains('\r'));
    let events = output.split_terminator("\n\n").map(|event| {
        let (name_line, data_line) = event.split_once('\n').unwrap_or_else(|| panic!("one line: {event}"));
        let name = name_line.strip_prefix("event: ").unwrap();
        let data: Value = serde_json::from_str(data_line.strip_prefix("data: ").unwrap()).unwrap();
        assert_eq!(data["type"], name, "{event}");
        data
    });
    events.collect()
}

/// What the gateway's own usage reader makes of a translated stream.
fn read_usage(output: &str, api: ResponseApi) -> (Option<Usage>, Option<BodyEnd>) {
    let mut reader = UsageReader::new(BodyFormat::EventStream, api);
    reader.feed(output.as_bytes());
    (reader.finish(), reader.end())
}

// ---------------------------------------------------------------------------------------------
// Folding an OpenAI stream as openai-python's ChatCompletionStreamState does

/// openai-python's `accumulate_delta`: strings concatenate, objects merge, lists of objects merge by
/// their `index` (which, like `type`, is replaced, not added). An entry for a new index must be the
/// next one: the SDK indexes its list by position.
fn accumulate_delta(acc: &mut Map<String, Value>, delta: &Map<String, Value>) {
    for (key, delta_value) in delta {
        let Some(acc_value) = acc.get_mut(key).filter(|value| !value.is_null()) else {
            acc.insert(key.clone(), delta_value.clone());
            continue;
        };
        if key == "index" || key == "type" {
            *acc_value = delta_value.clone();
            continue;
        }
        match (acc_value, delta_value) {
            (Value::String(acc), Value::String(more)) => acc.push_str(more),
            (Value::Number(acc), Value::Number(more)) => {
                *acc = (acc.as_u64().unwrap() + more.as_u64().unwrap()).into();
            }
            (Value::Object(acc), Value::Object(more)) => accumulate_delta(acc, more),
            (Value::Array(acc), Value::Array(entries)) => {
                for entry in entries {
                    let index = entry["index"].as_u64().expect("a list entry without index") as usize;
                    match acc.get_mut(index) {
                        Some(Value::Object(acc_entry)) => accumulate_delta(acc_entry, entry.as_object().unwrap()),
                        Some(_) => panic!("not handled by the SDK"),
                        None => {
                            assert_eq!(index, acc.len(), "tool call indexes must be dense");
                            acc.push(entry.clone());
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

/// The completion an OpenAI stream folds into, or the error the SDK would raise.
#[derive(Debug, PartialEq)]
struct OpenAiFold {
    message: Value,
    finish_reason: Value,
    usage: Value,
    /// The stream ended with `[DONE]`.
    done: bool,
}

fn fold_openai(events: &[Value]) -> Result<OpenAiFold, Value> {
    let mut message = Map::new();
    let mut fold = OpenAiFold { message: Value::Null, finish_reason: Value::Null, usage: Value::Null, done: false };
    for (position, event) in events.iter().enumerate() {
        if event == "[DONE]" {
            assert_eq!(position + 1, events.len(), "events after [DONE]");
            fold.done = true;
            break;
        }
        if let Some(error) = event.get("error") {
            assert_eq!(position + 1, events.len(), "events after an error");
            return Err(error.clone());
        }
        assert_eq!(event["object"], "chat.completion.chunk");
        assert_eq!(event["model"], MODEL);
        assert_eq!(event["created"], CREATED);
        assert_eq!(event["id"], events[0]["id"]);
        for choice in event["choices"].as_array().unwrap() {
            assert_eq!(choice["index"], 0);
            accumulate_delta(&mut message, choice["delta"].as_object().unwrap());
            if !choice["finish_reason"].is_null() {
                fold.finish_reason = choice["finish_reason"].clone();
            }
        }
        if !event["usage"].is_null() {
            fold.usage = event["usage"].clone();
        }
    }
    fold.message = Value::Object(message);
    Ok(fold)
}

// ---------------------------------------------------------------------------------------------
// Folding an Anthropic stream as anthropic-python's MessageStream (`accumulate_event`) does

/// The message an Anthropic stream folds into, or the error the SDK would raise.
#[derive(Debug, PartialEq)]
struct AnthropicFold {
    message: Value,
    /// The stream ended with `message_stop`.
    stopped: bool,
}

/// `content_block_delta`: text appends to a text block; partial JSON to a tool block's buffer, parsed
/// at the end (the SDK re-parses it leniently after each delta).
fn fold_block_delta(message: &mut Value, json_buffers: &mut [String], event: &Value) {
    let index = event["index"].as_u64().unwrap() as usize;
    let block = &mut message["content"][index];
    let delta = &event["delta"];
    match delta["type"].as_str().unwrap() {
        "text_delta" if block["type"] == "text" => {
            block["text"] = format!("{}{}", block["text"].as_str().unwrap(), delta["text"].as_str().unwrap()).into();
        }
        "input_json_delta" if block["type"] == "tool_use" => {
            json_buffers[index].push_str(delta["partial_json"].as_str().unwrap());
        }
        other => panic!("unexpected delta {other}"),
    }
}

/// `message_delta`: the stop reason and sequence, `output_tokens`, and every other count it carries.
fn fold_message_delta(message: &mut Value, event: &Value) {
    message["stop_reason"] = event["delta"]["stop_reason"].clone();
    message["stop_sequence"] = event["delta"]["stop_sequence"].clone();
    let usage = &event["usage"];
    message["usage"]["output_tokens"] = usage["output_tokens"].clone();
    for key in ["input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"] {
        if !usage[key].is_null() {
            message["usage"][key] = usage[key].clone();
        }
    }
}

fn fold_anthropic(events: &[Value]) -> Result<AnthropicFold, Value> {
    let mut message = Value::Null;
    let mut json_buffers: Vec<String> = Vec::new();
    let mut stopped = false;
    for (position, event) in events.iter().enumerate() {
        assert!(!stopped, "events after message_stop");
        if event["type"] == "error" {
            assert_eq!(position + 1, events.len(), "events after an error");
            return Err(event["error"].clone());
        }
        if message.is_null() {
            assert_eq!(event["type"], "message_start", "unexpected event order");
            message = event["message"].clone();
            continue;
        }
        match event["type"].as_str().unwrap() {
            "content_block_start" => {
                let content = message["content"].as_array_mut().unwrap();
                assert_eq!(event["index"], content.len(), "blocks start in order");
                content.push(event["content_block"].clone());
                json_buffers.push(String::new());
            }
            "content_block_delta" => fold_block_delta(&mut message, &mut json_buffers, event),
            "content_block_stop" => assert!(event["index"].as_u64().unwrap() < json_buffers.len() as u64),
            "message_delta" => fold_message_delta(&mut message, event),
            "message_stop" => stopped = true,
            "ping" => {}
            other => panic!("unexpected event {other}"),
        }
    }
    for (block, buffer) in message["content"].as_array_mut().into_iter().flatten().zip(&json_buffers) {
        if !buffer.is_empty() {
            block["input"] = serde_json::from_str(buffer).expect("the tool input parses");
        }
    }
    Ok(AnthropicFold { message, stopped })
}

/// Anthropic's own streams have one content block open at a time: every delta and stop is for the
/// block started last, and each block stops once.
fn assert_one_block_at_a_time(events: &[Value]) {
    let mut open: Option<u64> = None;
    for event in events {
        let index = event["index"].as_u64();
        match event["type"].as_str().unwrap() {
            "content_block_start" => assert_eq!(open.replace(index.unwrap()), None, "{event}"),
            "content_block_delta" => assert_eq!(open, index, "{event}"),
            "content_block_stop" => assert_eq!(open.take(), index, "{event}"),
            "message_delta" | "message_stop" => assert_eq!(open, None, "{event}"),
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Anthropic Messages stream -> OpenAI Chat Completions chunks

const COMPLETION_ID: &str = "chatcmpl-msg_01XFDUDYJgAACzvnptvVoYEL";

/// One expected chunk of the translation of a stream of message `msg_01XFDUDYJgAACzvnptvVoYEL`.
fn chunk(delta: Value, finish_reason: Value) -> Value {
    json!({
        "id": COMPLETION_ID,
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": MODEL,
        "choices": [{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason }],
    })
}

fn usage_chunk(prompt: u64, completion: u64, cached: u64) -> Value {
    json!({
        "id": COMPLETION_ID,
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": MODEL,
        "choices": [],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": { "cached_tokens": cached },
        },
    })
}

fn role_chunk() -> Value {
    chunk(json!({ "role": "assistant", "content": "" }), Value::Null)
}

fn content_chunk(text: &str) -> Value {
    chunk(json!({ "content": text }), Value::Null)
}

fn tool_start_chunk(index: u64, id: &str, name: &str) -> Value {
    let call = json!({ "index": index, "id": id, "type": "function", "function": { "name": name, "arguments": "" } });
    chunk(json!({ "tool_calls": [call] }), Value::Null)
}

fn arguments_chunk(index: u64, arguments: &str) -> Value {
    chunk(json!({ "tool_calls": [{ "index": index, "function": { "arguments": arguments } }] }), Value::Null)
}

const ANTHROPIC_TEXT: &str = r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1,"service_tier":"standard"}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"! How can I help? \u00e9\"\\n"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}}

event: message_stop
data: {"type":"message_stop"}

"#;

#[test]
fn an_anthropic_text_answer_becomes_openai_chunks() {
    let output = to_openai(ANTHROPIC_TEXT, false);
    let events = openai_events(&output);
    let expected = vec![
        role_chunk(),
        content_chunk("Hello"),
        content_chunk("! How can I help? \u{e9}\"\\n"),
        chunk(json!({}), json!("stop")),
        json!("[DONE]"),
    ];
    assert_eq!(events, expected);
    let fold = fold_openai(&events).unwrap();
    assert_eq!(fold.message, json!({ "role": "assistant", "content": "Hello! How can I help? \u{e9}\"\\n" }));
    assert_eq!(fold.finish_reason, "stop");
    assert!(fold.done);
    assert_eq!(fold.usage, Value::Null);
    // The gateway's usage reader sees a complete stream (its usage is read from the provider's stream).
    assert_eq!(read_usage(&output, ResponseApi::ChatCompletions), (None, Some(BodyEnd::Completed)));
}

#[test]
fn the_usage_chunk_follows_the_finish_chunk_when_the_client_asked_for_it() {
    let events = openai_events(&to_openai(ANTHROPIC_TEXT, true));
    let expected = vec![
        role_chunk(),
        content_chunk("Hello"),
        content_chunk("! How can I help? \u{e9}\"\\n"),
        chunk(json!({}), json!("stop")),
        usage_chunk(25, 15, 0),
        json!("[DONE]"),
    ];
    assert_eq!(events, expected);
    assert_eq!(fold_openai(&events).unwrap().usage, expected[4]["usage"]);
}

const ANTHROPIC_THINKING_AND_TOOL: &str = r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":472,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":2}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"The user wants the weather in Paris."}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"I'll check the weather in Paris."}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: content_block_start
data: {"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","name":"get_weather","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"location\":"}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":" \"Paris, FR\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":2}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":89}}

event: message_stop
data: {"type":"message_stop"}

"#;

#[test]
fn an_anthropic_tool_call_becomes_an_openai_tool_call_and_thinking_is_left_out() {
    let events = openai_events(&to_openai(ANTHROPIC_THINKING_AND_TOOL, false));
    let expected = vec![
        role_chunk(),
        content_chunk("I'll check the weather in Paris."),
        tool_start_chunk(0, "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "get_weather"),
        arguments_chunk(0, "{\"location\":"),
        arguments_chunk(0, " \"Paris, FR\"}"),
        chunk(json!({}), json!("tool_calls")),
        json!("[DONE]"),
    ];
    assert_eq!(events, expected);
    let fold = fold_openai(&events).unwrap();
    let expected_message = json!({
        "role": "assistant",
        "content": "I'll check the weather in Paris.",
        "tool_calls": [{
            "index": 0,
            "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
            "type": "function",
            "function": { "name": "get_weather", "arguments": "{\"location\": \"Paris, FR\"}" },
        }],
    });
    assert_eq!(fold.message, expected_message);
    assert_eq!(fold.finish_reason, "tool_calls");
}

const ANTHROPIC_TWO_TOOLS: &str = r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":610,"output_tokens":1}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_01A09q90qw90lq917835lq9","name":"get_weather","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"city\": \"Par"}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"is\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_01B5Kq8bTgqJ7bWcVw2yYbXg","name":"get_time","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"timezone\": \"Asia/Tokyo\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: content_block_start
data: {"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_01C2","name":"list_cities","input":{}}}

event: content_block_stop
data: {"type":"content_block_stop","index":2}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":120}}

event: message_stop
data: {"type":"message_stop"}

"#;

#[test]
fn parallel_anthropic_tool_calls_are_numbered_by_call() {
    let events = openai_events(&to_openai(ANTHROPIC_TWO_TOOLS, false));
    let expected = vec![
        role_chunk(),
        tool_start_chunk(0, "toolu_01A09q90qw90lq917835lq9", "get_weather"),
        arguments_chunk(0, "{\"city\": \"Par"),
        arguments_chunk(0, "is\"}"),
        tool_start_chunk(1, "toolu_01B5Kq8bTgqJ7bWcVw2yYbXg", "get_time"),
        arguments_chunk(1, "{\"timezone\": \"Asia/Tokyo\"}"),
        tool_start_chunk(2, "toolu_01C2", "list_cities"),
        // A call with no input gets `{}` when its block stops (OpenAI never sends empty arguments).
        arguments_chunk(2, "{}"),
        chunk(json!({}), json!("tool_calls")),
        json!("[DONE]"),
    ];
    assert_eq!(events, expected);
    let fold = fold_openai(&events).unwrap();
    let calls = fold.message["tool_calls"].as_array().unwrap();
    let summary: Vec<(&str, &str, &str)> = calls
        .iter()
        .map(|call| {
            let function = &call["function"];
            (call["id"].as_str().unwrap(), function["name"].as_str().unwrap(), function["arguments"].as_str().unwrap())
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("toolu_01A09q90qw90lq917835lq9", "get_weather", "{\"city\": \"Paris\"}"),
            ("toolu_01B5Kq8bTgqJ7bWcVw2yYbXg", "get_time", "{\"timezone\": \"Asia/Tokyo\"}"),
            ("toolu_01C2", "list_cities", "{}"),
        ]
    );
    assert_eq!(fold.message["content"], "");
}

const ANTHROPIC_CACHED_USAGE: &str = r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":10,"cache_creation_input_tokens":200,"cache_read_input_tokens":1800,"cache_creation":{"ephemeral_5m_input_tokens":200,"ephemeral_1h_input_tokens":0},"output_tokens":1,"service_tier":"standard"}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Once upon a time"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"max_tokens","stop_sequence":null},"usage":{"input_tokens":10,"cache_creation_input_tokens":200,"cache_read_input_tokens":1800,"output_tokens":42,"server_tool_use":null}}

event: message_stop
data: {"type":"message_stop"}

"#;

#[test]
fn anthropic_usage_with_cache_tokens_becomes_the_openai_usage_chunk() {
    let output = to_openai(ANTHROPIC_CACHED_USAGE, true);
    let events = openai_events(&output);
    let expected = vec![
        role_chunk(),
        content_chunk("Once upon a time"),
        chunk(json!({}), json!("length")),
        usage_chunk(2010, 42, 1800),
        json!("[DONE]"),
    ];
    assert_eq!(events, expected);
    let fold = fold_openai(&events).unwrap();
    assert_eq!(fold.finish_reason, "length");
    assert_eq!(fold.usage["prompt_tokens"], 2010);
    // The gateway would count the same tokens from the translated stream as from the provider's.
    let usage = Usage { input_tokens: 2010, output_tokens: 42 };
    assert_eq!(read_usage(&output, ResponseApi::ChatCompletions), (Some(usage), Some(BodyEnd::Completed)));
    assert_eq!(read_usage(ANTHROPIC_CACHED_USAGE, ResponseApi::Messages).0, Some(usage));
}

#[test]
fn anthropic_stop_reasons_become_finish_reasons() {
    let cases = [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
        ("model_context_window_exceeded", "length"),
    ];
    for (stop_reason, finish_reason) in cases {
        let input = ANTHROPIC_TEXT.replace("\"end_turn\"", &format!("\"{stop_reason}\""));
        let events = openai_events(&to_openai(&input, false));
        assert_eq!(events[3], chunk(json!({}), json!(finish_reason)), "{stop_reason}");
    }
}

const ANTHROPIC_ERROR: &str = r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"output_tokens":1}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel"}}

event: error
data: {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}, "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy"}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"lo"}}

event: message_stop
data: {"type":"message_stop"}

"#;

#[test]
fn an_anthropic_error_event_becomes_an_openai_error_and_ends_the_stream() {
    let output = to_openai(ANTHROPIC_ERROR, true);
    let events = openai_events(&output);
    let error = json!({ "message": "Overloaded", "type": "server_error", "param": null, "code": "overloaded_error" });
    let expected = vec![role_chunk(), content_chunk("Hel"), json!({ "error": error })];
    assert_eq!(events, expected);
    assert_eq!(fold_openai(&events), Err(error));
    assert_eq!(read_usage(&output, ResponseApi::ChatCompletions).1, Some(BodyEnd::Failed));

    // An error as the first event (the provider was overloaded before it began).
    let first = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":\"bad\"}}\n\n";
    let error =
        json!({ "message": "bad", "type": "invalid_request_error", "param": null, "code": "invalid_request_error" });
    assert_eq!(openai_events(&to_openai(first, false)), vec![json!({ "error": error })]);
}

#[test]
fn a_cut_anthropic_stream_stays_cut() {
    let cut_points = [
        // Inside an event, inside the message_delta and message_stop events, between them.
        ANTHROPIC_TEXT.find("\"Hello\"").unwrap(),
        ANTHROPIC_TEXT.find("event: message_delta").unwrap(),
        ANTHROPIC_TEXT.find("event: message_stop").unwrap(),
        ANTHROPIC_TEXT.find("{\"type\":\"message_stop\"").unwrap() + 5,
    ];
    let full = openai_events(&to_openai(ANTHROPIC_TEXT, true));
    for cut in cut_points {
        let output = to_openai(&ANTHROPIC_TEXT[..cut], true);
        let events = openai_events(&output);
        assert!(!events.contains(&json!("[DONE]")), "cut at {cut}: {output}");
        assert_eq!(events[..], full[..events.len()], "cut at {cut}: a prefix of the whole translation");
        let fold = fold_openai(&events).unwrap();
        assert!(!fold.done);
        assert_eq!(read_usage(&output, ResponseApi::ChatCompletions).1, None, "the gateway sees it cut too");
    }
    // Cut right after message_delta: the finish and usage chunks were sent, `[DONE]` is not.
    let cut = ANTHROPIC_TEXT.find("event: message_stop").unwrap();
    assert_eq!(openai_events(&to_openai(&ANTHROPIC_TEXT[..cut], true)).len(), 5);
}

#[test]
fn a_last_anthropic_event_without_its_empty_line_still_counts() {
    let input = ANTHROPIC_TEXT.trim_end();
    assert_eq!(openai_events(&to_openai(input, false)).last(), Some(&json!("[DONE]")));
}

#[test]
fn bytes_after_message_stop_are_ignored() {
    let input = format!("{ANTHROPIC_TEXT}event: content_block_delta\ndata: not json\n\n");
    assert_eq!(to_openai(&input, false), to_openai(ANTHROPIC_TEXT, false));
}

#[test]
fn anthropic_server_tool_blocks_and_unknown_events_are_left_out() {
    let input = r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"output_tokens":1}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"server_tool_use","id":"srvtoolu_014hJH82Qum7Td6UV8gDXThB","name":"web_search","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"query\": \"weather\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"web_search_tool_result","tool_use_id":"srvtoolu_014hJH82Qum7Td6UV8gDXThB","content":[]}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: some_future_event
data: {"type":"some_future_event","index":7}

event: content_block_start
data: {"type":"content_block_start","index":2,"content_block":{"type":"text","text":"Sunny"}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"citations_delta","citation":{"type":"web_search_result_location","url":"https://example.com"}}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"text_delta","text":", 21 C."}}

event: content_block_stop
data: {"type":"content_block_stop","index":2}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":30}}

event: message_stop
data: {"type":"message_stop"}

"#;
    let events = openai_events(&to_openai(input, false));
    let expected = vec![
        role_chunk(),
        content_chunk("Sunny"),
        content_chunk(", 21 C."),
        chunk(json!({}), json!("stop")),
        json!("[DONE]"),
    ];
    assert_eq!(events, expected);
}

#[test]
fn an_unreadable_anthropic_stream_ends_with_an_error() {
    let protocol_error = |output: &str| {
        let events = openai_events(output);
        let error = &events.last().unwrap()["error"];
        assert_eq!(error["type"], "server_error", "{output}");
        assert_eq!(error["code"], "invalid_upstream_response", "{output}");
        assert!(error["message"].as_str().unwrap().starts_with("The model provider's stream could not be translated"));
        assert!(fold_openai(&events).is_err());
        events.len()
    };
    let not_json = ANTHROPIC_TEXT.replace("{\"type\": \"ping\"}", "{\"type\": ping}");
    assert_eq!(protocol_error(&to_openai(&not_json, false)), 2);
    let before_start = ANTHROPIC_TEXT.replace("message_start", "message_begin");
    assert_eq!(protocol_error(&to_openai(&before_start, false)), 1);
    let second_start =
        ANTHROPIC_TEXT.replace("event: ping\ndata: {\"type\": \"ping\"}", ANTHROPIC_TEXT.lines().nth(1).unwrap());
    assert_eq!(protocol_error(&to_openai(&second_start, false)), 2);
    let missing_field = ANTHROPIC_TEXT.replace("\"text\":\"Hello\"", "\"txt\":\"Hello\"");
    assert_eq!(protocol_error(&to_openai(&missing_field, false)), 2);
}

/// A text delta of `len` bytes of text, as an Anthropic event.
fn huge_anthropic_delta(len: usize) -> String {
    let text = "x".repeat(len);
    format!("event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"{text}\"}}}}\n\n")
}

#[test]
fn an_anthropic_event_over_a_mebibyte_is_an_error_not_growth() {
    let start = &ANTHROPIC_TEXT[..ANTHROPIC_TEXT.find("event: ping").unwrap()];
    // Just under the bound, an event is translated, in any chunking.
    let fits = format!("{start}{}", huge_anthropic_delta(MAX_EVENT_BYTES - 200));
    for chunk_size in [1 << 10, 1 << 16, usize::MAX] {
        let mut stream = AnthropicToOpenAiStream::new(MODEL, CREATED, false);
        let chunks: Vec<&[u8]> = fits.as_bytes().chunks(chunk_size.min(fits.len())).collect();
        let events = openai_events(std::str::from_utf8(&run(stream_by_ref(&mut stream), &chunks)).unwrap());
        assert_eq!(events.len(), 2);
        assert_eq!(events[1]["choices"][0]["delta"]["content"].as_str().unwrap().len(), MAX_EVENT_BYTES - 200);
    }
    let over = format!("{start}{}{ANTHROPIC_TEXT}", huge_anthropic_delta(MAX_EVENT_BYTES));
    let mut stream = AnthropicToOpenAiStream::new(MODEL, CREATED, false);
    let chunks: Vec<&[u8]> = over.as_bytes().chunks(4096).collect();
    let events = openai_events(std::str::from_utf8(&run(stream_by_ref(&mut stream), &chunks)).unwrap());
    assert_eq!(events.len(), 2, "the start, then the error; nothing after");
    assert_eq!(events[1]["error"]["code"], "invalid_upstream_response");
    assert!(events[1]["error"]["message"].as_str().unwrap().contains("larger than 1048576 bytes"));
}

/// Runs a translation held elsewhere (`run` takes it by value).
fn stream_by_ref<T: Translation>(translation: &mut T) -> impl Translation + '_ {
    struct ByRef<'a, T>(&'a mut T);
    impl<T: Translation> Translation for ByRef<'_, T> {
        fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
            self.0.feed(chunk)
        }
        fn finish(&mut self) -> Vec<u8> {
            self.0.finish()
        }
    }
    ByRef(translation)
}

// ---------------------------------------------------------------------------------------------
// OpenAI Chat Completions chunks -> Anthropic Messages stream

const MESSAGE_ID: &str = "msg_B9MHDbslfkBeAs8l4bebGdFOJ6PeG";

fn message_start() -> Value {
    json!({
        "type": "message_start",
        "message": {
            "id": MESSAGE_ID,
            "type": "message",
            "role": "assistant",
            "model": MODEL,
            "content": [],
            "stop_reason": null,
            "stop_sequence": null,
            "usage": { "input_tokens": 0, "output_tokens": 0 },
        },
    })
}

fn text_start(index: u64) -> Value {
    json!({ "type": "content_block_start", "index": index, "content_block": { "type": "text", "text": "" } })
}

fn tool_start(index: u64, id: &str, name: &str) -> Value {
    let block = json!({ "type": "tool_use", "id": id, "name": name, "input": {} });
    json!({ "type": "content_block_start", "index": index, "content_block": block })
}

fn text_delta(index: u64, text: &str) -> Value {
    json!({ "type": "content_block_delta", "index": index, "delta": { "type": "text_delta", "text": text } })
}

fn json_delta(index: u64, partial_json: &str) -> Value {
    let delta = json!({ "type": "input_json_delta", "partial_json": partial_json });
    json!({ "type": "content_block_delta", "index": index, "delta": delta })
}

fn block_stop(index: u64) -> Value {
    json!({ "type": "content_block_stop", "index": index })
}

fn message_delta(stop_reason: &str, input: u64, cached: u64, output: u64) -> Value {
    json!({
        "type": "message_delta",
        "delta": { "stop_reason": stop_reason, "stop_sequence": null },
        "usage": {
            "input_tokens": input,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": cached,
            "output_tokens": output,
        },
    })
}

fn message_stop() -> Value {
    json!({ "type": "message_stop" })
}

/// An OpenAI chunk of completion `chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG` as a `data:` line pair.
fn openai_chunk(delta: &str, finish_reason: &str) -> String {
    format!(
        "data: {{\"id\":\"chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG\",\"object\":\"chat.completion.chunk\",\"created\":1741570283,\"model\":\"gpt-4o-2024-08-06\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_fc9f1d7035\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"logprobs\":null,\"finish_reason\":{finish_reason}}}],\"usage\":null}}\n\n"
    )
}

fn openai_usage(prompt: u64, cached: u64, completion: u64) -> String {
    format!(
        "data: {{\"id\":\"chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG\",\"object\":\"chat.completion.chunk\",\"created\":1741570283,\"model\":\"gpt-4o-2024-08-06\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_fc9f1d7035\",\"choices\":[],\"usage\":{{\"prompt_tokens\":{prompt},\"completion_tokens\":{completion},\"total_tokens\":{},\"prompt_tokens_details\":{{\"cached_tokens\":{cached},\"audio_tokens\":0}},\"completion_tokens_details\":{{\"reasoning_tokens\":0,\"audio_tokens\":0,\"accepted_prediction_tokens\":0,\"rejected_prediction_tokens\":0}}}}}}\n\n",
        prompt + completion
    )
}

const DONE: &str = "data: [DONE]\n\n";

fn openai_text_stream() -> String {
    [
        openai_chunk(r#"{"role":"assistant","content":"","refusal":null}"#, "null"),
        openai_chunk(r#"{"content":"Hello"}"#, "null"),
        openai_chunk(r#"{"content":"! How can I help? \u00e9\"\\n"}"#, "null"),
        openai_chunk("{}", r#""stop""#),
        openai_usage(9, 0, 7),
        DONE.to_owned(),
    ]
    .concat()
}

#[test]
fn an_openai_text_answer_becomes_anthropic_events() {
    let output = to_anthropic(&openai_text_stream());
    let events = anthropic_events(&output);
    let expected = vec![
        message_start(),
        text_start(0),
        text_delta(0, "Hello"),
        text_delta(0, "! How can I help? \u{e9}\"\\n"),
        block_stop(0),
        message_delta("end_turn", 9, 0, 7),
        message_stop(),
    ];
    assert_eq!(events, expected);
    assert_one_block_at_a_time(&events);
    let fold = fold_anthropic(&events).unwrap();
    let expected_message = json!({
        "id": MESSAGE_ID,
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": [{ "type": "text", "text": "Hello! How can I help? \u{e9}\"\\n" }],
        "stop_reason": "end_turn",
        "stop_sequence": null,
        "usage": { "input_tokens": 9, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 7 },
    });
    assert_eq!(fold, AnthropicFold { message: expected_message, stopped: true });
    let usage = Usage { input_tokens: 9, output_tokens: 7 };
    assert_eq!(read_usage(&output, ResponseApi::Messages), (Some(usage), Some(BodyEnd::Completed)));
}

#[test]
fn an_openai_tool_call_becomes_a_tool_use_block() {
    let input = [
        openai_chunk(
            r#"{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_DdmO9pD3xa9XTPNJ32zg2hcA","type":"function","function":{"name":"get_weather","arguments":""}}],"refusal":null}"#,
            "null",
        ),
        openai_chunk(r#"{"tool_calls":[{"index":0,"function":{"arguments":"{\""}}]}"#, "null"),
        openai_chunk(r#"{"tool_calls":[{"index":0,"function":{"arguments":"location"}}]}"#, "null"),
        openai_chunk(r#"{"tool_calls":[{"index":0,"function":{"arguments":"\":\""}}]}"#, "null"),
        openai_chunk(r#"{"tool_calls":[{"index":0,"function":{"arguments":"Paris"}}]}"#, "null"),
        openai_chunk(r#"{"tool_calls":[{"index":0,"function":{"arguments":"\"}"}}]}"#, "null"),
        openai_chunk("{}", r#""tool_calls""#),
        openai_usage(82, 0, 17),
        DONE.to_owned(),
    ]
    .concat();
    let events = anthropic_events(&to_anthropic(&input));
    let expected = vec![
        message_start(),
        tool_start(0, "call_DdmO9pD3xa9XTPNJ32zg2hcA", "get_weather"),
        json_delta(0, "{\""),
        json_delta(0, "location"),
        json_delta(0, "\":\""),
        json_delta(0, "Paris"),
        json_delta(0, "\"}"),
        block_stop(0),
        message_delta("tool_use", 82, 0, 17),
        message_stop(),
    ];
    assert_eq!(events, expected);
    assert_one_block_at_a_time(&events);
    let message = fold_anthropic(&events).unwrap().message;
    let block = json!({ "type": "tool_use", "id": "call_DdmO9pD3xa9XTPNJ32zg2hcA", "name": "get_weather", "input": { "location": "Paris" } });
    assert_eq!(message["content"], json!([block]));
    assert_eq!(message["stop_reason"], "tool_use");
}

/// Text, then two tool calls whose argument fragments interleave: the first call's last fragment
/// comes after the second call began.
fn openai_interleaved_tools_stream() -> String {
    [
        openai_chunk(r#"{"role":"assistant","content":"Checking both."}"#, "null"),
        openai_chunk(
            r#"{"tool_calls":[{"index":0,"id":"call_A","type":"function","function":{"name":"get_weather","arguments":"{\"city\":"}}]}"#,
            "null",
        ),
        openai_chunk(
            r#"{"tool_calls":[{"index":1,"id":"call_B","type":"function","function":{"name":"get_time","arguments":""}}]}"#,
            "null",
        ),
        openai_chunk(r#"{"tool_calls":[{"index":1,"function":{"arguments":"{\"city\":\"Tokyo\"}"}}]}"#, "null"),
        openai_chunk(r#"{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]}"#, "null"),
        openai_chunk("{}", r#""tool_calls""#),
        openai_usage(120, 0, 40),
        DONE.to_owned(),
    ]
    .concat()
}

#[test]
fn interleaved_openai_tool_calls_keep_each_fragment_with_its_call() {
    let events = anthropic_events(&to_anthropic(&openai_interleaved_tools_stream()));
    let expected = vec![
        message_start(),
        text_start(0),
        text_delta(0, "Checking both."),
        block_stop(0),
        // The first call streams live; the second waits, whole, until the turn finishes: every
        // block starts, receives its deltas and stops before the next one starts.
        tool_start(1, "call_A", "get_weather"),
        json_delta(1, "{\"city\":"),
        json_delta(1, "\"Paris\"}"),
        block_stop(1),
        tool_start(2, "call_B", "get_time"),
        json_delta(2, "{\"city\":\"Tokyo\"}"),
        block_stop(2),
        message_delta("tool_use", 120, 0, 40),
        message_stop(),
    ];
    assert_eq!(events, expected);
    let message = fold_anthropic(&events).unwrap().message;
    let expected_content = json!([
        { "type": "text", "text": "Checking both." },
        { "type": "tool_use", "id": "call_A", "name": "get_weather", "input": { "city": "Paris" } },
        { "type": "tool_use", "id": "call_B", "name": "get_time", "input": { "city": "Tokyo" } },
    ]);
    assert_eq!(message["content"], expected_content);
}

#[test]
fn parallel_openai_tool_calls_in_turn_are_one_block_at_a_time() {
    // OpenAI's own shape for parallel calls: each call whole before the next; some compatible servers
    // send every call whole in one chunk, repeat the id on each fragment, or end with `stop`.
    let in_turn = [
        openai_chunk(r#"{"role":"assistant","content":null}"#, "null"),
        openai_chunk(r#"{"tool_calls":[{"index":0,"id":"call_A","type":"function","function":{"name":"get_weather","arguments":""}}]}"#, "null"),
        openai_chunk(r#"{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":\"Paris\"}"}}]}"#, "null"),
        openai_chunk(r#"{"tool_calls":[{"index":1,"id":"call_B","type":"function","function":{"name":"get_time","arguments":""}}]}"#, "null"),
        openai_chunk(r#"{"tool_calls":[{"index":1,"id":"call_B","type":"function","function":{"arguments":"{\"city\":\"Tokyo\"}"}}]}"#, "null"),
        openai_chunk("{}", r#""tool_calls""#),
        DONE.to_owned(),
    ]
    .concat();
    let one_chunk = [
        openai_chunk(
            r#"{"role":"assistant","tool_calls":[{"index":0,"id":"call_A","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},{"index":1,"id":"call_B","type":"function","function":{"name":"get_time","arguments":"{\"city\":\"Tokyo\"}"}}]}"#,
            r#""stop""#,
        ),
        DONE.to_owned(),
    ]
    .concat();
    for input in [in_turn, one_chunk] {
        let events = anthropic_events(&to_anthropic(&input));
        assert_one_block_at_a_time(&events);
        let fold = fold_anthropic(&events).unwrap();
        let expected_content = json!([
            { "type": "tool_use", "id": "call_A", "name": "get_weather", "input": { "city": "Paris" } },
            { "type": "tool_use", "id": "call_B", "name": "get_time", "input": { "city": "Tokyo" } },
        ]);
        assert_eq!(fold.message["content"], expected_content, "{input}");
        assert_eq!(fold.message["stop_reason"], "tool_use");
        assert!(fold.stopped);
        // No usage chunk: message_delta still comes, with zero counts.
        assert_eq!(events[events.len() - 2], message_delta("tool_use", 0, 0, 0));
    }
}

#[test]
fn openai_usage_with_cached_tokens_becomes_anthropic_usage() {
    let input = [
        openai_chunk(r#"{"role":"assistant","content":"","refusal":null}"#, "null"),
        openai_chunk(r#"{"content":"Once upon a time"}"#, "null"),
        openai_chunk("{}", r#""length""#),
        openai_usage(2006, 1920, 300),
        DONE.to_owned(),
    ]
    .concat();
    let output = to_anthropic(&input);
    let events = anthropic_events(&output);
    let expected = vec![
        message_start(),
        text_start(0),
        text_delta(0, "Once upon a time"),
        block_stop(0),
        message_delta("max_tokens", 86, 1920, 300),
        message_stop(),
    ];
    assert_eq!(events, expected);
    let usage = &fold_anthropic(&events).unwrap().message["usage"];
    let expected_usage = json!({ "input_tokens": 86, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 1920, "output_tokens": 300 });
    assert_eq!(*usage, expected_usage);
    // The gateway would count the same tokens from the translated stream as from the provider's.
    let usage = Usage { input_tokens: 2006, output_tokens: 300 };
    assert_eq!(read_usage(&output, ResponseApi::Messages), (Some(usage), Some(BodyEnd::Completed)));
    assert_eq!(read_usage(&input, ResponseApi::ChatCompletions).0, Some(usage));
}

#[test]
fn the_message_delta_waits_for_the_usage_chunk() {
    let input = openai_text_stream();
    let before_usage = input.find("\"choices\":[],").map(|at| input[..at].rfind("data:").unwrap()).unwrap();
    let mut stream = OpenAiToAnthropicStream::new(MODEL);
    let first = String::from_utf8(stream.feed(&input.as_bytes()[..before_usage])).unwrap();
    assert!(first.ends_with("event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"));
    let usage_end = before_usage + input[before_usage..].find("\n\n").unwrap() + 2;
    let second = String::from_utf8(stream.feed(&input.as_bytes()[before_usage..usage_end])).unwrap();
    assert_eq!(anthropic_events(&second), vec![message_delta("end_turn", 9, 0, 7)]);
    let third = String::from_utf8(stream.feed(&input.as_bytes()[usage_end..])).unwrap();
    assert_eq!(anthropic_events(&third), vec![message_stop()]);
    assert!(stream.finish().is_empty());
}

#[test]
fn openai_finish_reasons_and_refusals_become_stop_reasons() {
    let cases = [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("function_call", "tool_use"),
        ("content_filter", "refusal"),
        ("something_new", "end_turn"),
    ];
    for (finish_reason, stop_reason) in cases {
        let input = openai_text_stream().replace("\"stop\"", &format!("\"{finish_reason}\""));
        let events = anthropic_events(&to_anthropic(&input));
        assert_eq!(events[5], message_delta(stop_reason, 9, 0, 7), "{finish_reason}");
    }
    let refusal = [
        openai_chunk(r#"{"role":"assistant","content":null,"refusal":""}"#, "null"),
        openai_chunk(r#"{"refusal":"I'm sorry, "}"#, "null"),
        openai_chunk(r#"{"refusal":"I can't help with that."}"#, "null"),
        openai_chunk("{}", r#""stop""#),
        DONE.to_owned(),
    ]
    .concat();
    let message = fold_anthropic(&anthropic_events(&to_anthropic(&refusal))).unwrap().message;
    assert_eq!(message["content"], json!([{ "type": "text", "text": "I'm sorry, I can't help with that." }]));
    assert_eq!(message["stop_reason"], "refusal");
}

#[test]
fn an_openai_error_becomes_an_anthropic_error_and_ends_the_stream() {
    let input = [
        openai_chunk(r#"{"role":"assistant","content":""}"#, "null"),
        openai_chunk(r#"{"content":"Hel"}"#, "null"),
        "data: {\"error\":{\"message\":\"The server had an error while processing your request. Sorry about that!\",\"type\":\"server_error\",\"param\":null,\"code\":null}}\n\n".to_owned(),
        openai_chunk(r#"{"content":"lo"}"#, "null"),
        openai_chunk("{}", r#""stop""#),
        DONE.to_owned(),
    ]
    .concat();
    let output = to_anthropic(&input);
    let events = anthropic_events(&output);
    let error = json!({ "type": "api_error", "message": "The server had an error while processing your request. Sorry about that!" });
    let expected =
        vec![message_start(), text_start(0), text_delta(0, "Hel"), json!({ "type": "error", "error": error })];
    assert_eq!(events, expected);
    assert_eq!(fold_anthropic(&events), Err(error));
    assert_eq!(read_usage(&output, ResponseApi::Messages).1, Some(BodyEnd::Failed));

    // A bare string error, as some compatible servers send, first in the stream.
    let first = "data: {\"error\": \"model overloaded\"}\n\n";
    let error = json!({ "type": "error", "error": { "type": "api_error", "message": "model overloaded" } });
    assert_eq!(anthropic_events(&to_anthropic(first)), vec![error]);
    // `"error": null` is no error.
    let null_error = openai_text_stream().replace("\"usage\":null", "\"usage\":null,\"error\":null");
    assert_eq!(to_anthropic(&null_error), to_anthropic(&openai_text_stream()));
}

#[test]
fn a_cut_openai_stream_stays_cut() {
    let input = openai_text_stream();
    let full = anthropic_events(&to_anthropic(&input));
    let finish_chunk = input.find("\"finish_reason\":\"stop\"").unwrap();
    let cut_points = [
        input.find("Hello").unwrap(),
        input.find("data: {\"id\":\"chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG\",\"object\":\"chat.completion.chunk\",\"created\":1741570283,\"model\":\"gpt-4o-2024-08-06\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_fc9f1d7035\",\"choices\":[{\"index\":0,\"delta\":{}").unwrap(),
        finish_chunk,
        input.find("\"choices\":[]").unwrap(),
        input.find(DONE).unwrap(),
        input.find(DONE).unwrap() + 9,
    ];
    for cut in cut_points {
        let output = to_anthropic(&input[..cut]);
        let events = anthropic_events(&output);
        assert!(!events.contains(&message_stop()), "cut at {cut}: {output}");
        assert_eq!(events[..], full[..events.len()], "cut at {cut}: a prefix of the whole translation");
        assert!(!fold_anthropic(&events).unwrap().stopped);
        assert_eq!(read_usage(&output, ResponseApi::Messages).1, None, "the gateway sees it cut too");
    }
    // `[DONE]` without a finish_reason: the provider's stream was cut, nothing is made up.
    let no_finish = [openai_chunk(r#"{"role":"assistant","content":"Hel"}"#, "null"), DONE.to_owned()].concat();
    let events = anthropic_events(&to_anthropic(&no_finish));
    assert_eq!(events, vec![message_start(), text_start(0), text_delta(0, "Hel")]);
}

#[test]
fn an_openai_stream_that_opens_without_choices_starts_with_its_first_choice() {
    // Azure OpenAI opens with the prompt's content-filter results, with no id and no choices.
    let azure_first = "data: {\"choices\":[],\"created\":0,\"id\":\"\",\"model\":\"\",\"object\":\"\",\"prompt_filter_results\":[{\"prompt_index\":0,\"content_filter_results\":{}}]}\n\n";
    let input = format!("{azure_first}{}", openai_text_stream());
    assert_eq!(to_anthropic(&input), to_anthropic(&openai_text_stream()));
    // Without a usable id, the message still has one.
    let no_id = openai_text_stream().replace("chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG", "");
    assert_eq!(anthropic_events(&to_anthropic(&no_id))[0]["message"]["id"], "msg_unknown");
}

#[test]
fn an_unreadable_openai_stream_ends_with_an_error() {
    let protocol_error = |output: &str| {
        let events = anthropic_events(output);
        let last = events.last().unwrap();
        assert_eq!(last["type"], "error", "{output}");
        assert_eq!(last["error"]["type"], "api_error");
        assert!(last["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("The model provider's stream could not be translated"));
        events.len()
    };
    let not_json = openai_text_stream().replace("{\"content\":\"Hello\"}", "{\"content\":Hello}");
    assert_eq!(protocol_error(&to_anthropic(&not_json)), 2);
    let text = "x".repeat(MAX_EVENT_BYTES);
    let huge = openai_text_stream().replace("\"content\":\"Hello\"", &format!("\"content\":\"{text}\""));
    let mut stream = OpenAiToAnthropicStream::new(MODEL);
    let chunks: Vec<&[u8]> = huge.as_bytes().chunks(8192).collect();
    let output = String::from_utf8(run(stream_by_ref(&mut stream), &chunks)).unwrap();
    assert_eq!(protocol_error(&output), 2, "message_start (the first chunk had no text), then the error");
    assert!(output.contains("larger than 1048576 bytes"));
}

#[test]
fn a_last_openai_event_without_its_empty_line_still_counts() {
    let input = openai_text_stream();
    assert_eq!(anthropic_events(&to_anthropic(input.trim_end())).last(), Some(&message_stop()));
}

#[test]
fn a_tool_input_sent_whole_in_its_start_block_becomes_the_arguments() {
    let stream = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"f\",\"input\":{\"a\":1}}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":5}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    );
    let events = openai_events(&to_openai(stream, false));
    let fold = fold_openai(&events).unwrap();
    assert_eq!(fold.message["tool_calls"][0]["function"]["arguments"], "{\"a\":1}");
}
