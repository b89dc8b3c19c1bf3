"""The OpenAPI 3.1 document served at `/openapi.json`, built from the routes the app really has and
the msgspec structs each route really decodes its body into (`decode_body(raw, Struct)`), so clients,
generators and fuzzers (schemathesis) read the same request shapes the server checks."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Litestar, Request, Response, get

from a3s_power import __version__
from a3s_power.api.anthropic.protocol import MessagesRequest
from a3s_power.api.ollama.manage_protocol import (
    CopyRequest,
    CreateBody,
    DeleteRequest,
    ShowRequest,
    TransferRequest,
)
from a3s_power.api.ollama.protocol import ChatRequest, EmbeddingsRequest, EmbedRequest, GenerateRequest
from a3s_power.api.openai.protocol import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from a3s_power.api.openai.responses import ResponsesRequest
from a3s_power.service.embedding import RerankRequest

# (method, path) → the struct its body decodes into. tests/integration/server/test_openapi.py checks
# that every route with a body is here.
REQUEST_BODIES: dict[tuple[str, str], type[Any]] = {
    ("POST", "/api/generate"): GenerateRequest,
    ("POST", "/api/chat"): ChatRequest,
    ("POST", "/api/embed"): EmbedRequest,
    ("POST", "/api/embeddings"): EmbeddingsRequest,
    ("POST", "/api/rerank"): RerankRequest,
    ("POST", "/api/show"): ShowRequest,
    ("POST", "/api/pull"): TransferRequest,
    ("POST", "/api/push"): TransferRequest,
    ("POST", "/api/create"): CreateBody,
    ("POST", "/api/copy"): CopyRequest,
    ("DELETE", "/api/delete"): DeleteRequest,
    ("POST", "/v1/chat/completions"): ChatCompletionRequest,
    ("POST", "/v1/completions"): CompletionRequest,
    ("POST", "/v1/responses"): ResponsesRequest,
    ("POST", "/v1/embeddings"): EmbeddingRequest,
    ("POST", "/v1/rerank"): RerankRequest,
    ("POST", "/v1/messages"): MessagesRequest,
}
BINARY_BODIES = {("POST", "/api/blobs/{digest}")}  # the blob's bytes, streamed to disk

_ERROR = {"description": "an error, in the route family's envelope"}


def _responses(method: str, path: str) -> dict[str, Any]:
    ok = "201" if (method, path) in BINARY_BODIES else "200"
    out: dict[str, Any] = {ok: {"description": "success"}}
    if (method, path) in REQUEST_BODIES or (method, path) in BINARY_BODIES:
        out |= {"400": _ERROR, "404": _ERROR, "413": _ERROR}
    if path.startswith(("/api/generate", "/api/chat", "/v1/")):
        out["503"] = {"description": "server busy (OLLAMA_MAX_QUEUE), Ollama's text"}
    return out


def openapi_document(app: Litestar) -> dict[str, Any]:
    structs = sorted(set(REQUEST_BODIES.values()), key=lambda t: t.__name__)
    schemas, components = msgspec.json.schema_components(structs, ref_template="#/components/schemas/{name}")
    by_type = dict(zip(structs, schemas, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for route in app.routes:
        path = getattr(route, "path_format", route.path)
        for method in sorted(getattr(route, "methods", ())):
            if method == "OPTIONS" or path == "/openapi.json":
                continue
            op: dict[str, Any] = {"responses": _responses(method, path)}
            params = [part[1:-1] for part in path.split("/") if part.startswith("{")]
            if params:
                op["parameters"] = [
                    {"name": p, "in": "path", "required": True, "schema": {"type": "string"}} for p in params
                ]
            body = REQUEST_BODIES.get((method, path))
            if body is not None:
                op["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": by_type[body]}},
                }
            elif (method, path) in BINARY_BODIES:
                op["requestBody"] = {
                    "required": True,
                    "content": {
                        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
                    },
                }
            paths.setdefault(path, {})[method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "A3S Power",
            "version": __version__,
            "description": "Ollama's API, OpenAI- and Anthropic-compatible routes",
        },  # fmt: skip
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
            },  # fmt: skip
        },
    }


@get("/openapi.json", sync_to_thread=False, include_in_schema=False)
def openapi_route(request: Request[Any, Any, Any]) -> Response[bytes]:
    """This server's OpenAPI document (built once per app)."""
    app = request.app
    cached = app.state.get("_openapi")
    if cached is None:
        cached = msgspec.json.encode(openapi_document(app))
        app.state["_openapi"] = cached
    return Response(cached, media_type="application/json")


__all__ = ["REQUEST_BODIES", "openapi_document", "openapi_route"]
