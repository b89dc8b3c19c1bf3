"""The Responses API's streaming items from reply deltas (the state machine behind the SSE events)."""

from __future__ import annotations

import msgspec

from a3s_power.api.openai.responses import ItemStream
from a3s_power.chat.reply import ReplyDelta


def test_reasoning_then_text_then_a_call() -> None:
    items = ItemStream()
    call = {"id": "call_x1", "function": {"index": 0, "name": "get_weather", "arguments": {"city": "Rome"}}}
    events = [
        *items.feed(ReplyDelta(thinking="hmm")),
        *items.feed(ReplyDelta(content="Checking")),
        *items.feed(ReplyDelta(content=".")),
        *items.feed(ReplyDelta(tool_calls=[call])),
        *items.finish(),
    ]
    events = [(name, msgspec.to_builtins(event)) for name, event in events]  # as on the wire
    output = msgspec.to_builtins(items.output)
    kinds = [name for name, _ in events]
    assert kinds == [
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
    ]
    assert [e["sequence_number"] for _, e in events] == list(range(1, len(events) + 1))
    assert [o["type"] for o in output] == ["reasoning", "message", "function_call"]
    assert output[0]["summary"] == [{"type": "summary_text", "text": "hmm"}]
    assert output[1]["content"][0]["text"] == "Checking."
    assert output[2]["call_id"] == "call_x1" and output[2]["arguments"] == '{"city":"Rome"}'
    assert {e["output_index"] for _, e in events[6:13]} == {1}
