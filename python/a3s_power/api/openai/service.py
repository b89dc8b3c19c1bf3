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

from a3s_power.api.embedding import embed_texts
from a3s_power.api.inference import (
    Generation,
    Prompt,
    ReplyEnd,
    ReplyPiece,
    logprobs_wire,
    render_prompt,
    run_reply,
    set_request_flags,
    wants_parsing,
)
from a3s_power.api.openai.protocol import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from a3s_power.api.scheduling import check_logprobs, check_think, prepare, require, resolve
from a3s_power.chat.reply import ReplyDelta
from a3s_power.errors import InvalidRequest, NotFound, PowerError, Unsupported
from a3s_power.runtime.loaded import LoadedModel

Event = dict[str, Any]
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


def _messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI messages as llama.cpp's templates take them (text parts joined; `reasoning` →
    `reasoning_content`; `developer` → `system`)."""
    if not messages:
        raise InvalidRequest("[] is too short - 'messages'")
    out = []
    for message in messages:
        item = dict(message)
        item["role"] = str(item.get("role", "")).lower()
        if item["role"] == "developer":
            item["role"] = "system"
        content = item.get("content")
        if content is None:
            item["content"] = ""
        elif isinstance(content, list):
            texts = []
            for part in content:
                kind = part.get("type") if isinstance(part, dict) else None
                if kind == "text":
                    texts.append(str(part.get("text", "")))
                elif kind in ("image_url", "input_audio"):
                    raise Unsupported("images and audio are not supported yet")
                else:
                    raise InvalidRequest(f"invalid message content part type: {kind!r}")
            item["content"] = "\n".join(texts)
        if "reasoning" in item:
            item["reasoning_content"] = item.pop("reasoning")
        out.append(item)
    return out


def tool_choice_for(
    choice: str | dict[str, Any] | None, tools: list[dict[str, Any]] | None
) -> tuple[str, list[dict[str, Any]] | None]:
    """OpenAI tool_choice → (llama.cpp's "auto"/"none"/"required", the tools to offer)."""
    if choice is None or not tools:
        return "auto", tools
    if isinstance(choice, str):
        if choice not in ("auto", "none", "required"):
            raise InvalidRequest(f"invalid tool_choice: {choice!r}")
        return choice, tools
    name = choice.get("name") or (choice.get("function") or {}).get("name")  # Responses / Chat shapes
    chosen = [t for t in tools if (t.get("function") or {}).get("name") == name]
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


def _openai_tool_calls(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "id": call["id"],
            "index": call["function"]["index"],
            "type": "function",
            "function": {
                "name": call["function"]["name"],
                "arguments": orjson.dumps(call["function"]["arguments"]).decode(),
            },
        }
        for call in calls
    ]


def _usage(end: ReplyEnd) -> Event:
    prompt = end.completion.prompt_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": end.completion.eval_count,
        "total_tokens": prompt + end.completion.eval_count,
    }


def _finish_reason(end: ReplyEnd) -> str:
    if end.completion.done_reason == "length":
        return "length"
    return "tool_calls" if end.tool_calls_sent else "stop"


@dataclass
class Run:
    """A prepared request; the response's id and `created` are fixed up front (every chunk of a
    stream carries the same ones)."""

    job: Generation
    model: str
    include_usage: bool
    logprobs: bool = False
    id_prefix: str = "chatcmpl"
    id: str = ""
    created: int = field(default_factory=lambda: int(time.time()))

    def __post_init__(self) -> None:
        self.id = self.id or f"{self.id_prefix}-{secrets.randbelow(999)}"


def prepare_chat(state: Any, req: ChatCompletionRequest) -> Run:
    model = resolve(state, req.model)
    require(model, "completion", "chat")
    messages = _messages(req.messages)
    think = _think(req)
    check_think(model, think)
    check_logprobs(req.top_logprobs)
    tool_choice, tools = tool_choice_for(req.tool_choice, req.tools)
    if tools and tool_choice != "none":
        require(model, "tools", "tools")
    if model.view.system and not any(m["role"] == "system" for m in messages):
        messages.insert(0, {"role": "system", "content": model.view.system})
    gen, spec = prepare(state, model, _options(req, req.max_completion_tokens or req.max_tokens))
    set_request_flags(gen, _format(req), req.logprobs, req.top_logprobs)
    gen.ignore_eos = req.ignore_eos

    def build(loaded: LoadedModel) -> Prompt:
        return render_prompt(model, loaded, messages, tools=tools, tool_choice=tool_choice, think=think)

    parse = wants_parsing(model, think, tools)
    thinking = "thinking" in model.capabilities and think is not False
    force = bool(tools) and tool_choice == "required" and not thinking
    job = Generation(model, spec, gen, None, build, parse, "thinking" in model.capabilities, force)
    include_usage = bool(req.stream_options and req.stream_options.include_usage)
    return Run(job, req.model, include_usage, req.logprobs or req.top_logprobs > 0)


def _message(delta: ReplyDelta) -> Event:
    message: Event = {"role": "assistant", "content": delta.content}
    if delta.thinking:
        message["reasoning"] = delta.thinking
    if delta.tool_calls:
        message["tool_calls"] = _openai_tool_calls(delta.tool_calls)
    return message


async def chat_completion(state: Any, run: Run) -> Event:
    whole = ReplyDelta()
    logprobs: list[Event] = []
    end: ReplyEnd | None = None
    async for item in run_reply(state, run.job):
        whole.add(item.delta)
        if isinstance(item, ReplyPiece):
            if run.logprobs:
                logprobs += logprobs_wire(item.chunk, max(run.job.gen.top_logprobs, 0))
        else:
            end = item
    assert end is not None
    choice: Event = {"index": 0, "message": _message(whole), "finish_reason": _finish_reason(end)}
    if run.logprobs:
        choice["logprobs"] = {"content": logprobs}
    return {
        "id": run.id,
        "object": "chat.completion",
        "created": run.created,
        "model": run.model,
        "system_fingerprint": FINGERPRINT,
        "choices": [choice],
        "usage": _usage(end),
    }


async def chat_completion_chunks(state: Any, run: Run) -> AsyncIterator[Event]:
    """The chunk sequence Ollama sends: a role chunk, content / reasoning / tool-call deltas, an
    empty-delta chunk with the finish reason, an optional usage chunk (the route adds [DONE])."""

    def chunk(delta: Event, finish: str | None = None, **extra: Any) -> Event:
        choice: Event = {"index": 0, "delta": delta, "finish_reason": finish, **extra}
        return {
            "id": run.id,
            "object": "chat.completion.chunk",
            "created": run.created,
            "model": run.model,
            "system_fingerprint": FINGERPRINT,
            "choices": [choice],
        }

    yield chunk({"role": "assistant", "content": ""})
    async for item in run_reply(state, run.job):
        delta = item.delta
        if delta.thinking:
            yield chunk({"role": "assistant", "content": "", "reasoning": delta.thinking})
        if delta.content or (isinstance(item, ReplyPiece) and run.logprobs):
            extra: dict[str, Any] = {}
            if isinstance(item, ReplyPiece) and run.logprobs:
                extra["logprobs"] = {"content": logprobs_wire(item.chunk, run.job.gen.top_logprobs)}
            yield chunk({"role": "assistant", "content": delta.content}, **extra)
        if delta.tool_calls:
            yield chunk({"role": "assistant", "tool_calls": _openai_tool_calls(delta.tool_calls)})
        if isinstance(item, ReplyEnd):
            yield chunk({}, _finish_reason(item))
            if run.include_usage:
                yield {
                    "id": run.id,
                    "object": "chat.completion.chunk",
                    "created": run.created,
                    "model": run.model,
                    "system_fingerprint": FINGERPRINT,
                    "choices": [],
                    "usage": _usage(item),
                }


# -- /v1/completions ----------------------------------------------------------------------------
def prepare_completion(state: Any, req: CompletionRequest) -> Run:
    model = resolve(state, req.model)
    require(model, "completion", "generate")
    if not isinstance(req.prompt, str):
        raise InvalidRequest("prompt must be a string")
    if req.suffix:
        raise InvalidRequest(f"{model.key} does not support insert")
    gen, spec = prepare(state, model, _options(req, req.max_tokens))
    top = req.logprobs or 0
    set_request_flags(gen, None, top > 0, top)
    prompt_text = req.prompt
    system = model.view.system

    def build(loaded: LoadedModel) -> Prompt:
        messages = [{"role": "system", "content": system}] if system else []
        return render_prompt(model, loaded, [*messages, {"role": "user", "content": prompt_text}])

    job = Generation(model, spec, gen, None, build)
    return Run(
        job, req.model, bool(req.stream_options and req.stream_options.include_usage), id_prefix="cmpl"
    )


def _completion_body(run: Run, choices: list[Event], usage: Event | None) -> Event:
    body: Event = {
        "id": run.id,
        "object": "text_completion",
        "created": run.created,
        "model": run.model,
        "system_fingerprint": FINGERPRINT,
        "choices": choices,
    }
    if usage is not None:
        body["usage"] = usage
    return body


async def completion(state: Any, run: Run) -> Event:
    text = ""
    end: ReplyEnd | None = None
    async for item in run_reply(state, run.job):
        text += item.delta.content
        if isinstance(item, ReplyEnd):
            end = item
    assert end is not None
    choice = {"text": text, "index": 0, "logprobs": None, "finish_reason": _finish_reason(end)}
    return _completion_body(run, [choice], _usage(end))


async def completion_chunks(state: Any, run: Run) -> AsyncIterator[Event]:
    async for item in run_reply(state, run.job):
        finish = _finish_reason(item) if isinstance(item, ReplyEnd) else None
        if item.delta.content or finish:
            choice = {"text": item.delta.content, "index": 0, "logprobs": None, "finish_reason": finish}
            yield _completion_body(run, [choice], None)
        if isinstance(item, ReplyEnd) and run.include_usage:
            yield _completion_body(run, [], _usage(item))


# -- /v1/embeddings -----------------------------------------------------------------------------
async def embeddings(state: Any, req: EmbeddingRequest) -> Event:
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
        value: Any = (
            base64.b64encode(np.asarray(row, dtype="<f4").tobytes()).decode()
            if req.encoding_format == "base64"
            else row.astype(float).tolist()
        )
        data.append({"object": "embedding", "embedding": value, "index": index})
    tokens = sum(counts)
    return {
        "object": "list",
        "data": data,
        "model": req.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


# -- /v1/models ----------------------------------------------------------------------------------
def _model_object(entry: Any) -> Event:
    name = entry.name
    return {
        "id": name.display_shortest(),
        "object": "model",
        "created": int(entry.modified_at.timestamp()),
        "owned_by": name.namespace,
    }


def list_models(state: Any) -> Event:
    return {"object": "list", "data": [_model_object(e) for e in state.store.list_models()]}


def retrieve_model(state: Any, model: str) -> Event:
    try:
        target = state.store.find(model)
    except PowerError:
        target = None
    for entry in state.store.list_models():
        if target is not None and entry.name.key == target.key:
            return _model_object(entry)
    raise NotFound(f"model '{model}' not found")
