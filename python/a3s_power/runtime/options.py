"""Ollama's `options`: defaults < Modelfile PARAMETERs < request, with Ollama's type rules.

Unknown keys are ignored (logged), as Ollama's `FromMap`; a value of the wrong type is an error with
Ollama's text (`option "temperature" must be of type float32`). Integer options accept JSON floats
(truncated). Load-time options (num_ctx, num_batch, num_gpu, num_thread, use_mmap) are split off:
the scheduler reloads a model when they change.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from a3s_power.errors import PowerError
from a3s_power.runtime.generation import GenerationOptions
from a3s_power.store.parameters import (
    BOOL_PARAMETERS,
    FLOAT_PARAMETERS,
    INT_PARAMETERS,
    LIST_PARAMETERS,
    typed_json_value,
)

log = logging.getLogger(__name__)

# Request options Ollama's FromMap knows: the Modelfile parameters plus the legacy ones it still
# accepts (mirostat is honoured here; the rest are accepted and ignored).
_FLOAT = FLOAT_PARAMETERS | {"mirostat_tau", "mirostat_eta", "tfs_z"}
_INT = INT_PARAMETERS | {"mirostat", "num_gqa"}
_BOOL = BOOL_PARAMETERS | {"penalize_newline", "numa", "low_vram", "f16_kv", "logits_all", "vocab_only",
                           "use_mlock", "embedding_only"}  # fmt: skip
_RUNNER = {"num_ctx", "num_batch", "num_gpu", "main_gpu", "num_thread", "use_mmap"}
_IGNORED = {"tfs_z", "numa", "low_vram", "f16_kv", "logits_all", "vocab_only", "use_mlock", "num_gqa",
            "embedding_only", "main_gpu"}  # fmt: skip


MIN_NUM_CTX = 16  # the engine's floor (Ollama's is 4); smaller requests are raised to it


class OptionTypeError(PowerError):
    """Ollama answers a wrongly typed option with 500."""

    status = 500


@dataclass(frozen=True, slots=True)
class RunnerOptions:
    num_ctx: int
    num_batch: int = 2048
    num_gpu: int = -1
    num_thread: int = 0
    use_mmap: bool = True


def coerce_option(key: str, value: Any) -> Any:
    """One option value checked and converted as Ollama's `FromMap` does; KeyError if unknown."""
    if key not in _FLOAT | _INT | _BOOL | LIST_PARAMETERS:
        raise KeyError(key)
    return typed_json_value(key, value, OptionTypeError, ints=_INT, floats=_FLOAT)


def merge_options(
    *layers: Mapping[str, Any] | None, default_num_ctx: int = 4096, trained_ctx: int = 0
) -> tuple[GenerationOptions, RunnerOptions]:
    """Later layers win. Returns the sampling options and the load-time (runner) options."""
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in (layer or {}).items():
            if value is None:
                continue
            try:
                merged[key] = coerce_option(key, value)
            except KeyError:
                log.warning("invalid option provided: %s", key)
    gen = GenerationOptions()
    for key, value in merged.items():
        if key in _RUNNER or key in _IGNORED:
            continue
        setattr(gen, key, value)
    num_ctx = int(merged.get("num_ctx", default_num_ctx))
    num_ctx = max(MIN_NUM_CTX, num_ctx)
    if trained_ctx > 0:
        num_ctx = min(num_ctx, trained_ctx)
    runner = RunnerOptions(
        num_ctx=num_ctx,
        num_batch=max(1, int(merged.get("num_batch", 2048))),
        num_gpu=int(merged.get("num_gpu", -1)),
        num_thread=max(0, int(merged.get("num_thread", 0))),
        use_mmap=bool(merged.get("use_mmap", True)),
    )
    return gen, runner
