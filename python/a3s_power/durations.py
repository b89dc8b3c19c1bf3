"""Ollama's keep_alive values: JSON numbers are seconds, strings are Go durations ("5m", "1h30m")."""

from __future__ import annotations

import math
import re

from a3s_power.errors import InvalidRequest

FOREVER = math.inf
# Go's time.Duration is int64 nanoseconds: ~292 years. Anything longer is "never unload".
MAX_DURATION_SECONDS = (2**63 - 1) / 1e9
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_TERM = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_go_duration(text: str) -> float:
    """Seconds in a Go duration string (`time.ParseDuration`); raises InvalidRequest like Go errors."""
    raw = text
    sign = 1.0
    if text[:1] and text[0] in "+-":
        sign = -1.0 if text[0] == "-" else 1.0
        text = text[1:]
    if text == "0":
        return 0.0
    if not text:
        raise InvalidRequest(f'time: invalid duration "{raw}"')
    total = 0.0
    pos = 0
    while pos < len(text):
        match = _TERM.match(text, pos)
        if match is None:
            if re.fullmatch(r"[\d.]+", text[pos:]):
                raise InvalidRequest(f'time: missing unit in duration "{raw}"')
            raise InvalidRequest(f'time: invalid duration "{raw}"')
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    return sign * total


def keep_alive_seconds(value: object) -> float:
    """A request's keep_alive → seconds; negative means forever (returned as `FOREVER`)."""
    if isinstance(value, bool):
        raise InvalidRequest("json: cannot unmarshal bool into Go value of type api.Duration")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        seconds = parse_go_duration(value.strip())
    else:
        raise InvalidRequest("Unsupported type: '" + type(value).__name__ + "'")
    if math.isnan(seconds):
        raise InvalidRequest("invalid keep_alive: not a number")
    if seconds < 0 or seconds > MAX_DURATION_SECONDS:
        return FOREVER
    return seconds
