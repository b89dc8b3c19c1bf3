"""One error hierarchy → each wire format. Ollama's native shape is `{"error": "<message>"}`."""

from __future__ import annotations

import logging
from typing import TypeVar

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, NotFoundException, ValidationException

from a3s_power.errors import InvalidRequest, PowerError

log = logging.getLogger(__name__)
T = TypeVar("T")


def ollama_error_body(message: str) -> dict[str, str]:
    return {"error": message}


def power_error_response(_: Request, exc: Exception) -> Response:
    status = getattr(exc, "status", 500)
    return Response(ollama_error_body(str(exc)), status_code=status)


def http_error_response(request: Request, exc: Exception) -> Response:
    """Litestar's own errors: unknown path → Ollama's text 404, wrong method → text 405."""
    if isinstance(exc, NotFoundException):
        return Response("404 page not found", status_code=404, media_type="text/plain")
    status = getattr(exc, "status_code", 500)
    if status == 405:
        return Response("405 method not allowed", status_code=405, media_type="text/plain")
    message = getattr(exc, "detail", "") or str(exc)
    if isinstance(exc, ValidationException) and exc.extra:
        message = "; ".join(str(e.get("message", e)) for e in exc.extra if isinstance(e, dict)) or message
    return Response(ollama_error_body(message), status_code=status)


def unexpected_error_response(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return Response(ollama_error_body(str(exc) or type(exc).__name__), status_code=500)


EXCEPTION_HANDLERS = {
    PowerError: power_error_response,
    HTTPException: http_error_response,
    Exception: unexpected_error_response,
}


def decode_body(raw: bytes, kind: type[T]) -> T:
    """A request body as Ollama reads it: empty → `missing request body`; bad JSON / types → 400."""
    if not raw.strip():
        raise InvalidRequest("missing request body")
    try:
        return msgspec.json.decode(raw, type=kind)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(str(exc)) from exc
    except msgspec.DecodeError as exc:
        raise InvalidRequest(str(exc)) from exc
