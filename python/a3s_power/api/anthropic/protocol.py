"""Anthropic Messages request types. Unknown fields are ignored (Claude Code sends many)."""

from __future__ import annotations

from typing import Any

import msgspec

from a3s_power.api.ollama.protocol import DebugInfo


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


class StartUsage(msgspec.Struct):
    """`message_start`'s usage (nothing is counted yet)."""

    input_tokens: int = 0
    output_tokens: int = 0


# -- content blocks and their stream deltas (tagged by `type`, written first) ----------------------
class TextBlock(msgspec.Struct, tag_field="type", tag="text"):
    text: str


class ThinkingBlock(msgspec.Struct, tag_field="type", tag="thinking"):
    thinking: str
    signature: str = ""


class ToolUseBlock(msgspec.Struct, tag_field="type", tag="tool_use"):
    id: str
    name: str
    input: dict[str, Any]


ContentBlock = TextBlock | ThinkingBlock | ToolUseBlock


class TextDelta(msgspec.Struct, tag_field="type", tag="text_delta"):
    text: str


class ThinkingDelta(msgspec.Struct, tag_field="type", tag="thinking_delta"):
    thinking: str


class SignatureDelta(msgspec.Struct, tag_field="type", tag="signature_delta"):
    signature: str = ""


class InputJsonDelta(msgspec.Struct, tag_field="type", tag="input_json_delta"):
    partial_json: str


BlockDelta = TextDelta | ThinkingDelta | SignatureDelta | InputJsonDelta


class Message(msgspec.Struct, kw_only=True):
    """The Messages API's reply (`stop_reason` and `usage` are null / zero in `message_start`)."""

    id: str
    type: str = "message"
    role: str = "assistant"
    model: str
    content: list[ContentBlock]
    stop_reason: str | None = None
    stop_sequence: None = None
    usage: Usage | StartUsage


class DebugMessage(msgspec.Struct, kw_only=True):
    """`_debug_render_only`: the rendered prompt, nothing generated."""

    id: str
    type: str = "message"
    role: str = "assistant"
    model: str
    content: list[ContentBlock] = msgspec.field(default_factory=list)
    debug_info: DebugInfo = msgspec.field(name="_debug_info")


# -- stream events (the SSE event name is the `type`) -------------------------------------------
class MessageStart(msgspec.Struct, tag_field="type", tag="message_start"):
    message: Message


class ContentBlockStart(msgspec.Struct, tag_field="type", tag="content_block_start"):
    index: int
    content_block: ContentBlock


class ContentBlockDelta(msgspec.Struct, tag_field="type", tag="content_block_delta"):
    index: int
    delta: BlockDelta


class ContentBlockStop(msgspec.Struct, tag_field="type", tag="content_block_stop"):
    index: int


class StopDelta(msgspec.Struct):
    stop_reason: str
    stop_sequence: None = None


class MessageDelta(msgspec.Struct, tag_field="type", tag="message_delta"):
    delta: StopDelta
    usage: Usage


class MessageStop(msgspec.Struct, tag_field="type", tag="message_stop"):
    pass


StreamEvent = (
    MessageStart | ContentBlockStart | ContentBlockDelta | ContentBlockStop | MessageDelta | MessageStop
)
