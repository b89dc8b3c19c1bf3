"""`/api/generate` and `/api/chat`: render the prompt, run it, and turn the reply into Ollama's
chunks (`response` / `message.content`, `thinking`, `tool_calls`), then a final chunk with metrics.

When the model can think or the request has tools, llama.cpp's chat parser for the rendered
conversation splits the reply (`a3s_power.chat.reply`); otherwise text goes out as it comes.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import orjson

from a3s_power.api.inference import (
    Generation,
    Prompt,
    ReplyPiece,
    go_template_prompt,
    logprobs_wire,
    render_prompt,
    run_reply,
    set_request_flags,
    wants_parsing,
)
from a3s_power.api.ollama.protocol import ChatRequest, GenerateRequest, Message
from a3s_power.api.scheduling import (
    check_logprobs,
    check_think,
    keep_alive_of,
    load_or_unload,
    prepare,
    require,
    resolve,
)
from a3s_power.api.streaming import now_rfc3339
from a3s_power.chat.gotemplate import (
    GoTemplateError,
    GoTemplateExecError,
    is_go_template,
    render_go_template,
)
from a3s_power.chat.reply import ReplyDelta
from a3s_power.errors import InvalidRequest, Unsupported
from a3s_power.runtime.generation import Completion
from a3s_power.runtime.loaded import LoadedModel

Event = dict[str, Any]
Shape = Callable[[ReplyDelta], Event]


def _metrics(final: Completion, started: int, load_duration: int) -> dict[str, Any]:
    """Ollama's metrics; zero values are omitted (`omitempty`)."""
    values = {
        "total_duration": time.perf_counter_ns() - started,
        "load_duration": load_duration,
        # Ollama (llama-server's cache_n + prompt_n): every prompt token, reused ones included
        "prompt_eval_count": final.prompt_tokens,
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


async def _ollama_events(
    state: Any,
    job: Generation,
    requested: str,
    shape: Shape,
    final_extra: Callable[[Completion], Event],
    started: int,
) -> AsyncIterator[Event]:
    want_logprobs = job.gen.logprobs or job.gen.top_logprobs > 0
    async for item in run_reply(state, job):
        head = {"model": requested, "created_at": now_rfc3339()}
        if isinstance(item, ReplyPiece):
            if not item.delta and not want_logprobs:
                continue
            chunk: Event = {**head, **shape(item.delta), "done": False}
            if want_logprobs:
                chunk["logprobs"] = logprobs_wire(item.chunk, job.gen.top_logprobs)
            yield chunk
        else:
            yield {
                **head,
                **shape(item.delta),
                "done": True,
                "done_reason": item.completion.done_reason,
                **final_extra(item.completion),
                **_metrics(item.completion, started, item.load_duration),
            }


def _combine(events: list[Event], delta_of: Callable[[Event], ReplyDelta], shape: Shape) -> Event:
    """`stream: false`: the final event carrying the whole reply and every logprob."""
    whole = ReplyDelta()
    for event in events:
        whole.add(delta_of(event))
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
    go_template = req.template or model.view.template or ""
    if req.suffix and not (is_go_template(go_template) and "insert" in model.capabilities):
        raise InvalidRequest(f"{model.key} does not support insert")
    if req.images:
        require(model, "vision", "vision")
        raise Unsupported("images are not supported yet")
    keep_alive = keep_alive_of(req.keep_alive)
    gen, spec = prepare(state, model, req.options)
    if not req.prompt:
        yield _done_event(req.model, _generate_shape, await load_or_unload(state, model, spec, keep_alive))
        return
    set_request_flags(gen, req.format, req.logprobs, req.top_logprobs, req.truncate, req.shift)

    def build(loaded: LoadedModel) -> Prompt:
        if req.raw:  # verbatim, special tokens included (as llama-server's /completion reads it)
            return Prompt(loaded.tokenize(req.prompt, add_special=True, parse_special=True), [])
        system = req.system if req.system is not None else model.view.system
        messages = [{"role": "system", "content": system}] if system else []
        if req.template or (req.suffix and is_go_template(go_template)):
            # Ollama's direct execution: [system, the model's MESSAGEs unless `context`, prompt]
            # through the request's template (Go, or Jinja); a suffix runs `.Prompt`/`.Suffix`.
            history = [] if req.context else [dict(m) for m in model.view.messages]
            messages += [*history, {"role": "user", "content": req.prompt}]
            if req.suffix:
                text = render_go_template(go_template, None, [], prompt=req.prompt, suffix=req.suffix,
                                          think=req.think)  # fmt: skip
                prompt = go_template_prompt(loaded, text)
            else:
                try:
                    prompt = render_prompt(model, loaded, messages, think=req.think, template=req.template)
                except GoTemplateError as exc:  # Ollama parses the request's template here: 500
                    raise GoTemplateExecError(str(exc)) from None
            if req.context:
                prompt.tokens = list(req.context) + prompt.tokens
            return prompt
        prompt = render_prompt(
            model, loaded, [*messages, {"role": "user", "content": req.prompt}], think=req.think
        )
        if req.context:
            prompt.tokens = list(req.context) + prompt.tokens
        return prompt

    job = Generation(model, spec, gen, keep_alive, build,
                     parse_reply=not req.raw and wants_parsing(model, req.think, None))  # fmt: skip
    async for event in _ollama_events(state, job, req.model, _generate_shape,
                                      lambda done: {"context": done.context}, started):  # fmt: skip
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
    if any(m.images for m in req.messages):
        require(model, "vision", "vision")
    keep_alive = keep_alive_of(req.keep_alive)
    gen, spec = prepare(state, model, req.options)
    if not req.messages:
        yield _done_event(req.model, _chat_shape, await load_or_unload(state, model, spec, keep_alive))
        return
    messages = _wire_messages(req.messages)
    if model.view.system and not any(m["role"] == "system" for m in messages):
        messages.insert(0, {"role": "system", "content": model.view.system})
    messages = _wire_messages(Message(**m) for m in model.view.messages) + messages
    set_request_flags(gen, req.format, req.logprobs, req.top_logprobs, req.truncate, req.shift)

    def build(loaded: LoadedModel) -> Prompt:
        return render_prompt(model, loaded, messages, tools=req.tools, think=req.think)

    parse = wants_parsing(model, req.think, req.tools)
    job = Generation(model, spec, gen, keep_alive, build, parse, "thinking" in model.capabilities)
    async for event in _ollama_events(state, job, req.model, _chat_shape, _no_extra, started):
        yield event


def combine_chat(events: list[Event]) -> Event:
    return _combine(events, _chat_delta, _chat_shape)
