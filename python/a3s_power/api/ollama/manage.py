"""Model management routes: tags, show, pull, push, create, copy, delete, blobs.

Each handler decodes its body (`decode_body`: empty → 400 `missing request body`), calls
`manage_service`, and encodes the answer: NDJSON progress for pull/push/create (`stream` defaults to
true), a JSON object for tags/show, an empty 200 for copy/delete, a bare status for blobs.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, delete, get, head, post
from litestar.params import FromPath
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from a3s_power.api.errors import decode_body
from a3s_power.api.ollama import manage_service as service
from a3s_power.api.ollama import running
from a3s_power.api.ollama.manage_protocol import (
    CopyRequest,
    CreateBody,
    DeleteRequest,
    ShowRequest,
    TransferRequest,
)
from a3s_power.api.streaming import respond
from a3s_power.service.state import ServerState, state_of

JSON = "application/json"


def _state(request: Request[Any, Any, Any]) -> ServerState:
    return state_of(request)


def _empty(status: int = HTTP_200_OK) -> Response[bytes]:
    """Ollama's `c.Status(code)`: no body."""
    return Response(b"", status_code=status, media_type="text/plain")


@get("/api/tags")
async def list_models(request: Request[Any, Any, Any]) -> Response[Any]:
    return Response(await service.list_tags_body(_state(request).store), media_type=JSON)


@head("/api/tags")
async def list_models_head(request: Request[Any, Any, Any]) -> Response[None]:
    await service.list_tags_body(_state(request).store)
    return Response(None, media_type=JSON)


@post("/api/show", status_code=HTTP_200_OK)
async def show_model(request: Request[Any, Any, Any]) -> Response[Any]:
    body = decode_body(await request.body(), ShowRequest)
    shown = await service.show(_state(request).store, body.target, verbose=bool(body.verbose))
    devices = running.devices_of(_state(request), body.target)
    if devices:  # loaded split across RPC workers
        shown.devices = devices
    return Response(shown, media_type=JSON)


@post("/api/pull", status_code=HTTP_200_OK)
async def pull_model(request: Request[Any, Any, Any]) -> Response[Any]:
    body = decode_body(await request.body(), TransferRequest)
    events = service.pull(_state(request).store, body.target, insecure=bool(body.insecure))
    return await respond(events, body.stream is not False)


@post("/api/push", status_code=HTTP_200_OK)
async def push_model(request: Request[Any, Any, Any]) -> Response[Any]:
    body = decode_body(await request.body(), TransferRequest)
    events = service.push(_state(request).store, body.target, insecure=bool(body.insecure))
    return await respond(events, body.stream is not False)


@post("/api/create", status_code=HTTP_200_OK)
async def create_model(request: Request[Any, Any, Any]) -> Response[Any]:
    body = decode_body(await request.body(), CreateBody)
    events = service.create(_state(request).store, body.to_mapping())
    return await respond(events, body.stream is not False)


@post("/api/copy", status_code=HTTP_200_OK)
async def copy_model(request: Request[Any, Any, Any]) -> Response[bytes]:
    body = decode_body(await request.body(), CopyRequest)
    await service.copy(_state(request).store, body.source or "", body.destination or "")
    return _empty()


@delete("/api/delete", status_code=HTTP_200_OK)
async def delete_model(request: Request[Any, Any, Any]) -> Response[bytes]:
    body = decode_body(await request.body(), DeleteRequest)
    state = _state(request)
    await service.delete(state.store, state.scheduler, body.target)
    return _empty()


@head("/api/blobs/{digest:str}")
async def head_blob(request: Request[Any, Any, Any], digest: FromPath[str]) -> Response[None]:
    service.has_blob(_state(request).store, digest)
    return Response(None, status_code=HTTP_200_OK)


@post("/api/blobs/{digest:str}", request_max_body_size=None)
async def upload_blob(request: Request[Any, Any, Any], digest: FromPath[str]) -> Response[bytes]:
    written = await service.upload_blob(_state(request).store, digest, request.stream())
    return _empty(HTTP_201_CREATED if written else HTTP_200_OK)


MANAGE_ROUTES: list[Any] = [
    list_models,
    list_models_head,
    show_model,
    pull_model,
    push_model,
    create_model,
    copy_model,
    delete_model,
    head_blob,
    upload_blob,
]
