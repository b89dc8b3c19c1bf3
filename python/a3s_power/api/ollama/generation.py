"""`/api/generate` and `/api/chat`: render the prompt, run it, and turn the reply into Ollama's
chunks (`response` / `message.content`, `thinking`, `tool_calls`), then a final chunk with metrics.

When the model can think or the request has tools, llama.cpp's chat parser for the rendered
conversation splits the reply (`a3s_power.chat.reply`); otherwise text goes out as it comes.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from a3s_power import _native
from a3s_power.api.ollama.protocol import ChatRequest, GenerateRequest, Message
from a3s_power.api.ollama.scheduling import (
    ResolvedModel,
    acquire,
    check_logprobs,
    check_think,
    keep_alive_of,
    load_or_unload,
    prepare,
    require,
    resolve,
)
from a3s_power.api.streaming import now_rfc3339
from a3s_power.chat.reply import ReplyDelta, ReplyParser
from a3s_power.errors import InvalidRequest, PowerError, Unsupported
from a3s_power.runtime.generation import Chunk, Completion, GenerationOptions, generate
from a3s_power.runtime.grammar import grammar_for_format
from a3s_power.runtime.loaded import LoadedModel
from a3s_power.store.show import is_jinja

Event = dict[str, Any]
Shape = Callable[[ReplyDelta], Event]


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


@dataclass
class _Prompt:
    tokens: list[int]
    stops: list[str]
    render: _native.ChatRender | None = None


def _render(
    model: ResolvedModel,
    loaded: LoadedModel,
    messages: list[dict[str, Any]],
    *,
    tools: list[dict[str, Any]] | None = None,
    think: bool | str | None = None,
) -> _Prompt:
    """The conversation through the model's Jinja template (a Jinja TEMPLATE layer replaces it)."""
    template = model.view.template or ""
    try:
        rendered = loaded.render_chat(
            messages,
            tools_json=orjson.dumps(tools).decode() if tools else "",
            enable_thinking=think is not False,
            **({"template_override": template} if is_jinja(template) else {}),
        )
    except (RuntimeError, ValueError) as exc:
        raise InvalidRequest(f"failed to render the chat template: {exc}") from exc
    tokens = loaded.tokenize(rendered.prompt, add_special=True, parse_special=True)
    return _Prompt(tokens, list(rendered.additional_stops), rendered)


def _request_flags(gen: GenerationOptions, req: GenerateRequest | ChatRequest) -> None:
    gen.grammar = grammar_for_format(req.format)
    gen.logprobs = req.logprobs
    gen.top_logprobs = req.top_logprobs
    gen.truncate = True if req.truncate is None else req.truncate
    gen.shift = True if req.shift is None else req.shift


def _tool_grammar(gen: GenerationOptions, render: _native.ChatRender) -> None:
    """Constrain tool calls with the grammar the template's parser expects (lazy: from the call's
    opening marker on), unless `format` already constrains the whole reply."""
    if gen.grammar or not render.grammar:
        return
    gen.grammar = render.grammar
    gen.grammar_lazy = render.grammar_lazy
    gen.grammar_triggers = list(render.trigger_words)
    gen.grammar_trigger_patterns = list(render.trigger_patterns)
    gen.preserved_tokens = list(render.preserved_tokens)


@dataclass
class _Generation:
    """One generate/chat request, ready to run. `build` renders the prompt on the loaded model;
    `shape` names a piece of the reply the way the endpoint does."""

    model: ResolvedModel
    requested: str
    spec: Any
    gen: GenerationOptions
    keep_alive: float | None
    build: Callable[[LoadedModel], _Prompt]
    shape: Shape
    final_extra: Callable[[Completion], Event]
    started: int
    parse_reply: bool = False  # split thinking / tool calls out of the text
    parse_reasoning: bool = True


async def _generation_events(state: Any, job: _Generation) -> AsyncIterator[Event]:
    runner, load_duration = await acquire(state, job.model, job.spec)
    want_logprobs = job.gen.logprobs or job.gen.top_logprobs > 0
    try:
        prompt = job.build(runner.loaded)
        job.gen.stop = _stops(job.gen, prompt.stops)
        parser = None
        if job.parse_reply and prompt.render is not None:
            _tool_grammar(job.gen, prompt.render)
            parser = ReplyParser(prompt.render, parse_reasoning=job.parse_reasoning)
        async for item in _stream(runner.loaded, prompt.tokens, job.gen):
            head = {"model": job.requested, "created_at": now_rfc3339()}
            if isinstance(item, Chunk):
                delta = parser.feed(item.text) if parser else ReplyDelta(content=item.text)
                if not delta and not want_logprobs:
                    continue
                chunk: Event = {**head, **job.shape(delta), "done": False}
                if want_logprobs:
                    chunk["logprobs"] = _logprobs_wire(item, job.gen.top_logprobs)
                yield chunk
            else:
                yield {
                    **head,
                    **job.shape(parser.finish() if parser else ReplyDelta()),
                    "done": True,
                    "done_reason": item.done_reason,
                    **job.final_extra(item),
                    **_metrics(item, job.started, load_duration),
                }
    finally:
        state.scheduler.release(runner, job.keep_alive)


def _combine(events: list[Event], delta_of: Callable[[Event], ReplyDelta], shape: Shape) -> Event:
    """`stream: false`: the final event carrying the whole reply and every logprob."""
    whole = ReplyDelta()
    for event in events:
        part = delta_of(event)
        whole.content += part.content
        whole.thinking += part.thinking
        whole.tool_calls += part.tool_calls
    final = {**(events[-1] if events else {}), **shape(whole)}
    logprobs = [lp for e in events for lp in e.get("logprobs", [])]
    if logprobs:
        final["logprobs"] = logprobs
    return final


def _done_event(requested: str, shape: Shape, reason: str) -> Event:
    """The single answer to a load (empty prompt) or unload (keep_alive 0) request."""
    return {"model": requested, "created_at": now_rfc3339(), **shape(ReplyDelta()), "done": True,
            "done_reason": reason}  # fmt: skip


def _no_extra(_: Completion) -> Event:
    return {}


def _wants_parsing(model: ResolvedModel, think: bool | str | None, tools: object) -> bool:
    return bool(tools) or ("thinking" in model.capabilities and think is not False)


# -- /api/generate ------------------------------------------------------------------------------
def _generate_shape(delta: ReplyDelta) -> Event:
    return {"response": delta.content, **({"thinking": delta.thinking} if delta.thinking else {})}


async def generate_events(state: Any, req: GenerateRequest) -> AsyncIterator[Event]:
    started = time.perf_counter_ns()
    model = resolve(state, req.model)
    require(model, "completion", "generate")
    if req.raw and (req.template or req.system or req.context):
        raise InvalidRequest("raw mode does not support template, system, or context")
    check_logprobs(req.top_logprobs)
    check_think(model, req.think)
    if req.suffix:
        raise InvalidRequest(f"{model.key} does not support insert")
    if req.images:
        require(model, "vision", "vision")
        raise Unsupported("images are not supported yet")
    keep_alive = keep_alive_of(req.keep_alive)
    gen, spec = prepare(state, model, req.options)
    if not req.prompt:
        yield _done_event(req.model, _generate_shape, await load_or_unload(state, model, spec, keep_alive))
        return
    _request_flags(gen, req)

    def build(loaded: LoadedModel) -> _Prompt:
        if req.raw:
            return _Prompt(loaded.tokenize(req.prompt, add_special=True, parse_special=False), [])
        system = req.system if req.system is not None else model.view.system
        messages = [{"role": "system", "content": system}] if system else []
        prompt = _render(model, loaded, [*messages, {"role": "user", "content": req.prompt}], think=req.think)
        if req.context:
            prompt.tokens = list(req.context) + prompt.tokens
        return prompt

    job = _Generation(model, req.model, spec, gen, keep_alive, build, _generate_shape,
                      lambda done: {"context": done.context}, started,
                      parse_reply=not req.raw and _wants_parsing(model, req.think, None))  # fmt: skip
    async for event in _generation_events(state, job):
        yield event


def combine_generate(events: list[Event]) -> Event:
    return _combine(
        events, lambda e: ReplyDelta(e.get("response", ""), e.get("thinking", "")), _generate_shape
    )


# -- /api/chat ----------------------------------------------------------------------------------
def _chat_shape(delta: ReplyDelta) -> Event:
    message: Event = {"role": "assistant", "content": delta.content}
    if delta.thinking:
        message["thinking"] = delta.thinking
    if delta.tool_calls:
        message["tool_calls"] = delta.tool_calls
    return {"message": message}


def _chat_delta(event: Event) -> ReplyDelta:
    message = event.get("message", {})
    return ReplyDelta(message.get("content", ""), message.get("thinking", ""), message.get("tool_calls", []))


async def chat_events(state: Any, req: ChatRequest) -> AsyncIterator[Event]:
    started = time.perf_counter_ns()
    model = resolve(state, req.model)
    require(model, "completion", "chat")
    check_logprobs(req.top_logprobs)
    check_think(model, req.think)
    if req.tools:
        require(model, "tools", "tools")
    keep_alive = keep_alive_of(req.keep_alive)
    gen, spec = prepare(state, model, req.options)
    if not req.messages:
        yield _done_event(req.model, _chat_shape, await load_or_unload(state, model, spec, keep_alive))
        return
    messages = _wire_messages(req.messages)
    if model.view.system and not any(m["role"] == "system" for m in messages):
        messages.insert(0, {"role": "system", "content": model.view.system})
    messages = _wire_messages(Message(**m) for m in model.view.messages) + messages
    _request_flags(gen, req)

    def build(loaded: LoadedModel) -> _Prompt:
        return _render(model, loaded, messages, tools=req.tools, think=req.think)

    job = _Generation(model, req.model, spec, gen, keep_alive, build, _chat_shape, _no_extra, started,
                      parse_reply=_wants_parsing(model, req.think, req.tools),
                      parse_reasoning="thinking" in model.capabilities)  # fmt: skip
    async for event in _generation_events(state, job):
        yield event


def combine_chat(events: list[Event]) -> Event:
    return _combine(events, _chat_delta, _chat_shape)
