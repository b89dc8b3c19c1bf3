"""Fault tests run `a3s-power serve` as a real child process, so it can be SIGKILLed and restarted on
the same store."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from _store_helpers import free_port

REPO = Path(__file__).resolve().parents[3]


class ServeProcess:
    def __init__(self, root: Path, **env: str) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        child_env = {
            **os.environ,
            "OLLAMA_HOST": f"127.0.0.1:{self.port}",
            "OLLAMA_MODELS": str(root),
            "OLLAMA_NUM_PARALLEL": "2",
            "OLLAMA_CONTEXT_LENGTH": "2048",
            **env,
        }
        self.log = root.parent / f"serve-{self.port}.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "a3s_power", "serve"],
            env=child_env,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(self.url + "/", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"serve did not start: {self.log.read_text()[-3000:]}")
            time.sleep(0.05)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


@contextlib.contextmanager
def serving(root: Path, *, check: bool = True, **env: str) -> Iterator[ServeProcess]:
    """`serve` on `root` for the block (which may SIGKILL it), stopped after it; then, unless the
    block failed or `check` is off, the store is checked (check_store)."""
    serve = ServeProcess(root, **env)
    try:
        yield serve
    finally:
        serve.stop()
    if check:
        check_store(root)


def names(url: str) -> list[str]:
    return sorted(m["name"] for m in httpx.get(url + "/api/tags", timeout=30).json()["models"])


def check_store(root: Path) -> None:
    """Every blob hashes to its name; no upload or download partial is left; every manifest's
    blobs exist."""
    import json

    blobs = root / "blobs"
    for path in blobs.iterdir():
        assert path.name.startswith("sha256-") and len(path.name) == 71, f"left behind: {path.name}"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name[7:], f"corrupt: {path.name}"
    for manifest in (root / "manifests").rglob("*"):
        if manifest.is_file():
            doc = json.loads(manifest.read_bytes())
            for layer in [doc["config"], *doc["layers"]]:
                assert (blobs / layer["digest"].replace(":", "-")).is_file(), (manifest, layer["digest"])
