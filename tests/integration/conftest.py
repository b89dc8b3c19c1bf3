"""Fixtures shared by the integration tests: registries on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from _store_helpers import DockerRegistry
from fake_registry import FakeRegistry


@pytest.fixture
def registry() -> Iterator[FakeRegistry]:
    """A fake OCI registry + Hugging Face hub that misbehaves on demand."""
    server = FakeRegistry()
    yield server
    server.stop()


@pytest.fixture
def docker_registry(tmp_path: Path) -> Iterator[DockerRegistry]:
    """Debian's docker-registry (a real OCI registry); skipped where it is not installed."""
    try:
        registry = DockerRegistry(tmp_path / "registry")
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    try:
        yield registry
    finally:
        registry.stop()
