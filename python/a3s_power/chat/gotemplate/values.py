"""Go values as the template sees them, and how Go prints them (`fmt.Sprint`) and encodes them
(`encoding/json`).

Python `dict` is a Go map (JSON and `range` in sorted key order), `list` a slice, `None` a nil
interface (printed `<no value>`), `float` a float64 and `int` an int. `GoStruct` is a struct with
named fields (a missing field is an error, as in Go) and optionally a JSON `String()` method;
`OrderedMap` keeps insertion order (Ollama's ordered maps); `PropertyType` is Ollama's
one-or-many JSON Schema type.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

MAX_JSON_DEPTH = 200


class GoValueError(ValueError):
    """A value Go could not print, encode or compare."""


class GoStruct:
    """A Go struct: `fields` by Go name; `json_fields` (json name, field, omitempty) in order."""

    __slots__ = ("type_name", "fields", "json_fields", "stringer")

    def __init__(
        self,
        type_name: str,
        fields: dict[str, Any],
        json_fields: Iterable[tuple[str, str, bool]] | None = None,
        *,
        stringer: bool = False,
    ) -> None:
        self.type_name = type_name
        self.fields = fields
        self.json_fields = (
            tuple(json_fields) if json_fields is not None else tuple((k, k, False) for k in fields)
        )
        self.stringer = stringer  # String() returns the JSON encoding

    def __repr__(self) -> str:
        return f"{self.type_name}{self.fields!r}"


class OrderedMap(dict[str, Any]):
    """A map whose JSON and iteration keep insertion order."""


class JsonMap(dict[str, Any]):
    """A Go map type with a JSON `String()` (Ollama's templateArgs / templateProperties)."""


class PropertyType(list[str]):
    """Ollama's api.PropertyType: JSON a string when it holds one type, else an array."""


class GoList(list[Any]):
    """A slice type with a JSON `String()` (Ollama's templateTools); `nil` marks a nil slice."""

    def __init__(self, items: Iterable[Any] = (), *, nil: bool = False) -> None:
        super().__init__(items)
        self.nil = nil


def type_name(value: Any) -> str:
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, GoStruct):
        return value.type_name
    if isinstance(value, PropertyType):
        return "api.PropertyType"
    if isinstance(value, GoList):
        return "template.templateTools"
    if isinstance(value, list):
        return "[]interface {}"
    if isinstance(value, dict):
        return "map[string]interface {}"
    return type(value).__name__


def truth(value: Any) -> bool:
    """Go's template truth: false, 0, nil, and empty strings, slices and maps are false."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str | list | dict):
        return len(value) > 0
    return True  # structs


# -- printing (fmt.Sprint) ----------------------------------------------------------------------
def _digits(value: float) -> tuple[str, int]:
    """Shortest round-trip decimal digits of a finite non-zero |value| and the decimal point."""
    sign, digit_tuple, exponent = Decimal(repr(abs(value))).as_tuple()
    digits = "".join(map(str, digit_tuple)).rstrip("0") or "0"
    nd_full = len(digit_tuple)
    assert isinstance(exponent, int)
    dp = nd_full + exponent
    stripped = digits.lstrip("0")
    dp -= len(digits) - len(stripped)
    return stripped or "0", dp


def format_float_g(value: float) -> str:
    """fmt's %v of a float64: strconv 'g' with the shortest digits (%e when exp < -4 or >= 6)."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if str(value).startswith("-") else "0"
    sign = "-" if value < 0 else ""
    digits, dp = _digits(value)
    exp = dp - 1
    if exp < -4 or exp >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    return sign + _positional(digits, dp)


def _positional(digits: str, dp: int) -> str:
    if dp <= 0:
        return "0." + "0" * (-dp) + digits
    if dp >= len(digits):
        return digits + "0" * (dp - len(digits))
    return digits[:dp] + "." + digits[dp:]


def go_print(value: Any, top: bool = True) -> str:
    """What `{{ value }}` writes (fmt.Fprint)."""
    if value is None:
        return "<no value>" if top else "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format_float_g(value)
    if isinstance(value, str):
        return value
    if isinstance(value, GoStruct):
        if value.stringer:
            return go_json(value)
        return "{" + " ".join(go_print(v, False) for v in value.fields.values()) + "}"
    if isinstance(value, PropertyType):
        return value[0] if len(value) == 1 else "[" + " ".join(value) + "]"
    if isinstance(value, GoList | JsonMap):
        return go_json(value)
    if isinstance(value, list):
        return "[" + " ".join(go_print(v, False) for v in value) + "]"
    if isinstance(value, OrderedMap):
        return "map[" + " ".join(f"{k}:{go_print(v, False)}" for k, v in value.items()) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_print(value[k], False)}" for k in sorted(value)) + "]"
    raise GoValueError(f"can't print value of type {type_name(value)}")


# -- encoding/json ------------------------------------------------------------------------------
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "<": "\\u003c",
            ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}  # fmt: skip


def json_string(text: str) -> str:
    """Go's JSON string: HTML-safe (<, >, & escaped), invalid UTF-16 surrogates → U+FFFD."""
    out = ['"']
    for c in text:
        if c in _ESCAPES:
            out.append(_ESCAPES[c])
        elif c < " ":
            out.append(f"\\u{ord(c):04x}")
        elif "\ud800" <= c <= "\udfff":
            out.append("\ufffd")
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


def json_float(value: float) -> str:
    """Go's float64 JSON encoding (ES6 style: %f unless exp < -6 or >= 21, e-07 → e-7)."""
    if value != value or value in (float("inf"), float("-inf")):
        raise GoValueError(f"json: unsupported value: {format_float_g(value)}")
    if value == 0:
        return "-0" if str(value).startswith("-") else "0"
    sign = "-" if value < 0 else ""
    digits, dp = _digits(value)
    absval = abs(value)
    if absval < 1e-6 or absval >= 1e21:
        exp = dp - 1
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}".replace("e-0", "e-")
    return sign + _positional(digits, dp)


def _omit(value: Any) -> bool:
    if value is None or value is False:
        return True
    if isinstance(value, GoList) and value.nil:
        return True
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value == 0
    return isinstance(value, str | list | dict) and len(value) == 0


def go_json(value: Any, depth: int = 0) -> str:
    """json.Marshal(value) (compact)."""
    if depth > MAX_JSON_DEPTH:
        raise GoValueError("json: value nested too deeply")
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return json_float(value)
    if isinstance(value, str):
        return json_string(value)
    if isinstance(value, GoStruct):
        parts = []
        for json_name, name, omitempty in value.json_fields:
            item = value.fields.get(name)
            if omitempty and _omit(item):
                continue
            parts.append(json_string(json_name) + ":" + go_json(item, depth + 1))
        return "{" + ",".join(parts) + "}"
    if isinstance(value, PropertyType):
        return json_string(value[0]) if len(value) == 1 else go_json(list(value), depth + 1)
    if isinstance(value, GoList) and value.nil:
        return "null"
    if isinstance(value, list):
        return "[" + ",".join(go_json(v, depth + 1) for v in value) + "]"
    if isinstance(value, dict):
        keys = list(value) if isinstance(value, OrderedMap) else sorted(value)
        return "{" + ",".join(json_string(str(k)) + ":" + go_json(value[k], depth + 1) for k in keys) + "}"
    raise GoValueError(f"json: unsupported type: {type_name(value)}")
