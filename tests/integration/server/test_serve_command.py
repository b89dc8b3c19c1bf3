"""`a3s-power serve` as users start it: a subprocess configured by OLLAMA_* variables."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import ollama
import pytest
from live_server import add_gguf_model

from _store_helpers import free_port
from a3s_power.store.store import ModelStore

pytestmark = pytest.mark.timeout(120)


def test_serve_answers_ollama_clients_and_stops_cleanly(tmp_path: Path, smollm2_path: Path) -> None:
    root = tmp_path / "models"
    add_gguf_model(ModelStore(root, env={}), "smol", smollm2_path)
    port = free_port()
    env = {**os.environ, "OLLAMA_HOST": f"127.0.0.1:{port}", "OLLAMA_MODELS": str(root),
           "OLLAMA_CONTEXT_LENGTH": "1024"}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "a3s_power", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/", timeout=1).text == "Ollama is running":
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "server did not come up"
            time.sleep(0.1)
        client = ollama.Client(host=url)
        reply = client.generate(model="smol", prompt="Say hi.", options={"temperature": 0, "num_predict": 8})
        assert reply.done and reply.eval_count and reply.response
        assert [m.context_length for m in client.ps().models] == [1024]
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert b"A3S Power listening on 127.0.0.1:" + str(port).encode() in out
