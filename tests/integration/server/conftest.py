from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from live_server import LiveServer, add_gguf_model, server_settings


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, smollm2_path: Path) -> Iterator[LiveServer]:
    """A server whose store holds `smollm2:135m` (SmolLM2-135M-Instruct Q4_1, from its PyPI package)."""
    root = tmp_path_factory.mktemp("server") / "models"
    live = LiveServer(server_settings(root))
    add_gguf_model(live.store, "smollm2:135m", smollm2_path, {"stop": ["<|im_end|>"]})
    yield live
    live.stop()


@pytest.fixture(scope="module")
def tools_model(server: LiveServer, smollm2_path: Path) -> str:
    """`smol-think`: SmolLM2 with a Jinja TEMPLATE layer that has tools and `<think>` reasoning
    (tests/fixtures/templates.py), so thinking and tool-call paths run on a real model."""
    from fixtures.templates import TOOLS_THINK_TEMPLATE

    add_gguf_model(
        server.store, "smol-think", smollm2_path, {"stop": ["<|im_end|>"]}, template=TOOLS_THINK_TEMPLATE
    )
    return "smol-think"
