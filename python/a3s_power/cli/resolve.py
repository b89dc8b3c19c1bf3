"""Turn what a user typed (a path or a model name) into a GGUF file."""

from __future__ import annotations

from pathlib import Path

from a3s_power.bundled import bundled_model_path
from a3s_power.errors import ModelNotFound


def resolve_model(name_or_path: str) -> Path:
    path = Path(name_or_path).expanduser()
    if path.suffix.lower() == ".gguf" or path.exists():
        if not path.exists():
            raise ModelNotFound(name_or_path)
        return path
    try:
        return bundled_model_path(name_or_path)
    except KeyError:
        raise ModelNotFound(name_or_path) from None
