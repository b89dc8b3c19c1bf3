"""Model management behind `/api/{tags,show,pull,push,create,copy,delete,blobs}`.

Thin wrappers over the store and registry packages that add what is specific to the HTTP API:
Ollama's exact error texts (which differ per endpoint for the same failure, e.g. `model 'x' not
found` on show/delete but `model "x" not found` on copy), unloading a deleted model, streaming blob
uploads to disk, and keeping blocking disk work (hashing, GGUF parsing, fsync) off the event loop.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

import msgspec

from a3s_power.api.ollama.manage_protocol import ListResponse, ShowResponse
from a3s_power.api.ollama.show import list_model, show_response
from a3s_power.errors import InvalidRequest, PowerError
from a3s_power.errors import ModelNotFound as AnyModelNotFound
from a3s_power.registry import options_from_env, pull_model, push_model
from a3s_power.runtime.scheduler import Scheduler
from a3s_power.service.models import list_entries
from a3s_power.store.blobs import BlobWriter
from a3s_power.store.create import CreateRequest, create_model
from a3s_power.store.errors import BlobNotFound, InvalidModelName, StoreFull, is_disk_full
from a3s_power.store.names import ModelName, normalize_digest, parse_name
from a3s_power.store.parameters import go_quote  # Go's %q of a string
from a3s_power.store.store import ModelEntry, ModelStore

Event = dict[str, Any]

# Uploaded bytes are gathered into pieces of this size and written (and hashed) in a worker thread.
UPLOAD_WRITE_SIZE = 4 << 20


class NotFound(PowerError):
    """A 404 whose text is given verbatim (the store's ModelNotFound carries the scheduler's text)."""

    status = 404


# -- list / show ----------------------------------------------------------------------------------
# the last /api/tags body per store, with the entries it was made from (reused while they are)
_TAGS_BODIES: weakref.WeakKeyDictionary[ModelStore, tuple[list[ModelEntry], bytes]]
_TAGS_BODIES = weakref.WeakKeyDictionary()


async def list_tags_body(store: ModelStore) -> bytes:
    """`/api/tags` (every local model, newest first) encoded; the same bytes again while the
    store's manifests are unchanged (same files, mtimes and sizes), so a create, copy, delete or
    pull shows in the next listing."""
    entries = await list_entries(store)
    last = _TAGS_BODIES.get(store)
    if (
        last is not None
        and len(last[0]) == len(entries)
        and all(a is b for a, b in zip(last[0], entries, strict=True))
    ):
        return last[1]
    body = msgspec.json.encode(ListResponse([list_model(entry) for entry in entries]))
    _TAGS_BODIES[store] = (entries, body)
    return body


async def show(store: ModelStore, model: str, *, verbose: bool = False) -> ShowResponse:
    """`/api/show`: 400 `model is required`, 400 `invalid model name`, 404 `model 'x' not found`."""
    if not model:
        raise InvalidRequest("model is required")
    parse_name(model)
    try:
        return await asyncio.to_thread(show_response, store, model, verbose=verbose)
    except AnyModelNotFound as exc:
        raise NotFound(f"model '{model}' not found") from exc


# -- pull / push / create -------------------------------------------------------------------------
def pull(store: ModelStore, model: str, *, insecure: bool = False) -> AsyncIterator[Event]:
    """Progress of a pull. Registry endpoints and credentials come from the environment at call time."""
    return pull_model(store, model, insecure=insecure, options=options_from_env())


def push(store: ModelStore, model: str, *, insecure: bool = False) -> AsyncIterator[Event]:
    """Progress of a push: 400 `model is required` when no name was sent."""
    if not model:
        raise InvalidRequest("model is required")
    return push_model(store, model, insecure=insecure, options=options_from_env())


def create(store: ModelStore, body: dict[str, Any]) -> AsyncIterator[Event]:
    """Progress of a create from Ollama's structured request (`from` or uploaded `files`)."""
    return create_model(store, CreateRequest.from_json(body))


# -- copy / delete ----------------------------------------------------------------------------------
async def copy(store: ModelStore, source: str, destination: str) -> ModelName:
    """Copy a manifest (blobs are shared). Ollama's texts: `source "x" is invalid`,
    `destination "x" is invalid`, 404 `model "x" not found`."""
    try:
        parse_name(source)
    except InvalidModelName as exc:
        raise InvalidRequest(f"source {go_quote(source)} is invalid") from exc
    try:
        parse_name(destination)
    except InvalidModelName as exc:
        raise InvalidRequest(f"destination {go_quote(destination)} is invalid") from exc
    try:
        return await asyncio.to_thread(store.copy, source, destination)
    except AnyModelNotFound as exc:
        raise NotFound(f"model {go_quote(source)} not found") from exc


async def delete(store: ModelStore, scheduler: Scheduler, model: str) -> list[str]:
    """Unload the model if it is loaded, then remove its manifest and the blobs no other model uses.

    400 `name "x" is invalid`, 404 `model 'x' not found`. Returns the removed blob digests.
    """
    try:
        wanted = parse_name(model)
    except InvalidModelName as exc:
        raise InvalidRequest(f"name {go_quote(model)} is invalid") from exc
    stored = await asyncio.to_thread(store.find, wanted)
    if stored is None:
        raise NotFound(f"model '{model}' not found")
    # running requests finish on the loaded (mmapped) copy; the runner goes when its last user does
    retire(scheduler, stored)
    try:
        return await asyncio.to_thread(store.delete, stored.display_long())
    except AnyModelNotFound as exc:  # deleted by someone else meanwhile
        raise NotFound(f"model '{model}' not found") from exc


def retire(scheduler: Scheduler, name: ModelName) -> list[str]:
    """Every runner of `name` takes no new request and is unloaded once idle (at once if idle now)."""
    keys = [runner.key for runner in scheduler.loaded() if _names_model(runner.key, name)]
    for key in keys:
        runner = scheduler.get(key)
        if runner is not None:
            runner.expiring = True
            scheduler.expire_when_idle(runner)
    return keys


async def unload(scheduler: Scheduler, name: ModelName) -> list[str]:
    """Unload every runner of `name`. Runner keys are model names; they are compared the way Ollama
    compares names (parsed, case-insensitively), so any spelling of the full name matches."""
    keys = [runner.key for runner in scheduler.loaded() if _names_model(runner.key, name)]
    for key in keys:
        await scheduler.unload(key)
    return keys


def _names_model(key: str, name: ModelName) -> bool:
    try:
        return parse_name(key).key == name.key
    except InvalidModelName:
        return False


# -- blobs --------------------------------------------------------------------------------------------
def has_blob(store: ModelStore, digest: str) -> bool:
    """`HEAD /api/blobs/:digest`: 400 `invalid digest format`, 404 `blob "<as sent>" not found`."""
    normalized = normalize_digest(digest)
    if not store.has_blob(normalized):
        raise BlobNotFound(digest)
    return True


async def upload_blob(store: ModelStore, digest: str, chunks: AsyncIterable[bytes]) -> bool:
    """`POST /api/blobs/:digest`: stream `chunks` into a temp file, hashing as they come, and move it
    into place only if the hash matches. Returns False when the blob was already there (nothing is
    read), True when it was written. 400 `digest mismatch, expected "…", got "…"`."""
    expected = normalize_digest(digest)
    if store.has_blob(expected):
        return False
    try:
        writer = await asyncio.to_thread(BlobWriter, store.layout)
        with writer:  # removes the temp file unless committed
            pending: list[bytes] = []
            pending_size = 0
            async for chunk in chunks:
                if not chunk:
                    continue
                pending.append(chunk)
                pending_size += len(chunk)
                if pending_size >= UPLOAD_WRITE_SIZE:
                    await asyncio.to_thread(writer.write, b"".join(pending))
                    pending, pending_size = [], 0
            if pending:
                await asyncio.to_thread(writer.write, b"".join(pending))
            await asyncio.to_thread(writer.commit, expected)
    except OSError as exc:
        if is_disk_full(exc):  # the temp file is gone (the writer's exit): a clean 507
            raise StoreFull(f"upload of {expected}") from None
        raise
    return True
