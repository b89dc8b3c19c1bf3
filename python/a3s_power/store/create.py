"""`create`: build a model from GGUF blobs, a local GGUF path, or an existing model (Ollama's CreateHandler).

`create_events` is a synchronous generator of Ollama progress objects; `create_model` wraps it as an
async iterator (each step runs in a worker thread, since hashing and quantizing block).
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from a3s_power.chat.gotemplate import GoTemplateError, check_go_template, is_go_template
from a3s_power.store.blobs import sha256_bytes
from a3s_power.store.errors import BlobNotFound, CreateError, InvalidGGUF, InvalidModelfile, ModelNotFound
from a3s_power.store.gguf import GGUFInfo, read_gguf
from a3s_power.store.manifest import (
    CONFIG_V1,
    MEDIA_ADAPTER,
    MEDIA_LICENSE,
    MEDIA_MESSAGES,
    MEDIA_MODEL,
    MEDIA_PARAMS,
    MEDIA_PROJECTOR,
    MEDIA_PROMPT,
    MEDIA_SYSTEM,
    MEDIA_TEMPLATE,
    Layer,
    Manifest,
)
from a3s_power.store.model_config import config_bytes, config_from_gguf
from a3s_power.store.modelfile import MESSAGE_ROLES, ModelfileRequest
from a3s_power.store.names import normalize_digest, parse_name
from a3s_power.store.parameters import coerce_parameter
from a3s_power.store.show import is_jinja
from a3s_power.store.store import ModelStore

Event = dict[str, Any]

# Accepted `quantize` values → llama.cpp ftype names (Ollama: `Q4_K` means Q4_K_M).
QUANT_TYPES = {
    "q4_0": "q4_0", "q4_1": "q4_1", "q5_0": "q5_0", "q5_1": "q5_1", "q8_0": "q8_0", "q2_k": "q2_K",
    "q3_k_s": "q3_K_S", "q3_k_m": "q3_K_M", "q3_k_l": "q3_K_L", "q4_k": "q4_K_M", "q4_k_s": "q4_K_S",
    "q4_k_m": "q4_K_M", "q5_k": "q5_K_M", "q5_k_s": "q5_K_S", "q5_k_m": "q5_K_M", "q6_k": "q6_K",
    "f16": "f16", "bf16": "bf16", "f32": "f32",
}  # fmt: skip
QUANTIZABLE_SOURCES = ("F16", "BF16", "F32")
QUANT_PROGRESS_DIGEST = "0000000000000000000"


@dataclass(slots=True)
class CreateRequest:
    """Ollama's CreateRequest (the fields A3S Power supports)."""

    model: str
    from_: str = ""
    files: dict[str, str] = field(default_factory=dict)
    adapters: dict[str, str] = field(default_factory=dict)
    template: str | None = None
    system: str | None = None
    license: list[str] | None = None
    parameters: dict[str, Any] | None = None
    messages: list[dict[str, Any]] | None = None
    quantize: str = ""
    renderer: str = ""
    parser: str = ""
    requires: str = ""

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> CreateRequest:
        license_value = body.get("license")
        if isinstance(license_value, str):
            licenses: list[str] | None = [license_value]
        elif isinstance(license_value, list):
            licenses = [str(x) for x in license_value]
        else:
            licenses = None
        return cls(
            model=str(body.get("model") or body.get("name") or ""),
            from_=str(body.get("from") or ""),
            files=dict(body.get("files") or {}),
            adapters=dict(body.get("adapters") or {}),
            template=body.get("template"),
            system=body.get("system"),
            license=licenses,
            parameters=body.get("parameters"),
            messages=body.get("messages"),
            quantize=str(body.get("quantize") or body.get("quantization") or ""),
            renderer=str(body.get("renderer") or ""),
            parser=str(body.get("parser") or ""),
            requires=str(body.get("requires") or ""),
        )


def stage_modelfile_request(store: ModelStore, name: str, request: ModelfileRequest) -> CreateRequest:
    """Import a parsed Modelfile's local files as blobs (what `ollama create` uploads) → CreateRequest."""
    files = {fname: store.add_blob_file(path).digest for fname, path in request.files.items()}
    adapters = {fname: store.add_blob_file(path).digest for fname, path in request.adapters.items()}
    return CreateRequest(
        model=name,
        from_=request.from_ if not files else "",
        files=files,
        adapters=adapters,
        template=request.template,
        system=request.system,
        license=request.license or None,
        parameters=request.parameters or None,
        messages=request.messages or None,
        renderer=request.renderer,
        parser=request.parser,
        requires=request.requires,
    )


def create_events(store: ModelStore, request: CreateRequest) -> Iterator[Event]:
    """Yield Ollama's create progress objects; raise a StoreError subclass on failure."""
    name = parse_name(request.model)
    if not request.from_ and not request.files:
        raise CreateError("neither 'from' or 'files' was specified")
    if request.template and is_go_template(request.template):
        try:  # Ollama's setTemplate: a template that does not parse is refused, naming the line
            check_go_template(request.template)
        except GoTemplateError as exc:
            raise CreateError(f"template error: {exc}") from None
    elif request.template and is_jinja(request.template):
        # a recursive macro would crash the native renderer at the first chat: refused here
        from a3s_power.chat.jinja_guard import TemplateRefused, check_jinja_template

        try:
            check_jinja_template(request.template)
        except TemplateRefused as exc:
            raise CreateError(str(exc)) from None
    created: set[str] = set()
    if request.from_:
        layers, config = _layers_from_base(store, request.from_)
        if request.quantize:
            raise CreateError("quantization is only supported for F16, BF16 and F32 models")
    else:
        layers, config = yield from _layers_from_files(store, request, created)

    for fname, digest in request.adapters.items():
        layers = [x for x in layers if x.media_type != MEDIA_ADAPTER]
        adapter = _existing_blob_layer(store, digest, MEDIA_ADAPTER, fname)
        with store.blob_path(adapter.digest).open("rb") as f:
            if f.read(4) != b"GGUF":  # a safetensors adapter would need converting; anything else is wrong
                raise CreateError(
                    f"adapter {fname} is not a GGUF file (only GGUF LoRA adapters are supported)"
                )
        layers.append(adapter)

    if request.template is not None:
        layers = _replace(
            layers,
            (MEDIA_TEMPLATE, MEDIA_PROMPT),
            _text_layer(store, request.template, MEDIA_TEMPLATE, created),
        )
    if request.system is not None:
        layers = _replace(layers, (MEDIA_SYSTEM,), _text_layer(store, request.system, MEDIA_SYSTEM, created))
    if request.license is not None:
        layers = [x for x in layers if x.media_type != MEDIA_LICENSE]
        layers += [_text_layer(store, text, MEDIA_LICENSE, created) for text in request.license]
    if request.parameters is not None:
        merged = {**_base_params(store, layers), **_validated_params(request.parameters)}
        merged = {k: v for k, v in merged.items() if v is not None}
        _check_draft_model(store, request.parameters.get("draft_model"))
        layers = _replace(
            layers, (MEDIA_PARAMS,), _json_layer(store, merged, MEDIA_PARAMS, created) if merged else None
        )
    if request.messages is not None:
        messages = _validated_messages(request.messages)
        layers = _replace(layers, (MEDIA_MESSAGES,), _json_layer(store, messages, MEDIA_MESSAGES, created))

    for key in ("renderer", "parser", "requires"):
        if getattr(request, key):
            config[key] = getattr(request, key)
    config_layer = store.add_blob_bytes(config_bytes(config))
    config_layer.media_type = CONFIG_V1

    for layer in layers:
        verb = "creating new" if layer.digest in created else "using existing"
        yield {"status": f"{verb} layer {layer.digest}"}
    yield {"status": "writing manifest"}
    old = _current_manifest(store, request.model)
    store.write_manifest(name, Manifest(config=config_layer, layers=layers))
    if old is not None:
        store.remove_orphans_of(old)
    yield {"status": "success"}


async def create_model(store: ModelStore, request: CreateRequest) -> AsyncIterator[Event]:
    """Async iterator over `create_events`, running each blocking step in a worker thread."""
    events = create_events(store, request)
    sentinel = object()
    while True:
        item = await asyncio.to_thread(next, events, sentinel)
        if item is sentinel:
            return
        assert isinstance(item, dict)
        yield item


def _layers_from_files(
    store: ModelStore, request: CreateRequest, created: set[str]
) -> Generator[Event, None, tuple[list[Layer], dict[str, Any]]]:
    layers: list[Layer] = []
    model_info: GGUFInfo | None = None
    for fname, raw_digest in request.files.items():
        _check_relative(fname)
        digest = normalize_digest(raw_digest)
        if not store.has_blob(digest):
            raise BlobNotFound(digest)
        if not fname.lower().endswith(".gguf") and not _is_gguf(store.blob_path(digest)):
            raise CreateError(f"unsupported file {fname!r}: only GGUF models can be created")
        yield {"status": "parsing GGUF"}
        try:
            info = read_gguf(store.blob_path(digest))
        except InvalidGGUF as exc:
            raise CreateError(str(exc)) from exc
        is_projector = info.architecture == "clip" or str(info.metadata.get("general.type", "")) in (
            "mmproj",
            "clip-vision",
        )
        media = MEDIA_PROJECTOR if is_projector and model_info is not None else MEDIA_MODEL
        if media == MEDIA_MODEL:
            model_info = info
        layers.append(Layer(media, digest, store.blob_path(digest).stat().st_size))
    if model_info is None:
        raise CreateError("no model GGUF found in files")
    if request.quantize:
        model_layer = next(x for x in layers if x.media_type == MEDIA_MODEL)
        new_layer, model_info = yield from _quantize(store, model_layer, model_info, request.quantize)
        created.add(new_layer.digest)
        layers = [new_layer if x is model_layer else x for x in layers]
    config = config_from_gguf(
        model_info, is_projector_present=any(x.media_type == MEDIA_PROJECTOR for x in layers)
    )
    return layers, config


def _quantize(
    store: ModelStore, layer: Layer, info: GGUFInfo, quantize: str
) -> Generator[Event, None, tuple[Layer, GGUFInfo]]:
    ftype = QUANT_TYPES.get(quantize.lower())
    if ftype is None:
        raise CreateError(f"unsupported quantization type {quantize}")
    if info.file_type not in QUANTIZABLE_SOURCES:
        raise CreateError("quantization is only supported for F16, BF16 and F32 models")
    try:
        from a3s_power.runtime.quantize import quantize as quantize_fn
    except (ImportError, AttributeError) as exc:
        raise CreateError("quantization needs the native module, which is not available") from exc
    total = layer.size
    yield {
        "status": f"quantizing {info.file_type} model to {ftype.upper()}",
        "digest": QUANT_PROGRESS_DIGEST,
        "total": total,
        "completed": 0,
    }
    store.layout.ensure()
    with tempfile.TemporaryDirectory(dir=store.layout.blobs, prefix=".quantize-") as tmp:
        out = Path(tmp) / "model.gguf"
        try:
            quantize_fn(str(store.blob_path(layer.digest)), str(out), ftype, 0)
        except (ValueError, RuntimeError) as exc:
            raise CreateError(str(exc)) from exc
        yield {
            "status": f"quantizing {info.file_type} model to {ftype.upper()}",
            "digest": QUANT_PROGRESS_DIGEST,
            "total": total,
            "completed": total,
        }
        yield {"status": "verifying conversion"}
        new_info = read_gguf(out)
        blob = store.add_blob_file(out)
    new_layer = Layer(MEDIA_MODEL, blob.digest, blob.size)
    return new_layer, new_info


def _layers_from_base(store: ModelStore, base: str) -> tuple[list[Layer], dict[str, Any]]:
    base_name, manifest = store.read_manifest(base)
    config = store.read_config(manifest)
    short = base_name.display_shortest()
    layers = []
    for layer in manifest.layers:
        copy = Layer(layer.media_type, layer.digest, layer.size, layer.from_, layer.name)
        if copy.media_type in (MEDIA_MODEL, MEDIA_PROJECTOR, MEDIA_ADAPTER) and not copy.from_:
            copy.from_ = short
        layers.append(copy)
    return layers, config


def _existing_blob_layer(store: ModelStore, raw_digest: str, media_type: str, fname: str) -> Layer:
    _check_relative(fname)
    digest = normalize_digest(raw_digest)
    if not store.has_blob(digest):
        raise BlobNotFound(digest)
    return Layer(media_type, digest, store.blob_path(digest).stat().st_size)


def _bytes_layer(store: ModelStore, data: bytes, media_type: str, created: set[str]) -> Layer:
    existed = store.has_blob(sha256_bytes(data))
    layer = store.add_blob_bytes(data)
    layer.media_type = media_type
    if not existed:
        created.add(layer.digest)
    return layer


def _text_layer(store: ModelStore, text: str, media_type: str, created: set[str]) -> Layer:
    return _bytes_layer(store, text.encode("utf-8"), media_type, created)


def _json_layer(store: ModelStore, value: Any, media_type: str, created: set[str]) -> Layer:
    return _bytes_layer(store, orjson.dumps(value), media_type, created)


def _replace(layers: list[Layer], media_types: tuple[str, ...], new: Layer | None) -> list[Layer]:
    kept = [x for x in layers if x.media_type not in media_types]
    return [*kept, new] if new is not None else kept


def _base_params(store: ModelStore, layers: list[Layer]) -> dict[str, Any]:
    for layer in layers:
        if layer.media_type == MEDIA_PARAMS:
            with contextlib.suppress(OSError, orjson.JSONDecodeError):
                value = orjson.loads(store.read_blob(layer.digest))
                if isinstance(value, dict):
                    return value
    return {}


def _check_draft_model(store: ModelStore, name: Any) -> None:
    """`PARAMETER draft_model <name>` names a model the store has (checked again at load)."""
    if not isinstance(name, str) or not name:
        return
    try:
        found = store.find(name.strip())
    except Exception:  # an invalid name
        found = None
    if found is None:
        raise CreateError(f"draft model '{name.strip()}' not found")


def _validated_params(parameters: Mapping[str, Any]) -> dict[str, Any]:
    try:
        return {key: coerce_parameter(key, value) for key, value in parameters.items()}
    except InvalidModelfile as exc:
        raise CreateError(exc.message) from exc


def _validated_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for message in messages:
        role = str(message.get("role", "")).lower()
        if role not in MESSAGE_ROLES:
            raise CreateError('message role must be one of "system", "user", or "assistant"')
        out.append({"role": role, "content": str(message.get("content", ""))})
    return out


def _current_manifest(store: ModelStore, name: str) -> Manifest | None:
    try:
        return store.read_manifest(name)[1]
    except ModelNotFound:
        return None


def _check_relative(fname: str) -> None:
    path = Path(fname)
    if path.is_absolute() or ".." in path.parts or not fname:
        raise CreateError("file path must be relative")


def _is_gguf(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(4) == b"GGUF"
