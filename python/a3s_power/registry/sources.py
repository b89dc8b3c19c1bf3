"""Pull sources that are not an OCI registry: a direct `http(s)://….gguf` URL, and Hugging Face's
file API (`/api/models/<repo>` + `/<repo>/resolve/main/<file>`) for `hf.co/<user>/<repo>[:<quant>]`
when the hub has no registry manifest for it. Both download with Range resume into a partial file
keyed by the URL, then hash, import and publish the model."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import orjson

from a3s_power.registry.client import registry_error
from a3s_power.registry.download import download_url_resumable
from a3s_power.registry.options import RegistryOptions
from a3s_power.registry.progress import track
from a3s_power.store.blobs import sha256_file
from a3s_power.store.errors import InvalidGGUF, ManifestNotFound, RegistryError
from a3s_power.store.gguf import GGUFInfo, read_gguf
from a3s_power.store.layout import PARTIAL_MARK
from a3s_power.store.locks import TransferLock
from a3s_power.store.manifest import CONFIG_V1, MEDIA_MODEL, MEDIA_PROJECTOR, Layer, Manifest
from a3s_power.store.model_config import config_bytes, config_from_gguf
from a3s_power.store.names import ModelName, parse_name, short_digest
from a3s_power.store.store import ModelStore

Event = dict[str, Any]
DEFAULT_HF_QUANT = "Q4_K_M"


def is_direct_url(text: str) -> bool:
    lowered = text.lower()
    return lowered.startswith(("http://", "https://")) and urlsplit(lowered).path.endswith(".gguf")


def name_for_url(url: str) -> ModelName:
    """`https://host/x/My-Model.Q4_K_M.gguf` → `my-model.q4_k_m:latest` (a valid library name)."""
    stem = Path(urlsplit(url).path).name[: -len(".gguf")]
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "-", stem).lstrip(".-") or "model"
    return parse_name(cleaned[:80].lower())


def _http(options: RegistryOptions) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        verify=not options.insecure,
        timeout=httpx.Timeout(options.read_timeout, connect=options.connect_timeout),
        headers={"User-Agent": options.user_agent},
    )


async def pull_direct_url(store: ModelStore, url: str, options: RegistryOptions) -> AsyncIterator[Event]:
    if url.lower().startswith("http://") and not options.insecure:
        from a3s_power.store.errors import InsecureProtocol

        raise InsecureProtocol()
    name = name_for_url(url)
    yield {"status": "pulling manifest"}
    async with _http(options) as http:
        layer_events, layers = _fetch_files(store, http, [(url, MEDIA_MODEL)], options)
        async for event in layer_events:
            yield event
    async for event in _publish(store, name, layers()):
        yield event


async def pull_hf_files(
    store: ModelStore, name: ModelName, options: RegistryOptions, http: httpx.AsyncClient
) -> AsyncIterator[Event]:
    base = options.hf_endpoint.rstrip("/")
    repo = f"{name.namespace}/{name.model}"
    response = await http.get(f"{base}/api/models/{repo}", follow_redirects=True)
    if response.status_code == 404:
        raise ManifestNotFound()
    if response.status_code != 200:
        raise registry_error(response, f"hugging face repo {repo}")
    files = [str(s.get("rfilename", "")) for s in orjson.loads(response.content).get("siblings", [])]
    model_file, projector = choose_hf_files(files, name.tag)
    wanted = [(model_file, MEDIA_MODEL)] + ([(projector, MEDIA_PROJECTOR)] if projector else [])
    urls = [(f"{base}/{repo}/resolve/main/{quote(f)}", media) for f, media in wanted]
    async with _http(options) as hf_http:
        layer_events, layers = _fetch_files(store, hf_http, urls, options)
        async for event in layer_events:
            yield event
    async for event in _publish(store, name, layers()):
        yield event


def choose_hf_files(files: list[str], tag: str) -> tuple[str, str | None]:
    """Pick the GGUF for a quant tag (case-insensitive, default Q4_K_M) and an mmproj if present."""
    ggufs = [f for f in files if f.lower().endswith(".gguf")]
    projectors = [f for f in ggufs if "mmproj" in f.lower()]
    models = [f for f in ggufs if f not in projectors and not re.search(r"-\d{5}-of-\d{5}\.gguf$", f)]
    if not models:
        raise RegistryError(404, "pull model manifest: no GGUF files in repository")
    quant = DEFAULT_HF_QUANT if tag.lower() == "latest" else tag

    def matches(filename: str) -> bool:
        return (
            re.search(rf"(^|[^A-Za-z0-9]){re.escape(quant)}([^A-Za-z0-9]|$)", Path(filename).stem, re.I)
            is not None
        )

    chosen = [f for f in models if matches(f)]
    if not chosen:
        if tag.lower() != "latest":
            raise RegistryError(404, f"pull model manifest: no GGUF file for quantization {tag!r}")
        chosen = sorted(models)
    return chosen[0], (sorted(projectors)[0] if projectors else None)


def _fetch_files(
    store: ModelStore, http: httpx.AsyncClient, urls: list[tuple[str, str]], options: RegistryOptions
) -> tuple[AsyncIterator[Event], Callable[[], list[tuple[Layer, GGUFInfo]]]]:
    fetched: list[tuple[Layer, GGUFInfo]] = []

    async def events() -> AsyncIterator[Event]:
        for url, media in urls:
            partial = (
                store.layout.blobs / f"url-{hashlib.sha256(url.encode()).hexdigest()[:32]}{PARTIAL_MARK}"
            )
            label = "sha256:" + hashlib.sha256(url.encode()).hexdigest()
            size = {"total": 0}

            async def work(
                report: Callable[[int], None],
                url: str = url,
                partial: Path = partial,
                size: dict[str, int] = size,
            ) -> None:
                def on_progress(done: int, total: int) -> None:
                    size["total"] = total
                    report(done)

                await download_url_resumable(http, url, partial, on_progress)

            store.layout.ensure()
            lock = TransferLock(store.layout.transfer_lock_path(partial.name.removesuffix(PARTIAL_MARK)))
            while not lock.try_acquire():  # another pull is writing this partial file
                await asyncio.sleep(max(options.progress_interval, 0.02))
            try:
                async for event in track(
                    work, f"pulling {short_digest(label)}", label, 0, options.progress_interval
                ):
                    event["total"] = size["total"]
                    yield event
                yield {"status": "verifying sha256 digest"}
                fetched.append(await asyncio.to_thread(_import_partial, store, partial, media))
            finally:
                lock.release()

    return events(), lambda: fetched


def _import_partial(store: ModelStore, partial: Path, media: str) -> tuple[Layer, GGUFInfo]:
    try:
        info = read_gguf(partial)
    except InvalidGGUF:
        partial.unlink(missing_ok=True)
        raise
    digest = sha256_file(partial)
    target = store.blob_path(digest)
    size = partial.stat().st_size
    if target.exists():
        partial.unlink()
    else:
        os.replace(partial, target)
    return Layer(media, digest, size), info


async def _publish(
    store: ModelStore, name: ModelName, fetched: list[tuple[Layer, GGUFInfo]]
) -> AsyncIterator[Event]:
    layers = [layer for layer, _ in fetched]
    model_info = next(info for layer, info in fetched if layer.media_type == MEDIA_MODEL)
    config = store.add_blob_bytes(
        config_bytes(config_from_gguf(model_info, is_projector_present=len(layers) > 1))
    )
    config.media_type = CONFIG_V1
    yield {"status": "writing manifest"}
    store.write_manifest(name, Manifest(config=config, layers=layers))
    yield {"status": "success"}
