"""Wire encoders: NDJSON for Ollama's native API (SSE for `/v1/*` comes with those APIs).

Ollama streams one JSON object per line. An error before the first line is an ordinary error
response with its status; an error after it ends the stream with a final `{"error": "..."}` line
(status already 200), which is what Ollama's clients look for.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from litestar import Response
from litestar.response import Stream

from a3s_power.errors import PowerError

log = logging.getLogger(__name__)
NDJSON = "application/x-ndjson"


def now_rfc3339() -> str:
    """`time.Now().UTC()` as Go's RFC3339Nano prints it (trailing zeros of the fraction trimmed)."""
    moment = dt.datetime.now(dt.UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S.%f").rstrip("0").rstrip(".")
    return text + "Z"


def ndjson_line(obj: Any) -> bytes:
    return orjson.dumps(obj) + b"\n"


async def ndjson_or_error(events: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
    try:
        async for event in events:
            yield ndjson_line(event)
    except PowerError as exc:
        yield ndjson_line({"error": str(exc)})
    except Exception as exc:  # noqa: BLE001  the stream is already 200: report, never crash
        log.exception("stream failed")
        yield ndjson_line({"error": str(exc) or type(exc).__name__})


def last_event(events: list[dict[str, Any]]) -> dict[str, Any]:
    return events[-1] if events else {}


async def respond(
    events: AsyncIterator[dict[str, Any]],
    stream: bool,
    combine: Callable[[list[dict[str, Any]]], dict[str, Any]] = last_event,
) -> Response[Any]:
    """Stream NDJSON, or (stream false) answer `combine(all events)` as one JSON object.

    The first event is awaited before answering, so errors found before any output (model not
    found, bad options, queue full) keep their HTTP status even when streaming.
    """
    if not stream:
        collected = [event async for event in events]
        return Response(combine(collected), media_type="application/json")
    iterator = aiter(events)
    try:
        first = await anext(iterator)
    except StopAsyncIteration:
        return Stream(iter(()), media_type=NDJSON)

    async def body() -> AsyncIterator[bytes]:
        yield ndjson_line(first)
        async for line in ndjson_or_error(iterator):
            yield line

    return Stream(body(), media_type=NDJSON)


SSE = "text/event-stream"


def sse_event(obj: Any) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


async def sse_respond(
    events: AsyncIterator[dict[str, Any]], error_body: Callable[[Exception], dict[str, Any]]
) -> Stream:
    """OpenAI-style server-sent events: `data: {json}` per event, then `data: [DONE]`. The first
    event is awaited before answering (errors before any output keep their status); a later error
    is sent as a final `data: {"error": …}` event."""
    iterator = aiter(events)
    first = await anext(iterator)

    async def body() -> AsyncIterator[bytes]:
        yield sse_event(first)
        try:
            async for event in iterator:
                yield sse_event(event)
        except Exception as exc:  # noqa: BLE001  the stream is already 200: report, never crash
            if not isinstance(exc, PowerError):
                log.exception("stream failed")
            yield sse_event(error_body(exc))
            return
        yield b"data: [DONE]\n\n"

    return Stream(body(), media_type=SSE, headers={"Cache-Control": "no-cache"})


def sse_named_event(name: str, obj: Any) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(obj) + b"\n\n"


async def sse_named_respond(
    events: AsyncIterator[tuple[str, dict[str, Any]]], error_body: Callable[[Exception], dict[str, Any]]
) -> Stream:
    """Server-sent events with event names (Anthropic's format); a mid-stream error becomes an
    `error` event. The first event is awaited before answering, as in `sse_respond`."""
    iterator = aiter(events)
    first = await anext(iterator)

    async def body() -> AsyncIterator[bytes]:
        yield sse_named_event(*first)
        try:
            async for name, event in iterator:
                yield sse_named_event(name, event)
        except Exception as exc:  # noqa: BLE001  the stream is already 200: report, never crash
            if not isinstance(exc, PowerError):
                log.exception("stream failed")
            yield sse_named_event("error", error_body(exc))

    return Stream(body(), media_type=SSE, headers={"Cache-Control": "no-cache"})
