"""API keys (what Ollama lacks): with keys configured, every route but the heartbeat `/` needs
`Authorization: Bearer <key>` (Ollama, OpenAI clients) or `x-api-key: <key>` (Anthropic clients).
A missing or wrong key is a 401 in the wire format of the route's API family."""

from __future__ import annotations

import hmac
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler

PUBLIC = "public"  # route opt flag: no key needed (the heartbeat clients probe before anything)


def presented_key(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    header = connection.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return connection.headers.get("x-api-key", "").strip()


def api_key_guard(keys: tuple[str, ...]) -> Any:
    def guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
        if handler.opt.get(PUBLIC):
            return
        key = presented_key(connection)
        if not key or not any(hmac.compare_digest(key.encode(), k.encode()) for k in keys):
            raise NotAuthorizedException("invalid or missing API key")

    return guard
