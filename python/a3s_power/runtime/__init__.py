"""Runtime: the async face of the native engine (loading, generation streams)."""

from a3s_power.runtime.generation import Chunk, Completion, GenerationOptions, generate, generate_sync
from a3s_power.runtime.loaded import LoadedModel, load_model

__all__ = [
    "Chunk",
    "Completion",
    "GenerationOptions",
    "LoadedModel",
    "generate",
    "generate_sync",
    "load_model",
]
