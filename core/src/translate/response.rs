//! Non-streaming response bodies between the APIs: an Anthropic message as an OpenAI
//! `chat.completion`, and the reverse, plus the mappings the stream translation shares (ids, finish
//! and stop reasons, usage).

use super::{join_texts, member, parse_arguments};
use crate::api_error::{ApiError, ErrorKind};
use serde_json::{json, Map, Value};

/// The OpenAI completion id of an Anthropic message: its id behind `chatcmpl-`, so the provider's
/// id stays traceable (`msg_01X` -> `chatcmpl-msg_01X`).
pub fn openai_completion_id(anthropic_id: &str) -> String {
    format!("chatcmpl-{anthropic_id}")
}

/// The Anthropic message id of an OpenAI completion: `msg_` and the id without `chatcmpl-`
/// (`chatcmpl-B9MHD` -> `msg_B9MHD`); an id that already starts with `msg_` is kept.
pub fn anthropic_message_id(openai_id: &str) -> String {
    let bare = openai_id.strip_prefix("chatcmpl-").unwrap_or(openai_id);
    if bare.starts_with("msg_") {
        bare.to_owned()
    } else {
        format!("msg_{bare}")
    }
}

/// OpenAI's `finish_reason` for an Anthropic `stop_reason`.
pub fn finish_reason_for(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        // end_turn, stop_sequence, pause_turn (a server-tool pause: the turn ends here for the client).
        _ => "stop",
    }
}

/// Anthropic's `stop_reason` for an OpenAI `finish_reason`. OpenAI does not say which stop sequence
/// ended a `stop`, so that is always `end_turn` (with `stop_sequence: null`).
pub fn stop_reason_for(finish_reason: &str) -> &'static str {
    match finish_reason {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}

fn count(usage: Option<&Value>, key: &str) -> u64 {
    usage.and_then(|usage| usage.get(key)).and_then(Value::as_u64).unwrap_or(0)
}

/// An Anthropic `usage` object as OpenAI's: the prompt counts every input token, cached or not
/// (`input_tokens + cache_creation_input_tokens + cache_read_input_tokens`), and the cache reads
/// are the `cached_tokens`.
pub fn openai_usage_from_anthropic(usage: &Value) -> Value {
    let usage = Some(usage);
    let cached = count(usage, "cache_read_input_tokens");
    let prompt =
        count(usage, "input_tokens").saturating_add(count(usage, "cache_creation_input_tokens")).saturating_add(cached);
    let completion = count(usage, "output_tokens");
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt.saturating_add(completion),
        "prompt_tokens_details": { "cached_tokens": cached },
    })
}

/// An OpenAI `usage` object as Anthropic's: the cached part of the prompt is
/// `cache_read_input_tokens`, the rest `input_tokens` (so their sum is the prompt, as in Anthropic).
pub fn anthropic_usage_from_openai(usage: &Value) -> Value {
    let usage = Some(usage);
    let prompt = count(usage, "prompt_tokens");
    let cached = count(usage.and_then(|usage| usage.get("prompt_tokens_details")), "cached_tokens").min(prompt);
    json!({
        "input_tokens": prompt - cached,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
        "output_tokens": count(usage, "completion_tokens"),
    })
}

fn invalid_upstream(what: &str) -> ApiError {
    ApiError::new(
        ErrorKind::Internal,
        "invalid_upstream_response",
        format!("The model provider answered with a response that could not be translated: {what}."),
    )
}

fn parse_response(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    serde_json::from_slice::<Map<String, Value>>(body).map_err(|_| invalid_upstream("not a JSON object"))
}

/// Translates an Anthropic Messages response body (a `message`) into an OpenAI `chat.completion`
/// for a client that asked for `client_model`, created at `created` (Unix seconds). Text blocks are
/// joined into `content` (`null` when there is none but tool calls), `tool_use` blocks become
/// `tool_calls`, thinking and server-tool blocks are left out.
pub fn anthropic_to_openai_chat_response(body: &[u8], client_model: &str, created: u64) -> Result<Vec<u8>, ApiError> {
    let response = parse_response(body)?;
    let blocks = response.get("content").and_then(Value::as_array).ok_or_else(|| invalid_upstream("no `content`"))?;
    let mut texts = Vec::new();
    let mut calls = Vec::new();
    for block in blocks {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => texts.extend(block.get("text").and_then(Value::as_str)),
            Some("tool_use") => calls.push(json!({
                "id": block.get("id").and_then(Value::as_str).unwrap_or_default(),
                "type": "function",
                "function": {
                    "name": block.get("name").and_then(Value::as_str).unwrap_or_default(),
                    "arguments": member(block, "input").map_or_else(|| "{}".to_owned(), Value::to_string),
                },
            })),
            _ => {}
        }
    }
    let content = if texts.is_empty() && !calls.is_empty() { Value::Null } else { join_texts(texts, "").into() };
    let mut message = json!({ "role": "assistant", "content": content, "refusal": null });
    if let (false, Some(message)) = (calls.is_empty(), message.as_object_mut()) {
        message.insert("tool_calls".into(), Value::Array(calls));
    }
    let stop_reason = response.get("stop_reason").and_then(Value::as_str).unwrap_or("end_turn");
    let id = response.get("id").and_then(Value::as_str).unwrap_or_default();
    let completion = json!({
        "id": openai_completion_id(id),
        "object": "chat.completion",
        "created": created,
        "model": client_model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish_reason_for(stop_reason),
        }],
        "usage": openai_usage_from_anthropic(response.get("usage").unwrap_or(&Value::Null)),
    });
    Ok(completion.to_string().into_bytes())
}

/// Translates an OpenAI `chat.completion` response body into an Anthropic Messages response for a
/// client that asked for `client_model`. The first choice is the message: its text (and refusal)
/// becomes a text block, its tool calls `tool_use` blocks. Arguments that are not a JSON object
/// (a call cut by the token cap) become `input: {}`, as Anthropic answers a cut tool call.
pub fn openai_chat_to_anthropic_response(body: &[u8], client_model: &str) -> Result<Vec<u8>, ApiError> {
    let response = parse_response(body)?;
    let choice = response
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|choices| choices.first())
        .ok_or_else(|| invalid_upstream("no `choices`"))?;
    let message = choice.get("message").ok_or_else(|| invalid_upstream("no `message` in the choice"))?;
    let refusal = member(message, "refusal").and_then(Value::as_str);
    let mut content = Vec::new();
    let text = message_text(message);
    for text in [text.as_str(), refusal.unwrap_or_default()] {
        if !text.is_empty() {
            content.push(json!({ "type": "text", "text": text }));
        }
    }
    for call in member(message, "tool_calls").and_then(Value::as_array).into_iter().flatten() {
        content.push(tool_use_block(call));
    }
    let finish_reason = choice.get("finish_reason").and_then(Value::as_str).unwrap_or("stop");
    let has_tool_calls = content.iter().any(|block| block["type"] == "tool_use");
    let stop_reason = match finish_reason {
        _ if refusal.is_some() => "refusal",
        // Some OpenAI-compatible servers end a turn of tool calls with `stop` (as the stream does).
        "stop" if has_tool_calls => "tool_use",
        other => stop_reason_for(other),
    };
    let id = response.get("id").and_then(Value::as_str).unwrap_or_default();
    let answer = json!({
        "id": anthropic_message_id(id),
        "type": "message",
        "role": "assistant",
        "model": client_model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": null,
        "usage": anthropic_usage_from_openai(response.get("usage").unwrap_or(&Value::Null)),
    });
    Ok(answer.to_string().into_bytes())
}

/// The text of an OpenAI message: a string, or text parts joined.
fn message_text(message: &Value) -> String {
    match member(message, "content") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => join_texts(parts.iter().filter_map(|part| part.get("text")?.as_str()), ""),
        _ => String::new(),
    }
}

fn tool_use_block(call: &Value) -> Value {
    let function = call.get("function");
    let field = |key: &str| function.and_then(|f| f.get(key)).and_then(Value::as_str).unwrap_or_default();
    let input = parse_arguments(field("arguments")).unwrap_or_else(|_| Value::Object(Map::new()));
    json!({
        "type": "tool_use",
        "id": call.get("id").and_then(Value::as_str).unwrap_or_default(),
        "name": field("name"),
        "input": input,
    })
}
