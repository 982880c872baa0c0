"""The official SDKs calling models whose primary provider fails, throttles, refuses connections or
hangs, through a real Envoy: the failure is invisible (the fallback answers, in the client's API,
streamed or not), and when every provider fails the SDK raises its usual error class."""

import json
import urllib.request

import anthropic
import openai
import pytest

from test_sdks import MESSAGES, anthropic_client, openai_client


def requests_seen(gateway, mock):
    with urllib.request.urlopen(gateway["mocks"][mock], timeout=5) as response:
        return json.load(response)


@pytest.mark.parametrize("model", ["fb-503", "fb-429", "fb-refused", "fb-hang"])
def test_the_openai_sdk_never_sees_a_failing_primary(fallback_gateway, model):
    client = openai_client(fallback_gateway, fallback_gateway["keys"]["alpha"])
    completion = client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=6)
    assert completion.choices[0].message.content == "Hello from openai-a"
    assert completion.usage.completion_tokens == 6
    with client.chat.completions.stream(model=model, messages=MESSAGES, max_tokens=6) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    assert final.choices[0].message.content == "Hello from openai-a"
    assert final.choices[0].finish_reason == "stop"


def test_the_sdks_reach_a_fallback_of_the_other_api(fallback_gateway):
    client = openai_client(fallback_gateway, fallback_gateway["keys"]["alpha"])
    completion = client.chat.completions.create(model="fb-cross", messages=MESSAGES, max_tokens=6)
    assert (completion.model, completion.choices[0].message.content) == ("fb-cross", "Hello from anthropic")
    with client.chat.completions.stream(model="fb-cross", messages=MESSAGES, max_tokens=6,
                                        stream_options={"include_usage": True}) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    assert final.choices[0].message.content == "Hello from anthropic"
    assert final.usage.completion_tokens == 6
    sent = requests_seen(fallback_gateway, "anthropic")[-1]
    assert sent["path"] == "/v1/messages" and json.loads(sent["body"])["model"] == "claude-fallback"

    messages = anthropic_client(fallback_gateway, fallback_gateway["keys"]["alpha"])
    message = messages.messages.create(model="fb-503", messages=MESSAGES, max_tokens=6)
    assert message.content[0].text == "Hello from openai-a"
    assert message.usage.output_tokens == 6
    with messages.messages.stream(model="fb-503", messages=MESSAGES, max_tokens=6) as stream:
        final = stream.get_final_message()
    assert final.content[0].text == "Hello from openai-a"
    assert final.stop_reason == "end_turn"


def test_when_every_provider_fails_the_sdks_raise_their_usual_errors(fallback_gateway):
    client = openai_client(fallback_gateway, fallback_gateway["keys"]["alpha"])
    with pytest.raises(openai.RateLimitError) as throttled:
        client.chat.completions.create(model="fb-all", messages=MESSAGES, max_tokens=6)
    assert throttled.value.response.headers["retry-after"] == "7"
    with pytest.raises(openai.InternalServerError) as unreachable:
        client.chat.completions.create(model="fb-all-refused", messages=MESSAGES, max_tokens=6)
    assert unreachable.value.status_code == 503
    with pytest.raises(openai.InternalServerError):
        with client.chat.completions.stream(model="fb-all-refused", messages=MESSAGES, max_tokens=6) as stream:
            for _ in stream:
                pass

    messages = anthropic_client(fallback_gateway, fallback_gateway["keys"]["alpha"])
    with pytest.raises(anthropic.RateLimitError) as throttled:
        messages.messages.create(model="fb-all", messages=MESSAGES, max_tokens=6)
    assert throttled.value.response.headers["retry-after"] == "7"
    with pytest.raises(anthropic.InternalServerError) as unreachable:
        messages.messages.create(model="fb-all-refused", messages=MESSAGES, max_tokens=6)
    assert unreachable.value.status_code == 503
    assert unreachable.value.body["type"] == "error"
