"""llama.cpp's chat parser for one rendered conversation, with typed results."""

from __future__ import annotations

from dataclasses import dataclass, field

from a3s_power import _native
from a3s_power.runtime.loaded import ChatRender


@dataclass(frozen=True, slots=True)
class ParsedCall:
    name: str
    arguments: str  # the arguments' JSON text as generated (may be partial)
    id: str = ""


@dataclass(frozen=True, slots=True)
class ParsedReply:
    content: str = ""
    thinking: str = ""
    tool_calls: list[ParsedCall] = field(default_factory=list)


class ReplyTextParser:
    """Parses the whole text generated so far (raises ValueError when it cannot parse a final text)."""

    def __init__(self, render: ChatRender, *, parse_reasoning: bool = True) -> None:
        self._parser = _native.ChatParser(
            render.format, render.parser, render.generation_prompt, parse_reasoning
        )

    def parse(self, text: str, *, partial: bool) -> ParsedReply:
        content, thinking, calls = self._parser.parse(text, partial)
        return ParsedReply(
            content,
            thinking,
            [ParsedCall(str(c["name"]), str(c["arguments"]), str(c.get("id") or "")) for c in calls],
        )
