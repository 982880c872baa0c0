//! The mock provider's tool use, in both APIs: a request that offers tools and has no tool result
//! yet gets a call of its first tool (its first property set to "Paris"); a request whose last
//! message is a tool result gets an answer quoting that result.

use serde_json::{json, Value};

/// One tool call the mock makes.
#[derive(Debug, Clone)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// The arguments as a JSON text.
    pub arguments: String,
}

/// What a request asks of the mock's tools.
pub enum ToolTurn {
    Call(ToolCall),
    /// The last message is a tool result with this text.
    AfterResult(String),
    None,
}

pub fn tool_turn(path: &str, request: &Value) -> ToolTurn {
    let last = request["messages"].as_array().and_then(|messages| messages.last()).cloned().unwrap_or(Value::Null);
    if let Some(result) = tool_result_text(path, &last) {
        return ToolTurn::AfterResult(result);
    }
    let Some(tool) = request["tools"].as_array().and_then(|tools| tools.first()) else { return ToolTurn::None };
    let (name, schema) = match path {
        "/v1/messages" => (&tool["name"], &tool["input_schema"]),
        _ => (&tool["function"]["name"], &tool["function"]["parameters"]),
    };
    let first_property = schema["properties"].as_object().and_then(|properties| properties.keys().next().cloned());
    let arguments = match first_property {
        Some(property) => json!({ property: "Paris" }),
        None => json!({}),
    };
    let id = match path {
        "/v1/messages" => "toolu_mock_1",
        _ => "call_mock_1",
    };
    ToolCall { id: id.to_owned(), name: name.as_str().unwrap_or("tool").to_owned(), arguments: arguments.to_string() }
        .into()
}

impl From<ToolCall> for ToolTurn {
    fn from(call: ToolCall) -> ToolTurn {
        ToolTurn::Call(call)
    }
}

fn tool_result_text(path: &str, last: &Value) -> Option<String> {
    match path {
        "/v1/messages" => {
            let block = last["content"].as_array()?.iter().find(|block| block["type"] == "tool_result")?;
            match &block["content"] {
                Value::String(text) => Some(text.clone()),
                Value::Array(parts) => Some(parts.iter().filter_map(|p| p["text"].as_str()).collect()),
                _ => Some(String::new()),
            }
        }
        _ => (last["role"] == "tool").then(|| last["content"].as_str().unwrap_or_default().to_owned()),
    }
}

fn sse(event: Option<&str>, data: &Value) -> String {
    match event {
        Some(event) => format!("event: {event}\ndata: {data}\n\n"),
        None => format!("data: {data}\n\n"),
    }
}

/// An OpenAI chat completion that calls the tool.
pub fn chat_json(model: &str, call: &ToolCall, usage: &Value) -> Value {
    json!({
        "id": "chatcmpl-mock", "object": "chat.completion", "created": 1_700_000_000, "model": model,
        "choices": [ { "index": 0, "finish_reason": "tool_calls", "logprobs": null, "message": {
            "role": "assistant", "content": null,
            "tool_calls": [ { "id": call.id, "type": "function",
                              "function": { "name": call.name, "arguments": call.arguments } } ] } } ],
        "usage": usage,
    })
}

/// The same, streamed: the call's name first, its arguments in two fragments.
pub fn chat_events(model: &str, call: &ToolCall, usage: Option<&Value>) -> Vec<String> {
    let chunk = |delta: Value, finish: Value| {
        json!({ "id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model,
                "choices": [ { "index": 0, "delta": delta, "finish_reason": finish } ] })
    };
    let (first, second) = call.arguments.split_at(call.arguments.len() / 2);
    let mut events = vec![
        sse(None, &chunk(json!({ "role": "assistant", "content": null }), Value::Null)),
        sse(
            None,
            &chunk(
                json!({ "tool_calls": [ { "index": 0, "id": call.id, "type": "function",
                                          "function": { "name": call.name, "arguments": "" } } ] }),
                Value::Null,
            ),
        ),
    ];
    for fragment in [first, second] {
        let delta = json!({ "tool_calls": [ { "index": 0, "function": { "arguments": fragment } } ] });
        events.push(sse(None, &chunk(delta, Value::Null)));
    }
    events.push(sse(None, &chunk(json!({}), json!("tool_calls"))));
    if let Some(usage) = usage {
        let last = json!({ "id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1_700_000_000,
                           "model": model, "choices": [], "usage": usage });
        events.push(sse(None, &last));
    }
    events.push("data: [DONE]\n\n".to_owned());
    events
}

/// An Anthropic message that uses the tool.
pub fn message_json(model: &str, call: &ToolCall, input_tokens: u64, output_tokens: u64) -> Value {
    let input: Value = serde_json::from_str(&call.arguments).unwrap_or(json!({}));
    json!({
        "id": "msg_mock", "type": "message", "role": "assistant", "model": model,
        "content": [ { "type": "tool_use", "id": call.id, "name": call.name, "input": input } ],
        "stop_reason": "tool_use", "stop_sequence": null,
        "usage": { "input_tokens": input_tokens, "output_tokens": output_tokens },
    })
}

/// The same, streamed: `tool_use` block start, `input_json_delta` fragments, stop.
pub fn message_events(model: &str, call: &ToolCall, input_tokens: u64, output_tokens: u64) -> Vec<String> {
    let start = json!({ "type": "message_start", "message": {
        "id": "msg_mock", "type": "message", "role": "assistant", "model": model, "content": [],
        "stop_reason": null, "stop_sequence": null, "usage": { "input_tokens": input_tokens, "output_tokens": 1 } } });
    let (first, second) = call.arguments.split_at(call.arguments.len() / 2);
    let mut events = vec![
        sse(Some("message_start"), &start),
        sse(
            Some("content_block_start"),
            &json!({ "type": "content_block_start", "index": 0,
                     "content_block": { "type": "tool_use", "id": call.id, "name": call.name, "input": {} } }),
        ),
    ];
    for fragment in [first, second] {
        let delta = json!({ "type": "content_block_delta", "index": 0,
                            "delta": { "type": "input_json_delta", "partial_json": fragment } });
        events.push(sse(Some("content_block_delta"), &delta));
    }
    events.push(sse(Some("content_block_stop"), &json!({ "type": "content_block_stop", "index": 0 })));
    events.push(sse(
        Some("message_delta"),
        &json!({ "type": "message_delta", "delta": { "stop_reason": "tool_use", "stop_sequence": null },
                 "usage": { "output_tokens": output_tokens } }),
    ));
    events.push(sse(Some("message_stop"), &json!({ "type": "message_stop" })));
    events
}
