from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from _store_helpers import write_tiny_gguf
from fake_registry import FakeRegistry


@pytest.fixture
def blob_host() -> Iterator[FakeRegistry]:
    server = FakeRegistry()
    yield server
    server.stop()


@pytest.fixture
def model_bytes(tmp_path: Path) -> bytes:
    """A real (tiny) GGUF padded with random bytes so it spans several 64 KiB parts."""
    import numpy as np

    data = write_tiny_gguf(tmp_path / "m.gguf", tensors=1).read_bytes()
    return data + np.random.default_rng(1).bytes(300_000)
