"""Inputs that would abort llama.cpp (and with it the server) get a clear answer instead; after all
of them the same server process still serves. Each case once crashed the process or could."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from live_server import LiveServer

pytestmark = pytest.mark.timeout(300)
MODEL = "smollm2:135m"


def _gen(**options: Any) -> dict[str, Any]:
    return {"model": MODEL, "prompt": "hi", "stream": False, "options": {"num_predict": 2, **options}}


@pytest.mark.parametrize(
    ("path", "body", "status", "error"),
    [
        ("/api/generate", {**_gen(), "context": [999_999_999]}, 400,
         "token id 999999999 is out of range [0, 49152)"),
        ("/api/generate", {**_gen(), "context": [-5]}, 400, "token id -5 is out of range [0, 49152)"),
        ("/api/generate", _gen(mirostat=7), 400, "mirostat must be 0, 1 or 2"),
        ("/api/generate", _gen(repeat_last_n=-7), 400,
         "repeat_last_n must be -1 (the whole context), 0 (off) or positive"),
        # load-time options that used to abort: a batch smaller than the slots, thousands of threads
        ("/api/generate", _gen(num_batch=0), 200, None),
        ("/api/generate", _gen(num_thread=100_000), 200, None),
        ("/api/generate", _gen(num_ctx=-5), 200, None),
        ("/api/generate", _gen(num_ctx=100_000_000), 200, None),
        ("/api/generate", _gen(top_p=-5, min_p=7, typical_p=-1, repeat_penalty=-2, num_keep=-100), 200, None),
        ("/api/chat", {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": False,
                       "format": {"type": "nonsense"}}, 400, None),
        ("/api/generate", {**_gen(), "prompt": "word " * 20_000, "truncate": False}, 400,
         "the prompt is longer than the context length currently available to the model; shorten the prompt, "
         "adjust the context length in settings, or use a model with a longer context length"),
        ("/api/embed", {"model": MODEL, "input": "word " * 20_000, "truncate": False}, 400,
         "the input length exceeds the context length"),
        ("/api/chat", {"model": MODEL, "messages": [{"role": "user", "content": "hi", "images": ["aGk="]}]},
         400, f'"{MODEL}" does not support vision'),
        ("/api/generate", {**_gen(), "images": ["aGk="]}, 400, f'"{MODEL}" does not support vision'),
        ("/v1/chat/completions", {"model": MODEL, "messages": [{"role": "user", "content": "hi"}],
                                  "max_tokens": 3, "top_logprobs": 25}, 400, None),
    ],
)  # fmt: skip
def test_hostile_input_is_answered(
    server: LiveServer, path: str, body: dict[str, Any], status: int, error: str | None
) -> None:
    response = httpx.post(server.url + path, json=body, timeout=120)
    assert response.status_code == status, response.text
    if error is not None:
        assert response.json() == {"error": error}
    assert httpx.get(server.url + "/").text == "Ollama is running"
    assert server.thread.is_alive()


def test_num_ctx_is_capped_at_the_trained_length(server: LiveServer) -> None:
    httpx.post(server.url + "/api/generate", json=_gen(num_ctx=100_000_000), timeout=120)
    assert {m["context_length"] for m in httpx.get(server.url + "/api/ps").json()["models"]} == {8192}
