"""Ollama's `options`: defaults < Modelfile PARAMETERs < request, with Ollama's type rules.

Unknown keys are ignored (logged), as Ollama's `FromMap`; a value of the wrong type is an error with
Ollama's text (`option "temperature" must be of type float32`). Integer options accept JSON floats
(truncated). Every numeric value is range-checked here, before it can reach the engine: a value
the engine's C types cannot hold is a 400 naming the option (Ollama's Go would wrap or reject it;
pybind would fail with its signature). The result is one `Options` value whose `runner` part
(num_ctx, num_batch, num_gpu, num_thread, use_mmap) is what the scheduler loads a model with.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import fields, replace
from typing import Any

from a3s_power.errors import InvalidRequest
from a3s_power.runtime.generation import GenerationOptions, RunnerOptions
from a3s_power.store.parameters import (
    BOOL_PARAMETERS,
    FLOAT_PARAMETERS,
    INT_PARAMETERS,
    LIST_PARAMETERS,
    SPLIT_PARAMETERS,
    typed_json_value,
)

__all__ = ["MIN_NUM_CTX", "VISION_MIN_NUM_CTX", "OptionTypeError", "Options", "RunnerOptions",
           "coerce_option", "merge_options", "options_from_layers"]  # fmt: skip

log = logging.getLogger(__name__)

Options = GenerationOptions  # the one options type: sampling + request flags + `runner`

# Request options Ollama's FromMap knows: the Modelfile parameters plus the legacy ones it still
# accepts (mirostat is honoured here; the rest are accepted and ignored).
_FLOAT = FLOAT_PARAMETERS | {"mirostat_tau", "mirostat_eta", "tfs_z"}
_INT = INT_PARAMETERS | {"mirostat", "num_gqa"}
_BOOL = BOOL_PARAMETERS | {"penalize_newline", "numa", "low_vram", "f16_kv", "logits_all", "vocab_only",
                           "use_mlock", "embedding_only"}  # fmt: skip
_RUNNER = frozenset(f.name for f in fields(RunnerOptions))
_OPTION_FIELDS = frozenset(f.name for f in fields(GenerationOptions)) - {"runner"}

_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_FLOAT32_MAX = 3.4028234663852886e38
# num_predict and seed are int64 in Ollama; the engine counts tokens in int32, so a larger
# num_predict means "no limit" and is clamped.
_WIDE = {"num_predict": _INT64, "seed": _INT64}
_NARROW = {"draft_max": (-1, 64)}  # speculative draft length: -1 the server's default, 0 off

MIN_NUM_CTX = 16  # the engine's floor (Ollama's is 4); smaller requests are raised to it
VISION_MIN_NUM_CTX = 2048  # Ollama's scheduler: "multimodal models require at least 2048 context"


class OptionTypeError(InvalidRequest):
    """A wrongly typed or out-of-range option: a 400 naming it (Ollama's text for the type)."""


def _check_range(key: str, value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        low, high = _NARROW.get(key) or _WIDE.get(key, _INT32)
        if not low <= value <= high:
            raise OptionTypeError(
                f'option "{key}" is out of range: {value} (must be between {low} and {high})'
            )
        if key == "num_predict":
            return min(value, _INT32[1])
        return value
    if isinstance(value, float) and (not math.isfinite(value) or abs(value) > _FLOAT32_MAX):
        raise OptionTypeError(f'option "{key}" is out of range: {value} (must be a finite float32)')
    return value


MAX_STOP_STRINGS = 256
MAX_STOP_LENGTH = 4096  # characters; the engine matches every stop against the decoded tail


def check_stops(stops: list[str], name: str = "stop") -> list[str]:
    """Stop strings bounded in count and length (10,000 stops or a 1 MB one would make every
    decoded token a long scan): a 400 naming the field."""
    if len(stops) > MAX_STOP_STRINGS:
        raise OptionTypeError(f'option "{name}" has {len(stops)} strings (at most {MAX_STOP_STRINGS})')
    for stop in stops:
        if len(stop) > MAX_STOP_LENGTH:
            raise OptionTypeError(
                f'option "{name}" has a string of {len(stop)} characters (at most {MAX_STOP_LENGTH})'
            )
    return stops


def coerce_option(key: str, value: Any) -> Any:
    """One option value checked and converted as Ollama's `FromMap` does; KeyError if unknown."""
    if key not in _FLOAT | _INT | _BOOL | LIST_PARAMETERS | SPLIT_PARAMETERS:
        raise KeyError(key)
    if key == "stop":
        return check_stops(typed_json_value(key, value, OptionTypeError, ints=_INT, floats=_FLOAT))
    if key in _FLOAT and isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**63:
        raise OptionTypeError(f'option "{key}" is out of range: {value} (must be a finite float32)')
    return _check_range(key, typed_json_value(key, value, OptionTypeError, ints=_INT, floats=_FLOAT))


def options_from_layers(
    *layers: Mapping[str, Any] | None,
    default_num_ctx: int = 4096,
    trained_ctx: int = 0,
    min_num_ctx: int = MIN_NUM_CTX,
) -> Options:
    """Later layers win. The defaults are `GenerationOptions`' and `RunnerOptions`' own. `num_ctx`
    is raised to `min_num_ctx` (VISION_MIN_NUM_CTX for a model with a projector, as Ollama does),
    then capped at the trained context."""
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in (layer or {}).items():
            if value is None:
                continue
            try:
                merged[key] = coerce_option(key, value)
            except KeyError:
                log.warning("invalid option provided: %s", key)
    if "draft_num_predict" in merged and "draft_max" not in merged:  # Ollama's name for the draft length
        merged["draft_max"] = min(64, max(0, merged["draft_num_predict"]))
    runner_values = {k: v for k, v in merged.items() if k in _RUNNER}
    runner = replace(RunnerOptions(num_ctx=default_num_ctx), **runner_values)
    num_ctx = max(MIN_NUM_CTX, min_num_ctx, runner.num_ctx)
    if trained_ctx > 0:
        num_ctx = min(num_ctx, trained_ctx)
    runner = replace(
        runner, num_ctx=num_ctx, num_batch=max(1, runner.num_batch), num_thread=max(0, runner.num_thread)
    )
    sampling = {k: v for k, v in merged.items() if k in _OPTION_FIELDS}  # the rest is accepted, ignored
    return GenerationOptions(runner=runner, **sampling)


def merge_options(
    *layers: Mapping[str, Any] | None, default_num_ctx: int = 4096, trained_ctx: int = 0
) -> tuple[Options, RunnerOptions]:
    """`options_from_layers`, with its runner part beside it."""
    options = options_from_layers(*layers, default_num_ctx=default_num_ctx, trained_ctx=trained_ctx)
    return options, options.runner
