//! Response translation tests, from responses shaped like those the OpenAI and Anthropic APIs return.

use super::*;
use serde_json::{json, Value};

const CREATED: u64 = 1_727_000_000;

fn to_openai(response: &Value) -> Value {
    let body = anthropic_to_openai_chat_response(response.to_string().as_bytes(), "gpt-4o", CREATED).unwrap();
    serde_json::from_slice(&body).unwrap()
}

fn to_anthropic(response: &Value) -> Value {
    let body = openai_chat_to_anthropic_response(response.to_string().as_bytes(), "claude-sonnet-4-5").unwrap();
    serde_json::from_slice(&body).unwrap()
}

fn anthropic_message(content: Value, stop_reason: &str) -> Value {
    json!({
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": null,
        "usage": { "input_tokens": 12, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 6, "service_tier": "standard" },
    })
}

fn openai_completion(message: Value, finish_reason: &str) -> Value {
    json!({
        "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
        "object": "chat.completion",
        "created": 1_741_570_283,
        "model": "gpt-4o-2024-08-06",
        "choices": [{ "index": 0, "message": message, "logprobs": null, "finish_reason": finish_reason }],
        "usage": {
            "prompt_tokens": 1117, "completion_tokens": 46, "total_tokens": 1163,
            "prompt_tokens_details": { "cached_tokens": 1024, "audio_tokens": 0 },
            "completion_tokens_details": { "reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0 },
        },
        "service_tier": "default",
        "system_fingerprint": "fp_fc9f1d7035",
    })
}

#[test]
fn anthropic_text_message_as_chat_completion() {
    let response = anthropic_message(json!([{ "type": "text", "text": "Hello! How can I help?" }]), "end_turn");
    assert_eq!(
        to_openai(&response),
        json!({
            "id": "chatcmpl-msg_01XFDUDYJgAACzvnptvVoYEL",
            "object": "chat.completion",
            "created": CREATED,
            "model": "gpt-4o",
            "choices": [{
                "index": 0,
                "message": { "role": "assistant", "content": "Hello! How can I help?", "refusal": null },
                "logprobs": null,
                "finish_reason": "stop",
            }],
            "usage": { "prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18, "prompt_tokens_details": { "cached_tokens": 0 } },
        })
    );
}

#[test]
fn anthropic_parallel_tool_use_with_cache_usage() {
    let mut response = anthropic_message(
        json!([
            { "type": "thinking", "thinking": "Two cities.", "signature": "EqQBCkgIARABGAIiQL" },
            { "type": "text", "text": "I'll check both." },
            { "type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather", "input": { "location": "Paris, France" } },
            { "type": "tool_use", "id": "toolu_01B19r91rx91mr928946mr0", "name": "get_weather", "input": { "location": "Tokyo, Japan", "unit": "celsius" } },
        ]),
        "tool_use",
    );
    response["usage"] = json!({ "input_tokens": 50, "cache_creation_input_tokens": 2000, "cache_read_input_tokens": 1500, "output_tokens": 120 });
    let out = to_openai(&response);
    assert_eq!(
        out["choices"][0],
        json!({
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "I'll check both.",
                "refusal": null,
                "tool_calls": [
                    { "id": "toolu_01A09q90qw90lq917835lq9", "type": "function", "function": { "name": "get_weather", "arguments": "{\"location\":\"Paris, France\"}" } },
                    { "id": "toolu_01B19r91rx91mr928946mr0", "type": "function", "function": { "name": "get_weather", "arguments": "{\"location\":\"Tokyo, Japan\",\"unit\":\"celsius\"}" } },
                ],
            },
            "logprobs": null,
            "finish_reason": "tool_calls",
        })
    );
    assert_eq!(
        out["usage"],
        json!({ "prompt_tokens": 3550, "completion_tokens": 120, "total_tokens": 3670, "prompt_tokens_details": { "cached_tokens": 1500 } })
    );
    let tools_only =
        anthropic_message(json!([{ "type": "tool_use", "id": "toolu_1", "name": "ping", "input": {} }]), "tool_use");
    assert_eq!(to_openai(&tools_only)["choices"][0]["message"]["content"], Value::Null);
    let empty = anthropic_message(json!([]), "max_tokens");
    assert_eq!(to_openai(&empty)["choices"][0]["message"]["content"], "");
}

#[test]
fn stop_reasons_and_finish_reasons() {
    let cases = [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
    ];
    for (stop_reason, finish_reason) in cases {
        let response = anthropic_message(json!([{ "type": "text", "text": "x" }]), stop_reason);
        assert_eq!(to_openai(&response)["choices"][0]["finish_reason"], finish_reason, "{stop_reason}");
    }
    let cases = [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("function_call", "tool_use"),
        ("content_filter", "refusal"),
    ];
    for (finish_reason, stop_reason) in cases {
        let response = openai_completion(json!({ "role": "assistant", "content": "x" }), finish_reason);
        assert_eq!(to_anthropic(&response)["stop_reason"], stop_reason, "{finish_reason}");
    }
}

#[test]
fn openai_text_completion_as_anthropic_message() {
    let response = openai_completion(
        json!({ "role": "assistant", "content": "Hello there, how may I assist you today?", "refusal": null, "annotations": [] }),
        "stop",
    );
    assert_eq!(
        to_anthropic(&response),
        json!({
            "id": "msg_B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5",
            "content": [{ "type": "text", "text": "Hello there, how may I assist you today?" }],
            "stop_reason": "end_turn",
            "stop_sequence": null,
            "usage": { "input_tokens": 93, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 1024, "output_tokens": 46 },
        })
    );
}

#[test]
fn openai_parallel_tool_calls_as_tool_use_blocks() {
    let response = openai_completion(
        json!({
            "role": "assistant",
            "content": null,
            "tool_calls": [
                { "id": "call_8nLQy1AFYjHa3ObJ7sb4lTBB", "type": "function", "function": { "name": "get_weather", "arguments": "{\"location\": \"Paris, France\"}" } },
                { "id": "call_wFjb6OOdTA2ZbVhsxhkFe6Ck", "type": "function", "function": { "name": "get_weather", "arguments": "{\"location\": \"Tokyo" } },
                { "id": "call_3", "type": "function", "function": { "name": "get_time", "arguments": "" } },
            ],
            "refusal": null,
        }),
        "tool_calls",
    );
    let out = to_anthropic(&response);
    assert_eq!(
        out["content"],
        json!([
            { "type": "tool_use", "id": "call_8nLQy1AFYjHa3ObJ7sb4lTBB", "name": "get_weather", "input": { "location": "Paris, France" } },
            { "type": "tool_use", "id": "call_wFjb6OOdTA2ZbVhsxhkFe6Ck", "name": "get_weather", "input": {} },
            { "type": "tool_use", "id": "call_3", "name": "get_time", "input": {} },
        ])
    );
    assert_eq!(out["stop_reason"], "tool_use");
    let with_text = openai_completion(
        json!({ "role": "assistant", "content": "Checking.", "tool_calls": [
            { "id": "call_1", "type": "function", "function": { "name": "f", "arguments": "{}" } },
        ] }),
        "tool_calls",
    );
    let content = to_anthropic(&with_text)["content"].clone();
    assert_eq!(content[0], json!({ "type": "text", "text": "Checking." }));
    assert_eq!(content[1]["type"], "tool_use");
}

#[test]
fn openai_refusal_and_other_servers_shapes() {
    let refusal = openai_completion(
        json!({ "role": "assistant", "content": null, "refusal": "I'm sorry, I can't help with that." }),
        "stop",
    );
    let out = to_anthropic(&refusal);
    assert_eq!(out["content"], json!([{ "type": "text", "text": "I'm sorry, I can't help with that." }]));
    assert_eq!(out["stop_reason"], "refusal");
    // An OpenAI-compatible server without usage, ids or cache details (Ollama, older vLLM).
    let bare = json!({
        "id": "chatcmpl-318",
        "object": "chat.completion",
        "created": 1_727_000_000,
        "model": "llama3.1",
        "choices": [{ "index": 0, "message": { "role": "assistant", "content": [{ "type": "text", "text": "Hi." }], "reasoning_content": "hmm" }, "finish_reason": null }],
    });
    let out = to_anthropic(&bare);
    assert_eq!(out["id"], "msg_318");
    assert_eq!(out["content"], json!([{ "type": "text", "text": "Hi." }]));
    assert_eq!(out["stop_reason"], "end_turn");
    assert_eq!(
        out["usage"],
        json!({ "input_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 0 })
    );
}

#[test]
fn ids_map_both_ways() {
    assert_eq!(openai_completion_id("msg_01XFDUDYJgAACzvnptvVoYEL"), "chatcmpl-msg_01XFDUDYJgAACzvnptvVoYEL");
    assert_eq!(anthropic_message_id("chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG"), "msg_B9MHDbslfkBeAs8l4bebGdFOJ6PeG");
    assert_eq!(anthropic_message_id("chatcmpl-msg_01X"), "msg_01X");
    assert_eq!(anthropic_message_id("cmpl-7"), "msg_cmpl-7");
}

#[test]
fn usage_mappings_keep_the_prompt_total() {
    let anthropic = json!({ "input_tokens": 7, "cache_creation_input_tokens": 100, "cache_read_input_tokens": 900, "output_tokens": 3 });
    let openai = openai_usage_from_anthropic(&anthropic);
    assert_eq!(openai["prompt_tokens"], 1007);
    let back = anthropic_usage_from_openai(&openai);
    assert_eq!(
        back,
        json!({ "input_tokens": 107, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 900, "output_tokens": 3 })
    );
    // A server reporting more cached tokens than prompt tokens does not underflow.
    let odd = json!({ "prompt_tokens": 5, "completion_tokens": 1, "prompt_tokens_details": { "cached_tokens": 9 } });
    assert_eq!(anthropic_usage_from_openai(&odd)["input_tokens"], 0);
}

#[test]
fn responses_round_trip() {
    let mut response = anthropic_message(
        json!([
            { "type": "text", "text": "Checking." },
            { "type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": { "location": "Paris" } },
        ]),
        "tool_use",
    );
    response["usage"] = json!({ "input_tokens": 10, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 30, "output_tokens": 5 });
    let openai = anthropic_to_openai_chat_response(response.to_string().as_bytes(), "gpt-4o", CREATED).unwrap();
    let back = openai_chat_to_anthropic_response(&openai, "claude-sonnet-4-5-20250929").unwrap();
    assert_eq!(serde_json::from_slice::<Value>(&back).unwrap(), response);

    let completion = openai_completion(
        json!({ "role": "assistant", "content": "Sure.", "refusal": null, "tool_calls": [
            { "id": "call_1", "type": "function", "function": { "name": "f", "arguments": "{\"a\":1}" } },
        ] }),
        "tool_calls",
    );
    let anthropic = openai_chat_to_anthropic_response(completion.to_string().as_bytes(), "claude").unwrap();
    let back: Value =
        serde_json::from_slice(&anthropic_to_openai_chat_response(&anthropic, "gpt-4o", CREATED).unwrap()).unwrap();
    assert_eq!(back["id"], "chatcmpl-msg_B9MHDbslfkBeAs8l4bebGdFOJ6PeG");
    assert_eq!(back["choices"][0]["message"], completion["choices"][0]["message"]);
    assert_eq!(back["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(back["usage"]["prompt_tokens"], 1117);
    assert_eq!(back["usage"]["prompt_tokens_details"]["cached_tokens"], 1024);
    assert_eq!(back["usage"]["total_tokens"], 1163);
}

#[test]
fn untranslatable_responses_are_server_errors() {
    let cases: [&[u8]; 5] = [b"", b"<html>502</html>", b"[]", br#"{"type":"message"}"#, br#"{"choices":[]}"#];
    for body in cases {
        let error = anthropic_to_openai_chat_response(body, "m", 0).unwrap_err();
        assert_eq!((error.status(), error.code), (500, "invalid_upstream_response"));
        let error = openai_chat_to_anthropic_response(body, "m").unwrap_err();
        assert_eq!((error.status(), error.code), (500, "invalid_upstream_response"));
    }
}

#[test]
fn a_stop_with_tool_calls_is_tool_use_as_in_streams() {
    let answer = json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [ { "index": 0, "finish_reason": "stop", "message": { "role": "assistant", "content": null,
            "tool_calls": [ { "id": "call_1", "type": "function", "function": { "name": "f", "arguments": "{}" } } ] } } ],
        "usage": { "prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2 }
    });
    let translated = openai_chat_to_anthropic_response(answer.to_string().as_bytes(), "client-model").unwrap();
    let message: Value = serde_json::from_slice(&translated).unwrap();
    assert_eq!(message["stop_reason"], "tool_use");
}
