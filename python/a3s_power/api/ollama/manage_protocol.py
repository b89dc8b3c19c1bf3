"""Request bodies of Ollama's model-management endpoints (`api/types.go`), decoded with msgspec.

Unknown fields are ignored, as Go's encoding/json does; so are the fields Ollama itself ignores
(`username`/`password` on pull, the legacy `modelfile`/`path` of create). Optional fields also accept
JSON `null`, which Go decodes as "absent". Where Ollama still reads the deprecated `name`, so do we.
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import UNSET, UnsetType


class ShowRequest(msgspec.Struct):
    model: str | None = None
    name: str | None = None  # deprecated
    verbose: bool | None = None
    system: str | None = None  # accepted, not used (as in Ollama's ShowHandler)
    template: str | None = None  # deprecated
    options: dict[str, Any] | None = None

    @property
    def target(self) -> str:
        return self.model or self.name or ""


class TransferRequest(msgspec.Struct):
    """`/api/pull` and `/api/push` (PullRequest / PushRequest)."""

    model: str | None = None
    name: str | None = None  # deprecated
    insecure: bool | None = None
    stream: bool | None = None

    @property
    def target(self) -> str:
        return self.model or self.name or ""


class CopyRequest(msgspec.Struct):
    source: str | None = None
    destination: str | None = None


class DeleteRequest(msgspec.Struct):
    model: str | None = None
    name: str | None = None  # deprecated

    @property
    def target(self) -> str:
        return self.model or self.name or ""


class CreateBody(msgspec.Struct):
    """Ollama's structured CreateRequest; `to_mapping()` feeds `store.create.CreateRequest.from_json`."""

    model: str | None = None
    name: str | None = None  # deprecated
    from_: str | None = msgspec.field(default=None, name="from")
    files: dict[str, str] | None = None
    adapters: dict[str, str] | None = None
    template: str | None = None
    system: str | None = None
    license: str | list[str] | None = None
    parameters: dict[str, Any] | None = None
    messages: list[dict[str, Any]] | None = None
    quantize: str | None = None
    quantization: str | None = None  # deprecated spelling of quantize
    renderer: str | None = None
    parser: str | None = None
    requires: str | None = None
    stream: bool | None = None

    def to_mapping(self) -> dict[str, Any]:
        """The body as a JSON-like mapping with Ollama's field names (`from`, not `from_`)."""
        mapping: dict[str, Any] = msgspec.to_builtins(self)
        mapping.pop("stream", None)
        return mapping


# -- response bodies ------------------------------------------------------------------------------
class ModelDetails(msgspec.Struct, kw_only=True):
    """Ollama's ModelDetails (`details` in /api/tags, /api/ps and /api/show)."""

    parent_model: str = ""
    format: str = ""
    family: str = ""
    families: list[str] | None = None
    parameter_size: str = ""
    quantization_level: str = ""
    context_length: int | UnsetType = UNSET
    embedding_length: int | UnsetType = UNSET


class VersionResponse(msgspec.Struct):
    """`/api/version` (`a3s_power`: this server's own version, beside the Ollama API version it speaks)."""

    version: str
    a3s_power: str


class ListModel(msgspec.Struct, kw_only=True):
    """One entry of `/api/tags` (Ollama's ListModelResponse)."""

    name: str
    model: str
    modified_at: str
    size: int
    digest: str
    details: ModelDetails


class ListResponse(msgspec.Struct):
    """`/api/tags`."""

    models: list[ListModel]


class ShowTensor(msgspec.Struct):
    name: str
    type: str
    shape: list[int]


class ShowResponse(msgspec.Struct, kw_only=True):
    """`/api/show`, fields in the order of Ollama's ShowResponse; absent ones are not written."""

    license: str
    modelfile: str
    parameters: str
    template: str
    system: str | UnsetType = UNSET
    renderer: str | UnsetType = UNSET
    parser: str | UnsetType = UNSET
    details: ModelDetails
    messages: list[dict[str, Any]] | UnsetType = UNSET
    model_info: dict[str, Any]
    projector_info: dict[str, Any] | UnsetType = UNSET
    tensors: list[ShowTensor] | UnsetType = UNSET
    capabilities: list[str]
    modified_at: str
    requires: str | UnsetType = UNSET
    devices: list[dict[str, Any]] | UnsetType = UNSET  # loaded split across RPC workers: bytes per device


class ProcessModel(msgspec.Struct, kw_only=True):
    name: str
    model: str
    size: int
    digest: str
    details: ModelDetails
    expires_at: str
    size_vram: int = 0
    context_length: int
    devices: list[dict[str, Any]] | UnsetType = UNSET  # split across RPC workers: bytes per device
    rpc_unreachable: list[str] | UnsetType = UNSET


class ProcessResponse(msgspec.Struct):
    """`/api/ps`."""

    models: list[ProcessModel]


def model_details(details: dict[str, Any]) -> ModelDetails:
    """The store's details (model config fields, `store.model_config.details_from_config`)."""
    return msgspec.convert(details, ModelDetails)
