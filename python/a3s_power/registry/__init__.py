"""OCI registry client: pull (Ollama, hf.co, any OCI registry, direct URLs, offline built-ins) and push.

Both `pull_model` and `push_model` are async iterators of Ollama's progress objects.
"""

from __future__ import annotations

from a3s_power.registry.client import RegistryClient, RegistryUnreachable
from a3s_power.registry.options import RegistryOptions, options_from_env
from a3s_power.registry.pull import pull_model
from a3s_power.registry.push import push_model

__all__ = [
    "RegistryClient",
    "RegistryOptions",
    "RegistryUnreachable",
    "options_from_env",
    "pull_model",
    "push_model",
]
