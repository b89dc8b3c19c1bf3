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
