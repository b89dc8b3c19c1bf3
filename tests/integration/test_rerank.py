"""Rerank through the native engine (issue 4, point 6) against Hugging Face's BertForSequenceClassification.

The reranker is all-MiniLM-L6-v2 with a seeded random classification head (tests/fixtures/reranker.py);
the reference runs the same weights (read back from the GGUF) in torch, in a subprocess.
"""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from a3s_power.errors import InvalidRequest
from a3s_power.runtime import load_model
from fixtures.minilm import minilm_gguf, minilm_hf_dir
from fixtures.reranker import minilm_reranker_gguf, read_head, reranker_reference, write_reranker

try:
    minilm_hf_dir()
except FileNotFoundError as exc:  # pragma: no cover - environment without the model package
    pytest.skip(str(exc), allow_module_level=True)
for _mod in ("torch", "transformers", "gguf"):
    if importlib.util.find_spec(_mod) is None:  # pragma: no cover
        pytest.skip(f"{_mod} is not installed", allow_module_level=True)

QUERIES = {
    "what is a cat?": [
        "A cat is a small domesticated carnivorous mammal.",
        "Paris is the capital of France.",
        "Cats purr when they are content.",
        "The stock market fell sharply on Tuesday.",
    ],
    "how do I bake bread?": [
        "Mix flour, water, salt and yeast, knead, let it rise and bake it.",
        "The stock market fell sharply on Tuesday.",
        "Sourdough needs a starter culture.",
    ],
    "who wrote Hamlet?": [
        "Hamlet is a tragedy written by William Shakespeare.",
        "Photosynthesis converts light into chemical energy.",
        "The play is set in Denmark.",
    ],
}
PAIRS = [(q, d) for q, docs in QUERIES.items() for d in docs]
# relative to the scores' scale (their largest magnitude). Measured on CPU: 1.4e-3 abs at a scale of
# 2.7 (5e-4 relative). Not the F16 weights: the reference already uses the GGUF's own F16-rounded
# body, and an all-F32 copy of the GGUF shows the same gap; it is ggml's CPU GELU, which looks x up
# in an FP16 table (GGML_GELU_FP16 in ggml/src/ggml-cpu/vec.h), against torch's exact erf GELU.
REL_TOL = 1e-3


def _load(path, **kw):
    kw.setdefault("num_ctx", 512)
    kw.setdefault("embedding", True)
    kw.setdefault("num_thread", 1)
    return load_model(path, **kw)


@pytest.fixture(scope="module")
def reranker_path():
    return minilm_reranker_gguf()


@pytest.fixture(scope="module")
def reference(reranker_path):
    return reranker_reference(PAIRS, gguf_path=reranker_path)


@pytest.fixture(scope="module")
def ref_scores(reference):
    return np.array(reference["scores"])


@pytest.fixture(scope="module")
def tol(ref_scores):
    return REL_TOL * float(np.max(np.abs(ref_scores)))


@pytest.fixture(scope="module")
def model(reranker_path):
    # no pooling override: the GGUF's own bert.pooling_type (RANK) is used
    m = _load(reranker_path)
    yield m
    m.close()


def _engine_scores(m) -> np.ndarray:
    return np.array([s for q, docs in QUERIES.items() for s in m.rerank(q, docs)])


def test_gguf_declares_a_rank_head(reranker_path, model):
    import gguf

    reader = gguf.GGUFReader(reranker_path)
    assert reader.fields["bert.pooling_type"].contents() == 4
    assert reader.fields["bert.classifier.output_labels"].contents() == ["relevance"]
    base = gguf.GGUFReader(minilm_gguf())
    # every KV pair and tensor of the base survives the copy
    for name, field in base.fields.items():
        if name.startswith("GGUF.") or name in ("bert.pooling_type", "general.name"):
            continue
        assert reader.fields[name].contents() == field.contents(), name
    copied = {t.name: t for t in reader.tensors}
    for t in base.tensors:
        assert copied[t.name].tensor_type == t.tensor_type
        assert np.array_equal(np.asarray(copied[t.name].data), np.asarray(t.data)), t.name
    head = read_head(reranker_path)
    assert head["cls.weight"].shape == (384, 384) and head["cls.output.weight"].shape == (1, 384)
    assert model.engine.stats()["pooling"] == 4
    assert model.model.n_cls_out == 1


def test_fixture_is_deterministic(reranker_path, tmp_path):
    again = write_reranker(minilm_gguf(), tmp_path / "again.gguf")
    assert again.read_bytes() == reranker_path.read_bytes()


def test_input_tokens_equal_hf_tokenizer(model, reference):
    # [CLS] query [SEP] document [SEP], as BertTokenizer(query, document) builds it
    for (q, d), ids in zip(PAIRS, reference["input_ids"], strict=True):
        assert model.model.rerank_input(q, d) == ids


def test_scores_match_reference(model, ref_scores, tol):
    got = _engine_scores(model)
    assert got.shape == ref_scores.shape
    assert np.all(np.isfinite(got))
    err = np.abs(got - ref_scores)
    assert err.max() <= tol, f"max |engine - HF| = {err.max():.2e} > {tol:.2e}\n{got}\n{ref_scores}"


def test_scores_match_reference_one_by_one(model, ref_scores, tol):
    # one document per call: no batching with other sequences
    got = np.array([model.rerank(q, [d])[0] for q, d in PAIRS])
    assert np.abs(got - ref_scores).max() <= tol


def test_scores_match_hf_float32_body(model, reranker_path, tol):
    # the original float32 safetensors body (the GGUF's is F16): a bit more slack for the rounding
    ref = np.array(reranker_reference(PAIRS, gguf_path=reranker_path, body="hf")["scores"])
    got = _engine_scores(model)
    assert np.abs(got - ref).max() <= 2 * tol


def test_document_order_matches_reference(model, ref_scores, tol):
    i = 0
    for q, docs in QUERIES.items():
        ref = ref_scores[i : i + len(docs)]
        i += len(docs)
        gaps = np.diff(np.sort(ref))
        assert gaps.min() > 2 * tol, "fixture: reference scores too close to order reliably"
        got = np.array(model.rerank(q, docs))
        assert list(np.argsort(-got)) == list(np.argsort(-ref)), (q, got, ref)


def test_parallel_slots_give_the_same_scores(reranker_path, ref_scores, tol):
    m = _load(reranker_path, num_parallel=4)
    try:
        got = _engine_scores(m)
    finally:
        m.close()
    assert np.abs(got - ref_scores).max() <= tol


def test_head_changes_the_scores(ref_scores, tol):
    # the head-less MiniLM under forced RANK pooling scores something else entirely
    m = _load(minilm_gguf(), pooling="rank")
    try:
        assert m.engine.stats()["pooling"] == 4
        bare = _engine_scores(m)
    finally:
        m.close()
    assert np.abs(bare - ref_scores).max() > 100 * tol


def test_headless_rank_is_the_first_cls_component():
    # documents what RANK pooling returns without cls/cls.output tensors: hidden[CLS][0]
    bare = _load(minilm_gguf(), pooling="rank")
    cls = _load(minilm_gguf(), pooling="cls")
    try:
        q, d = PAIRS[0]
        (score,) = bare.rerank(q, [d])
        vecs, _ = cls.engine.embed([cls.model.rerank_input(q, d)], False, True)
    finally:
        bare.close()
        cls.close()
    assert score == pytest.approx(float(vecs[0][0]), abs=1e-5)


def test_rerank_template_is_used(reranker_path, tmp_path, ref_scores, tol):
    # a GGUF with tokenizer.chat_template.rerank builds its input from the template instead
    import gguf

    src = gguf.GGUFReader(reranker_path)
    dest = tmp_path / "templated.gguf"
    writer = gguf.GGUFWriter(str(dest), "bert")
    for field in src.fields.values():
        if field.name == "general.architecture" or field.name.startswith("GGUF."):
            continue
        sub = field.types[-1] if field.types[0] == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), field.types[0], sub_type=sub)
    writer.add_string("tokenizer.chat_template.rerank", "[CLS]{query}[SEP]{document}[SEP]")
    for t in src.tensors:
        writer.add_tensor(t.name, np.asarray(t.data), raw_dtype=t.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    m = _load(dest)
    try:
        q, d = PAIRS[0]
        default = _load(reranker_path)
        try:
            assert m.model.rerank_input(q, d) == default.model.rerank_input(q, d)
        finally:
            default.close()
        got = _engine_scores(m)
    finally:
        m.close()
    assert np.abs(got - ref_scores).max() <= tol


def test_embedding_engine_without_rank_refuses(reranker_path):
    m = _load(minilm_gguf())  # MEAN pooling
    try:
        assert m.engine.stats()["pooling"] == 1
        with pytest.raises(InvalidRequest):
            m.rerank("what is a cat?", ["A cat is a small animal."])
    finally:
        m.close()
    m = _load(reranker_path, pooling="mean")  # a rank head, but the engine pools MEAN
    try:
        with pytest.raises(InvalidRequest):
            m.rerank("what is a cat?", ["A cat is a small animal."])
    finally:
        m.close()


_CAUSAL_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from a3s_power.bundled import bundled_model_path
    from a3s_power.runtime import load_model
    out = {}
    path = bundled_model_path("smollm2:135m")
    try:
        m = load_model(path, num_ctx=512, embedding=True, pooling="rank", num_thread=1)
    except Exception as exc:
        out["load_error"] = f"{type(exc).__name__}: {exc}"
    else:
        out["pooling"] = m.engine.stats()["pooling"]
        q, docs = "what is a cat?", ["A cat is a small animal.", "Paris is in France."]
        try:
            out["scores"] = m.rerank(q, docs)
        except Exception as exc:
            out["rerank_error"] = f"{type(exc).__name__}: {exc}"
        last = load_model(path, num_ctx=512, embedding=True, pooling="last", num_thread=1)
        vecs, _ = last.engine.embed([m.model.rerank_input(q, d) for d in docs], False, True)
        out["last_first"] = [float(v[0]) for v in vecs]
        last.close()
        m.close()
    print(json.dumps(out))
    """
)


def test_causal_model_with_rank_pooling_does_not_crash():
    proc = subprocess.run(
        [sys.executable, "-c", _CAUSAL_SCRIPT], capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, f"process died ({proc.returncode}):\n{proc.stderr[-4000:]}"
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    if "load_error" in out or "rerank_error" in out:
        return  # a clear error is acceptable
    assert out["pooling"] == 4
    assert len(out["scores"]) == 2 and all(math.isfinite(s) for s in out["scores"])
    # no classification head: RANK on a causal model pools the last token, score = hidden[last][0]
    assert out["scores"] == pytest.approx(out["last_first"], abs=1e-4)


@pytest.mark.xfail(
    strict=True,
    reason="llama.cpp's BERT graph feeds token type 0 to every token (src/models/bert.cpp); "
    "Hugging Face gives the document type 1, so a real BERT cross-encoder's scores differ",
)
def test_scores_match_hf_with_segment_ids(model, reranker_path, tol):
    ref = np.array(reranker_reference(PAIRS, gguf_path=reranker_path, segment_ids=True)["scores"])
    got = _engine_scores(model)
    assert np.abs(got - ref).max() <= tol
