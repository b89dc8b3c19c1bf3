"""Turn a background transfer into Ollama's throttled progress objects."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

Event = dict[str, Any]


async def track(
    work: Callable[[Callable[[int], None]], Awaitable[None]],
    status: str,
    digest: str,
    total: int,
    interval: float,
) -> AsyncIterator[Event]:
    """Run `work(report)`, yielding `{"status","digest","total","completed"}` at most every `interval` s.

    The last event always carries the final `completed`. An exception from `work` propagates.
    """
    state = {"completed": 0}

    def report(completed: int) -> None:
        state["completed"] = completed

    task = asyncio.ensure_future(work(report))
    last_sent = -1
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=interval)
            if done:
                task.result()
            if state["completed"] != last_sent or done:
                last_sent = state["completed"]
                yield {"status": status, "digest": digest, "total": total, "completed": last_sent}
            if done:
                return
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
