"""A pty to drive `a3s-power run`'s REPL as a terminal would (the tests that chat interactively)."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time


class Terminal:
    def __init__(self, args: list[str], env: dict[str, str] | None = None, timeout: float = 90) -> None:
        self.master, slave = pty.openpty()
        env = {**(os.environ if env is None else env), "TERM": "dumb"}
        self.proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
        os.close(slave)
        self.buffer = b""
        self.timeout = timeout

    def expect(self, text: str, timeout: float | None = None) -> str:
        """Everything before `text`, once it has been printed (fails after `timeout` seconds)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while text.encode() not in self.buffer:
            assert time.monotonic() < deadline, f"no {text!r} in {self.buffer[-600:]!r}"
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

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        os.close(self.master)
