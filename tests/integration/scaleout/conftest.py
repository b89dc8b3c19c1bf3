"""Scale-out fixtures: `a3s-power rpc-server` worker processes (on 127.0.0.1 or inside network
namespaces) and live servers that split models across them."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))

from _store_helpers import free_port  # noqa: E402


class Worker:
    """One `a3s-power rpc-server` process (optionally run inside a network namespace)."""

    def __init__(
        self, log_dir: Path, *, host: str = "127.0.0.1", port: int = 0, netns: str = "", mem_mb: int = 0
    ) -> None:
        self.host = host
        self.port = port or free_port()
        self.endpoint = f"{host}:{self.port}"
        cmd = [sys.executable, "-m", "a3s_power", "rpc-server", "--host", host, "--port", str(self.port),
               "--threads", "1", "--mem", str(mem_mb)]  # fmt: skip
        if netns:
            cmd = ["ip", "netns", "exec", netns, *cmd]
        self.log_path = log_dir / f"worker-{host}-{self.port}.log"
        self.log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        self._wait_ready()

    def _wait_ready(self) -> None:
        from a3s_power.runtime.rpc import RpcWorkerError, probe

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rpc-server exited: {self.log_path.read_text(errors='replace')}")
            try:
                probe(self.endpoint, timeout=2)
                return
            except RpcWorkerError:
                time.sleep(0.2)
        raise TimeoutError(f"rpc-server on {self.endpoint} did not start")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        self.kill()
        self.log.close()


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[object]:
    """start_worker(host=..., port=..., netns=...) -> Worker; all stopped at the end."""
    started: list[Worker] = []

    def start(**kwargs: object) -> Worker:
        worker = Worker(tmp_path, **kwargs)  # type: ignore[arg-type]
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()
