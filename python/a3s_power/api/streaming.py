"""Wire encoders: NDJSON for Ollama's native API, server-sent events for the OpenAI and Anthropic
APIs. All three share one rule: an error before the first event is an ordinary error response
with its status; an error after it ends the stream with a final error event (status already 200),
which is what each family's clients look for.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import msgspec
from litestar import Request, Response
from litestar.response import Stream

from a3s_power.errors import Cancelled, PowerError

log = logging.getLogger(__name__)
NDJSON = "application/x-ndjson"
E = TypeVar("E")


def now_rfc3339() -> str:
    """`time.Now().UTC()` as Go's RFC3339Nano prints it (trailing zeros of the fraction trimmed)."""
    moment = dt.datetime.now(dt.UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S.%f").rstrip("0").rstrip(".")
    return text + "Z"


def ndjson_line(obj: Any) -> bytes:
    return msgspec.json.encode(obj) + b"\n"


def last_event(events: list[Any]) -> Any:
    return events[-1] if events else {}


async def stream_after_first(
    events: AsyncIterator[E],
    encode: Callable[[E], bytes],
    encode_error: Callable[[Exception], bytes],
    *,
    media_type: str,
    trailer: bytes = b"",
    headers: dict[str, str] | None = None,
) -> Stream:
    """Stream `events` encoded one by one. The first event is awaited before answering, so errors
    found before any output (model not found, bad options, queue full) keep their HTTP status; an
    error after it (the status is already 200) is sent as a last event and ends the stream, which
    is otherwise closed by `trailer`."""
    iterator = aiter(events)
    try:
        first = await anext(iterator)
    except StopAsyncIteration:
        return Stream(iter((trailer,) if trailer else ()), media_type=media_type, headers=headers)

    async def body() -> AsyncIterator[bytes]:
        yield encode(first)
        try:
            async for event in iterator:
                yield encode(event)
        except Exception as exc:  # noqa: BLE001  the stream is already 200: report, never crash
            if not isinstance(exc, PowerError):
                log.exception("stream failed")
            yield encode_error(exc)
            return
        if trailer:
            yield trailer

    return Stream(body(), media_type=media_type, headers=headers)


T = TypeVar("T")


async def until_disconnect(request: Request[Any, Any, Any] | None, work: Awaitable[T]) -> T:
    """Await `work` (a whole, non-streamed answer) unless the client goes away first: then it is
    cancelled (which cancels the engine request and frees its slot) and `Cancelled` is raised.
    Call it after the request body has been read."""
    task = asyncio.ensure_future(work)
    if request is None:
        return await task

    async def disconnected() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
            await asyncio.wait({task})  # its cleanup (engine cancel, runner release) has run
    if task.cancelled():
        log.info("client disconnected before its %s %s answer; cancelled", request.method, request.url.path)
        raise Cancelled("client disconnected")
    return task.result()


async def _collect(events: AsyncIterator[E]) -> list[E]:
    return [event async for event in events]


async def respond(
    events: AsyncIterator[E],
    stream: bool,
    combine: Callable[[list[E]], Any] = last_event,
    request: Request[Any, Any, Any] | None = None,
) -> Response[Any]:
    """Stream NDJSON (a failure after the first line: a final `{"error": …}` line), or (stream
    false) answer `combine(all events)` as one JSON object (cancelled if the client leaves)."""
    if not stream:
        collected = await until_disconnect(request, _collect(events))
        return Response(combine(collected), media_type="application/json")
    return await stream_after_first(
        events,
        ndjson_line,
        lambda exc: ndjson_line({"error": str(exc) or type(exc).__name__}),
        media_type=NDJSON,
    )


SSE = "text/event-stream"
_NO_CACHE = {"Cache-Control": "no-cache"}


def sse_event(obj: Any) -> bytes:
    return b"data: " + msgspec.json.encode(obj) + b"\n\n"


async def sse_respond(
    events: AsyncIterator[Any], error_body: Callable[[Exception], dict[str, Any]]
) -> Stream:
    """OpenAI-style server-sent events: `data: {json}` per event, then `data: [DONE]`; a failure
    after the first event is a final `data: {"error": …}` event."""
    return await stream_after_first(
        events,
        sse_event,
        lambda exc: sse_event(error_body(exc)),
        media_type=SSE,
        trailer=b"data: [DONE]\n\n",
        headers=_NO_CACHE,
    )


def sse_named_event(name: str, obj: Any) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + msgspec.json.encode(obj) + b"\n\n"


async def sse_named_respond(
    events: AsyncIterator[tuple[str, Any]], error_body: Callable[[Exception], dict[str, Any]]
) -> Stream:
    """Server-sent events with event names (Anthropic's and the Responses API's format); a failure
    after the first event becomes an `error` event."""
    return await stream_after_first(
        events,
        lambda named: sse_named_event(*named),
        lambda exc: sse_named_event("error", error_body(exc)),
        media_type=SSE,
        headers=_NO_CACHE,
    )
