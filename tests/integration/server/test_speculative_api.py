"""Speculative decoding over HTTP: `draft_max` as an Ollama option and a Modelfile PARAMETER (the
one options type, so /api/*, OpenAI and Anthropic all get it), and `draft_model`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from live_server import LiveServer, add_gguf_model, server_settings

from a3s_power.store.errors import CreateError
from fixtures.edit_task import PROMPT


@pytest.fixture(scope="module")
def spec_server(
    tmp_path_factory: pytest.TempPathFactory, smollm2_path: Path, gemma3_path: Path
) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("spec") / "models"
    live = LiveServer(server_settings(root, num_parallel=1))
    stop = {"stop": ["<|im_end|>"]}
    add_gguf_model(live.store, "smollm2:135m", smollm2_path, stop)
    add_gguf_model(live.store, "smol-spec", smollm2_path, {**stop, "draft_max": 16})
    # a draft model: a second store name for SmolLM2 (no smaller model with its vocabulary exists here)
    add_gguf_model(live.store, "smol-draft", smollm2_path, stop)
    add_gguf_model(
        live.store, "smol-drafted", smollm2_path, {**stop, "draft_model": "smol-draft", "draft_max": 4}
    )
    add_gguf_model(live.store, "gemma-draft", gemma3_path)
    add_gguf_model(live.store, "smol-bad-draft", smollm2_path, {**stop, "draft_model": "gemma-draft"})
    with pytest.raises(CreateError, match="draft model 'missing' not found"):  # checked at create
        add_gguf_model(live.store, "smol-no-draft", smollm2_path, {**stop, "draft_model": "missing"})
    add_gguf_model(live.store, "smol-gone", smollm2_path, stop)
    add_gguf_model(live.store, "smol-no-draft", smollm2_path, {**stop, "draft_model": "smol-gone"})
    live.store.delete("smol-gone")  # and again at load: the draft may be removed later
    yield live
    live.stop()


def _stats(server: LiveServer, model: str) -> dict[str, Any]:
    for runner in server.scheduler.loaded():
        if runner.key.rsplit("/", 1)[-1].removesuffix(":latest") == model:
            return dict(runner.loaded.engine.stats())
    return {"draft_tokens": 0, "draft_accepted": 0}


def _generate(server: LiveServer, model: str, **options: Any) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": PROMPT}], "stream": False,
            "keep_alive": "10m", "options": {"num_predict": 48, "temperature": 0, **options}}  # fmt: skip
    return httpx.post(server.url + "/api/chat", json=body, timeout=180)


def test_draft_max_option_out_of_range_is_a_400(spec_server: LiveServer) -> None:
    reply = _generate(spec_server, "smollm2:135m", draft_max=65)
    assert reply.status_code == 400
    assert 'option "draft_max" is out of range' in reply.json()["error"]
    reply = _generate(spec_server, "smollm2:135m", draft_max="many")
    assert reply.status_code == 400
    assert 'option "draft_max" must be of type integer' in reply.json()["error"]


def test_draft_max_request_option_drafts(spec_server: LiveServer) -> None:
    assert _generate(spec_server, "smollm2:135m", num_predict=1).status_code == 200
    before = _stats(spec_server, "smollm2:135m")
    assert _generate(spec_server, "smollm2:135m", draft_max=0).status_code == 200
    assert _stats(spec_server, "smollm2:135m")["draft_tokens"] == before["draft_tokens"]  # off: no drafts
    reply = _generate(spec_server, "smollm2:135m", draft_max=16)
    assert reply.status_code == 200 and reply.json()["eval_count"] > 0
    after = _stats(spec_server, "smollm2:135m")
    assert after["draft_tokens"] > before["draft_tokens"]
    assert after["draft_accepted"] > before["draft_accepted"]


def test_draft_max_modelfile_parameter_reaches_every_api(spec_server: LiveServer) -> None:
    show = httpx.post(spec_server.url + "/api/show", json={"model": "smol-spec"}, timeout=30).json()
    assert "draft_max" in show["parameters"] and "16" in show["parameters"]
    assert "PARAMETER draft_max 16" in show["modelfile"]
    assert _generate(spec_server, "smol-spec", num_predict=1).status_code == 200
    before = _stats(spec_server, "smol-spec")
    chat = {"model": "smol-spec", "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 48,
            "temperature": 0}  # fmt: skip
    reply = httpx.post(spec_server.url + "/v1/chat/completions", json=chat, timeout=180)
    assert reply.status_code == 200, reply.text
    mid = _stats(spec_server, "smol-spec")
    assert mid["draft_tokens"] > before["draft_tokens"]  # the Modelfile default, through OpenAI
    msg = {"model": "smol-spec", "max_tokens": 48, "messages": [{"role": "user", "content": PROMPT}],
           "temperature": 0}  # fmt: skip
    reply = httpx.post(spec_server.url + "/v1/messages", json=msg, timeout=180)
    assert reply.status_code == 200, reply.text
    assert _stats(spec_server, "smol-spec")["draft_tokens"] > mid["draft_tokens"]  # and Anthropic
    # a request option still wins over the PARAMETER
    last = _stats(spec_server, "smol-spec")
    assert _generate(spec_server, "smol-spec", draft_max=0).status_code == 200
    assert _stats(spec_server, "smol-spec")["draft_tokens"] == last["draft_tokens"]


def test_draft_model_parameter_drafts_and_shows(spec_server: LiveServer) -> None:
    show = httpx.post(spec_server.url + "/api/show", json={"model": "smol-drafted"}, timeout=30).json()
    assert 'draft_model                    "smol-draft"' in show["parameters"]
    assert "PARAMETER draft_model smol-draft" in show["modelfile"]
    reply = _generate(spec_server, "smol-drafted")
    assert reply.status_code == 200, reply.text
    runner = next(r for r in spec_server.scheduler.loaded() if "smol-drafted" in r.key)
    assert runner.loaded.engine.has_draft_model
    stats = _stats(spec_server, "smol-drafted")
    assert stats["draft_decodes"] > 0 and stats["draft_tokens"] > 0 and stats["draft_accepted"] > 0


def test_draft_model_errors_are_clear_400s(spec_server: LiveServer) -> None:
    reply = _generate(spec_server, "smol-bad-draft")
    assert reply.status_code == 400
    assert "draft model cannot draft for this model: its vocabulary does not match" in reply.json()["error"]
    reply = _generate(spec_server, "smol-no-draft")
    assert reply.status_code == 400
    assert "draft model 'smol-gone' not found" in reply.json()["error"]
    assert _generate(spec_server, "smollm2:135m", num_predict=2).status_code == 200  # the server lives on
