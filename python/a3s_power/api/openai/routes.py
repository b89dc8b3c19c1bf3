"""OpenAI-compatible routes under /v1: decode, call the service, encode (JSON or SSE)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from litestar import Request, Response, Router, get, head, post
from litestar.params import FromPath
from litestar.response import Stream

from a3s_power.api.errors import OPENAI_EXCEPTION_HANDLERS, decode_body, openai_error_body
from a3s_power.api.openai import responses as responses_api
from a3s_power.api.openai import service
from a3s_power.api.openai.protocol import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingList,
    EmbeddingRequest,
    ModelList,
    ModelObject,
)
from a3s_power.api.streaming import sse_named_respond, sse_respond, until_disconnect
from a3s_power.service.embedding import RerankRequest, RerankResponse
from a3s_power.service.embedding import rerank as rerank_documents
from a3s_power.service.state import ServerState, state_of


def _state(request: Request[Any, Any, Any]) -> ServerState:
    return state_of(request)


async def _respond(
    request: Request[Any, Any, Any],
    run: service.Run,
    stream: bool,
    whole: Callable[[ServerState, service.Run], Awaitable[Any]],
    chunks: Callable[[ServerState, service.Run], AsyncIterator[Any]],
) -> Response[Any] | Stream:
    if stream and not run.plan.job.debug_render_only:
        return await sse_respond(chunks(_state(request), run), openai_error_body)
    return Response(await until_disconnect(request, whole(_state(request), run)))


@post("/chat/completions", status_code=200)
async def chat_completions(request: Request[Any, Any, Any]) -> Response[Any] | Stream:
    body = decode_body(await request.body(), ChatCompletionRequest)
    run = service.prepare_chat(_state(request), body)
    return await _respond(request, run, body.stream, service.chat_completion, service.chat_completion_chunks)


@post("/completions", status_code=200)
async def completions(request: Request[Any, Any, Any]) -> Response[Any] | Stream:
    body = decode_body(await request.body(), CompletionRequest)
    run = service.prepare_completion(_state(request), body)
    return await _respond(request, run, body.stream, service.completion, service.completion_chunks)


@post("/responses", status_code=200)
async def responses(request: Request[Any, Any, Any]) -> Response[Any] | Stream:
    body = decode_body(await request.body(), responses_api.ResponsesRequest)
    run = responses_api.prepare_response(_state(request), body)
    if body.stream and not body.debug_render_only:
        return await sse_named_respond(responses_api.response_events(_state(request), run), openai_error_body)
    return Response(await until_disconnect(request, responses_api.response(_state(request), run)))


@post("/embeddings", status_code=200)
async def embeddings(request: Request[Any, Any, Any]) -> EmbeddingList:
    return await service.embeddings(_state(request), decode_body(await request.body(), EmbeddingRequest))


@post("/rerank", status_code=200)
async def rerank(request: Request[Any, Any, Any]) -> RerankResponse:
    """llama-server's / Jina's rerank under /v1 (OpenAI has none; clients use this shape)."""
    body = decode_body(await request.body(), RerankRequest)
    return await rerank_documents(_state(request), body)


@get("/models")
async def models(request: Request[Any, Any, Any]) -> ModelList:
    return await service.list_models(_state(request))


@head("/models")
async def models_head(request: Request[Any, Any, Any]) -> None:
    await service.list_models(_state(request))


@get("/models/{model:path}")
async def model(request: Request[Any, Any, Any], model: FromPath[str]) -> ModelObject:
    return await service.retrieve_model(_state(request), model.lstrip("/"))


OPENAI_ROUTER = Router(
    path="/v1",
    route_handlers=[chat_completions, completions, responses, embeddings, rerank, models, models_head, model],
    exception_handlers=OPENAI_EXCEPTION_HANDLERS,  # type: ignore[arg-type]
)
