"""One chat pipeline under every surface: the same conversation renders the same prompt on
/api/chat, /v1/chat/completions, /v1/responses and /v1/messages, with the model's SYSTEM,
MESSAGE and PARAMETER layers applied in Ollama's order; options reach the engine through the one
options type; the client-facing details (load_duration, HEAD, cancellation, FIM refusal, range
checks, the truncation warning)."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from live_server import LiveServer, add_gguf_model

MODEL = "smollm2:135m"
LAYERED = "smol-layers"
SYSTEM = "You are Weatherbot. Answer in five words."
HISTORY = [
    {"role": "user", "content": "Are you ready?"},
    {"role": "assistant", "content": "Ready for weather questions."},
]
TOOL = {
    "name": "get_weather",
    "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture(scope="module")
def layered(server: LiveServer, smollm2_path: Path) -> str:
    """SmolLM2 created with TEMPLATE (tools), SYSTEM, two MESSAGEs and PARAMETERs."""
    from fixtures.templates import CHATML_TOOLS_TEMPLATE

    add_gguf_model(
        server.store,
        LAYERED,
        smollm2_path,
        {"stop": ["<|im_end|>"], "num_predict": 3, "temperature": 0},
        template=CHATML_TOOLS_TEMPLATE,
        system=SYSTEM,
        messages=HISTORY,
    )
    return LAYERED


def _conversation(system: str | None) -> dict[str, dict[str, Any]]:
    """system (optional) + 2 user turns + a tool round trip, in each family's wire format."""
    first, answer, second = "Hello there.", "Hi! Ask me about weather.", "What is the weather in Paris?"
    result = "18 degrees and sunny"
    sys_msgs = [{"role": "system", "content": system}] if system else []
    ollama = [
        *sys_msgs,
        {"role": "user", "content": first},
        {"role": "assistant", "content": answer},
        {"role": "user", "content": second},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": "call_1", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
            ],
        },
        {"role": "tool", "content": result, "tool_name": "get_weather", "tool_call_id": "call_1"},
    ]
    openai_msgs = [
        *sys_msgs,
        {"role": "user", "content": first},
        {"role": "assistant", "content": answer},
        {"role": "user", "content": [{"type": "text", "text": second}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "content": result, "tool_call_id": "call_1"},
    ]
    responses_input = [
        {"type": "message", "role": "user", "content": first},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": answer}]},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": second}]},
        {
            "type": "function_call",
            "call_id": "call_1",
            "name": "get_weather",
            "arguments": '{"city":"Paris"}',
        },
        {"type": "function_call_output", "call_id": "call_1", "output": result},
    ]
    anthropic_msgs = [
        {"role": "user", "content": first},
        {"role": "assistant", "content": [{"type": "text", "text": answer}]},
        {"role": "user", "content": second},
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_1",
                    "content": [{"type": "text", "text": result}],
                }
            ],
        },
    ]
    tool_fn = {"type": "function", "function": TOOL}
    return {
        "/api/chat": {"messages": ollama, "tools": [tool_fn], "stream": False},
        "/v1/chat/completions": {"messages": openai_msgs, "tools": [tool_fn]},
        "/v1/responses": {
            "input": responses_input,
            "tools": [{"type": "function", **TOOL}],
            **({"instructions": system} if system else {}),
        },
        "/v1/messages": {
            "messages": anthropic_msgs,
            "max_tokens": 3,
            "tools": [
                {"name": TOOL["name"], "description": TOOL["description"], "input_schema": TOOL["parameters"]}
            ],
            **({"system": system} if system else {}),
        },
    }


def _prompt_tokens(path: str, body: dict[str, Any]) -> int:
    if path == "/api/chat":
        return int(body["prompt_eval_count"])
    if path == "/v1/chat/completions":
        return int(body["usage"]["prompt_tokens"])
    if path == "/v1/responses":
        return int(body["usage"]["input_tokens"])
    usage = body["usage"]
    return int(usage["input_tokens"] + usage["cache_read_input_tokens"])


@pytest.mark.parametrize("system", [None, "You are a pirate."], ids=["model-system", "request-system"])
def test_every_surface_renders_the_same_prompt(server: LiveServer, layered: str, system: str | None) -> None:
    rendered: dict[str, str] = {}
    counts: dict[str, int] = {}
    for path, body in _conversation(system).items():
        debug = httpx.post(
            server.url + path, json={"model": layered, **body, "_debug_render_only": True}, timeout=120
        )
        assert debug.status_code == 200, debug.text
        rendered[path] = debug.json()["_debug_info"]["rendered_template"]
        ran = httpx.post(server.url + path, json={"model": layered, **body}, timeout=120)
        assert ran.status_code == 200, ran.text
        counts[path] = _prompt_tokens(path, ran.json())
    assert len(set(rendered.values())) == 1, rendered
    assert len(set(counts.values())) == 1, counts  # the same tokens were evaluated (or reused)
    prompt = rendered["/api/chat"]
    # Ollama's order (ChatHandler): the MESSAGE history, then the request's messages; SYSTEM first
    # only when the request does not start with its own system message, which stays after the
    # history
    history = prompt.index(HISTORY[0]["content"])
    assert history < prompt.index(HISTORY[1]["content"]) < prompt.index("Hello there.")
    if system is None:
        assert prompt.index(SYSTEM) < history
    else:
        assert SYSTEM not in prompt
        assert history < prompt.index(system) < prompt.index("Hello there.")
    assert prompt.index("Hello there.") < prompt.index('"city": "Paris"') < prompt.index("18 degrees")
    assert "get_weather" in prompt.split("Hello there.")[0]  # the tools are described up front


def test_parameter_defaults_lie_under_request_options(server: LiveServer, layered: str) -> None:
    """PARAMETER num_predict 3 caps a reply on every surface; a request's own value wins."""
    capped = httpx.post(
        server.url + "/api/chat",
        json={
            "model": layered,
            "stream": False,
            "messages": [{"role": "user", "content": "Tell me a long story."}],
        },
        timeout=120,
    ).json()
    assert capped["eval_count"] == 3 and capped["done_reason"] == "length"
    openai_capped = httpx.post(
        server.url + "/v1/chat/completions",
        json={"model": layered, "messages": [{"role": "user", "content": "Tell me a long story."}]},
        timeout=120,
    )
    assert openai_capped.json()["usage"]["completion_tokens"] == 3
    longer = httpx.post(
        server.url + "/api/chat",
        json={
            "model": layered,
            "stream": False,
            "options": {"num_predict": 6},
            "messages": [{"role": "user", "content": "Tell me a long story."}],
        },
        timeout=120,
    ).json()
    assert longer["eval_count"] == 6


def test_generate_debug_render_only_shows_the_system(server: LiveServer, layered: str) -> None:
    body = {"model": layered, "prompt": "Weather?", "_debug_render_only": True}
    shown = httpx.post(server.url + "/api/generate", json=body, timeout=120).json()
    prompt = shown["_debug_info"]["rendered_template"]
    assert shown["done"] is False and shown["response"] == ""
    assert prompt.index(SYSTEM) < prompt.index(HISTORY[0]["content"]) < prompt.index("Weather?")
    own = httpx.post(server.url + "/api/generate", json={**body, "system": "Be brief."}, timeout=120).json()
    assert SYSTEM not in own["_debug_info"]["rendered_template"]
    assert "Be brief." in own["_debug_info"]["rendered_template"]


def test_options_reach_the_engine(server: LiveServer) -> None:
    """num_ctx from an /api/chat body loads the runner with it; top_k 1 makes a hot sampler greedy."""
    messages = [{"role": "user", "content": "Name three colors."}]
    greedy = httpx.post(
        server.url + "/api/chat",
        json={
            "model": MODEL,
            "messages": messages,
            "stream": False,
            "options": {"num_ctx": 1024, "temperature": 0, "num_predict": 12},
        },
        timeout=120,
    ).json()
    (runner,) = [r for r in server.scheduler.loaded() if r.key.endswith(MODEL)]
    assert runner.spec.num_ctx == 1024 and runner.loaded.engine.n_ctx == 1024
    for seed in (1, 2):
        hot = httpx.post(
            server.url + "/api/chat",
            json={
                "model": MODEL,
                "messages": messages,
                "stream": False,
                "options": {"num_ctx": 1024, "temperature": 1.8, "top_k": 1, "seed": seed, "num_predict": 12},
            },
            timeout=120,
        ).json()
        assert hot["message"]["content"] == greedy["message"]["content"]


def test_load_duration_in_every_final_object(server: LiveServer) -> None:
    body = {"model": MODEL, "prompt": "Hi", "stream": False, "options": {"num_predict": 2}}
    for _ in range(2):  # the second time the model is already loaded: still reported, never 0
        final = httpx.post(server.url + "/api/generate", json=body, timeout=120).json()
        assert final["load_duration"] > 0 and final["total_duration"] >= final["load_duration"]
    with httpx.stream(
        "POST",
        server.url + "/api/chat",
        json={"model": MODEL, "options": {"num_predict": 2}, "messages": [{"role": "user", "content": "Hi"}]},
        timeout=120,
    ) as response:
        import orjson

        lines = [orjson.loads(line) for line in response.iter_lines() if line]
    assert lines[-1]["done"] and lines[-1]["load_duration"] > 0


@pytest.mark.parametrize("path", ["/metrics", "/api/ps", "/v1/models", "/api/tags", "/api/version", "/"])
def test_head_on_get_routes(server: LiveServer, path: str) -> None:
    response = httpx.head(server.url + path, timeout=30)
    assert response.status_code == 200 and response.content == b""


def test_suffix_needs_fim_tokens(server: LiveServer) -> None:
    """SmolLM2 has no fill-in-the-middle tokens: Ollama's refusal, on both surfaces."""
    native = httpx.post(
        server.url + "/api/generate",
        json={"model": MODEL, "prompt": "def f(", "suffix": "  return x", "stream": False},
        timeout=120,
    )
    assert native.status_code == 400
    assert re.fullmatch(r"\S+smollm2:135m does not support insert", native.json()["error"])
    openai = httpx.post(
        server.url + "/v1/completions", json={"model": MODEL, "prompt": "def f(", "suffix": "x"}, timeout=120
    )
    assert openai.status_code == 400 and "does not support insert" in openai.json()["error"]["message"]


BIG = 2**63
OPTION_CASES = [
    ({"num_predict": BIG}, "num_predict"),
    ({"top_k": 2**31}, "top_k"),
    ({"seed": 2**64}, "seed"),
    ({"num_batch": 2**31}, "num_batch"),
    ({"repeat_last_n": 2**31}, "repeat_last_n"),
    ({"num_keep": 2**31}, "num_keep"),
    ({"repeat_penalty": 1e308}, "repeat_penalty"),
    ({"presence_penalty": -1e308}, "presence_penalty"),
    ({"num_predict": "12"}, "num_predict"),
    ({"num_predict": [1]}, "num_predict"),
    ({"num_predict": {"a": 1}}, "num_predict"),
    ({"num_predict": True}, "num_predict"),
]


@pytest.mark.parametrize(("options", "field"), OPTION_CASES)
def test_out_of_range_options_are_400_naming_the_field(
    server: LiveServer, options: dict[str, Any], field: str
) -> None:
    body = {"model": MODEL, "prompt": "Hi", "stream": False, "options": options}
    response = httpx.post(server.url + "/api/generate", json=body, timeout=60)
    assert response.status_code == 400 and f'option "{field}"' in response.json()["error"]


@pytest.mark.parametrize(
    ("path", "body", "needle"),
    [
        (
            "/v1/chat/completions",
            {"messages": [{"role": "user", "content": "x"}], "max_tokens": -1},
            "max_tokens",
        ),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "max_tokens": BIG}, ""),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "seed": 2**64}, ""),
        ("/v1/messages", {"messages": [{"role": "user", "content": "x"}], "max_tokens": -1}, "max_tokens"),
        ("/v1/messages", {"messages": [{"role": "user", "content": 123}], "max_tokens": 5}, "content"),
        ("/v1/messages", {"messages": [{"role": "user", "content": "x"}], "max_tokens": BIG}, ""),
    ],
)
def test_compat_limits_are_400_in_their_envelope(
    server: LiveServer, path: str, body: dict[str, Any], needle: str
) -> None:
    response = httpx.post(server.url + path, json={"model": MODEL, **body}, timeout=60)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and needle in error["message"]


def test_abandoned_non_streaming_requests_free_their_slots(server: LiveServer) -> None:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Count."}],
        "max_tokens": 4000,
        "ignore_eos": True,
    }
    httpx.post(server.url + "/v1/chat/completions", json={**body, "max_tokens": 1}, timeout=120)  # loaded
    for _ in range(4):  # more than the server's 2 slots
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(server.url + "/v1/chat/completions", json=body, timeout=httpx.Timeout(60, read=0.5))
    (runner,) = [r for r in server.scheduler.loaded() if r.key.endswith(MODEL)]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        stats = runner.loaded.stats()
        if stats.n_active == 0 and stats.n_queued == 0 and runner.refs == 0:
            break
        time.sleep(0.1)
    assert (stats.n_active, stats.n_queued, runner.refs) == (0, 0, 0)
    started = time.monotonic()
    quick = httpx.post(server.url + "/v1/chat/completions", json={**body, "max_tokens": 2}, timeout=60)
    assert quick.status_code == 200 and time.monotonic() - started < 30


def test_truncated_prompt_is_logged(server: LiveServer, caplog: pytest.LogCaptureFixture) -> None:
    body = {"model": MODEL, "prompt": "word " * 2500, "stream": False, "options": {"num_predict": 1}}
    with caplog.at_level(logging.WARNING, logger="a3s_power.service.chat"):
        response = httpx.post(server.url + "/api/generate", json=body, timeout=180)
    assert response.status_code == 200
    warnings = [r.getMessage() for r in caplog.records if "truncating input prompt" in r.getMessage()]
    assert warnings and re.search(r"limit=2048 prompt=\d+ keep=4 new=\d+", warnings[0])


def test_the_pipeline_in_process(tmp_path: Path, smollm2_path: Path) -> None:
    """What the CLI uses without a server: a ServerState of its own, run_chat and render_only."""
    import asyncio

    from a3s_power.chat.reply import ReplyDelta
    from a3s_power.config import Settings
    from a3s_power.service.chat import ReplyEnd, render_only, run_chat
    from a3s_power.service.job import ChatJob, ChatMessage
    from a3s_power.service.state import ServerState
    from a3s_power.store.store import ModelStore

    settings = Settings(models_root=tmp_path / "models", num_parallel=1, context_length=1024, noprune=True)
    state = ServerState.create(settings, ModelStore(settings.models_root, env={}))
    add_gguf_model(state.store, "smol-cli", smollm2_path, {"num_predict": 3, "temperature": 0}, system=SYSTEM)

    async def run() -> tuple[str, ReplyDelta, ReplyEnd]:
        job = ChatJob(model="smol-cli", messages=[ChatMessage("user", "Tell me a long story.")])
        prompt = await render_only(state, job)
        whole, end = ReplyDelta(), None
        async for event in run_chat(state, ChatJob(model="smol-cli", messages=job.messages)):
            whole.add(event.delta)
            end = event if isinstance(event, ReplyEnd) else end
        await state.scheduler.shutdown()
        assert end is not None
        return prompt.text, whole, end

    text, whole, end = asyncio.run(run())
    assert text.index(SYSTEM) < text.index("Tell me a long story.")
    assert whole.content and end.completion.eval_count == 3 and end.done_reason == "length"
    assert end.load_duration > 0


def test_fill_in_the_middle_prompt_layout(server: LiveServer, smollm2: Any) -> None:
    """With FIM tokens (here three of SmolLM2's special tokens standing in for them): prefix token,
    the prompt, suffix token, the suffix, middle token; no chat template."""
    from dataclasses import fields

    from a3s_power.runtime.loaded import LoadedModel
    from a3s_power.service.chat import plan_chat, render
    from a3s_power.service.job import ChatJob, ChatMessage
    from a3s_power.service.state import state_of

    pre, suf, mid = (smollm2.tokenize(t, add_special=False, parse_special=True)[0]
                     for t in ("<|im_start|>", "<|im_end|>", "<|endoftext|>"))  # fmt: skip

    class WithFim(LoadedModel):
        def fim_tokens(self) -> tuple[int, int, int]:
            return pre, suf, mid

    loaded = WithFim(**{f.name: getattr(smollm2, f.name) for f in fields(LoadedModel)})
    job = ChatJob(model=MODEL, messages=[ChatMessage("user", "def add(a, b):")], prompt_mode=True,
                  suffix="    return c", what="generate")  # fmt: skip
    prompt = render(loaded, plan_chat(state_of(server.app), job))
    body = [t for t in prompt.tokens if t != smollm2.info.bos_token or not smollm2.info.add_bos]
    expected = [pre, *smollm2.tokenize("def add(a, b):", add_special=False), suf,
                *smollm2.tokenize("    return c", add_special=False), mid]  # fmt: skip
    assert body == expected and prompt.render is None


def test_run_renders_the_same_prompt_as_every_surface(server: LiveServer, layered: str) -> None:
    """`a3s-power run` (a client of this server through OLLAMA_HOST) evaluates the same prompt as
    the four HTTP surfaces for the same conversation: the model's SYSTEM and MESSAGE history, then
    one user turn (`run` sends no tools, so none of the requests here does)."""
    import os
    import subprocess
    import sys

    text = "Hello there."
    bodies = {
        "/api/chat": {"messages": [{"role": "user", "content": text}], "stream": False},
        "/v1/chat/completions": {"messages": [{"role": "user", "content": text}]},
        "/v1/responses": {"input": text},
        "/v1/messages": {"messages": [{"role": "user", "content": text}], "max_tokens": 3},
    }
    rendered, counts = set(), {}
    for path, body in bodies.items():
        debug = httpx.post(
            server.url + path, json={"model": layered, **body, "_debug_render_only": True}, timeout=120
        )
        rendered.add(debug.json()["_debug_info"]["rendered_template"])
        ran = httpx.post(server.url + path, json={"model": layered, **body}, timeout=120)
        counts[path] = _prompt_tokens(path, ran.json())
    env = {**os.environ, "OLLAMA_HOST": server.url}
    run = subprocess.run(
        [sys.executable, "-m", "a3s_power", "run", layered, text, "--verbose"],
        capture_output=True, text=True, timeout=200, env=env,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    match = re.search(r"^prompt eval count:\s+(\d+) token\(s\)$", run.stderr, re.MULTILINE)
    assert match, run.stderr
    counts["a3s-power run"] = int(match.group(1))
    assert len(rendered) == 1 and SYSTEM in next(iter(rendered))
    assert len(set(counts.values())) == 1, counts
