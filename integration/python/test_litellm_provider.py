"""Translation against an independent implementation of both APIs: LiteLLM's proxy (with mock answers)
as the provider, so the translated requests and answers are checked by code this project did not
write. The OpenAI SDK reaches LiteLLM's Anthropic Messages API, the Anthropic SDK its OpenAI API."""

import anthropic
import openai

from test_sdks import MESSAGES


def test_the_openai_sdk_reaches_litellms_anthropic_api(litellm_gateway):
    client = openai.OpenAI(base_url=litellm_gateway["url"] + "/v1", api_key=litellm_gateway["keys"]["alpha"],
                           max_retries=0)
    completion = client.chat.completions.create(model="ll-claude", messages=MESSAGES, max_tokens=20)
    assert completion.model == "ll-claude"
    assert completion.choices[0].message.content == "Hello from LiteLLM"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 0


def test_the_anthropic_sdk_reaches_litellms_openai_api(litellm_gateway):
    client = anthropic.Anthropic(base_url=litellm_gateway["url"], api_key=litellm_gateway["keys"]["alpha"],
                                 max_retries=0)
    message = client.messages.create(model="ll-gpt", max_tokens=20, messages=MESSAGES)
    assert message.model == "ll-gpt"
    assert message.content[0].text == "Hello from LiteLLM"
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens > 0
    with client.messages.stream(model="ll-gpt", max_tokens=20, messages=MESSAGES) as stream:
        assert "".join(stream.text_stream) == "Hello from LiteLLM"
        final = stream.get_final_message()
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0
