"""Forced tool calls hold on every kind of template, through the official OpenAI and Anthropic
SDKs, streamed and not: tool_choice "required" / a named function (OpenAI chat and Responses),
{"type": "any"} / {"type": "tool"} (Anthropic).

(a) SmolLM2 with a ChatML tools + thinking template, thinking off (llama.cpp's parser for it);
(b) SmolLM2 with a ChatML tools template without `<think>`;
(c) the thinking template with thinking on: reasoning first, then the call;
(d) SmolLM2's and Gemma 3's own templates, which have no tools: llama.cpp's generic JSON format.
A token cap hit before the call is complete is finish_reason "length" and no half call.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from live_server import LiveServer, add_gguf_model, anthropic_client, openai_client

openai = pytest.importorskip("openai")
anthropic = pytest.importorskip("anthropic")

WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}
OPENAI_TOOLS = [
    {"type": "function", "function": {"name": name, "description": description, "parameters": WEATHER}}
    for name, description in (("get_weather", "Weather in a city"), ("get_time", "Local time in a city"))
]
ANTHROPIC_TOOLS = [
    {"name": t["function"]["name"], "description": t["function"]["description"], "input_schema": WEATHER}
    for t in OPENAI_TOOLS
]
QUESTION = [{"role": "user", "content": "What is the weather in Paris?"}]
# model, extra request fields (OpenAI chat)
CASES = {
    "a": ("smol-think", {"reasoning_effort": "none"}),
    "b": ("smol-chatml", {}),
    "c": ("smol-think", {"reasoning_effort": "low"}),
    "d-smollm2": ("smollm2:135m", {}),
    "d-gemma3": ("gemma3:270m", {}),
}


@pytest.fixture(scope="module")
def models(server: LiveServer, tools_model: str, gemma3_path: Path, smollm2_path: Path) -> None:
    from fixtures.templates import CHATML_TOOLS_TEMPLATE

    add_gguf_model(
        server.store, "smol-chatml", smollm2_path, {"stop": ["<|im_end|>"]}, template=CHATML_TOOLS_TEMPLATE
    )
    add_gguf_model(server.store, "gemma3:270m", gemma3_path)


@pytest.fixture(scope="module")
def oai(server: LiveServer, models: None) -> Any:
    return openai_client(server)


@pytest.fixture(scope="module")
def claude(server: LiveServer, models: None) -> Any:
    return anthropic_client(server)


def _check_call(name: str, arguments: dict[str, Any], allowed: set[str]) -> None:
    assert name in allowed
    assert set(arguments) == {"city"} and isinstance(arguments["city"], str)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("case", list(CASES))
def test_openai_required_call(oai: Any, case: str, stream: bool) -> None:
    import orjson

    model, extra = CASES[case]
    kwargs = dict(
        model=model,
        messages=QUESTION,
        tools=OPENAI_TOOLS,
        tool_choice="required",
        max_tokens=120,
        temperature=0,
        extra_body=extra,
    )
    if stream:
        calls, finish, reasoning = [], None, ""
        for chunk in oai.chat.completions.create(stream=True, **kwargs):
            delta = chunk.choices[0].delta
            calls += delta.tool_calls or []
            reasoning += (delta.model_extra or {}).get("reasoning") or ""
            finish = chunk.choices[0].finish_reason or finish
    else:
        reply = oai.chat.completions.create(**kwargs)
        calls, finish = reply.choices[0].message.tool_calls or [], reply.choices[0].finish_reason
        reasoning = (reply.choices[0].message.model_extra or {}).get("reasoning") or ""
        assert not (reply.choices[0].message.content or "").strip()
    assert finish == "tool_calls" and len(calls) == 1
    _check_call(
        calls[0].function.name, orjson.loads(calls[0].function.arguments), {"get_weather", "get_time"}
    )
    if case == "c":
        assert reasoning.strip()  # the model reasoned first, then the call was forced


@pytest.mark.parametrize("case", ["b", "c", "d-gemma3"])
def test_openai_named_function(oai: Any, case: str) -> None:
    import orjson

    model, extra = CASES[case]
    reply = oai.chat.completions.create(
        model=model,
        messages=QUESTION,
        tools=OPENAI_TOOLS,
        max_tokens=120,
        temperature=0,
        extra_body=extra,
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    calls = reply.choices[0].message.tool_calls or []
    assert reply.choices[0].finish_reason == "tool_calls" and len(calls) == 1
    _check_call(calls[0].function.name, orjson.loads(calls[0].function.arguments), {"get_time"})


@pytest.mark.parametrize("case", ["a", "d-smollm2"])
def test_responses_required_call(oai: Any, case: str) -> None:
    import orjson

    model, _ = CASES[case]
    tools = [{"type": "function", **t["function"]} for t in OPENAI_TOOLS]
    reasoning = {"effort": "none"} if case == "a" else None
    response = oai.responses.create(
        model=model,
        input="What is the weather in Paris?",
        tools=tools,
        tool_choice="required",
        max_output_tokens=120,
        temperature=0,
        **({"reasoning": reasoning} if reasoning else {}),
    )
    calls = [item for item in response.output if item.type == "function_call"]
    assert response.status == "completed" and len(calls) == 1
    _check_call(calls[0].name, orjson.loads(calls[0].arguments), {"get_weather", "get_time"})


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("case", list(CASES))
def test_anthropic_any_tool(claude: Any, case: str, stream: bool) -> None:
    model, extra = CASES[case]
    thinking = {"type": "enabled", "budget_tokens": 60} if case == "c" else {"type": "disabled"}
    kwargs = dict(
        model=model,
        max_tokens=120,
        messages=QUESTION,
        tools=ANTHROPIC_TOOLS,
        tool_choice={"type": "any"},
        extra_body={"temperature": 0},
        thinking=thinking,
    )
    if stream:
        with claude.messages.stream(**kwargs) as events:
            reply = events.get_final_message()
    else:
        reply = claude.messages.create(**kwargs)
    uses = [block for block in reply.content if block.type == "tool_use"]
    assert reply.stop_reason == "tool_use" and len(uses) == 1
    _check_call(uses[0].name, uses[0].input, {"get_weather", "get_time"})
    assert not any(block.type == "text" and block.text.strip() for block in reply.content)
    if case == "c":
        assert any(block.type == "thinking" and block.thinking.strip() for block in reply.content)


def test_anthropic_named_tool(claude: Any) -> None:
    choice = {"type": "tool", "name": "get_time"}
    reply = claude.messages.create(
        model="smollm2:135m",
        max_tokens=120,
        messages=QUESTION,
        tools=ANTHROPIC_TOOLS,
        tool_choice=choice,
        extra_body={"temperature": 0},
    )
    uses = [block for block in reply.content if block.type == "tool_use"]
    assert reply.stop_reason == "tool_use" and [u.name for u in uses] == ["get_time"]


@pytest.mark.parametrize("case", ["a", "b", "d-smollm2"])
def test_token_cap_mid_call_is_length_without_a_half_call(
    server: LiveServer, models: None, case: str
) -> None:
    model, extra = CASES[case]
    body = {
        "model": model,
        "messages": QUESTION,
        "tools": OPENAI_TOOLS,
        "tool_choice": "required",
        "max_tokens": 6,
        "temperature": 0,
        **extra,
    }
    reply = httpx.post(server.url + "/v1/chat/completions", json=body, timeout=120).json()
    choice = reply["choices"][0]
    assert choice["finish_reason"] == "length" and not choice["message"].get("tool_calls")
    anthropic_body = {
        "model": model,
        "messages": QUESTION,
        "tools": ANTHROPIC_TOOLS,
        "max_tokens": 6,
        "tool_choice": {"type": "any"},
    }
    message = httpx.post(server.url + "/v1/messages", json=anthropic_body, timeout=120).json()
    assert message["stop_reason"] == "max_tokens"
    assert not [block for block in message["content"] if block["type"] == "tool_use"]


def test_auto_and_none_unchanged(oai: Any) -> None:
    """tool_choice none never calls; auto on a template without tools may answer in prose."""
    none = oai.chat.completions.create(
        model="smol-chatml",
        messages=QUESTION,
        tools=OPENAI_TOOLS,
        tool_choice="none",
        max_tokens=16,
        temperature=0,
    )
    assert not none.choices[0].message.tool_calls and none.choices[0].finish_reason in ("stop", "length")
    auto = oai.chat.completions.create(
        model="smollm2:135m", messages=QUESTION, tools=OPENAI_TOOLS, max_tokens=60, temperature=0
    )
    message = auto.choices[0].message
    assert message.tool_calls or (message.content and "tool_call" not in message.content)


def test_generic_format_streams_the_answer_as_it_is_decoded(oai: Any) -> None:
    """On a template without tools (llama.cpp's generic JSON format), an answer streams: its text
    arrives in several deltas before the finish chunk, never as the JSON around it. (A response
    format holding the answer's shape makes the model answer rather than call.)"""
    answer = {"type": "object", "properties": {"response": {"type": "string"}}, "required": ["response"]}
    chunks = list(
        oai.chat.completions.create(
            model="gemma3:270m",
            messages=[{"role": "user", "content": "Describe Paris in two sentences."}],
            tools=OPENAI_TOOLS,
            response_format={"type": "json_schema", "json_schema": {"name": "answer", "schema": answer}},
            max_tokens=24,
            temperature=0,
            stream=True,
        )
    )
    texts = [c.choices[0].delta.content for c in chunks[:-1] if c.choices and c.choices[0].delta.content]
    assert len(texts) >= 3, texts  # streamed, not sent whole at the end
    text = "".join(texts)
    assert '"response"' not in text and not text.lstrip().startswith("{")
    assert not any(c.choices and c.choices[0].delta.tool_calls for c in chunks)
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
