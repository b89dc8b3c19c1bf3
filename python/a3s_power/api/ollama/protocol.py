"""Ollama's native request types (`api/types.go`), decoded with msgspec.

Unknown fields are ignored, as Go's encoding/json does. Fields that Go types loosely (`format`,
`keep_alive`, `think`, `options`) stay loosely typed here and are checked by the services.
"""

from __future__ import annotations

from typing import Any

import msgspec


class Message(msgspec.Struct, omit_defaults=True):
    role: str = ""
    content: str = ""
    thinking: str | None = None
    images: list[str] | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_name: str | None = None
    tool_call_id: str | None = None


class _Generation(msgspec.Struct):
    """Fields generate and chat share."""

    model: str = ""
    stream: bool | None = None
    format: str | dict[str, Any] | None = None
    keep_alive: float | str | None = None
    options: dict[str, Any] | None = None
    think: bool | str | None = None
    truncate: bool | None = None
    shift: bool | None = None
    logprobs: bool = False
    top_logprobs: int = 0
    debug_render_only: bool = msgspec.field(default=False, name="_debug_render_only")


class GenerateRequest(_Generation):
    prompt: str = ""
    suffix: str = ""
    system: str | None = None
    template: str | None = None
    context: list[int] | None = None
    raw: bool = False
    images: list[str] | None = None


class ChatRequest(_Generation):
    messages: list[Message] = msgspec.field(default_factory=list)
    tools: list[dict[str, Any]] | None = None


class EmbedRequest(msgspec.Struct):
    model: str = ""
    input: str | list[str] | None = None
    truncate: bool | None = None
    dimensions: int = 0
    keep_alive: float | str | None = None
    options: dict[str, Any] | None = None


class EmbeddingsRequest(msgspec.Struct):
    """The legacy single-text `/api/embeddings`."""

    model: str = ""
    prompt: str = ""
    keep_alive: float | str | None = None
    options: dict[str, Any] | None = None


# -- response pieces ------------------------------------------------------------------------------
class TopLogprob(msgspec.Struct):
    token: str
    logprob: float
    bytes: list[int]


class Logprob(msgspec.Struct, omit_defaults=True):
    """`{token, logprob, bytes[, top_logprobs]}` (the same objects in OpenAI's wire format)."""

    token: str
    logprob: float
    bytes: list[int]
    top_logprobs: list[TopLogprob] | None = None


class WireToolCall(msgspec.Struct, omit_defaults=True):
    """A parsed call: `{"id"?, "function": {"index", "name", "arguments": {…}}}`."""

    function: dict[str, Any]
    id: str | None = None


class DebugInfo(msgspec.Struct):
    """`_debug_render_only`'s answer: the prompt as rendered, and how many images it carries."""

    rendered_template: str
    image_count: int = 0


class ChatResponseMessage(msgspec.Struct, omit_defaults=True):
    role: str
    content: str
    thinking: str | None = None
    tool_calls: list[WireToolCall] | None = None


class Metrics(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What a final chunk adds (Ollama's embedded `Metrics`, then the reply's logprobs and the
    debug answer); Ollama's `omitempty`: None, and 0, are left out. Keyword-only, so a subclass's
    own fields come first on the wire, as the embedded struct's place in Ollama's types has them."""

    total_duration: int | None = None
    load_duration: int | None = None
    prompt_eval_count: int | None = None
    prompt_eval_duration: int | None = None
    eval_count: int | None = None
    eval_duration: int | None = None
    logprobs: list[Logprob] | None = None
    debug_info: DebugInfo | None = msgspec.field(default=None, name="_debug_info")


# `done` is always written: omit_defaults leaves out plain defaults, not a default_factory's value.
class GenerateResponse(Metrics, omit_defaults=True):
    """A `/api/generate` chunk; the final one adds done_reason, context and the metrics."""

    model: str
    created_at: str
    response: str
    thinking: str | None = None
    done: bool = msgspec.field(default_factory=bool)
    done_reason: str | None = None
    context: list[int] | None = None


class ChatResponse(Metrics, omit_defaults=True):
    """A `/api/chat` chunk (final: as GenerateResponse's, without context)."""

    model: str
    created_at: str
    message: ChatResponseMessage
    done: bool = msgspec.field(default_factory=bool)
    done_reason: str | None = None


class EmbedResponse(msgspec.Struct, kw_only=True, omit_defaults=True):
    """`/api/embed` (zero metrics and an empty model name left out, as Go's `omitempty`)."""

    model: str = ""
    embeddings: list[list[float]]
    total_duration: int = 0
    load_duration: int = 0
    prompt_eval_count: int = 0


class EmbeddingResponse(msgspec.Struct):
    """The legacy `/api/embeddings`."""

    embedding: list[float]


OllamaResponse = GenerateResponse | ChatResponse
