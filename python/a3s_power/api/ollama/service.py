"""Ollama's inference endpoints: generate, chat, embed, embeddings, ps.

Each service resolves the model in the store, merges options (defaults < Modelfile < request),
holds a runner from the scheduler for the request's lifetime, and turns engine chunks into Ollama's
wire objects. Streams are async iterators of dicts; the routes encode them.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from a3s_power.api.ollama.protocol import (
    ChatRequest,
    EmbeddingsRequest,
    EmbedRequest,
    GenerateRequest,
    Message,
)
from a3s_power.api.streaming import now_rfc3339
from a3s_power.durations import keep_alive_seconds
from a3s_power.errors import InvalidRequest, NotFound, PowerError, Unsupported
from a3s_power.runtime.generation import Chunk, Completion, GenerationOptions, generate
from a3s_power.runtime.grammar import grammar_for_format
from a3s_power.runtime.loaded import LoadedModel
from a3s_power.runtime.options import merge_options
from a3s_power.runtime.scheduler import LoadSpec, Runner
from a3s_power.store.errors import InvalidModelName, ModelNotFound
from a3s_power.store.gguf import GGUFInfo
from a3s_power.store.model_config import details_from_config
from a3s_power.store.names import parse_name
from a3s_power.store.show import ModelView, capabilities

Event = dict[str, Any]
THINK_LEVELS = ("high", "medium", "low", "max")


@dataclass
class ResolvedModel:
    """A stored model, ready to be scheduled."""

    requested: str
    key: str  # full name: the scheduler's key
    view: ModelView
    info: GGUFInfo | None
    capabilities: list[str] = field(default_factory=list)

    @property
    def display(self) -> str:
        return self.view.name.display_shortest()


def resolve(state: Any, model: str) -> ResolvedModel:
    if not model:
        raise InvalidRequest("model is required")
    try:
        view = ModelView(state.store, model)
    except (ModelNotFound, InvalidModelName):
        raise NotFound(f"model '{model}' not found") from None
    if view.model_path is None:
        raise NotFound(f"model '{model}' not found")
    info = view.gguf()
    return ResolvedModel(model, str(view.name), view, info, capabilities(view, info))


def _require(model: ResolvedModel, capability: str, what: str) -> None:
    if capability not in model.capabilities:
        raise InvalidRequest(f'"{model.requested}" does not support {what}')


def _check_think(model: ResolvedModel, think: bool | str | None) -> None:
    if isinstance(think, str) and think not in THINK_LEVELS:
        raise InvalidRequest(
            f'invalid think value: "{think}" (must be "high", "medium", "low", "max", true, or false)'
        )
    if think not in (None, False) and "thinking" not in model.capabilities:
        raise InvalidRequest(f'"{model.requested}" does not support thinking')


def _check_logprobs(top_logprobs: int) -> None:
    if not 0 <= top_logprobs <= 20:
        raise InvalidRequest("top_logprobs must be between 0 and 20")


def _keep_alive(value: float | str | None) -> float | None:
    return None if value is None else keep_alive_seconds(value)


def _prepare(
    state: Any,
    model: ResolvedModel,
    options: dict[str, Any] | None,
    *,
    embedding: bool = False,
) -> tuple[GenerationOptions, LoadSpec]:
    settings = state.settings
    trained = (model.info.context_length or 0) if model.info is not None else 0
    gen, runner = merge_options(
        model.view.parameters, options, default_num_ctx=settings.context_length, trained_ctx=trained
    )
    spec = LoadSpec(
        path=str(model.view.model_path),
        num_ctx=runner.num_ctx,
        num_parallel=settings.num_parallel,
        num_batch=runner.num_batch,
        num_thread=runner.num_thread or settings.num_thread,
        num_gpu=runner.num_gpu,
        use_mmap=runner.use_mmap,
        embedding=embedding,
        lora_paths=tuple(str(p) for p in model.view.adapter_paths),
    )
    return gen, spec


async def _acquire(state: Any, model: ResolvedModel, spec: LoadSpec) -> tuple[Runner, int]:
    """Hold a runner; also returns the ns spent loading it (0 when it was already loaded)."""
    started = time.perf_counter_ns()
    already = state.scheduler.get(model.key)
    runner: Runner = await state.scheduler.acquire(
        model.key,
        spec,
        digest=_manifest_digest(state, model),
        size=_model_size(model),
        details=details_from_config(model.view.config),
    )
    loaded_now = already is None or already is not runner
    return runner, (time.perf_counter_ns() - started) if loaded_now else 0


def _manifest_digest(state: Any, model: ResolvedModel) -> str:
    """What `ollama ps`/`list` show as the digest: sha256 of the manifest file."""
    _, raw = state.store.read_manifest_bytes(model.view.name)
    return hashlib.sha256(raw).hexdigest()


def _model_size(model: ResolvedModel) -> int:
    return sum(layer.size for layer in model.view.manifest.all_blobs())


async def _load_or_unload(state: Any, model: ResolvedModel, spec: LoadSpec, keep_alive: float | None) -> str:
    """An empty prompt: load the model (done_reason "load"), or with keep_alive 0 unload it."""
    if keep_alive == 0:
        await state.scheduler.unload(model.key)
        return "unload"
    runner, _ = await _acquire(state, model, spec)
    state.scheduler.release(runner, keep_alive)
    return "load"


def _stops(gen: GenerationOptions, extra: Iterable[str] = ()) -> list[str]:
    seen: list[str] = []
    for stop in [*gen.stop, *extra]:
        if stop and stop not in seen:
            seen.append(stop)
    return seen


def _logprobs_wire(chunk: Chunk, top: int) -> list[dict[str, Any]]:
    out = []
    for lp in chunk.logprobs or []:
        item: dict[str, Any] = {
            "token": lp.text.decode("utf-8", errors="replace"),
            "logprob": lp.logprob,
            "bytes": list(lp.text),
        }
        if top > 0:
            item["top_logprobs"] = [
                {"token": text.decode("utf-8", errors="replace"), "logprob": value, "bytes": list(text)}
                for _, text, value in lp.top[:top]
            ]
        out.append(item)
    return out


def _metrics(final: Completion, started: int, load_duration: int) -> dict[str, Any]:
    """Ollama's metrics; zero values are omitted (`omitempty`)."""
    values = {
        "total_duration": time.perf_counter_ns() - started,
        "load_duration": load_duration,
        # Ollama (llama-server's cache_n + prompt_n): every prompt token, reused ones included
        "prompt_eval_count": final.prompt_eval_count + final.cached_tokens,
        "prompt_eval_duration": final.prompt_eval_duration,
        "eval_count": final.eval_count,
        "eval_duration": final.eval_duration,
    }
    return {k: v for k, v in values.items() if v}


def _wire_messages(messages: Iterable[Message]) -> list[dict[str, Any]]:
    """Ollama messages → the OpenAI-shaped list llama.cpp's chat templates take."""
    out: list[dict[str, Any]] = []
    for message in messages:
        if message.images:
            raise Unsupported("images are not supported yet")
        item: dict[str, Any] = {"role": message.role.lower(), "content": message.content}
        if message.thinking:
            item["reasoning_content"] = message.thinking
        if message.tool_calls:
            item["tool_calls"] = [
                {
                    "type": "function",
                    "id": call.get("id") or f"call_{i}",
                    "function": {
                        "name": call.get("function", {}).get("name", ""),
                        "arguments": orjson.dumps(call.get("function", {}).get("arguments", {})).decode(),
                    },
                }
                for i, call in enumerate(message.tool_calls)
            ]
        if message.tool_name:
            item["name"] = message.tool_name
        if message.tool_call_id:
            item["tool_call_id"] = message.tool_call_id
        out.append(item)
    return out


def _render(
    loaded: LoadedModel,
    messages: list[dict[str, Any]],
    *,
    tools: list[dict[str, Any]] | None = None,
    think: bool | str | None = None,
) -> tuple[list[int], list[str]]:
    """Prompt tokens and template stop strings for a conversation (the model's Jinja template)."""
    try:
        rendered = loaded.render_chat(
            messages,
            tools_json=orjson.dumps(tools).decode() if tools else "",
            enable_thinking=think not in (False,),
        )
    except (RuntimeError, ValueError) as exc:
        raise InvalidRequest(f"failed to render the chat template: {exc}") from exc
    tokens = loaded.tokenize(rendered.prompt, add_special=True, parse_special=True)
    return tokens, list(rendered.additional_stops)


async def _stream(
    loaded: LoadedModel,
    tokens: list[int],
    gen: GenerationOptions,
) -> AsyncIterator[Chunk | Completion]:
    try:
        async for item in generate(loaded, tokens, gen):
            yield item
    except PowerError as exc:
        if "context length" in str(exc) or "prompt is longer" in str(exc):
            raise InvalidRequest(str(exc)) from exc
        raise


def _request_flags(
    gen: GenerationOptions,
    fmt: str | dict[str, Any] | None,
    logprobs: bool,
    top_logprobs: int,
    truncate: bool | None,
    shift: bool | None,
) -> None:
    gen.grammar = grammar_for_format(fmt)
    gen.logprobs = logprobs
    gen.top_logprobs = top_logprobs
    gen.truncate = True if truncate is None else truncate
    gen.shift = True if shift is None else shift


@dataclass
class _Generation:
    """One generate/chat request, ready to run: `build` renders the prompt on the loaded model,
    `text` names a piece of output the way the endpoint does."""

    model: ResolvedModel
    requested: str
    spec: LoadSpec
    gen: GenerationOptions
    keep_alive: float | None
    build: Callable[[LoadedModel], tuple[list[int], list[str]]]
    text: Callable[[str], Event]
    final_extra: Callable[[Completion], Event]
    started: int


async def _generation_events(state: Any, job: _Generation) -> AsyncIterator[Event]:
    runner, load_duration = await _acquire(state, job.model, job.spec)
    want_logprobs = job.gen.logprobs or job.gen.top_logprobs > 0
    try:
        tokens, template_stops = job.build(runner.loaded)
        job.gen.stop = _stops(job.gen, template_stops)
        async for item in _stream(runner.loaded, tokens, job.gen):
            head = {"model": job.requested, "created_at": now_rfc3339()}
            if isinstance(item, Chunk):
                chunk: Event = {**head, **job.text(item.text), "done": False}
                if want_logprobs:
                    chunk["logprobs"] = _logprobs_wire(item, job.gen.top_logprobs)
                yield chunk
            else:
                yield {
                    **head,
                    **job.text(""),
                    "done": True,
                    "done_reason": item.done_reason,
                    **job.final_extra(item),
                    **_metrics(item, job.started, load_duration),
                }
    finally:
        state.scheduler.release(runner, job.keep_alive)


def _combine(events: list[Event], text_of: Callable[[Event], str], text: Callable[[str], Event]) -> Event:
    """`stream: false`: the final event carrying the whole text and every logprob."""
    final = {**(events[-1] if events else {}), **text("".join(text_of(e) for e in events))}
    logprobs = [lp for e in events for lp in e.get("logprobs", [])]
    if logprobs:
        final["logprobs"] = logprobs
    return final


def _done_event(requested: str, text: Callable[[str], Event], reason: str) -> Event:
    """The single answer to a load (empty prompt) or unload (keep_alive 0) request."""
    return {"model": requested, "created_at": now_rfc3339(), **text(""), "done": True, "done_reason": reason}


def _no_extra(_: Completion) -> Event:
    return {}


# -- /api/generate ------------------------------------------------------------------------------
def _response_text(text: str) -> Event:
    return {"response": text}


async def generate_events(state: Any, req: GenerateRequest) -> AsyncIterator[Event]:
    started = time.perf_counter_ns()
    model = resolve(state, req.model)
    _require(model, "completion", "generate")
    if req.raw and (req.template or req.system or req.context):
        raise InvalidRequest("raw mode does not support template, system, or context")
    _check_logprobs(req.top_logprobs)
    _check_think(model, req.think)
    if req.suffix:
        raise InvalidRequest(f"{model.key} does not support insert")
    if req.images:
        _require(model, "vision", "vision")
        raise Unsupported("images are not supported yet")
    keep_alive = _keep_alive(req.keep_alive)
    gen, spec = _prepare(state, model, req.options)
    if not req.prompt:
        yield _done_event(req.model, _response_text, await _load_or_unload(state, model, spec, keep_alive))
        return
    _request_flags(gen, req.format, req.logprobs, req.top_logprobs, req.truncate, req.shift)

    def build(loaded: LoadedModel) -> tuple[list[int], list[str]]:
        stops: list[str] = []
        if req.raw:
            tokens = loaded.tokenize(req.prompt, add_special=True, parse_special=False)
        else:
            system = req.system if req.system is not None else model.view.system
            messages = [{"role": "system", "content": system}] if system else []
            tokens, stops = _render(
                loaded, [*messages, {"role": "user", "content": req.prompt}], think=req.think
            )
        return (list(req.context) + tokens if req.context else tokens), stops

    job = _Generation(model, req.model, spec, gen, keep_alive, build, _response_text,
                      lambda done: {"context": done.context}, started)  # fmt: skip
    async for event in _generation_events(state, job):
        yield event


def combine_generate(events: list[Event]) -> Event:
    return _combine(events, lambda e: str(e.get("response", "")), _response_text)


# -- /api/chat ----------------------------------------------------------------------------------
def _message_text(text: str) -> Event:
    return {"message": {"role": "assistant", "content": text}}


async def chat_events(state: Any, req: ChatRequest) -> AsyncIterator[Event]:
    started = time.perf_counter_ns()
    model = resolve(state, req.model)
    _require(model, "completion", "chat")
    _check_logprobs(req.top_logprobs)
    _check_think(model, req.think)
    if req.tools:
        _require(model, "tools", "tools")
    keep_alive = _keep_alive(req.keep_alive)
    gen, spec = _prepare(state, model, req.options)
    if not req.messages:
        yield _done_event(req.model, _message_text, await _load_or_unload(state, model, spec, keep_alive))
        return
    messages = _wire_messages(req.messages)
    if model.view.system and not any(m["role"] == "system" for m in messages):
        messages.insert(0, {"role": "system", "content": model.view.system})
    messages = _wire_messages(Message(**m) for m in model.view.messages) + messages
    _request_flags(gen, req.format, req.logprobs, req.top_logprobs, req.truncate, req.shift)

    def build(loaded: LoadedModel) -> tuple[list[int], list[str]]:
        return _render(loaded, messages, tools=req.tools, think=req.think)

    job = _Generation(model, req.model, spec, gen, keep_alive, build, _message_text, _no_extra, started)
    async for event in _generation_events(state, job):
        yield event


def combine_chat(events: list[Event]) -> Event:
    return _combine(events, lambda e: str(e.get("message", {}).get("content", "")), _message_text)


# -- /api/embed, /api/embeddings ------------------------------------------------------------------
async def _embed(
    state: Any,
    model: ResolvedModel,
    texts: list[str],
    options: dict[str, Any] | None,
    *,
    normalize: bool,
    truncate: bool,
    keep_alive: float | None,
) -> tuple[np.ndarray, list[int], int]:
    _, spec = _prepare(state, model, options, embedding=True)
    runner, load_duration = await _acquire(state, model, spec)
    try:
        try:
            vectors, counts = await asyncio.to_thread(
                runner.loaded.embed, texts, normalize=normalize, truncate=truncate
            )
        except (RuntimeError, ValueError) as exc:
            message = str(exc)
            if "context" in message or "too long" in message or "exceeds" in message:
                raise InvalidRequest("the input length exceeds the context length") from exc
            raise PowerError(message) from exc
    finally:
        state.scheduler.release(runner, keep_alive)
    return np.asarray(vectors, dtype=np.float32), list(counts), load_duration


async def embed(state: Any, req: EmbedRequest) -> Event:
    started = time.perf_counter_ns()
    model = resolve(state, req.model)
    keep_alive = _keep_alive(req.keep_alive)
    if req.input is None or req.input == "":
        texts: list[str] = []
    elif isinstance(req.input, str):
        texts = [req.input]
    else:
        texts = list(req.input)
    if req.dimensions < 0:
        raise InvalidRequest("dimensions must be a positive integer")
    if not texts:
        _, spec = _prepare(state, model, req.options, embedding=True)
        await _load_or_unload(state, model, spec, keep_alive)
        return {"model": req.model, "embeddings": []}
    truncate = True if req.truncate is None else req.truncate
    vectors, counts, load_duration = await _embed(
        state, model, texts, req.options, normalize=True, truncate=truncate, keep_alive=keep_alive
    )
    if 0 < req.dimensions < vectors.shape[1]:
        vectors = vectors[:, : req.dimensions]
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = vectors / np.where(norms == 0, 1, norms)
    body: Event = {
        "model": req.model,
        "embeddings": vectors.tolist(),
        "total_duration": time.perf_counter_ns() - started,
        "load_duration": load_duration,
        "prompt_eval_count": sum(counts),
    }
    return {k: v for k, v in body.items() if v or k == "embeddings"}


async def embeddings_legacy(state: Any, req: EmbeddingsRequest) -> Event:
    """`/api/embeddings`: one prompt, an unnormalized vector under `embedding`."""
    model = resolve(state, req.model)
    keep_alive = _keep_alive(req.keep_alive)
    if not req.prompt:
        _, spec = _prepare(state, model, req.options, embedding=True)
        await _load_or_unload(state, model, spec, keep_alive)
        return {"embedding": []}
    vectors, _, _ = await _embed(
        state, model, [req.prompt], req.options, normalize=False, truncate=True, keep_alive=keep_alive
    )
    return {"embedding": vectors[0].astype(np.float64).tolist()}


# -- /api/ps ----------------------------------------------------------------------------------------
def ps(state: Any) -> Event:
    models = []
    for runner in state.scheduler.loaded():
        expires = runner.expires_at
        models.append(
            {
                "name": _short(runner.key),
                "model": _short(runner.key),
                "size": runner.size,
                "digest": runner.digest,
                "details": runner.details,
                "expires_at": expires.isoformat().replace("+00:00", "Z") if expires else now_rfc3339(),
                "size_vram": 0,
                "context_length": runner.spec.num_ctx,
            }
        )
    return {"models": models}


def _short(full: str) -> str:
    return parse_name(full).display_shortest()
