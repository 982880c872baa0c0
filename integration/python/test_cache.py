"""The response cache through a real Envoy, as the official SDKs see it: hits parse with their parsers
and stream iterators. The cache's rules are tested once, in Rust (integration/tests/cache.rs)."""

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