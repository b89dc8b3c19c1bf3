"""Anthropic Messages request types. Unknown fields are ignored (Claude Code sends many)."""

from __future__ import annotations

from typing import Any

import msgspec


class Thinking(msgspec.Struct):
    type: str = "disabled"
    budget_tokens: int | None = None


class MessagesRequest(msgspec.Struct):
    model: str = ""
    messages: list[dict[str, Any]] = msgspec.field(default_factory=list)
    max_tokens: int | None = None
    system: str | list[dict[str, Any]] | None = None
    stream: bool = False
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop_sequences: list[str] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: dict[str, Any] | None = None
    thinking: Thinking | None = None
    metadata: dict[str, Any] | None = None
    debug_render_only: bool = msgspec.field(default=False, name="_debug_render_only")


class Usage(msgspec.Struct):
    """`input_tokens` are the prompt tokens evaluated, `cache_read_input_tokens` those reused
    from the KV cache (a matching prefix of an earlier request)."""

    input_tokens: int
    output_tokens: int
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
