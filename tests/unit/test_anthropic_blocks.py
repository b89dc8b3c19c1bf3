"""Anthropic's content-block event sequence from reply deltas (the streaming state machine)."""

from __future__ import annotations

import msgspec

from a3s_power.api.anthropic.service import BlockStream
from a3s_power.chat.reply import ReplyDelta


def _call(index: int, city: str) -> dict[str, object]:
    return {
        "id": f"call_abc{index}",
        "function": {"index": index, "name": "get_weather", "arguments": {"city": city}},
    }


def test_blocks_open_and_close_by_kind() -> None:
    blocks = BlockStream()
    events = [
        *blocks.feed(ReplyDelta(thinking="hmm")),
        *blocks.feed(ReplyDelta(thinking=" ok")),
        *blocks.feed(ReplyDelta(content="Let me check.")),
        *blocks.feed(ReplyDelta(tool_calls=[_call(0, "Paris"), _call(1, "Rome")])),
        *blocks.finish(),
    ]
    events = [(name, msgspec.to_builtins(event)) for name, event in events]  # as on the wire
    shape = [
        (name, e.get("index"), (e.get("delta") or e.get("content_block") or {}).get("type"))
        for name, e in events
    ]
    assert shape == [
        ("content_block_start", 0, "thinking"),
        ("content_block_delta", 0, "thinking_delta"),
        ("content_block_delta", 0, "thinking_delta"),
        ("content_block_delta", 0, "signature_delta"),
        ("content_block_stop", 0, None),
        ("content_block_start", 1, "text"),
        ("content_block_delta", 1, "text_delta"),
        ("content_block_stop", 1, None),
        ("content_block_start", 2, "tool_use"),
        ("content_block_delta", 2, "input_json_delta"),
        ("content_block_stop", 2, None),
        ("content_block_start", 3, "tool_use"),
        ("content_block_delta", 3, "input_json_delta"),
        ("content_block_stop", 3, None),
    ]
    assert events[8][1]["content_block"] == {
        "type": "tool_use",
        "id": "toolu_abc0",
        "name": "get_weather",
        "input": {},
    }
    assert events[9][1]["delta"]["partial_json"] == '{"city":"Paris"}'


def test_an_empty_reply_still_has_one_text_block() -> None:
    events = [(name, msgspec.to_builtins(event)) for name, event in BlockStream().finish()]
    assert [name for name, _ in events] == ["content_block_start", "content_block_stop"]
    assert events[0][1]["content_block"] == {"type": "text", "text": ""}
