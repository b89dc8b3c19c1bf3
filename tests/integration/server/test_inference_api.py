"""Ollama's native inference API on a live server, driven by the official `ollama` client and httpx."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import ollama
import orjson
import pytest
from live_server import LiveServer

from a3s_power.runtime import Completion, GenerationOptions, generate_sync, load_model

pytestmark = pytest.mark.timeout(180)
MODEL = "smollm2:135m"
GREEDY = {"temperature": 0, "num_predict": 24, "seed": 7}


def _client(server: LiveServer) -> ollama.Client:
    return ollama.Client(host=server.url, timeout=120)


def test_heartbeat_and_version(server: LiveServer) -> None:
    root = httpx.get(server.url + "/")
    assert root.status_code == 200 and root.text == "Ollama is running"
    assert httpx.head(server.url + "/").status_code == 200
    assert httpx.get(server.url + "/api/version").json()["version"] == "0.33.0"
    missing = httpx.get(server.url + "/api/nope")
    assert missing.status_code == 404 and missing.text == "404 page not found"
    wrong = httpx.get(server.url + "/api/generate")
    assert wrong.status_code == 405 and wrong.text == "405 method not allowed"


def test_generate_streams_what_the_engine_produces(server: LiveServer, smollm2_path: Path) -> None:
    prompt = "Write a short poem about the sea."
    parts = list(_client(server).generate(model=MODEL, prompt=prompt, options=GREEDY, stream=True))
    text = "".join(p.response for p in parts)
    final = parts[-1]
    assert final.done and final.done_reason == "length"
    assert all(not p.done for p in parts[:-1]) and len(parts) > 2
    assert final.eval_count == 24
    assert final.prompt_eval_count and final.prompt_eval_count > 5
    assert final.total_duration and final.eval_duration and final.prompt_eval_duration
    assert final.context and len(final.context) >= final.prompt_eval_count

    # The same request straight through the runtime (chat template, greedy): identical text.
    loaded = load_model(smollm2_path, num_ctx=2048)
    try:
        rendered = loaded.render_chat([{"role": "user", "content": prompt}])
        tokens = loaded.tokenize(rendered.prompt, add_special=True, parse_special=True)
        options = GenerationOptions(temperature=0, num_predict=24, seed=7, stop=["<|im_end|>"])
        direct = "".join(
            i.text for i in generate_sync(loaded, tokens, options) if not isinstance(i, Completion)
        )
    finally:
        loaded.close()
    assert text == direct

    whole = _client(server).generate(model=MODEL, prompt=prompt, options=GREEDY, stream=False)
    assert whole.response == text and whole.done_reason == final.done_reason


def test_ndjson_wire_format(server: LiveServer) -> None:
    body = {"model": MODEL, "prompt": "Hi", "options": {"num_predict": 3, "temperature": 0}}
    with httpx.stream("POST", server.url + "/api/generate", json=body, timeout=60) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/x-ndjson")
        lines = [orjson.loads(line) for line in response.iter_lines() if line]
    assert set(lines[0]) == {"model", "created_at", "response", "done"}
    assert lines[0]["created_at"].endswith("Z") and lines[0]["model"] == MODEL
    assert lines[-1]["done"] is True and lines[-1]["eval_count"] == 3
    assert "load_duration" not in lines[-1] or lines[-1]["load_duration"] > 0  # omitempty


def test_chat_two_turns_reuse_the_cached_prefix(server: LiveServer) -> None:
    client = _client(server)
    history: list[dict[str, Any]] = [
        {"role": "system", "content": "You are a helpful assistant. " * 20},
        {"role": "user", "content": "What is the capital of France?"},
    ]
    first = client.chat(model=MODEL, messages=history, options=GREEDY)
    assert first.message.role == "assistant" and first.message.content
    history += [
        {"role": "assistant", "content": first.message.content},
        {"role": "user", "content": "And Italy?"},
    ]
    chunks = list(client.chat(model=MODEL, messages=history, options=GREEDY, stream=True))
    second = chunks[-1]
    assert "".join(c.message.content for c in chunks)
    # Ollama counts every prompt token; only the new suffix was evaluated, so it took far less time
    assert second.prompt_eval_count and first.prompt_eval_count
    assert second.prompt_eval_count > first.prompt_eval_count
    per_token_1 = first.prompt_eval_duration / first.prompt_eval_count  # type: ignore[operator]
    per_token_2 = second.prompt_eval_duration / second.prompt_eval_count  # type: ignore[operator]
    assert per_token_2 < per_token_1 / 2


def test_json_format_is_valid_json(server: LiveServer) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    }
    reply = _client(server).chat(
        model=MODEL,
        messages=[{"role": "user", "content": "Invent a person. Reply in JSON."}],
        format=schema,
        options={"temperature": 0, "num_predict": 64},
    )
    value = orjson.loads(reply.message.content)
    assert isinstance(value["name"], str) and isinstance(value["age"], int)


def test_logprobs(server: LiveServer) -> None:
    body = {"model": MODEL, "prompt": "Hello", "stream": False, "logprobs": True, "top_logprobs": 3,
            "options": {"num_predict": 4, "temperature": 0}}  # fmt: skip
    reply = httpx.post(server.url + "/api/generate", json=body, timeout=60).json()
    assert len(reply["logprobs"]) == 4
    for entry in reply["logprobs"]:
        assert entry["logprob"] <= 0 and bytes(entry["bytes"]).decode("utf-8", "replace") == entry["token"]
        assert len(entry["top_logprobs"]) == 3
        assert entry["top_logprobs"][0]["logprob"] >= entry["top_logprobs"][-1]["logprob"]
    assert "".join(e["token"] for e in reply["logprobs"]) == reply["response"]


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"model": "nope", "prompt": "x"}, 404, "model 'nope' not found"),
        ({"prompt": "x"}, 400, "model is required"),
        ({"model": MODEL, "prompt": "x", "top_logprobs": 21}, 400, "top_logprobs must be between 0 and 20"),
        ({"model": MODEL, "prompt": "x", "think": True}, 400, f'"{MODEL}" does not support thinking'),
        ({"model": MODEL, "prompt": "x", "think": "huge"}, 400,
         'invalid think value: "huge" (must be "high", "medium", "low", "max", true, or false)'),
        ({"model": MODEL, "prompt": "x", "raw": True, "system": "s"}, 400,
         "raw mode does not support template, system, or context"),
        ({"model": MODEL, "prompt": "x", "options": {"temperature": "hot"}}, 400,
         'option "temperature" must be of type float32'),
        ({"model": MODEL, "prompt": "x", "options": {"stop": "x"}}, 400,
         'option "stop" must be of type array'),
        ({"model": MODEL, "prompt": "x", "keep_alive": "-1"}, 400, 'time: missing unit in duration "-1"'),
    ],
)  # fmt: skip
def test_generate_errors(server: LiveServer, body: dict[str, Any], status: int, error: str) -> None:
    response = httpx.post(server.url + "/api/generate", json=body, timeout=60)
    assert (response.status_code, response.json()) == (status, {"error": error})


def test_bad_bodies(server: LiveServer) -> None:
    empty = httpx.post(server.url + "/api/chat", content=b"", timeout=30)
    assert (empty.status_code, empty.json()) == (400, {"error": "missing request body"})
    broken = httpx.post(server.url + "/api/chat", content=b"{", timeout=30)
    assert broken.status_code == 400 and broken.json()["error"]
    with pytest.raises(ollama.ResponseError) as err:
        _client(server).chat(model="missing:tag", messages=[{"role": "user", "content": "hi"}])
    assert err.value.status_code == 404 and err.value.error == "model 'missing:tag' not found"


def test_load_unload_and_ps(server: LiveServer) -> None:
    client = _client(server)
    loaded = client.generate(model=MODEL, prompt="", keep_alive="10m")
    assert loaded.done and loaded.done_reason == "load"
    models = client.ps().models
    assert [m.model for m in models] == [MODEL]
    assert models[0].context_length == 2048 and models[0].size > 50_000_000
    assert models[0].details and models[0].details.family == "llama"
    assert models[0].expires_at is not None
    assert 500 < (models[0].expires_at.timestamp() - time.time()) <= 600
    unloaded = client.generate(model=MODEL, prompt="", keep_alive=0)
    assert unloaded.done_reason == "unload"
    assert client.ps().models == []


def test_embed_and_legacy_embeddings(server: LiveServer) -> None:
    client = _client(server)
    result = client.embed(model=MODEL, input=["The sky is blue.", "Grass is green."])
    vectors = np.array(result.embeddings)
    assert vectors.shape == (2, 576)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert result.prompt_eval_count and result.prompt_eval_count >= 8
    short = client.embed(model=MODEL, input="The sky is blue.", dimensions=64)
    assert np.array(short.embeddings).shape == (1, 64)
    assert np.isclose(np.linalg.norm(short.embeddings[0]), 1.0, atol=1e-4)
    assert np.allclose(
        np.array(short.embeddings[0]), vectors[0][:64] / np.linalg.norm(vectors[0][:64]), atol=1e-4
    )
    legacy = client.embeddings(model=MODEL, prompt="The sky is blue.")
    raw = np.array(legacy.embedding)
    assert raw.shape == (576,) and not np.isclose(np.linalg.norm(raw), 1.0)
    assert np.allclose(raw / np.linalg.norm(raw), vectors[0], atol=1e-4)
    assert client.embed(model=MODEL, input=[]).embeddings == []


def test_concurrent_streams_are_batched(server: LiveServer) -> None:
    async def run() -> list[str]:
        client = ollama.AsyncClient(host=server.url, timeout=120)
        prompts = [f"Count from {i} to {i + 5}." for i in range(4)]
        replies = await asyncio.gather(
            *(
                client.generate(model=MODEL, prompt=p, options={"temperature": 0, "num_predict": 16})
                for p in prompts
            )
        )
        return [r.response for r in replies]

    stats_before = _engine_stats(server)
    texts = asyncio.run(run())
    stats_after = _engine_stats(server)
    assert all(texts) and len(texts) == 4
    # 4 × 16 tokens with 2 slots: generating steps were shared, so far fewer than 64 decode calls
    assert stats_after["decode_calls"] - stats_before["decode_calls"] < 60


def _engine_stats(server: LiveServer) -> dict[str, Any]:
    runners = server.scheduler.loaded()
    if not runners:
        _client(server).generate(model=MODEL, prompt="", keep_alive="10m")
        runners = server.scheduler.loaded()
    return dict(runners[0].loaded.engine.stats())


def test_client_disconnect_cancels_generation(server: LiveServer) -> None:
    body = {
        "model": MODEL,
        "prompt": "Write a long story.",
        "options": {"num_predict": 2000, "temperature": 0},
    }
    with httpx.stream("POST", server.url + "/api/generate", json=body, timeout=60) as response:
        lines = response.iter_lines()
        for _ in range(3):
            next(lines)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        runner = server.scheduler.loaded()[0]
        if runner.refs == 0 and runner.loaded.engine.stats()["n_active"] == 0:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the request kept running after the client went away")


def test_jinja_template_layer_gives_thinking_and_tools(server: LiveServer, tools_model: str) -> None:
    client = _client(server)
    assert {"tools", "thinking"} <= set(client.show(tools_model).capabilities or [])
    messages = [{"role": "user", "content": "Why is the sky blue?"}]
    chunks = list(client.chat(model=tools_model, messages=messages, think=True, stream=True,
                              options={"temperature": 0, "num_predict": 24}))  # fmt: skip
    thinking = "".join(c.message.thinking or "" for c in chunks)
    content = "".join(c.message.content for c in chunks)
    # the generation prompt opened <think>: the reply is reasoning until the model closes it
    assert thinking.strip() and "<think>" not in thinking + content
    whole = client.chat(model=tools_model, messages=messages, think=True,
                        options={"temperature": 0, "num_predict": 24})  # fmt: skip
    assert whole.message.thinking == thinking and whole.message.content == content

    plain = client.chat(model=tools_model, messages=messages, think=False,
                        options={"temperature": 0, "num_predict": 24})  # fmt: skip
    assert plain.message.content and not plain.message.thinking

    generated = client.generate(model=tools_model, prompt="Why is the sky blue?", think=True,
                                options={"temperature": 0, "num_predict": 24})  # fmt: skip
    assert generated.thinking and generated.thinking.strip() == thinking.strip()


def test_tools_without_a_tools_template(server: LiveServer, tools_model: str) -> None:
    """A template without tools serves them in llama.cpp's generic JSON format (no 400, as
    llama-server); `/api/show` still reports the template's own capabilities."""
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "tools": tools, "stream": False,
            "options": {"num_predict": 8}}  # fmt: skip
    served = httpx.post(server.url + "/api/chat", json=body, timeout=60)
    assert served.status_code == 200 and served.json()["done"] is True
    shown = httpx.post(server.url + "/api/show", json={"model": MODEL}, timeout=60).json()
    assert "tools" not in shown["capabilities"]
    accepted = httpx.post(server.url + "/api/chat", json={**body, "model": tools_model,
                          "think": False, "options": {"num_predict": 8}}, timeout=60)  # fmt: skip
    assert accepted.status_code == 200 and accepted.json()["done"] is True
