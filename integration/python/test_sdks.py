"""The official OpenAI and Anthropic Python SDKs against a real Envoy running the filter: only what the
SDKs add (their exception classes, their parsers and stream iterators, their retry-after handling).
Everything else is tested once, in Rust (integration/tests)."""

import anthropic
import openai
import pytest

MESSAGES = [{"role": "user", "content": "Say hello"}]


def openai_client(gateway, key, **kwargs):
    return openai.OpenAI(base_url=gateway["url"] + "/v1", api_key=key, max_retries=0, **kwargs)


def anthropic_client(gateway, key, **kwargs):
    return anthropic.Anthropic(base_url=gateway["url"], api_key=key, max_retries=0, **kwargs)


@pytest.mark.parametrize("key", ["sk-wrong", "sk-test-alpha-012345678"])
def test_openai_bad_key_raises_authentication_error(gateway, key):
    with pytest.raises(openai.AuthenticationError) as error:
        openai_client(gateway, key).chat.completions.create(model="gpt-mini", messages=MESSAGES)
    assert error.value.code == "invalid_api_key"


def test_openai_chat_json_and_stream(gateway):
    client = openai_client(gateway, gateway["keys"]["alpha"])
    completion = client.chat.completions.create(model="gpt-mini", messages=MESSAGES)
    assert completion.choices[0].message.content == "Hello from openai-a"
    stream = client.chat.completions.create(model="gpt-mini", messages=MESSAGES, stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == "Hello from openai-a"


def test_openai_permission_and_not_found_errors(gateway):
    with pytest.raises(openai.PermissionDeniedError):
        openai_client(gateway, gateway["keys"]["beta"]).chat.completions.create(model="gpt-mini", messages=MESSAGES)
    with pytest.raises(openai.NotFoundError) as error:
        openai_client(gateway, gateway["keys"]["alpha"]).chat.completions.create(model="gpt-9", messages=MESSAGES)
    assert error.value.code == "model_not_found"


def test_models_list_shows_only_the_keys_models(gateway):
    alpha = sorted(model.id for model in openai_client(gateway, gateway["keys"]["alpha"]).models.list())
    assert alpha == ["claude-haiku", "gpt-4o", "gpt-mini", "split"]
    beta = [model.id for model in openai_client(gateway, gateway["keys"]["beta"]).models.list()]
    assert beta == ["claude-haiku"]
    anthropic_beta = [model.id for model in anthropic_client(gateway, gateway["keys"]["beta"]).models.list()]
    assert anthropic_beta == ["claude-haiku"]


def test_anthropic_messages_json_and_stream(gateway):
    client = anthropic_client(gateway, gateway["keys"]["beta"])
    message = client.messages.create(model="claude-haiku", max_tokens=8, messages=MESSAGES)
    assert message.content[0].text == "Hello from anthropic"
    assert message.usage.output_tokens == 8
    with client.messages.stream(model="claude-haiku", max_tokens=8, messages=MESSAGES) as stream:
        assert "".join(stream.text_stream) == "Hello from anthropic"
        assert stream.get_final_message().usage.output_tokens == 8


def test_anthropic_errors(gateway):
    with pytest.raises(anthropic.AuthenticationError):
        anthropic_client(gateway, "sk-wrong").messages.create(model="claude-haiku", max_tokens=8, messages=MESSAGES)
    with pytest.raises(anthropic.PermissionDeniedError):
        anthropic_client(gateway, gateway["keys"]["beta"]).messages.create(model="gpt-4o", max_tokens=8,
                                                                           messages=MESSAGES)
    with pytest.raises(anthropic.NotFoundError):
        anthropic_client(gateway, gateway["keys"]["alpha"]).messages.create(model="nope", max_tokens=8,
                                                                            messages=MESSAGES)
    with pytest.raises(anthropic.BadRequestError):
        anthropic_client(gateway, gateway["keys"]["alpha"]).messages.create(model="", max_tokens=8,
                                                                            messages=MESSAGES)


def test_openai_rate_limit_error_carries_retry_after_and_headers_count_down(gateway):
    client = openai_client(gateway, gateway["keys"]["limited_openai"])
    remaining = []
    for _ in range(2):
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES, max_tokens=5)
        remaining.append(raw.headers["x-ratelimit-remaining-requests"])
        assert int(raw.headers["x-ratelimit-remaining-tokens"]) < 100000
    assert remaining == ["1", "0"]
    with pytest.raises(openai.RateLimitError) as error:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=5)
    assert int(error.value.response.headers["retry-after"]) >= 1
    assert error.value.code == "rate_limit_exceeded"


def test_anthropic_rate_limit_error(gateway):
    client = anthropic_client(gateway, gateway["keys"]["limited_anthropic"])
    for _ in range(2):
        client.messages.create(model="claude-haiku", max_tokens=5, messages=MESSAGES)
    with pytest.raises(anthropic.RateLimitError) as error:
        client.messages.create(model="claude-haiku", max_tokens=5, messages=MESSAGES)
    assert int(error.value.response.headers["retry-after"]) >= 1
    assert error.value.body["error"]["type"] == "rate_limit_error"
