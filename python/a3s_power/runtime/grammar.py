"""Constrained-decoding helpers: Ollama's `format` ("json" or a JSON schema) → GBNF.

A schema is checked before llama.cpp's converter sees it, and bounded, since the converter trusts
its input: `minLength > maxLength` (or `minItems > maxItems`) makes it allocate without end, huge
repetition counts or enums make grammars the sampler needs seconds and gigabytes to compile. Each
bound breached is a 400 naming the keyword; what is left converts in milliseconds.
"""

from __future__ import annotations

from typing import Any

import orjson

from a3s_power import _native
from a3s_power.errors import InvalidRequest

# Ollama's "json" mode constrains output to a JSON object
_JSON_OBJECT_SCHEMA = {"type": "object"}

MAX_SCHEMA_BYTES = 256 * 1024  # the schema as JSON
MAX_SCHEMA_DEPTH = 64  # nested objects/arrays inside the schema
MAX_SCHEMA_NODES = 20_000  # dicts, lists and scalars in all
MAX_REPETITION = 10_000  # minLength/maxLength/minItems/maxItems (llama.cpp unrolls repetitions)
MAX_ENUM = 4096  # enum values / const alternatives in one enum

# (min keyword, max keyword) pairs llama.cpp turns into repetitions
_RANGES = (("minLength", "maxLength"), ("minItems", "maxItems"), ("minProperties", "maxProperties"))
_NUMERIC_RANGES = (("minimum", "maximum"), ("exclusiveMinimum", "exclusiveMaximum"))


def _bad(message: str) -> InvalidRequest:
    return InvalidRequest(f"invalid format: {message}")


def _check_count(node: dict[str, Any], key: str) -> int | None:
    if key not in node:
        return None
    value = node[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise _bad(f"{key} must be a non-negative integer, got {value!r}")
    value = int(value)
    if value < 0:
        raise _bad(f"{key} must be a non-negative integer, got {value}")
    if value > MAX_REPETITION:
        raise _bad(f"{key} {value} is too large (at most {MAX_REPETITION})")
    return value


def _check_node(node: dict[str, Any]) -> None:
    for low_key, high_key in _RANGES:
        low, high = _check_count(node, low_key), _check_count(node, high_key)
        if low is not None and high is not None and low > high:
            raise _bad(f"{low_key} ({low}) is greater than {high_key} ({high}): no value can match")
    for low_key, high_key in _NUMERIC_RANGES:
        for key in (low_key, high_key):
            if key in node and (isinstance(node[key], bool) or not isinstance(node[key], int | float)):
                raise _bad(f"{key} must be a number, got {node[key]!r}")
        low, high = node.get(low_key), node.get(high_key)
        if isinstance(low, int | float) and isinstance(high, int | float) and low > high:
            raise _bad(f"{low_key} ({low}) is greater than {high_key} ({high}): no value can match")
        for key in (low_key, high_key):
            if isinstance(node.get(key), float) and abs(node[key]) > 2**63:
                raise _bad(f"{key} {node[key]} is out of range")
            if isinstance(node.get(key), int) and abs(node[key]) >= 2**63:
                raise _bad(f"{key} {node[key]} is out of range")
    enum = node.get("enum")
    if enum is not None:
        if not isinstance(enum, list) or not enum:
            raise _bad("enum must be a non-empty array")
        if len(enum) > MAX_ENUM:
            raise _bad(f"enum has {len(enum)} values (at most {MAX_ENUM})")
    pattern = node.get("pattern")
    if pattern is not None and not isinstance(pattern, str):
        raise _bad(f"pattern must be a string, got {pattern!r}")


def _dump(schema: Any) -> bytes:
    try:
        return orjson.dumps(schema)
    except TypeError as exc:  # an integer beyond 64 bits, a value JSON cannot hold
        raise _bad(f"the JSON schema holds a value that cannot be converted: {exc}") from None


def check_schema(schema: Any) -> None:
    """Raise InvalidRequest (400) if `schema` is too large, too deep or has an empty range."""
    if len(_dump(schema)) > MAX_SCHEMA_BYTES:
        raise _bad(f"the JSON schema is larger than {MAX_SCHEMA_BYTES // 1024} KiB")
    nodes = 0
    stack: list[tuple[Any, int]] = [(schema, 0)]
    while stack:
        value, depth = stack.pop()
        nodes += 1
        if nodes > MAX_SCHEMA_NODES:
            raise _bad(f"the JSON schema has more than {MAX_SCHEMA_NODES} values")
        if depth > MAX_SCHEMA_DEPTH:
            raise _bad(f"the JSON schema is nested deeper than {MAX_SCHEMA_DEPTH} levels")
        if isinstance(value, dict):
            _check_node(value)
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)


def grammar_for_schema(schema: Any) -> str:
    """GBNF for a JSON schema (checked and bounded first)."""
    check_schema(schema)
    try:
        return _native.json_schema_to_grammar(_dump(schema).decode())
    except (ValueError, RuntimeError) as exc:
        raise _bad(str(exc)) from exc


def grammar_for_format(fmt: str | dict[str, Any] | None) -> str:
    """GBNF for an Ollama `format` value; "" when unconstrained."""
    if fmt is None or fmt == "":
        return ""
    if fmt == "json":
        schema: Any = _JSON_OBJECT_SCHEMA
    elif isinstance(fmt, dict):
        schema = fmt or _JSON_OBJECT_SCHEMA
    else:
        raise InvalidRequest(f'invalid format: "{fmt}"; expected "json" or a JSON schema object')
    return grammar_for_schema(schema)
