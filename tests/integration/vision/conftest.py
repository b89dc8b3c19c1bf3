"""Vision fixtures: SmolLM2-135M with the tiny seeded LLaVA-style projector (tests/fixtures/vlm.py),
loaded through the real mtmd code; a live server whose store holds it beside plain SmolLM2."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))

from live_server import LiveServer, add_gguf_model, server_settings  # noqa: E402

VISION_MODEL = "smol-vision"
TEXT_MODEL = "smollm2:135m"


@pytest.fixture(scope="session")
def mmproj_path() -> Path:
    from fixtures.vlm import smollm2_mmproj_gguf

    return smollm2_mmproj_gguf()


@pytest.fixture(scope="module")
def vlm(smollm2_path: Path, mmproj_path: Path) -> Iterator[object]:
    """SmolLM2 + projector in batch-invariant mode (a request's output does not depend on its batch)."""
    from a3s_power.runtime import load_model

    loaded = load_model(
        smollm2_path,
        num_ctx=1024,
        num_parallel=4,
        projector_path=mmproj_path,
        batch_invariant=True,
        num_thread=2,
    )
    yield loaded
    loaded.close()


@pytest.fixture(scope="module")
def vision_server(
    tmp_path_factory: pytest.TempPathFactory, smollm2_path: Path, mmproj_path: Path
) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("vision") / "models"
    live = LiveServer(server_settings(root))
    store = live.store
    model = store.add_blob_file(smollm2_path).digest
    proj = store.add_blob_file(mmproj_path).digest
    from a3s_power.store.create import CreateRequest, create_events

    request = CreateRequest(
        model=VISION_MODEL,
        files={smollm2_path.name: model, mmproj_path.name: proj},
        parameters={"stop": ["<|im_end|>"]},
    )
    for _ in create_events(store, request):
        pass
    add_gguf_model(store, TEXT_MODEL, smollm2_path, {"stop": ["<|im_end|>"]})
    yield live
    live.stop()
