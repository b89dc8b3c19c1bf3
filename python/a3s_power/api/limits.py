"""The outermost ASGI layers, before routing: API keys, then request-body limits.

Litestar's own middleware runs after routing (so not on an unknown path, a 405 or a preflight),
and its body limit would apply to blob uploads (gigabytes). These wrap the whole application:

- `api_key_layer`: with keys configured every request but `GET|HEAD /` needs one, whatever the
  method (HEAD, OPTIONS included), the path's case or doubled slashes; `/metrics` too;
- `request_limits_layer`: a JSON body larger than `MAX_BODY_BYTES` is a 413, one that is not
  UTF-8 or nests deeper than `MAX_JSON_DEPTH` a 400, each in the route family's error envelope
  (Ollama's `{"error"}`, OpenAI's, Anthropic's). Blob uploads (`/api/blobs/…`) are streamed to
  disk by their route and not limited here.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import re
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_BODY_BYTES = 32 * 1024 * 1024
MAX_JSON_DEPTH = 100
_OFFLOAD_BYTES = 256 * 1024  # bodies larger than this are checked on a worker thread

_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_BRACKETS = re.compile(rb"[^\[\]{}]+")


def normalized_path(path: str) -> str:
    """The path as the router would treat it for a family/exemption decision: one slash, lower case."""
    return re.sub(r"/{2,}", "/", path).lower()


def family(path: str) -> str:
    p = normalized_path(path)
    if p.startswith("/v1/messages"):
        return "anthropic"
    if p.startswith("/v1/"):
        return "openai"
    return "ollama"


def error_body(path: str, status: int, message: str, *, code: str | None = None) -> bytes:
    kind = family(path)
    if kind == "openai":
        etype = {400: "invalid_request_error", 401: "invalid_request_error", 404: "not_found_error"}.get(
            status, "api_error"
        )
        return orjson.dumps({"error": {"message": message, "type": etype, "param": None, "code": code}})
    if kind == "anthropic":
        etype = {
            400: "invalid_request_error",
            401: "authentication_error",
            413: "request_too_large",
            503: "overloaded_error",
        }.get(status, "api_error")
        return orjson.dumps(
            {
                "type": "error",
                "error": {"type": etype, "message": message},
                "request_id": "req_" + secrets.token_hex(12),
            }
        )
    return orjson.dumps({"error": message})


async def send_error(send: Send, path: str, status: int, message: str, *, code: str | None = None) -> None:
    body = error_body(path, status, message, code=code)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


# -- API keys -----------------------------------------------------------------------------------
def _presented_key(scope: Scope) -> str:
    headers = {k.lower(): v for k, v in scope.get("headers", [])}
    auth = headers.get(b"authorization", b"").decode("latin-1")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return headers.get(b"x-api-key", b"").decode("latin-1").strip()


def api_key_layer(app: ASGIApp, keys: tuple[str, ...]) -> ASGIApp:
    encoded = [k.encode() for k in keys]

    async def layer(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not encoded:
            await app(scope, receive, send)
            return
        path = scope.get("path", "/")
        if path == "/" and scope.get("method") in ("GET", "HEAD"):  # the heartbeat
            await app(scope, receive, send)
            return
        key = _presented_key(scope).encode()
        if key and any(hmac.compare_digest(key, k) for k in encoded):
            await app(scope, receive, send)
            return
        await send_error(send, path, 401, "invalid or missing API key", code="invalid_api_key")

    return layer


# -- body limits --------------------------------------------------------------------------------
def json_depth(body: bytes) -> int:
    """The deepest array/object nesting in a JSON text (strings skipped)."""
    brackets = _BRACKETS.sub(b"", _STRINGS.sub(b"", body))
    depth = deepest = 0
    for ch in brackets:
        if ch in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def body_problem(body: bytes) -> str | None:
    """Why a JSON request body is refused before it is parsed, or None."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"invalid request body: not valid UTF-8 (byte {exc.start})"
    if json_depth(body) > MAX_JSON_DEPTH:
        return f"invalid request body: JSON nested deeper than {MAX_JSON_DEPTH} levels"
    return None


def _limited(path: str) -> bool:
    return not normalized_path(path).startswith("/api/blobs/")


def request_limits_layer(app: ASGIApp, max_body: int = MAX_BODY_BYTES) -> ASGIApp:
    too_large = f"request body too large: more than {max_body // (1024 * 1024)} MiB"

    async def layer(scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope.get("method") in ("GET", "HEAD", "OPTIONS")
            or not _limited(scope.get("path", "/"))
        ):
            await app(scope, receive, send)
            return
        path = scope.get("path", "/")
        headers = dict(scope.get("headers", []))
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body:
            await send_error(send, path, 413, too_large)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > max_body:
                await send_error(send, path, 413, too_large)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        problem = await asyncio.to_thread(body_problem, body) if size > _OFFLOAD_BYTES else body_problem(body)
        if problem:
            await send_error(send, path, 400, problem)
            return
        await run_until_disconnect(app, scope, body, receive, send)

    return layer


async def run_until_disconnect(app: ASGIApp, scope: Scope, body: bytes, receive: Receive, send: Send) -> None:
    """Run the handler on an already-read body; when the client goes away first, cancel it, so a
    non-streaming request that nobody waits for stops generating and frees its slot (a stream
    notices the disconnect itself, through the replayed `receive`)."""
    gone = asyncio.Event()
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def watch() -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                gone.set()
                return

    complete = False

    async def tracked_send(message: Message) -> None:
        nonlocal complete
        await send(message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            complete = True

    handler = asyncio.ensure_future(app(scope, replay, tracked_send))
    watcher = asyncio.ensure_future(watch())
    try:
        await asyncio.wait({handler, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if not handler.done() and not complete:  # the client left before its answer: stop working for it
            handler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await handler
    finally:
        watcher.cancel()
        if not handler.done():
            handler.cancel()
