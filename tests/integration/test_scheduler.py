"""The scheduler with real model loads (SmolLM2): attach, reload on new load options, eviction,
keep_alive timers, unload, and the bounded queue's 503 text."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from a3s_power.errors import Busy
from a3s_power.runtime.scheduler import BUSY_MESSAGE, LoadSpec, Scheduler

pytestmark = pytest.mark.timeout(120)


def _spec(path: Path, num_ctx: int = 512) -> LoadSpec:
    return LoadSpec(path=str(path), num_ctx=num_ctx, num_parallel=1, num_batch=512)


def test_attach_reload_and_keep_alive(smollm2_path: Path) -> None:
    async def scenario() -> None:
        sched = Scheduler(default_keep_alive=60)
        a = await sched.acquire("m", _spec(smollm2_path))
        b = await sched.acquire("m", _spec(smollm2_path))
        assert a is b and a.refs == 2  # same load options: shared runner
        sched.release(a)
        sched.release(b, keep_alive=0.2)
        assert a.expires_at is not None
        # a request with other load options waits for idleness, then reloads
        c = await sched.acquire("m", _spec(smollm2_path, num_ctx=1024))
        assert c is not a and c.spec.num_ctx == 1024 and sched.loaded() == [c]
        sched.release(c, keep_alive=0.2)
        await asyncio.sleep(0.6)
        assert sched.loaded() == []  # keep_alive expired
        await sched.shutdown()

    asyncio.run(scenario())


def test_keep_alive_zero_and_explicit_unload(smollm2_path: Path) -> None:
    async def scenario() -> None:
        sched = Scheduler()
        runner = await sched.acquire("m", _spec(smollm2_path))
        sched.release(runner, keep_alive=0)
        await asyncio.sleep(0.3)
        assert sched.loaded() == []
        runner = await sched.acquire("m", _spec(smollm2_path))
        sched.release(runner, keep_alive=float("inf"))
        assert runner.expires_at is not None and runner.expires_at.year == 2318
        assert await sched.unload("m") and sched.loaded() == []
        assert not await sched.unload("m")

    asyncio.run(scenario())


def test_max_loaded_models_evicts_the_idle_one(smollm2_path: Path) -> None:
    async def scenario() -> None:
        sched = Scheduler(max_loaded_models=1)
        first = await sched.acquire("first", _spec(smollm2_path))
        waiting = asyncio.ensure_future(sched.acquire("second", _spec(smollm2_path)))
        await asyncio.sleep(0.3)
        assert not waiting.done()  # `first` is busy: nothing can be evicted yet
        sched.release(first)
        second = await asyncio.wait_for(waiting, 30)
        assert [r.key for r in sched.loaded()] == ["second"]
        sched.release(second)
        await sched.shutdown()

    asyncio.run(scenario())


def test_full_queue_answers_busy(smollm2_path: Path) -> None:
    async def scenario() -> None:
        sched = Scheduler(max_loaded_models=1, max_queue=1)
        held = await sched.acquire("a", _spec(smollm2_path))
        queued = asyncio.ensure_future(sched.acquire("b", _spec(smollm2_path)))
        await asyncio.sleep(0.1)
        with pytest.raises(Busy) as err:
            await sched.acquire("c", _spec(smollm2_path))
        assert str(err.value) == BUSY_MESSAGE and err.value.status == 503
        # attaching to a loaded runner never queues
        again = await sched.acquire("a", _spec(smollm2_path))
        sched.release(again)
        sched.release(held)
        sched.release(await queued)
        await sched.shutdown()

    asyncio.run(scenario())
