"""The response cache through a real Envoy, driven by the official OpenAI and Anthropic SDKs."""

import json

from conftest import upstream_requests
from test_sdks import MESSAGES, anthropic_client, openai_client


def test_a_hit_carries_the_header_and_the_upstreams_body(cached_gateway):
    client = openai_client(cached_gateway, cached_gateway["keys"]["alpha"])
    prompt = [{"role": "user", "content": "cache check"}]
    first = client.chat.completions.with_raw_response.create(model="gpt-mini", messages=prompt, temperature=0)
    second = client.chat.completions.with_raw_response.create(model="gpt-mini", messages=prompt, temperature=0)
    assert first.headers["x-ai-gateway-cache"] == "miss"
    assert second.headers["x-ai-gateway-cache"] == "hit"
    assert int(second.headers["age"]) >= 0
    assert second.http_response.content == first.http_response.content
    assert second.parse().choices[0].message.content == "Hello from openai-a"


def test_another_key_never_gets_the_first_keys_entry(cached_gateway):
    prompt = [{"role": "user", "content": "tenant check"}]
    alpha = openai_client(cached_gateway, cached_gateway["keys"]["alpha"])
    other = openai_client(cached_gateway, cached_gateway["keys"]["rotated"])
    alpha.chat.completions.create(model="gpt-4o", messages=prompt)
    raw = other.chat.completions.with_raw_response.create(model="gpt-4o", messages=prompt)
    assert raw.headers["x-ai-gateway-cache"] == "miss"


def test_a_streamed_hit_parses_with_the_streaming_iterators(cached_gateway):
    before = len(upstream_requests(cached_gateway, "openai"))
    client = openai_client(cached_gateway, cached_gateway["keys"]["alpha"])
    prompt = [{"role": "user", "content": "stream cache check"}]
    for _ in range(2):
        stream = client.chat.completions.create(model="gpt-4o", messages=prompt, stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "Hello from openai-a"
    assert len(upstream_requests(cached_gateway, "openai")) == before + 1

    beta = anthropic_client(cached_gateway, cached_gateway["keys"]["beta"])
    for _ in range(2):
        with beta.messages.stream(model="claude-haiku", max_tokens=9, messages=MESSAGES) as stream:
            assert "".join(stream.text_stream) == "Hello from anthropic"
    assert len(upstream_requests(cached_gateway, "anthropic")) == 1


def test_no_store_and_no_cache(cached_gateway):
    client = openai_client(cached_gateway, cached_gateway["keys"]["alpha"])
    prompt = [{"role": "user", "content": "directive check"}]

    def cache_result(**headers):
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=prompt,
                                                               extra_headers=headers)
        return raw.headers["x-ai-gateway-cache"]

    assert cache_result(**{"cache-control": "no-store"}) == "bypass"
    assert cache_result() == "miss"
    assert cache_result(**{"cache-control": "no-cache"}) == "bypass"
    assert cache_result() == "hit"


def test_hits_spend_no_tokens(cached_gateway):
    client = openai_client(cached_gateway, cached_gateway["keys"]["limited_openai"])
    first = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES, max_tokens=5)
    second = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES, max_tokens=5)
    assert second.headers["x-ai-gateway-cache"] == "hit"
    # The miss settled to its real usage (10 + 5); the hit reserved and spent nothing.
    assert int(second.headers["x-ratelimit-remaining-tokens"]) == 100000 - 15
    assert json.loads(first.http_response.content) == json.loads(second.http_response.content)
