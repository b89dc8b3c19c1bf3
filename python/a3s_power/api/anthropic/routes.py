"""Anthropic-compatible route: `POST /v1/messages` (JSON, or SSE with named events)."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, Router, post
from litestar.response import Stream

from a3s_power.api.anthropic import service
from a3s_power.api.anthropic.protocol import MessagesRequest
from a3s_power.api.errors import ANTHROPIC_EXCEPTION_HANDLERS, anthropic_error_body, decode_body
from a3s_power.api.streaming import sse_named_respond, until_disconnect
from a3s_power.service.state import state_of


@post("/messages", status_code=200)
async def messages(request: Request[Any, Any, Any]) -> Response[Any] | Stream:
    state = state_of(request)
    body = decode_body(await request.body(), MessagesRequest)
    run = service.prepare_messages(state, body)
    if body.stream:
        return await sse_named_respond(service.message_events(state, run), anthropic_error_body)
    return Response(await until_disconnect(request, service.message(state, run)))


ANTHROPIC_ROUTER = Router(
    path="/v1",
    route_handlers=[messages],
    exception_handlers=ANTHROPIC_EXCEPTION_HANDLERS,  # type: ignore[arg-type]
)
