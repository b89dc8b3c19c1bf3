"""llama.cpp's generic tool-call format for templates without tools: messages, schema, parsing."""

from __future__ import annotations

import orjson

from a3s_power.service.generic_tools import GenericReplyParser, generic_messages, generic_schema

TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}


def _parse(text: str, required: bool) -> tuple[str, list[dict[str, object]]]:
    parser = GenericReplyParser(required)
    delta = parser.feed(text)
    delta.add(parser.finish())
    return delta.content, delta.tool_calls


def _stream(pieces: list[str], required: bool = False) -> list[tuple[str, list[str]]]:
    parser = GenericReplyParser(required)
    deltas = [parser.feed(piece) for piece in pieces] + [parser.finish()]
    return [(d.content, [c["function"]["name"] for c in d.tool_calls]) for d in deltas]


def test_a_response_streams_as_it_is_decoded() -> None:
    pieces = ["{", '"resp', 'onse": "', "Hel", "lo \\", "n wor", "ld \\u00", "e9", '"', "}"]
    assert _stream(pieces) == [
        ("", []), ("", []), ("", []), ("Hel", []), ("lo ", []), ("\n wor", []), ("ld ", []),
        ("é", []), ("", []), ("", []), ("", []),
    ]  # fmt: skip
    assert "".join(c for c, _ in _stream(['{"response": "cut sh', "ort"])) == "cut short"
    spaced = _stream(["{", '"response"', ":", ' "', "Paris", " is"])  # the space comes after the key
    assert [c for c, _ in spaced] == ["", "", "", "", "Paris", " is", ""]


def test_a_call_goes_out_once_its_object_is_complete() -> None:
    pieces = ['{"tool_call": {"name": "get_weather", ', '"arguments": {"city": "Paris"}', "}", "}"]
    assert _stream(pieces, required=True) == [("", []), ("", []), ("", []), ("", ["get_weather"]), ("", [])]
    assert _stream(['{"tool_call": {"name": "get_wea'], required=True) == [("", []), ("", [])]  # no half call
    assert _stream(["Plain text, not JSON."]) == [("", []), ("Plain text, not JSON.", [])]


def test_schema_requires_a_call_only_when_forced() -> None:
    forced = generic_schema([TOOL], required=True)
    assert forced["required"] == ["tool_call"]
    assert forced["properties"]["tool_call"]["properties"]["name"] == {"const": "get_weather"}
    optional = generic_schema([TOOL], required=False)
    assert [b["required"] for b in optional["anyOf"]] == [["tool_call"], ["response"]]


def test_replies_become_calls_or_content() -> None:
    content, calls = _parse('{"tool_call": {"name": "get_weather", "arguments": {"city": "Paris"}}}', False)
    assert content == "" and calls[0]["function"] == {
        "index": 0,
        "name": "get_weather",
        "arguments": {"city": "Paris"},
    }
    assert _parse('{"response": "Hello"}', False) == ("Hello", [])
    assert _parse('{"response": "Hello wor', False) == ("Hello wor", [])  # cut by num_predict
    assert _parse('{"tool_call": {"name": "get_wea', False) == ("", [])  # no half call
    assert _parse('{"tool_call": {"name": "get_wea', True) == ("", [])


def test_history_is_written_back_in_the_same_json() -> None:
    call = {
        "id": "c1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
    }
    messages = [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "content": "sunny", "name": "get_weather", "tool_call_id": "c1"},
    ]
    out = generic_messages(messages, [TOOL], required=False)
    assert out[0]["role"] == "system" and "get_weather" in out[0]["content"]
    assert orjson.loads(out[2]["content"]) == {
        "tool_call": {"name": "get_weather", "arguments": {"city": "Paris"}}
    }
    assert out[3]["role"] == "user" and orjson.loads(out[3]["content"])["tool_response"]["content"] == "sunny"
