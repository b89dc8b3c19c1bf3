"""Routes llama.cpp's log lines (buffered in C++) into Python `logging`."""

from __future__ import annotations

import logging

from a3s_power import _native

logger = logging.getLogger("a3s_power.llama")

_LEVELS = {1: logging.DEBUG, 2: logging.INFO, 3: logging.WARNING, 4: logging.ERROR}


def drain() -> None:
    """Forward every complete llama.cpp log line collected so far."""
    for level, text in _native.drain_logs():
        logger.log(_LEVELS.get(level, logging.DEBUG), "%s", text)
