"""OpenAI's chat completions, completions, embeddings and models on top of the neutral inference run.

Ollama's conventions where OpenAI leaves room (temperature and top_p default to 1.0, thinking is
`reasoning`, ids `chatcmpl-<n>`, `system_fingerprint: fp_ollama`), plus what Ollama ignores and we
honour: `max_completion_tokens`, `tool_choice` (none / auto / required / a named function) and
incremental tool-call deltas.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
from msgspec import UNSET, UnsetType

from a3s_power.api.ollama.generation import logprobs_wire
from a3s_power.api.ollama.protocol import DebugInfo
from a3s_power.api.openai.protocol import (
    ChatChoice,
    ChatCompletion,
    ChatCompletionRequest,
    ChatMessageOut,
    ChoiceLogprobs,
    CompletionChoice,
    CompletionRequest,
    EmbeddingData,
    EmbeddingList,
    EmbeddingRequest,
    EmbeddingUsage,
    FunctionCall,
    ModelList,
    ModelObject,
    PromptTokensDetails,
    TextCompletion,
    ToolCallOut,
    Usage,
)
from a3s_power.chat.reply import ReplyDelta
from a3s_power.errors import InvalidRequest, NotFound, PowerError, Unsupported
from a3s_power.service import chat as pipeline
from a3s_power.service.chat import ReplyEnd, ReplyPiece
from a3s_power.service.embedding import embed_texts
from a3s_power.service.images import image_from_url
from a3s_power.service.job import ChatJob, ChatMessage, ContentPart, ToolCall, ToolChoice, tool_name
from a3s_power.service.models import list_entries, resolve
from a3s_power.service.state import ServerState

FINGERPRINT = "fp_ollama"
# reasoning_effort → Ollama's think value
_EFFORT: dict[str, bool | str] = {
    "none": False,
    "minimal": "low",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "max": "max",
    "xhigh": "max",
    "ultra": "max",
}


def sampling_options(
    *,
    temperature: float | None,
    top_p: float | None,
    max_tokens: int | None,
    seed: int | None = None,
    stop: str | list[str] | None = None,
    frequency_penalty: float | None = None,
    presence_penalty: float | None = None,
) -> dict[str, Any]:
    """OpenAI sampling fields → Ollama options (temperature and top_p default to 1.0, as Ollama)."""
    if max_tokens is not None and max_tokens < 1:
        raise InvalidRequest(f"max_tokens must be at least 1, got {max_tokens}")
    options: dict[str, Any] = {
        "temperature": 1.0 if temperature is None else temperature,
        "top_p": 1.0 if top_p is None else top_p,
    }
    optional = {
        "num_predict": max_tokens,
        "seed": seed,
        "frequency_penalty": frequency_penalty,
        "presence_penalty": presence_penalty,
        "stop": [stop] if isinstance(stop, str) else stop,
    }
    options.update({key: value for key, value in optional.items() if value is not None})
    return options


def _options(req: ChatCompletionRequest | CompletionRequest, max_tokens: int | None) -> dict[str, Any]:
    return sampling_options(
        temperature=req.temperature,
        top_p=req.top_p,
        max_tokens=max_tokens,
        seed=req.seed,
        stop=req.stop,
        frequency_penalty=req.frequency_penalty,
        presence_penalty=req.presence_penalty,
    )


def effort_to_think(effort: str | None) -> bool | str | None:
    """OpenAI's reasoning effort → Ollama's think value (None: the model's default)."""
    if effort is None:
        return None
    if effort not in _EFFORT:
        raise InvalidRequest(
            f'invalid reasoning value: \'{effort}\' (must be "none", "minimal", "low", '
            '"medium", "high", "xhigh", "max" or "ultra")'
        )
    return _EFFORT[effort]


def _think(req: ChatCompletionRequest) -> bool | str | None:
    return effort_to_think(req.reasoning_effort or (req.reasoning.effort if req.reasoning else None))


def _content(content: Any, n_images: int = 0) -> tuple[str, list[ContentPart]]:
    """A message's text (text parts joined) and, when it has images, all its parts in order."""
    if content is None:
        return "", []
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        raise InvalidRequest("invalid message content: expected a string or an array of content parts")
    texts = []
    parts: list[ContentPart] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            texts.append(str(part.get("text", "")))
            parts.append(ContentPart("text", text=texts[-1]))
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            parts.append(image_from_url(url, n_images + sum(p.kind == "image" for p in parts)))
        elif kind == "input_audio":
            raise Unsupported("audio input is not supported yet")
        else:
            raise InvalidRequest(f"invalid message content part type: {kind!r}")
    has_images = any(p.kind == "image" for p in parts)
    return "\n".join(texts), parts if has_images else []


def _arguments(text: Any) -> dict[str, Any]:
    if isinstance(text, dict):
        return text
    try:
        value = orjson.loads(text or "{}")
    except (orjson.JSONDecodeError, TypeError):
        raise InvalidRequest("invalid tool call arguments") from None
    if not isinstance(value, dict):
        raise InvalidRequest("invalid tool call arguments")
    return value


def chat_messages(messages: list[dict[str, Any]]) -> list[ChatMessage]:
    """OpenAI messages → the pipeline's (text parts joined; `reasoning` → thinking; `developer` →
    `system`; a tool message's name from its call)."""
    if not messages:
        raise InvalidRequest("[] is too short - 'messages'")
    out: list[ChatMessage] = []
    names: dict[str, str] = {}
    n_images = 0
    for message in messages:
        if not isinstance(message, dict):
            raise InvalidRequest("invalid message: expected an object")
        role = str(message.get("role", "")).lower()
        role = "system" if role == "developer" else role
        calls = []
        for i, call in enumerate(message.get("tool_calls") or []):
            function = call.get("function") or {}
            calls.append(ToolCall(str(function.get("name", "")), _arguments(function.get("arguments")),
                                  str(call.get("id") or ""), i))  # fmt: skip
            names[calls[-1].id] = calls[-1].name
        call_id = str(message.get("tool_call_id") or "")
        text, parts = _content(message.get("content"), n_images)
        n_images += sum(p.kind == "image" for p in parts)
        out.append(
            ChatMessage(
                role=role,
                content=text,
                parts=parts,
                thinking=str(message.get("reasoning") or message.get("reasoning_content") or ""),
                tool_calls=calls,
                tool_name=str(message.get("name") or names.get(call_id, "")) if role == "tool" else "",
                tool_call_id=call_id,
            )
        )
    return out


def tool_choice_for(
    choice: str | dict[str, Any] | None, tools: list[dict[str, Any]] | None
) -> tuple[ToolChoice, list[dict[str, Any]]]:
    """OpenAI tool_choice → (the pipeline's "auto"/"none"/"required", the tools to offer)."""
    if choice is None or not tools:
        return "auto", list(tools or [])
    if isinstance(choice, str):
        known: dict[str, ToolChoice] = {"auto": "auto", "none": "none", "required": "required"}
        if choice in known:
            return known[choice], tools
        raise InvalidRequest(f"invalid tool_choice: {choice!r}")
    name = choice.get("name") or (choice.get("function") or {}).get("name")  # Responses / Chat shapes
    chosen = [t for t in tools if tool_name(t) == name]
    if not chosen:
        raise InvalidRequest(f"tool_choice names a function that is not in tools: {name!r}")
    return "required", chosen


def _format(req: ChatCompletionRequest) -> str | dict[str, Any] | None:
    rf = req.response_format
    if rf is None or rf.type == "text":
        return None
    if rf.type == "json_object":
        return "json"
    if rf.type == "json_schema":
        schema = (rf.json_schema or {}).get("schema")
        return schema if isinstance(schema, dict) else "json"
    raise InvalidRequest(f"invalid response_format type: {rf.type!r}")


def _openai_tool_calls(calls: list[dict[str, Any]]) -> list[ToolCallOut]:
    return [
        ToolCallOut(
            id=call["id"],
            index=call["function"]["index"],
            function=FunctionCall(
                call["function"]["name"], orjson.dumps(call["function"]["arguments"]).decode()
            ),
        )
        for call in calls
    ]


def usage_of(end: ReplyEnd) -> Usage:
    prompt = end.completion.prompt_tokens
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=end.completion.eval_count,
        total_tokens=prompt + end.completion.eval_count,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=end.cached_tokens),
    )


def finish_reason(end: ReplyEnd) -> str:
    if end.done_reason == "length":
        return "length"
    return "tool_calls" if end.tool_calls_sent else "stop"


@dataclass
class Run:
    """A planned request; the response's id and `created` are fixed up front (every chunk of a
    stream carries the same ones)."""

    plan: pipeline.ChatPlan
    model: str
    include_usage: bool
    logprobs: bool = False
    id_prefix: str = "chatcmpl"
    id: str = ""
    created: int = field(default_factory=lambda: int(time.time()))

    def __post_init__(self) -> None:
        self.id = self.id or f"{self.id_prefix}-{secrets.randbelow(999)}"

    @property
    def top_logprobs(self) -> int:
        return self.plan.job.top_logprobs


def openai_job(
    req: ChatCompletionRequest | CompletionRequest, messages: list[ChatMessage], max_tokens: int | None
) -> ChatJob:
    """The fields /v1/chat/completions and /v1/completions share (the sampling fields, as Ollama's
    options) → a ChatJob; each endpoint sets its own fields on it."""
    return ChatJob(
        model=req.model,
        messages=messages,
        options=_options(req, max_tokens),
        debug_render_only=req.debug_render_only,
    )


def chat_job(req: ChatCompletionRequest) -> ChatJob:
    tool_choice, tools = tool_choice_for(req.tool_choice, req.tools)
    max_tokens = req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
    job = openai_job(req, chat_messages(req.messages), max_tokens)
    job.tools, job.tool_choice, job.think, job.format = tools, tool_choice, _think(req), _format(req)
    job.format_field = "response_format"
    job.logprobs, job.top_logprobs, job.ignore_eos = req.logprobs, req.top_logprobs, req.ignore_eos
    return job


def prepare_chat(state: ServerState, req: ChatCompletionRequest) -> Run:
    plan = pipeline.plan_chat(state, chat_job(req))
    include_usage = bool(req.stream_options and req.stream_options.include_usage)
    return Run(plan, req.model, include_usage, req.logprobs or req.top_logprobs > 0)


async def debug_render(state: ServerState, run: Run) -> ChatCompletion:
    """`_debug_render_only`: the prompt as rendered, nothing generated."""
    prompt = await pipeline.render_only(state, run.plan.job)
    return ChatCompletion(id=run.id, object="chat.completion", created=run.created, model=run.model,
                          choices=[], debug_info=DebugInfo(prompt.text))  # fmt: skip


def _message(delta: ReplyDelta) -> ChatMessageOut:
    return ChatMessageOut(
        role="assistant",
        content=delta.content,
        reasoning=delta.thinking or UNSET,
        tool_calls=_openai_tool_calls(delta.tool_calls) or UNSET,
    )


async def chat_completion(state: ServerState, run: Run) -> ChatCompletion:
    if run.plan.job.debug_render_only:
        return await debug_render(state, run)
    whole, end, chunks = await pipeline.collect_chat(state, run.plan)
    choice = ChatChoice(message=_message(whole), finish_reason=finish_reason(end))
    if run.logprobs:
        choice.logprobs = ChoiceLogprobs([lp for c in chunks for lp in logprobs_wire(c, run.top_logprobs)])
    return ChatCompletion(id=run.id, object="chat.completion", created=run.created, model=run.model,
                          system_fingerprint=FINGERPRINT, choices=[choice], usage=usage_of(end))  # fmt: skip


async def chat_completion_chunks(state: ServerState, run: Run) -> AsyncIterator[ChatCompletion]:
    """Content / reasoning / tool-call deltas (the first one carries the role: nothing is sent
    before the prompt is evaluated), a chunk with the finish reason, an optional usage chunk
    (the route adds [DONE])."""

    def chunk(choices: list[ChatChoice], usage: Usage | UnsetType = UNSET) -> ChatCompletion:
        return ChatCompletion(id=run.id, object="chat.completion.chunk", created=run.created,
                              model=run.model, system_fingerprint=FINGERPRINT, choices=choices,
                              usage=usage)  # fmt: skip

    role_sent = False

    def delta_chunk(delta: ChatMessageOut, finish: str | None = None, **extra: Any) -> ChatCompletion:
        nonlocal role_sent
        if not role_sent:  # the role goes with the first delta, whatever it is
            delta.role, role_sent = "assistant", True
        return chunk([ChatChoice(delta=delta, finish_reason=finish, **extra)])

    async for item in pipeline.run_chat(state, run.plan):
        delta = item.delta
        if delta.thinking:
            yield delta_chunk(ChatMessageOut(content="", reasoning=delta.thinking))
        if delta.content or (isinstance(item, ReplyPiece) and run.logprobs and item.chunk.logprobs):
            extra: dict[str, Any] = {}
            if isinstance(item, ReplyPiece) and run.logprobs:
                extra["logprobs"] = ChoiceLogprobs(logprobs_wire(item.chunk, run.top_logprobs))
            yield delta_chunk(ChatMessageOut(content=delta.content), **extra)
        if delta.tool_calls:
            yield delta_chunk(ChatMessageOut(tool_calls=_openai_tool_calls(delta.tool_calls)))
        if isinstance(item, ReplyEnd):
            last = ChatMessageOut() if role_sent else ChatMessageOut(content="")
            yield delta_chunk(last, finish_reason(item))
            if run.include_usage:
                yield chunk([], usage_of(item))


# -- /v1/completions ----------------------------------------------------------------------------
def completion_job(req: CompletionRequest) -> ChatJob:
    if not isinstance(req.prompt, str):
        raise InvalidRequest("prompt must be a string")
    top = req.logprobs or 0
    job = openai_job(req, [ChatMessage("user", req.prompt)], req.max_tokens)
    job.logprobs, job.top_logprobs = top > 0, top
    job.prompt_mode, job.suffix, job.what = True, req.suffix or "", "generate"
    return job


def prepare_completion(state: ServerState, req: CompletionRequest) -> Run:
    plan = pipeline.plan_chat(state, completion_job(req))
    include_usage = bool(req.stream_options and req.stream_options.include_usage)
    return Run(plan, req.model, include_usage, id_prefix="cmpl")


def _completion_body(run: Run, choices: list[CompletionChoice], usage: Usage | UnsetType) -> TextCompletion:
    return TextCompletion(id=run.id, created=run.created, model=run.model, system_fingerprint=FINGERPRINT,
                          choices=choices, usage=usage)  # fmt: skip


async def completion(state: ServerState, run: Run) -> TextCompletion | ChatCompletion:
    if run.plan.job.debug_render_only:
        return await debug_render(state, run)
    whole, end, _ = await pipeline.collect_chat(state, run.plan)
    choice = CompletionChoice(text=whole.content, finish_reason=finish_reason(end))
    return _completion_body(run, [choice], usage_of(end))


async def completion_chunks(state: ServerState, run: Run) -> AsyncIterator[TextCompletion]:
    async for item in pipeline.run_chat(state, run.plan):
        finish = finish_reason(item) if isinstance(item, ReplyEnd) else None
        if item.delta.content or finish:
            choice = CompletionChoice(text=item.delta.content, finish_reason=finish)
            yield _completion_body(run, [choice], UNSET)
        if isinstance(item, ReplyEnd) and run.include_usage:
            yield _completion_body(run, [], usage_of(item))


# -- /v1/embeddings -----------------------------------------------------------------------------
async def embeddings(state: ServerState, req: EmbeddingRequest) -> EmbeddingList:
    if req.encoding_format not in ("float", "base64"):
        raise InvalidRequest(
            f"Invalid value for 'encoding_format' = {req.encoding_format}. "
            "Supported values: ['float', 'base64']."
        )
    if req.input is None or req.input == []:
        raise InvalidRequest("invalid input")
    texts = [req.input] if isinstance(req.input, str) else req.input
    if not all(isinstance(t, str) for t in texts):
        raise InvalidRequest("invalid input: token arrays are not supported, send text")
    model = resolve(state, req.model)
    vectors, counts, _ = await embed_texts(
        state, model, [str(t) for t in texts], None, normalize=True, truncate=True, keep_alive=None
    )
    if req.dimensions and 0 < req.dimensions < vectors.shape[1]:
        vectors = vectors[:, : req.dimensions]
        vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    data = []
    for index, row in enumerate(vectors):
        value: list[float] | str = (
            base64.b64encode(np.asarray(row, dtype="<f4").tobytes()).decode()
            if req.encoding_format == "base64"
            else row.astype(float).tolist()
        )
        data.append(EmbeddingData(embedding=value, index=index))
    tokens = sum(counts)
    return EmbeddingList(data=data, model=req.model, usage=EmbeddingUsage(tokens, tokens))


# -- /v1/models ----------------------------------------------------------------------------------
def _model_object(entry: Any) -> ModelObject:
    name = entry.name
    return ModelObject(id=name.display_shortest(), created=int(entry.modified_at.timestamp()),
                       owned_by=name.namespace)  # fmt: skip


async def list_models(state: ServerState) -> ModelList:
    return ModelList(data=[_model_object(e) for e in await list_entries(state.store)])


async def retrieve_model(state: ServerState, model: str) -> ModelObject:
    try:
        target = state.store.find(model)
    except PowerError:
        target = None
    for entry in await list_entries(state.store):
        if target is not None and entry.name.key == target.key:
            return _model_object(entry)
    raise NotFound(f"model '{model}' not found")
