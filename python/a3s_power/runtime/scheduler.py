"""The scheduler: which models are loaded, who is using them, and when they go.

Ollama's semantics (server/sched.go): a request attaches to a loaded runner whose load-time options
match, otherwise waits in a bounded queue (full → 503 Busy) for the one-at-a-time loader. The loader
reloads a runner whose options changed once it is idle, evicts an idle runner (shortest keep_alive,
then least recently used) when `max_loaded_models` are loaded, and loads in a worker thread. When a
runner's last user leaves, its keep_alive starts: 0 unloads at once, a negative value never.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from a3s_power.errors import Busy
from a3s_power.runtime.loaded import LoadedModel, load_model

log = logging.getLogger(__name__)
_FOREVER_AFTER = 9.2e9  # seconds
BUSY_MESSAGE = "server busy, please try again.  maximum pending requests exceeded"


@dataclass(frozen=True, slots=True)
class LoadSpec:
    """Everything fixed when a model is loaded; a request needing other values reloads it."""

    path: str
    num_ctx: int = 4096
    num_parallel: int = 1
    num_batch: int = 2048
    num_thread: int = 0
    num_gpu: int = -1
    use_mmap: bool = True
    embedding: bool = False
    lora_paths: tuple[str, ...] = ()
    flash_attention: bool | None = None
    kv_cache_type: str = "f16"
    rpc_servers: tuple[str, ...] = ()  # ggml RPC workers to split the model across (serve --rpc)
    tensor_split: str = ""  # "local,worker1,...": layer shares ("" = by free memory)
    projector_path: str | None = None  # mmproj GGUF (vision)
    cache_ram_mib: int = 8192
    draft_max: int = 0
    draft_path: str | None = None  # speculative draft model GGUF (PARAMETER draft_model)


@dataclass(frozen=True, slots=True)
class RunnerInfo:
    """What `ps` reports about a loaded model besides its state."""

    digest: str = ""
    size: int = 0
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(eq=False)
class Runner:
    """A loaded model and its users."""

    key: str  # the model's full name
    spec: LoadSpec
    loaded: LoadedModel
    digest: str = ""
    size: int = 0
    details: dict[str, Any] = field(default_factory=dict)
    refs: int = 0
    keep_alive: float = 300.0
    expires_at: dt.datetime | None = None
    last_used: float = field(default_factory=time.monotonic)
    expiring: bool = False
    _timer: asyncio.TimerHandle | None = None


Loader = Callable[[LoadSpec], LoadedModel]


def _load(spec: LoadSpec) -> LoadedModel:
    from a3s_power.store.blobs import verify_stored_blob

    for path in (spec.path, *spec.lora_paths):  # a bit flip is a clear error naming the blob, not garbage
        verify_stored_blob(path)
    return load_model(
        spec.path,
        num_ctx=spec.num_ctx,
        num_parallel=spec.num_parallel,
        num_batch=spec.num_batch,
        num_thread=spec.num_thread,
        num_gpu=spec.num_gpu,
        use_mmap=spec.use_mmap,
        embedding=spec.embedding,
        lora_paths=list(spec.lora_paths),
        flash_attention=spec.flash_attention,
        kv_cache_type=spec.kv_cache_type,
        rpc_servers=spec.rpc_servers,
        tensor_split=spec.tensor_split,
        projector_path=spec.projector_path,
        cache_ram_mib=spec.cache_ram_mib,
        draft_max=spec.draft_max,
        draft_path=spec.draft_path,
        max_queue=1 << 20,  # the scheduler's queue is the one that answers 503
    )


class Scheduler:
    def __init__(
        self,
        *,
        max_loaded_models: int = 3,
        max_queue: int = 512,
        default_keep_alive: float = 300.0,
        loader: Loader = _load,
    ) -> None:
        self.max_loaded_models = max_loaded_models
        self.max_queue = max_queue
        self.default_keep_alive = default_keep_alive
        self._loader = loader
        self._runners: dict[str, Runner] = {}
        self._load_lock = asyncio.Lock()
        self._changed = asyncio.Condition()
        self._pending = 0

    # -- public ----------------------------------------------------------------------------------
    @property
    def pending(self) -> int:
        """Requests waiting for the loader (the bounded queue that answers 503)."""
        return self._pending

    def loaded(self) -> list[Runner]:
        return list(self._runners.values())

    def get(self, key: str) -> Runner | None:
        return self._runners.get(key)

    async def acquire(
        self, key: str, spec: LoadSpec, *, describe: Callable[[], RunnerInfo] | None = None
    ) -> Runner:
        """Hold a runner for `key` loaded with `spec` (release it with `release`). `describe` is
        called only when the model is loaded: what `ps` shows about it."""
        self.admit(key)
        runner = self._attach(key, spec)
        if runner is not None:
            return runner
        if self._pending >= self.max_queue:
            raise Busy(BUSY_MESSAGE)
        self._pending += 1
        try:
            async with self._load_lock:
                runner = self._attach(key, spec)
                if runner is not None:
                    return runner
                current = self._runners.get(key)
                if current is not None:  # loaded with other options: reload once it is idle
                    current.expiring = True
                    await self._wait_idle(current)
                    await self._unload(current)
                while len(self._runners) >= self.max_loaded_models:
                    await self._evict_one()
                loaded = await asyncio.to_thread(self._loader, spec)
                info = describe() if describe is not None else RunnerInfo()
                runner = Runner(
                    key=key,
                    spec=spec,
                    loaded=loaded,
                    digest=info.digest,
                    size=info.size,
                    details=info.details,
                    keep_alive=self.default_keep_alive,
                )
                runner.refs = 1
                self._runners[key] = runner
                log.info("loaded %s (%.2f s)", key, loaded.load_duration / 1e9)
                return runner
        finally:
            self._pending -= 1

    def admit(self, key: str) -> None:
        """Raise Busy (Ollama's 503) when `key` cannot take another request: its runner already holds
        num_parallel running requests plus OLLAMA_MAX_QUEUE waiting ones, or (not loaded) the loader's
        queue is full. Called before a response starts, so a stream is refused with a 503, not cut."""
        runner = self._runners.get(key)
        if runner is not None and not runner.expiring:
            if runner.refs >= max(1, runner.spec.num_parallel) + self.max_queue:
                raise Busy(BUSY_MESSAGE)
        elif self._pending >= self.max_queue:
            raise Busy(BUSY_MESSAGE)

    def release(self, runner: Runner, keep_alive: float | None = None) -> None:
        """A user is done. The request's keep_alive (if it sent one) becomes the runner's."""
        if keep_alive is not None:
            runner.keep_alive = keep_alive
        runner.refs -= 1
        runner.last_used = time.monotonic()
        if runner.refs > 0:
            return
        self._arm_timer(runner)
        asyncio.get_running_loop().create_task(self._notify())

    async def unload(self, key: str) -> bool:
        """Unload now (keep_alive 0 with no prompt); waits for current users to finish."""
        runner = self._runners.get(key)
        if runner is None:
            return False
        runner.expiring = True
        await self._wait_idle(runner)
        await self._unload(runner)
        return True

    def expire_when_idle(self, runner: Runner) -> None:
        """keep_alive 0: unload as soon as the last user leaves."""
        runner.keep_alive = 0.0
        if runner.refs == 0:
            self._arm_timer(runner)

    async def shutdown(self) -> None:
        for runner in list(self._runners.values()):
            await self._unload(runner)

    # -- internals ---------------------------------------------------------------------------------
    def _attach(self, key: str, spec: LoadSpec) -> Runner | None:
        runner = self._runners.get(key)
        if runner is None or runner.expiring or runner.spec != spec:
            return None
        if runner.loaded.broken:  # lost an RPC worker: acquire() reloads it once its users are gone
            log.warning("%s: %s", key, runner.loaded.broken)
            return None
        runner.refs += 1
        runner.last_used = time.monotonic()
        if runner._timer is not None:
            runner._timer.cancel()
            runner._timer = None
        runner.expires_at = None
        return runner

    def _arm_timer(self, runner: Runner) -> None:
        if runner._timer is not None:
            runner._timer.cancel()
            runner._timer = None
        loop = asyncio.get_running_loop()
        # beyond ~292 years (Go's longest duration; also what timedelta and call_later can hold) is forever
        if math.isinf(runner.keep_alive) or not runner.keep_alive < _FOREVER_AFTER:
            runner.expires_at = dt.datetime.max.replace(year=2318, tzinfo=dt.UTC)
            return
        delay = max(0.0, runner.keep_alive)
        runner.expires_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=delay)
        runner._timer = loop.call_later(delay, lambda: loop.create_task(self._expire(runner)))

    async def _expire(self, runner: Runner) -> None:
        if runner.refs == 0 and self._runners.get(runner.key) is runner:
            await self._unload(runner)

    async def _wait_idle(self, runner: Runner) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: runner.refs == 0)

    async def _evict_one(self) -> None:
        """Unload the idle runner with the shortest keep_alive (then least recently used); if every
        runner is busy, wait for one to become idle."""
        async with self._changed:
            await self._changed.wait_for(lambda: any(r.refs == 0 for r in self._runners.values()))
        idle = [r for r in self._runners.values() if r.refs == 0]
        victim = min(idle, key=lambda r: (r.keep_alive, r.last_used))
        await self._unload(victim)

    async def _unload(self, runner: Runner) -> None:
        if self._runners.get(runner.key) is runner:
            del self._runners[runner.key]
        if runner._timer is not None:
            runner._timer.cancel()
            runner._timer = None
        runner.expiring = True
        await asyncio.to_thread(runner.loaded.close)
        log.info("unloaded %s", runner.key)
        await self._notify()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()
