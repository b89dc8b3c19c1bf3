"""Server processes the benchmarks start, wait for and stop: one place for llama-server's command
line (the settings every comparison shares), a free port on 127.0.0.1, readiness polling, the stop
(SIGTERM, then SIGKILL) and a streamed llama-server `/completion`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def llama_server_cmd(
    exe: Path,
    model: Path,
    threads: int,
    num_ctx: int,
    parallel: int,
    port: int,
    *,
    batch: int = 2048,
    ubatch: int = 512,
    flags: tuple[str, ...] = ("--metrics",),
    extra: list[str] | None = None,
) -> list[str]:
    """llama-server as every comparison runs it: `parallel` slots of `num_ctx` in one unified KV
    cache, the same threads for prompt and decode, flash attention auto, full SWA cache."""
    return [
        str(exe),
        "-m", str(model),
        "-t", str(threads),
        "-tb", str(threads),
        "-c", str(num_ctx * parallel),
        "--parallel", str(parallel),
        "--kv-unified",
        "-b", str(batch),
        "-ub", str(ubatch),
        "-fa", "auto",
        "--swa-full",
        "--no-webui",
        *flags,
        "--host", HOST,
        "--port", str(port),
        *(extra or []),
    ]  # fmt: skip


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 20 s."""
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class ServerProcess:
    """A server process on 127.0.0.1 (output appended to `log`) with an httpx client for it."""

    def __init__(
        self,
        name: str,
        cmd: list[str],
        port: int,
        log: Path,
        *,
        env: dict[str, str] | None = None,
        timeout: float = 600.0,
    ) -> None:
        self.name, self.port, self.cmd = name, port, cmd
        self.base = f"http://{HOST}:{port}"
        self.log = log.open("ab")
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.pids = [self.proc.pid]
        self.client = httpx.AsyncClient(
            base_url=self.base,
            timeout=httpx.Timeout(timeout),
            # one connection per request: llama-server dropped a reused keep-alive one mid-run
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=0),
        )

    async def wait_ready(self, path: str = "/health", timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; see {self.log.name}")
            with contextlib.suppress(httpx.TransportError):
                if (await self.client.get(path)).status_code == 200:
                    return
            await asyncio.sleep(0.2)
        raise TimeoutError(f"{self.name} did not become ready")

    async def close(self) -> None:
        await self.client.aclose()
        stop_process(self.proc)
        self.log.close()


@dataclass
class Streamed:
    """One streamed llama-server `/completion`: times in perf_counter seconds."""

    t0: float  # request sent
    ttft: float  # first content, after t0
    last: float  # last event, after t0
    end: float  # stream closed (absolute)
    text: str
    timings: dict[str, Any]  # the final event's `timings`


async def stream_completion(client: httpx.AsyncClient, body: dict[str, Any]) -> Streamed:
    t0 = time.perf_counter()
    ttft = last = 0.0
    parts: list[str] = []
    final: dict[str, Any] = {}
    async with client.stream("POST", "/completion", json=body) as resp:
        resp.raise_for_status()
        async for line in resp.aiter_lines():
            if not line.startswith("data: "):
                continue
            ev = json.loads(line[6:])
            now = time.perf_counter() - t0
            if ev.get("content") or ev.get("tokens"):
                if not ttft:
                    ttft = now
                last = now
            parts.append(ev.get("content", ""))
            if ev.get("stop"):
                final = ev
    return Streamed(t0, ttft, last, time.perf_counter(), "".join(parts), final.get("timings", {}))
