"""`/api/embed` (batch, L2-normalized, truncate, dimensions) and the legacy `/api/embeddings`."""

from __future__ import annotations

import time

import numpy as np

from a3s_power.api.ollama.protocol import EmbeddingResponse, EmbeddingsRequest, EmbedRequest, EmbedResponse
from a3s_power.errors import InvalidRequest
from a3s_power.service.embedding import embed_texts
from a3s_power.service.models import keep_alive_of, load_or_unload, load_plan, resolve
from a3s_power.service.state import ServerState


async def embed(state: ServerState, req: EmbedRequest) -> EmbedResponse:
    started = time.perf_counter_ns()
    model = resolve(state, req.model)
    keep_alive = keep_alive_of(req.keep_alive)
    if req.input is None or req.input == "":
        texts: list[str] = []
    elif isinstance(req.input, str):
        texts = [req.input]
    else:
        texts = list(req.input)
    if req.dimensions < 0:
        raise InvalidRequest("dimensions must be a positive integer")
    if not texts:
        _, spec = load_plan(state, model, req.options, embedding=True)
        await load_or_unload(state, model, spec, keep_alive)
        return EmbedResponse(model=req.model, embeddings=[])
    truncate = True if req.truncate is None else req.truncate
    vectors, counts, load_duration = await embed_texts(
        state, model, texts, req.options, normalize=True, truncate=truncate, keep_alive=keep_alive
    )
    if 0 < req.dimensions < vectors.shape[1]:
        vectors = vectors[:, : req.dimensions]
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = vectors / np.where(norms == 0, 1, norms)
    return EmbedResponse(
        model=req.model,
        embeddings=vectors.tolist(),
        total_duration=time.perf_counter_ns() - started,
        load_duration=load_duration,
        prompt_eval_count=sum(counts),
    )


async def embeddings_legacy(state: ServerState, req: EmbeddingsRequest) -> EmbeddingResponse:
    """`/api/embeddings`: one prompt, an unnormalized vector under `embedding`."""
    model = resolve(state, req.model)
    keep_alive = keep_alive_of(req.keep_alive)
    if not req.prompt:
        _, spec = load_plan(state, model, req.options, embedding=True)
        await load_or_unload(state, model, spec, keep_alive)
        return EmbeddingResponse([])
    vectors, _, _ = await embed_texts(
        state, model, [req.prompt], req.options, normalize=False, truncate=True, keep_alive=keep_alive
    )
    return EmbeddingResponse(vectors[0].astype(np.float64).tolist())
