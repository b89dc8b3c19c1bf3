"""The OpenAI-compatible API on a live server, driven by the official `openai` Python SDK."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import numpy as np
import openai
import orjson
import pytest
from live_server import LiveServer, openai_client

pytestmark = pytest.mark.timeout(180)
MODEL = "smollm2:135m"


@pytest.fixture(scope="module")
def client(server: LiveServer) -> openai.OpenAI:
    return openai_client(server)


def test_chat_completion_matches_the_native_api(server: LiveServer, client: openai.OpenAI) -> None:
    messages: list[Any] = [{"role": "user", "content": "Name a fruit."}]
    reply = client.chat.completions.create(model=MODEL, messages=messages, temperature=0, max_tokens=12)
    assert reply.object == "chat.completion" and reply.id.startswith("chatcmpl-")
    assert reply.system_fingerprint == "fp_ollama" and reply.model == MODEL
    choice = reply.choices[0]
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert reply.usage and reply.usage.completion_tokens <= 12
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    native = httpx.post(
        server.url + "/api/chat",
        json={
            "model": MODEL,
            "messages": messages,
            "stream": False,
            "options": {"temperature": 0, "top_p": 1.0, "num_predict": 12},
        },
        timeout=60,
    ).json()
    assert native["message"]["content"] == choice.message.content


def test_streaming_chunk_sequence_and_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Count to five."}],
        temperature=0,
        max_tokens=16,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    # the role comes with the first real delta (nothing is sent before the prompt is evaluated)
    assert chunks[0].choices[0].delta.role == "assistant" and chunks[0].choices[0].delta.content
    assert all(c.choices[0].delta.role is None for c in chunks[1:] if c.choices)
    finish = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finish) == 1 and finish[0].choices[0].delta.content is None
    assert chunks[-1].choices == [] and chunks[-1].usage and chunks[-1].usage.completion_tokens == 16
    assert len({c.id for c in chunks}) == 1 and len({c.created for c in chunks}) == 1
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    whole = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Count to five."}], temperature=0, max_tokens=16
    )
    assert text == whole.choices[0].message.content
    # the same prompt again: its prefix is reused from the KV cache, and usage says how much
    details = whole.usage and whole.usage.prompt_tokens_details
    assert details and 0 < (details.cached_tokens or 0) < whole.usage.prompt_tokens  # type: ignore[union-attr]


def test_raw_sse_ends_with_done(server: LiveServer) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "stream": True, "max_tokens": 3}
    with httpx.stream("POST", server.url + "/v1/chat/completions", json=body, timeout=60) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"
    assert orjson.loads(lines[-2][6:])["choices"][0]["finish_reason"] == "length"


def test_structured_output_with_parse(client: openai.OpenAI) -> None:
    pydantic = pytest.importorskip("pydantic")

    class Pet(pydantic.BaseModel):  # type: ignore[name-defined,misc]
        name: str
        age: int

    parsed = client.chat.completions.parse(
        model=MODEL,
        messages=[{"role": "user", "content": "Describe a pet as JSON."}],
        response_format=Pet,
        temperature=0,
        max_tokens=48,
    )
    pet = parsed.choices[0].message.parsed
    assert pet is not None and isinstance(pet.age, int)


def test_max_completion_tokens_is_honoured(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Tell a long story."}], max_completion_tokens=5
    )
    assert reply.usage and reply.usage.completion_tokens == 5 and reply.choices[0].finish_reason == "length"


def test_completions(client: openai.OpenAI) -> None:
    reply = client.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=6, temperature=0)
    assert reply.object == "text_completion" and reply.choices[0].text
    assert reply.usage and reply.usage.completion_tokens == 6
    streamed = "".join(
        c.choices[0].text
        for c in client.completions.create(
            model=MODEL, prompt="Once upon a time", max_tokens=6, temperature=0, stream=True
        )
        if c.choices
    )
    assert streamed == reply.choices[0].text


def test_embeddings_float_and_base64(client: openai.OpenAI) -> None:
    floats = client.embeddings.create(model=MODEL, input=["a cat", "a dog"], encoding_format="float")
    vectors = np.array([d.embedding for d in floats.data])
    assert vectors.shape == (2, 576) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4)
    default = client.embeddings.create(model=MODEL, input=["a cat", "a dog"])  # the SDK asks for base64
    assert np.allclose(np.array([d.embedding for d in default.data]), vectors, atol=1e-6)
    short = client.embeddings.create(model=MODEL, input="a cat", dimensions=32, encoding_format="float")
    assert len(short.data[0].embedding) == 32
    assert floats.usage.prompt_tokens > 0


def test_base64_is_little_endian_float32(server: LiveServer) -> None:
    body = {"model": MODEL, "input": "a cat", "encoding_format": "base64"}
    data = httpx.post(server.url + "/v1/embeddings", json=body, timeout=60).json()["data"][0]["embedding"]
    vector = np.frombuffer(base64.b64decode(data), dtype="<f4")
    assert vector.shape == (576,) and np.isclose(np.linalg.norm(vector), 1, atol=1e-4)


def test_models_list_and_retrieve(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert MODEL in ids
    model = client.models.retrieve(MODEL)
    assert model.id == MODEL and model.owned_by == "library" and model.created > 0
    with pytest.raises(openai.NotFoundError) as err:
        client.models.retrieve("nope:latest")
    assert err.value.body == {
        "message": "model 'nope:latest' not found",
        "type": "not_found_error",
        "param": None,
        "code": None,
    }


@pytest.mark.parametrize(
    ("body", "status", "kind", "message"),
    [
        (
            {"model": "nope", "messages": [{"role": "user", "content": "x"}]},
            404,
            "not_found_error",
            "model 'nope' not found",
        ),
        ({"model": MODEL, "messages": []}, 400, "invalid_request_error", "[] is too short - 'messages'"),
        (
            {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "reasoning_effort": "huge"},
            400,
            "invalid_request_error",
            None,
        ),
        (
            {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "max_tokens": -1},
            400,
            "invalid_request_error",
            "max_tokens must be at least 1, got -1",
        ),
    ],
)
def test_openai_error_envelope(
    server: LiveServer, body: dict[str, Any], status: int, kind: str, message: str | None
) -> None:
    response = httpx.post(server.url + "/v1/chat/completions", json=body, timeout=60)
    error = response.json()["error"]
    assert response.status_code == status and error["type"] == kind
    assert error["param"] is None and error["code"] is None
    if message is not None:
        assert error["message"] == message


def test_reasoning_and_tool_choice_on_a_thinking_model(client: openai.OpenAI, tools_model: str) -> None:
    messages: list[Any] = [{"role": "user", "content": "Why is the sky blue?"}]
    reply = client.chat.completions.create(
        model=tools_model, messages=messages, temperature=0, max_tokens=16, reasoning_effort="low"
    )
    message = reply.model_dump()["choices"][0]["message"]
    assert message["reasoning"] and "<think>" not in message["reasoning"] + (message["content"] or "")
    no_think = client.chat.completions.create(
        model=tools_model, messages=messages, temperature=0, max_tokens=16, reasoning_effort="none"
    )
    assert (
        "reasoning" not in no_think.model_dump()["choices"][0]["message"]
        or not no_think.model_dump()["choices"][0]["message"]["reasoning"]
    )

    # a named tool_choice forces a call to that tool: the grammar is applied from the first token
    tools: list[Any] = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
    ]
    forced = client.chat.completions.create(
        model=tools_model,
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=tools,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        reasoning_effort="none",
        temperature=0,
        max_tokens=64,
    )
    choice = forced.choices[0]
    assert choice.finish_reason == "tool_calls", choice
    call = choice.message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert isinstance(orjson.loads(call.function.arguments)["city"], str)  # type: ignore[union-attr]
