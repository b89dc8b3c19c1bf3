"""Faults, each as a test: SIGKILL of `serve` during streams, pulls, creates and blob uploads, then a
restart on the same store; a corrupt blob; a full disk; a model deleted while in use."""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from serve_process import check_store, names, serving

from _store_helpers import write_tiny_gguf
from a3s_power.store.store import ModelStore
from fake_registry import FakeRegistry, publish

pytestmark = pytest.mark.timeout(600)
MODEL = "smollm2:135m"
FULL = "smollm2:135m"


def _store_with_model(root: Path, smollm2_path: Path) -> ModelStore:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
    from live_server import add_gguf_model

    store = ModelStore(root, env={})
    add_gguf_model(store, MODEL, smollm2_path, {"stop": ["<|im_end|>"]})
    return store


def _generate(url: str, model: str = MODEL, n: int = 4) -> httpx.Response:
    body = {"model": model, "prompt": "Hello", "stream": False, "options": {"num_predict": n}}
    return httpx.post(url + "/api/generate", json=body, timeout=120)


def _stream_lines(url: str, got: list[int], stop: threading.Event) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Write a long story."}],
            "stream": True, "max_tokens": 100_000, "ignore_eos": True}  # fmt: skip
    with (
        contextlib.suppress(httpx.HTTPError),
        httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=120) as response,
    ):
        for _ in response.iter_lines():
            got.append(1)
            if stop.is_set():
                return


def _streaming(
    url: str, streams: int, lines: int, timeout_s: float
) -> tuple[list[int], threading.Event, list[threading.Thread]]:
    """`streams` long chats on `url`, once `lines` streamed lines have arrived in all: (the lines'
    counter, the event that ends the streams, their threads)."""
    got: list[int] = []
    stop = threading.Event()
    threads = [threading.Thread(target=_stream_lines, args=(url, got, stop)) for _ in range(streams)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout_s
    while len(got) < lines:
        assert time.monotonic() < deadline, f"only {len(got)} streamed lines in {timeout_s} s"
        time.sleep(0.02)
    return got, stop, threads


def test_sigkill_during_streams_then_restart(tmp_path: Path, smollm2_path: Path) -> None:
    root = tmp_path / "models"
    _store_with_model(root, smollm2_path)
    with serving(root) as serve:
        _, stop, threads = _streaming(serve.url, 4, 20, 120)
        serve.kill()
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    with serving(root) as again:
        assert names(again.url) == [FULL]
        reply = _generate(again.url)
        assert reply.status_code == 200 and reply.json()["eval_count"] == 4


@pytest.fixture
def slow_registry(tmp_path: Path) -> Iterator[tuple[FakeRegistry, bytes, str]]:
    import numpy as np

    registry = FakeRegistry()
    model = write_tiny_gguf(tmp_path / "m.gguf", tensors=1).read_bytes() + np.random.default_rng(7).bytes(
        3_000_000
    )
    raw = publish(registry, model)
    digest = next(layer["digest"] for layer in json.loads(raw)["layers"] if layer["size"] == len(model))
    registry.behaviour.throttle_s = 0.004  # ~4 MB/s: a pull takes about a second
    yield registry, model, digest
    registry.stop()


@pytest.mark.parametrize("fraction", [0.05, 0.4, 0.9])
def test_sigkill_during_a_pull_then_pull_again(
    tmp_path: Path, slow_registry: tuple[FakeRegistry, bytes, str], fraction: float
) -> None:
    registry, model, digest = slow_registry
    root = tmp_path / "models"
    env = {
        "A3S_POWER_REGISTRY_ENDPOINTS": f"registry.ollama.ai={registry.url}",
        "A3S_POWER_OFFLINE_FALLBACK": "0",
    }
    killed_at = 0
    with (
        serving(root, check=False, **env) as serve,
        contextlib.suppress(httpx.HTTPError),
        httpx.stream("POST", serve.url + "/api/pull", json={"model": "tiny"}, timeout=120) as response,
    ):
        for line in response.iter_lines():
            event = json.loads(line)
            if event.get("digest") == digest and event.get("completed", 0) >= fraction * len(model):
                killed_at = event["completed"]
                serve.kill()
                break
    assert 0 < killed_at < len(model), "the pull finished before the kill"
    with serving(root, **env) as again:
        assert names(again.url) == [], "a half-pulled model is visible"
        registry.behaviour.throttle_s = 0.0
        done = httpx.post(again.url + "/api/pull", json={"model": "tiny", "stream": False}, timeout=120)
        assert done.status_code == 200 and done.json() == {"status": "success"}, done.text
        assert names(again.url) == ["tiny:latest"]
    blob = root / "blobs" / digest.replace(":", "-")
    assert blob.read_bytes() == model
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == digest[7:]


def test_sigkill_during_a_blob_upload_leaves_no_partial_after_restart(
    tmp_path: Path, smollm2_path: Path
) -> None:
    root = tmp_path / "models"
    _store_with_model(root, smollm2_path)
    data = b"\1" * (64 * 1024 * 1024)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    sent = threading.Event()

    def body() -> Iterator[bytes]:
        for i in range(0, len(data), 1 << 20):
            if i >= 16 << 20:
                sent.set()
                time.sleep(0.05)
            yield data[i : i + (1 << 20)]

    def upload() -> None:
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(serve.url + f"/api/blobs/{digest}", content=body(), timeout=120)

    thread = threading.Thread(target=upload)
    with serving(root, check=False) as serve:
        thread.start()
        assert sent.wait(60)
        deadline = time.monotonic() + 30
        while not list((root / "blobs").glob(".incoming-*.tmp")):
            assert time.monotonic() < deadline, "no upload partial appeared"
            time.sleep(0.02)
        serve.kill()
        thread.join(timeout=60)
    assert list((root / "blobs").glob(".incoming-*.tmp")), "the killed upload left its partial"
    with serving(root) as again:  # start-up prune: a dead writer's partial goes at once
        assert not list((root / "blobs").glob(".incoming-*.tmp"))
        assert httpx.head(again.url + f"/api/blobs/{digest}").status_code == 404
        assert names(again.url) == [FULL]


def test_sigkill_during_create_leaves_no_partial_model(tmp_path: Path, smollm2_path: Path) -> None:
    root = tmp_path / "models"
    _store_with_model(root, smollm2_path)
    for attempt in range(3):  # kill at a different moment each time
        digest = "sha256:" + hashlib.sha256(smollm2_path.read_bytes()).hexdigest()
        body = {"model": f"made{attempt}", "files": {"model.gguf": digest}, "system": "x" * 1000,
                "parameters": {"temperature": 0.5}}  # fmt: skip
        with (
            serving(root, check=False) as serve,
            contextlib.suppress(httpx.HTTPError),
            httpx.stream("POST", serve.url + "/api/create", json=body, timeout=120) as response,
        ):
            for n, _ in enumerate(response.iter_lines()):
                if n >= attempt:
                    serve.kill()
                    break
        with serving(root) as again:
            listed = names(again.url)
            assert FULL in listed
            if f"made{attempt}:latest" in listed:  # committed before the kill: whole and runnable
                assert _generate(again.url, f"made{attempt}").status_code == 200


# -- corrupt blob, full disk, deleted while in use (an in-process server) -----------------------------
@contextlib.contextmanager
def _live(root: Path, **settings: object):  # type: ignore[no-untyped-def]
    """An in-process server on `root` for the block."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
    from live_server import LiveServer, server_settings

    live = LiveServer(server_settings(root, **settings))
    try:
        yield live
    finally:
        live.stop()


def test_a_corrupt_blob_is_detected_on_load(tmp_path: Path, smollm2_path: Path) -> None:
    root = tmp_path / "models"
    copy = tmp_path / "copy.gguf"
    shutil.copyfile(smollm2_path, copy)
    store = _store_with_model(root, copy)
    digest = "sha256:" + hashlib.sha256(copy.read_bytes()).hexdigest()
    blob = store.blob_path(digest)
    with blob.open("r+b") as f:  # one bit, in the middle of the tensor data
        f.seek(blob.stat().st_size // 2)
        byte = f.read(1)[0]
        f.seek(-1, 1)
        f.write(bytes([byte ^ 0x10]))
    with _live(root) as live:
        for path, body in (
            ("/api/generate", {"model": MODEL, "prompt": "hi", "stream": False}),
            ("/v1/chat/completions", {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}),
        ):
            response = httpx.post(live.url + path, json=body, timeout=120)
            assert response.status_code == 500, response.text
            assert f"model blob {digest} is corrupt" in response.text
        assert httpx.get(live.url + "/").text == "Ollama is running"
        assert live.scheduler.loaded() == []


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root or CAP_SYS_ADMIN): {result.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_during_an_upload_and_a_pull(
    small_disk: Path, slow_registry: tuple[FakeRegistry, bytes, str], tmp_path: Path
) -> None:
    root = small_disk / "models"
    store = ModelStore(root, env={})
    tiny = write_tiny_gguf(tmp_path / "tiny.gguf", tensors=1)
    from a3s_power.store.create import CreateRequest, create_events

    digest = store.add_blob_file(tiny).digest
    for _ in create_events(store, CreateRequest(model="tiny-local", files={"tiny.gguf": digest})):
        pass
    with _live(root) as live:
        data = b"\2" * (40 * 1024 * 1024)  # larger than the 24 MiB disk
        big = "sha256:" + hashlib.sha256(data).hexdigest()
        response = httpx.post(live.url + f"/api/blobs/{big}", content=data, timeout=120)
        assert response.status_code == 507, response.text
        assert "no space left" in response.json()["error"]
        assert not list((root / "blobs").glob(".incoming-*")), "the upload's partial was left on a full disk"
        assert not store.has_blob(big)

        registry, model, _ = slow_registry
        registry.behaviour.throttle_s = 0.0
        filler = small_disk / "filler"
        free = shutil.disk_usage(small_disk).free
        filler.write_bytes(b"\0" * max(0, free - 1_000_000))  # 1 MB left: the 3 MB model cannot fit
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("A3S_POWER_REGISTRY_ENDPOINTS", f"registry.ollama.ai={registry.url}")
            mp.setenv("A3S_POWER_OFFLINE_FALLBACK", "0")
            pulled = httpx.post(live.url + "/api/pull", json={"model": "tiny", "stream": False}, timeout=120)
        assert pulled.status_code == 507, pulled.text
        assert "no space left" in pulled.json()["error"]
        assert [m["name"] for m in httpx.get(live.url + "/api/tags").json()["models"]] == [
            "tiny-local:latest"
        ]
        filler.unlink()
        assert httpx.get(live.url + "/").text == "Ollama is running"
    store.prune(min_age_s=0)
    check_store(root)


def test_a_model_deleted_while_in_use(tmp_path: Path, smollm2_path: Path) -> None:
    root = tmp_path / "models"
    _store_with_model(root, smollm2_path)
    with _live(root) as live:
        got, stop, (thread,) = _streaming(live.url, 1, 5, 60)
        deleted = httpx.request("DELETE", live.url + "/api/delete", json={"model": MODEL}, timeout=30)
        assert deleted.status_code == 200
        seen = len(got)
        deadline = time.monotonic() + 15  # a live stream sends a line within this even on a busy machine
        while len(got) <= seen and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(got) > seen, "the running stream stopped when its model was deleted"
        stop.set()
        thread.join(timeout=30)
        assert httpx.get(live.url + "/api/tags").json()["models"] == []
        gone = _generate(live.url)
        assert gone.status_code == 404, gone.text
        unload = httpx.post(live.url + "/api/generate", json={"model": MODEL, "keep_alive": 0}, timeout=30)
        assert unload.status_code in (200, 404)
        assert httpx.get(live.url + "/").text == "Ollama is running"
