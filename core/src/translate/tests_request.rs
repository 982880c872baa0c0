//! Request translation tests, from requests shaped like those the official SDKs and agents send.

use super::*;
use crate::api_error::ApiError;
use serde_json::{json, Value};

const CLAUDE: &str = "claude-sonnet-4-5-20250929";
const GPT: &str = "gpt-4o-2024-08-06";

fn to_anthropic(request: &Value) -> Result<Value, ApiError> {
    let body = openai_chat_to_anthropic_request(request.to_string().as_bytes(), CLAUDE, 4096)?;
    Ok(serde_json::from_slice(&body).unwrap())
}

fn to_openai(request: &Value) -> Result<Value, ApiError> {
    let body = anthropic_to_openai_chat_request(request.to_string().as_bytes(), GPT)?;
    Ok(serde_json::from_slice(&body).unwrap())
}

/// `base` with the members of `extra` set at the top level.
fn with(base: &Value, extra: Value) -> Value {
    let mut request = base.clone();
    for (key, value) in extra.as_object().unwrap() {
        request[key] = value.clone();
    }
    request
}

fn openai_base() -> Value {
    json!({ "model": "claude", "messages": [{ "role": "user", "content": "Hi" }] })
}

fn anthropic_base() -> Value {
    json!({ "model": "gpt", "max_tokens": 1024, "messages": [{ "role": "user", "content": "Hi" }] })
}

fn assert_refused(result: Result<Value, ApiError>, param: Option<&str>, case: &str) -> ApiError {
    let error = result.expect_err(case);
    assert_eq!(error.status(), 400, "{case}");
    assert_eq!(error.param, param, "{case}: {}", error.message);
    assert!(!error.message.is_empty(), "{case}");
    error
}

// ---- OpenAI -> Anthropic ----

#[test]
fn openai_minimal_request() {
    let out =
        to_anthropic(&json!({ "model": "gpt-4o", "messages": [{ "role": "user", "content": "Hello!" }] })).unwrap();
    assert_eq!(
        out,
        json!({ "model": CLAUDE, "max_tokens": 4096, "messages": [{ "role": "user", "content": "Hello!" }] })
    );
}

#[test]
fn openai_system_and_developer_messages_become_system_in_order() {
    let request = json!({
        "model": "gpt-4o",
        "messages": [
            { "role": "system", "content": "You are a helpful assistant." },
            { "role": "developer", "content": [{ "type": "text", "text": "Answer in French." }, { "type": "text", "text": "Be brief." }] },
            { "role": "user", "content": "What is the capital of France?" },
            { "role": "assistant", "content": "Paris." },
            { "role": "system", "content": "Now answer in English." },
            { "role": "user", "content": "And of Italy?" },
        ],
    });
    let out = to_anthropic(&request).unwrap();
    assert_eq!(
        out["system"],
        json!([
            { "type": "text", "text": "You are a helpful assistant." },
            { "type": "text", "text": "Answer in French." },
            { "type": "text", "text": "Be brief." },
            { "type": "text", "text": "Now answer in English." },
        ])
    );
    assert_eq!(
        out["messages"],
        json!([
            { "role": "user", "content": "What is the capital of France?" },
            { "role": "assistant", "content": "Paris." },
            { "role": "user", "content": "And of Italy?" },
        ])
    );
    let single = to_anthropic(&with(
        &openai_base(),
        json!({ "messages": [
        { "role": "system", "content": "Be terse." }, { "role": "user", "content": "Hi" },
    ] }),
    ))
    .unwrap();
    assert_eq!(single["system"], "Be terse.");
}

#[test]
fn openai_consecutive_messages_of_one_role_are_merged() {
    let request = json!({
        "model": "gpt-4o",
        "messages": [
            { "role": "user", "content": "First part." },
            { "role": "user", "content": [{ "type": "text", "text": "Second part." }] },
            { "role": "assistant", "content": "One." },
            { "role": "assistant", "content": [{ "type": "text", "text": "Two." }] },
            { "role": "user", "content": "" },
            { "role": "user", "content": "Go on." },
        ],
    });
    assert_eq!(
        to_anthropic(&request).unwrap()["messages"],
        json!([
            { "role": "user", "content": [{ "type": "text", "text": "First part." }, { "type": "text", "text": "Second part." }] },
            { "role": "assistant", "content": [{ "type": "text", "text": "One." }, { "type": "text", "text": "Two." }] },
            { "role": "user", "content": "Go on." },
        ])
    );
}

#[test]
fn openai_images_and_pdfs_become_blocks() {
    let request = json!({
        "model": "gpt-4o",
        "messages": [{
            "role": "user",
            "content": [
                { "type": "text", "text": "What's in these?" },
                { "type": "image_url", "image_url": { "url": "https://upload.wikimedia.org/wikipedia/commons/a/a7/Camponotus_flavomarginatus_ant.jpg", "detail": "high" } },
                { "type": "image_url", "image_url": { "url": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk" } },
                { "type": "file", "file": { "filename": "report.pdf", "file_data": "data:application/pdf;base64,JVBERi0xLjQK" } },
            ],
        }],
    });
    assert_eq!(
        to_anthropic(&request).unwrap()["messages"][0]["content"],
        json!([
            { "type": "text", "text": "What's in these?" },
            { "type": "image", "source": { "type": "url", "url": "https://upload.wikimedia.org/wikipedia/commons/a/a7/Camponotus_flavomarginatus_ant.jpg" } },
            { "type": "image", "source": { "type": "base64", "media_type": "image/png", "data": "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk" } },
            { "type": "document", "source": { "type": "base64", "media_type": "application/pdf", "data": "JVBERi0xLjQK" }, "title": "report.pdf" },
        ])
    );
}

#[test]
fn openai_parallel_tool_calls_and_results() {
    let request = json!({
        "model": "gpt-4o",
        "messages": [
            { "role": "user", "content": "What's the weather in Paris and Tokyo?" },
            {
                "role": "assistant",
                "content": null,
                "refusal": null,
                "tool_calls": [
                    { "id": "call_8nLQy1AFYjHa3ObJ7sb4lTBB", "type": "function", "function": { "name": "get_weather", "arguments": "{\"location\": \"Paris, France\"}" } },
                    { "id": "call_wFjb6OOdTA2ZbVhsxhkFe6Ck", "type": "function", "function": { "name": "get_weather", "arguments": "{\"location\": \"Tokyo, Japan\", \"unit\": \"celsius\"}" } },
                    { "id": "call.with:odd/chars", "type": "function", "function": { "name": "get_time", "arguments": "" } },
                ],
            },
            { "role": "tool", "tool_call_id": "call_8nLQy1AFYjHa3ObJ7sb4lTBB", "content": "{\"temperature\": 18, \"conditions\": \"cloudy\"}" },
            { "role": "tool", "tool_call_id": "call_wFjb6OOdTA2ZbVhsxhkFe6Ck", "content": [{ "type": "text", "text": "24C, sunny" }] },
            { "role": "tool", "tool_call_id": "call.with:odd/chars", "content": "" },
            { "role": "user", "content": "Which is warmer?" },
        ],
    });
    assert_eq!(
        to_anthropic(&request).unwrap()["messages"],
        json!([
            { "role": "user", "content": "What's the weather in Paris and Tokyo?" },
            { "role": "assistant", "content": [
                { "type": "tool_use", "id": "call_8nLQy1AFYjHa3ObJ7sb4lTBB", "name": "get_weather", "input": { "location": "Paris, France" } },
                { "type": "tool_use", "id": "call_wFjb6OOdTA2ZbVhsxhkFe6Ck", "name": "get_weather", "input": { "location": "Tokyo, Japan", "unit": "celsius" } },
                { "type": "tool_use", "id": "call_with_odd_chars", "name": "get_time", "input": {} },
            ] },
            { "role": "user", "content": [
                { "type": "tool_result", "tool_use_id": "call_8nLQy1AFYjHa3ObJ7sb4lTBB", "content": "{\"temperature\": 18, \"conditions\": \"cloudy\"}" },
                { "type": "tool_result", "tool_use_id": "call_wFjb6OOdTA2ZbVhsxhkFe6Ck", "content": [{ "type": "text", "text": "24C, sunny" }] },
                { "type": "tool_result", "tool_use_id": "call_with_odd_chars" },
                { "type": "text", "text": "Which is warmer?" },
            ] },
        ])
    );
}

#[test]
fn openai_assistant_text_with_tool_call_and_refusal_history() {
    let request = with(
        &openai_base(),
        json!({ "messages": [
        { "role": "user", "content": "Look it up." },
        { "role": "assistant", "content": "Let me check.", "tool_calls": [
            { "id": "call_1", "type": "function", "function": { "name": "search", "arguments": "{\"q\":\"rust\"}" } },
        ] },
        { "role": "tool", "tool_call_id": "call_1", "content": "Rust is a language." },
        { "role": "assistant", "content": [{ "type": "refusal", "refusal": "I can't help with that." }] },
        { "role": "user", "content": "ok" },
    ] }),
    );
    let messages = to_anthropic(&request).unwrap()["messages"].clone();
    assert_eq!(
        messages[1]["content"],
        json!([
            { "type": "text", "text": "Let me check." },
            { "type": "tool_use", "id": "call_1", "name": "search", "input": { "q": "rust" } },
        ])
    );
    assert_eq!(messages[3], json!({ "role": "assistant", "content": "I can't help with that." }));
}

#[test]
fn openai_tools_and_tool_choice() {
    let weather = json!({
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the current weather in a given location",
            "parameters": { "type": "object", "properties": { "location": { "type": "string" } }, "required": ["location"], "additionalProperties": false },
            "strict": true,
        },
    });
    let bare = json!({ "type": "function", "function": { "name": "ping" } });
    let base = with(&openai_base(), json!({ "tools": [weather, bare] }));
    let out = to_anthropic(&base).unwrap();
    assert_eq!(
        out["tools"],
        json!([
            {
                "name": "get_weather",
                "description": "Get the current weather in a given location",
                "input_schema": { "type": "object", "properties": { "location": { "type": "string" } }, "required": ["location"], "additionalProperties": false },
            },
            { "name": "ping", "input_schema": { "type": "object", "properties": {} } },
        ])
    );
    assert!(out.get("tool_choice").is_none());
    let cases = [
        (json!({ "tool_choice": "auto" }), json!({ "type": "auto" })),
        (json!({ "tool_choice": "none" }), json!({ "type": "none" })),
        (json!({ "tool_choice": "required" }), json!({ "type": "any" })),
        (
            json!({ "tool_choice": { "type": "function", "function": { "name": "get_weather" } } }),
            json!({ "type": "tool", "name": "get_weather" }),
        ),
        (json!({ "parallel_tool_calls": false }), json!({ "type": "auto", "disable_parallel_tool_use": true })),
        (
            json!({ "tool_choice": "required", "parallel_tool_calls": false }),
            json!({ "type": "any", "disable_parallel_tool_use": true }),
        ),
        (json!({ "tool_choice": "none", "parallel_tool_calls": false }), json!({ "type": "none" })),
        (json!({ "tool_choice": "auto", "parallel_tool_calls": true }), json!({ "type": "auto" })),
    ];
    for (extra, expected) in cases {
        assert_eq!(to_anthropic(&with(&base, extra.clone())).unwrap()["tool_choice"], expected, "{extra}");
    }
    // Without tools, choices that ask for no tool are dropped.
    for extra in [json!({ "tool_choice": "none" }), json!({ "tool_choice": "auto", "parallel_tool_calls": false })] {
        let out = to_anthropic(&with(&openai_base(), extra.clone())).unwrap();
        assert!(out.get("tool_choice").is_none() && out.get("tools").is_none(), "{extra}");
    }
}

#[test]
fn openai_sampling_limits_and_metadata() {
    let request = with(
        &openai_base(),
        json!({
            "temperature": 0.7, "top_p": 0.9, "stop": ["\n\nHuman:", "END"], "max_completion_tokens": 300,
            "max_tokens": 999, "stream": true, "stream_options": { "include_usage": true }, "user": "user-1234",
            "seed": 42, "store": true, "metadata": { "session": "abc" }, "service_tier": "auto",
            "prediction": { "type": "content", "content": "draft" }, "prompt_cache_key": "k1", "n": 1,
            "logprobs": false, "presence_penalty": 0, "frequency_penalty": 0.0, "logit_bias": {},
            "response_format": { "type": "text" }, "modalities": ["text"], "top_logprobs": null, "audio": null,
        }),
    );
    assert_eq!(
        to_anthropic(&request).unwrap(),
        json!({
            "model": CLAUDE, "max_tokens": 300, "messages": [{ "role": "user", "content": "Hi" }],
            "temperature": 0.7, "top_p": 0.9, "stop_sequences": ["\n\nHuman:", "END"], "stream": true,
            "metadata": { "user_id": "user-1234" },
        })
    );
    let cases = [
        (json!({ "temperature": 1.5 }), "temperature", json!(1.0)),
        (json!({ "temperature": 0 }), "temperature", json!(0)),
        (json!({ "temperature": 2 }), "temperature", json!(1.0)),
        (json!({ "stop": "###" }), "stop_sequences", json!(["###"])),
        (json!({ "max_tokens": 77 }), "max_tokens", json!(77)),
        (json!({ "stream": false }), "stream", json!(false)),
        (json!({ "top_p": 1 }), "top_p", Value::Null),
        (json!({ "top_p": 1.0, "temperature": 0.2 }), "top_p", Value::Null),
        (json!({ "user": "u", "safety_identifier": "hashed-id" }), "metadata", json!({ "user_id": "hashed-id" })),
    ];
    for (extra, field, expected) in cases {
        assert_eq!(to_anthropic(&with(&openai_base(), extra.clone())).unwrap()[field], expected, "{extra}");
    }
    let out = to_anthropic(&with(&openai_base(), json!({ "stop": [] }))).unwrap();
    assert!(out.get("stop_sequences").is_none());
}

#[test]
fn openai_refusals_name_the_field() {
    let weather = json!([{ "type": "function", "function": { "name": "get_weather", "parameters": {} } }]);
    let cases: Vec<(Value, Option<&str>)> = vec![
        (json!({ "n": 2 }), Some("n")),
        (json!({ "logprobs": true }), Some("logprobs")),
        (json!({ "top_logprobs": 5 }), Some("top_logprobs")),
        (json!({ "logit_bias": { "50256": -100 } }), Some("logit_bias")),
        (json!({ "presence_penalty": 0.5 }), Some("presence_penalty")),
        (json!({ "frequency_penalty": -1 }), Some("frequency_penalty")),
        (json!({ "audio": { "voice": "alloy", "format": "wav" } }), Some("audio")),
        (json!({ "modalities": ["text", "audio"] }), Some("modalities")),
        (json!({ "response_format": { "type": "json_object" } }), Some("response_format")),
        (
            json!({ "response_format": { "type": "json_schema", "json_schema": { "name": "x", "schema": {} } } }),
            Some("response_format"),
        ),
        (json!({ "reasoning_effort": "high" }), Some("reasoning_effort")),
        (json!({ "verbosity": "low" }), Some("verbosity")),
        (json!({ "web_search_options": {} }), Some("web_search_options")),
        (json!({ "functions": [{ "name": "f" }] }), Some("functions")),
        (json!({ "function_call": "auto" }), Some("function_call")),
        (json!({ "temperature": 2.5 }), Some("temperature")),
        (json!({ "temperature": "hot" }), Some("temperature")),
        (json!({ "max_tokens": 0 }), Some("max_tokens")),
        (json!({ "max_completion_tokens": -5 }), Some("max_completion_tokens")),
        (json!({ "stop": 42 }), Some("stop")),
        (json!({ "stream": "yes" }), Some("stream")),
        (json!({ "user": 7 }), Some("user")),
        (json!({ "tool_choice": "required" }), Some("tool_choice")),
        (
            json!({ "tools": weather, "tool_choice": { "type": "allowed_tools", "allowed_tools": {} } }),
            Some("tool_choice"),
        ),
        (json!({ "tools": weather, "parallel_tool_calls": "no" }), Some("parallel_tool_calls")),
        (json!({ "tools": [{ "type": "custom", "custom": { "name": "grammar" } }] }), Some("tools[].type")),
        (json!({ "tools": [{ "type": "function", "function": {} }] }), Some("tools[].function.name")),
        (json!({ "tools": {} }), Some("tools")),
        (json!({ "messages": "Hi" }), Some("messages")),
        (json!({ "messages": null }), Some("messages")),
        (json!({ "frobnicate": true }), None),
    ];
    for (extra, param) in cases {
        assert_refused(to_anthropic(&with(&openai_base(), extra.clone())), param, &extra.to_string());
    }
}

#[test]
fn openai_message_refusals_name_the_path() {
    let call = |arguments: &str| {
        json!([
            { "role": "user", "content": "go" },
            { "role": "assistant", "content": null, "tool_calls": [
                { "id": "call_ok", "type": "function", "function": { "name": "f", "arguments": "{}" } },
                { "id": "call_bad", "type": "function", "function": { "name": "f", "arguments": arguments } },
            ] },
        ])
    };
    let user = |part: Value| json!([{ "role": "user", "content": [part] }]);
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            call("{\"city\": \"Par"),
            "messages[].tool_calls[].function.arguments",
            "messages[1].tool_calls[1].function.arguments",
        ),
        (call("[1, 2]"), "messages[].tool_calls[].function.arguments", "messages[1].tool_calls[1].function.arguments"),
        (
            user(json!({ "type": "input_audio", "input_audio": { "data": "UklGR", "format": "wav" } })),
            "messages[].content[]",
            "messages[0].content[0]",
        ),
        (
            user(json!({ "type": "file", "file": { "file_id": "file-abc123" } })),
            "messages[].content[].file",
            "messages[0].content[0].file",
        ),
        (
            user(json!({ "type": "file", "file": { "file_data": "data:text/plain;base64,aGk=" } })),
            "messages[].content[].file",
            "messages[0].content[0].file",
        ),
        (
            user(json!({ "type": "image_url", "image_url": { "url": "ftp://example.com/cat.png" } })),
            "messages[].content[].image_url.url",
            "messages[0].content[0].image_url.url",
        ),
        (
            user(json!({ "type": "image_url", "image_url": { "url": "data:image/tiff;base64,AAAA" } })),
            "messages[].content[].image_url.url",
            "messages[0].content[0].image_url.url",
        ),
        (
            user(json!({ "type": "image_url", "image_url": { "url": "data:image/png,rawbytes" } })),
            "messages[].content[].image_url.url",
            "messages[0].content[0].image_url.url",
        ),
        (
            json!([{ "role": "system", "content": [{ "type": "image_url", "image_url": { "url": "https://x/y.png" } }] }]),
            "messages[].content[]",
            "messages[0].content[0]",
        ),
        (json!([{ "role": "function", "name": "f", "content": "1" }]), "messages[].role", "messages[0]"),
        (json!([{ "role": "critic", "content": "1" }]), "messages[].role", "messages[0].role"),
        (json!([{ "role": "user" }]), "messages[].content", "messages[0].content"),
        (json!([{ "role": "tool", "content": "42" }]), "messages[].tool_call_id", "messages[0].tool_call_id"),
        (json!([{ "role": "assistant", "audio": { "id": "audio_abc" } }]), "messages[].audio", "messages[0].audio"),
        (
            json!([{ "role": "assistant", "function_call": { "name": "f", "arguments": "{}" } }]),
            "messages[].function_call",
            "messages[0].function_call",
        ),
        (
            json!([{ "role": "assistant", "tool_calls": [{ "id": "c", "type": "custom", "custom": {} }] }]),
            "messages[].tool_calls[].type",
            "messages[0].tool_calls[0]",
        ),
        (
            json!([{ "role": "assistant", "tool_calls": [{ "type": "function", "function": { "name": "f" } }] }]),
            "messages[].tool_calls[].id",
            "messages[0].tool_calls[0].id",
        ),
    ];
    for (messages, param, path) in cases {
        let request = with(&openai_base(), json!({ "messages": messages }));
        let error = assert_refused(to_anthropic(&request), Some(param), param);
        assert!(error.message.contains(path), "{param}: {}", error.message);
    }
}

#[test]
fn openai_neutral_values_of_refused_fields_are_dropped() {
    let neutral = json!({
        "n": 1, "logprobs": false, "top_logprobs": 0, "logit_bias": {}, "presence_penalty": 0,
        "frequency_penalty": 0, "modalities": ["text"], "response_format": { "type": "text" },
        "reasoning_effort": "none", "verbosity": "medium",
    });
    let out = to_anthropic(&with(&openai_base(), neutral)).unwrap();
    assert_eq!(out, to_anthropic(&openai_base()).unwrap());
}

#[test]
fn invalid_bodies_are_bad_requests() {
    for body in [&b""[..], b"[]", b"{", b"\"text\"", b"{\"model\":\"a\"} x"] {
        let error = openai_chat_to_anthropic_request(body, CLAUDE, 10).unwrap_err();
        assert_eq!((error.status(), error.code), (400, "invalid_json"));
        let error = anthropic_to_openai_chat_request(body, GPT).unwrap_err();
        assert_eq!((error.status(), error.code), (400, "invalid_json"));
    }
}

// ---- Anthropic -> OpenAI ----

#[test]
fn anthropic_minimal_request() {
    assert_eq!(
        to_openai(&anthropic_base()).unwrap(),
        json!({ "model": GPT, "max_tokens": 1024, "messages": [{ "role": "user", "content": "Hi" }] })
    );
}

#[test]
fn anthropic_system_string_and_blocks() {
    let string = to_openai(&with(&anthropic_base(), json!({ "system": "You are Claude." }))).unwrap();
    assert_eq!(string["messages"][0], json!({ "role": "system", "content": "You are Claude." }));
    let blocks = json!({ "system": [
        { "type": "text", "text": "You are a coding agent." },
        { "type": "text", "text": "<repo>...</repo>", "cache_control": { "type": "ephemeral" } },
    ] });
    let out = to_openai(&with(&anthropic_base(), blocks)).unwrap();
    assert_eq!(
        out["messages"],
        json!([
            { "role": "system", "content": "You are a coding agent.\n\n<repo>...</repo>" },
            { "role": "user", "content": "Hi" },
        ])
    );
}

#[test]
fn anthropic_images_and_text_blocks() {
    let request = with(
        &anthropic_base(),
        json!({ "messages": [{ "role": "user", "content": [
        { "type": "image", "source": { "type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQSkZJRg" } },
        { "type": "image", "source": { "type": "url", "url": "https://upload.wikimedia.org/ant.jpg" } },
        { "type": "text", "text": "Describe both images.", "cache_control": { "type": "ephemeral" } },
    ] }] }),
    );
    assert_eq!(
        to_openai(&request).unwrap()["messages"],
        json!([{ "role": "user", "content": [
            { "type": "image_url", "image_url": { "url": "data:image/jpeg;base64,/9j/4AAQSkZJRg" } },
            { "type": "image_url", "image_url": { "url": "https://upload.wikimedia.org/ant.jpg" } },
            { "type": "text", "text": "Describe both images." },
        ] }])
    );
}

#[test]
fn anthropic_tool_use_and_parallel_tool_results() {
    let request = with(
        &anthropic_base(),
        json!({ "messages": [
        { "role": "user", "content": "What's the weather in Paris and Tokyo?" },
        { "role": "assistant", "content": [
            { "type": "thinking", "thinking": "Two lookups.", "signature": "EqQBCkgIARABGAIiQL" },
            { "type": "text", "text": "I'll check both cities." },
            { "type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather", "input": { "location": "Paris, France" } },
            { "type": "tool_use", "id": "toolu_01B19r91rx91mr928946mr0", "name": "get_weather", "input": { "location": "Tokyo, Japan" } },
        ] },
        { "role": "user", "content": [
            { "type": "tool_result", "tool_use_id": "toolu_01A09q90qw90lq917835lq9", "content": "18C, cloudy" },
            { "type": "tool_result", "tool_use_id": "toolu_01B19r91rx91mr928946mr0", "content": [
                { "type": "text", "text": "Service unavailable." }, { "type": "text", "text": "Retry later." },
            ], "is_error": true },
            { "type": "text", "text": "Which is warmer?" },
        ] },
    ] }),
    );
    assert_eq!(
        to_openai(&request).unwrap()["messages"],
        json!([
            { "role": "user", "content": "What's the weather in Paris and Tokyo?" },
            { "role": "assistant", "content": "I'll check both cities.", "tool_calls": [
                { "id": "toolu_01A09q90qw90lq917835lq9", "type": "function", "function": { "name": "get_weather", "arguments": "{\"location\":\"Paris, France\"}" } },
                { "id": "toolu_01B19r91rx91mr928946mr0", "type": "function", "function": { "name": "get_weather", "arguments": "{\"location\":\"Tokyo, Japan\"}" } },
            ] },
            { "role": "tool", "tool_call_id": "toolu_01A09q90qw90lq917835lq9", "content": "18C, cloudy" },
            { "role": "tool", "tool_call_id": "toolu_01B19r91rx91mr928946mr0", "content": "Error: Service unavailable.\n\nRetry later." },
            { "role": "user", "content": "Which is warmer?" },
        ])
    );
}

#[test]
fn anthropic_tool_only_assistant_and_empty_results() {
    let request = with(
        &anthropic_base(),
        json!({ "messages": [
        { "role": "user", "content": "ping" },
        { "role": "assistant", "content": [{ "type": "tool_use", "id": "toolu_1", "name": "ping", "input": {} }] },
        { "role": "user", "content": [
            { "type": "tool_result", "tool_use_id": "toolu_1" },
            { "type": "tool_result", "tool_use_id": "toolu_2", "is_error": true },
        ] },
    ] }),
    );
    let messages = to_openai(&request).unwrap()["messages"].clone();
    assert_eq!(messages[1]["content"], Value::Null);
    assert_eq!(messages[1]["tool_calls"][0]["function"]["arguments"], "{}");
    assert_eq!(messages[2], json!({ "role": "tool", "tool_call_id": "toolu_1", "content": "" }));
    assert_eq!(messages[3], json!({ "role": "tool", "tool_call_id": "toolu_2", "content": "Error" }));
    assert_eq!(messages.as_array().unwrap().len(), 4);
}

#[test]
fn anthropic_tools_and_tool_choice() {
    let tools = json!([
        {
            "name": "get_weather",
            "description": "Get the current weather in a given location",
            "input_schema": { "type": "object", "properties": { "location": { "type": "string" } }, "required": ["location"] },
            "cache_control": { "type": "ephemeral" },
        },
        { "type": "custom", "name": "noop", "input_schema": { "type": "object" } },
    ]);
    let base = with(&anthropic_base(), json!({ "tools": tools }));
    let out = to_openai(&base).unwrap();
    assert_eq!(
        out["tools"],
        json!([
            { "type": "function", "function": {
                "name": "get_weather", "description": "Get the current weather in a given location",
                "parameters": { "type": "object", "properties": { "location": { "type": "string" } }, "required": ["location"] },
            } },
            { "type": "function", "function": { "name": "noop", "parameters": { "type": "object" } } },
        ])
    );
    let cases = [
        (json!({ "type": "auto" }), json!("auto"), None),
        (json!({ "type": "any" }), json!("required"), None),
        (json!({ "type": "none" }), json!("none"), None),
        (
            json!({ "type": "tool", "name": "get_weather" }),
            json!({ "type": "function", "function": { "name": "get_weather" } }),
            None,
        ),
        (json!({ "type": "auto", "disable_parallel_tool_use": true }), json!("auto"), Some(false)),
        (json!({ "type": "any", "disable_parallel_tool_use": false }), json!("required"), None),
    ];
    for (choice, expected, parallel) in cases {
        let out = to_openai(&with(&base, json!({ "tool_choice": choice.clone() }))).unwrap();
        assert_eq!(out["tool_choice"], expected, "{choice}");
        assert_eq!(out.get("parallel_tool_calls").and_then(Value::as_bool), parallel, "{choice}");
    }
    let out = to_openai(&with(
        &anthropic_base(),
        json!({ "tool_choice": { "type": "auto", "disable_parallel_tool_use": true } }),
    ))
    .unwrap();
    assert!(out.get("tool_choice").is_none() && out.get("parallel_tool_calls").is_none());
}

#[test]
fn anthropic_sampling_stream_and_metadata() {
    let request = with(
        &anthropic_base(),
        json!({
            "temperature": 0.2, "top_p": 0.95, "stop_sequences": ["</answer>"], "stream": true,
            "metadata": { "user_id": "13803d75-b4b5-4c3e-b2a2-6f21399b021b" }, "service_tier": "auto",
            "thinking": { "type": "disabled" },
        }),
    );
    assert_eq!(
        to_openai(&request).unwrap(),
        json!({
            "model": GPT, "max_tokens": 1024, "messages": [{ "role": "user", "content": "Hi" }],
            "temperature": 0.2, "top_p": 0.95, "stop": ["</answer>"], "stream": true,
            "stream_options": { "include_usage": true }, "user": "13803d75-b4b5-4c3e-b2a2-6f21399b021b",
        })
    );
    let out =
        to_openai(&with(&anthropic_base(), json!({ "stream": false, "stop_sequences": [], "metadata": {} }))).unwrap();
    assert_eq!(out["stream"], false);
    assert!(out.get("stream_options").is_none() && out.get("stop").is_none() && out.get("user").is_none());
}

#[test]
fn anthropic_refusals_name_the_field() {
    let cases: Vec<(Value, Option<&str>)> = vec![
        (json!({ "top_k": 40 }), Some("top_k")),
        (json!({ "thinking": { "type": "enabled", "budget_tokens": 10000 } }), Some("thinking")),
        (json!({ "container": "container_011CPR5CNjB747bTd36fQLFk" }), Some("container")),
        (
            json!({ "mcp_servers": [{ "type": "url", "url": "https://mcp.example.com/sse", "name": "x" }] }),
            Some("mcp_servers"),
        ),
        (json!({ "context_management": { "edits": [] } }), Some("context_management")),
        (json!({ "max_tokens": null }), Some("max_tokens")),
        (json!({ "max_tokens": "many" }), Some("max_tokens")),
        (json!({ "messages": {} }), Some("messages")),
        (json!({ "system": [{ "type": "image", "source": {} }] }), Some("system")),
        (json!({ "system": 5 }), Some("system")),
        (json!({ "stop_sequences": "END" }), Some("stop_sequences")),
        (json!({ "stream": 1 }), Some("stream")),
        (json!({ "metadata": { "user_id": 5 } }), Some("metadata.user_id")),
        (
            json!({ "tools": [{ "type": "web_search_20250305", "name": "web_search", "max_uses": 5 }] }),
            Some("tools[].type"),
        ),
        (json!({ "tools": [{ "type": "bash_20250124", "name": "bash" }] }), Some("tools[].type")),
        (json!({ "tools": [{ "input_schema": {} }] }), Some("tools[].name")),
        (json!({ "tool_choice": { "type": "any" } }), Some("tool_choice")),
        (
            json!({ "tools": [{ "name": "f", "input_schema": {} }], "tool_choice": { "type": "tool" } }),
            Some("tool_choice"),
        ),
        (json!({ "output_format": { "type": "json_schema", "schema": {} } }), None),
        (
            json!({ "messages": [{ "role": "user", "content": "Answer in JSON." }, { "role": "assistant", "content": "{" }] }),
            Some("messages"),
        ),
    ];
    for (extra, param) in cases {
        assert_refused(to_openai(&with(&anthropic_base(), extra.clone())), param, &extra.to_string());
    }
}

#[test]
fn anthropic_content_refusals_name_the_path() {
    let user = |block: Value| json!([{ "role": "user", "content": [{ "type": "text", "text": "see" }, block] }]);
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            user(
                json!({ "type": "document", "source": { "type": "base64", "media_type": "application/pdf", "data": "JVBERi0" } }),
            ),
            "messages[].content[]",
            "messages.0.content.1",
        ),
        (
            user(json!({ "type": "search_result", "source": "https://x", "title": "t", "content": [] })),
            "messages[].content[]",
            "messages.0.content.1",
        ),
        (
            user(json!({ "type": "image", "source": { "type": "file", "file_id": "file_011CNha8iCJcU1wXNR6q4V8w" } })),
            "messages[].content[].source",
            "messages.0.content.1.source",
        ),
        (
            user(json!({ "type": "tool_result", "tool_use_id": "toolu_1", "content": [
            { "type": "image", "source": { "type": "base64", "media_type": "image/png", "data": "iVBOR" } },
        ] })),
            "messages[].content[].content",
            "messages.0.content.1.content",
        ),
        (
            user(json!({ "type": "tool_result", "content": "x" })),
            "messages[].content[].tool_use_id",
            "messages.0.content.1.tool_use_id",
        ),
        (user(json!({ "type": "text" })), "messages[].content[].text", "messages.0.content.1.text"),
        (
            json!([{ "role": "assistant", "content": [{ "type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {} }] }]),
            "messages[].content[]",
            "messages.0.content.0",
        ),
        (
            json!([{ "role": "assistant", "content": [{ "type": "tool_use", "name": "f", "input": {} }] }]),
            "messages[].content[]",
            "messages.0.content.0",
        ),
        (json!([{ "role": "system", "content": "x" }]), "messages[].role", "messages.0.role"),
        (json!([{ "role": "user", "content": 3 }]), "messages[].content", "messages.0.content"),
    ];
    for (messages, param, path) in cases {
        let request = with(&anthropic_base(), json!({ "messages": messages }));
        let error = assert_refused(to_openai(&request), Some(param), param);
        assert!(error.message.contains(path), "{param}: {}", error.message);
    }
}

// ---- Round trips ----

#[test]
fn openai_request_round_trips_through_anthropic() {
    let request = json!({
        "model": GPT,
        "messages": [
            { "role": "system", "content": "You are a weather bot." },
            { "role": "user", "content": "Weather in Paris and Tokyo?" },
            { "role": "assistant", "content": null, "tool_calls": [
                { "id": "call_a", "type": "function", "function": { "name": "get_weather", "arguments": "{\"location\":\"Paris\"}" } },
                { "id": "call_b", "type": "function", "function": { "name": "get_weather", "arguments": "{\"location\":\"Tokyo\"}" } },
            ] },
            { "role": "tool", "tool_call_id": "call_a", "content": "18C" },
            { "role": "tool", "tool_call_id": "call_b", "content": "24C" },
            { "role": "user", "content": [
                { "type": "text", "text": "And here?" },
                { "type": "image_url", "image_url": { "url": "data:image/webp;base64,UklGRh4AAABXRUJQ" } },
            ] },
            { "role": "assistant", "content": "Sunny." },
            { "role": "user", "content": "Thanks!" },
        ],
        "tools": [{ "type": "function", "function": { "name": "get_weather", "description": "Weather", "parameters": { "type": "object", "properties": { "location": { "type": "string" } } } } }],
        "tool_choice": "required",
        "parallel_tool_calls": false,
        "stop": ["END"],
        "temperature": 0.5,
        "top_p": 0.8,
        "max_tokens": 512,
        "stream": true,
        "stream_options": { "include_usage": true },
        "user": "u-1",
    });
    let anthropic = openai_chat_to_anthropic_request(request.to_string().as_bytes(), CLAUDE, 4096).unwrap();
    let back = anthropic_to_openai_chat_request(&anthropic, GPT).unwrap();
    assert_eq!(serde_json::from_slice::<Value>(&back).unwrap(), request);
}

#[test]
fn anthropic_request_round_trips_through_openai() {
    let request = json!({
        "model": CLAUDE,
        "max_tokens": 2048,
        "system": "You are a weather bot.",
        "messages": [
            { "role": "user", "content": "Weather in Paris and Tokyo?" },
            { "role": "assistant", "content": [
                { "type": "text", "text": "Checking." },
                { "type": "tool_use", "id": "toolu_a", "name": "get_weather", "input": { "location": "Paris" } },
                { "type": "tool_use", "id": "toolu_b", "name": "get_weather", "input": { "location": "Tokyo" } },
            ] },
            { "role": "user", "content": [
                { "type": "tool_result", "tool_use_id": "toolu_a", "content": "18C" },
                { "type": "tool_result", "tool_use_id": "toolu_b", "content": "24C" },
                { "type": "text", "text": "Which is warmer?" },
                { "type": "image", "source": { "type": "url", "url": "https://example.com/map.png" } },
            ] },
        ],
        "tools": [{ "name": "get_weather", "description": "Weather", "input_schema": { "type": "object", "properties": { "location": { "type": "string" } } } }],
        "tool_choice": { "type": "any", "disable_parallel_tool_use": true },
        "stop_sequences": ["END"],
        "temperature": 0.3,
        "top_p": 0.9,
        "stream": true,
        "metadata": { "user_id": "u-1" },
    });
    let openai = anthropic_to_openai_chat_request(request.to_string().as_bytes(), GPT).unwrap();
    let back = openai_chat_to_anthropic_request(&openai, CLAUDE, 1).unwrap();
    assert_eq!(serde_json::from_slice::<Value>(&back).unwrap(), request);
}

// ---- Decision tables ----

#[test]
fn decision_tables_are_well_formed() {
    for table in [OPENAI_TO_ANTHROPIC_FIELDS, ANTHROPIC_TO_OPENAI_FIELDS] {
        for (index, rule) in table.iter().enumerate() {
            assert!(!rule.why.is_empty() && rule.why.ends_with('.'), "{}", rule.field);
            assert!(table.iter().skip(index + 1).all(|other| other.field != rule.field), "{} twice", rule.field);
            if let FieldAction::RefusedUnless { accepted, neutral } = rule.action {
                let value: Value = serde_json::from_str(accepted).unwrap();
                assert!(neutral(&value), "{}: the accepted value {accepted} must be neutral", rule.field);
            }
        }
    }
}

#[test]
fn every_refused_field_is_refused_with_its_name() {
    let cases =
        [(OPENAI_TO_ANTHROPIC_FIELDS, openai_base(), true), (ANTHROPIC_TO_OPENAI_FIELDS, anthropic_base(), false)];
    for (table, base, openai) in cases {
        for rule in table {
            let value = match rule.action {
                FieldAction::Refused | FieldAction::RefusedUnless { .. } => json!({ "not": "neutral" }),
                _ => continue,
            };
            let request = with(&base, json!({ rule.field: value }));
            let result = if openai { to_anthropic(&request) } else { to_openai(&request) };
            assert_refused(result, Some(rule.field), rule.field);
        }
    }
}
