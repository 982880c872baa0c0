//! OpenAI Chat Completions request -> Anthropic Messages request.

use super::{bad_request, check_fields, member, parse_arguments, parse_request, present, FieldAction, FieldRule};
use crate::api_error::ApiError;
use serde_json::{json, Map, Value};

use FieldAction::{Dropped, Refused, RefusedUnless, Translated};

const TARGET: &str = "the Anthropic Messages API";

/// Image media types Anthropic accepts.
const IMAGE_TYPES: [&str; 4] = ["image/jpeg", "image/png", "image/gif", "image/webp"];

/// What [`openai_chat_to_anthropic_request`] does with each top-level field of an OpenAI Chat
/// Completions request. Any field not listed is refused as unrecognized (as OpenAI itself does),
/// and `null` is read as absent.
pub const OPENAI_TO_ANTHROPIC_FIELDS: &[FieldRule] = &[
    FieldRule { field: "model", action: Translated("model"), why: "Replaced by the provider's model name." },
    FieldRule {
        field: "messages",
        action: Translated("system + messages"),
        why: "system and developer messages become the top-level `system`, in order; consecutive messages of one \
              role are merged (Anthropic requires alternation); assistant `tool_calls` become `tool_use` blocks and \
              `tool` messages user `tool_result` blocks; image_url parts become image blocks and PDF file parts \
              document blocks. Message `name` and image `detail` are dropped.",
    },
    FieldRule {
        field: "max_completion_tokens",
        action: Translated("max_tokens"),
        why: "Same cap. Wins over `max_tokens` when both are sent; when neither is, the configured default applies \
              (Anthropic requires one).",
    },
    FieldRule { field: "max_tokens", action: Translated("max_tokens"), why: "Same cap (deprecated OpenAI name)." },
    FieldRule {
        field: "temperature",
        action: Translated("temperature, clamped to 1"),
        why: "OpenAI's range is 0-2, Anthropic's 0-1 with the same default (1): values up to 1 pass unchanged, \
              values above 1 are sent as 1, the most varied Anthropic allows. Values outside 0-2 are refused.",
    },
    FieldRule {
        field: "top_p",
        action: Translated("top_p"),
        why: "Same meaning; 1 (the default, no cut) is left out because newer Claude models refuse `temperature` \
              and `top_p` together.",
    },
    FieldRule {
        field: "stop",
        action: Translated("stop_sequences"),
        why: "A string or a list; Anthropic takes a list.",
    },
    FieldRule { field: "stream", action: Translated("stream"), why: "Same meaning." },
    FieldRule {
        field: "stream_options",
        action: Dropped,
        why: "Anthropic streams always report usage; the stream translation answers `include_usage` itself.",
    },
    FieldRule {
        field: "n",
        action: RefusedUnless { accepted: "1", neutral: is_one },
        why: "Anthropic returns one answer per request.",
    },
    FieldRule {
        field: "user",
        action: Translated("metadata.user_id"),
        why: "An end-user identifier for abuse detection in both APIs.",
    },
    FieldRule {
        field: "safety_identifier",
        action: Translated("metadata.user_id"),
        why: "OpenAI's successor of `user`; wins over `user` when both are sent.",
    },
    FieldRule {
        field: "tools",
        action: Translated("tools"),
        why: "Function tools: name, description, parameters -> name, description, input_schema. `strict` is dropped \
              (the schema is still sent). Other tool types are refused.",
    },
    FieldRule {
        field: "tool_choice",
        action: Translated("tool_choice"),
        why: "auto, none, required -> auto, none, any; a named function -> {type: tool, name}.",
    },
    FieldRule {
        field: "parallel_tool_calls",
        action: Translated("tool_choice.disable_parallel_tool_use"),
        why: "false -> disable_parallel_tool_use: true; true is Anthropic's default.",
    },
    FieldRule {
        field: "seed",
        action: Dropped,
        why: "Determinism is best effort in OpenAI and not offered by Anthropic; nothing observable depends on it.",
    },
    FieldRule {
        field: "store",
        action: Dropped,
        why: "Stores the completion in OpenAI's dashboard; the answer is the same.",
    },
    FieldRule {
        field: "metadata",
        action: Dropped,
        why: "Tags for stored completions; Anthropic's metadata only takes user_id. The answer is the same.",
    },
    FieldRule { field: "service_tier", action: Dropped, why: "Scheduling and price only; the answer is the same." },
    FieldRule {
        field: "prediction",
        action: Dropped,
        why: "Predicted outputs only speed generation up; the answer is the same.",
    },
    FieldRule {
        field: "prompt_cache_key",
        action: Dropped,
        why: "A cache-routing hint; Anthropic caches on explicit breakpoints and the answer is the same.",
    },
    FieldRule {
        field: "response_format",
        action: RefusedUnless { accepted: r#"{"type": "text"}"#, neutral: is_text_format },
        why: "Anthropic's Messages API has no JSON mode or JSON-schema output; dropping it would return free text \
              where JSON was required (use a tool with the schema instead).",
    },
    FieldRule {
        field: "logprobs",
        action: RefusedUnless { accepted: "false", neutral: is_false },
        why: "Anthropic returns no log probabilities.",
    },
    FieldRule {
        field: "top_logprobs",
        action: RefusedUnless { accepted: "0", neutral: is_zero },
        why: "Anthropic returns no log probabilities.",
    },
    FieldRule {
        field: "logit_bias",
        action: RefusedUnless { accepted: "{}", neutral: is_empty_object },
        why: "Anthropic cannot bias tokens; dropping it would let through tokens the client banned.",
    },
    FieldRule {
        field: "presence_penalty",
        action: RefusedUnless { accepted: "0", neutral: is_zero },
        why: "Anthropic has no repetition penalties; a non-zero penalty changes the answer.",
    },
    FieldRule {
        field: "frequency_penalty",
        action: RefusedUnless { accepted: "0", neutral: is_zero },
        why: "Anthropic has no repetition penalties; a non-zero penalty changes the answer.",
    },
    FieldRule { field: "audio", action: Refused, why: "Anthropic models do not produce audio." },
    FieldRule {
        field: "modalities",
        action: RefusedUnless { accepted: r#"["text"]"#, neutral: is_text_modalities },
        why: "Anthropic models produce text only.",
    },
    FieldRule {
        field: "reasoning_effort",
        action: RefusedUnless { accepted: r#""none""#, neutral: is_none_effort },
        why: "Anthropic's extended thinking has another contract (a token budget, thinking blocks in the answer) \
              and is not translated.",
    },
    FieldRule {
        field: "verbosity",
        action: RefusedUnless { accepted: r#""medium""#, neutral: is_medium },
        why: "Anthropic has no verbosity control; another value changes the answer.",
    },
    FieldRule {
        field: "web_search_options",
        action: Refused,
        why: "Web search is not translated to Anthropic's server tools.",
    },
    FieldRule { field: "functions", action: Refused, why: "Deprecated by OpenAI; send `tools` instead." },
    FieldRule { field: "function_call", action: Refused, why: "Deprecated by OpenAI; send `tool_choice` instead." },
];

fn is_one(value: &Value) -> bool {
    value.as_f64() == Some(1.0)
}

fn is_false(value: &Value) -> bool {
    value == &Value::Bool(false)
}

fn is_zero(value: &Value) -> bool {
    value.as_f64() == Some(0.0)
}

fn is_empty_object(value: &Value) -> bool {
    value.as_object().is_some_and(Map::is_empty)
}

fn is_text_format(value: &Value) -> bool {
    value.get("type").and_then(Value::as_str) == Some("text")
}

fn is_text_modalities(value: &Value) -> bool {
    value.as_array().is_some_and(|modalities| modalities.iter().all(|m| m.as_str() == Some("text")))
}

fn is_none_effort(value: &Value) -> bool {
    value.as_str() == Some("none")
}

fn is_medium(value: &Value) -> bool {
    value.as_str() == Some("medium")
}

/// Translates an OpenAI `/v1/chat/completions` request body into an Anthropic `/v1/messages` request
/// body for `model`. `default_max_tokens` is the output cap sent when the client sets none
/// (Anthropic requires one). Fields are handled as [`OPENAI_TO_ANTHROPIC_FIELDS`] says; a field the
/// translation cannot honour is a 400 naming it.
pub fn openai_chat_to_anthropic_request(
    body: &[u8],
    model: &str,
    default_max_tokens: u64,
) -> Result<Vec<u8>, ApiError> {
    let request = parse_request(body)?;
    check_fields(&request, OPENAI_TO_ANTHROPIC_FIELDS, TARGET)?;
    let messages = match present(&request, "messages") {
        Some(Value::Array(messages)) => messages,
        Some(_) => return Err(bad_request("invalid_type", "messages", "`messages` must be an array of messages.")),
        None => {
            return Err(bad_request(
                "missing_required_parameter",
                "messages",
                "Missing required parameter: 'messages'.",
            ))
        }
    };
    let mut conversation = Conversation::default();
    for (i, message) in messages.iter().enumerate() {
        conversation.add(i, message)?;
    }
    let mut out = Map::new();
    out.insert("model".into(), model.into());
    out.insert("max_tokens".into(), max_tokens(&request, default_max_tokens)?.into());
    conversation.write(&mut out);
    sampling(&request, &mut out)?;
    user_id(&request, &mut out)?;
    tools(&request, &mut out)?;
    Ok(Value::Object(out).to_string().into_bytes())
}

/// The Anthropic conversation being built: system blocks and alternating turns.
#[derive(Default)]
struct Conversation {
    system: Vec<Value>,
    turns: Vec<(&'static str, Vec<Value>)>,
}

impl Conversation {
    fn add(&mut self, i: usize, message: &Value) -> Result<(), ApiError> {
        let role = message.get("role").and_then(Value::as_str).unwrap_or_default();
        let content = member(message, "content");
        match role {
            "system" | "developer" => {
                let blocks = text_only_blocks(i, content)?;
                self.system.extend(blocks);
            }
            "user" => self.push("user", user_blocks(i, content)?),
            "assistant" => self.push("assistant", assistant_blocks(i, message)?),
            "tool" => self.push("user", vec![tool_result(i, message)?]),
            "function" => {
                return Err(bad_request(
                    "unsupported_parameter",
                    "messages[].role",
                    format!("messages[{i}] has the deprecated role `function`; send a `tool` message instead."),
                ))
            }
            _ => {
                return Err(bad_request(
                    "invalid_value",
                    "messages[].role",
                    format!("messages[{i}].role must be system, developer, user, assistant or tool; got {role:?}."),
                ))
            }
        }
        Ok(())
    }

    /// Appends a turn, merged into the previous one when the role repeats (a tool message after
    /// another, or a user message after tool results, so parallel results share one turn).
    fn push(&mut self, role: &'static str, blocks: Vec<Value>) {
        if blocks.is_empty() {
            return;
        }
        match self.turns.last_mut() {
            Some((last_role, last_blocks)) if *last_role == role => last_blocks.extend(blocks),
            _ => self.turns.push((role, blocks)),
        }
    }

    fn write(self, out: &mut Map<String, Value>) {
        if !self.system.is_empty() {
            out.insert("system".into(), simplified(self.system));
        }
        let messages = self
            .turns
            .into_iter()
            .map(|(role, blocks)| json!({ "role": role, "content": simplified(blocks) }))
            .collect::<Vec<_>>();
        out.insert("messages".into(), Value::Array(messages));
    }
}

/// Content of one plain text block as a string (the shape a plain client would send), else the blocks.
fn simplified(blocks: Vec<Value>) -> Value {
    if let [Value::Object(block)] = blocks.as_slice() {
        if let (Some("text"), Some(text), 2) =
            (block.get("type").and_then(Value::as_str), block.get("text").and_then(Value::as_str), block.len())
        {
            return Value::from(text);
        }
    }
    Value::Array(blocks)
}

fn text_block(text: &str) -> Option<Value> {
    (!text.is_empty()).then(|| json!({ "type": "text", "text": text }))
}

/// Content that may only be text (system, developer and tool messages).
fn text_only_blocks(i: usize, content: Option<&Value>) -> Result<Vec<Value>, ApiError> {
    match content {
        Some(Value::String(text)) => Ok(text_block(text).into_iter().collect()),
        Some(Value::Array(parts)) => {
            let mut blocks = Vec::new();
            for (j, part) in parts.iter().enumerate() {
                match (part.get("type").and_then(Value::as_str), part.get("text").and_then(Value::as_str)) {
                    (Some("text"), Some(text)) => blocks.extend(text_block(text)),
                    (kind, _) => return Err(unsupported_part(i, j, kind, "only text parts are accepted here")),
                }
            }
            Ok(blocks)
        }
        None => Ok(Vec::new()),
        Some(_) => Err(invalid_content(i)),
    }
}

fn invalid_content(i: usize) -> ApiError {
    bad_request(
        "invalid_type",
        "messages[].content",
        format!("messages[{i}].content must be a string or an array of parts."),
    )
}

fn unsupported_part(i: usize, j: usize, kind: Option<&str>, hint: &str) -> ApiError {
    let kind = kind.unwrap_or("untyped");
    bad_request(
        "unsupported_content",
        "messages[].content[]",
        format!(
            "messages[{i}].content[{j}] is a `{kind}` part, which this model cannot take through {TARGET}; {hint}."
        ),
    )
}

fn user_blocks(i: usize, content: Option<&Value>) -> Result<Vec<Value>, ApiError> {
    let parts = match content {
        Some(Value::String(text)) => return Ok(text_block(text).into_iter().collect()),
        Some(Value::Array(parts)) => parts,
        _ => return Err(invalid_content(i)),
    };
    let mut blocks = Vec::new();
    for (j, part) in parts.iter().enumerate() {
        let kind = part.get("type").and_then(Value::as_str);
        match kind {
            Some("text") => match part.get("text").and_then(Value::as_str) {
                Some(text) => blocks.extend(text_block(text)),
                None => return Err(unsupported_part(i, j, kind, "a text part needs a string `text`")),
            },
            Some("image_url") => blocks.push(image_block(i, j, part.get("image_url"))?),
            Some("file") => blocks.push(document_block(i, j, part.get("file"))?),
            _ => return Err(unsupported_part(i, j, kind, "send text, image_url or file (PDF) parts")),
        }
    }
    Ok(blocks)
}

/// `data:<media type>;base64,<data>` -> (media type, data).
fn parse_data_url(url: &str) -> Option<(&str, &str)> {
    let (header, data) = url.strip_prefix("data:")?.split_once(',')?;
    Some((header.strip_suffix(";base64")?, data))
}

fn image_block(i: usize, j: usize, image_url: Option<&Value>) -> Result<Value, ApiError> {
    const PARAM: &str = "messages[].content[].image_url.url";
    let url = image_url.and_then(|image| image.get("url").and_then(Value::as_str).or(image.as_str()));
    let url = url.ok_or_else(|| {
        bad_request("invalid_value", PARAM, format!("messages[{i}].content[{j}].image_url.url must be a string."))
    })?;
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(json!({ "type": "image", "source": { "type": "url", "url": url } }));
    }
    match parse_data_url(url) {
        Some((media_type, data)) if IMAGE_TYPES.contains(&media_type) => Ok(json!({
            "type": "image",
            "source": { "type": "base64", "media_type": media_type, "data": data },
        })),
        _ => Err(bad_request(
            "invalid_image_url",
            PARAM,
            format!(
                "messages[{i}].content[{j}].image_url.url must be an http(s) URL or a base64 data URL of a JPEG, \
                 PNG, GIF or WebP image (data:image/png;base64,...)."
            ),
        )),
    }
}

fn document_block(i: usize, j: usize, file: Option<&Value>) -> Result<Value, ApiError> {
    let data = file.and_then(|file| file.get("file_data")).and_then(Value::as_str).and_then(parse_data_url);
    let Some(("application/pdf", data)) = data else {
        return Err(bad_request(
            "unsupported_content",
            "messages[].content[].file",
            format!(
                "messages[{i}].content[{j}].file must carry a PDF as `file_data` \
                 (data:application/pdf;base64,...); uploaded file ids cannot be sent through {TARGET}."
            ),
        ));
    };
    let mut block = json!({
        "type": "document",
        "source": { "type": "base64", "media_type": "application/pdf", "data": data },
    });
    if let (Some(title), Some(object)) =
        (file.and_then(|file| file.get("filename")).and_then(Value::as_str), block.as_object_mut())
    {
        object.insert("title".into(), title.into());
    }
    Ok(block)
}

fn assistant_blocks(i: usize, message: &Value) -> Result<Vec<Value>, ApiError> {
    for (field, param) in [("audio", "messages[].audio"), ("function_call", "messages[].function_call")] {
        if member(message, field).is_some() {
            return Err(bad_request(
                "unsupported_parameter",
                param,
                format!(
                    "messages[{i}].{field} cannot be sent through {TARGET}; replay the answer as text or tool_calls."
                ),
            ));
        }
    }
    let mut blocks = Vec::new();
    match member(message, "content") {
        None => {}
        Some(Value::String(text)) => blocks.extend(text_block(text)),
        Some(Value::Array(parts)) => {
            for (j, part) in parts.iter().enumerate() {
                let text = part.get("text").or(part.get("refusal")).and_then(Value::as_str);
                match (part.get("type").and_then(Value::as_str), text) {
                    (Some("text" | "refusal"), Some(text)) => blocks.extend(text_block(text)),
                    (kind, _) => return Err(unsupported_part(i, j, kind, "send text or refusal parts")),
                }
            }
        }
        Some(_) => return Err(invalid_content(i)),
    }
    if let Some(refusal) = member(message, "refusal").and_then(Value::as_str) {
        blocks.extend(text_block(refusal));
    }
    match member(message, "tool_calls") {
        None => {}
        Some(Value::Array(calls)) => {
            for (j, call) in calls.iter().enumerate() {
                blocks.push(tool_use(i, j, call)?);
            }
        }
        Some(_) => {
            let message = format!("messages[{i}].tool_calls must be an array.");
            return Err(bad_request("invalid_type", "messages[].tool_calls", message));
        }
    }
    Ok(blocks)
}

/// A tool-call id Anthropic accepts (`^[a-zA-Z0-9_-]+$`), the same for the call and its result.
fn tool_id(id: &str) -> String {
    id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect()
}

fn tool_use(i: usize, j: usize, call: &Value) -> Result<Value, ApiError> {
    if let Some(kind) = call.get("type").and_then(Value::as_str).filter(|kind| *kind != "function") {
        let message = format!("messages[{i}].tool_calls[{j}] is a `{kind}` call; only function calls can be sent.");
        return Err(bad_request("unsupported_parameter", "messages[].tool_calls[].type", message));
    }
    let function = call.get("function");
    let name = function.and_then(|f| f.get("name")).and_then(Value::as_str).ok_or_else(|| {
        let message = format!("messages[{i}].tool_calls[{j}].function.name must be a string.");
        bad_request("missing_required_parameter", "messages[].tool_calls[].function.name", message)
    })?;
    let id = call.get("id").and_then(Value::as_str).ok_or_else(|| {
        let message = format!("messages[{i}].tool_calls[{j}].id must be a string.");
        bad_request("missing_required_parameter", "messages[].tool_calls[].id", message)
    })?;
    let arguments = function.and_then(|f| f.get("arguments")).and_then(Value::as_str).unwrap_or_default();
    let input = parse_arguments(arguments).map_err(|e| {
        bad_request(
            "invalid_tool_arguments",
            "messages[].tool_calls[].function.arguments",
            format!("messages[{i}].tool_calls[{j}].function.arguments must be a JSON object encoded as a string: {e}."),
        )
    })?;
    Ok(json!({ "type": "tool_use", "id": tool_id(id), "name": name, "input": input }))
}

fn tool_result(i: usize, message: &Value) -> Result<Value, ApiError> {
    let id = message.get("tool_call_id").and_then(Value::as_str).ok_or_else(|| {
        let message = format!("messages[{i}].tool_call_id must be the id of the tool call this message answers.");
        bad_request("missing_required_parameter", "messages[].tool_call_id", message)
    })?;
    let mut block = Map::new();
    block.insert("type".into(), "tool_result".into());
    block.insert("tool_use_id".into(), tool_id(id).into());
    match member(message, "content") {
        Some(Value::String(text)) if !text.is_empty() => {
            block.insert("content".into(), text.as_str().into());
        }
        content @ Some(Value::Array(_)) => {
            let blocks = text_only_blocks(i, content)?;
            if !blocks.is_empty() {
                block.insert("content".into(), Value::Array(blocks));
            }
        }
        None | Some(Value::String(_)) => {}
        Some(_) => return Err(invalid_content(i)),
    }
    Ok(Value::Object(block))
}

fn max_tokens(request: &Map<String, Value>, default_max_tokens: u64) -> Result<u64, ApiError> {
    for field in ["max_completion_tokens", "max_tokens"] {
        if let Some(value) = present(request, field) {
            return value
                .as_u64()
                .filter(|tokens| *tokens > 0)
                .ok_or_else(|| bad_request("invalid_value", field, format!("`{field}` must be a positive integer.")));
        }
    }
    Ok(default_max_tokens)
}

fn sampling(request: &Map<String, Value>, out: &mut Map<String, Value>) -> Result<(), ApiError> {
    if let Some(value) = present(request, "temperature") {
        let temperature = value.as_f64().filter(|t| (0.0..=2.0).contains(t)).ok_or_else(|| {
            bad_request("invalid_value", "temperature", "`temperature` must be a number between 0 and 2.")
        })?;
        out.insert("temperature".into(), if temperature > 1.0 { json!(1.0) } else { value.clone() });
    }
    // 1 (OpenAI's default) samples from everything: left out, as newer Claude models refuse
    // `temperature` and `top_p` together and many OpenAI clients send `top_p: 1` by habit.
    if let Some(top_p) = present(request, "top_p").filter(|top_p| top_p.as_f64() != Some(1.0)) {
        out.insert("top_p".into(), top_p.clone());
    }
    if let Some(stop) = present(request, "stop") {
        let sequences = match stop {
            Value::String(sequence) => vec![Value::from(sequence.as_str())],
            Value::Array(sequences) if sequences.iter().all(Value::is_string) => sequences.clone(),
            _ => return Err(bad_request("invalid_type", "stop", "`stop` must be a string or an array of strings.")),
        };
        if !sequences.is_empty() {
            out.insert("stop_sequences".into(), Value::Array(sequences));
        }
    }
    match present(request, "stream") {
        None => {}
        Some(stream @ Value::Bool(_)) => {
            out.insert("stream".into(), stream.clone());
        }
        Some(_) => return Err(bad_request("invalid_type", "stream", "`stream` must be a boolean.")),
    }
    Ok(())
}

fn user_id(request: &Map<String, Value>, out: &mut Map<String, Value>) -> Result<(), ApiError> {
    for field in ["safety_identifier", "user"] {
        if let Some(value) = present(request, field) {
            let id = value
                .as_str()
                .ok_or_else(|| bad_request("invalid_type", field, format!("`{field}` must be a string.")))?;
            out.insert("metadata".into(), json!({ "user_id": id }));
            return Ok(());
        }
    }
    Ok(())
}

fn tools(request: &Map<String, Value>, out: &mut Map<String, Value>) -> Result<(), ApiError> {
    let tools = match present(request, "tools") {
        None => Vec::new(),
        Some(Value::Array(tools)) => {
            tools.iter().enumerate().map(|(j, tool)| tool_definition(j, tool)).collect::<Result<_, _>>()?
        }
        Some(_) => return Err(bad_request("invalid_type", "tools", "`tools` must be an array of tools.")),
    };
    let parallel = match present(request, "parallel_tool_calls") {
        None => true,
        Some(Value::Bool(parallel)) => *parallel,
        Some(_) => {
            return Err(bad_request("invalid_type", "parallel_tool_calls", "`parallel_tool_calls` must be a boolean."))
        }
    };
    let choice = present(request, "tool_choice").map(tool_choice).transpose()?;
    let kind = choice.as_ref().and_then(|choice| choice.get("type")).and_then(Value::as_str).map(str::to_owned);
    let kind = kind.as_deref();
    if tools.is_empty() {
        if matches!(kind, Some("any" | "tool")) {
            let message = "`tool_choice` requires `tools`: send the tools the model may call, or remove `tool_choice`.";
            return Err(bad_request("invalid_value", "tool_choice", message));
        }
        return Ok(());
    }
    let mut choice = match choice {
        Some(choice) => choice,
        None if parallel => Map::new(),
        None => Map::from_iter([("type".to_owned(), Value::from("auto"))]),
    };
    if !parallel && kind != Some("none") {
        choice.insert("disable_parallel_tool_use".into(), true.into());
    }
    out.insert("tools".into(), Value::Array(tools));
    if !choice.is_empty() {
        out.insert("tool_choice".into(), Value::Object(choice));
    }
    Ok(())
}

fn tool_definition(j: usize, tool: &Value) -> Result<Value, ApiError> {
    let kind = tool.get("type").and_then(Value::as_str);
    if kind != Some("function") {
        let kind = kind.unwrap_or("untyped");
        let message = format!("tools[{j}] is a `{kind}` tool; only `function` tools can be sent through {TARGET}.");
        return Err(bad_request("unsupported_parameter", "tools[].type", message));
    }
    let function = tool.get("function");
    let name = function.and_then(|f| f.get("name")).and_then(Value::as_str).ok_or_else(|| {
        let message = format!("tools[{j}].function.name must be a string.");
        bad_request("missing_required_parameter", "tools[].function.name", message)
    })?;
    let schema = function
        .and_then(|f| member(f, "parameters"))
        .cloned()
        .unwrap_or_else(|| json!({ "type": "object", "properties": {} }));
    let mut definition = Map::new();
    definition.insert("name".into(), name.into());
    if let Some(description) = function.and_then(|f| member(f, "description")) {
        definition.insert("description".into(), description.clone());
    }
    definition.insert("input_schema".into(), schema);
    Ok(Value::Object(definition))
}

fn tool_choice(choice: &Value) -> Result<Map<String, Value>, ApiError> {
    let kind = match choice {
        Value::String(mode) if mode == "auto" => "auto",
        Value::String(mode) if mode == "none" => "none",
        Value::String(mode) if mode == "required" => "any",
        Value::Object(_) if choice.get("type").and_then(Value::as_str) == Some("function") => {
            let name = choice.get("function").and_then(|f| f.get("name")).and_then(Value::as_str).ok_or_else(|| {
                bad_request(
                    "missing_required_parameter",
                    "tool_choice",
                    "`tool_choice.function.name` must be a string.",
                )
            })?;
            return Ok(Map::from_iter([("type".to_owned(), "tool".into()), ("name".to_owned(), name.into())]));
        }
        _ => {
            let message = "`tool_choice` must be \"auto\", \"none\", \"required\" or {\"type\": \"function\", \
                           \"function\": {\"name\": ...}}; other choices cannot be sent through \
                           the Anthropic Messages API.";
            return Err(bad_request("invalid_value", "tool_choice", message));
        }
    };
    Ok(Map::from_iter([("type".to_owned(), kind.into())]))
}
