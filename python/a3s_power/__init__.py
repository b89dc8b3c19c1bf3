"""A3S Power: a local model server and CLI, drop-in compatible with Ollama."""

from __future__ import annotations

import logging

__version__ = "0.1.0"
__all__ = ["__version__"]

# a library logs only where the application asks (llama.cpp's own log arrives on "a3s_power.llama")
logging.getLogger(__name__).addHandler(logging.NullHandler())
