//! Anthropic Messages request -> OpenAI Chat Completions request.

use super::{bad_request, check_fields, join_texts, member, parse_request, present, FieldAction, FieldRule};
use crate::api_error::ApiError;
use serde_json::{json, Map, Value};

use FieldAction::{Dropped, Refused, RefusedUnless, Translated};

const TARGET: &str = "the OpenAI Chat Completions API";

/// What [`anthropic_to_openai_chat_request`] does with each top-level field of an Anthropic
/// Messages request. Any field not listed is refused as unrecognized (as Anthropic itself does),
/// and `null` is read as absent.
pub const ANTHROPIC_TO_OPENAI_FIELDS: &[FieldRule] = &[
    FieldRule { field: "model", action: Translated("model"), why: "Replaced by the provider's model name." },
    FieldRule {
        field: "system",
        action: Translated("messages[0], role system"),
        why: "A string, or text blocks joined with a blank line; `cache_control` is dropped (OpenAI caches \
              prompts by itself).",
    },
    FieldRule {
        field: "messages",
        action: Translated("messages"),
        why: "text and image blocks become content parts (base64 images as data URLs); assistant `tool_use` \
              blocks become `tool_calls` (arguments = the input as a JSON string); each `tool_result` becomes a \
              `tool` message (text blocks joined with a blank line, `is_error` as an \"Error: \" prefix); thinking \
              blocks of earlier turns are dropped (Anthropic ignores them too); `cache_control` and citations are \
              dropped. Documents (PDFs) and server-tool blocks are refused, and so is a final assistant message \
              (a prefill: OpenAI would answer after it, not continue it).",
    },
    FieldRule {
        field: "max_tokens",
        action: Translated("max_tokens"),
        why: "Required, as in Anthropic. Sent as `max_tokens`, the name every OpenAI-compatible server (vLLM, \
              Ollama, LiteLLM) accepts; OpenAI's own reasoning models want `max_completion_tokens` instead.",
    },
    FieldRule {
        field: "temperature",
        action: Translated("temperature"),
        why: "Anthropic's 0-1 is inside OpenAI's 0-2, with the same default (1).",
    },
    FieldRule { field: "top_p", action: Translated("top_p"), why: "Same meaning." },
    FieldRule {
        field: "top_k",
        action: Refused,
        why: "OpenAI has no top-k sampling; dropping it would change how the answer is sampled.",
    },
    FieldRule { field: "stop_sequences", action: Translated("stop"), why: "Same meaning." },
    FieldRule {
        field: "stream",
        action: Translated("stream + stream_options.include_usage"),
        why: "OpenAI streams report usage only when asked; the gateway and the stream translation need it.",
    },
    FieldRule {
        field: "metadata",
        action: Translated("user"),
        why: "`metadata.user_id` is the end-user identifier in both APIs.",
    },
    FieldRule {
        field: "tools",
        action: Translated("tools"),
        why: "Custom tools become function tools (input_schema -> parameters); `cache_control` is dropped. \
              Anthropic server tools (web search, bash, text editor, computer, ...) are refused.",
    },
    FieldRule {
        field: "tool_choice",
        action: Translated("tool_choice + parallel_tool_calls"),
        why: "auto, any, none -> auto, required, none; {type: tool, name} -> a named function; \
              disable_parallel_tool_use: true -> parallel_tool_calls: false.",
    },
    FieldRule {
        field: "thinking",
        action: RefusedUnless { accepted: r#"{"type": "disabled"}"#, neutral: is_disabled },
        why: "OpenAI Chat Completions returns no thinking blocks and takes no thinking budget.",
    },
    FieldRule { field: "service_tier", action: Dropped, why: "Capacity choice only; the answer is the same." },
    FieldRule { field: "container", action: Refused, why: "Code-execution containers exist only on Anthropic." },
    FieldRule { field: "mcp_servers", action: Refused, why: "The MCP connector exists only on Anthropic." },
    FieldRule { field: "context_management", action: Refused, why: "Context editing exists only on Anthropic." },
];

fn is_disabled(value: &Value) -> bool {
    value.get("type").and_then(Value::as_str) == Some("disabled")
}

/// Translates an Anthropic `/v1/messages` request body into an OpenAI `/v1/chat/completions`
/// request body for `model`. Fields are handled as [`ANTHROPIC_TO_OPENAI_FIELDS`] says; a field
/// the translation cannot honour is a 400 naming it.
pub fn anthropic_to_openai_chat_request(body: &[u8], model: &str) -> Result<Vec<u8>, ApiError> {
    let request = parse_request(body)?;
    check_fields(&request, ANTHROPIC_TO_OPENAI_FIELDS, TARGET)?;
    let max_tokens = present(&request, "max_tokens").and_then(Value::as_u64).ok_or_else(|| {
        bad_request("invalid_request_error", "max_tokens", "max_tokens: Field required (a positive integer).")
    })?;
    let Some(Value::Array(input)) = present(&request, "messages") else {
        return Err(bad_request("invalid_request_error", "messages", "messages: Field required (an array)."));
    };
    let mut messages = Vec::new();
    if let Some(system) = present(&request, "system") {
        messages.extend(system_message(system)?);
    }
    for (i, message) in input.iter().enumerate() {
        add_message(i, message, &mut messages)?;
    }
    refuse_prefill(input)?;
    let mut out = Map::new();
    out.insert("model".into(), model.into());
    out.insert("messages".into(), Value::Array(messages));
    out.insert("max_tokens".into(), max_tokens.into());
    for field in ["temperature", "top_p"] {
        if let Some(value) = present(&request, field) {
            out.insert(field.into(), value.clone());
        }
    }
    options(&request, &mut out)?;
    tools(&request, &mut out)?;
    Ok(Value::Object(out).to_string().into_bytes())
}

fn system_message(system: &Value) -> Result<Option<Value>, ApiError> {
    let text = match system {
        Value::String(text) => text.clone(),
        Value::Array(blocks) => {
            let texts = blocks
                .iter()
                .map(|block| match block.get("type").and_then(Value::as_str) {
                    Some("text") => block.get("text").and_then(Value::as_str),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    bad_request("invalid_request_error", "system", "system: only text blocks are accepted.")
                })?;
            join_texts(texts, "\n\n")
        }
        _ => return Err(bad_request("invalid_request_error", "system", "system: must be a string or text blocks.")),
    };
    Ok((!text.is_empty()).then(|| json!({ "role": "system", "content": text })))
}

/// A final assistant message is a prefill in Anthropic (the answer continues it); OpenAI would
/// answer after it instead, so the client would get another answer than it asked for.
fn refuse_prefill(messages: &[Value]) -> Result<(), ApiError> {
    if messages.last().and_then(|m| m.get("role")).and_then(Value::as_str) != Some("assistant") {
        return Ok(());
    }
    let index = messages.len().saturating_sub(1);
    let message = format!(
        "messages.{index}: a final assistant message (a prefill the answer continues) cannot be sent through \
         {TARGET}, which would answer after it instead; end the conversation with a user message."
    );
    Err(bad_request("unsupported_parameter", "messages", message))
}

fn add_message(i: usize, message: &Value, out: &mut Vec<Value>) -> Result<(), ApiError> {
    let role = message.get("role").and_then(Value::as_str).unwrap_or_default();
    match (role, member(message, "content")) {
        ("user" | "assistant", Some(Value::String(text))) => out.push(json!({ "role": role, "content": text })),
        ("user", Some(Value::Array(blocks))) => user_messages(i, blocks, out)?,
        ("assistant", Some(Value::Array(blocks))) => out.push(assistant_message(i, blocks)?),
        ("user" | "assistant", _) => {
            let message = format!("messages.{i}.content: must be a string or an array of content blocks.");
            return Err(bad_request("invalid_request_error", "messages[].content", message));
        }
        _ => {
            let message = format!("messages.{i}.role: must be \"user\" or \"assistant\"; got {role:?}.");
            return Err(bad_request("invalid_request_error", "messages[].role", message));
        }
    }
    Ok(())
}

fn unsupported_block(i: usize, j: usize, kind: Option<&str>) -> ApiError {
    let kind = kind.unwrap_or("untyped");
    bad_request(
        "unsupported_content",
        "messages[].content[]",
        format!(
            "messages.{i}.content.{j}: `{kind}` blocks cannot be sent to this model, which is served through \
             {TARGET}; send text, image, tool_use and tool_result blocks."
        ),
    )
}

/// A user turn: its tool results become `tool` messages, its other blocks user messages, in order.
fn user_messages(i: usize, blocks: &[Value], out: &mut Vec<Value>) -> Result<(), ApiError> {
    let mut parts = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let kind = block.get("type").and_then(Value::as_str);
        match kind {
            Some("text") => parts.push(json!({ "type": "text", "text": block_text(i, j, block)? })),
            Some("image") => parts.push(image_part(i, j, block)?),
            Some("tool_result") => {
                flush_user_parts(&mut parts, out);
                out.push(tool_message(i, j, block)?);
            }
            _ => return Err(unsupported_block(i, j, kind)),
        }
    }
    flush_user_parts(&mut parts, out);
    Ok(())
}

fn block_text(i: usize, j: usize, block: &Value) -> Result<&str, ApiError> {
    block.get("text").and_then(Value::as_str).ok_or_else(|| {
        let message = format!("messages.{i}.content.{j}.text: Field required (a string).");
        bad_request("invalid_request_error", "messages[].content[].text", message)
    })
}

/// One user message of the parts gathered so far: a string when it is one text, else the parts.
fn flush_user_parts(parts: &mut Vec<Value>, out: &mut Vec<Value>) {
    let content = match parts.as_slice() {
        [] => return,
        [part] if part.get("type").and_then(Value::as_str) == Some("text") => {
            part.get("text").cloned().unwrap_or_default()
        }
        _ => Value::Array(parts.clone()),
    };
    parts.clear();
    out.push(json!({ "role": "user", "content": content }));
}

fn image_part(i: usize, j: usize, block: &Value) -> Result<Value, ApiError> {
    let source = block.get("source");
    let field = |key: &str| source.and_then(|s| s.get(key)).and_then(Value::as_str);
    let url = match (field("type"), field("media_type"), field("data"), field("url")) {
        (Some("base64"), Some(media_type), Some(data), _) => format!("data:{media_type};base64,{data}"),
        (Some("url"), _, _, Some(url)) => url.to_owned(),
        _ => {
            let message = format!(
                "messages.{i}.content.{j}.source: only base64 and url image sources can be sent through {TARGET}."
            );
            return Err(bad_request("unsupported_content", "messages[].content[].source", message));
        }
    };
    Ok(json!({ "type": "image_url", "image_url": { "url": url } }))
}

fn tool_message(i: usize, j: usize, block: &Value) -> Result<Value, ApiError> {
    let id = block.get("tool_use_id").and_then(Value::as_str).ok_or_else(|| {
        let message = format!("messages.{i}.content.{j}.tool_use_id: Field required.");
        bad_request("invalid_request_error", "messages[].content[].tool_use_id", message)
    })?;
    let text = match member(block, "content") {
        None => String::new(),
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(blocks)) => {
            let texts = blocks
                .iter()
                .map(|b| b.get("text").and_then(Value::as_str).filter(|_| b.get("type") == Some(&"text".into())))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    let message = format!(
                        "messages.{i}.content.{j}.content: only text can be returned by a tool through {TARGET} \
                         (OpenAI tool messages carry text); send images in a user message instead."
                    );
                    bad_request("unsupported_content", "messages[].content[].content", message)
                })?;
            join_texts(texts, "\n\n")
        }
        Some(_) => {
            let message = format!("messages.{i}.content.{j}.content: must be a string or an array of blocks.");
            return Err(bad_request("invalid_request_error", "messages[].content[].content", message));
        }
    };
    let text = match (block.get("is_error").and_then(Value::as_bool), text.is_empty()) {
        (Some(true), true) => "Error".to_owned(),
        (Some(true), false) => format!("Error: {text}"),
        _ => text,
    };
    Ok(json!({ "role": "tool", "tool_call_id": id, "content": text }))
}

fn assistant_message(i: usize, blocks: &[Value]) -> Result<Value, ApiError> {
    let mut texts = Vec::new();
    let mut calls = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let kind = block.get("type").and_then(Value::as_str);
        match kind {
            Some("text") => texts.push(block_text(i, j, block)?),
            Some("tool_use") => calls.push(tool_call(i, j, block)?),
            Some("thinking" | "redacted_thinking") => {}
            _ => return Err(unsupported_block(i, j, kind)),
        }
    }
    let text = join_texts(texts, "");
    let mut message = Map::new();
    message.insert("role".into(), "assistant".into());
    let content = if text.is_empty() && !calls.is_empty() { Value::Null } else { text.into() };
    message.insert("content".into(), content);
    if !calls.is_empty() {
        message.insert("tool_calls".into(), Value::Array(calls));
    }
    Ok(Value::Object(message))
}

fn tool_call(i: usize, j: usize, block: &Value) -> Result<Value, ApiError> {
    let (Some(id), Some(name)) = (block.get("id").and_then(Value::as_str), block.get("name").and_then(Value::as_str))
    else {
        let message = format!("messages.{i}.content.{j}: a tool_use block needs a string `id` and `name`.");
        return Err(bad_request("invalid_request_error", "messages[].content[]", message));
    };
    let arguments = member(block, "input").map_or_else(|| "{}".to_owned(), Value::to_string);
    Ok(json!({ "id": id, "type": "function", "function": { "name": name, "arguments": arguments } }))
}

/// `stop_sequences`, `stream` and `metadata`.
fn options(request: &Map<String, Value>, out: &mut Map<String, Value>) -> Result<(), ApiError> {
    match present(request, "stop_sequences") {
        None => {}
        Some(Value::Array(stops)) if stops.is_empty() => {}
        Some(Value::Array(stops)) if stops.iter().all(Value::is_string) => {
            out.insert("stop".into(), Value::Array(stops.clone()));
        }
        Some(_) => {
            let message = "stop_sequences: must be an array of strings.";
            return Err(bad_request("invalid_request_error", "stop_sequences", message));
        }
    }
    match present(request, "stream") {
        None => {}
        Some(Value::Bool(stream)) => {
            out.insert("stream".into(), (*stream).into());
            if *stream {
                out.insert("stream_options".into(), json!({ "include_usage": true }));
            }
        }
        Some(_) => return Err(bad_request("invalid_request_error", "stream", "stream: must be a boolean.")),
    }
    if let Some(metadata) = present(request, "metadata") {
        match member(metadata, "user_id") {
            None => {}
            Some(Value::String(user)) => {
                out.insert("user".into(), user.as_str().into());
            }
            Some(_) => {
                let message = "metadata.user_id: must be a string.";
                return Err(bad_request("invalid_request_error", "metadata.user_id", message));
            }
        }
    }
    Ok(())
}

fn tools(request: &Map<String, Value>, out: &mut Map<String, Value>) -> Result<(), ApiError> {
    let tools = match present(request, "tools") {
        None => Vec::new(),
        Some(Value::Array(tools)) => {
            tools.iter().enumerate().map(|(j, tool)| function_tool(j, tool)).collect::<Result<_, _>>()?
        }
        Some(_) => return Err(bad_request("invalid_request_error", "tools", "tools: must be an array of tools.")),
    };
    let (choice, parallel) = match present(request, "tool_choice") {
        None => (None, true),
        Some(choice) => tool_choice(choice)?,
    };
    if tools.is_empty() {
        let forces_a_tool = matches!(&choice, Some(Value::Object(_))) || choice == Some("required".into());
        if forces_a_tool {
            let message = "tool_choice: requires `tools`; send the tools the model may use, or remove tool_choice.";
            return Err(bad_request("invalid_request_error", "tool_choice", message));
        }
        return Ok(());
    }
    out.insert("tools".into(), Value::Array(tools));
    if let Some(choice) = choice {
        out.insert("tool_choice".into(), choice);
    }
    if !parallel {
        out.insert("parallel_tool_calls".into(), false.into());
    }
    Ok(())
}

fn function_tool(j: usize, tool: &Value) -> Result<Value, ApiError> {
    if let Some(kind) = tool.get("type").and_then(Value::as_str).filter(|kind| *kind != "custom") {
        let message = format!(
            "tools.{j}: `{kind}` is an Anthropic server tool, which this model cannot use through {TARGET}; \
             send custom tools (name, description, input_schema) only."
        );
        return Err(bad_request("unsupported_parameter", "tools[].type", message));
    }
    let name = tool.get("name").and_then(Value::as_str).ok_or_else(|| {
        bad_request("invalid_request_error", "tools[].name", format!("tools.{j}.name: Field required."))
    })?;
    let mut function = Map::new();
    function.insert("name".into(), name.into());
    if let Some(description) = member(tool, "description") {
        function.insert("description".into(), description.clone());
    }
    let schema = member(tool, "input_schema").cloned().unwrap_or_else(|| json!({ "type": "object", "properties": {} }));
    function.insert("parameters".into(), schema);
    Ok(json!({ "type": "function", "function": function }))
}

/// The OpenAI `tool_choice` and whether parallel calls stay allowed.
fn tool_choice(choice: &Value) -> Result<(Option<Value>, bool), ApiError> {
    let parallel = member(choice, "disable_parallel_tool_use").and_then(Value::as_bool) != Some(true);
    let converted = match (choice.get("type").and_then(Value::as_str), choice.get("name").and_then(Value::as_str)) {
        (Some("auto"), _) => Value::from("auto"),
        (Some("any"), _) => Value::from("required"),
        (Some("none"), _) => Value::from("none"),
        (Some("tool"), Some(name)) => json!({ "type": "function", "function": { "name": name } }),
        _ => {
            let message = "tool_choice: must be {\"type\": \"auto\" | \"any\" | \"none\"} \
                           or {\"type\": \"tool\", \"name\": ...}.";
            return Err(bad_request("invalid_request_error", "tool_choice", message));
        }
    };
    Ok((Some(converted), parallel))
}
