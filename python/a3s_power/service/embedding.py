"""Work on a model loaded for embeddings, shared by the API families: pooled vectors (Ollama's
`/api/embed`, OpenAI's `/v1/embeddings`) and reranking (`/api/rerank`, `/v1/rerank`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, TypeVar

import msgspec
import numpy as np

from a3s_power.errors import InvalidRequest, PowerError
from a3s_power.runtime.loaded import LoadedModel
from a3s_power.service.models import ResolvedModel, acquire_runner, load_plan, release_runner, resolve, since
from a3s_power.service.state import ServerState

T = TypeVar("T")


async def on_embedding_engine(
    state: ServerState,
    model: ResolvedModel,
    options: dict[str, Any] | None,
    keep_alive: float | None,
    work: Callable[[LoadedModel], T],
) -> tuple[T, int]:
    """Run `work` (blocking) on the model loaded for embeddings, in a worker thread; also returns
    the ns spent loading it. The engine's refusals (ValueError) are 400s, its failures 500s."""
    started = time.perf_counter_ns()
    _, spec = load_plan(state, model, options, embedding=True)
    runner = await acquire_runner(state, model, spec)
    load_duration = since(started)
    try:
        return await asyncio.to_thread(work, runner.loaded), load_duration
    except ValueError as exc:  # the engine refused the input (e.g. longer than the context)
        raise InvalidRequest(str(exc)) from exc
    except RuntimeError as exc:
        raise PowerError(str(exc)) from exc
    finally:
        release_runner(state, runner, keep_alive)


async def embed_texts(
    state: ServerState,
    model: ResolvedModel,
    texts: list[str],
    options: dict[str, Any] | None,
    *,
    normalize: bool,
    truncate: bool,
    keep_alive: float | None,
) -> tuple[np.ndarray, list[int], int]:
    (vectors, counts), load_duration = await on_embedding_engine(
        state,
        model,
        options,
        keep_alive,
        lambda loaded: loaded.embed(texts, normalize=normalize, truncate=truncate),
    )
    return np.asarray(vectors, dtype=np.float32), list(counts), load_duration


# -- rerank (what Ollama lacks; llama-server's / Jina's / Cohere's shape) ------------------------------
RANK_POOLING = 4


class RerankRequest(msgspec.Struct):
    model: str = ""
    query: str = ""
    documents: list[str | dict[str, Any]] = msgspec.field(default_factory=list)
    top_n: int | None = None
    return_documents: bool = False


class RerankDocument(msgspec.Struct):
    text: str


class RerankResult(msgspec.Struct, kw_only=True):
    index: int
    relevance_score: float
    document: RerankDocument | msgspec.UnsetType = msgspec.UNSET  # with return_documents


class RerankUsage(msgspec.Struct):
    prompt_tokens: int = 0
    total_tokens: int = 0


class RerankResponse(msgspec.Struct, kw_only=True):
    """The body both /api/rerank and /v1/rerank answer with (one shape: llama-server's)."""

    model: str
    object: str = "list"
    results: list[RerankResult]
    usage: RerankUsage


def _document_text(document: str | dict[str, Any]) -> str:
    return document if isinstance(document, str) else str(document.get("text", ""))


async def rerank(state: ServerState, req: RerankRequest) -> RerankResponse:
    """Relevance of each document to the query from the model's rank head; results best first."""
    model = resolve(state, req.model)
    info = model.info
    pooling = info.metadata.get(f"{info.architecture}.pooling_type") if info is not None else None
    if pooling != RANK_POOLING:
        raise InvalidRequest(f'"{req.model}" does not support reranking (it has no rank head)')
    if not req.query:
        raise InvalidRequest("query is required")
    if req.top_n is not None and req.top_n < 0:
        raise InvalidRequest("top_n must not be negative")
    texts = [_document_text(d) for d in req.documents]
    if not texts:
        return RerankResponse(model=req.model, results=[], usage=RerankUsage())
    (scores, counts), _ = await on_embedding_engine(
        state, model, None, None, lambda loaded: loaded.rerank_counted(req.query, texts)
    )
    tokens = sum(counts)
    order = sorted(range(len(texts)), key=lambda i: scores[i], reverse=True)[: req.top_n or None]
    results = [
        RerankResult(index=index, relevance_score=scores[index],
                     document=RerankDocument(texts[index]) if req.return_documents else msgspec.UNSET)
        for index in order
    ]  # fmt: skip
    return RerankResponse(model=req.model, results=results, usage=RerankUsage(tokens, tokens))
