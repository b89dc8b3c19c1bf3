"""`push`: upload a stored model to an OCI registry (Ollama's PushModel / upload.go).

Per blob: HEAD (exists → skip), optional cross-repo mount, then a monolithic PUT or chunked
PATCH … PUT ?digest=. Then the manifest, byte for byte as stored.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from a3s_power.registry.client import RegistryClient, registry_error
from a3s_power.registry.options import RegistryOptions, options_from_env
from a3s_power.registry.progress import track
from a3s_power.store.errors import InvalidModelName, RegistryError
from a3s_power.store.manifest import MANIFEST_V2, Layer, Manifest
from a3s_power.store.names import ModelName, parse_name, short_digest
from a3s_power.store.store import ModelStore

Event = dict[str, Any]


async def push_model(
    store: ModelStore,
    model: str,
    *,
    insecure: bool = False,
    options: RegistryOptions | None = None,
) -> AsyncIterator[Event]:
    options = (options or options_from_env()).with_insecure(insecure)
    name = parse_name(model)
    yield {"status": "retrieving manifest"}
    stored_name, raw = store.read_manifest_bytes(name)
    manifest = Manifest.from_bytes(raw)
    async with RegistryClient(name, options, push=True) as client:
        for layer in manifest.all_blobs():
            status = f"pushing {short_digest(layer.digest)}"

            async def work(report: Callable[[int], None], layer: Layer = layer) -> None:
                await _upload_blob(client, store, layer, report)

            async for event in track(work, status, layer.digest, layer.size, options.progress_interval):
                yield event
        yield {"status": "pushing manifest"}
        response = await client.request(
            "PUT",
            client.url(f"manifests/{name.tag}"),
            headers={"Content-Type": manifest.media_type or MANIFEST_V2},
            content=raw,
        )
        if response.status_code not in (200, 201, 202):
            raise registry_error(response, "push manifest")
    del stored_name
    yield {"status": "success"}


async def _upload_blob(
    client: RegistryClient, store: ModelStore, layer: Layer, report: Callable[[int], None]
) -> None:
    head = await client.request("HEAD", client.url(f"blobs/{layer.digest}"), follow_redirects=True)
    if head.status_code == 200:
        report(layer.size)
        return
    if head.status_code not in (404, 401):
        raise registry_error(head, f"check blob {layer.digest}")
    location = await _start_upload(client, layer)
    if location is None:  # mounted from another repository
        report(layer.size)
        return
    path = store.blob_path(layer.digest)
    size = path.stat().st_size
    chunk = max(1, client.options.push_chunk_size)
    with open(path, "rb") as handle:
        if size <= chunk:
            data = handle.read()
            response = await client.request(
                "PUT",
                _with_digest(location, layer.digest),
                headers={"Content-Type": "application/octet-stream"},
                content=data,
            )
            _expect(response, (201,), f"upload blob {layer.digest}")
            report(size)
            return
        offset = 0
        while offset < size:
            data = handle.read(chunk)
            end = offset + len(data) - 1
            response = await client.request(
                "PATCH",
                location,
                headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Range": f"{offset}-{end}",
                    "Content-Length": str(len(data)),
                },
                content=data,
            )
            _expect(response, (202,), f"upload blob {layer.digest} part at {offset}")
            location = client.resolve(response.headers.get("Location", location))
            offset += len(data)
            report(offset)
    response = await client.request("PUT", _with_digest(location, layer.digest), content=b"")
    _expect(response, (201,), f"finish blob {layer.digest}")


async def _start_upload(client: RegistryClient, layer: Layer) -> str | None:
    url = client.url("blobs/uploads/")
    mount_from = _mount_source(client.name, layer)
    if mount_from:
        url += f"?mount={layer.digest}&from={mount_from}"
    response = await client.request("POST", url)
    if response.status_code == 201 and mount_from:
        return None
    _expect(response, (202,), f"start upload of {layer.digest}")
    location = response.headers.get("Docker-Upload-Location") or response.headers.get("Location")
    if not location:
        raise RegistryError(502, f"start upload of {layer.digest}: registry gave no upload location")
    return client.resolve(location)


def _mount_source(target: ModelName, layer: Layer) -> str:
    """The repository to mount from when the layer came from another model on the same registry."""
    if not layer.from_:
        return ""
    try:
        source = parse_name(layer.from_)
    except InvalidModelName:
        return ""
    if source.host.lower() != target.host.lower() or source.repository == target.repository:
        return ""
    return source.repository


def _with_digest(location: str, digest: str) -> str:
    return f"{location}{'&' if '?' in location else '?'}digest={digest}"


def _expect(response: Any, statuses: tuple[int, ...], context: str) -> None:
    if response.status_code not in statuses:
        raise registry_error(response, context)
