"""Constrained-decoding helpers: Ollama's `format` ("json" or a JSON schema) → GBNF.

A schema is checked before llama.cpp's converter sees it, and bounded, since the converter trusts
its input: `minLength > maxLength` (or `minItems > maxItems`) makes it allocate without end, huge
repetition counts or enums make grammars the sampler needs seconds and gigabytes to compile. Each
bound breached is a 400 naming the keyword. What is left is still not always quick (llama.cpp's
converter is superlinear in an object's optional properties: a valid 60 KB schema takes ~25 s), so
the conversion runs on a worker thread without the GIL (`compile_off_loop`), bounded in time: past
the bound it is a 400 naming the request's field, and the event loop never waits on it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
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
# llama.cpp's converter takes time cubic in an object's optional properties (500: 0.4 s, 1000: 3 s,
# 2000: 25 s): the sum of their cubes over the schema's objects is bounded (two objects of 512)
MAX_OPTIONAL_COST = 2 * 512**3
COMPILE_TIMEOUT = 10.0  # seconds a request's schemas may take to convert (Settings.grammar_timeout)

# (min keyword, max keyword) pairs llama.cpp turns into repetitions
_RANGES = (("minLength", "maxLength"), ("minItems", "maxItems"), ("minProperties", "maxProperties"))
_NUMERIC_RANGES = (("minimum", "maximum"), ("exclusiveMinimum", "exclusiveMaximum"))


def _bad(message: str, field: str = "format") -> InvalidRequest:
    return InvalidRequest(f"invalid {field}: {message}")


def _check_count(node: dict[str, Any], key: str, field: str) -> int | None:
    if key not in node:
        return None
    value = node[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise _bad(f"{key} must be a non-negative integer, got {value!r}", field)
    value = int(value)
    if value < 0:
        raise _bad(f"{key} must be a non-negative integer, got {value}", field)
    if value > MAX_REPETITION:
        raise _bad(f"{key} {value} is too large (at most {MAX_REPETITION})", field)
    return value


def _check_node(node: dict[str, Any], field: str) -> None:
    for low_key, high_key in _RANGES:
        low, high = _check_count(node, low_key, field), _check_count(node, high_key, field)
        if low is not None and high is not None and low > high:
            raise _bad(f"{low_key} ({low}) is greater than {high_key} ({high}): no value can match", field)
    for low_key, high_key in _NUMERIC_RANGES:
        for key in (low_key, high_key):
            if key in node and (isinstance(node[key], bool) or not isinstance(node[key], int | float)):
                raise _bad(f"{key} must be a number, got {node[key]!r}", field)
        low, high = node.get(low_key), node.get(high_key)
        if isinstance(low, int | float) and isinstance(high, int | float) and low > high:
            raise _bad(f"{low_key} ({low}) is greater than {high_key} ({high}): no value can match", field)
        for key in (low_key, high_key):
            if isinstance(node.get(key), float) and abs(node[key]) > 2**63:
                raise _bad(f"{key} {node[key]} is out of range", field)
            if isinstance(node.get(key), int) and abs(node[key]) >= 2**63:
                raise _bad(f"{key} {node[key]} is out of range", field)
    enum = node.get("enum")
    if enum is not None:
        if not isinstance(enum, list) or not enum:
            raise _bad("enum must be a non-empty array", field)
        if len(enum) > MAX_ENUM:
            raise _bad(f"enum has {len(enum)} values (at most {MAX_ENUM})", field)
    pattern = node.get("pattern")
    if pattern is not None and not isinstance(pattern, str):
        raise _bad(f"pattern must be a string, got {pattern!r}", field)


def _optional_properties(node: dict[str, Any]) -> int:
    properties = node.get("properties")
    if not isinstance(properties, dict):
        return 0
    required = node.get("required")
    names = {r for r in required if isinstance(r, str)} if isinstance(required, list) else set()
    return len(properties.keys() - names)


def _dump(schema: Any, field: str = "format") -> bytes:
    try:
        return orjson.dumps(schema)
    except TypeError as exc:  # an integer beyond 64 bits, a value JSON cannot hold
        raise _bad(f"the JSON schema holds a value that cannot be converted: {exc}", field) from None


def check_schema(schema: Any, field: str = "format") -> None:
    """Raise InvalidRequest (400, naming `field`) if `schema` is too large, too deep or has an empty
    range."""
    if len(_dump(schema, field)) > MAX_SCHEMA_BYTES:
        raise _bad(f"the JSON schema is larger than {MAX_SCHEMA_BYTES // 1024} KiB", field)
    nodes = 0
    optional_cost = 0
    stack: list[tuple[Any, int]] = [(schema, 0)]
    while stack:
        value, depth = stack.pop()
        nodes += 1
        if nodes > MAX_SCHEMA_NODES:
            raise _bad(f"the JSON schema has more than {MAX_SCHEMA_NODES} values", field)
        if depth > MAX_SCHEMA_DEPTH:
            raise _bad(f"the JSON schema is nested deeper than {MAX_SCHEMA_DEPTH} levels", field)
        if isinstance(value, dict):
            _check_node(value, field)
            optional_cost += _optional_properties(value) ** 3
            if optional_cost > MAX_OPTIONAL_COST:
                raise _bad("the JSON schema has too many optional properties (at most 512 in one object, "
                           "or fewer spread over several)", field)  # fmt: skip
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)


def grammar_for_schema(schema: Any, field: str = "format") -> str:
    """GBNF for a JSON schema (checked and bounded first). Blocking (up to seconds): call it on a
    worker thread, through `compile_off_loop`."""
    check_schema(schema, field)
    try:
        return _native.json_schema_to_grammar(_dump(schema, field).decode())
    except (ValueError, RuntimeError) as exc:
        raise _bad(str(exc), field) from exc


def grammar_for_format(fmt: str | dict[str, Any] | None, field: str = "format") -> str:
    """GBNF for an Ollama `format` value; "" when unconstrained. Blocking, as grammar_for_schema."""
    if fmt is None or fmt == "":
        return ""
    if fmt == "json":
        schema: Any = _JSON_OBJECT_SCHEMA
    elif isinstance(fmt, dict):
        schema = fmt or _JSON_OBJECT_SCHEMA
    else:
        raise InvalidRequest(f'invalid {field}: "{fmt}"; expected "json" or a JSON schema object')
    return grammar_for_schema(schema, field)


# compiles run here, not on the default executor: one that runs past its bound keeps its thread
# until it ends, and must not hold up the threads that render prompts and read the store
_COMPILER = ThreadPoolExecutor(max_workers=2, thread_name_prefix="a3s-grammar")


async def compile_off_loop(compile_: Callable[[], str], field: str, timeout: float = COMPILE_TIMEOUT) -> str:
    """Run `compile_` (a grammar_for_* call) on a worker thread: the event loop keeps serving while
    it runs (the native converter releases the GIL). Past `timeout` seconds it is a 400 naming
    `field`; the thread finishes on its own (a native call cannot be interrupted) and its result is
    dropped."""
    running = asyncio.get_running_loop().run_in_executor(_COMPILER, compile_)
    try:
        return await asyncio.wait_for(running, timeout)
    except TimeoutError:
        message = f"the JSON schema takes longer than {timeout:g} s to compile; simplify it"
        raise _bad(message, field) from None
