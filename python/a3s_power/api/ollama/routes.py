"""Ollama's native inference routes: decode, call the service, encode. Nothing else."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, head, post
from litestar.response import Stream

from a3s_power import __version__
from a3s_power.api.auth import PUBLIC
from a3s_power.api.errors import decode_body
from a3s_power.api.ollama import embeddings as embedding_service
from a3s_power.api.ollama import generation, running
from a3s_power.api.ollama.manage_protocol import ProcessResponse, VersionResponse
from a3s_power.api.ollama.protocol import (
    ChatRequest,
    EmbeddingResponse,
    EmbeddingsRequest,
    EmbedRequest,
    EmbedResponse,
    GenerateRequest,
)
from a3s_power.api.streaming import respond
from a3s_power.service import embedding
from a3s_power.service.state import ServerState, state_of

OLLAMA_API_VERSION = "0.33.0"  # what Ollama clients compare against (`ollama -v`, Open WebUI)


def _state(request: Request[Any, Any, Any]) -> ServerState:
    return state_of(request)


@get("/", media_type="text/plain", sync_to_thread=False, opt={PUBLIC: True})
def root() -> str:
    return "Ollama is running"


@head("/", media_type="text/plain", sync_to_thread=False, opt={PUBLIC: True})
def root_head() -> None:
    return None


@get("/api/version", sync_to_thread=False)
def version() -> VersionResponse:
    return VersionResponse(OLLAMA_API_VERSION, __version__)


@head("/api/version", sync_to_thread=False)
def version_head() -> None:
    return None


@post("/api/generate", status_code=200)
async def generate(request: Request[Any, Any, Any]) -> Response[Any] | Stream:
    body = decode_body(await request.body(), GenerateRequest)
    events = generation.generate_events(_state(request), body)
    stream = body.stream is not False and not body.debug_render_only
    return await respond(events, stream, generation.combine_generate, request)


@post("/api/chat", status_code=200)
async def chat(request: Request[Any, Any, Any]) -> Response[Any] | Stream:
    body = decode_body(await request.body(), ChatRequest)
    events = generation.chat_events(_state(request), body)
    stream = body.stream is not False and not body.debug_render_only
    return await respond(events, stream, generation.combine_chat, request)


@post("/api/embed", status_code=200)
async def embed(request: Request[Any, Any, Any]) -> EmbedResponse:
    return await embedding_service.embed(_state(request), decode_body(await request.body(), EmbedRequest))


@post("/api/embeddings", status_code=200)
async def embeddings(request: Request[Any, Any, Any]) -> EmbeddingResponse:
    body = decode_body(await request.body(), EmbeddingsRequest)
    return await embedding_service.embeddings_legacy(_state(request), body)


@post("/api/rerank", status_code=200)
async def rerank(request: Request[Any, Any, Any]) -> embedding.RerankResponse:
    body = decode_body(await request.body(), embedding.RerankRequest)
    return await embedding.rerank(_state(request), body)


@get("/api/ps", sync_to_thread=False)
def ps(request: Request[Any, Any, Any]) -> ProcessResponse:
    return running.ps(_state(request))


@head("/api/ps", sync_to_thread=False)
def ps_head(request: Request[Any, Any, Any]) -> None:
    running.ps(_state(request))


ROUTES = [root, root_head, version, version_head, generate, chat, embed, embeddings, rerank, ps, ps_head]
