"""`a3s-power run MODEL` on a terminal (a pty): an interactive chat that keeps the conversation."""

from __future__ import annotations

import os
import re
import sys

import pytest

from _terminal import Terminal

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(autouse=True)
def _no_server_at_ollama_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """`run` is a client of the server at OLLAMA_HOST when one answers; these test its in-process
    kind, so OLLAMA_HOST names a port nothing listens on."""
    from _store_helpers import free_port

    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{free_port()}")


def test_interactive_chat_keeps_context_and_commands(smollm2_path: object) -> None:
    term = Terminal(
        [
            sys.executable,
            "-m",
            "a3s_power",
            "run",
            "smollm2:135m",
            "--temperature",
            "0",
            "--num-predict",
            "12",
        ],
        timeout=60,
    )
    try:
        term.expect(">>> ")
        term.send("/set parameter num_predict 6")
        assert "Set parameter 'num_predict' to '6'" in term.expect(">>> ")
        term.send("My name is Ada. Say hello.")
        first = term.expect(">>> ")
        assert first.strip()
        term.send('"""What is')
        term.expect("... ")
        term.send('my name?"""')
        second = term.expect(">>> ")
        assert second.strip()
        term.send("/clear")
        assert "Cleared session context" in term.expect(">>> ")
        term.send("/bye")
        assert term.proc.wait(timeout=30) == 0
    finally:
        if term.proc.poll() is None:
            term.proc.kill()
        os.close(term.master)


def test_second_turn_carries_the_first(smollm2_path: object) -> None:
    """The loop over a client (here the in-process server `run` starts for a GGUF file): each turn
    is one /api/chat with the whole conversation, so turn 2's prompt holds all of turn 1."""
    import io
    from pathlib import Path

    from a3s_power.cli._client import Client
    from a3s_power.cli._inprocess import local_server
    from a3s_power.cli.repl import Session, run_session

    lines = iter(["/set verbose", "/set parameter num_predict 8", "/set parameter temperature 0",
                  "My name is Ada.", "What is my name?"])  # fmt: skip

    def read(prompt: str) -> str:
        try:
            return next(lines)
        except StopIteration:
            raise EOFError from None

    assert isinstance(smollm2_path, Path)
    with local_server(("smol", smollm2_path)) as url:
        client = Client(url)
        session = Session(model="smol")
        out, err = io.StringIO(), io.StringIO()
        run_session(client, session, read=read, out=out, err=err)  # type: ignore[arg-type]
        client.close()
    assert [m["role"] for m in session.messages] == ["user", "assistant", "user", "assistant"]
    assert session.messages[0]["content"] == "My name is Ada."
    counts = [int(x) for x in re.findall(r"^prompt eval count: +(\d+) token", err.getvalue(), re.MULTILINE)]
    replies = [int(x) for x in re.findall(r"^eval count: +(\d+) token", err.getvalue(), re.MULTILINE)]
    assert len(counts) == 2 and len(replies) == 2
    assert counts[1] > counts[0] + replies[0]  # turn 1's prompt and reply, then the new question
