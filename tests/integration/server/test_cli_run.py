"""`a3s-power run` as Ollama's: a client of the server at OLLAMA_HOST, else of the same server
started in its own process — either way a created model's SYSTEM and PARAMETER layers apply.

The prompt `run` sent is checked against the pipeline's own rendering (`_debug_render_only` of
the same request): `--verbose` prints Ollama's `prompt eval count`, which counts every prompt
token, so it must equal the token count of that rendered prompt, and the rendered prompt must
hold the SYSTEM text.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from live_server import LiveServer, add_gguf_model

from _store_helpers import free_port
from _terminal import Terminal
from a3s_power.runtime import LoadedModel

pytestmark = pytest.mark.timeout(240)
SYSTEM = "You are Captain Count. Only ever answer with numbers."
PROMPT = "Count from 1 to 20:"


@pytest.fixture(scope="module")
def captain(server: LiveServer, smollm2_path: Path) -> str:
    add_gguf_model(
        server.store, "captain", smollm2_path, {"stop": ["<|im_end|>"], "num_predict": 3, "temperature": 0},
        system=SYSTEM,
    )  # fmt: skip
    return "captain"


def _env(server: LiveServer, *, with_server: bool, home: Path | None = None, **extra: str) -> dict[str, str]:
    env = {**os.environ, "OLLAMA_MODELS": str(server.settings.models_root), **extra}
    env["OLLAMA_HOST"] = server.url if with_server else f"127.0.0.1:{free_port()}"
    if home is not None:
        env["HOME"] = str(home)
    return env


def _run(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "a3s_power", "run", *args],
        input=stdin, capture_output=True, text=True, timeout=200, env=env,
    )  # fmt: skip


def _count(stderr: str, what: str) -> int:
    match = re.search(rf"^{what} count:\s+(\d+) token\(s\)$", stderr, re.MULTILINE)
    assert match, stderr
    return int(match.group(1))


def _rendered(server: LiveServer, model: str, prompt: str) -> str:
    reply = httpx.post(
        server.url + "/api/generate",
        json={"model": model, "prompt": prompt, "stream": False, "_debug_render_only": True},
        timeout=120,
    )
    assert reply.status_code == 200, reply.text
    return str(reply.json()["_debug_info"]["rendered_template"])


@pytest.mark.parametrize("with_server", [True, False], ids=["server", "in-process"])
def test_run_applies_the_models_system_and_parameters(
    server: LiveServer, captain: str, smollm2: LoadedModel, with_server: bool
) -> None:
    rendered = _rendered(server, captain, PROMPT)
    assert SYSTEM in rendered
    proc = _run(_env(server, with_server=with_server), captain, PROMPT, "--verbose")
    assert proc.returncode == 0, proc.stderr
    assert _count(proc.stderr, "prompt eval") == len(
        smollm2.tokenize(rendered, add_special=True, parse_special=True)
    )
    assert _count(proc.stderr, "eval") == 3  # PARAMETER num_predict 3 caps the reply
    assert proc.stdout.strip() and proc.stdout.endswith("\n\n")
    assert re.search(r"^total duration: +\d", proc.stderr, re.MULTILINE)
    # an option from the command line goes over the model's PARAMETER
    more = _run(_env(server, with_server=with_server), captain, PROMPT, "--verbose", "-n", "5")
    assert more.returncode == 0, more.stderr
    assert _count(more.stderr, "eval") == 5


def test_run_on_a_server_leaves_the_model_loaded_for_keepalive(server: LiveServer, captain: str) -> None:
    proc = _run(_env(server, with_server=True), captain, "Hi", "--keepalive", "7m")
    assert proc.returncode == 0, proc.stderr
    running = httpx.get(server.url + "/api/ps").json()["models"]
    entry = next(m for m in running if m["name"].startswith("captain"))
    expires = dt.datetime.fromisoformat(entry["expires_at"].replace("Z", "+00:00"))
    left = (expires - dt.datetime.now(dt.UTC)).total_seconds()
    assert 6 * 60 < left <= 7 * 60 + 5  # held for the keepalive the run asked for (not the 5m default)
    bad = _run(_env(server, with_server=True), captain, "Hi", "--keepalive", "soon")
    assert bad.returncode == 1 and bad.stderr == 'Error: time: invalid duration "soon"\n'


def test_piped_stdin_goes_before_the_prompt_and_flags_are_checked(server: LiveServer, captain: str) -> None:
    env = _env(server, with_server=True)
    piped = _run(env, captain, "and then 21", "--verbose", stdin=PROMPT)
    assert piped.returncode == 0, piped.stderr
    assert _count(piped.stderr, "prompt eval") > 0
    think = _run(env, captain, "hi", "--think")
    assert think.returncode == 1 and think.stderr == 'Error: "captain" does not support thinking\n'
    level = _run(env, captain, "hi", "--think=extreme")
    assert level.returncode == 1
    assert level.stderr == (
        'Error: invalid value for --think: "extreme" (must be true, false, high, medium, low, or max)\n'
    )
    json_reply = _run(env, captain, "Give me a JSON object.", "--format", "json", "-n", "8")
    assert json_reply.returncode == 0, json_reply.stderr
    assert json_reply.stdout.lstrip().startswith("{")


def test_thinking_is_shown_apart_and_can_be_hidden(server: LiveServer, tools_model: str) -> None:
    env = _env(server, with_server=True)
    shown = _run(env, tools_model, "What is 2+2?", "-n", "6", "--temperature", "0")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("Thinking...\n")  # plain text: stdout is not a terminal
    hidden = _run(env, tools_model, "What is 2+2?", "-n", "6", "--temperature", "0", "--hidethinking")
    assert hidden.returncode == 0, hidden.stderr
    assert "Thinking..." not in hidden.stdout
    off = _run(env, tools_model, "What is 2+2?", "-n", "6", "--temperature", "0", "--think=false")
    assert off.returncode == 0 and "Thinking..." not in off.stdout


def test_help_and_delete_aliases(server: LiveServer, smollm2_path: Path) -> None:
    helped = subprocess.run(
        [sys.executable, "-m", "a3s_power", "help"], capture_output=True, text=True, timeout=60
    )
    assert helped.returncode == 0 and "run" in helped.stdout and "serve" in helped.stdout
    add_gguf_model(server.store, "doomed", smollm2_path)
    env = _env(server, with_server=True)
    deleted = subprocess.run(
        [sys.executable, "-m", "a3s_power", "delete", "doomed"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout == "deleted 'doomed'\n"
    assert server.store.find("doomed") is None


@pytest.mark.parametrize("with_server", [True, False], ids=["server", "in-process"])
def test_repl_commands_save_load_and_history(
    server: LiveServer, captain: str, tmp_path: Path, with_server: bool
) -> None:
    saved = f"captain-saved-{'s' if with_server else 'p'}"
    env = _env(server, with_server=with_server, home=tmp_path)
    term = Terminal([sys.executable, "-m", "a3s_power", "run", captain], env)
    try:
        term.expect(">>> ")
        term.send("/set think")
        assert 'warning: model "captain" does not support thinking output' in term.expect(">>> ")
        term.send("/set nothink")
        assert "Set 'nothink' mode." in term.expect(">>> ")
        term.send("/set format json")
        assert "Set format to 'json' mode." in term.expect(">>> ")
        term.send("/set noformat")
        term.expect(">>> ")
        term.send("/show system")
        assert SYSTEM in term.expect(">>> ")
        term.send("/set parameter num_predict 2")
        assert "Set parameter 'num_predict' to '2'" in term.expect(">>> ")
        term.send("Count from 1 to 20:")
        assert term.expect(">>> ").strip()
        term.send(f"/save {saved}")
        assert f"Created new model '{saved}'" in term.expect(">>> ")
        term.send(f"/load {saved}")
        assert f"Loading model '{saved}'" in term.expect(">>> ")
        term.send("/load no-such-model")
        assert "Couldn't find model 'no-such-model'" in term.expect(">>> ")
        term.send("/bye")
        assert term.proc.wait(timeout=30) == 0
    finally:
        term.close()
    shown = httpx.post(server.url + "/api/show", json={"model": saved}).json()
    assert shown["system"] == SYSTEM
    assert "num_predict                    2" in shown["parameters"]
    assert [m["role"] for m in shown["messages"]] == ["user", "assistant"]
    assert shown["messages"][0]["content"] == "Count from 1 to 20:"
    history = (tmp_path / ".ollama" / "history").read_text()
    assert "Count from 1 to 20:" in history and f"/save {saved}" in history


def test_repl_without_history(server: LiveServer, captain: str, tmp_path: Path) -> None:
    env = _env(server, with_server=True, home=tmp_path, OLLAMA_NOHISTORY="1")
    term = Terminal([sys.executable, "-m", "a3s_power", "run", captain], env)
    try:
        term.expect(">>> ")
        term.send("/set verbose")
        term.expect(">>> ")
        term.send("/bye")
        assert term.proc.wait(timeout=30) == 0
    finally:
        term.close()
    assert not (tmp_path / ".ollama" / "history").exists()
