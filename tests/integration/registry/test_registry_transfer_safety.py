"""Pulls that share a blob, stalled transfers, and prune next to a live download (127.0.0.1 registry)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from _store_helpers import collect
from a3s_power.registry import RegistryOptions, pull_model
from a3s_power.store.errors import RegistryError
from a3s_power.store.locks import TransferLock
from a3s_power.store.names import blob_filename
from a3s_power.store.store import ModelStore
from fake_registry import FakeRegistry, publish, pull_options, start_pull_process

pytestmark = pytest.mark.timeout(120)


def _model_digest(raw: bytes) -> str:
    return str(orjson.loads(raw)["layers"][0]["digest"])


def _bytes_served(registry: FakeRegistry, digest: str) -> int:
    """Sum of the byte ranges requested for one blob (the 1-byte redirect probe excluded)."""
    total = 0
    for request in registry.requests("blob"):
        if request["path"].endswith(digest) and request["range"] != "bytes=0-0":
            start, end = request["range"][6:].split("-")
            total += int(end) - int(start) + 1
    return total


async def _drain(events: Any) -> list[dict[str, Any]]:
    return [event async for event in events]


def test_concurrent_pulls_in_one_process_share_one_download(
    tmp_path: Path, registry: FakeRegistry, model_bytes: bytes
) -> None:
    raw = publish(registry, model_bytes)
    digest = _model_digest(raw)
    registry.behaviour.throttle_s = 0.03  # ~1 s for the blob
    root = tmp_path / "models"
    options = pull_options(registry, max_parallel=2)
    lock = TransferLock(root / ".locks" / f"{blob_filename(digest)}.lock")

    async def both() -> list[list[dict[str, Any]]]:
        first = asyncio.ensure_future(_drain(pull_model(ModelStore(root, env={}), "tiny", options=options)))
        while not lock.is_held_elsewhere():  # the first pull is transferring the model blob
            await asyncio.sleep(0.005)
        second = await _drain(pull_model(ModelStore(root, env={}), "tiny", options=options))
        return [await first, second]

    first, second = asyncio.run(both())

    assert first[-1] == second[-1] == {"status": "success"}
    store = ModelStore(root, env={})
    assert store.read_blob(digest) == model_bytes
    assert _bytes_served(registry, digest) == len(model_bytes), "the blob was fetched once"
    waited = [e["completed"] for e in second if e.get("digest") == digest]
    assert waited[-1] == len(model_bytes)
    assert any(0 < c < len(model_bytes) for c in waited), "the waiting pull reports the other's progress"
    assert waited == sorted(waited)
    assert not list(store.layout.blobs.glob("*-partial*"))


def test_pull_waits_for_another_process_downloading_the_same_blob(
    tmp_path: Path, registry: FakeRegistry, model_bytes: bytes
) -> None:
    raw = publish(registry, model_bytes)
    digest = _model_digest(raw)
    registry.behaviour.throttle_s = 0.01
    root = tmp_path / "models"
    child = start_pull_process(registry, root)
    lock = TransferLock(root / ".locks" / f"{blob_filename(digest)}.lock")
    deadline = time.monotonic() + 30
    while not lock.is_held_elsewhere():  # the child has started the model blob
        assert time.monotonic() < deadline, child.communicate()[0]
        time.sleep(0.01)

    events = collect(pull_model(ModelStore(root, env={}), "tiny", options=pull_options(registry)))
    out, _ = child.communicate(timeout=60)

    assert child.returncode == 0, out
    assert events[-1] == {"status": "success"}
    assert b"'status': 'success'" in out
    assert ModelStore(root, env={}).read_blob(digest) == model_bytes
    assert _bytes_served(registry, digest) == len(model_bytes), "the blob was fetched once"


def test_stalled_part_reconnects_without_spending_a_retry(
    tmp_path: Path, registry: FakeRegistry, model_bytes: bytes
) -> None:
    raw = publish(registry, model_bytes)
    digest = _model_digest(raw)
    registry.behaviour.stall_after[digest] = 100_000
    store = ModelStore(tmp_path / "models", env={})
    # one part, one attempt allowed: only a stall that is not counted as a retry lets this finish
    options = pull_options(
        registry, min_part_size=1 << 30, max_part_size=1 << 30, max_retries=1, stall_timeout=0.5
    )

    started = time.monotonic()
    events = collect(pull_model(store, "tiny", options=options))

    assert events[-1] == {"status": "success"}
    assert time.monotonic() - started < 20
    assert store.read_blob(digest) == model_bytes
    starts = [
        int(r["range"][6:].split("-")[0])
        for r in registry.requests("blob")
        if r["path"].endswith(digest) and r["range"] != "bytes=0-0"
    ]
    assert len(starts) == 2 and starts[0] == 0 and starts[1] >= 100_000 - 16 * 1024, starts


def test_a_blob_that_always_stalls_fails_with_a_clear_error(
    tmp_path: Path, registry: FakeRegistry, model_bytes: bytes
) -> None:
    raw = publish(registry, model_bytes)
    digest = _model_digest(raw)
    registry.behaviour.stall_after[digest] = 10_000
    registry.behaviour.stall_times = 100
    store = ModelStore(tmp_path / "models", env={})
    options: RegistryOptions = pull_options(
        registry, min_part_size=1 << 30, max_part_size=1 << 30, stall_timeout=0.2, max_stall_retries=2
    )

    with pytest.raises(RegistryError, match=r"^max retries exceeded: part 0 stalled 3 times$"):
        collect(pull_model(store, "tiny", options=options))
    assert store.list_models() == []
    assert not store.has_blob(digest)


def test_prune_keeps_a_partial_download_that_a_live_pull_holds(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models", env={})
    store.layout.ensure()
    digest = "sha256:" + "ab" * 32
    partial = store.layout.partial_path(digest)
    record = store.layout.partial_part_path(digest, 0)
    for path in (partial, record):
        path.write_bytes(b"x")
        os.utime(path, (time.time() - 7200, time.time() - 7200))

    lock = TransferLock(store.layout.transfer_lock_path(blob_filename(digest)))
    assert lock.try_acquire()
    try:
        assert store.prune() == []
        assert partial.exists() and record.exists()
    finally:
        lock.release()
    assert sorted(store.prune()) == sorted([partial.name, record.name])
