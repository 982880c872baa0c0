"""The official SDKs calling a model whose provider speaks the other API: the OpenAI SDK reaching an
Anthropic provider, the Anthropic SDK reaching an OpenAI provider, through a real Envoy. Every answer,
stream event and error must be what the client's own SDK expects: its typed parsers, its stream
accumulators and its exception classes are the judges."""

import json

import anthropic
import openai
import pytest

from test_sdks import MESSAGES, anthropic_client, openai_client

OPENAI_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
ANTHROPIC_TOOL = {"name": "get_weather", "description": "The weather in a city.",
                  "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


def test_the_openai_sdk_reaches_an_anthropic_model(gateway):
    client = openai_client(gateway, gateway["keys"]["alpha"])
    completion = client.chat.completions.create(model="claude-haiku", messages=MESSAGES, max_tokens=8)
    assert completion.model == "claude-haiku"
    assert completion.choices[0].message.content == "Hello from anthropic"
    assert completion.choices[0].finish_reason == "stop"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (10, 8)
    with client.chat.completions.stream(model="claude-haiku", messages=MESSAGES, max_tokens=8,
                                        stream_options={"include_usage": True}) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    assert final.choices[0].message.content == "Hello from anthropic"
    assert final.choices[0].finish_reason == "stop"
    assert final.usage.completion_tokens == 8


@pytest.mark.parametrize("streamed", [False, True])
def test_the_openai_sdk_runs_a_tool_round_trip_with_an_anthropic_model(gateway, streamed):
    client = openai_client(gateway, gateway["keys"]["alpha"])
    request = {"model": "claude-haiku", "messages": MESSAGES, "tools": [OPENAI_TOOL], "max_tokens": 20}
    if streamed:
        with client.chat.completions.stream(**request) as stream:
            for _ in stream:
                pass
            first = stream.get_final_completion()
    else:
        first = client.chat.completions.create(**request)
    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls"
    assert (call.function.name, json.loads(call.function.arguments)) == ("get_weather", {"city": "Paris"})
    history = MESSAGES + [first.choices[0].message.model_dump(exclude_none=True),
                          {"role": "tool", "tool_call_id": call.id, "content": "sunny"}]
    second = client.chat.completions.create(model="claude-haiku", messages=history, tools=[OPENAI_TOOL],
                                            max_tokens=20)
    assert second.choices[0].message.content == "The tool said: sunny"


def test_the_anthropic_sdk_reaches_an_openai_model(gateway):
    client = anthropic_client(gateway, gateway["keys"]["alpha"])
    message = client.messages.create(model="gpt-mini", max_tokens=8, messages=MESSAGES)
    assert message.model == "gpt-mini"
    assert message.content[0].text == "Hello from openai-a"
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (10, 8)
    with client.messages.stream(model="gpt-mini", max_tokens=8, messages=MESSAGES) as stream:
        assert "".join(stream.text_stream) == "Hello from openai-a"
        final = stream.get_final_message()
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (10, 8)


@pytest.mark.parametrize("streamed", [False, True])
def test_the_anthropic_sdk_runs_a_tool_round_trip_with_an_openai_model(gateway, streamed):
    client = anthropic_client(gateway, gateway["keys"]["alpha"])
    request = {"model": "gpt-mini", "max_tokens": 20, "messages": MESSAGES, "tools": [ANTHROPIC_TOOL]}
    if streamed:
        with client.messages.stream(**request) as stream:
            first = stream.get_final_message()
    else:
        first = client.messages.create(**request)
    assert first.stop_reason == "tool_use"
    use = next(block for block in first.content if block.type == "tool_use")
    assert (use.name, use.input) == ("get_weather", {"city": "Paris"})
    history = MESSAGES + [{"role": "assistant", "content": [block.model_dump() for block in first.content]},
                          {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id,
                                                        "content": "sunny"}]}]
    second = client.messages.create(model="gpt-mini", max_tokens=20, messages=history, tools=[ANTHROPIC_TOOL])
    assert second.content[0].text == "The tool said: sunny"


def test_errors_reach_each_sdk_as_its_own_class(gateway):
    failing = {"x-mock-behavior": "status-500"}
    with pytest.raises(openai.InternalServerError):
        openai_client(gateway, gateway["keys"]["alpha"]).chat.completions.create(
            model="claude-haiku", messages=MESSAGES, extra_headers=failing)
    with pytest.raises(anthropic.InternalServerError):
        anthropic_client(gateway, gateway["keys"]["alpha"]).messages.create(
            model="gpt-mini", max_tokens=8, messages=MESSAGES, extra_headers=failing)
    with pytest.raises(openai.BadRequestError) as error:
        openai_client(gateway, gateway["keys"]["alpha"]).chat.completions.create(
            model="claude-haiku", messages=MESSAGES, n=2)
    assert error.value.param == "n"
