"""Streaming a model's reply apart into content, thinking and tool calls.

llama.cpp's chat parser (the PEG parser generated for the rendered conversation) re-parses the
whole text so far on every piece; this class turns successive parses into deltas:

- content and thinking go out as soon as the parser has decided them (text that might still turn
  out to be markup, e.g. a half-written `<tool_call>`, is held back by the parser itself);
- a tool call goes out whole (Ollama sends `tool_calls` complete, `arguments` as an object): when
  a later call starts, or when the reply ends; a call cut off mid-arguments (e.g. by num_predict)
  is dropped, and done_reason "length" says why.
"""

from __future__ import annotations

import logging
import secrets
import string
from dataclasses import dataclass, field
from typing import Any

import orjson

from a3s_power.runtime.chat_parsing import ParsedCall, ReplyTextParser
from a3s_power.runtime.loaded import ChatRender

log = logging.getLogger(__name__)
_ID_ALPHABET = string.ascii_lowercase + string.digits


@dataclass
class ReplyDelta:
    content: str = ""
    thinking: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.content or self.thinking or self.tool_calls)

    def add(self, other: ReplyDelta) -> None:
        """Append `other` (accumulating a whole reply from its deltas)."""
        self.content += other.content
        self.thinking += other.thinking
        self.tool_calls += other.tool_calls


def tool_call_id() -> str:
    """Ollama's ids for parsed calls: `call_` + 8 characters of [a-z0-9]."""
    return "call_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))


def _arguments(text: str) -> dict[str, Any] | None:
    """A call's arguments as the JSON object Ollama sends; None when they are not one (a reply cut
    off inside a call)."""
    try:
        value = orjson.loads(text) if text.strip() else {}
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


class ReplyParser:
    def __init__(self, render: ChatRender, *, parse_reasoning: bool = True) -> None:
        self._parser = ReplyTextParser(render, parse_reasoning=parse_reasoning)
        self._text = ""
        self._content = ""
        self._thinking = ""
        self._calls_sent = 0
        self._failed = False

    def feed(self, piece: str) -> ReplyDelta:
        """A new piece of generated text → what can be sent now."""
        self._text += piece
        try:
            parsed = self._parser.parse(self._text, partial=True)
        except ValueError:
            return ReplyDelta()
        return self._advance(parsed.content, parsed.thinking, parsed.tool_calls, final=False)

    def finish(self) -> ReplyDelta:
        """The reply is over: the rest of the content and thinking, and every unsent tool call.
        Text that does not parse as a whole is sent as content, unchanged."""
        if not self._failed:
            try:
                parsed = self._parser.parse(self._text, partial=False)
                return self._advance(parsed.content, parsed.thinking, parsed.tool_calls, final=True)
            except ValueError as exc:
                log.warning("%s; sending the reply as plain content", exc)
                self._failed = True
        return self._advance(self._text, self._thinking, [], final=True)

    def _advance(self, content: str, thinking: str, calls: list[ParsedCall], *, final: bool) -> ReplyDelta:
        delta = ReplyDelta(
            content=_grown(self._content, content),
            thinking=_grown(self._thinking, thinking),
        )
        self._content += delta.content
        self._thinking += delta.thinking
        complete = len(calls) if final else max(0, len(calls) - 1)  # the last one may still grow
        for index in range(self._calls_sent, complete):
            call = calls[index]
            arguments = _arguments(call.arguments)
            if arguments is None:
                log.warning("dropping tool call %r: its arguments are not a JSON object", call.name)
                continue
            function = {"index": index, "name": call.name, "arguments": arguments}
            delta.tool_calls.append({"id": call.id or tool_call_id(), "function": function})
        self._calls_sent = max(self._calls_sent, complete)
        return delta


def _grown(sent: str, now: str) -> str:
    """What `now` adds to what was already sent (nothing if the parser revised earlier text)."""
    return now[len(sent) :] if now.startswith(sent) else ""
