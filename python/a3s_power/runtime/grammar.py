"""Constrained-decoding helpers: Ollama's `format` ("json" or a JSON schema) → GBNF."""

from __future__ import annotations

from typing import Any

import orjson

from a3s_power import _native
from a3s_power.errors import InvalidRequest

# Ollama's "json" mode constrains output to a JSON object
_JSON_OBJECT_SCHEMA = {"type": "object"}


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
    try:
        return _native.json_schema_to_grammar(orjson.dumps(schema).decode())
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from exc
