"""Tools on a model whose template has none: llama.cpp's generic tool-call format (what
llama-server served such models with). The conversation gets a system note with the tools and the
reply is constrained to one JSON object, either `{"tool_call": {"name", "arguments"}}` or
`{"response": "..."}` (only the first when a call is required); earlier calls and results are
written back in the same JSON. The reply streams: the response's text as it is decoded, the call
once its object is complete."""

from __future__ import annotations

import logging
import re
from typing import Any

import orjson

from a3s_power.chat.reply import ReplyDelta, tool_call_id
from a3s_power.service.job import tool_name

log = logging.getLogger(__name__)

INSTRUCTION = (
    "Respond in JSON format, either with `tool_call` (a request to call tools) or with `response` "
    "reply to the user's request"
)


def _system_note(tools: list[dict[str, Any]], required: bool) -> str:
    listed = "\n".join(orjson.dumps(t.get("function", t)).decode() for t in tools)
    how = (
        'Reply with {"tool_call": {"name": <tool name>, "arguments": {...}}}.'
        if required
        else 'Call a tool with {"tool_call": {"name": <tool name>, "arguments": {...}}}, or answer with '
        '{"response": <your answer>}.'
    )
    return f"You can call these tools:\n{listed}\n{INSTRUCTION}. {how}"


def generic_messages(
    messages: list[dict[str, Any]], tools: list[dict[str, Any]], required: bool
) -> list[dict[str, Any]]:
    """The conversation as a template without tools can render it."""
    note = _system_note(tools, required)
    out: list[dict[str, Any]] = []
    for message in messages:
        item = dict(message)
        if item.get("tool_calls"):
            calls = item.pop("tool_calls")
            first = calls[0]["function"]
            arguments = first.get("arguments", "{}")
            parsed = orjson.loads(arguments) if isinstance(arguments, str) else arguments
            item["content"] = orjson.dumps(
                {"tool_call": {"name": first.get("name", ""), "arguments": parsed}}
            ).decode()
        elif item["role"] == "tool":
            result = {"tool_response": {"tool": item.pop("name", ""), "content": item.get("content", "")}}
            item = {"role": "user", "content": orjson.dumps(result).decode()}
        out.append(item)
    if out and out[0]["role"] == "system":
        out[0] = {**out[0], "content": f"{out[0]['content']}\n\n{note}"}
    else:
        out.insert(0, {"role": "system", "content": note})
    return out


def generic_schema(tools: list[dict[str, Any]], required: bool) -> dict[str, Any]:
    calls = [
        {
            "type": "object",
            "properties": {
                "name": {"const": tool_name(tool)},
                "arguments": (tool.get("function") or {}).get("parameters") or {"type": "object"},
            },
            "required": ["name", "arguments"],
        }
        for tool in tools
    ]
    call: dict[str, Any] = {
        "type": "object",
        "properties": {"tool_call": calls[0] if len(calls) == 1 else {"anyOf": calls}},
        "required": ["tool_call"],
    }
    if required:
        return call
    answer = {"type": "object", "properties": {"response": {"type": "string"}}, "required": ["response"]}
    return {"anyOf": [call, answer]}


class GenericReplyParser:
    """The JSON reply → content or one tool call, streamed as llama-server's partial parser does:
    once the reply is known to be `{"response": "…"}` its string streams out as it is decoded
    (an escape sequence is held until complete); a `{"tool_call": …}` goes out whole as soon as
    the object is complete. A reply that is not such an object (cut off by num_predict) is content
    when a call was optional, and nothing (no half call) when required."""

    def __init__(self, required: bool) -> None:
        self.required = required
        self._text = ""
        self._mode = ""  # "" (undecided), "response", "tool_call", "other"
        self._body = 0  # where the value of the one key starts
        self._sent = 0  # characters of the response string sent so far
        self._call_sent = False

    def _decide(self) -> None:
        head = _HEAD.match(self._text)
        if head is not None:
            self._mode, self._body = head.group(1), head.end()
            return
        compact = "".join(self._text.split())  # keys hold no whitespace
        if not any(key.startswith(compact) for key in _HEADS):
            self._mode = "other"  # not the generic format: decided at the end, as a whole

    def _response_text(self) -> str:
        """The response string's text decoded so far (up to its closing quote, if any)."""
        body = self._text[self._body :].lstrip()  # the space before the value may come later
        if not body.startswith('"'):
            return ""
        end = _decodable_end(body)
        for cut in range(end, max(end - 12, 0), -1):  # a lone half of a surrogate pair waits
            try:
                value = orjson.loads(body[:cut] + '"')
            except orjson.JSONDecodeError:
                continue
            return value if isinstance(value, str) else ""
        return ""

    def _call(self) -> ReplyDelta | None:
        try:
            value = orjson.loads(self._text)
        except orjson.JSONDecodeError:
            return None
        call = value.get("tool_call") if isinstance(value, dict) else None
        if not isinstance(call, dict):
            return None
        arguments = call.get("arguments")
        if not isinstance(arguments, dict) or not isinstance(call.get("name"), str):
            return None
        self._call_sent = True
        function = {"index": 0, "name": call["name"], "arguments": arguments}
        return ReplyDelta(tool_calls=[{"id": tool_call_id(), "function": function}])

    def feed(self, piece: str) -> ReplyDelta:
        self._text += piece
        if not self._mode:
            self._decide()
        if self._mode == "response":
            text = self._response_text()
            delta, self._sent = text[self._sent :], max(self._sent, len(text))
            return ReplyDelta(content=delta)
        if self._mode == "tool_call" and not self._call_sent and "}" in piece:
            return self._call() or ReplyDelta()
        return ReplyDelta()

    def finish(self) -> ReplyDelta:
        if self._call_sent:
            return ReplyDelta()
        whole = self._whole()
        whole.content = whole.content[self._sent :]  # the response's text sent so far is its prefix
        return whole

    def _whole(self) -> ReplyDelta:
        try:
            value = orjson.loads(self._text)
        except orjson.JSONDecodeError:
            value = None
        if isinstance(value, dict) and isinstance(value.get("tool_call"), dict):
            call = self._call()
            if call is not None:
                return call
        if isinstance(value, dict) and isinstance(value.get("response"), str):
            return ReplyDelta(content=value["response"])
        if self.required:
            log.warning("the reply ended before its tool call was complete; no call is sent")
            return ReplyDelta()
        partial = _PARTIAL_RESPONSE.match(self._text)
        if partial is not None:  # cut off inside the answer: what it had said so far
            return ReplyDelta(content=_partial_string(partial.group(1)))
        if self._text.lstrip().startswith('{"tool_call"') or self._text.lstrip().startswith('{ "tool_call"'):
            return ReplyDelta()  # cut off inside a call: no half call
        return ReplyDelta(content=self._text)


_HEADS = ('{"tool_call":', '{"response":')
_HEAD = re.compile(r'\s*\{\s*"(tool_call|response)"\s*:\s*')


def _decodable_end(body: str) -> int:
    """How much of `body` (a JSON string from its opening quote) can be decoded now: up to the
    closing quote, or to the end less an escape sequence that is not complete yet."""
    i = 1
    while i < len(body):
        c = body[i]
        if c == '"':
            return i
        if c == "\\":
            need = 6 if body[i + 1 : i + 2] == "u" else 2
            if i + need > len(body):
                return i
            i += need
            continue
        i += 1
    return len(body)


_PARTIAL_RESPONSE = re.compile(r'^\s*\{\s*"response"\s*:\s*"(.*)$', re.DOTALL)


def _partial_string(body: str) -> str:
    """The text of a JSON string cut off before its closing quote."""
    for end in range(len(body), max(len(body) - 6, -1), -1):  # drop a cut escape sequence
        try:
            value = orjson.loads('"' + body[:end] + '"')
        except orjson.JSONDecodeError:
            continue
        return value if isinstance(value, str) else body
    return body
