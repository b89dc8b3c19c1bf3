"""Reranking over HTTP (what Ollama lacks): `/api/rerank` and `/v1/rerank` with llama-server's /
Jina's shape, on a real cross-encoder GGUF (MiniLM + a rank head, tests/fixtures/reranker.py)."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from live_server import LiveServer, add_gguf_model

from a3s_power.runtime import load_model
from fixtures.reranker import minilm_reranker_gguf

pytestmark = pytest.mark.timeout(600)
QUERY = "How do plants make food?"
DOCS = [
    "Photosynthesis turns light, water and carbon dioxide into sugar in the leaves.",
    "The stock market closed higher on Friday.",
    "Chlorophyll absorbs sunlight so plants can produce glucose.",
    "A recipe for chocolate cake with three eggs.",
]


@pytest.fixture(scope="module")
def reranker(server: LiveServer) -> str:
    add_gguf_model(server.store, "minilm-rerank", minilm_reranker_gguf())
    return "minilm-rerank"


def test_rerank_scores_and_order(server: LiveServer, reranker: str) -> None:
    body = {"model": reranker, "query": QUERY, "documents": DOCS}
    reply = httpx.post(server.url + "/api/rerank", json=body, timeout=120).json()
    results = reply["results"]
    assert sorted(r["index"] for r in results) == [0, 1, 2, 3]
    scores = [r["relevance_score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    assert reply["usage"]["prompt_tokens"] > 20 and reply["model"] == reranker

    direct = load_model(minilm_reranker_gguf(), num_ctx=512, embedding=True)
    try:
        expected = direct.rerank(QUERY, DOCS)
    finally:
        direct.close()
    by_index = {r["index"]: r["relevance_score"] for r in results}
    assert np.allclose([by_index[i] for i in range(4)], expected, rtol=1e-4, atol=1e-5)


def test_top_n_documents_and_the_v1_route(server: LiveServer, reranker: str) -> None:
    body = {"model": reranker, "query": QUERY, "documents": DOCS, "top_n": 2, "return_documents": True}
    reply = httpx.post(server.url + "/v1/rerank", json=body, timeout=120).json()
    assert len(reply["results"]) == 2
    assert all(r["document"]["text"] == DOCS[r["index"]] for r in reply["results"])
    full = httpx.post(server.url + "/api/rerank", json={**body, "top_n": None}, timeout=120).json()
    assert [r["index"] for r in reply["results"]] == [r["index"] for r in full["results"][:2]]


def test_rerank_refuses_a_model_without_a_rank_head(server: LiveServer) -> None:
    body = {"model": "smollm2:135m", "query": QUERY, "documents": DOCS}
    native = httpx.post(server.url + "/api/rerank", json=body, timeout=60)
    assert native.status_code == 400
    assert native.json() == {"error": '"smollm2:135m" does not support reranking (it has no rank head)'}
    openai_style = httpx.post(server.url + "/v1/rerank", json=body, timeout=60)
    assert openai_style.status_code == 400 and openai_style.json()["error"]["type"] == "invalid_request_error"
