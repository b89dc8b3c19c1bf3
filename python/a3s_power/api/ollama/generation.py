"""`/api/generate` and `/api/chat`: Ollama's wire ↔ the chat pipeline (`service.chat`).

The request becomes a `ChatJob`; the pipeline's events become Ollama's chunks (`response` /
`message.content`, `thinking`, `tool_calls`), then a final chunk with done_reason and metrics.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, TypeVar

import msgspec

from a3s_power.api.ollama.protocol import (
    ChatRequest,
    ChatResponse,
    ChatResponseMessage,
    DebugInfo,
    GenerateRequest,
    GenerateResponse,
    Logprob,
    Message,
    TopLogprob,
    WireToolCall,
)
from a3s_power.api.streaming import now_rfc3339
from a3s_power.chat.reply import ReplyDelta
from a3s_power.errors import InvalidRequest
from a3s_power.runtime.generation import Chunk, Completion
from a3s_power.service import chat as pipeline
from a3s_power.service.job import ChatJob, ChatMessage, ContentPart, ToolCall
from a3s_power.service.models import keep_alive_of
from a3s_power.service.state import ServerState

Event = dict[str, Any]


def logprobs_wire(chunk: Chunk, top: int) -> list[Logprob]:
    """Logprobs of the tokens in one engine chunk (the same objects in Ollama's and OpenAI's wire
    formats)."""
    out = []
    for lp in chunk.logprobs or []:
        item = Logprob(lp.text.decode("utf-8", errors="replace"), lp.logprob, list(lp.text))
        if top > 0:
            item.top_logprobs = [
                TopLogprob(text.decode("utf-8", errors="replace"), value, list(text))
                for _, text, value in lp.top[:top]
            ]
        out.append(item)
    return out


def _metrics(final: Completion, end: pipeline.ReplyEnd) -> dict[str, int | None]:
    """Ollama's metrics; zero values are omitted (`omitempty`); load_duration is never 0."""
    values = {
        "total_duration": end.total_duration,
        "load_duration": end.load_duration,
        # Ollama (llama-server's cache_n + prompt_n): every prompt token, reused ones included
        "prompt_eval_count": final.prompt_tokens,
        "prompt_eval_duration": final.prompt_eval_duration,
        "eval_count": final.eval_count,
        "eval_duration": final.eval_duration,
    }
    return {k: v or None for k, v in values.items()}


def job_messages(messages: Iterable[Message]) -> list[ChatMessage]:
    """Ollama messages → the pipeline's messages."""
    out: list[ChatMessage] = []
    for message in messages:
        calls = [
            ToolCall(
                name=str((call.get("function") or {}).get("name", "")),
                arguments=dict((call.get("function") or {}).get("arguments") or {}),
                id=str(call.get("id") or ""),
                index=i,
            )
            for i, call in enumerate(message.tool_calls or [])
        ]
        out.append(
            ChatMessage(
                role=message.role.lower(),
                content=message.content,
                thinking=message.thinking or "",
                tool_calls=calls,
                tool_name=message.tool_name or "",
                tool_call_id=message.tool_call_id or "",
                parts=image_parts(message.images),
            )
        )
    return out


def image_parts(images: list[str] | None) -> list[ContentPart]:
    """Ollama's images: plain standard base64."""
    parts = []
    for image in images or []:
        try:
            parts.append(ContentPart("image", data=base64.b64decode(image, validate=True)))
        except (binascii.Error, ValueError) as exc:  # ValueError: non-ASCII text
            raise InvalidRequest(f"illegal base64 data: {exc}") from None
    return parts


def _wire_calls(calls: list[dict[str, Any]]) -> list[WireToolCall]:
    return [WireToolCall(function=c["function"], id=c.get("id") or None) for c in calls]


R = TypeVar("R", GenerateResponse, ChatResponse)


async def _ollama_events(
    state: ServerState,
    job: ChatJob,
    shape: Callable[[ReplyDelta, bool], R],
    final_extra: Callable[[Completion], Event],
) -> AsyncIterator[R]:
    want_logprobs = job.logprobs or job.top_logprobs > 0
    async for item in pipeline.run_chat(state, job):
        if isinstance(item, pipeline.ReplyPiece):
            if not item.delta and not want_logprobs:
                continue
            chunk = shape(item.delta, False)
            if want_logprobs:
                chunk.logprobs = logprobs_wire(item.chunk, job.top_logprobs)
            yield chunk
        else:
            final = shape(item.delta, True)
            extra = {"done_reason": item.completion.done_reason, **final_extra(item.completion)}
            yield msgspec.structs.replace(final, **extra, **_metrics(item.completion, item))


def _combine(
    events: list[R], delta_of: Callable[[R], ReplyDelta], shape: Callable[[ReplyDelta, bool], R]
) -> R:
    """`stream: false`: the final event carrying the whole reply and every logprob."""
    whole = ReplyDelta()
    for event in events:
        whole.add(delta_of(event))
    if not events:
        return shape(whole, True)
    whole_reply = shape(whole, events[-1].done)
    if isinstance(whole_reply, GenerateResponse):
        text, thinking = whole_reply.response, whole_reply.thinking
        final = msgspec.structs.replace(events[-1], response=text, thinking=thinking)
    else:
        final = msgspec.structs.replace(events[-1], message=whole_reply.message)
    logprobs = [lp for e in events for lp in e.logprobs or []]
    if logprobs:
        final.logprobs = logprobs
    return final


def _done_event(shape: Callable[[ReplyDelta, bool], R], reason: str) -> R:
    """The single answer to a load (empty prompt) or unload (keep_alive 0) request."""
    done = shape(ReplyDelta(), True)
    done.done_reason = reason
    return done


async def _debug_event(state: ServerState, job: ChatJob, shape: Callable[[ReplyDelta, bool], R]) -> R:
    """`_debug_render_only`: the rendered prompt, nothing generated."""
    prompt = await pipeline.render_only(state, job)
    event = shape(ReplyDelta(), False)
    event.debug_info = DebugInfo(prompt.text, sum(len(m.images) for m in job.messages))
    return event


def _no_extra(_: Completion) -> Event:
    return {}


# -- /api/generate ------------------------------------------------------------------------------
def _generate_shape(model: str) -> Callable[[ReplyDelta, bool], GenerateResponse]:
    def shape(delta: ReplyDelta, done: bool) -> GenerateResponse:
        return GenerateResponse(model=model, created_at=now_rfc3339(), response=delta.content,
                                thinking=delta.thinking or None, done=done)  # fmt: skip

    return shape


def generate_job(req: GenerateRequest) -> ChatJob:
    messages = [ChatMessage("system", req.system)] if req.system else []
    messages.append(ChatMessage("user", req.prompt, parts=image_parts(req.images)))
    return ChatJob(
        model=req.model,
        messages=messages,
        think=req.think,
        format=req.format,
        options=dict(req.options or {}),
        keep_alive=keep_alive_of(req.keep_alive),
        logprobs=req.logprobs,
        top_logprobs=req.top_logprobs,
        truncate=req.truncate,
        shift=req.shift,
        prompt_mode=True,
        raw=req.raw,
        suffix=req.suffix,
        template=req.template,
        context=req.context,
        what="generate",
        debug_render_only=req.debug_render_only,
    )


async def generate_events(state: ServerState, req: GenerateRequest) -> AsyncIterator[GenerateResponse]:
    job = generate_job(req)
    if not req.prompt and not req.suffix:
        pipeline.plan_chat(state, job)  # the request's own errors first (think, top_logprobs)
        yield _done_event(_generate_shape(req.model), await pipeline.load_only(state, job))
        return
    if job.debug_render_only:
        yield await _debug_event(state, job, _generate_shape(req.model))
        return
    extra: Callable[[Completion], Event] = lambda done: {} if req.raw else {"context": done.context}  # noqa: E731
    async for event in _ollama_events(state, job, _generate_shape(req.model), extra):
        yield event


def combine_generate(events: list[GenerateResponse]) -> GenerateResponse:
    model = events[0].model if events else ""
    return _combine(events, lambda e: ReplyDelta(e.response, e.thinking or ""), _generate_shape(model))


# -- /api/chat ----------------------------------------------------------------------------------
def _chat_shape(model: str) -> Callable[[ReplyDelta, bool], ChatResponse]:
    def shape(delta: ReplyDelta, done: bool) -> ChatResponse:
        message = ChatResponseMessage("assistant", delta.content, delta.thinking or None,
                                      _wire_calls(delta.tool_calls) or None)  # fmt: skip
        return ChatResponse(model=model, created_at=now_rfc3339(), message=message, done=done)

    return shape


def _chat_delta(event: ChatResponse) -> ReplyDelta:
    message = event.message
    calls = [{"id": c.id, "function": c.function} for c in message.tool_calls or []]
    return ReplyDelta(message.content, message.thinking or "", calls)


def chat_job(req: ChatRequest) -> ChatJob:
    return ChatJob(
        model=req.model,
        messages=job_messages(req.messages),
        tools=list(req.tools or []),
        think=req.think,
        format=req.format,
        options=dict(req.options or {}),
        keep_alive=keep_alive_of(req.keep_alive),
        logprobs=req.logprobs,
        top_logprobs=req.top_logprobs,
        truncate=req.truncate,
        shift=req.shift,
        debug_render_only=req.debug_render_only,
    )


async def chat_events(state: ServerState, req: ChatRequest) -> AsyncIterator[ChatResponse]:
    job = chat_job(req)
    if not req.messages:
        yield _done_event(_chat_shape(req.model), await pipeline.load_only(state, job))
        return
    if job.debug_render_only:
        yield await _debug_event(state, job, _chat_shape(req.model))
        return
    async for event in _ollama_events(state, job, _chat_shape(req.model), _no_extra):
        yield event


def combine_chat(events: list[ChatResponse]) -> ChatResponse:
    return _combine(events, _chat_delta, _chat_shape(events[0].model if events else ""))
