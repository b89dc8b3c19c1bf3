"""`a3s-power run MODEL` on a terminal (a pty): an interactive chat that keeps the conversation."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.timeout(120)


class Terminal:
    def __init__(self, args: list[str]) -> None:
        self.master, slave = pty.openpty()
        env = {**os.environ, "TERM": "dumb"}
        self.proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
        os.close(slave)
        self.buffer = b""

    def expect(self, text: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while text.encode() not in self.buffer:
            assert time.monotonic() < deadline, f"no {text!r} in {self.buffer[-500:]!r}"
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if ready:
                try:
                    self.buffer += os.read(self.master, 4096)
                except OSError:
                    break
        head, _, self.buffer = self.buffer.partition(text.encode())
        return head.decode(errors="replace")

    def send(self, line: str) -> None:
        os.write(self.master, line.encode() + b"\n")


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
        ]
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


def test_second_turn_carries_the_first(smollm2: object) -> None:
    import io

    from a3s_power.cli.repl import Session, run_session
    from a3s_power.runtime import Completion, GenerationOptions

    lines = iter(["/set verbose", "My name is Ada.", "What is my name?"])
    finals: list[Completion] = []

    def read(prompt: str) -> str:
        try:
            return next(lines)
        except StopIteration:
            raise EOFError from None

    session = Session()
    out = io.StringIO()
    run_session(
        smollm2,
        GenerationOptions(temperature=0, num_predict=8),
        read=read,
        out=out,  # type: ignore[arg-type]
        stats=finals.append,
        session=session,
    )
    assert [m["role"] for m in session.messages] == ["user", "assistant", "user", "assistant"]
    assert session.messages[0]["content"] == "My name is Ada."
    assert len(finals) == 2
    first, second = finals
    # turn 2's prompt holds all of turn 1 (prompt + reply): the engine found it already cached
    assert second.cached_tokens >= first.prompt_eval_count + first.cached_tokens
