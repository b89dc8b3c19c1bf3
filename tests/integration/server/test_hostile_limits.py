"""Hostile input found by a sweep over a live server (issue 13), each a regression test: the request is
refused with a clear error in its API family's envelope, nothing hangs, nothing is poisoned, and the
same server still answers afterwards."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from live_server import LiveServer, add_gguf_model, error_text, server_settings

from a3s_power.runtime.scheduler import BUSY_MESSAGE

pytestmark = pytest.mark.timeout(300)
MODEL = "smollm2:135m"
TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _gen(**extra: Any) -> dict[str, Any]:
    options = {"num_predict": 2, **extra.pop("options", {})}
    return {"model": MODEL, "prompt": "hi", "stream": False, "options": options, **extra}


def _chat(content: str = "hi", **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": content}], "stream": False,
            "options": {"num_predict": 2}, **extra}  # fmt: skip


def _oai(**extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, **extra}


def _anth(**extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, **extra}


def _alive(server: LiveServer) -> None:
    assert httpx.get(server.url + "/", timeout=10).text == "Ollama is running"
    assert server.thread.is_alive()


# -- JSON schema → grammar: bounded, checked, never an OOM or a hang ---------------------------------
@pytest.mark.parametrize(
    ("path", "body", "needle"),
    [
        ("/api/generate", _gen(format={"type": "string", "minLength": 10, "maxLength": 2}),
         "minLength (10) is greater than maxLength (2)"),
        ("/api/chat", _chat(format={"type": "array", "items": {"type": "string"},
                                    "minItems": 5, "maxItems": 1}),
         "minItems (5) is greater than maxItems (1)"),
        ("/v1/chat/completions", _oai(response_format={"type": "json_schema", "json_schema": {
            "name": "x", "schema": {"type": "string", "minLength": 10, "maxLength": 2}}}),
         "minLength (10) is greater than maxLength (2)"),
        ("/api/generate", _gen(format={"type": "string", "minLength": 10**9}),
         "minLength 1000000000 is too large"),
        ("/api/generate", _gen(format={"type": "integer", "minimum": 5, "maximum": 1}),
         "minimum (5) is greater than maximum (1)"),
        ("/api/generate", _gen(format={"enum": [f"value-{i}" for i in range(100_000)]}),
         "larger than 256 KiB"),
        ("/api/generate", _gen(format={"enum": [f"v{i}" for i in range(5000)]}), "enum has 5000 values"),
        # a regex repetition llama.cpp's GBNF parser refuses to unroll
        ("/api/generate", _gen(format={"type": "string", "pattern": "^a{10000}$"}), "invalid grammar"),
    ],
)  # fmt: skip
def test_pathological_schemas_are_400_at_once(
    server: LiveServer, path: str, body: dict[str, Any], needle: str
) -> None:
    started = time.monotonic()
    response = httpx.post(server.url + path, json=body, timeout=60)
    assert response.status_code == 400, response.text
    assert needle in error_text(path, response)
    assert time.monotonic() - started < 10
    _alive(server)


# -- templates: a recursive macro is a 400 at create and at render, never a crash --------------------
def test_recursive_macro_is_refused_at_create(server: LiveServer) -> None:
    response = httpx.post(
        server.url + "/api/create",
        json={
            "model": "t:x",
            "from": MODEL,
            "template": "{% macro f(n) %}{{ f(n+1) }}{% endmacro %}{{ f(0) }}",
        },
        timeout=60,
    )
    assert response.status_code == 400, response.text
    assert "recurses without end" in response.json()["error"]
    assert "t:x" not in [m["name"] for m in httpx.get(server.url + "/api/tags").json()["models"]]
    _alive(server)


def test_recursion_that_only_a_request_triggers_is_refused_at_render(server: LiveServer) -> None:
    # passes create's check (sample messages), recurses without end on one message's content
    template = (
        "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}"
        "{% if messages[-1].content == 'boom' %}{{ f(0) }}{% endif %}" + TEMPLATE
    )
    create = httpx.post(
        server.url + "/api/create",
        json={"model": "t:render", "from": MODEL, "template": template},
        timeout=60,
    )
    assert create.status_code == 200, create.text
    fine = httpx.post(server.url + "/api/chat", json={**_chat(), "model": "t:render"}, timeout=120)
    assert fine.status_code == 200, fine.text
    for path, body in (
        ("/api/chat", {**_chat("boom"), "model": "t:render"}),
        (
            "/v1/chat/completions",
            {**_oai(), "model": "t:render", "messages": [{"role": "user", "content": "boom"}]},
        ),
    ):
        response = httpx.post(server.url + path, json=body, timeout=120)
        assert response.status_code == 400, response.text
        assert "recurses without end" in error_text(path, response)
        _alive(server)
    assert (
        httpx.post(server.url + "/api/chat", json={**_chat(), "model": "t:render"}, timeout=120).status_code
        == 200
    )


# -- keep_alive overflow: clamped to "forever", the model is not poisoned ----------------------------
@pytest.mark.parametrize("keep_alive", [1e308, "100000000000h", 2**70])
def test_keep_alive_overflow_does_not_poison_the_model(server: LiveServer, keep_alive: object) -> None:
    first = httpx.post(server.url + "/api/generate", json=_gen(keep_alive=keep_alive), timeout=120)
    assert first.status_code == 200, first.text
    ps = httpx.get(server.url + "/api/ps").json()["models"]
    assert [m["expires_at"][:4] for m in ps if m["name"] == MODEL] == ["2318"]
    for path, body in (
        ("/api/generate", _gen()),
        ("/v1/chat/completions", _oai()),
        ("/v1/messages", _anth()),
    ):
        response = httpx.post(server.url + path, json=body, timeout=120)
        assert response.status_code == 200, (path, response.text)
    # a normal keep_alive afterwards applies again
    assert (
        httpx.post(server.url + "/api/generate", json=_gen(keep_alive="5m"), timeout=120).status_code == 200
    )
    ps = httpx.get(server.url + "/api/ps").json()["models"]
    assert [m["expires_at"][:4] for m in ps if m["name"] == MODEL] != ["2318"]


# -- stop strings, wrong types, out-of-range numbers: 400 naming the field ---------------------------
@pytest.mark.parametrize(
    ("path", "body", "needle"),
    [
        ("/api/generate", _gen(options={"stop": ["x"] * 10_000}), 'option "stop" has 10000 strings'),
        ("/api/generate", _gen(options={"stop": ["x" * 1_000_000]}), 'option "stop" has a string of 1000000'),
        ("/v1/chat/completions", _oai(stop=["x"] * 10_000), 'option "stop" has 10000 strings'),
        ("/v1/messages", _anth(stop_sequences=["y" * 1_000_000]), 'option "stop" has a string of 1000000'),
        ("/api/generate", _gen(options={"top_k": "x"}), 'option "top_k" must be of type integer'),
        ("/api/chat", {**_chat(), "options": {"num_predict": "x"}},
         'option "num_predict" must be of type integer'),
        ("/api/generate", _gen(options={"num_predict": [1]}), 'option "num_predict" must be of type integer'),
        ("/api/generate", _gen(options={"num_predict": True}),
         'option "num_predict" must be of type integer'),
        ("/api/generate", _gen(options={"num_predict": 2**63}), 'option "num_predict" is out of range'),
        ("/api/generate", _gen(options={"top_k": 2**31}), 'option "top_k" is out of range'),
        ("/api/generate", _gen(options={"seed": 2**64}), 'option "seed" is out of range'),
        ("/api/generate", _gen(options={"num_batch": 2**31}), 'option "num_batch" is out of range'),
        ("/api/generate", _gen(options={"repeat_penalty": 1e308}), 'option "repeat_penalty" is out of range'),
        ("/v1/chat/completions", _oai(temperature="x"), "$.temperature"),
        ("/v1/chat/completions", _oai(max_tokens=-1), "max_tokens must be at least 1"),
        ("/v1/chat/completions", _oai(max_tokens=2**63), "out of range"),
        ("/v1/messages", _anth(max_tokens=-1), "max_tokens: must be at least 1"),
        ("/v1/messages", {**_anth(), "messages": [{"role": "user", "content": 123}]}, "messages.content"),
        ("/api/generate", _gen(keep_alive="soon"), 'time: invalid duration "soon"'),
    ],
)  # fmt: skip
def test_bad_values_are_400_naming_the_field(
    server: LiveServer, path: str, body: dict[str, Any], needle: str
) -> None:
    response = httpx.post(server.url + path, json=body, timeout=60)
    assert response.status_code == 400, response.text
    assert needle in error_text(path, response)
    assert "/" + "tmp" not in response.text and "pybind" not in response.text.lower()
    _alive(server)


# -- request-body limits: before routing, in each family's envelope ----------------------------------
_FAMILIES = ["/api/embed", "/v1/embeddings", "/v1/messages"]


@pytest.mark.parametrize("path", _FAMILIES)
def test_oversized_body_is_413(server: LiveServer, path: str) -> None:
    body = b'{"model": "m", "input": "' + b"a" * (33 * 1024 * 1024) + b'"}'
    response = httpx.post(
        server.url + path, content=body, headers={"content-type": "application/json"}, timeout=60
    )
    assert response.status_code == 413, response.text[:300]
    assert "request body too large" in error_text(path, response)
    _alive(server)


@pytest.mark.parametrize("path", _FAMILIES)
@pytest.mark.parametrize("where", ["options", "format"])
def test_deep_nesting_is_400(server: LiveServer, path: str, where: str) -> None:
    deep = b'{"a":' * 1000 + b"1" + b"}" * 1000
    body = b'{"model": "' + MODEL.encode() + b'", "' + where.encode() + b'": ' + deep + b"}"
    response = httpx.post(
        server.url + path, content=body, headers={"content-type": "application/json"}, timeout=60
    )
    assert response.status_code == 400, response.text[:300]
    assert "nested deeper than 100" in error_text(path, response)
    _alive(server)


@pytest.mark.parametrize("path", ["/api/chat", "/v1/chat/completions", "/v1/messages"])
def test_invalid_utf8_is_400(server: LiveServer, path: str) -> None:
    body = b'{"model": "' + MODEL.encode() + b'", "messages": [{"role": "user", "content": "\xff\xfe"}]}'
    response = httpx.post(
        server.url + path, content=body, headers={"content-type": "application/json"}, timeout=60
    )
    assert response.status_code == 400, response.text
    assert "not valid UTF-8" in error_text(path, response)
    _alive(server)


def test_a_large_blob_upload_is_not_limited(server: LiveServer, tmp_path: Path) -> None:
    data = b"\0" * (40 * 1024 * 1024)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    response = httpx.post(server.url + f"/api/blobs/{digest}", content=data, timeout=120)
    assert response.status_code == 201, response.text


def test_ten_megabyte_message_does_not_freeze_the_server(server: LiveServer) -> None:
    """Rendering and tokenizing run on a worker thread: other clients are answered meanwhile."""
    big = _chat("word " * 2_000_000)
    done = threading.Event()

    def send() -> None:
        try:
            httpx.post(server.url + "/api/chat", json=big, timeout=8)
        except httpx.HTTPError:
            pass
        finally:
            done.set()

    httpx.post(server.url + "/api/chat", json=_chat(), timeout=120)  # loaded
    thread = threading.Thread(target=send)
    thread.start()
    time.sleep(1.0)
    worst = 0.0
    for _ in range(8):
        started = time.monotonic()
        assert httpx.get(server.url + "/api/version", timeout=10).status_code == 200
        worst = max(worst, time.monotonic() - started)
        time.sleep(0.25)
    thread.join()
    assert worst < 1.5, f"the event loop stalled {worst:.2f} s while a 10 MB message was prepared"


# -- names, adapters, registries, HEAD ------------------------------------------------------------
@pytest.mark.parametrize("suffix", ["\n", " ", "\t", "\r\n"])
def test_names_with_trailing_whitespace_are_refused(server: LiveServer, suffix: str) -> None:
    response = httpx.request("DELETE", server.url + "/api/delete", json={"model": MODEL + suffix}, timeout=30)
    assert response.status_code == 400, response.text
    assert httpx.post(server.url + "/api/show", json={"model": MODEL + suffix}).status_code == 400
    assert MODEL in [m["name"] for m in httpx.get(server.url + "/api/tags").json()["models"]]


def test_non_gguf_adapter_is_refused_at_create(server: LiveServer) -> None:
    data = b'{"not": "a gguf"}' + b"\0" * 64
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    assert httpx.post(server.url + f"/api/blobs/{digest}", content=data).status_code == 201
    response = httpx.post(
        server.url + "/api/create",
        json={"model": "bad-adapter", "from": MODEL, "adapters": {"adapter.safetensors": digest}},
        timeout=60,
    )
    assert response.status_code == 400, response.text
    assert "not a GGUF file" in response.json()["error"]
    assert "bad-adapter:latest" not in [
        m["name"] for m in httpx.get(server.url + "/api/tags").json()["models"]
    ]


def test_unreachable_registry_is_502(server: LiveServer) -> None:
    sock = __import__("socket").socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there
    response = httpx.post(
        server.url + "/api/pull",
        json={"model": f"127.0.0.1:{port}/library/nothing:latest", "insecure": True, "stream": False},
        timeout=60,
    )
    assert response.status_code == 502, response.text
    assert "cannot reach the registry" in response.json()["error"]
    _alive(server)


@pytest.mark.parametrize("path", ["/api/ps", "/metrics", "/v1/models", "/api/tags", "/api/version", "/"])
def test_head_is_answered(server: LiveServer, path: str) -> None:
    assert httpx.head(server.url + path).status_code == 200


# -- OLLAMA_MAX_QUEUE once the model is loaded: Ollama's 503, in every envelope, before a stream -----
@pytest.fixture(scope="module")
def queued(tmp_path_factory: pytest.TempPathFactory, smollm2_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(
        server_settings(
            tmp_path_factory.mktemp("queued") / "models", num_parallel=1, max_queue=2, context_length=8192
        )
    )
    add_gguf_model(live.store, MODEL, smollm2_path, {"stop": ["<|im_end|>"]})
    yield live
    live.stop()


def test_max_queue_is_enforced_once_loaded(queued: LiveServer) -> None:
    assert httpx.post(queued.url + "/api/generate", json=_gen(), timeout=120).status_code == 200  # loaded
    release = threading.Event()
    started: list[int] = []

    def hold() -> None:  # a long stream that holds a slot (or a queue place) until told to go
        # no end of sequence, a whole 8K context of tokens: the holders outlast the checks below
        body = {**_oai(max_tokens=100_000, ignore_eos=True), "stream": True}
        with httpx.stream("POST", queued.url + "/v1/chat/completions", json=body, timeout=120) as response:
            started.append(response.status_code)
            for _ in response.iter_lines():
                if release.is_set():
                    break

    holders = [threading.Thread(target=hold) for _ in range(3)]  # 1 running + 2 queued = full
    for thread in holders:
        thread.start()
    deadline = time.monotonic() + 60
    while not (queued.scheduler.loaded() and queued.scheduler.loaded()[0].refs >= 3):
        assert time.monotonic() < deadline, "the holders never got in"
        time.sleep(0.05)
    try:
        busy = httpx.post(queued.url + "/api/generate", json=_gen(), timeout=30)
        state = [(r.key, r.refs, r.expiring) for r in queued.scheduler.loaded()]
        assert busy.status_code == 503 and busy.json() == {"error": BUSY_MESSAGE}, (busy.text, state, started)
        chat = httpx.post(queued.url + "/api/chat", json={**_chat(), "stream": True}, timeout=30)
        assert chat.status_code == 503 and chat.json() == {"error": BUSY_MESSAGE}
        with httpx.stream(
            "POST", queued.url + "/v1/chat/completions", json={**_oai(), "stream": True}, timeout=30
        ) as stream:
            stream.read()
            assert stream.status_code == 503, stream.text  # refused before the stream starts
            assert stream.json()["error"]["message"] == BUSY_MESSAGE
        anth = httpx.post(queued.url + "/v1/messages", json={**_anth(), "stream": True}, timeout=30)
        assert anth.status_code == 503
        assert anth.json()["error"] == {"type": "overloaded_error", "message": BUSY_MESSAGE}
    finally:
        release.set()
        for thread in holders:
            thread.join(timeout=120)
    assert started == [200, 200, 200]
    deadline = time.monotonic() + 30
    while queued.scheduler.loaded()[0].refs:
        assert time.monotonic() < deadline, "the holders' slots were not freed"
        time.sleep(0.05)
    assert httpx.post(queued.url + "/api/generate", json=_gen(), timeout=120).status_code == 200
