"""Prometheus metrics and API keys on a live server (real clients, real model)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import ollama
import openai
import pytest
from live_server import LiveServer, add_gguf_model, server_settings
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.timeout(180)
MODEL = "smollm2:135m"
FULL = "registry.ollama.ai/library/smollm2:135m"


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_count_tokens_latency_and_requests(server: LiveServer) -> None:
    client = ollama.Client(host=server.url)
    reply = client.generate(model=MODEL, prompt="Say hello.", options={"temperature": 0, "num_predict": 8})
    response = httpx.get(server.url + "/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    samples = _samples(response.text)
    model = (("model", FULL),)
    assert samples[("a3s_power_generation_tokens_total", model)] >= reply.eval_count  # type: ignore[operator]
    assert samples[("a3s_power_prompt_tokens_total", model)] >= reply.prompt_eval_count  # type: ignore[operator]
    assert samples[("a3s_power_time_to_first_token_seconds_count", model)] >= 1
    assert samples[("a3s_power_inter_token_latency_seconds_count", model)] >= 1
    assert samples[("a3s_power_loaded_models", ())] == 1
    assert samples[("a3s_power_slots", model)] == 2
    assert samples[("a3s_power_requests_running", model)] == 0
    assert samples[("a3s_power_http_requests_total", (("route", "/api/generate"), ("status", "200")))] >= 1
    before = samples[("a3s_power_generation_tokens_total", model)]
    client.generate(model=MODEL, prompt="Say hello.", options={"temperature": 0, "num_predict": 8})
    after = _samples(httpx.get(server.url + "/metrics").text)[("a3s_power_generation_tokens_total", model)]
    assert after > before


def test_metrics_show_the_prompt_cache_and_prefix_reuse(server: LiveServer) -> None:
    """Three conversations over the server's 2 slots: the first one's state is saved to the host-RAM
    prompt cache when its slot is taken, and restored when it returns; /metrics shows the save, the
    hit, the restored tokens and the bytes held."""
    client = ollama.Client(host=server.url)
    model = (("model", FULL),)

    def ask(n: int) -> None:
        words = " ".join(f"w{n}x{i}" for i in range(120))  # ~400 tokens, distinct from the first
        prompt = f"Conversation {n}: {words}"
        client.generate(model=MODEL, prompt=prompt, raw=True, options={"num_predict": 1})

    ask(0)
    before = _samples(httpx.get(server.url + "/metrics").text)
    for n in (1, 2, 0):  # 1 and 2 take both slots (LRU: 0's first), then 0 returns
        ask(n)
    after = _samples(httpx.get(server.url + "/metrics").text)

    def delta(name: str) -> float:
        return after[(f"a3s_power_{name}", model)] - before[(f"a3s_power_{name}", model)]

    assert delta("prompt_cache_saves_total") >= 1
    assert delta("prompt_cache_hits_total") == 1
    assert delta("prompt_tokens_restored_total") >= 300
    assert after[("a3s_power_prompt_cache_bytes", model)] > 0
    assert after[("a3s_power_prompt_cache_limit_bytes", model)] == 8192 * 1024 * 1024
    assert delta("prompt_tokens_evaluated_total") < 3 * 420  # the returning prompt was not evaluated again
    assert ("a3s_power_draft_tokens_total", model) in after
    assert ("a3s_power_prompt_cache_evictions_total", model) in after


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory, smollm2_path: Path) -> Iterator[LiveServer]:
    live = LiveServer(server_settings(tmp_path_factory.mktemp("keyed") / "models", api_keys=("k1", "k2")))
    add_gguf_model(live.store, MODEL, smollm2_path, {"stop": ["<|im_end|>"]})
    yield live
    live.stop()


def test_api_keys_guard_every_family(keyed: LiveServer) -> None:
    assert httpx.get(keyed.url + "/").text == "Ollama is running"  # the heartbeat stays open
    denied = httpx.get(keyed.url + "/api/tags")
    assert denied.status_code == 401 and denied.json() == {"error": "invalid or missing API key"}
    assert httpx.get(keyed.url + "/api/tags", headers={"Authorization": "Bearer k2"}).status_code == 200
    assert httpx.get(keyed.url + "/api/tags", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert httpx.get(keyed.url + "/metrics").status_code == 401

    with pytest.raises(ollama.ResponseError) as native:
        ollama.Client(host=keyed.url).list()
    assert native.value.status_code == 401
    good = ollama.Client(host=keyed.url, headers={"Authorization": "Bearer k1"})
    assert good.generate(model=MODEL, prompt="Hi", options={"num_predict": 2}).done

    with pytest.raises(openai.AuthenticationError) as oai:
        openai.OpenAI(base_url=keyed.url + "/v1", api_key="wrong", max_retries=0).models.list()
    assert oai.value.body == {
        "message": "invalid or missing API key",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_api_key",
    }
    assert [m.id for m in openai.OpenAI(base_url=keyed.url + "/v1", api_key="k1").models.list()] == [MODEL]

    messages = [{"role": "user", "content": "Hi"}]
    with pytest.raises(anthropic.AuthenticationError) as anth:
        anthropic.Anthropic(base_url=keyed.url, api_key="wrong", max_retries=0).messages.create(
            model=MODEL, max_tokens=2, messages=messages
        )
    assert anth.value.body["error"]["type"] == "authentication_error"
    reply = anthropic.Anthropic(base_url=keyed.url, api_key="k2").messages.create(
        model=MODEL, max_tokens=2, messages=messages
    )
    assert reply.usage.output_tokens == 2
