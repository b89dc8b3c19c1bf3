"""Environment values read the way Ollama reads them (envconfig/config.go): spaces and surrounding
quotes trimmed; booleans by Go's strconv.ParseBool, where an unparsable non-empty value counts as
true."""

from __future__ import annotations

from collections.abc import Mapping

_GO_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def trim(value: str) -> str:
    """Ollama trims spaces and surrounding quotes from every environment value."""
    return value.strip().strip("\"'").strip()


def env_value(env: Mapping[str, str], key: str) -> str:
    return trim(env.get(key) or "")


def env_flag(env: Mapping[str, str], key: str) -> bool:
    raw = env_value(env, key)
    return bool(raw) and raw not in _GO_FALSE
