"""`ChatJob`: what any surface (an API family, the CLI) asks the pipeline for, in one typed shape.

Each API family translates its wire request into a ChatJob; the pipeline (`service.chat`) applies
the model's layers, renders, constrains, generates and parses; the family translates the events
back. Messages are OpenAI-shaped in spirit (what llama.cpp's chat templates take) but typed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

ToolChoice = Literal["auto", "none", "required"]
Think = bool | str | None  # Ollama's think: true / false / "low" | "medium" | "high" | "max"
Format = str | dict[str, Any] | None  # "json" or a JSON schema


@dataclass
class ToolCall:
    """A call in an assistant message: `arguments` is the JSON object (not its text)."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    id: str = ""
    index: int = 0


@dataclass
class ContentPart:
    """One part of a message's content: text, or media bytes (images / audio) for a vision or
    audio model (`kind` "image" / "audio"). Text parts are joined by newlines for the template."""

    kind: Literal["text", "image", "audio"]
    text: str = ""
    data: bytes = b""
    url: str = ""  # an http(s) image the pipeline fetches (when enabled) into `data`


@dataclass
class ChatMessage:
    role: str
    content: str = ""
    thinking: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_name: str = ""
    tool_call_id: str = ""
    parts: list[ContentPart] = field(default_factory=list)  # media parts beside `content`

    @property
    def images(self) -> list[bytes]:
        return [p.data for p in self.parts if p.kind == "image"]

    @property
    def image_parts(self) -> list[ContentPart]:
        return [p for p in self.parts if p.kind == "image"]

    def content_with_media(self, marker: str) -> str:
        """The content with one `marker` where each image goes: in place among text parts, else
        before the text (as Ollama puts its [img-N] tags)."""
        images = self.image_parts
        if not marker or not images:
            return self.content
        if not any(p.kind == "text" for p in self.parts):
            return marker * len(images) + self.content
        out, after_text = "", False
        for p in self.parts:  # text parts joined by newlines, a marker right where its image is
            if p.kind == "image":
                out, after_text = out + marker, False
            elif p.kind == "text":
                out, after_text = out + ("\n" if after_text else "") + p.text, True
        return out

    def to_template(self, media_marker: str = "") -> dict[str, Any]:
        """The message as llama.cpp's chat templates take it (OpenAI-shaped); images become
        `media_marker`s in the content."""
        item: dict[str, Any] = {"role": self.role, "content": self.content_with_media(media_marker)}
        if self.thinking:
            item["reasoning_content"] = self.thinking
        if self.tool_calls:
            item["tool_calls"] = [
                {
                    "type": "function",
                    "id": call.id or f"call_{i}",
                    "function": {"name": call.name, "arguments": orjson.dumps(call.arguments).decode()},
                }
                for i, call in enumerate(self.tool_calls)
            ]
        if self.tool_name:
            item["name"] = self.tool_name
        if self.tool_call_id:
            item["tool_call_id"] = self.tool_call_id
        return item


def function_tool(
    name: str, description: str = "", parameters: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A tool in the OpenAI shape every template and grammar takes."""
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": parameters or {"type": "object"},
        },
    }


def tool_name(tool: dict[str, Any]) -> str:
    return str((tool.get("function") or {}).get("name", ""))


@dataclass
class ChatJob:
    """One request to the pipeline.

    `messages` are the request's own; the model's SYSTEM and MESSAGE layers are applied by the
    pipeline (in Ollama's order). `options` are Ollama's option names and lie over the model's
    PARAMETERs. `prompt_mode` is /api/generate's kind of request (its MESSAGE history only when
    no `context` is sent, `raw`, `suffix`, `template`, `context`)."""

    model: str
    messages: list[ChatMessage] = field(default_factory=list)
    tools: list[dict[str, Any]] = field(default_factory=list)
    tool_choice: ToolChoice = "auto"
    think: Think = None
    format: Format = None
    format_field: str = "format"  # the request's name for `format` (errors name it)
    options: dict[str, Any] = field(default_factory=dict)
    keep_alive: float | None = None
    logprobs: bool = False
    top_logprobs: int = 0
    truncate: bool | None = None
    shift: bool | None = None
    ignore_eos: bool = False
    # /api/generate
    prompt_mode: bool = False
    raw: bool = False
    suffix: str = ""
    template: str | None = None
    context: list[int] | None = None
    # what the job is for, in the "does not support <what>" error (chat / generate)
    what: str = "chat"
    # thinking the model cannot do is dropped silently instead of refused (Anthropic's way)
    drop_unsupported_think: bool = False
    debug_render_only: bool = False
    started_ns: int = field(default_factory=time.perf_counter_ns)
