"""Blob downloads: parallel ranged parts into a sparse `-partial` file, resumable, verified before use.

On disk (next to the blobs, as Ollama does): `sha256-<hex>-partial` holds the bytes, and
`sha256-<hex>-partial-<N>` holds part N's progress as JSON `{"N","Offset","Size","Completed"}`.
`Completed` is only advanced after the bytes are written (and fsynced at each checkpoint), so a killed
process resumes from the last checkpoint. The blob becomes visible only after its sha256 matched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson

from a3s_power.registry.client import RegistryClient, registry_error
from a3s_power.store.atomic import atomic_write_bytes, fsync_dir
from a3s_power.store.blobs import sha256_file
from a3s_power.store.errors import DigestMismatch, RegistryError
from a3s_power.store.layout import StoreLayout
from a3s_power.store.names import normalize_digest

ProgressFn = Callable[[int], None]
log = logging.getLogger(__name__)


class PartStalled(Exception):
    """No byte of a part arrived for `stall_timeout` seconds: reconnect (Ollama's stall detection)."""


@dataclass(slots=True)
class Part:
    n: int
    offset: int
    size: int
    completed: int = 0

    def to_json(self) -> bytes:
        return orjson.dumps(
            {"N": self.n, "Offset": self.offset, "Size": self.size, "Completed": self.completed}
        )


def plan_parts(size: int, min_part: int, max_part: int) -> list[Part]:
    part_size = max(min_part, min(max_part, size // 16)) if size else 1
    parts = []
    offset = 0
    n = 0
    while offset < size:
        length = min(part_size, size - offset)
        parts.append(Part(n, offset, length))
        offset += length
        n += 1
    return parts


def _load_parts(layout: StoreLayout, digest: str, planned: list[Part]) -> list[Part]:
    """Resume state: the saved parts if they describe the same layout, else a fresh plan."""
    loaded: list[Part] = []
    for part in planned:
        path = layout.partial_part_path(digest, part.n)
        try:
            data = orjson.loads(path.read_bytes())
            saved = Part(int(data["N"]), int(data["Offset"]), int(data["Size"]), int(data["Completed"]))
        except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return planned
        if (saved.n, saved.offset, saved.size) != (part.n, part.offset, part.size):
            return planned
        saved.completed = max(0, min(saved.completed, saved.size))
        loaded.append(saved)
    return loaded


def partial_progress(layout: StoreLayout, digest: str) -> int:
    """Bytes another downloader has checkpointed for `digest` (the sum of its part records)."""
    total = 0
    for path in layout.blobs.glob(layout.partial_path(digest).name + "-*"):
        with contextlib.suppress(OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            total += int(orjson.loads(path.read_bytes())["Completed"])
    return total


def same_origin(a: str, b: str) -> bool:
    """Credentials only go back to the registry itself, never to a redirect target (e.g. a CDN)."""
    ua, ub = httpx.URL(a), httpx.URL(b)
    return (ua.scheme, ua.host, ua.port) == (ub.scheme, ub.host, ub.port)


def first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    return first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


def remove_partial(layout: StoreLayout, digest: str) -> None:
    """Delete a download's partial file, its part records and temp files a killed writer left."""
    name = layout.partial_path(digest).name
    for path in [*layout.blobs.glob(name + "*"), *layout.blobs.glob("." + name + "*")]:
        with contextlib.suppress(OSError):
            path.unlink()


class BlobDownload:
    """Download one blob of known digest and size into the store."""

    def __init__(self, client: RegistryClient, layout: StoreLayout, digest: str, size: int) -> None:
        self.client = client
        self.layout = layout
        self.digest = normalize_digest(digest)
        self.size = size
        self.options = client.options
        self.parts: list[Part] = []
        self._fd = -1
        self._last_checkpoint = 0.0

    @property
    def completed(self) -> int:
        return sum(p.completed for p in self.parts)

    async def run(self, on_progress: ProgressFn) -> None:
        """Fetch every missing byte into the partial file. Call `finish()` afterwards to verify + publish."""
        self.layout.ensure()
        if self.size <= 0:
            self.size = await self._head_size()
        planned = plan_parts(self.size, self.options.min_part_size, self.options.max_part_size)
        partial = self.layout.partial_path(self.digest)
        self.parts = _load_parts(self.layout, self.digest, planned) if partial.exists() else planned
        if self.parts is planned:
            remove_partial(self.layout, self.digest)
        self._fd = os.open(partial, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if os.fstat(self._fd).st_size != self.size:
                os.ftruncate(self._fd, self.size)
            on_progress(self.completed)
            if self.completed < self.size:
                url = await self._direct_url()
                limit = asyncio.Semaphore(self.options.max_parallel)
                try:
                    async with asyncio.TaskGroup() as group:
                        for part in self.parts:
                            if part.completed < part.size:
                                group.create_task(self._run_part(url, part, limit, on_progress))
                except ExceptionGroup as group_error:
                    raise first_leaf(group_error) from None
        finally:
            self._checkpoint(force=True)
            os.close(self._fd)
            self._fd = -1

    def finish(self) -> None:
        """Verify the sha256 of the partial file; publish it as the blob or delete it on mismatch."""
        partial = self.layout.partial_path(self.digest)
        got = sha256_file(partial)
        if got != self.digest:
            remove_partial(self.layout, self.digest)
            raise DigestMismatch(self.digest, got, downloaded=True)
        os.replace(partial, self.layout.blob_path(self.digest))
        fsync_dir(self.layout.blobs)
        remove_partial(self.layout, self.digest)

    async def _head_size(self) -> int:
        response = await self.client.request(
            "HEAD", self.client.url(f"blobs/{self.digest}"), follow_redirects=True
        )
        if response.status_code != 200:
            raise registry_error(response, f"blob {self.digest}")
        return int(response.headers.get("Content-Length", "0"))

    async def _direct_url(self) -> str:
        """Follow the registry's redirect once (e.g. to a CDN) so parts go straight to the blob host."""
        url = self.client.url(f"blobs/{self.digest}")
        for _ in range(5):
            response = await self.client.request("GET", url, headers={"Range": "bytes=0-0"})
            if response.is_redirect:
                url = str(response.url.join(response.headers["Location"]))
                if not same_origin(url, self.client.base):
                    return url
                continue
            if response.status_code in (200, 206):
                return url
            raise registry_error(response, f"pull blob {self.digest}")
        raise RegistryError(502, f"pull blob {self.digest}: too many redirects")

    async def _run_part(
        self, url: str, part: Part, limit: asyncio.Semaphore, on_progress: ProgressFn
    ) -> None:
        """Fetch one part with retries: 2^n s backoff on errors; a stall reconnects without counting
        as an attempt (as Ollama), up to `max_stall_retries` times."""
        attempts = 0
        stalls = 0
        last_error: Exception | None = None
        async with limit:
            while part.completed < part.size:
                if attempts >= self.options.max_retries:
                    raise RegistryError(502, f"max retries exceeded: {last_error}")
                try:
                    await self._fetch_part(url, part, on_progress)
                except PartStalled:
                    stalls += 1
                    log.info("part %d stalled; retrying", part.n)
                    self._checkpoint(force=True)
                    if stalls > self.options.max_stall_retries:
                        raise RegistryError(
                            502, f"max retries exceeded: part {part.n} stalled {stalls} times"
                        ) from None
                except (httpx.TransportError, RegistryError) as exc:
                    if (
                        isinstance(exc, RegistryError)
                        and 400 <= exc.http_status < 500
                        and exc.http_status != 408
                    ):
                        raise
                    last_error = exc
                    self._checkpoint(force=True)
                    await asyncio.sleep(self.options.retry_base_delay * (2**attempts))
                    attempts += 1

    async def _fetch_part(self, url: str, part: Part, on_progress: ProgressFn) -> None:
        start = part.offset + part.completed
        end = part.offset + part.size - 1
        with_auth = same_origin(url, self.client.base)
        async with self.client.stream(
            "GET", url, headers={"Range": f"bytes={start}-{end}"}, with_auth=with_auth
        ) as r:
            if r.status_code == 206:
                skip = 0
            elif r.status_code == 200:
                skip = start  # server ignored Range: discard what we already have
            else:
                await r.aread()
                raise registry_error(r, f"pull blob {self.digest}")
            loop = asyncio.get_running_loop()
            stall = self.options.stall_timeout
            try:
                async with asyncio.timeout(stall) as deadline:
                    async for chunk in r.aiter_bytes():
                        deadline.reschedule(loop.time() + stall)
                        if self._write_chunk(part, chunk, skip, on_progress):
                            break
                        skip = max(0, skip - len(chunk))
            except TimeoutError:
                raise PartStalled() from None
        if part.completed < part.size:
            raise httpx.RemoteProtocolError(
                f"part {part.n} ended early at {part.completed}/{part.size} bytes"
            )

    def _write_chunk(self, part: Part, chunk: bytes, skip: int, on_progress: ProgressFn) -> bool:
        """Write what of `chunk` belongs to `part`, after dropping `skip` unwanted leading bytes (a
        server that ignored Range). True once the part is complete."""
        chunk = chunk[min(skip, len(chunk)) :][: part.size - part.completed]
        if chunk:
            os.pwrite(self._fd, chunk, part.offset + part.completed)
            part.completed += len(chunk)
            on_progress(self.completed)
            self._checkpoint()
        return part.completed >= part.size

    def _checkpoint(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_checkpoint < self.options.checkpoint_interval:
            return
        self._last_checkpoint = now
        if self._fd >= 0:
            os.fsync(self._fd)
        for part in self.parts:
            atomic_write_bytes(self.layout.partial_part_path(self.digest, part.n), part.to_json())


async def download_url_resumable(
    http: httpx.AsyncClient, url: str, partial: Path, on_progress: Callable[[int, int], None]
) -> None:
    """Single-stream download of an unknown-digest file with `Range: bytes=<have>-` resume."""
    partial.parent.mkdir(parents=True, exist_ok=True)
    have = partial.stat().st_size if partial.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    async with http.stream("GET", url, headers=headers, follow_redirects=True) as response:
        if response.status_code == 416 and have:
            on_progress(have, have)
            return
        if response.status_code == 200:
            have = 0
        elif response.status_code != 206:
            await response.aread()
            raise registry_error(response, f"download {url}")
        total = have + int(response.headers.get("Content-Length", "0") or 0)
        with open(partial, "r+b" if have else "wb") as handle:
            handle.seek(have)
            handle.truncate()
            async for chunk in response.aiter_bytes():
                handle.write(chunk)
                have += len(chunk)
                on_progress(have, max(total, have))
            handle.flush()
            os.fsync(handle.fileno())
