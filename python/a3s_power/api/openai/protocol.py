"""OpenAI request types for `/v1/chat/completions`, `/v1/completions`, `/v1/embeddings`.

Unknown fields are ignored (clients send many); fields are typed loosely where OpenAI allows
several shapes (`stop`, `content`, `tool_choice`) and checked by the service.
"""

from __future__ import annotations

from typing import Any

import msgspec


class StreamOptions(msgspec.Struct):
    include_usage: bool = False


class ResponseFormat(msgspec.Struct):
    type: str = "text"
    json_schema: dict[str, Any] | None = None


class Reasoning(msgspec.Struct):
    effort: str | None = None


class _Sampling(msgspec.Struct):
    model: str = ""
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None


class ChatCompletionRequest(_Sampling):
    messages: list[dict[str, Any]] = msgspec.field(default_factory=list)
    max_completion_tokens: int | None = None
    response_format: ResponseFormat | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    reasoning_effort: str | None = None
    reasoning: Reasoning | None = None
    logprobs: bool = False
    top_logprobs: int = 0
    debug_render_only: bool = msgspec.field(default=False, name="_debug_render_only")
    ignore_eos: bool = False  # llama-server's extension: generate max_tokens whatever the model says


class CompletionRequest(_Sampling):
    prompt: str | list[str] = ""
    suffix: str | None = None
    logprobs: int | None = None
    echo: bool = False
    debug_render_only: bool = msgspec.field(default=False, name="_debug_render_only")


class EmbeddingRequest(msgspec.Struct):
    model: str = ""
    input: str | list[Any] | None = None  # strings (token arrays are refused by the service)
    dimensions: int | None = None
    encoding_format: str = "float"


# -- response pieces ------------------------------------------------------------------------------
class PromptTokensDetails(msgspec.Struct):
    cached_tokens: int = 0  # prompt tokens reused from the KV cache (a matching prefix)


class Usage(msgspec.Struct):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails = msgspec.field(default_factory=PromptTokensDetails)
