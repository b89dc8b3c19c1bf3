"""One error hierarchy → each wire format. Ollama's native shape is `{"error": "<message>"}`."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from typing import Any, TypeVar

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


def http_error_message(exc: Exception) -> str:
    """The text of one of Litestar's errors: a validation failure's field messages, else its detail
    ("" for errors that are not Litestar's)."""
    if not isinstance(exc, HTTPException):
        return ""
    if isinstance(exc, ValidationException) and exc.extra:
        fields = "; ".join(str(e.get("message", e)) for e in exc.extra if isinstance(e, dict))
        if fields:
            return fields
    return str(getattr(exc, "detail", "") or "")


def http_error_response(request: Request, exc: Exception) -> Response:
    """Litestar's own errors: unknown path → Ollama's text 404, wrong method → text 405."""
    if isinstance(exc, NotFoundException):
        return Response("404 page not found", status_code=404, media_type="text/plain")
    status = getattr(exc, "status_code", 500)
    if status == 405:
        return Response("405 method not allowed", status_code=405, media_type="text/plain")
    return Response(ollama_error_body(http_error_message(exc) or str(exc)), status_code=status)


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


def error_status(exc: Exception) -> int:
    """Our errors carry `status`, Litestar's `status_code`; anything else is a 500."""
    status: Any = getattr(exc, "status", None) or getattr(exc, "status_code", None)
    return int(status) if isinstance(status, int) else 500


def openai_error_body(exc: Exception) -> dict[str, Any]:
    """OpenAI's error envelope; the type follows the status as Ollama's compatibility layer does."""
    status = error_status(exc)
    kind = {400: "invalid_request_error", 404: "not_found_error"}.get(status, "api_error")
    message = http_error_message(exc)
    code = None
    if status == 401:  # what OpenAI answers for a bad key
        kind, code = "invalid_request_error", "invalid_api_key"
    return {"error": {"message": message or str(exc), "type": kind, "param": None, "code": code}}


def handlers_for(body: Callable[[Exception], dict[str, Any]]) -> dict[type[Exception], Any]:
    """Exception handlers that answer every error with `body(exc)` and the error's status."""

    def respond(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, PowerError | HTTPException):
            log.exception("unhandled error on %s %s", request.method, request.url.path)
        return Response(body(exc), status_code=error_status(exc))

    return {PowerError: respond, HTTPException: respond, Exception: respond}


_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
}


def anthropic_error_body(exc: Exception) -> dict[str, Any]:
    """Anthropic's error envelope, `{"type": "error", "error": {"type", "message"}, "request_id"}`."""
    message = openai_error_body(exc)["error"]["message"]
    kind = _ANTHROPIC_TYPES.get(error_status(exc), "api_error")
    return {
        "type": "error",
        "error": {"type": kind, "message": message},
        "request_id": "req_" + secrets.token_hex(12),
    }


OPENAI_EXCEPTION_HANDLERS = handlers_for(openai_error_body)
ANTHROPIC_EXCEPTION_HANDLERS = handlers_for(anthropic_error_body)
