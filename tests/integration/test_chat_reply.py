"""Splitting replies into content, thinking and tool calls with llama.cpp's parser for the rendered
conversation (SmolLM2 with a ChatML tools+thinking template), fed piece by piece like a stream."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest

from a3s_power import _native
from a3s_power.chat.reply import ReplyDelta, ReplyParser
from fixtures.templates import TOOLS_THINK_TEMPLATE

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]


def _render(model: Any, *, think: bool, tools: list[dict[str, Any]] | None = TOOLS) -> _native.ChatRender:
    return model.render_chat(
        [{"role": "user", "content": "Weather in Paris and Rome?"}],
        tools_json=orjson.dumps(tools).decode() if tools else "",
        template_override=TOOLS_THINK_TEMPLATE,
        enable_thinking=think,
    )


def _feed(parser: ReplyParser, text: str, step: int = 3) -> list[ReplyDelta]:
    deltas = [parser.feed(text[i : i + step]) for i in range(0, len(text), step)]
    return [*deltas, parser.finish()]


def test_render_exposes_the_tool_grammar(smollm2: Any) -> None:
    render = _render(smollm2, think=True)
    assert render.grammar and render.grammar_lazy
    assert render.trigger_words == ["<tool_call>\n"]
    assert render.supports_thinking and render.generation_prompt.endswith("<think>\n")
    assert "<tool_call>" in render.preserved_tokens


def test_thinking_content_and_two_tool_calls_streamed(smollm2: Any) -> None:
    reply = (
        "\nThe user wants two cities.\n</think>\nLet me check.\n"
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome"}}\n</tool_call>'
    )
    deltas = _feed(ReplyParser(_render(smollm2, think=True)), reply)

    assert "".join(d.thinking for d in deltas).strip() == "The user wants two cities."
    assert "".join(d.content for d in deltas).strip() == "Let me check."
    calls = [(i, c) for i, d in enumerate(deltas) for c in d.tool_calls]
    assert [c["function"]["arguments"] for _, c in calls] == [{"city": "Paris"}, {"city": "Rome"}]
    assert [c["function"]["index"] for _, c in calls] == [0, 1]
    assert all(c["function"]["name"] == "get_weather" for _, c in calls)
    assert all(re.fullmatch(r"call_[a-z0-9]{8}", c["id"]) for _, c in calls)
    # the first call went out as soon as the second began, before the reply ended
    assert calls[0][0] < len(deltas) - 1 and calls[1][0] == len(deltas) - 1
    # no markup leaked into content or thinking
    text = "".join(d.content + d.thinking for d in deltas)
    assert "<tool_call>" not in text and "</think>" not in text


def test_thinking_off_leaves_plain_content(smollm2: Any) -> None:
    deltas = _feed(ReplyParser(_render(smollm2, think=False), parse_reasoning=True), "Just an answer.")
    assert "".join(d.content for d in deltas) == "Just an answer."
    assert not any(d.thinking or d.tool_calls for d in deltas)


def test_unfinished_tool_call_is_not_sent_as_a_call(smollm2: Any) -> None:
    reply = '\nok\n</think>\n<tool_call>\n{"name": "get_weather", "arguments": {"ci'
    parser = ReplyParser(_render(smollm2, think=True))
    deltas = [parser.feed(reply)]
    assert deltas[0].tool_calls == []
    final = parser.finish()
    assert final.tool_calls == []  # cut off inside the arguments: not a call a client could run
    assert "".join(d.thinking for d in [*deltas, final]).strip() == "ok"


def test_parser_for_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown chat format"):
        _native.ChatParser("no-such-format", "")
    assert _native.ChatParser("", "").parse("plain", False) == ("plain", "", [])
