"""RPC workers on 127.0.0.1 (the variant CI always runs): SmolLM2 split across this process and two
`a3s-power rpc-server` processes gives the local greedy output; `ps` / `show` list the devices; a
worker that is down, speaks another protocol or dies mid-stream is a clean error and `serve` goes on."""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from live_server import LiveServer, add_gguf_model, server_settings

from _scaleout_helpers import GENERATE_OPTIONS
from _store_helpers import free_port

PROMPTS = ["The capital of France is", "Once upon a time, there was a little"]
STOP = {"stop": ["<|im_end|>"]}


def _server(tmp_path: Path, smollm2_path: Path, workers: tuple[str, ...]) -> LiveServer:
    settings = replace(
        server_settings(tmp_path / "models"), rpc_servers=workers, num_parallel=1, num_thread=1
    )
    live = LiveServer(settings)
    add_gguf_model(live.store, "smol-split", smollm2_path, {**STOP, "tensor_split": "1,1,1"})
    add_gguf_model(live.store, "smol-local", smollm2_path, {**STOP, "tensor_split": "1"})
    return live


def _generate(url: str, model: str, prompt: str, **options: object) -> httpx.Response:
    body = {"model": model, "prompt": prompt, "stream": False, "options": {**GENERATE_OPTIONS, **options}}
    return httpx.post(url + "/api/generate", json=body, timeout=300)


def test_split_output_equals_local_greedy_and_ps_lists_devices(
    tmp_path: Path, smollm2_path: Path, start_worker
) -> None:
    w1, w2 = start_worker(), start_worker()
    live = _server(tmp_path, smollm2_path, (w1.endpoint, w2.endpoint))
    try:
        for prompt in PROMPTS:
            local = _generate(live.url, "smol-local", prompt)
            split = _generate(live.url, "smol-split", prompt)
            assert local.status_code == split.status_code == 200, (local.text, split.text)
            assert split.json()["eval_count"] == local.json()["eval_count"] == GENERATE_OPTIONS["num_predict"]
            assert split.json()["response"] == local.json()["response"]
            assert split.json()["response"].strip()
        ps = {m["name"]: m for m in httpx.get(live.url + "/api/ps").json()["models"]}
        assert "devices" not in ps["smol-local:latest"]  # tensor_split 1: no worker share, a local load
        devices = {d["name"]: d for d in ps["smol-split:latest"]["devices"]}
        assert set(devices) == {"CPU", "RPC0", "RPC1"}
        assert {devices["RPC0"]["endpoint"], devices["RPC1"]["endpoint"]} == {w1.endpoint, w2.endpoint}
        for name in ("RPC0", "RPC1"):
            assert devices[name]["weights"] > 0 and devices[name]["kv_cache"] > 0
            assert devices[name]["size"] >= devices[name]["weights"] + devices[name]["kv_cache"]
        assert ps["smol-split:latest"]["size_vram"] == devices["RPC0"]["size"] + devices["RPC1"]["size"]
        shown = httpx.post(live.url + "/api/show", json={"model": "smol-split"}).json()
        assert {d["name"] for d in shown["devices"]} == {"CPU", "RPC0", "RPC1"}
        assert "tensor_split" in shown["parameters"]
    finally:
        live.stop()


def test_worker_down_at_load_is_an_error_naming_it(tmp_path: Path, smollm2_path: Path, start_worker) -> None:
    up = start_worker()
    down = f"127.0.0.1:{free_port()}"
    live = _server(tmp_path, smollm2_path, (up.endpoint, down))
    try:
        resp = _generate(live.url, "smol-split", "Hello", tensor_split="1,1,1")
        assert resp.status_code == 500
        error = resp.json()["error"]
        assert down in error and "not reachable" in error and "connection refused" in error, error
        assert up.endpoint not in error
        assert _generate(live.url, "smol-local", "Hello", num_predict=4).status_code == 200  # still serving
        assert up.proc.poll() is None
    finally:
        live.stop()


class _FakeWorker:
    """A TCP server on 127.0.0.1 that answers HELLO with another protocol version, or hangs up."""

    def __init__(self, version: tuple[int, int, int] | None) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.version = version
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.recv(64)
                if self.version is not None:
                    conn.sendall(struct.pack("<Q", 28) + bytes([*self.version, 0]) + bytes(24))

    def close(self) -> None:
        self.sock.close()


def test_protocol_mismatch_and_a_non_worker_are_clear_errors() -> None:
    from a3s_power.runtime.rpc import RpcWorkerError, probe, protocol

    ours = ".".join(map(str, protocol()))
    old = _FakeWorker((protocol()[0] - 1, 9, 0))
    mute = _FakeWorker(None)
    try:
        with pytest.raises(
            RpcWorkerError,
            match=rf"{old.endpoint} speaks protocol {protocol()[0] - 1}\.9\.0; this build speaks {ours}",
        ):
            probe(old.endpoint)
        with pytest.raises(RpcWorkerError, match=rf"{mute.endpoint} failed the handshake .*protocol {ours}"):
            probe(mute.endpoint)
    finally:
        old.close()
        mute.close()


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "a3s_power", *args], capture_output=True, text=True, timeout=timeout
    )


def test_rpc_server_cli_errors_and_warning(start_worker) -> None:
    busy = start_worker()
    taken = _cli("rpc-server", "--port", str(busy.port))
    assert taken.returncode == 1
    assert f"cannot listen on {busy.endpoint}: address already in use" in taken.stderr
    bad_host = _cli("rpc-server", "--host", "not-an-address", "--port", str(free_port()))
    assert bad_host.returncode == 1 and "invalid host address 'not-an-address'" in bad_host.stderr
    bad_device = _cli("rpc-server", "--device", "NOPE0", "--port", str(free_port()))
    assert bad_device.returncode == 1 and "unknown device 'NOPE0'; available: CPU" in bad_device.stderr
    bad_port = _cli("rpc-server", "--port", "70000")
    assert bad_port.returncode == 1 and "invalid port 70000" in bad_port.stderr
    # another loopback address is not 127.0.0.1: the no-authentication warning, and it serves
    other = start_worker(host="127.0.0.2")
    assert other.proc.poll() is None
    time.sleep(0.2)
    log = other.log_path.read_text()
    assert "WARNING" in log and "no authentication" in log
    bad_rpc = _cli("serve", "--rpc", "127.0.0.1:notaport", timeout=30)
    assert bad_rpc.returncode == 1 and "invalid RPC endpoint '127.0.0.1:notaport'" in bad_rpc.stderr


@pytest.fixture
def killable(tmp_path: Path, smollm2_path: Path, start_worker) -> Iterator[tuple[LiveServer, object, object]]:
    w1, w2 = start_worker(), start_worker()
    live = _server(tmp_path, smollm2_path, (w1.endpoint, w2.endpoint))
    yield live, w1, w2
    live.stop()


def test_killed_worker_mid_stream_is_a_clean_error_then_reload_on_reachable(killable) -> None:
    live, w1, w2 = killable
    body = {"model": "smol-split", "prompt": "Tell me a very long story about a dragon.", "stream": True,
            "options": {"temperature": 0, "num_predict": 2000, "stop": []}}  # fmt: skip
    chunks: list[dict[str, object]] = []
    with httpx.stream("POST", live.url + "/api/generate", json=body, timeout=120) as resp:
        assert resp.status_code == 200
        for line in resp.iter_lines():
            if not line:
                continue
            chunks.append(json.loads(line))
            if len(chunks) == 5:
                w2.kill()
    last = chunks[-1]
    assert "error" in last, last  # the stream ends with an error chunk, not a hang or a dropped socket
    error = str(last["error"])
    assert f"the connection to RPC worker {w2.endpoint} was lost" in error, error  # the dead one, named
    assert w1.endpoint not in error
    assert not any(c.get("done") for c in chunks)
    assert len(chunks) < 500
    # serve keeps serving: a local model answers
    assert _generate(live.url, "smol-local", "Hello", num_predict=4).status_code == 200
    # the split model is reloaded on what is reachable (the killed worker is left out)
    again = _generate(live.url, "smol-split", "The capital of France is", num_predict=8)
    assert again.status_code == 200, again.text
    assert again.json()["eval_count"] == 8
    ps = {m["name"]: m for m in httpx.get(live.url + "/api/ps").json()["models"]}
    split = ps["smol-split:latest"]
    assert [d.get("endpoint") for d in split["devices"] if d["name"].startswith("RPC")] == [w1.endpoint]
    assert split["rpc_unreachable"] == [w2.endpoint]
    assert w1.proc.poll() is None


def test_mem_sets_what_a_worker_advertises_and_the_default_split_follows(
    smollm2_path: Path, start_worker
) -> None:
    from a3s_power.runtime import load_model

    big, tiny = start_worker(), start_worker(mem_mb=64)
    # no tensor_split: shares by free memory; the 64 MiB worker gets (almost) nothing
    loaded = load_model(smollm2_path, num_ctx=256, num_thread=1, rpc_servers=(big.endpoint, tiny.endpoint))
    try:
        devices = {d.get("endpoint", d["name"]): d for d in loaded.devices()}
        assert devices[big.endpoint]["weights"] > 0
        assert tiny.endpoint not in devices or devices[tiny.endpoint]["weights"] == 0
    finally:
        loaded.close()
    # the same worker with an explicit split takes its layers
    loaded = load_model(
        smollm2_path,
        num_ctx=256,
        num_thread=1,
        rpc_servers=(big.endpoint, tiny.endpoint),
        tensor_split="1,1,1",
    )
    try:
        devices = {d.get("endpoint", d["name"]): d for d in loaded.devices()}
        assert devices[tiny.endpoint]["weights"] > 0
    finally:
        loaded.close()
    with pytest.raises(Exception, match="tensor_split has 2 values but this load has 3 devices"):
        load_model(smollm2_path, num_ctx=256, rpc_servers=(big.endpoint, tiny.endpoint), tensor_split="1,1")


def test_two_split_models_share_the_workers_connection(smollm2_path: Path, start_worker) -> None:
    """A worker serves one client connection: a second model on the same workers reuses this
    process's connection (a HELLO probe would wait behind it) and both generate."""
    from a3s_power.runtime import Completion, GenerationOptions, generate_sync, load_model

    w1, w2 = start_worker(), start_worker()
    workers = (w1.endpoint, w2.endpoint)
    first = load_model(smollm2_path, num_ctx=256, num_thread=1, rpc_servers=workers, tensor_split="1,1,1")
    started = time.monotonic()
    second = load_model(smollm2_path, num_ctx=512, num_thread=1, rpc_servers=workers, tensor_split="2,1,1")
    try:
        assert time.monotonic() - started < 30
        options = GenerationOptions(temperature=0, repeat_penalty=1.0, num_predict=8)
        outputs = []
        for model in (first, second):
            text = []
            for ev in generate_sync(model, model.tokenize("The capital of France is"), options):
                if isinstance(ev, Completion):
                    assert ev.eval_count == 8
                else:
                    text.append(ev.text)
            outputs.append("".join(text))
        assert outputs[0] == outputs[1] and outputs[0].strip()
    finally:
        first.close()
        second.close()
