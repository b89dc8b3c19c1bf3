from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from _store_helpers import DockerRegistry


@pytest.fixture
def docker_registry(tmp_path: Path) -> Iterator[DockerRegistry]:
    try:
        registry = DockerRegistry(tmp_path / "registry")
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    try:
        yield registry
    finally:
        registry.stop()
