"""Security switches on a live server: API keys on every route and method but the heartbeat, CORS only
for Ollama's default origins plus OLLAMA_ORIGINS, loopback by default and a warning for exposed binds;
and client disconnects (streaming or not) free their slots."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from live_server import LiveServer, add_gguf_model, server_settings

from a3s_power.cli.serve import exposure_warning
from a3s_power.config import Settings

pytestmark = pytest.mark.timeout(240)
MODEL = "smollm2:135m"


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory, smollm2_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(server_settings(tmp_path_factory.mktemp("sec") / "models", api_keys=("s3cret",)))
    add_gguf_model(live.store, MODEL, smollm2_path, {"stop": ["<|im_end|>"]})
    yield live
    live.stop()


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory, smollm2_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(
        server_settings(tmp_path_factory.mktemp("cors") / "models", origins=("https://app.example.com",))
    )
    add_gguf_model(live.store, MODEL, smollm2_path, {"stop": ["<|im_end|>"]})
    yield live
    live.stop()


_GUARDED = [
    ("GET", "/api/tags"),
    ("HEAD", "/api/tags"),
    ("OPTIONS", "/api/tags"),
    ("GET", "/API/TAGS"),
    ("GET", "//api//tags"),
    ("GET", "/api/Tags"),
    ("GET", "/metrics"),
    ("HEAD", "/metrics"),
    ("GET", "//metrics"),
    ("GET", "/v1/models"),
    ("HEAD", "/v1/models"),
    ("OPTIONS", "/v1/chat/completions"),
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/messages"),
    ("POST", "/api/generate"),
    ("HEAD", "/api/ps"),
    ("GET", "/nothing/here"),
    ("POST", "//"),
    ("DELETE", "/api/delete"),
    ("POST", "/api/blobs/sha256:" + "0" * 64),
]


@pytest.mark.parametrize(("method", "path"), _GUARDED)
def test_every_route_and_method_needs_the_key(keyed: LiveServer, method: str, path: str) -> None:
    headers = {"Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST"}
    path = keyed.url + path  # a full URL: httpx would read "//x" relative to a base as a host
    with httpx.Client() as client:
        denied = client.request(method, path, headers=headers, content=b"{}")
        assert denied.status_code == 401, (method, path, denied.status_code, denied.text)
        wrong = client.request(
            method, path, headers={**headers, "Authorization": "Bearer nope"}, content=b"{}"
        )
        assert wrong.status_code == 401
        allowed = client.request(
            method, path, headers={**headers, "Authorization": "Bearer s3cret"}, content=b"{}"
        )
        assert allowed.status_code != 401, (method, path, allowed.text)
        other = client.request(method, path, headers={**headers, "x-api-key": "s3cret"}, content=b"{}")
        assert other.status_code != 401


def test_only_the_heartbeat_is_open(keyed: LiveServer) -> None:
    assert httpx.get(keyed.url + "/").text == "Ollama is running"
    assert httpx.head(keyed.url + "/").status_code == 200
    assert httpx.post(keyed.url + "/").status_code == 401
    assert httpx.options(keyed.url + "/").status_code == 401


def test_cors_allows_only_configured_origins(open_server: LiveServer) -> None:
    url = open_server.url + "/api/tags"
    for origin in ("http://localhost", "http://localhost:3000", "https://127.0.0.1:8080", "app://x",
                   "https://app.example.com"):  # fmt: skip
        response = httpx.get(url, headers={"Origin": origin})
        assert response.headers.get("access-control-allow-origin") == origin, origin
    for origin in ("http://evil.example", "https://app.example.com.evil.example", "http://localhost.evil.example",
                   "null", "https://evil.example:11434"):  # fmt: skip
        response = httpx.get(url, headers={"Origin": origin})
        assert response.headers.get("access-control-allow-origin") in (None, ""), origin
        assert origin not in str(response.headers).replace("origin", "")
        preflight = httpx.options(url, headers={"Origin": origin, "Access-Control-Request-Method": "POST"})
        assert preflight.headers.get("access-control-allow-origin") in (None, ""), origin


def test_loopback_by_default_and_a_warning_when_exposed() -> None:
    assert Settings.from_env({}).host == "127.0.0.1"
    assert Settings.from_env({"OLLAMA_HOST": "0.0.0.0"}).host == "0.0.0.0"
    for host in ("0.0.0.0", "::", "192.168.1.7", "my-host.example"):
        assert "without API keys" in exposure_warning(host, ())
        assert exposure_warning(host, ("k",)) == ""
    for host in ("127.0.0.1", "127.0.0.5", "::1", "[::1]", "localhost"):
        assert exposure_warning(host, ()) == ""


# -- disconnects ----------------------------------------------------------------------------------
def _wait_idle(server: LiveServer, within: float) -> float:
    started = time.monotonic()
    while True:
        runners = server.scheduler.loaded()
        if all(r.refs == 0 and r.loaded.stats().n_active == 0 for r in runners):
            return time.monotonic() - started
        assert time.monotonic() - started < within, [(r.refs, r.loaded.stats().n_active) for r in runners]
        time.sleep(0.01)


def _long(stream: bool) -> dict[str, object]:
    return {"model": MODEL, "messages": [{"role": "user", "content": "Write a long story."}],
            "stream": stream, "max_tokens": 100_000, "ignore_eos": True}  # fmt: skip


def test_abandoned_non_streaming_requests_are_cancelled(open_server: LiveServer) -> None:
    warm = {"model": MODEL, "prompt": "hi", "stream": False, "options": {"num_predict": 1}}
    httpx.post(open_server.url + "/api/generate", json=warm, timeout=120)

    def abandon() -> None:
        with pytest.raises(httpx.TimeoutException):
            httpx.post(open_server.url + "/v1/chat/completions", json=_long(False), timeout=1.5)

    threads = [threading.Thread(target=abandon) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    _wait_idle(open_server, within=10)
    # the server serves at once afterwards
    reply = httpx.post(
        open_server.url + "/api/generate", json={**warm, "options": {"num_predict": 2}}, timeout=30
    )
    assert reply.status_code == 200 and reply.json()["eval_count"] == 2


def test_disconnect_mid_stream_frees_the_slot_quickly(open_server: LiveServer) -> None:
    with httpx.stream(
        "POST", open_server.url + "/v1/chat/completions", json=_long(True), timeout=60
    ) as response:
        lines = response.iter_lines()
        for _ in range(3):
            next(lines)
    freed = _wait_idle(open_server, within=5)
    assert freed < 2.0, f"the slot was freed {freed:.2f} s after the disconnect"


def test_a_burst_of_fifty_disconnects_leaves_nothing_running(open_server: LiveServer) -> None:
    def one(path: str, body: dict[str, object]) -> None:
        try:
            with httpx.stream("POST", open_server.url + path, json=body, timeout=60) as response:
                for _ in response.iter_lines():
                    break
        except httpx.HTTPError:
            pass

    bodies = [
        ("/api/generate", {"model": MODEL, "prompt": "Write a long story.", "stream": True,
                           "options": {"num_predict": 100_000}}),
        ("/v1/chat/completions", _long(True)),
    ]  # fmt: skip
    threads = [threading.Thread(target=one, args=bodies[i % 2]) for i in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    freed = _wait_idle(open_server, within=15)
    print(f"50 disconnects: idle {freed:.2f} s after the last client left")
