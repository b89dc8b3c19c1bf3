"""OpenAI request types for `/v1/chat/completions`, `/v1/completions`, `/v1/embeddings`.

Unknown fields are ignored (clients send many); fields are typed loosely where OpenAI allows
several shapes (`stop`, `content`, `tool_choice`) and checked by the service.
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

from a3s_power.api.ollama.protocol import DebugInfo, Logprob


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


# -- response bodies and stream chunks ------------------------------------------------------------
# A field only some bodies carry defaults to UNSET (never written); None is written as null. The
# field order is the wire order.
class PromptTokensDetails(msgspec.Struct):
    cached_tokens: int = 0  # prompt tokens reused from the KV cache (a matching prefix)


class Usage(msgspec.Struct):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails = msgspec.field(default_factory=PromptTokensDetails)


class FunctionCall(msgspec.Struct):
    name: str
    arguments: str  # the arguments object's JSON text


class ToolCallOut(msgspec.Struct, kw_only=True):
    id: str
    index: int
    type: str = "function"
    function: FunctionCall


class ChatMessageOut(msgspec.Struct, kw_only=True):
    """A reply's `message`, or a stream chunk's `delta` (the part of it that is new)."""

    role: str | UnsetType = UNSET
    content: str | UnsetType = UNSET
    reasoning: str | UnsetType = UNSET
    tool_calls: list[ToolCallOut] | UnsetType = UNSET


class ChoiceLogprobs(msgspec.Struct):
    content: list[Logprob]


class ChatChoice(msgspec.Struct, kw_only=True):
    index: int = 0
    message: ChatMessageOut | UnsetType = UNSET  # chat.completion
    delta: ChatMessageOut | UnsetType = UNSET  # chat.completion.chunk
    finish_reason: str | None = None
    logprobs: ChoiceLogprobs | UnsetType = UNSET


class ChatCompletion(msgspec.Struct, kw_only=True):
    """`chat.completion` and `chat.completion.chunk` (a usage chunk has no choices)."""

    id: str
    object: str
    created: int
    model: str
    system_fingerprint: str | UnsetType = UNSET
    choices: list[ChatChoice]
    usage: Usage | UnsetType = UNSET
    debug_info: DebugInfo | UnsetType = msgspec.field(default=UNSET, name="_debug_info")


class CompletionChoice(msgspec.Struct, kw_only=True):
    text: str
    index: int = 0
    logprobs: None = None
    finish_reason: str | None = None


class TextCompletion(msgspec.Struct, kw_only=True):
    """`text_completion` (whole, or one stream chunk)."""

    id: str
    object: str = "text_completion"
    created: int
    model: str
    system_fingerprint: str
    choices: list[CompletionChoice]
    usage: Usage | UnsetType = UNSET


class EmbeddingData(msgspec.Struct, kw_only=True):
    object: str = "embedding"
    embedding: list[float] | str  # floats, or base64 of little-endian float32
    index: int


class EmbeddingUsage(msgspec.Struct):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(msgspec.Struct, kw_only=True):
    object: str = "list"
    data: list[EmbeddingData]
    model: str
    usage: EmbeddingUsage


class ModelObject(msgspec.Struct, kw_only=True):
    id: str
    object: str = "model"
    created: int
    owned_by: str


class ModelList(msgspec.Struct, kw_only=True):
    object: str = "list"
    data: list[ModelObject]


# -- the Responses API (`/v1/responses`) ----------------------------------------------------------
class SummaryText(msgspec.Struct, kw_only=True):
    type: str = "summary_text"
    text: str


class OutputText(msgspec.Struct, kw_only=True):
    type: str = "output_text"
    text: str
    annotations: list[Any] = msgspec.field(default_factory=list)


class ReasoningItem(msgspec.Struct, kw_only=True):
    id: str
    type: str = "reasoning"
    summary: list[SummaryText]


class MessageItem(msgspec.Struct, kw_only=True):
    id: str
    type: str = "message"
    role: str = "assistant"
    status: str
    content: list[OutputText]


class FunctionCallItem(msgspec.Struct, kw_only=True):
    id: str
    type: str = "function_call"
    call_id: str
    name: str
    arguments: str  # the arguments object's JSON text
    status: str = "completed"


OutputItem = ReasoningItem | MessageItem | FunctionCallItem


class InputTokensDetails(msgspec.Struct):
    cached_tokens: int = 0


class OutputTokensDetails(msgspec.Struct):
    reasoning_tokens: int = 0


class ResponsesUsage(msgspec.Struct, kw_only=True):
    input_tokens: int
    input_tokens_details: InputTokensDetails
    output_tokens: int
    output_tokens_details: OutputTokensDetails = msgspec.field(default_factory=OutputTokensDetails)
    total_tokens: int


class IncompleteDetails(msgspec.Struct):
    reason: str


class ResponseObject(msgspec.Struct, kw_only=True):
    """The `response` object: the whole answer, and the envelope its stream events carry."""

    id: str
    object: str = "response"
    created_at: int
    status: str
    error: None = None
    incomplete_details: IncompleteDetails | None = None
    instructions: str | None
    max_output_tokens: int | None
    model: str
    output: list[OutputItem]
    parallel_tool_calls: bool
    temperature: float
    top_p: float
    tool_choice: str | dict[str, Any]
    tools: list[dict[str, Any]]
    text: dict[str, Any]
    reasoning: dict[str, Any]
    usage: ResponsesUsage | None
    metadata: dict[str, Any]
    debug_info: DebugInfo | UnsetType = msgspec.field(default=UNSET, name="_debug_info")


class ResponseEvent(msgspec.Struct, kw_only=True):
    """One streaming event (`type` names it; each kind carries some of the other fields)."""

    type: str
    sequence_number: int
    response: ResponseObject | UnsetType = UNSET
    item_id: str | UnsetType = UNSET
    output_index: int | UnsetType = UNSET
    summary_index: int | UnsetType = UNSET
    content_index: int | UnsetType = UNSET
    item: OutputItem | UnsetType = UNSET
    part: SummaryText | OutputText | UnsetType = UNSET
    text: str | UnsetType = UNSET
    delta: str | UnsetType = UNSET
    arguments: str | UnsetType = UNSET
