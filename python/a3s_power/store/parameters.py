"""Typed Modelfile/create parameters (Ollama's Options + Runner fields) and their Go-style parsing."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from a3s_power.store.errors import InvalidModelfile

INT_PARAMETERS = frozenset(
    {"num_keep", "seed", "num_predict", "top_k", "repeat_last_n", "num_ctx", "num_batch", "num_gpu",
     "main_gpu", "num_thread", "draft_num_predict", "draft_max"}
)  # fmt: skip
FLOAT_PARAMETERS = frozenset(
    {"top_p", "min_p", "typical_p", "temperature", "repeat_penalty", "presence_penalty", "frequency_penalty"}
)
BOOL_PARAMETERS = frozenset({"use_mmap"})
LIST_PARAMETERS = frozenset({"stop"})
# A3S Power's own: the store name of a small model with the same vocabulary that drafts tokens for
# speculative decoding (loaded beside this one); Ollama has no draft models.
STRING_PARAMETERS = frozenset({"draft_model"})
# A3S Power's own: comma-separated shares of a model's layers (local device first, then each
# RPC worker in `serve --rpc` order), e.g. "1,1,1"; Ollama has no multi-host split.
SPLIT_PARAMETERS = frozenset({"tensor_split"})
# parser/parser.go deprecatedParameters: accepted with a warning and dropped.
DEPRECATED_PARAMETERS = frozenset(
    {"penalize_newline", "low_vram", "f16_kv", "logits_all", "vocab_only", "use_mlock", "mirostat",
     "mirostat_tau", "mirostat_eta"}
)  # fmt: skip
_SCALAR_PARAMETERS = INT_PARAMETERS | FLOAT_PARAMETERS | BOOL_PARAMETERS
KNOWN_PARAMETERS = _SCALAR_PARAMETERS | LIST_PARAMETERS | SPLIT_PARAMETERS | STRING_PARAMETERS

_INT_RE = re.compile(r"^[+-]?[0-9]+$")
_FLOAT_RE = re.compile(r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$|^[+-]?(inf|infinity|nan)$", re.I)
_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


def parse_parameter_values(name: str, values: list[str], line: int = 0) -> Any:
    """Convert raw Modelfile strings for one parameter into its typed value (Ollama's FormatParams)."""
    shown = "[" + " ".join(values) + "]"
    if name in LIST_PARAMETERS:
        return list(values)
    value = values[-1]
    if name in STRING_PARAMETERS:
        if not value.strip():
            raise InvalidModelfile(f"invalid value {shown} for {name}: a model name is required", line)
        return value.strip()
    if name in SPLIT_PARAMETERS:
        return split_value(name, value, lambda msg: InvalidModelfile(msg, line))
    if name in INT_PARAMETERS:
        if not _INT_RE.match(value):
            raise InvalidModelfile(f"invalid int value {shown}", line)
        return int(value)
    if name in FLOAT_PARAMETERS:
        if not _FLOAT_RE.match(value):
            raise InvalidModelfile(f"invalid float value {shown}", line)
        return float(value)
    if name in BOOL_PARAMETERS:
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        raise InvalidModelfile(f"invalid bool value {shown}", line)
    raise InvalidModelfile(f"unknown parameter '{name}'", line)


def coerce_parameter(name: str, value: Any) -> Any:
    """Validate a JSON parameter from a structured create request; strings are parsed like a Modelfile."""
    if name in DEPRECATED_PARAMETERS:
        return None
    if name not in KNOWN_PARAMETERS:
        raise InvalidModelfile(f"unknown parameter '{name}'")
    if isinstance(value, str):
        return parse_parameter_values(name, [value])
    return typed_json_value(name, value, InvalidModelfile)


def typed_json_value(
    name: str,
    value: Any,
    error: Callable[[str], Exception],
    *,
    ints: frozenset[str] = INT_PARAMETERS,
    floats: frozenset[str] = FLOAT_PARAMETERS,
    lists: frozenset[str] = LIST_PARAMETERS,
) -> Any:
    """A JSON option value checked as Ollama's `FromMap` checks it (ints accept floats, truncated);
    anything not int/float/list is a bool. Raises `error(<Ollama's text>)`."""
    if name in SPLIT_PARAMETERS:
        return split_value(name, value, error)
    if name in STRING_PARAMETERS:
        if not isinstance(value, str) or not value.strip():
            raise error(f'option "{name}" must be a model name (a non-empty string)')
        return value.strip()
    if name in lists:
        if not isinstance(value, list):
            raise error(f'option "{name}" must be of type array')
        if not all(isinstance(v, str) for v in value):
            raise error(f'option "{name}" must be of an array of strings')
        return list(value)
    if name in ints or name in floats:
        kind = "integer" if name in ints else "float32"
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise error(f'option "{name}" must be of type {kind}')
        if name in ints and not math.isfinite(value):  # NaN / ±inf, from a Python caller
            raise error(f'option "{name}" must be of type {kind}, got {value}')
        return int(value) if name in ints else float(value)
    if not isinstance(value, bool):
        raise error(f'option "{name}" must be of type boolean')
    return value


def split_value(name: str, value: Any, error: Callable[[str], Exception]) -> str:
    """A tensor split ("3,1,1" or a JSON array of numbers) as its canonical "3,1,1" string."""
    if isinstance(value, list):
        items = value
    elif isinstance(value, str):
        items = [v.strip() for v in value.split(",")] if value.strip() else []
    else:
        raise error(f'option "{name}" must be a comma-separated string or an array of numbers')
    shares: list[float] = []
    for item in items:
        if isinstance(item, bool):
            raise error(f'option "{name}" must hold numbers')
        try:
            share = float(item)
        except (TypeError, ValueError):
            raise error(f'option "{name}": {item!r} is not a number') from None
        if not math.isfinite(share) or share < 0:
            raise error(f'option "{name}": shares must be finite and not negative')
        shares.append(share)
    if shares and sum(shares) <= 0:
        raise error(f'option "{name}": at least one share must be positive')
    return ",".join(f"{s:g}" for s in shares)


def format_parameter_line(name: str, value: Any) -> list[str]:
    """`show` parameters text: `%-30s %#v` per value (lists one line per element)."""
    values = value if isinstance(value, list) else [value]
    return [f"{name:<30} {go_quote(v)}" for v in values]


def go_quote(value: Any) -> str:
    """Go's %#v for the scalar types a params layer holds."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float(value)
    text = str(value)
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _go_float(value: float) -> str:
    """Go's %v for float64: shortest repr, exponent form outside [1e-4, 1e21)."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e21:
        return str(int(value))
    text = repr(value)
    if "e" in text:
        mantissa, exp = text.split("e")
        sign = "-" if exp.startswith("-") else "+"
        return f"{mantissa}e{sign}{exp.lstrip('+-').zfill(2)}"
    return text


def params_to_modelfile_value(value: Any) -> list[str]:
    """Values as they appear after `PARAMETER name` in a generated Modelfile."""
    values = value if isinstance(value, list) else [value]
    out = []
    for v in values:
        if isinstance(v, bool):
            out.append("true" if v else "false")
        elif isinstance(v, float):
            out.append(_go_float(v))
        else:
            out.append(str(v))
    return out
