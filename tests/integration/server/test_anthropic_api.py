"""Anthropic's Messages API on a live server, driven by the official `anthropic` Python SDK."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from live_server import LiveServer, anthropic_client

anthropic = pytest.importorskip("anthropic")
pytestmark = pytest.mark.timeout(180)
MODEL = "smollm2:135m"
WEATHER = {
    "name": "get_weather",
    "description": "Current weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture(scope="module")
def client(server: LiveServer) -> Any:
    return anthropic_client(server)


def test_message_matches_the_native_chat(server: LiveServer, client: Any) -> None:
    reply = client.messages.create(
        model=MODEL,
        max_tokens=12,
        extra_body={"temperature": 0},
        system="Be brief.",
        messages=[{"role": "user", "content": "Name a fruit."}],
    )
    assert reply.id.startswith("msg_") and len(reply.id) == 28 and reply.type == "message"
    assert reply.role == "assistant" and reply.model == MODEL
    assert [b.type for b in reply.content] == ["text"] and reply.content[0].text
    assert reply.stop_reason in ("end_turn", "max_tokens")
    assert 0 < reply.usage.output_tokens <= 12 and reply.usage.input_tokens > 5
    native = httpx.post(
        server.url + "/api/chat",
        timeout=60,
        json={
            "model": MODEL,
            "stream": False,
            "options": {"temperature": 0, "num_predict": 12},
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Name a fruit."},
            ],
        },
    ).json()
    assert native["message"]["content"] == reply.content[0].text


def test_streamed_events_and_text(client: Any) -> None:
    kwargs = {
        "model": MODEL,
        "max_tokens": 10,
        "extra_body": {"temperature": 0},
        "messages": [{"role": "user", "content": "Count to five."}],
    }
    with client.messages.stream(**kwargs) as stream:
        events = [event.type for event in stream]
        final = stream.get_final_message()
    assert events[0] == "message_start" and events[-1] == "message_stop"
    assert events[1] == "content_block_start" and "content_block_stop" in events
    assert events[-2] == "message_delta"
    assert final.stop_reason == "max_tokens" and final.usage.output_tokens == 10
    whole = client.messages.create(**kwargs)
    assert final.content[0].text == whole.content[0].text


def test_forced_tool_use_round_trip(client: Any, tools_model: str) -> None:
    reply = client.messages.create(
        model=tools_model,
        max_tokens=64,
        extra_body={"temperature": 0},
        tools=[WEATHER],
        tool_choice={"type": "tool", "name": "get_weather"},
        thinking={"type": "disabled"},
        messages=[{"role": "user", "content": "What's the weather in Paris?"}],
    )
    assert reply.stop_reason == "tool_use"
    use = next(b for b in reply.content if b.type == "tool_use")
    assert use.name == "get_weather" and isinstance(use.input["city"], str) and use.id.startswith("toolu_")

    # the result goes back as a tool_result block; the model answers in text
    follow = client.messages.create(
        model=tools_model,
        max_tokens=16,
        extra_body={"temperature": 0},
        tools=[WEATHER],
        thinking={"type": "disabled"},
        messages=[
            {"role": "user", "content": "What's the weather in Paris?"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": use.id, "name": use.name, "input": use.input}],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "Sunny, 21 C"}],
            },
        ],
    )
    assert follow.content and _prompt_size(follow.usage) > _prompt_size(reply.usage)


def test_streamed_tool_use_is_an_input_json_delta(client: Any, tools_model: str) -> None:
    with client.messages.stream(
        model=tools_model,
        max_tokens=64,
        extra_body={"temperature": 0},
        tools=[WEATHER],
        tool_choice={"type": "any"},
        thinking={"type": "disabled"},
        messages=[{"role": "user", "content": "Weather in Rome?"}],
    ) as stream:
        events = list(stream)
        final = stream.get_final_message()
    deltas = [e for e in events if e.type == "content_block_delta"]
    assert any(getattr(e.delta, "type", "") == "input_json_delta" for e in deltas)
    use = next(b for b in final.content if b.type == "tool_use")
    assert use.name == "get_weather" and "city" in use.input and final.stop_reason == "tool_use"


def test_thinking_blocks(client: Any, tools_model: str) -> None:
    reply = client.messages.create(
        model=tools_model,
        max_tokens=16,
        extra_body={"temperature": 0},
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": "Why is the sky blue?"}],
    )
    assert reply.content[0].type == "thinking" and reply.content[0].thinking.strip()


def test_anthropic_error_envelope(server: LiveServer, client: Any) -> None:
    with pytest.raises(anthropic.NotFoundError) as err:
        client.messages.create(model="nope", max_tokens=4, messages=[{"role": "user", "content": "x"}])
    body = err.value.body
    assert body["type"] == "error" and body["error"] == {
        "type": "not_found_error",
        "message": "model 'nope' not found",
    }
    assert body["request_id"].startswith("req_")
    bad = httpx.post(
        server.url + "/v1/messages", json={"model": MODEL, "max_tokens": 4, "messages": []}, timeout=30
    )
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"


def _prompt_size(usage: anthropic.types.Usage) -> int:
    """Anthropic counts the prompt in two parts: evaluated, and read from the (prefix) cache."""
    return usage.input_tokens + (usage.cache_read_input_tokens or 0)
