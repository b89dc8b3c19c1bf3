"""OpenAI's Responses API (`/v1/responses`, stateless) on a live server, with the official SDK."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import orjson
import pytest
from live_server import LiveServer, openai_client

pytestmark = pytest.mark.timeout(180)
MODEL = "smollm2:135m"
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture(scope="module")
def client(server: LiveServer) -> openai.OpenAI:
    return openai_client(server)


def test_text_response_matches_chat_completions(client: openai.OpenAI) -> None:
    reply = client.responses.create(
        model=MODEL, input="Name a fruit.", instructions="Be brief.", temperature=0, max_output_tokens=12
    )
    assert reply.id.startswith("resp_") and reply.object == "response"
    assert reply.output_text and reply.output[0].type == "message"
    assert reply.usage and 0 < reply.usage.output_tokens <= 12
    chat = client.chat.completions.create(
        model=MODEL,
        temperature=0,
        max_tokens=12,
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a fruit."}],
    )
    assert reply.output_text == chat.choices[0].message.content
    cut = client.responses.create(model=MODEL, input="Tell a long story.", max_output_tokens=4)
    assert (
        cut.status == "incomplete"
        and cut.incomplete_details
        and cut.incomplete_details.reason == "max_output_tokens"
    )


def test_streamed_events(client: openai.OpenAI) -> None:
    with client.responses.stream(
        model=MODEL, input="Count to five.", temperature=0, max_output_tokens=10
    ) as s:
        kinds = [event.type for event in s]
        final = s.get_final_response()
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed" and final.status == "incomplete"  # cut by max_output_tokens
    assert "response.output_text.delta" in kinds and "response.output_item.done" in kinds
    whole = client.responses.create(model=MODEL, input="Count to five.", temperature=0, max_output_tokens=10)
    assert final.output_text == whole.output_text


def test_function_call_round_trip(client: openai.OpenAI, tools_model: str) -> None:
    first = client.responses.create(
        model=tools_model,
        input="What's the weather in Paris?",
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice={"type": "function", "name": "get_weather"},
        reasoning={"effort": "none"},
        temperature=0,
        max_output_tokens=64,
    )
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather"
    assert isinstance(orjson.loads(calls[0].arguments)["city"], str)
    follow: list[Any] = [
        {"role": "user", "content": "What's the weather in Paris?"},
        {
            "type": "function_call",
            "call_id": calls[0].call_id,
            "name": "get_weather",
            "arguments": calls[0].arguments,
        },
        {"type": "function_call_output", "call_id": calls[0].call_id, "output": "Sunny, 21 C"},
    ]
    second = client.responses.create(
        model=tools_model,
        input=follow,
        tools=[WEATHER],
        reasoning={"effort": "none"},  # type: ignore[list-item]
        temperature=0,
        max_output_tokens=16,
    )
    assert second.usage and first.usage and second.usage.input_tokens > first.usage.input_tokens


def test_reasoning_item_and_errors(server: LiveServer, client: openai.OpenAI, tools_model: str) -> None:
    reply = client.responses.create(
        model=tools_model,
        input="Why is the sky blue?",
        reasoning={"effort": "low"},
        temperature=0,
        max_output_tokens=16,
    )
    assert reply.output[0].type == "reasoning" and reply.output[0].summary[0].text.strip()
    stateful = httpx.post(
        server.url + "/v1/responses",
        timeout=30,
        json={"model": MODEL, "input": "hi", "previous_response_id": "resp_1"},
    )
    assert stateful.status_code == 400 and "previous_response_id" in stateful.json()["error"]["message"]
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="nope", input="hi")
