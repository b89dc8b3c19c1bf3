"""A3S Power: a local model server and CLI, drop-in compatible with Ollama."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
